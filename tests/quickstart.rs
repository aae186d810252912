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
}
