//! An in-process OAuth 2.0 authorization server for tests and local development.
//!
//! # ⚠️ Not for production
//!
//! [`TestIssuer`] exists so that the tests of this crate, and the tests of
//! applications built on it, can exercise token verification end to end
//! without a real identity provider. It deliberately breaks every rule a real
//! authorization server must follow:
//!
//! - it serves plain HTTP on loopback (`127.0.0.1`), or HTTPS with a rustls
//!   configuration the test supplies ([`TestIssuerBuilder::tls`]);
//! - it signs whatever claims and headers the caller asks for, including
//!   expired, not-yet-valid, wrongly addressed or malformed tokens;
//! - it authenticates nobody: anyone holding the [`TestIssuer`] can mint
//!   tokens, any client can register, and every authorization request is
//!   approved at once, without asking a user;
//! - its keys live only in memory and are generated at start-up.
//!
//! It is compiled only with the crate feature `testing`. Do not enable that
//! feature in a production build.
//!
//! # Testing a protected tool
//!
//! Start an issuer and your server on loopback, mint a token for the server,
//! call the tool with rmcp's client (this is `tests/user_example.rs`):
//!
//! ```
//! use mcp_oauth2::testing::TestIssuer;
//! use mcp_oauth2::{AuthConfig, AuthContext, McpServer};
//! use rmcp::handler::server::router::tool::ToolRouter;
//! use rmcp::model::CallToolRequestParams;
//! use rmcp::transport::StreamableHttpClientTransport;
//! use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
//! use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
//!
//! #[derive(Clone)]
//! struct Hello {
//!     tool_router: ToolRouter<Self>,
//! }
//!
//! #[tool_router]
//! impl Hello {
//!     #[tool(description = "Greets the caller")]
//!     async fn hello(&self, auth: AuthContext) -> String {
//!         format!("hello, {}", auth.subject())
//!     }
//! }
//!
//! #[tool_handler(router = self.tool_router)]
//! impl ServerHandler for Hello {}
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 1. An issuer and the protected server, both on loopback.
//! let issuer = TestIssuer::start().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let resource = format!("http://{}/mcp", listener.local_addr()?);
//! let config = AuthConfig::builder()
//!     .issuer(issuer.issuer())
//!     .resource(&resource)
//!     .allow_insecure_http_for_loopback(true)
//!     .build()?;
//! let server = McpServer::builder()
//!     .auth(config)
//!     .service(|| Ok(Hello { tool_router: Hello::tool_router() }))
//!     .build()?;
//! tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
//!
//! // 2. A token for alice, bound to this server, and a client sending it.
//! let token = issuer.token().subject("alice").audience(&resource).sign();
//! let transport = StreamableHttpClientTransport::from_config(
//!     StreamableHttpClientTransportConfig::with_uri(resource).auth_header(token),
//! );
//! let client = ().serve(transport).await?;
//!
//! // 3. The tool knows who called.
//! let result = client.call_tool(CallToolRequestParams::new("hello")).await?;
//! let text = result.content[0].as_text().map(|t| t.text.as_str());
//! assert_eq!(text, Some("hello, alice"));
//! # Ok(())
//! # }
//! ```
//!
//! To run a real OAuth client instead of minting the token, see
//! [below](#a-real-oauth-client-end-to-end).
//!
//! # What it serves
//!
//! | Route | Content |
//! |-------|---------|
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
//! | `GET /.well-known/openid-configuration` | the same document |
//! | `GET /jwks` | the public keys (RFC 7517 JWK Set) |
//! | `GET /authorize` | the auto-approving authorization endpoint |
//! | `POST /token` | the token endpoint |
//! | `POST /register` | open dynamic client registration (RFC 7591) |
//!
//! Every request is counted, per endpoint ([`TestIssuer::jwks_hits`],
//! [`TestIssuer::authorize_hits`], ...). Any other path answers 404 and is
//! counted too ([`TestIssuer::other_hits`]), so a test can prove that a
//! verifier never fetched an attacker's URL.
//!
//! # A real OAuth client, end to end
//!
//! The issuer is also a small OAuth 2.1 authorization server, so that a real
//! client (rmcp's `auth` feature, an SDK in another language, the MCP
//! Inspector) can run the whole MCP authorization flow in a test: discovery
//! from the resource server's 401, registration, authorization, token,
//! call.
//!
//! - **Authorization** (`GET /authorize`): the authorization code flow with
//!   `response_type=code` and PKCE, `code_challenge_method=S256` only
//!   (`plain` and a missing challenge are refused, RFC 7636 section 4.4.1),
//!   `client_id`, `redirect_uri` (`https`, or `http` on a loopback host),
//!   optional `scope`, `state` and one or more RFC 8707 `resource`s. A
//!   well-formed request is approved at once: the answer is a `302` to
//!   `redirect_uri?code=...&iss=...&state=...` (RFC 9207 `iss`). The user is
//!   [`TestIssuer::set_next_subject`] (default `"test-user"`). Errors are
//!   redirected as in RFC 6749 section 4.1.2.1, except a bad `client_id` or
//!   `redirect_uri`, answered `400` directly.
//! - **Token** (`POST /token`): `authorization_code` (the `code_verifier` is
//!   checked against the challenge, codes are single-use and live 60
//!   seconds ([`TestIssuerBuilder::code_lifetime`]), `client_id` and `redirect_uri` must repeat the authorization
//!   request's, a `resource` must be one authorized), `client_credentials`
//!   (clients with a secret, `client_secret_basic` or `client_secret_post`;
//!   `sub` is the client) and `refresh_token` (rotated at each use). The
//!   access token is a JWT signed with the current key: `typ` `at+jwt`,
//!   `sub`, `client_id`, `scope` as requested, and `aud` the requested
//!   `resource` (RFC 8707). **No `resource`, no `aud`**, so a resource server
//!   bound to its audience refuses the token, as it should. Answers and
//!   errors follow RFC 6749 sections 5.1 and 5.2.
//! - **Token exchange** (`POST /token`): RFC 8693
//!   (`urn:ietf:params:oauth:grant-type:token-exchange` with a
//!   `subject_token` of type `access_token` or `jwt`, `audience`,
//!   `resource`, `scope`) and the Entra ID on-behalf-of form of the JWT
//!   bearer grant (`assertion`, `requested_token_use=on_behalf_of`, scopes
//!   `<resource>/<name>`), for confidential clients. The subject token must
//!   be one of this issuer's (signature, `iss`, `exp`), else `invalid_grant`;
//!   with `may_act`, only the client it names may exchange it. The new token
//!   keeps the subject's `sub`, has the requested audience as `aud` and
//!   `act: {"sub": <client_id>}` (nesting an earlier `act`). Refusals on
//!   demand: [`TestIssuer::refuse_exchange_audience`] (`invalid_target`),
//!   [`TestIssuer::refuse_all_exchanges`] (`invalid_grant`),
//!   [`TestIssuer::require_consent_for_exchange`] (`consent_required`, or
//!   Entra-style `invalid_grant` with a `suberror`); every exchange
//!   is counted ([`TestIssuer::exchange_hits`]).
//! - **Registration** (`POST /register`): open, per RFC 7591; a client
//!   registered with `token_endpoint_auth_method` other than `none` gets a
//!   `client_secret`. Tests can register clients themselves with
//!   [`TestIssuer::register_client`]. An unregistered `client_id` is treated
//!   as a public client with no registered redirect URI.
//!
//! All of it is advertised in the metadata (`authorization_endpoint`,
//! `token_endpoint`, `registration_endpoint`, `grant_types_supported`,
//! `code_challenge_methods_supported`, ...).
//!
//! In a test, the test itself plays the browser: it opens the authorization
//! URL the client built without following redirects, and hands the
//! `Location` it gets back to the client as the callback. With rmcp
//! (feature `auth`): connect without a token and take
//! `ClientInitializeError::auth_challenge`, then `OAuthState::new`,
//! `start_authorization` with `AuthorizationRequest::with_challenge`,
//! `get_authorization_url`, the browser step, `handle_callback_url`, and
//! connect again through an `AuthClient`. The crate's
//! `tests/testing_kit/main.rs` does exactly that, and the same flow step by step
//! over plain HTTP.
//!
//! # Faults
//!
//! The key endpoint can be made to misbehave with
//! [`TestIssuer::set_jwks_fault`] (down, hanging, a huge or malformed body,
//! the wrong media type, a redirect, an empty set), to send a
//! `Cache-Control` header ([`TestIssuer::set_jwks_cache_control`]), or to
//! publish a document of the test's choosing
//! ([`TestIssuer::set_jwks_document`]). Every request is counted, whatever
//! the answer, so tests assert how often a verifier fetched, not how long
//! it took.
//!
//! # Minting tokens
//!
//! Tokens are minted in process with [`TestIssuer::token`]: they are JWT
//! access tokens in the shape of RFC 9068 (`typ` `at+jwt`), signed with
//! aws-lc-rs directly, so the issuer does not depend on any process-wide JOSE
//! crypto provider.
//!
//! ```
//! use mcp_oauth2::testing::{SigningAlg, TestIssuer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let issuer = TestIssuer::start_with_alg(SigningAlg::Es256).await?;
//! let token = issuer
//!     .token()
//!     .audience("http://127.0.0.1:8080/mcp")
//!     .scopes(["files:read"])
//!     .sign();
//! assert_eq!(token.split('.').count(), 3);
//! assert!(issuer.jwks_uri().starts_with("http://127.0.0.1:"));
//! issuer.shutdown();
//! # Ok(())
//! # }
//! ```

mod authorize;
mod clients;
mod dpop;
mod exchange;
mod issuer;
mod jwks_endpoint;
mod keys;
mod oauth_error;
mod params;
mod plumbing;
mod tls;
mod token_builder;
mod token_endpoint;

pub use clients::ClientRegistration;
pub use dpop::{DpopClient, ProofBuilder};
pub use issuer::{TestIssuer, TestIssuerBuilder};
pub use jwks_endpoint::JwksFault;
pub use keys::SigningAlg;
pub use token_builder::TokenBuilder;

/// Builds a `WWW-Authenticate: Bearer` challenge exactly as the layer does,
/// for expected values in tests (and to benchmark the format).
///
/// Parameter order follows the MCP specification's examples: without an
/// error `resource_metadata`, `scope`; with one `error`, `scope`,
/// `resource_metadata`, `error_description`. `scope` is omitted when empty.
/// Values are quoted strings, with `"` and `\` escaped; characters other
/// than visible ASCII, space and tab are dropped.
pub fn bearer_challenge(
    error: Option<crate::ErrorCode>,
    scope: &str,
    resource_metadata: &str,
    error_description: Option<&str>,
) -> String {
    crate::challenge::bearer_challenge(error, scope, resource_metadata, error_description)
}

/// Parses a `WWW-Authenticate: Bearer` challenge into its parameters, in
/// order (RFC 9110 section 11.6.1 auth-params with quoted-string or token
/// values), to assert on the challenges a server sends. Returns `None` for
/// another scheme or malformed syntax.
///
/// ```
/// use mcp_oauth2::testing::parse_bearer_challenge;
///
/// let params = parse_bearer_challenge(
///     r#"Bearer error="invalid_token", resource_metadata="https://h/.well-known/oauth-protected-resource""#,
/// )
/// .unwrap();
/// assert_eq!(params[0], ("error".to_owned(), "invalid_token".to_owned()));
/// ```
pub fn parse_bearer_challenge(value: &str) -> Option<Vec<(String, String)>> {
    crate::challenge::parse_bearer_challenge(value)
}

/// Parses a `DPoP` challenge (RFC 9449 section 7.1) into its parameters, in
/// order, as [`parse_bearer_challenge`] does for `Bearer`. `None` for another
/// scheme or malformed syntax.
///
/// ```
/// use mcp_oauth2::testing::parse_dpop_challenge;
///
/// let params = parse_dpop_challenge(r#"DPoP error="invalid_dpop_proof", algs="ES256 EdDSA""#).unwrap();
/// assert_eq!(params[1], ("algs".to_owned(), "ES256 EdDSA".to_owned()));
/// ```
pub fn parse_dpop_challenge(value: &str) -> Option<Vec<(String, String)>> {
    crate::challenge::parse_challenge("DPoP", value)
}

/// Whether the `resource_scopes` pattern `pattern` covers the resource URI
/// `uri`, decided exactly as the layer decides it: to test the patterns a
/// server declares (and to fuzz the matcher, `fuzz/fuzz_targets/uri_pattern.rs`).
///
/// ```
/// use mcp_oauth2::testing::resource_pattern_matches;
///
/// assert!(resource_pattern_matches("notes://private/{id}", "notes://private/7"));
/// assert!(!resource_pattern_matches("notes://private/{id}", "notes://private/7/x"));
/// assert!(resource_pattern_matches("notes://*", "notes://shared/1"));
/// // RFC 3986 equivalent spellings are covered too.
/// assert!(resource_pattern_matches("notes://private/{id}", "NOTES://private/x/../7"));
/// ```
pub fn resource_pattern_matches(pattern: &str, uri: &str) -> bool {
    crate::scope::UriPattern::new(pattern).matches(uri)
}

#[cfg(test)]
mod tests;
