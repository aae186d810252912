//! # mcp-oauth2
//!
//! OAuth 2.1 resource-server protection for MCP servers built on
//! [`rmcp`]: one builder call turns an rmcp streamable HTTP server into a
//! server that MCP clients can discover (RFC 9728 metadata), that answers
//! with exact RFC 6750 challenges, that accepts only tokens issued for it
//! (RFC 8707 audience binding, RFC 9068 JWT access tokens verified with the
//! issuer's JWKS), and whose tools know who is calling ([`AuthContext`]).
//!
//! ```no_run
//! use mcp_oauth2::{AuthConfig, McpServer, RequestContextExt};
//! use rmcp::{ServerHandler, handler::server::router::tool::ToolRouter, tool, tool_handler, tool_router};
//! use rmcp::service::{RequestContext, RoleServer};
//!
//! #[derive(Clone)]
//! struct Hello { tool_router: ToolRouter<Self> }
//!
//! #[tool_router]
//! impl Hello {
//!     #[tool(description = "Greets the caller")]
//!     async fn hello(&self, ctx: RequestContext<RoleServer>) -> Result<String, rmcp::ErrorData> {
//!         Ok(format!("hello, {}", ctx.auth()?.subject()))
//!     }
//! }
//!
//! #[tool_handler(router = self.tool_router)]
//! impl ServerHandler for Hello {}
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = AuthConfig::builder()
//!     .issuer("https://auth.example.com")
//!     .resource("https://mcp.example.com/mcp")
//!     .build()?;
//! McpServer::builder()
//!     .auth(config)
//!     .service(|| Ok(Hello { tool_router: Hello::tool_router() }))
//!     .bind("0.0.0.0:8080")
//!     .build()?
//!     .serve()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! ## The public API
//!
//! Everything a server needs is at the crate root, each item reachable by one
//! path only:
//!
//! | Purpose | Items |
//! |---|---|
//! | Configure | [`AuthConfig`], [`AuthConfigBuilder`], [`Algorithm`], [`AudienceRule`], [`TypPolicy`], [`ExemptRoute`], [`JwksPolicy`], [`TokenCachePolicy`], [`DpopPolicy`], [`DpopMode`], [`IssuerConfig`], [`TenantIssuer`], [`IssuerPolicy`] |
//! | Serve | [`McpServer`], [`McpServerBuilder`], [`Readiness`] |
//! | Protect your own router | [`AuthLayer`], [`AuthService`], [`ResponseFuture`], [`ProtectedResourceMetadata`] |
//! | Know the caller in tools | [`AuthContext`], [`AuthContextBuilder`], [`RequestContextExt`], [`MissingAuthContext`], [`ScopeHierarchy`] |
//! | Scopes computed per call | [`OperationRequest`], [`Refusal`], [`ScopeFn`] |
//! | Verify tokens | [`JwtVerifier`], [`TokenVerifier`], [`VerifyFuture`], [`BearerToken`] |
//! | Errors | [`ConfigError`], [`AuthError`], [`AuthErrorKind`], [`ErrorCode`], [`Error`] |
//! | Call other APIs as the caller (RFC 8693, no passthrough) | [`TokenExchanger`], [`ExchangeSettings`], [`ExchangeGrant`], [`ExchangeRequest`], [`ExchangedToken`], [`ExchangeError`], [`ExchangeErrorKind`], [`DownstreamClient`], [`ExchangeStore`], [`SealedExchangeStore`], [`StoredToken`] |
//! | State handles and request state | [`HandleKeys`], [`HandleKey`], [`Sealing`], [`HandleError`] |
//! | Observe | [`Metrics`], [`MetricsSnapshot`], [`LatencyHistogram`], [`RequestId`] (correlation; audit events on the `tracing` target `mcp_oauth2::audit`) |
//!
//! Four modules hold what only some servers need:
//!
//! - [`verify`]: composing verifiers ([`verify::ChainVerifier`],
//!   [`verify::from_fn`]) and opaque tokens through introspection
//!   ([`verify::IntrospectionVerifier`], [`verify::IntrospectionSettings`]);
//! - [`store`]: the [`store::SharedStore`] that holds state shared by
//!   replicas (legacy session owners, DPoP replays, introspection results,
//!   throttle counters), with the in-memory default ([`store::MemoryStore`])
//!   and, with the `redis` feature, `store::RedisStore`;
//! - [`presets`]: configurations for common identity providers (Keycloak,
//!   Auth0, Entra ID, Okta, Cognito);
//! - `testing` (feature `testing`): an in-process issuer and challenge
//!   helpers for tests.
//!
//! ## Crate features
//! Signatures are checked with aws-lc-rs, always; there is no other backend.
//! - `metrics`: counters exported through the `metrics` crate facade.
//! - `aws_lc_rs`: no-op, kept for compatibility.
//! - `testing`: [`testing::TestIssuer`], an in-process issuer for tests and
//!   local development. Never use it in production.
//! - `redis`: `store::RedisStore`, state shared by replicas on Redis
//!   (`MCP_OAUTH2_REDIS_URL`).

mod audit;
mod bearer;
mod breaker;
mod challenge;
mod clock;
mod config;
mod context;
mod correlation;
mod dpop;
mod error;
mod exchange;
mod fetch;
mod filter;
#[cfg(test)]
mod fixture_tests;
mod handle;
mod json;
mod jwks;
mod layer;
mod metadata;
mod metrics;
#[cfg(test)]
mod module_graph;
mod operation;
mod policy;
pub mod presets;
mod requirement;
mod scope;
mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;
pub mod verify;
mod weighed;

pub use bearer::BearerToken;
pub use config::{
    Algorithm, AudienceRule, AuthConfig, AuthConfigBuilder, DpopMode, DpopPolicy, ExemptRoute,
    ForwardedHeader, IssuerConfig, IssuerPolicy, JwksPolicy, SERVER_ENV_VARIABLES, TenantIssuer,
    TokenCachePolicy, TypPolicy,
};
pub use context::{AuthContext, AuthContextBuilder, MissingAuthContext, RequestContextExt};
pub use correlation::RequestId;
pub use error::{AuthError, AuthErrorKind, ConfigError, Error, ErrorCode};
pub use exchange::{
    DownstreamClient, ExchangeError, ExchangeErrorKind, ExchangeGrant, ExchangeRequest,
    ExchangeSettings, ExchangeStore, ExchangedToken, SealedExchangeStore, StoredToken,
    TokenExchanger,
};
pub use handle::{HandleError, HandleKey, HandleKeys, Sealing};
pub use layer::{AuthLayer, AuthService, Metrics, ResponseFuture};
pub use metadata::ProtectedResourceMetadata;
pub use metrics::{LatencyHistogram, MetricsSnapshot};
pub use requirement::{OperationRequest, Refusal, ScopeFn};
pub use scope::ScopeHierarchy;
pub use server::{
    BodyGuard, BodyGuardFuture, BodyGuardLayer, McpServer, McpServerBuilder, Readiness,
};
pub use verify::jwt::JwtVerifier;
pub use verify::token::TokenVerifier;
pub use verify::token::VerifyFuture;
