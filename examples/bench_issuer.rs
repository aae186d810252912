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
//! `--audience URL` (repeatable), `--subject S` (`bench`), `--port N` (on
//! 127.0.0.1; default one the system picks). Tokens last six
//! hours, for subject `bench` and client `bench-client`, with no scope.
//! Development only: the tokens are printed in clear. `--help` prints
//! the usage; a flag it does not take is a usage error (exit status 2).
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use std::io::{BufRead, Write};
use std::time::Duration;

use mcp_oauth2::testing::{SigningAlg, TestIssuer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str =
    "usage: bench_issuer [--alg rs256|es256|eddsa] [--audience URL]... [--subject S] [--port N]";

/// Errors as text, a usage error with exit status 2 (found from outside:
/// printed as Rust `Debug`, quotes and all, and `--help` was an error).
fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench_issuer: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Run::Usage(message)) => {
            eprintln!("bench_issuer: {message}\n{USAGE}");
            std::process::ExitCode::from(2)
        }
        Err(Run::Failed(e)) => {
            eprintln!("bench_issuer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Why [`run`] ended early.
enum Run {
    /// A flag it does not take, or one without its value.
    Usage(String),
    Failed(BoxError),
}

impl<E: Into<BoxError>> From<E> for Run {
    fn from(e: E) -> Self {
        Self::Failed(e.into())
    }
}

async fn run() -> Result<(), Run> {
    let mut alg = SigningAlg::Rs256;
    let mut audiences = Vec::new();
    let mut subject = "bench".to_owned();
    let mut port = 0;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| Run::Usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--alg" => {
                let named = value()?;
                alg = match named.to_ascii_lowercase().as_str() {
                    "rs256" => SigningAlg::Rs256,
                    "es256" => SigningAlg::Es256,
                    "eddsa" => SigningAlg::EdDsa,
                    _ => return Err(Run::Usage(format!("unknown algorithm {named}"))),
                }
            }
            "--audience" => audiences.push(value()?),
            "--subject" => subject = value()?,
            "--port" => {
                let named = value()?;
                port = named
                    .parse()
                    .map_err(|_| Run::Usage(format!("--port takes a port number, not {named}")))?;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(Run::Usage(format!("unknown flag {other}"))),
        }
    }
    let issuer = TestIssuer::builder().alg(alg).port(port).start().await?;
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
