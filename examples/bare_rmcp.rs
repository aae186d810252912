//! rmcp alone, without mcp-oauth2: the baseline of `scripts/wrk-bench.sh`.
//! The notes server of the other examples on rmcp's streamable HTTP service
//! and `axum::serve`, in one process configured by flags.
//!
//! ```sh
//! cargo run --release --example bare_rmcp -- --bind 127.0.0.1:8081            # rmcp's defaults
//! cargo run --release --example bare_rmcp -- --bind 127.0.0.1:8081 --nodelay  # + TCP_NODELAY
//! cargo run --release --example bare_rmcp -- --bind 127.0.0.1:8081 --nodelay --json
//! ```
//!
//! Flags: `--bind ADDR` (`127.0.0.1:8081`), `--nodelay` (set `TCP_NODELAY` on
//! every accepted socket; rmcp and axum leave it off), `--json` (JSON
//! responses instead of SSE for stateless calls:
//! `StreamableHttpServerConfig::with_json_response(true)`). Everything else
//! is rmcp's default `StreamableHttpServerConfig` (stateless 2026-07-28 calls
//! and legacy sessions both served). There is no authentication: every
//! request gets the same fixed caller (subject `bench`) through an axum
//! `Extension`, so that `whoami` does the same work as behind the layer.
//! Prints `listening on ADDR` once bound; stops on Ctrl-C.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

#[path = "common/notes.rs"]
#[allow(dead_code)]
mod notes;

use std::sync::Arc;

use axum::serve::ListenerExt;
use mcp_oauth2::AuthContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut bind = "127.0.0.1:8081".to_owned();
    let mut nodelay = false;
    let mut json = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bind" => bind = it.next().ok_or("--bind needs a value")?,
            "--nodelay" => nodelay = true,
            "--json" => json = true,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let store = notes::NoteStore::default();
    let caller = AuthContext::builder("http://127.0.0.1/bench-issuer", "bench")
        .client_id("bench-client")
        .build();
    let mut config = StreamableHttpServerConfig::default();
    if json {
        config = config.with_json_response(true);
    }
    let service = StreamableHttpService::new(
        move || Ok(notes::NotesServer::new(store.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::Extension(caller));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(move |tcp| {
        if nodelay {
            let _ = tcp.set_nodelay(true);
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
