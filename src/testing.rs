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
//! `tests/testing_kit.rs` does exactly that, and the same flow step by step
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

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Path of the RFC 8414 metadata document.
const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// Path of the OpenID Connect discovery document (same content here).
const OPENID_METADATA_PATH: &str = "/.well-known/openid-configuration";
/// Path of the JWK Set.
const JWKS_PATH: &str = "/jwks";
/// Path of the authorization endpoint.
const AUTHORIZE_PATH: &str = "/authorize";
/// Path of the token endpoint.
const TOKEN_PATH: &str = "/token";
/// Path of the dynamic client registration endpoint.
const REGISTER_PATH: &str = "/register";
/// Default lifetime of an authorization code (OAuth 2.1 section 4.1.2
/// recommends a short one).
const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(60);

/// Default `sub` claim of minted tokens.
const DEFAULT_SUBJECT: &str = "test-user";
/// Default `client_id` claim of minted tokens.
const DEFAULT_CLIENT_ID: &str = "test-client";
/// Default lifetime of minted tokens (`exp - iat`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Default `typ` header of minted tokens (RFC 9068 section 2.1).
const ACCESS_TOKEN_TYP: &str = "at+jwt";

mod authorize;
mod clients;
mod oauth_error;
mod params;
mod tls;
mod token;

pub use clients::ClientRegistration;

/// How the key endpoint (`GET /jwks`) misbehaves; see
/// [`TestIssuer::set_jwks_fault`]. Every request is counted in
/// [`TestIssuer::jwks_hits`] whatever the fault.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JwksFault {
    /// Serve the key set normally (the default).
    #[default]
    None,
    /// `503 Service Unavailable` with a JSON error body.
    Unavailable,
    /// Accept the request and do not answer until the fault is changed
    /// (then answer per the new fault) or the issuer stops.
    Hang,
    /// `200 application/json`: the real key set followed by whitespace, this
    /// many bytes in all, streamed in chunks. With `declare_length` the
    /// response has a `Content-Length`; without, it is chunked, so only a
    /// cap enforced while reading stops it.
    HugeBody {
        /// Total body size in bytes.
        bytes: usize,
        /// Whether to send `Content-Length`.
        declare_length: bool,
    },
    /// `200 application/json` with a truncated JSON document.
    Malformed,
    /// `200 text/html` with the real key set as the body.
    WrongContentType,
    /// `302 Found` to this URL.
    Redirect(String),
    /// `200 application/json` with `{"keys": []}`.
    EmptyKeySet,
}

/// The signature algorithm of a [`TestIssuer`] key.
///
/// The default is [`SigningAlg::Rs256`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit RSA key (RFC 7518 section 3.3).
    #[default]
    Rs256,
    /// ECDSA with P-256 and SHA-256 (RFC 7518 section 3.4).
    Es256,
    /// EdDSA with Ed25519 (RFC 8037 section 3.1).
    EdDsa,
}

impl SigningAlg {
    /// The JOSE `alg` name: `"RS256"`, `"ES256"` or `"EdDSA"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Private key material; never printed.
enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One signing key with its identifier and its public JWK.
struct SigningKey {
    kid: String,
    alg: SigningAlg,
    material: KeyMaterial,
    /// The public half as a JWK (RFC 7517 section 4, RFC 7518 section 6).
    public_jwk: Value,
}

impl SigningKey {
    /// Generates a fresh key for `alg`.
    fn generate(alg: SigningAlg, kid: String) -> io::Result<Self> {
        let (material, mut jwk) = match alg {
            SigningAlg::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| crypto_error("RSA key generation failed"))?;
                let public = pair.public_key();
                // RFC 7518 section 6.3.1: n and e are unsigned big-endian
                // integers without leading zero octets.
                let n = b64(public.modulus().big_endian_without_leading_zero());
                let e = b64(public.exponent().big_endian_without_leading_zero());
                let jwk = json!({ "kty": "RSA", "n": n, "e": e });
                (KeyMaterial::Rsa(pair), jwk)
            }
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| crypto_error("P-256 key generation failed"))?;
                // SEC 1 uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let (x, y) = match point {
                    [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => return Err(crypto_error("unexpected P-256 public key encoding")),
                };
                let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) });
                (KeyMaterial::Ec(pair), jwk)
            }
            SigningAlg::EdDsa => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| crypto_error("Ed25519 key generation failed"))?;
                let x = b64(pair.public_key().as_ref());
                let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": x });
                (KeyMaterial::Ed(pair), jwk)
            }
        };
        if let Value::Object(members) = &mut jwk {
            members.insert("use".to_owned(), Value::from("sig"));
            members.insert("alg".to_owned(), Value::from(alg.as_str()));
            members.insert("kid".to_owned(), Value::from(kid.as_str()));
        }
        Ok(SigningKey {
            kid,
            alg,
            material,
            public_jwk: jwk,
        })
    }

    /// Signs `message` and returns the signature in its JWS encoding.
    fn sign(&self, message: &[u8]) -> io::Result<Vec<u8>> {
        match &self.material {
            KeyMaterial::Rsa(pair) => {
                let mut signature = vec![0_u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| crypto_error("RSA signing failed"))?;
                Ok(signature)
            }
            KeyMaterial::Ec(pair) => {
                // The FIXED signing algorithm yields r || s, the JWS format
                // (RFC 7518 section 3.4), not ASN.1 DER.
                let signature = pair
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| crypto_error("ECDSA signing failed"))?;
                Ok(signature.as_ref().to_vec())
            }
            KeyMaterial::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// The published keys; the last one is the current signing key.
struct KeyRing {
    /// Never empty: `start` installs one key and `retire_old_keys` keeps the last.
    keys: Vec<Arc<SigningKey>>,
    /// Number of keys ever generated, used to build unique `kid`s.
    generated: u64,
}

impl KeyRing {
    fn current(&self) -> io::Result<Arc<SigningKey>> {
        self.keys
            .last()
            .cloned()
            .ok_or_else(|| crypto_error("the test issuer has no signing key"))
    }

    fn next_kid(&mut self) -> String {
        self.generated += 1;
        format!("key-{}", self.generated)
    }
}

/// State shared between the [`TestIssuer`] handle and its HTTP handlers.
struct Shared {
    issuer: String,
    addr: SocketAddr,
    keys: Mutex<KeyRing>,
    jwks_hits: AtomicUsize,
    metadata_hits: AtomicUsize,
    other_hits: AtomicUsize,
    authorize_hits: AtomicUsize,
    token_hits: AtomicUsize,
    registration_hits: AtomicUsize,
    /// Subject of the authorizations approved from now on.
    subject: Mutex<String>,
    clients: Mutex<clients::Registry>,
    codes: Mutex<authorize::Codes>,
    refresh_tokens: Mutex<token::RefreshTokens>,
    code_lifetime: Duration,
    access_token_lifetime: Duration,
    fault: watch::Sender<JwksFault>,
    cache_control: Mutex<Option<String>>,
    jwks_override: Mutex<Option<Value>>,
    /// Flips to `true` when the issuer stops (ends hanging requests).
    stopped: watch::Receiver<bool>,
}

/// Locks `m`, recovering from poisoning: no code path panics while holding
/// these locks, so the data is always consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn keys(&self) -> MutexGuard<'_, KeyRing> {
        lock(&self.keys)
    }

    fn current_key(&self) -> io::Result<Arc<SigningKey>> {
        self.keys().current()
    }

    fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.issuer)
    }

    /// RFC 8414 section 2 metadata: only what this server really serves.
    fn metadata_document(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri(),
            "authorization_endpoint": format!("{}{AUTHORIZE_PATH}", self.issuer),
            "token_endpoint": format!("{}{TOKEN_PATH}", self.issuer),
            "registration_endpoint": format!("{}{REGISTER_PATH}", self.issuer),
            // REQUIRED by RFC 8414 section 2.
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": clients::GRANT_TYPES,
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": clients::AUTH_METHODS,
            // RFC 9207 section 3: `iss` is sent with every authorization response.
            "authorization_response_iss_parameter_supported": true,
            "scopes_supported": [],
        })
    }

    /// RFC 7517 section 5 JWK Set, newest key first (or the override).
    fn jwks_document(&self) -> Value {
        if let Some(doc) = lock(&self.jwks_override).clone() {
            return doc;
        }
        let keys: Vec<Value> = self
            .keys()
            .keys
            .iter()
            .rev()
            .map(|key| key.public_jwk.clone())
            .collect();
        json!({ "keys": keys })
    }
}

/// An in-process OAuth 2.0 authorization server on loopback, for tests.
///
/// **Not for production** (see the [module documentation](self)): it serves
/// plain HTTP and signs anything it is asked to.
///
/// The server runs on the Tokio runtime that called [`TestIssuer::start`] and
/// stops when the handle is dropped or [`TestIssuer::shutdown`] is called.
/// Its `Debug` output shows the issuer URL only, never key material.
pub struct TestIssuer {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl TestIssuer {
    /// Starts an issuer on `127.0.0.1` with an ephemeral port and one RS256 key.
    ///
    /// Must be called from within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// Fails if the loopback socket cannot be bound or the key cannot be
    /// generated.
    pub async fn start() -> io::Result<TestIssuer> {
        TestIssuer::start_with_alg(SigningAlg::Rs256).await
    }

    /// Starts an issuer whose initial key uses `alg`.
    ///
    /// Must be called from within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// Fails if the loopback socket cannot be bound or the key cannot be
    /// generated.
    pub async fn start_with_alg(alg: SigningAlg) -> io::Result<TestIssuer> {
        TestIssuer::builder().alg(alg).start().await
    }

    /// A builder for an issuer with more options (HTTPS and a host name, the
    /// subject of approved authorizations, code and token lifetimes).
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder::default()
    }

    async fn start_from(builder: TestIssuerBuilder) -> io::Result<TestIssuer> {
        let TestIssuerBuilder {
            alg,
            tls,
            subject,
            code_lifetime,
            access_token_lifetime,
        } = builder;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let issuer = match &tls {
            None => format!("http://{addr}"),
            Some((_, host)) => format!("https://{host}:{}", addr.port()),
        };

        let mut ring = KeyRing {
            keys: Vec::new(),
            generated: 0,
        };
        let kid = ring.next_kid();
        ring.keys.push(Arc::new(SigningKey::generate(alg, kid)?));

        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            issuer,
            addr,
            keys: Mutex::new(ring),
            jwks_hits: AtomicUsize::new(0),
            metadata_hits: AtomicUsize::new(0),
            other_hits: AtomicUsize::new(0),
            authorize_hits: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
            registration_hits: AtomicUsize::new(0),
            subject: Mutex::new(subject),
            clients: Mutex::new(clients::Registry::default()),
            codes: Mutex::new(authorize::Codes::default()),
            refresh_tokens: Mutex::new(token::RefreshTokens::default()),
            code_lifetime,
            access_token_lifetime,
            fault: watch::Sender::new(JwksFault::None),
            cache_control: Mutex::new(None),
            jwks_override: Mutex::new(None),
            stopped: stopped.clone(),
        });

        let app = Router::new()
            .route(OAUTH_METADATA_PATH, get(serve_metadata))
            .route(OPENID_METADATA_PATH, get(serve_metadata))
            .route(JWKS_PATH, get(serve_jwks))
            .route(AUTHORIZE_PATH, any(authorize::serve_authorize))
            .route(TOKEN_PATH, any(token::serve_token))
            .route(REGISTER_PATH, any(clients::serve_register))
            .fallback(serve_other)
            .with_state(Arc::clone(&shared));

        let mut stopped = stopped;
        let signal = async move {
            // Resolves on `true` or when the sender is gone: either way, stop.
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let task = match tls {
            None => tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, app)
                    .with_graceful_shutdown(signal)
                    .await
                {
                    tracing::warn!(%error, "test issuer stopped with an error");
                }
            }),
            Some((config, _)) => {
                let listener = tls::TlsListener::new(listener, config);
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(listener, app)
                        .with_graceful_shutdown(signal)
                        .await
                    {
                        tracing::warn!(%error, "test issuer stopped with an error");
                    }
                })
            }
        };

        tracing::debug!(issuer = %shared.issuer, %alg, "test issuer started");
        Ok(TestIssuer {
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The socket address the issuer listens on (`127.0.0.1:PORT`). With
    /// HTTPS and a host name, point the client's resolver at it (reqwest:
    /// `ClientBuilder::resolve(host, addr)`).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The issuer identifier, `http://127.0.0.1:PORT` (no trailing slash), or
    /// `https://HOST:PORT` when started with [`TestIssuerBuilder::tls`].
    ///
    /// This is the `iss` claim of minted tokens and the `issuer` member of the
    /// metadata document.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The JWK Set URL: [`issuer`](Self::issuer) followed by `/jwks`.
    #[must_use]
    pub fn jwks_uri(&self) -> String {
        self.shared.jwks_uri()
    }

    /// The RFC 8414 metadata URL: [`issuer`](Self::issuer) followed by
    /// `/.well-known/oauth-authorization-server`.
    #[must_use]
    pub fn metadata_url(&self) -> String {
        format!("{}{OAUTH_METADATA_PATH}", self.shared.issuer)
    }

    /// The OpenID Connect discovery URL: [`issuer`](Self::issuer) followed by
    /// `/.well-known/openid-configuration`. It serves the same document as
    /// [`metadata_url`](Self::metadata_url).
    #[must_use]
    pub fn openid_configuration_url(&self) -> String {
        format!("{}{OPENID_METADATA_PATH}", self.shared.issuer)
    }

    /// Starts building an access token signed with the current key.
    ///
    /// See [`TokenBuilder`] for the defaults.
    pub fn token(&self) -> TokenBuilder<'_> {
        TokenBuilder::new(&self.shared)
    }

    /// The authorization endpoint URL: [`issuer`](Self::issuer) followed by
    /// `/authorize`.
    #[must_use]
    pub fn authorization_endpoint(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.shared.issuer)
    }

    /// The token endpoint URL: [`issuer`](Self::issuer) followed by `/token`.
    #[must_use]
    pub fn token_endpoint(&self) -> String {
        format!("{}{TOKEN_PATH}", self.shared.issuer)
    }

    /// The dynamic client registration URL: [`issuer`](Self::issuer)
    /// followed by `/register`.
    #[must_use]
    pub fn registration_endpoint(&self) -> String {
        format!("{}{REGISTER_PATH}", self.shared.issuer)
    }

    /// Sets the subject (`sub`) of the authorizations approved from now on,
    /// until it is set again. The default is `"test-user"`, or
    /// [`TestIssuerBuilder::subject`]. Codes already issued keep their
    /// subject.
    pub fn set_next_subject(&self, subject: impl Into<String>) {
        *lock(&self.shared.subject) = subject.into();
    }

    /// Registers a client, replacing any with the same `client_id` (see
    /// [`ClientRegistration`]). Clients can also register themselves at
    /// [`registration_endpoint`](Self::registration_endpoint).
    pub fn register_client(&self, client: ClientRegistration) {
        lock(&self.shared.clients).insert(client);
    }

    /// Generates a new current key, with the same algorithm and a new `kid`.
    ///
    /// The previous keys stay published in the JWK Set until
    /// [`retire_old_keys`](Self::retire_old_keys) is called, as during a real
    /// rotation.
    ///
    /// # Panics
    ///
    /// Panics if aws-lc-rs fails to generate a key (see
    /// [`try_rotate_key_with_alg`](Self::try_rotate_key_with_alg) for a
    /// fallible version).
    pub fn rotate_key(&self) {
        self.rotate_key_with_alg(self.current_alg());
    }

    /// Generates a new current key using `alg`, with a new `kid`.
    ///
    /// The previous keys stay published.
    ///
    /// # Panics
    ///
    /// Panics if aws-lc-rs fails to generate a key (see
    /// [`try_rotate_key_with_alg`](Self::try_rotate_key_with_alg) for a
    /// fallible version).
    pub fn rotate_key_with_alg(&self, alg: SigningAlg) {
        if let Err(error) = self.try_rotate_key_with_alg(alg) {
            panic!("TestIssuer: key rotation failed: {error}");
        }
    }

    /// Generates a new current key using `alg` and returns its `kid`.
    ///
    /// The previous keys stay published.
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs fails to generate the key; the key ring is then
    /// unchanged.
    pub fn try_rotate_key_with_alg(&self, alg: SigningAlg) -> io::Result<String> {
        let kid = self.shared.keys().next_kid();
        // Generate outside the lock: RSA generation takes a while.
        let key = Arc::new(SigningKey::generate(alg, kid.clone())?);
        self.shared.keys().keys.push(key);
        tracing::debug!(issuer = %self.shared.issuer, %kid, %alg, "test issuer rotated its key");
        Ok(kid)
    }

    /// Adds a new current key using `alg` with the given `kid`, even one that
    /// is already published (to test duplicate `kid`s). Previous keys stay
    /// published.
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs fails to generate the key.
    pub fn try_add_key(&self, alg: SigningAlg, kid: &str) -> io::Result<()> {
        let key = Arc::new(SigningKey::generate(alg, kid.to_owned())?);
        self.shared.keys().keys.push(key);
        Ok(())
    }

    /// Signs `header` and `claims` exactly as given (bytes that need not be
    /// valid JSON, may repeat members, ...) with the current key and returns
    /// the compact JWS.
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs fails to sign.
    pub fn try_sign_raw(&self, header: &[u8], claims: &[u8]) -> io::Result<String> {
        let mut token = format!("{}.{}", b64(header), b64(claims));
        let signature = self.sign_bytes(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64(&signature));
        Ok(token)
    }

    /// Signs `message` with the current key (the JWS signature encoding:
    /// PKCS#1 v1.5 for RSA, `R || S` for ECDSA, raw for Ed25519).
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs fails to sign.
    pub fn sign_bytes(&self, message: &[u8]) -> io::Result<Vec<u8>> {
        self.shared.current_key()?.sign(message)
    }

    /// The current key's public half as a PEM `PUBLIC KEY`
    /// (SubjectPublicKeyInfo), the text a key-confusion attacker would use
    /// as an HMAC secret.
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs cannot encode the key.
    pub fn public_key_pem(&self) -> io::Result<String> {
        let key = self.shared.current_key()?;
        let der = match &key.material {
            KeyMaterial::Rsa(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyMaterial::Ec(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyMaterial::Ed(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| crypto_error("cannot encode the public key"))?;
        let body = STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(pem)
    }

    /// The current key's public JWK, as published.
    ///
    /// # Errors
    ///
    /// Fails if the issuer has no key (it always has one).
    pub fn public_jwk(&self) -> io::Result<Value> {
        Ok(self.shared.current_key()?.public_jwk.clone())
    }

    /// Stops publishing every key except the current one.
    pub fn retire_old_keys(&self) {
        let mut ring = self.shared.keys();
        let keep_from = ring.keys.len().saturating_sub(1);
        ring.keys.drain(..keep_from);
    }

    /// The `kid` of the current signing key.
    #[must_use]
    pub fn current_kid(&self) -> String {
        self.shared
            .keys()
            .keys
            .last()
            .map(|key| key.kid.clone())
            .unwrap_or_default()
    }

    /// The algorithm of the current signing key.
    #[must_use]
    pub fn current_alg(&self) -> SigningAlg {
        self.shared
            .keys()
            .keys
            .last()
            .map(|key| key.alg)
            .unwrap_or_default()
    }

    /// The JWK Set as currently published, without going through HTTP (and
    /// without counting a hit).
    #[must_use]
    pub fn jwks(&self) -> Value {
        self.shared.jwks_document()
    }

    /// How many `GET /jwks` requests have been received, including those
    /// answered with 503 while [`set_jwks_available(false)`](Self::set_jwks_available)
    /// was in effect.
    #[must_use]
    pub fn jwks_hits(&self) -> usize {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    /// How many discovery documents have been served, over both
    /// well-known paths.
    #[must_use]
    pub fn metadata_hits(&self) -> usize {
        self.shared.metadata_hits.load(Ordering::SeqCst)
    }

    /// How many requests to paths the issuer does not serve have been
    /// received (answered 404).
    #[must_use]
    pub fn other_hits(&self) -> usize {
        self.shared.other_hits.load(Ordering::SeqCst)
    }

    /// How many requests the authorization endpoint has received, whatever
    /// the answer.
    #[must_use]
    pub fn authorize_hits(&self) -> usize {
        self.shared.authorize_hits.load(Ordering::SeqCst)
    }

    /// How many requests the token endpoint has received, whatever the
    /// answer.
    #[must_use]
    pub fn token_hits(&self) -> usize {
        self.shared.token_hits.load(Ordering::SeqCst)
    }

    /// How many requests the registration endpoint has received, whatever
    /// the answer.
    #[must_use]
    pub fn registration_hits(&self) -> usize {
        self.shared.registration_hits.load(Ordering::SeqCst)
    }

    /// Every request received, on any path.
    #[must_use]
    pub fn total_hits(&self) -> usize {
        self.jwks_hits()
            + self.metadata_hits()
            + self.other_hits()
            + self.authorize_hits()
            + self.token_hits()
            + self.registration_hits()
    }

    /// Simulates a key-endpoint outage: while `up` is `false`, `GET /jwks`
    /// answers `503 Service Unavailable`. Available by default. Same as
    /// [`set_jwks_fault`](Self::set_jwks_fault) with [`JwksFault::Unavailable`]
    /// or [`JwksFault::None`].
    pub fn set_jwks_available(&self, up: bool) {
        self.set_jwks_fault(if up {
            JwksFault::None
        } else {
            JwksFault::Unavailable
        });
    }

    /// Makes the key endpoint misbehave from now on (see [`JwksFault`]).
    /// Requests hanging under [`JwksFault::Hang`] are answered per the new
    /// fault.
    pub fn set_jwks_fault(&self, fault: JwksFault) {
        self.shared.fault.send_replace(fault);
    }

    /// The `Cache-Control` value sent with the key set (default none).
    pub fn set_jwks_cache_control(&self, value: Option<&str>) {
        *lock(&self.shared.cache_control) = value.map(str::to_owned);
    }

    /// Publishes `document` at `/jwks` instead of the real key set (for
    /// example keys with private members, duplicate `kid`s, weak keys);
    /// `None` restores the real one. Signing is unaffected.
    pub fn set_jwks_document(&self, document: Option<Value>) {
        *lock(&self.shared.jwks_override) = document;
    }

    /// Stops serving. Dropping the handle has the same effect.
    ///
    /// The listener closes once the server task observes the signal; use
    /// [`shutdown_and_wait`](Self::shutdown_and_wait) to be sure it is closed.
    pub fn shutdown(self) {
        drop(self);
    }

    /// Stops serving and waits until the listener is closed and open
    /// connections have finished.
    pub async fn shutdown_and_wait(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "test issuer task failed");
        }
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        // Ignored error: the server task is already gone.
        let _ = self.stop.send(true);
    }
}

/// `GET` on either well-known metadata path.
async fn serve_metadata(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.metadata_hits.fetch_add(1, Ordering::SeqCst);
    Json(shared.metadata_document())
}

/// Any other path: counted, 404.
async fn serve_other(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.other_hits.fetch_add(1, Ordering::SeqCst);
    StatusCode::NOT_FOUND
}

/// `GET /jwks`, honouring the configured fault.
async fn serve_jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mut faults = shared.fault.subscribe();
    let mut stopped = shared.stopped.clone();
    let fault = loop {
        let fault = faults.borrow_and_update().clone();
        if fault != JwksFault::Hang {
            break fault;
        }
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            }
            _ = stopped.wait_for(|stop| *stop) => {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    };
    let mut response = match fault {
        JwksFault::None => Json(shared.jwks_document()).into_response(),
        JwksFault::Unavailable => {
            let body = json!({
                "error": "temporarily_unavailable",
                "error_description": "simulated JWKS outage",
            });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
        // Unreachable: the loop above only ends on another fault.
        JwksFault::Hang => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        JwksFault::HugeBody {
            bytes,
            declare_length,
        } => huge_body(&shared.jwks_document(), bytes, declare_length),
        JwksFault::Malformed => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"keys": [{"kty": "RSA", "n": "#,
        )
            .into_response(),
        JwksFault::WrongContentType => (
            [(header::CONTENT_TYPE, "text/html")],
            shared.jwks_document().to_string(),
        )
            .into_response(),
        JwksFault::Redirect(location) => {
            return (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
        }
        JwksFault::EmptyKeySet => Json(json!({ "keys": [] })).into_response(),
    };
    if let Some(value) = lock(&shared.cache_control).clone()
        && let Ok(value) = header::HeaderValue::from_str(&value)
    {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// The key set padded with whitespace to `bytes`, in 16 KiB chunks.
fn huge_body(document: &Value, bytes: usize, declare_length: bool) -> Response {
    const CHUNK: usize = 16 * 1024;
    let head = document.to_string().into_bytes();
    let mut remaining = bytes.saturating_sub(head.len());
    let mut chunks = vec![Ok::<Bytes, io::Error>(Bytes::from(head))];
    while remaining > 0 {
        let n = remaining.min(CHUNK);
        chunks.push(Ok(Bytes::from(vec![b' '; n])));
        remaining -= n;
    }
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if declare_length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(bytes));
    }
    response
}

/// Builder for a signed JWT access token; see [`TestIssuer::token`].
///
/// Defaults:
///
/// - header: `{"alg": <current key's algorithm>, "typ": "at+jwt", "kid": <current kid>}`;
/// - claims: `iss` = [`TestIssuer::issuer`], `sub` = `"test-user"`,
///   `client_id` = `"test-client"`, `iat` = now, `exp` = `iat` + 5 minutes,
///   `jti` = 16 random bytes in base64url. No `aud`, `scope` or `nbf`
///   unless set.
///
/// Later calls override earlier ones. [`claim`](Self::claim) and
/// [`header`](Self::header) can set any member, including the defaults, and
/// remove one with [`Value::Null`]. Members are serialized in a
/// deterministic order.
///
/// Whatever the header says (for example an overridden `alg`), the token is
/// signed with the current key's real algorithm, so that tests can forge
/// algorithm-confusion attempts.
///
/// `Debug` output is redacted.
#[must_use = "a token builder does nothing until `sign` is called"]
pub struct TokenBuilder<'a> {
    shared: &'a Shared,
    /// Explicit `iat`; `None` means now.
    issued_at: Option<i64>,
    /// `exp - iat` unless `exp` is set in `claims`.
    lifetime: Duration,
    /// Claim overrides; `Null` removes the member.
    claims: Map<String, Value>,
    /// Header overrides; `Null` removes the member.
    header: Map<String, Value>,
}

impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl<'a> TokenBuilder<'a> {
    fn new(shared: &'a Shared) -> Self {
        TokenBuilder {
            shared,
            issued_at: None,
            lifetime: DEFAULT_LIFETIME,
            claims: Map::new(),
            header: Map::new(),
        }
    }

    /// Sets the `sub` claim (default `"test-user"`).
    pub fn subject(self, sub: impl Into<String>) -> Self {
        self.claim("sub", Value::String(sub.into()))
    }

    /// Sets the `aud` claim to a single string. There is no `aud` by default.
    pub fn audience(self, aud: impl Into<String>) -> Self {
        self.claim("aud", Value::String(aud.into()))
    }

    /// Sets the `aud` claim to an array of strings.
    pub fn audiences<I, S>(self, auds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let auds = auds
            .into_iter()
            .map(|aud| Value::String(aud.into()))
            .collect();
        self.claim("aud", Value::Array(auds))
    }

    /// Sets the `scope` claim: the scopes joined by single spaces
    /// (RFC 9068 section 2.2.3, RFC 8693 section 4.2). There is no `scope`
    /// by default.
    pub fn scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let joined = scopes
            .into_iter()
            .map(Into::into)
            .collect::<Vec<String>>()
            .join(" ");
        self.claim("scope", Value::String(joined))
    }

    /// Sets the `client_id` claim (default `"test-client"`).
    pub fn client_id(self, id: impl Into<String>) -> Self {
        self.claim("client_id", Value::String(id.into()))
    }

    /// Sets the lifetime: `exp` = `iat` + `d` (default 5 minutes).
    ///
    /// Replaces an earlier [`expires_at`](Self::expires_at). Sub-second parts
    /// are truncated.
    pub fn expires_in(mut self, d: Duration) -> Self {
        self.lifetime = d;
        self.claims.remove("exp");
        self
    }

    /// Sets `iat` (Unix seconds; default now). Unless `exp` was set
    /// explicitly, `exp` stays relative to it.
    pub fn issued_at(mut self, unix_secs: i64) -> Self {
        self.issued_at = Some(unix_secs);
        self.claims.remove("iat");
        self
    }

    /// Sets `exp` to an absolute time (Unix seconds).
    pub fn expires_at(self, unix_secs: i64) -> Self {
        self.claim("exp", Value::from(unix_secs))
    }

    /// Sets `nbf` (Unix seconds). There is no `nbf` by default.
    pub fn not_before(self, unix_secs: i64) -> Self {
        self.claim("nbf", Value::from(unix_secs))
    }

    /// Sets or overrides any claim; [`Value::Null`] removes it.
    pub fn claim(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// Sets or overrides any JOSE header member (`typ`, `kid`, `alg`, `crit`,
    /// ...); [`Value::Null`] removes it.
    ///
    /// Overriding `alg` changes only what the header claims: the signature is
    /// still made with the current key's algorithm.
    pub fn header(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.header.insert(name.into(), value);
        self
    }

    /// The token without its signature: `base64url(header).base64url(claims)`,
    /// the JWS signing input. Append `.` and any signature to forge one.
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs fails to produce randomness (for `jti`).
    pub fn unsigned(self) -> io::Result<String> {
        let key = self.shared.current_key()?;
        let (header, claims) = self.into_parts(&key)?;
        Ok(format!("{}.{}", b64(&header), b64(&claims)))
    }

    /// Signs the token with the issuer's current key and returns the JWS
    /// compact serialization (RFC 7515 section 7.1).
    ///
    /// # Panics
    ///
    /// Panics if aws-lc-rs fails to produce randomness or a signature; see
    /// [`try_sign`](Self::try_sign) for a fallible version.
    #[must_use]
    pub fn sign(self) -> String {
        match self.try_sign() {
            Ok(token) => token,
            Err(error) => panic!("TestIssuer: signing failed: {error}"),
        }
    }

    /// Like [`sign`](Self::sign), returning an error instead of panicking.
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs fails to produce randomness or a signature.
    pub fn try_sign(self) -> io::Result<String> {
        let key = self.shared.current_key()?;
        let (header, claims) = self.into_parts(&key)?;
        let mut token = format!("{}.{}", b64(&header), b64(&claims));
        let signature = key.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64(&signature));
        Ok(token)
    }

    /// The serialized header and claims.
    fn into_parts(self, key: &SigningKey) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut header = Map::new();
        header.insert("alg".to_owned(), Value::from(key.alg.as_str()));
        header.insert("typ".to_owned(), Value::from(ACCESS_TOKEN_TYP));
        header.insert("kid".to_owned(), Value::from(key.kid.as_str()));
        apply_overrides(&mut header, self.header);

        let iat = self.issued_at.unwrap_or_else(unix_now);
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), Value::from(self.shared.issuer.as_str()));
        claims.insert("sub".to_owned(), Value::from(DEFAULT_SUBJECT));
        claims.insert("client_id".to_owned(), Value::from(DEFAULT_CLIENT_ID));
        claims.insert("iat".to_owned(), Value::from(iat));
        claims.insert("exp".to_owned(), Value::from(iat.saturating_add(lifetime)));
        claims.insert("jti".to_owned(), Value::from(random_jti()?));
        apply_overrides(&mut claims, self.claims);

        let header = serde_json::to_vec(&header).map_err(io::Error::other)?;
        let claims = serde_json::to_vec(&claims).map_err(io::Error::other)?;
        Ok((header, claims))
    }
}

/// Applies builder overrides: `Null` removes the member, anything else sets it.
fn apply_overrides(target: &mut Map<String, Value>, overrides: Map<String, Value>) {
    for (name, value) in overrides {
        if value.is_null() {
            target.remove(&name);
        } else {
            target.insert(name, value);
        }
    }
}

/// 16 random bytes, base64url.
fn random_jti() -> io::Result<String> {
    random_b64(16)
}

/// `len` random bytes, base64url.
fn random_b64(len: usize) -> io::Result<String> {
    let mut bytes = vec![0_u8; len];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| crypto_error("random generation failed"))?;
    Ok(b64(&bytes))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Base64url without padding (RFC 7515 section 2).
fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn crypto_error(message: &'static str) -> io::Error {
    io::Error::other(message)
}

/// Builder for a [`TestIssuer`]; see [`TestIssuer::builder`].
#[must_use]
pub struct TestIssuerBuilder {
    alg: SigningAlg,
    tls: Option<(Arc<rustls::ServerConfig>, String)>,
    subject: String,
    code_lifetime: Duration,
    access_token_lifetime: Duration,
}

impl Default for TestIssuerBuilder {
    fn default() -> Self {
        Self {
            alg: SigningAlg::default(),
            tls: None,
            subject: DEFAULT_SUBJECT.to_owned(),
            code_lifetime: DEFAULT_CODE_LIFETIME,
            access_token_lifetime: DEFAULT_LIFETIME,
        }
    }
}

impl fmt::Debug for TestIssuerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuerBuilder")
            .field("alg", &self.alg)
            .field("tls_host", &self.tls.as_ref().map(|(_, host)| host))
            .field("subject", &self.subject)
            .field("code_lifetime", &self.code_lifetime)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .finish()
    }
}

impl TestIssuerBuilder {
    /// The algorithm of the initial key (default [`SigningAlg::Rs256`]).
    pub fn alg(mut self, alg: SigningAlg) -> Self {
        self.alg = alg;
        self
    }

    /// Serves HTTPS with `config` (its certificate should name `host`). The
    /// issuer becomes `https://HOST:PORT`; the socket is still bound on
    /// `127.0.0.1`, so point the client at [`TestIssuer::local_addr`] for
    /// `host`. Connections whose handshake fails are dropped (and not
    /// counted as hits).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>, host: impl Into<String>) -> Self {
        self.tls = Some((config, host.into()));
        self
    }

    /// The subject (`sub`) of the authorizations the issuer approves (default
    /// `"test-user"`); see also [`TestIssuer::set_next_subject`].
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// How long an authorization code can be exchanged (default 60
    /// seconds). `Duration::ZERO` makes every code expired, for tests of
    /// that refusal.
    pub fn code_lifetime(mut self, lifetime: Duration) -> Self {
        self.code_lifetime = lifetime;
        self
    }

    /// The lifetime of access tokens issued by the token endpoint (default
    /// 5 minutes; sub-second parts are truncated). Tokens minted with
    /// [`TestIssuer::token`] are not affected.
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_token_lifetime = lifetime;
        self
    }

    /// Starts the issuer. Must be called from within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// Fails if the loopback socket cannot be bound or the key cannot be
    /// generated.
    pub async fn start(self) -> io::Result<TestIssuer> {
        TestIssuer::start_from(self).await
    }
}

#[cfg(test)]
mod tests;
