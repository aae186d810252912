//! The newcomer path: `cargo run --example quickstart -- --once`, as the
//! README says to run it, with nothing but the binary (no network beyond
//! loopback, no Redis, no environment). `cargo test` builds the example
//! next to the test binaries.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::time::Duration;

// The walk-through completes and exits 0; its output, read through a pipe
// (a CI log, `| less`), carries no terminal colour codes (the log lines it
// prints were coloured whatever the output was).
#[tokio::test]
async fn the_quickstart_walks_through_and_exits() {
    let mut command = support::reference::example_command("quickstart");
    command.env_remove("RUST_LOG");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        command.arg("--once").kill_on_drop(true).output(),
    )
    .await
    .expect("the quickstart did not exit")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Walk-through complete."), "{stdout}");
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains('\u{1b}'), "colour codes on {name}: {text}");
    }
    // The server's audit lines are on standard error, each marked as the
    // server's, not in the walk-through's text (found from outside: WARN
    // lines in its middle read as its errors).
    assert!(!stdout.contains("mcp_oauth2::audit"), "{stdout}");
    let audit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("mcp_oauth2::audit"))
        .collect();
    assert!(!audit.is_empty(), "{stderr}");
    assert!(
        audit.iter().all(|l| l.starts_with("    [server log] ")),
        "{stderr}"
    );
}

// A machine with a proxy in its environment (company laptops, CI runners:
// `HTTP_PROXY`, `ALL_PROXY`, without `NO_PROXY` for loopback): the
// walk-through talks to loopback only and must not send that through the
// proxy (it failed at step 1 with "tcp connect error" to the proxy, and the
// server's own key fetch went there too).
#[tokio::test]
async fn the_quickstart_ignores_a_proxy_in_the_environment() {
    let mut command = support::reference::example_command("quickstart");
    command.env_remove("RUST_LOG");
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env(name, "http://127.0.0.1:9");
    }
    command.env_remove("NO_PROXY").env_remove("no_proxy");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        command.arg("--once").kill_on_drop(true).output(),
    )
    .await
    .expect("the quickstart did not exit")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Walk-through complete."), "{stdout}");
}

// Its reader going early (`quickstart --once | head -1`) ends it quietly,
// not with a panic (found from outside: exit 101, "failed printing to
// stdout: Broken pipe").
#[tokio::test]
async fn the_quickstart_ends_quietly_when_its_reader_goes() {
    use tokio::io::AsyncBufReadExt as _;
    let mut command = support::reference::example_command("quickstart");
    command.env_remove("RUST_LOG");
    let mut child = command
        .arg("--once")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("no first line")
        .unwrap();
    assert!(first.is_some());
    drop(lines);
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the quickstart did not exit")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// It takes `--once` and `--help` and nothing else: an unknown argument
// (`--help` once too) ran the whole walk-through and kept serving (found
// from outside). And a walk-through it could not write is a failure, not
// a success: `--once > /dev/full` exited 0 (found from outside), so a CI
// smoke run would have passed without it.
#[tokio::test]
async fn the_quickstart_takes_only_its_arguments_and_fails_when_unwritten() {
    let run = |args: &'static [&'static str], stdout: std::process::Stdio| {
        let mut command = support::reference::example_command("quickstart");
        command
            .env_remove("RUST_LOG")
            .args(args)
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        async move {
            let child = command.spawn().unwrap();
            tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
                .await
                .expect("the quickstart did not exit")
                .unwrap()
        }
    };
    let help = run(&["--help"], std::process::Stdio::piped()).await;
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--once"));
    let unknown = run(&["--bogus"], std::process::Stdio::piped()).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("--bogus"));
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not Linux
    };
    let unwritten = run(&["--once"], full.into()).await;
    let stderr = String::from_utf8_lossy(&unwritten.stderr);
    assert_eq!(unwritten.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// The load benchmark's development issuer speaks as the other tools do
// (found from outside: `Error: "unknown alg hs256"` in Rust `Debug`, the
// value lowered, and `--help` an error): a usage error is text with exit
// status 2, `--help` prints the usage.
#[tokio::test]
async fn the_bench_issuer_tells_its_usage() {
    let run = |args: &[&str]| {
        let mut command = support::reference::example_command("bench_issuer");
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        async move {
            tokio::time::timeout(Duration::from_secs(30), command.output())
                .await
                .expect("bench_issuer did not exit")
                .unwrap()
        }
    };
    let help = run(&["--help"]).await;
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--audience"));
    for (args, says) in [
        (&["--alg", "HS256"][..], "unknown algorithm HS256"),
        (&["--bogus"][..], "unknown flag --bogus"),
        (&["--alg"][..], "--alg needs a value"),
        (&["--port", "x"][..], "--port takes a port number, not x"),
        (
            &["--port", "65536"][..],
            "--port takes a port number, not 65536",
        ),
    ] {
        let out = run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains('"') && stderr.contains("usage:"),
            "{stderr}"
        );
    }
    // `--port`: the issuer it prints listens there (on loopback); it exits
    // once its standard input closes.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(&["--port", &free.to_string()]).await;
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("issuer http://127.0.0.1:{free}\n")),
        "{stdout}"
    );
}
