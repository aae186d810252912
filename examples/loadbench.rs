//! Load benchmark: the same rmcp server with and without the mcp-oauth2
//! layer, and optionally the Python and TypeScript MCP SDKs' authenticated
//! servers, on loopback, driven by one Rust load client in alternating
//! rounds.
//!
//! ```sh
//! cargo run --release --example loadbench                 # defaults
//! cargo run --release --example loadbench -- --seconds 5 --rounds 3 --connections 32 --alg es256
//! cargo run --release --example loadbench -- --sdks       # also the SDK servers (interop/sdk-bench)
//! ```
//!
//! Flags: `--seconds N` per round (3), `--rounds N` (3), `--warmup N`
//! seconds per server before the rounds (as `--seconds`), `--connections N`
//! (32), `--alg rs256|es256|eddsa` (rs256), `--sdks` (both SDK servers) or
//! `--sdk python|typescript` (one; repeatable), `--python-protocol
//! 2026-07-28|2025-11-25|2025-06-18` (2026-07-28), `--no-token-cache`
//! (turn off the layer's verified-token cache, so that rmcp+auth verifies
//! the signature on every request as the SDK servers do).
//!
//! Each request is a stateless `tools/call` of `whoami`, which returns the
//! caller's subject, with JSON responses; a request counts only if the
//! answer is a successful tool result (a JSON-RPC error or `isError: true`
//! is an error). The unprotected server gets a fixed `AuthContext` from an
//! axum `Extension`, so that both rmcp servers run the same successful
//! tool, and the same request bytes, token included (it ignores it); the
//! protected one verifies a real JWT from an in-process issuer.
//! Each rmcp server runs on one Tokio thread (one core) of this process; each
//! SDK server is a child process pinned to one CPU with `taskset` when it is
//! available (see interop/sdk-bench/README.md; install them with
//! `RIG_INSTALL_ONLY=1 interop/run.sh`). The SDK servers get a token minted
//! by the same issuer for their own resource URL, and speak the newest
//! protocol each supports: 2026-07-28 for Python (mcp 2.3, the same request
//! bytes as rmcp), 2025-11-25 for TypeScript (SDK 1.32). Reports requests/s,
//! p50 and p99 latency, errors and the CPU use (in cores) of the server, of
//! the load client and of every other process on the machine per round, then
//! the mean requests/s of each server and its ratio to rmcp alone and to
//! rmcp+auth. A server well under 1.0 core means something else set the pace:
//! the client, or other load (`other` well above 0: not a clean sample).
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

#[path = "common/load_client.rs"]
mod load_client;
#[path = "common/notes.rs"]
#[allow(dead_code)]
mod notes;
#[path = "common/sdk_servers.rs"]
mod sdk_servers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use load_client::{Protocol, SUBJECT, Target, drive};
use mcp_oauth2::testing::{SigningAlg, TestIssuer};
use mcp_oauth2::{AuthConfig, AuthContext, McpServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sdk_servers::{Sdk, SdkServer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `client_id` of every benchmark token and of the unprotected server's
/// fixed caller.
const CLIENT_ID: &str = "bench-client";

/// The newest protocol revision the TypeScript SDK 1.32 serves.
const TYPESCRIPT_PROTOCOL: Protocol = Protocol::Legacy("2025-11-25");

struct Args {
    seconds: u64,
    warmup: Option<u64>,
    rounds: usize,
    connections: usize,
    alg: SigningAlg,
    sdks: Vec<Sdk>,
    python_protocol: Protocol,
    token_cache: bool,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args {
        seconds: 3,
        warmup: None,
        rounds: 3,
        connections: 32,
        alg: SigningAlg::Rs256,
        sdks: Vec::new(),
        python_protocol: Protocol::Stateless2026,
        token_cache: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = value()?.parse()?,
            "--warmup" => a.warmup = Some(value()?.parse()?),
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
            "--sdks" => a.sdks = Sdk::ALL.to_vec(),
            "--sdk" => {
                let name = value()?;
                let sdk = Sdk::parse(&name)
                    .ok_or_else(|| format!("unknown SDK {name} (python or typescript)"))?;
                if !a.sdks.contains(&sdk) {
                    a.sdks.push(sdk);
                }
            }
            "--python-protocol" => {
                let version = value()?;
                a.python_protocol = Protocol::parse(&version).ok_or_else(|| {
                    format!("unsupported protocol {version} (2026-07-28, 2025-11-25 or 2025-06-18)")
                })?;
            }
            "--no-token-cache" => a.token_cache = false,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if !a.sdks.is_empty() && a.alg == SigningAlg::EdDsa {
        // The SDK servers allow RS256 and ES256 only.
        return Err(
            "the SDK servers accept RS256 and ES256 tokens only: use --alg rs256 or es256".into(),
        );
    }
    if a.seconds == 0 || a.rounds == 0 || a.connections == 0 {
        return Err("--seconds, --rounds and --connections must be at least 1".into());
    }
    Ok(a)
}

/// Which rmcp server to run.
enum Server {
    /// Plain rmcp; every request carries this fixed caller, so that tools
    /// needing an `AuthContext` succeed as they do behind the layer.
    Plain(AuthContext),
    /// rmcp behind the mcp-oauth2 layer.
    Protected(Box<AuthConfig>),
}

/// Starts a server on `std_listener` on its own one-thread runtime (one
/// core); returns its URL and the `/proc` stat file of its thread.
fn spawn_server(
    std_listener: std::net::TcpListener,
    server: Server,
) -> Result<(String, Option<PathBuf>), BoxError> {
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (tx, rx) = std::sync::mpsc::channel::<Result<Option<PathBuf>, String>>();
    std::thread::spawn(move || {
        // `/proc/thread-self` links to `<pid>/task/<tid>`: this thread's stat.
        let stat = std::fs::read_link("/proc/thread-self")
            .ok()
            .map(|task| PathBuf::from("/proc").join(task).join("stat"));
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
            match server {
                Server::Protected(config) => {
                    let server = McpServer::builder()
                        .auth(*config)
                        .rmcp_config(|_| rmcp_config)
                        .service(move || Ok(notes::NotesServer::new(store.clone())))
                        .build();
                    match server {
                        Ok(server) => {
                            let _ = tx.send(Ok(stat));
                            let _ = server
                                .serve_with_shutdown(listener, std::future::pending())
                                .await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                }
                Server::Plain(caller) => {
                    let service = StreamableHttpService::new(
                        move || Ok(notes::NotesServer::new(store.clone())),
                        Arc::new(LocalSessionManager::default()),
                        rmcp_config,
                    );
                    let router = axum::Router::new()
                        .nest_service("/mcp", service)
                        .layer(axum::Extension(caller));
                    let _ = tx.send(Ok(stat));
                    let _ = axum::serve(listener, router).await;
                }
            }
        });
    });
    let stat = rx.recv()??;
    Ok((format!("http://{addr}/mcp"), stat))
}

/// CPU use in cores, or `-` where it could not be read.
fn cores(c: Option<f64>) -> String {
    c.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"))
}

/// Mean requests/s of one server over the rounds.
fn best(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len().max(1) as f64
}

fn main() -> std::process::ExitCode {
    let result = args().and_then(|args| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // Every SDK child is killed before `run` returns.
        rt.block_on(run(args))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadbench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let issuer = TestIssuer::start_with_alg(args.alg).await?;
    let token_for = |audience: &str| {
        issuer
            .token()
            .subject(SUBJECT)
            .client_id(CLIENT_ID)
            .audience(audience)
            .expires_in(Duration::from_secs(3600))
            .sign()
    };

    let caller = AuthContext::builder(issuer.issuer(), SUBJECT)
        .client_id(CLIENT_ID)
        .build();
    let (plain, plain_stat) = spawn_server(
        std::net::TcpListener::bind("127.0.0.1:0")?,
        Server::Plain(caller),
    )?;
    // The protected server needs its URL (the audience) before it starts:
    // bind first, then configure.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let resource = format!("http://{}/mcp", listener.local_addr()?);
    let mut config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true);
    if !args.token_cache {
        config = config.verified_cache_max_entries(0);
    }
    let (protected, protected_stat) =
        spawn_server(listener, Server::Protected(Box::new(config.build()?)))?;

    // Both rmcp servers get the very same request, token included (the
    // plain one ignores it): the ratio then isolates what the layer costs,
    // not the cost of sending a kilobyte of header.
    let token = token_for(&resource);
    let mut targets = vec![
        Target {
            name: "rmcp".to_owned(),
            url: plain,
            token: Some(token.clone()),
            protocol: Protocol::Stateless2026,
            cpu_stat: plain_stat,
        },
        Target {
            name: "rmcp+auth".to_owned(),
            url: protected,
            token: Some(token),
            protocol: Protocol::Stateless2026,
            cpu_stat: protected_stat,
        },
    ];

    // Killed when dropped, on every way out of this function.
    let mut children = Vec::new();
    // The last CPU: the load client and the rmcp servers float on the others.
    let pin_cpu = std::thread::available_parallelism()
        .map(|n| n.get() - 1)
        .ok();
    for &sdk in &args.sdks {
        let server = SdkServer::start(sdk, issuer.issuer(), &issuer.jwks_uri(), pin_cpu).await?;
        targets.push(Target {
            name: sdk.name().to_owned(),
            url: server.url.clone(),
            token: Some(token_for(&server.url)),
            protocol: match sdk {
                Sdk::Python => args.python_protocol,
                Sdk::TypeScript => TYPESCRIPT_PROTOCOL,
            },
            cpu_stat: server.cpu_stat(),
        });
        children.push((sdk, server));
    }

    let warmup = args.warmup.unwrap_or(args.seconds);
    println!(
        "alg={} connections={} seconds/round={} rounds={} warm-up={}s verified-token cache={}",
        args.alg,
        args.connections,
        args.seconds,
        args.rounds,
        warmup,
        if args.token_cache { "on" } else { "off" }
    );
    println!("rmcp, rmcp+auth: one Tokio thread each in this process, protocol 2026-07-28");
    for (target, (sdk, server)) in targets[2..].iter().zip(&children) {
        println!(
            "{}: {}, protocol {}, {}",
            target.name,
            sdk.script(),
            target.protocol.version(),
            match server.pinned {
                Some(cpu) => format!("pinned to CPU {cpu}"),
                None => "not pinned (no taskset)".to_owned(),
            }
        );
    }

    // One checked request each, then warm up (connections, key sets, JIT).
    for target in &targets {
        target.probe().await?;
    }
    for target in &targets {
        drive(target, args.connections, warmup).await;
    }

    println!(
        "{:<12} {:>6} {:>10} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6}",
        "server", "round", "req/s", "p50 us", "p99 us", "errors", "server", "client", "other"
    );
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut errors = vec![0usize; targets.len()];
    for round in 1..=args.rounds {
        for (i, target) in targets.iter().enumerate() {
            let r = drive(target, args.connections, args.seconds).await;
            rps[i].push(r.requests_per_second());
            errors[i] += r.errors;
            println!(
                "{:<12} {:>6} {:>10.0} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6}",
                target.name,
                round,
                r.requests_per_second(),
                r.percentile_us(0.50),
                r.percentile_us(0.99),
                r.errors,
                cores(r.server_cores),
                cores(r.client_cores),
                cores(r.other_cores),
            );
        }
    }

    let (plain_mean, protected_mean) = (mean(&rps[0]), mean(&rps[1]));
    println!(
        "ratio (rmcp+auth / rmcp, mean of rounds): {:.3}",
        protected_mean / plain_mean
    );
    // Other load on a shared machine only ever slows a round down: the best
    // rounds are the least disturbed samples of each server.
    println!(
        "ratio (rmcp+auth / rmcp, best round of each): {:.3}",
        best(&rps[1]) / best(&rps[0])
    );
    if targets.len() > 2 {
        println!(
            "{:<12} {:>10} {:>7} {:>9} {:>14}",
            "mean", "req/s", "errors", "/ rmcp", "/ rmcp+auth"
        );
        for (i, target) in targets.iter().enumerate() {
            let m = mean(&rps[i]);
            println!(
                "{:<12} {:>10.0} {:>7} {:>9.3} {:>14.3}",
                target.name,
                m,
                errors[i],
                m / plain_mean,
                m / protected_mean
            );
        }
    }
    drop(children);
    // A benchmark whose requests failed measured something else: say so in
    // the exit status too (CI runs a short round as a smoke test).
    let failed: usize = errors.iter().sum();
    if failed > 0 {
        return Err(format!("{failed} requests failed").into());
    }
    Ok(())
}
