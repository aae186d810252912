//! State handles and multi-round-trip `requestState` on the wire: a real
//! `McpServer` behind `TestIssuer`, real rmcp clients for two principals.
//! MCP security best practices (2025-11-25 and 2026-07-28): handles and
//! request state MUST be integrity-protected and MUST be refused for another
//! principal; possession of one is never authentication. Every refusal path
//! of the format is a unit test in `src/handle/tests.rs`.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use fixture::{Client, Harness, bounded, call_with, stateless_client};

/// Calls `tool`, returning the text, or the JSON-RPC error message.
async fn call(client: &Client, tool: &'static str, value: Option<&str>) -> Result<String, String> {
    bounded(call_with(client, tool, value))
        .await
        .map_err(|e| match e {
            rmcp::ServiceError::McpError(e) => e.message.to_string(),
            other => other.to_string(),
        })
}

const REFUSED: &str = "the handle is not valid for this caller";

// Handles open only for the principal they were minted for, unaltered.
#[tokio::test]
async fn handles_are_bound_to_the_caller() {
    let h = Harness::start(|b| b).await;
    let alice = bounded(stateless_client(&h.resource, &h.token("alice")))
        .await
        .unwrap();
    let bob = bounded(stateless_client(&h.resource, &h.token("bob")))
        .await
        .unwrap();
    let handle = call(&alice, "mint", Some("cart-1")).await.unwrap();
    // Encrypted by default: the payload is not in the handle.
    assert!(
        handle.starts_with("h2e.") && !handle.contains("cart"),
        "{handle}"
    );
    assert_eq!(call(&alice, "open", Some(&handle)).await.unwrap(), "cart-1");
    assert_eq!(call(&bob, "open", Some(&handle)).await, Err(REFUSED.into()));
    let mut tampered = handle.clone();
    tampered.pop();
    tampered.push(if handle.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        call(&alice, "open", Some(&tampered)).await,
        Err(REFUSED.into())
    );
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

// Request state opens only for its principal and its originating request
// (method and tool name), and never as a handle, nor a handle as state.
#[tokio::test]
async fn request_state_is_bound_to_the_caller_and_the_request() {
    let h = Harness::start(|b| b).await;
    let alice = bounded(stateless_client(&h.resource, &h.token("alice")))
        .await
        .unwrap();
    let bob = bounded(stateless_client(&h.resource, &h.token("bob")))
        .await
        .unwrap();
    // Round one: the tool answers with its state; round two: it gets it back.
    let state = call(&alice, "export_notes", None).await.unwrap();
    assert!(state.starts_with("r2e."), "{state}");
    assert_eq!(
        call(&alice, "export_notes", Some(&state)).await.unwrap(),
        "page=2"
    );
    // Another principal, another tool, the handle opener: refused.
    assert_eq!(
        call(&bob, "export_notes", Some(&state)).await,
        Err(REFUSED.into())
    );
    assert_eq!(
        call(&alice, "import_notes", Some(&state)).await,
        Err(REFUSED.into())
    );
    assert_eq!(
        call(&alice, "open", Some(&state)).await,
        Err(REFUSED.into())
    );
    // A handle presented as request state: refused.
    let handle = call(&alice, "mint", Some("page=2")).await.unwrap();
    assert_eq!(
        call(&alice, "export_notes", Some(&handle)).await,
        Err(REFUSED.into())
    );
    // Bob's own state is refused to Alice.
    let bobs = call(&bob, "export_notes", None).await.unwrap();
    assert_eq!(
        call(&alice, "export_notes", Some(&bobs)).await,
        Err(REFUSED.into())
    );
    assert_eq!(
        call(&bob, "export_notes", Some(&bobs)).await.unwrap(),
        "page=2"
    );
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}
