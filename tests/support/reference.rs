//! The reference server (`examples/protected_server`, which `cargo test`
//! builds next to the test binaries) as a child process configured by
//! environment variables only, as the README runs it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The binary of the example `name`, which `cargo test` builds next to the
/// test binaries; fails the test when it is missing.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test` (it builds the examples)",
        bin.display()
    );
    bin
}

/// A command running the reference server with none of the `MCP_OAUTH2_*`
/// variables of the test's own environment (a developer's shell or CI may
/// set some; the server refuses
/// variables it does not know, and each test sets what it needs).
pub fn command() -> Command {
    example_command("protected_server")
}

/// A command running the example `name` without the test environment's
/// `MCP_OAUTH2_*` variables (see [`command`]).
pub fn example_command(name: &str) -> Command {
    without_our_variables(Command::new(example(name)))
}

/// The reference server (see [`command`]) with its soft and hard
/// file-descriptor limits (`RLIMIT_NOFILE`) set to `limit` by the shell
/// that starts it.
pub fn command_with_fd_limit(limit: u32) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\""))
        .arg(example("protected_server"));
    without_our_variables(command)
}

/// `command` without the test environment's `MCP_OAUTH2_*` variables.
fn without_our_variables(mut command: Command) -> Command {
    for (name, _) in std::env::vars_os() {
        if name
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("MCP_OAUTH2_")
        {
            command.env_remove(name);
        }
    }
    command
}

/// A loopback port that was free a moment ago, below the kernel's
/// ephemeral range (32768-60999 by default): there, the outgoing
/// connections of the tests running beside this one take their local
/// ports, and one could take the port before the server binds it (a
/// reference server then stopped, unable to listen). Ports are handed out
/// in turn from a place that depends on the process, each checked free.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const LAST: u16 = 32_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = FIRST + (std::process::id() % u32::from(LAST - FIRST)) as u16;
    let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        if !(FIRST..LAST).contains(&port) {
            NEXT.store(FIRST, Ordering::Relaxed);
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running reference server: the process (killed on drop) and the lines
/// of its standard output after `listening on`.
pub struct Reference {
    pub child: Child,
    pub lines: Lines<BufReader<ChildStdout>>,
}

impl Reference {
    /// The process, and a task gathering every line it prints until it
    /// ends (read as they come: a full pipe would stop the server's
    /// logging, and with it the server).
    #[allow(dead_code)] // not every test binary reads the whole output
    pub fn gather(self) -> (Child, tokio::task::JoinHandle<Vec<String>>) {
        let mut lines = self.lines;
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                all.push(line);
            }
            all
        });
        (self.child, reader)
    }
}

/// Starts the reference server on `127.0.0.1:port` with loopback HTTP
/// allowed and `RUST_LOG=warn`, then `env` (which may override those; an
/// empty `RUST_LOG` leaves it unset, for the server's own default filter),
/// and waits (at most 30 s) for its `listening on` line.
pub async fn start(port: u16, env: &[(&str, &str)]) -> Reference {
    start_command(command(), port, env).await
}

/// The reference server trusting `issuer`, on a free port, writing its log
/// in `format` (`text` or `json`, `MCP_OAUTH2_LOG_FORMAT`) through the
/// filter `rust_log` (empty: the server's own default); with the resource
/// it serves.
#[allow(dead_code)] // not every test binary reads logs
pub async fn start_logging(issuer: &str, format: &str, rust_log: &str) -> (Reference, String) {
    start_trusting(
        issuer,
        &[("MCP_OAUTH2_LOG_FORMAT", format), ("RUST_LOG", rust_log)],
    )
    .await
}

/// The reference server trusting `issuer`, on a free port, with `env`
/// besides; with the resource it serves.
#[allow(dead_code)] // not every test binary starts one this way
pub async fn start_trusting(issuer: &str, env: &[(&str, &str)]) -> (Reference, String) {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let mut all = vec![
        ("MCP_OAUTH2_ISSUER", issuer),
        ("MCP_OAUTH2_RESOURCE", resource.as_str()),
    ];
    all.extend_from_slice(env);
    (start(port, &all).await, resource)
}

/// [`start`] with `command` (such as [`command_with_fd_limit`]).
pub async fn start_command(mut command: Command, port: u16, env: &[(&str, &str)]) -> Reference {
    command
        .env("MCP_OAUTH2_BIND", format!("127.0.0.1:{port}"))
        .env("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1")
        .env("RUST_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    if env
        .iter()
        .any(|(name, value)| *name == "RUST_LOG" && value.is_empty())
    {
        command.env_remove("RUST_LOG");
    }
    spawn_listening(command.stderr(Stdio::null())).await
}

/// Spawns `command` with its standard output read (its standard error as
/// the caller set it) and waits (at most 30 s) for its `listening on`
/// line.
pub async fn spawn_listening(command: &mut Command) -> Reference {
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("listening on"), "{first}");
    Reference { child, lines }
}
