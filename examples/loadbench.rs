//! Load benchmark: the same rmcp server with and without the mcp-oauth2
//! layer, on loopback, driven by a Rust load client in alternating rounds.
//!
//! ```sh
//! cargo run --release --example loadbench                 # defaults
//! cargo run --release --example loadbench -- --seconds 5 --rounds 3 --connections 32 --alg es256
//! ```
//!
//! Each request is a stateless (protocol 2026-07-28) `tools/call` of a tool
//! that returns the caller's subject, with JSON responses. The protected
//! server verifies a real JWT from an in-process issuer on every request.
//! The server runs on one Tokio worker thread (one core); the load client
//! runs on its own thread. Reports requests/s, p50 and p99 latency per
//! round and the ratio protected / unprotected.

#[path = "common/notes.rs"]
#[allow(dead_code)]
mod notes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_oauth2::testing::{SigningAlg, TestIssuer};
use mcp_oauth2::{AuthConfig, McpServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    seconds: u64,
    rounds: usize,
    connections: usize,
    alg: SigningAlg,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args {
        seconds: 3,
        rounds: 3,
        connections: 32,
        alg: SigningAlg::Rs256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse()?,
            "--connections" => a.connections = value()?.parse()?,
            "--alg" => {
                a.alg = match value()?.to_ascii_lowercase().as_str() {
                    "rs256" => SigningAlg::Rs256,
                    "es256" => SigningAlg::Es256,
                    "eddsa" => SigningAlg::EdDsa,
                    other => return Err(format!("unknown alg {other}").into()),
                }
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

/// Starts a server on `std_listener` on its own one-thread runtime (one
/// core); returns its URL.
fn spawn_server(
    std_listener: std::net::TcpListener,
    protected: Option<AuthConfig>,
) -> Result<String, BoxError> {
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let store = notes::NoteStore::default();
            let rmcp_config = StreamableHttpServerConfig::default()
                .with_json_response(true)
                .with_legacy_session_mode(false)
                .with_sse_keep_alive(None);
            match protected {
                Some(config) => {
                    let server = McpServer::builder()
                        .auth(config)
                        .rmcp_config(|_| rmcp_config)
                        .service(move || Ok(notes::NotesServer::new(store.clone())))
                        .build();
                    match server {
                        Ok(server) => {
                            let _ = tx.send(Ok(()));
                            let _ = server
                                .serve_with_shutdown(listener, std::future::pending())
                                .await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                }
                None => {
                    let service = StreamableHttpService::new(
                        move || Ok(notes::NotesServer::new(store.clone())),
                        Arc::new(LocalSessionManager::default()),
                        rmcp_config,
                    );
                    let router = axum::Router::new().nest_service("/mcp", service);
                    let _ = tx.send(Ok(()));
                    let _ = axum::serve(listener, router).await;
                }
            }
        });
    });
    rx.recv()??;
    Ok(format!("http://{addr}/mcp"))
}

struct RoundResult {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

async fn drive(url: &str, token: Option<&str>, connections: usize, seconds: u64) -> RoundResult {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = client.clone();
        let url = url.to_owned();
        let token = token.map(str::to_owned);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let mut req = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "whoami")
                    .body(BODY);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                match req.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let ok = resp.bytes().await.is_ok();
                        if ok {
                            lat.push(t.elapsed().as_micros() as u64);
                        } else {
                            errors += 1;
                        }
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            latencies_us.extend(lat);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    RoundResult {
        requests: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), BoxError> {
    let args = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let issuer = TestIssuer::start_with_alg(args.alg).await?;
        let plain = spawn_server(std::net::TcpListener::bind("127.0.0.1:0")?, None)?;
        // The protected server needs its URL (the audience) before it starts:
        // bind first, then configure.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let resource = format!("http://{}/mcp", listener.local_addr()?);
        let config = AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(&resource)
            .allow_insecure_http_for_loopback(true)
            .build()?;
        let protected = spawn_server(listener, Some(config))?;
        let token = issuer
            .token()
            .subject("bench")
            .audience(&resource)
            .expires_in(Duration::from_secs(3600))
            .sign();
        // Warm up both (connections, key set).
        drive(&plain, None, args.connections, 1).await;
        drive(&protected, Some(&token), args.connections, 1).await;
        println!(
            "alg={} connections={} seconds/round={} rounds={}",
            args.alg, args.connections, args.seconds, args.rounds
        );
        println!(
            "{:<12} {:>6} {:>10} {:>8} {:>8} {:>7}",
            "server", "round", "req/s", "p50 us", "p99 us", "errors"
        );
        let (mut plain_total, mut prot_total) = (0.0, 0.0);
        for round in 1..=args.rounds {
            for (name, url, tok) in [
                ("rmcp", &plain, None),
                ("rmcp+auth", &protected, Some(token.as_str())),
            ] {
                let r = drive(url, tok, args.connections, args.seconds).await;
                let rps = r.requests as f64 / r.elapsed.as_secs_f64();
                if tok.is_some() {
                    prot_total += rps;
                } else {
                    plain_total += rps;
                }
                println!(
                    "{:<12} {:>6} {:>10.0} {:>8} {:>8} {:>7}",
                    name,
                    round,
                    rps,
                    pct(&r.latencies_us, 0.50),
                    pct(&r.latencies_us, 0.99),
                    r.errors
                );
            }
        }
        println!(
            "ratio (rmcp+auth / rmcp, mean of rounds): {:.3}",
            prot_total / plain_total
        );
        Ok::<(), BoxError>(())
    })
}
