//! rmcp alone, without mcp-oauth2: the server of `examples/bare_rmcp` and
//! `examples/bare_rmcp_mimalloc` (the same server; the second with the
//! allocator `examples/protected_server` uses, as the control for it).
//! Flags and behaviour are described in `examples/bare_rmcp.rs`.

use std::sync::Arc;

use axum::serve::ListenerExt;
use mcp_oauth2::AuthContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::notes;

/// What `run` fails with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Parses the flags and serves until Ctrl-C.
pub(crate) async fn run() -> Result<(), BoxError> {
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
