//! The control for `examples/protected_server`'s allocator: the server of
//! `examples/bare_rmcp` (rmcp alone, the same flags), with mimalloc as its
//! global allocator as the reference server has. `scripts/wrk-bench.sh`
//! runs it as `rmcp-json-mimalloc` (`--nodelay --json`), so the ratio of
//! the reference server to it is the layer's own cost with the allocator
//! taken out; the ratio to `bare_rmcp` is what a user of the reference
//! server gets against a plain rmcp server built with the system allocator.
//!
//! ```sh
//! cargo run --release --example bare_rmcp_mimalloc -- --bind 127.0.0.1:8082 --nodelay --json
//! ```
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

#[path = "common/notes.rs"]
#[allow(dead_code)]
mod notes;

#[path = "common/bare.rs"]
mod bare;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), bare::BoxError> {
    bare::run().await
}
