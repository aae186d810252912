//! A real `redis-server` (the Debian package; `.ci/run` installs it) on a
//! free loopback port, without persistence, killed on drop. A test can stop
//! it mid-run ([`RedisServer::stop`]) and start it again on the same port
//! ([`RedisServer::start_again`]), or pause it (`CLIENT PAUSE`) to make it
//! slow.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running `redis-server` on 127.0.0.1.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { port, child: None };
        server.start_again().await;
        server
    }

    /// Starts one on `port` (free, or about to be) and waits until it
    /// answers `PING`.
    #[allow(dead_code)] // not every test binary starts one on a given port
    pub async fn start_on(port: u16) -> Self {
        let mut server = Self { port, child: None };
        server.start_again().await;
        server
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of this server (database 0).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// (Re)starts the process on the same port; empty (no persistence).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.command(&["PING"]).await.is_some_and(|r| r == "+PONG") {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process (Redis down) and waits until the port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process (`SIGSTOP`): the kernel still accepts connections
    /// and takes commands, nothing answers (a hung host, a partition),
    /// until [`thaw`](Self::thaw).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`freeze`](Self::freeze)d process run again (`SIGCONT`).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Makes every client command wait `millis` (a slow Redis).
    pub async fn pause(&self, millis: u64) {
        let answer = self
            .command(&["CLIENT", "PAUSE", &millis.to_string()])
            .await;
        assert_eq!(answer.as_deref(), Some("+OK"));
    }

    /// Every key and its value (`KEYS *`, then `GET`/`DUMP`-free reads):
    /// for tests that look for token material in the store.
    pub async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let keys = self.array(&["KEYS", "*"]).await;
        let mut out = Vec::new();
        for key in keys {
            let value = self.bulk(&["GET", &key]).await.unwrap_or_default();
            out.push((key, value));
        }
        out
    }

    /// Sends one command (RESP) and returns the first line of the answer.
    pub async fn command(&self, args: &[&str]) -> Option<String> {
        let raw = self.raw(args).await?;
        let text = String::from_utf8_lossy(&raw);
        text.split("\r\n").next().map(str::to_owned)
    }

    async fn bulk(&self, args: &[&str]) -> Option<Vec<u8>> {
        let raw = self.raw(args).await?;
        let header_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let header = std::str::from_utf8(&raw[..header_end]).ok()?;
        let len: i64 = header.strip_prefix('$')?.parse().ok()?;
        if len < 0 {
            return None;
        }
        Some(raw[header_end + 2..header_end + 2 + len as usize].to_vec())
    }

    async fn array(&self, args: &[&str]) -> Vec<String> {
        let raw = self.raw(args).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        // *N, then $len / value pairs (keys are ASCII).
        text.split("\r\n")
            .skip(1)
            .filter(|l| !l.starts_with('$') && !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    async fn raw(&self, args: &[&str]) -> Option<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        let mut msg = format!("*{}\r\n", args.len());
        for a in args {
            msg.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(msg.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        // Read until the peer is quiet for a moment (answers are small),
        // five seconds at most (a paused server answers nothing).
        for _ in 0..50 {
            match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Err(_) if !out.is_empty() => break,
                Err(_) => {}
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// A loopback TCP proxy in front of a Redis that, when armed with
/// [`ReplyDroppingProxy::drop_reply_to`], forwards the next client write
/// containing the given bytes (a command naming a key), waits for Redis'
/// reply, and then drops both connections without forwarding it: the
/// command ran, only its answer was lost (a network blip at the worst time).
pub struct ReplyDroppingProxy {
    port: u16,
    armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplyDroppingProxy {
    /// A proxy on a free loopback port forwarding to the Redis on `upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, d) = (armed.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (a, d) = (a.clone(), d.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    Self::pump(client, server, a, d).await;
                });
            }
        });
        Self {
            port,
            armed,
            dropped,
            task,
        }
    }

    async fn pump(
        mut client: TcpStream,
        mut server: TcpStream,
        armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
        dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let mut from_client = [0u8; 65536];
        let mut from_server = [0u8; 65536];
        loop {
            tokio::select! {
                read = client.read(&mut from_client) => {
                    let Ok(n @ 1..) = read else { return };
                    let chunk = &from_client[..n];
                    let hit = {
                        let mut armed = armed.lock().unwrap();
                        let hit = armed
                            .as_ref()
                            .is_some_and(|p| chunk.windows(p.len()).any(|w| w == p.as_slice()));
                        if hit {
                            *armed = None;
                        }
                        hit
                    };
                    if server.write_all(chunk).await.is_err() {
                        return;
                    }
                    if hit {
                        // Wait for the reply (the command ran), then lose it.
                        let _ = tokio::time::timeout(
                            Duration::from_secs(5),
                            server.read(&mut from_server),
                        )
                        .await;
                        dropped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
                read = server.read(&mut from_server) => {
                    let Ok(n @ 1..) = read else { return };
                    if client.write_all(&from_server[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// The URL of the proxy (database 0).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Loses the reply to the next command whose bytes contain `needle`.
    pub fn drop_reply_to(&self, needle: &str) {
        *self.armed.lock().unwrap() = Some(needle.as_bytes().to_vec());
    }

    /// How many replies were lost so far.
    pub fn dropped(&self) -> usize {
        self.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for ReplyDroppingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
