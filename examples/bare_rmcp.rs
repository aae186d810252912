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

#[path = "common/bare.rs"]
mod bare;

#[tokio::main]
async fn main() -> Result<(), bare::BoxError> {
    bare::run().await
}
