//! The one test-support module of the integration tests; each `tests/*.rs`
//! file declares `mod support;` and uses the rooms it needs:
//!
//! - [`fixture`]: a real issuer ([`TestIssuer`](mcp_oauth2::testing::TestIssuer)),
//!   a real protected rmcp server on 127.0.0.1:0 and a real rmcp client;
//! - [`rig`]: a protected axum app in front of a real issuer, for the
//!   hardening tests (hostile tokens, key-server faults, TLS, log hygiene);
//! - [`attack`]: a real `McpServer` protected by `tool_scopes`, an execution
//!   log as the oracle, attacker and victim tokens, and a raw HTTP/1.1 client;
//! - [`raw_http`]: a raw HTTP/1.1 client (duplicate headers, exact path bytes),
//!   used through [`attack`];
//! - [`notes`]: the reference notes server (`examples/common/notes.rs`)
//!   behind the real layer, with raw HTTP helpers;
//! - [`redis`]: a real `redis-server` on a free loopback port, stopped and
//!   started again at will (the shared store's tests);
//! - [`reference`]: the reference server binary as a child process,
//!   configured by environment variables;
//! - [`audit`]: the audit events, captured by a real `tracing` subscriber
//!   layer;
//! - [`loopback`]: a protected endpoint's address and configuration on
//!   127.0.0.1:0, shared by the fixtures above;
//! - [`slow_tools`]: an rmcp server whose tools take their time and count
//!   their running handlers (the oracle of the handler bounds).
//!
//! Every test binary compiles all of it and uses a part.
#![allow(dead_code, unreachable_pub)]

pub mod attack;
pub mod audit;
pub mod fixture;
pub mod loopback;
pub mod notes;
pub mod raw_http;
pub mod realms;
pub mod redis;
pub mod reference;
pub mod rig;
pub mod slow_tools;
