//! A development issuer for `scripts/wrk-bench.sh`: starts the crate's
//! [`TestIssuer`] on loopback, prints its issuer URL and one long-lived
//! access token for each `--audience`, then waits until its standard input
//! closes (the script holds it open) or Ctrl-C.
//!
//! ```sh
//! cargo run --release --example bench_issuer -- --alg es256 --audience http://127.0.0.1:8080/mcp
//! ```
//!
//! Output, one line each: `issuer <url>`, then `token <audience> <jwt>` per
//! audience, then `ready`. Flags: `--alg rs256|es256|eddsa` (rs256),
//! `--audience URL` (repeatable), `--subject S` (`bench`). Tokens last six
//! hours, for subject `bench` and client `bench-client`, with no scope.
//! Development only: the tokens are printed in clear.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use std::io::{BufRead, Write};
use std::time::Duration;

use mcp_oauth2::testing::{SigningAlg, TestIssuer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut alg = SigningAlg::Rs256;
    let mut audiences = Vec::new();
    let mut subject = "bench".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--alg" => {
                alg = match value()?.to_ascii_lowercase().as_str() {
                    "rs256" => SigningAlg::Rs256,
                    "es256" => SigningAlg::Es256,
                    "eddsa" => SigningAlg::EdDsa,
                    other => return Err(format!("unknown alg {other}").into()),
                }
            }
            "--audience" => audiences.push(value()?),
            "--subject" => subject = value()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let issuer = TestIssuer::start_with_alg(alg).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "issuer {}", issuer.issuer())?;
    for audience in &audiences {
        let token = issuer
            .token()
            .subject(subject.as_str())
            .client_id("bench-client")
            .audience(audience.as_str())
            .expires_in(Duration::from_secs(6 * 3600))
            .sign();
        writeln!(out, "token {audience} {token}")?;
    }
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    // Serve until stdin closes (the script exited) or Ctrl-C.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while stdin.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
