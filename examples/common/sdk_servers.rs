//! The Python and TypeScript MCP SDK servers of `interop/sdk-bench/`, run as
//! child processes by `examples/loadbench -- --sdks`.
//!
//! A child never outlives the benchmark: it is killed when its
//! [`SdkServer`] is dropped (normal exit, error, panic), it shares the
//! terminal's process group (Ctrl-C reaches it), and it exits by itself
//! when its standard input, a pipe held by this process, closes (any other
//! death of the benchmark, `kill -9` included).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Longest wait for a child to accept connections (Python imports the SDK
/// in 1 to 3 s on a busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One of the SDK servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sdk {
    /// `interop/sdk-bench/python_server.py`: mcp (PyPI) 2.3.
    Python,
    /// `interop/sdk-bench/ts_server.mjs`: @modelcontextprotocol/sdk 1.32.
    TypeScript,
}

impl Sdk {
    pub(crate) const ALL: [Sdk; 2] = [Sdk::Python, Sdk::TypeScript];

    /// `--sdk` values.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "python" | "py" => Some(Self::Python),
            "typescript" | "ts" => Some(Self::TypeScript),
            _ => None,
        }
    }

    /// Name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Python => "python-sdk",
            Self::TypeScript => "ts-sdk",
        }
    }

    /// The server's script, relative to the repository.
    pub(crate) fn script(self) -> &'static str {
        match self {
            Self::Python => "interop/sdk-bench/python_server.py",
            Self::TypeScript => "interop/sdk-bench/ts_server.mjs",
        }
    }

    /// The interpreter and the script, or an error saying how to install
    /// them.
    fn command(self, repo: &Path) -> Result<(PathBuf, PathBuf), BoxError> {
        let interop = repo.join("interop");
        let (interpreter, needs) = match self {
            Self::Python => (
                interop.join(".venv/bin/python"),
                interop.join(".venv/bin/python"),
            ),
            Self::TypeScript => (
                interop.join("node_modules/node/bin/node"),
                interop.join("node_modules/@modelcontextprotocol/sdk/package.json"),
            ),
        };
        let script = repo.join(self.script());
        for path in [&interpreter, &needs] {
            if !path.exists() {
                return Err(format!(
                    "the {} server is not installed ({} is missing): run \
                     `RIG_INSTALL_ONLY=1 interop/run.sh` (npm ci and pip install into interop/, \
                     see interop/sdk-bench/README.md) first",
                    self.name(),
                    path.display()
                )
                .into());
            }
        }
        Ok((interpreter, script))
    }
}

/// A running SDK server; killed on drop.
#[derive(Debug)]
pub(crate) struct SdkServer {
    child: Child,
    addr: SocketAddr,
    /// This server's MCP endpoint, also its resource URL (the audience).
    pub(crate) url: String,
    /// Whether the child was pinned to one CPU with `taskset`.
    pub(crate) pinned: Option<usize>,
}

impl SdkServer {
    /// Starts `sdk` on a free loopback port, trusting tokens from `issuer`
    /// signed with a key from `jwks_uri`; pinned to CPU `pin_cpu` (one core)
    /// when `taskset` is available. Returns once it accepts connections.
    pub(crate) async fn start(
        sdk: Sdk,
        issuer: &str,
        jwks_uri: &str,
        pin_cpu: Option<usize>,
    ) -> Result<Self, BoxError> {
        let (interpreter, script) = sdk.command(Path::new(env!("CARGO_MANIFEST_DIR")))?;
        // A port the kernel just handed out; the child binds it right away.
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let url = format!("http://{addr}/mcp");
        let pinned = pin_cpu.filter(|_| taskset_available());
        let mut cmd = match pinned {
            Some(cpu) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(cpu.to_string()).arg(&interpreter);
                cmd
            }
            None => Command::new(&interpreter),
        };
        cmd.arg(&script)
            .env("SDK_BENCH_ISSUER", issuer)
            .env("SDK_BENCH_JWKS_URI", jwks_uri)
            .env("SDK_BENCH_RESOURCE", &url)
            .env("SDK_BENCH_PORT", port.to_string())
            .env("SDK_BENCH_STDIN_WATCHDOG", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", interpreter.display()))?;
        // From here on, an early return drops `server`, which kills the child.
        let mut server = SdkServer {
            child,
            addr,
            url,
            pinned,
        };
        server.wait_ready(sdk).await?;
        Ok(server)
    }

    /// Polls the port until the child accepts a connection, it exits, or
    /// [`START_TIMEOUT`] passes.
    async fn wait_ready(&mut self, sdk: Sdk) -> Result<(), BoxError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(
                    format!("the {} server exited during start-up: {status}", sdk.name()).into(),
                );
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the {} server did not listen on {} within {}s",
                    sdk.name(),
                    self.addr,
                    START_TIMEOUT.as_secs()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The child's `/proc/<pid>/stat` (all its threads), for its CPU time.
    pub(crate) fn cpu_stat(&self) -> Option<PathBuf> {
        let stat = PathBuf::from(format!("/proc/{}/stat", self.child.id()));
        stat.exists().then_some(stat)
    }
}

impl Drop for SdkServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `taskset` (util-linux) can be run.
fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
