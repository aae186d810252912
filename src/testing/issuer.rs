//! [`TestIssuer`]: its shared state, its HTTP routes and its builder.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::KeyPair as _;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::jwks_endpoint::{JwksFault, serve_jwks};
use super::keys::{KeyMaterial, KeyRing, SigningAlg, SigningKey};
use super::plumbing::{b64, crypto_error, lock};
use super::token_builder::{DEFAULT_LIFETIME, DEFAULT_SUBJECT, TokenBuilder};
use super::{ClientRegistration, authorize, clients, exchange, tls, token_endpoint};

/// Path of the RFC 8414 metadata document.
const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// Path of the OpenID Connect discovery document (same content here).
const OPENID_METADATA_PATH: &str = "/.well-known/openid-configuration";
/// Path of the JWK Set.
const JWKS_PATH: &str = "/jwks";
/// Path of the authorization endpoint.
const AUTHORIZE_PATH: &str = "/authorize";
/// Path of the token endpoint.
pub(super) const TOKEN_PATH: &str = "/token";
/// Path of the dynamic client registration endpoint.
const REGISTER_PATH: &str = "/register";
/// Default lifetime of an authorization code (OAuth 2.1 section 4.1.2
/// recommends a short one).
const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(60);

/// State shared between the [`TestIssuer`] handle and its HTTP handlers.
pub(super) struct Shared {
    pub(super) issuer: String,
    pub(super) addr: SocketAddr,
    pub(super) keys: Mutex<KeyRing>,
    pub(super) jwks_hits: AtomicUsize,
    pub(super) metadata_hits: AtomicUsize,
    pub(super) other_hits: AtomicUsize,
    pub(super) authorize_hits: AtomicUsize,
    pub(super) token_hits: AtomicUsize,
    pub(super) registration_hits: AtomicUsize,
    /// Token requests with a token-exchange grant (RFC 8693 or on-behalf-of).
    pub(super) exchange_hits: AtomicUsize,
    pub(super) exchange_policy: Mutex<exchange::ExchangePolicy>,
    /// Subject of the authorizations approved from now on.
    pub(super) subject: Mutex<String>,
    pub(super) clients: Mutex<clients::Registry>,
    pub(super) codes: Mutex<authorize::Codes>,
    pub(super) refresh_tokens: Mutex<token_endpoint::RefreshTokens>,
    pub(super) code_lifetime: Duration,
    pub(super) access_token_lifetime: Duration,
    pub(super) fault: watch::Sender<JwksFault>,
    pub(super) cache_control: Mutex<Option<String>>,
    pub(super) age: Mutex<Option<u64>>,
    pub(super) jwks_override: Mutex<Option<Value>>,
    /// Flips to `true` when the issuer stops (ends hanging requests).
    pub(super) stopped: watch::Receiver<bool>,
}

impl Shared {
    pub(super) fn keys(&self) -> MutexGuard<'_, KeyRing> {
        lock(&self.keys)
    }

    pub(super) fn current_key(&self) -> io::Result<Arc<SigningKey>> {
        self.keys().current()
    }

    pub(super) fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.issuer)
    }

    /// RFC 8414 section 2 metadata: only what this server really serves.
    pub(super) fn metadata_document(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri(),
            "authorization_endpoint": format!("{}{AUTHORIZE_PATH}", self.issuer),
            "token_endpoint": format!("{}{TOKEN_PATH}", self.issuer),
            "registration_endpoint": format!("{}{REGISTER_PATH}", self.issuer),
            // REQUIRED by RFC 8414 section 2.
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": clients::GRANT_TYPES
                .iter()
                .chain(&[exchange::TOKEN_EXCHANGE, exchange::JWT_BEARER])
                .collect::<Vec<_>>(),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": clients::AUTH_METHODS,
            // RFC 9207 section 3: `iss` is sent with every authorization response.
            "authorization_response_iss_parameter_supported": true,
            "scopes_supported": [],
        })
    }

    /// RFC 7517 section 5 JWK Set, newest key first (or the override).
    pub(super) fn jwks_document(&self) -> Value {
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
/// **Not for production** (see the [module documentation](super)): it serves
/// plain HTTP and signs anything it is asked to.
///
/// The server runs on the Tokio runtime that called [`TestIssuer::start`] and
/// stops when the handle is dropped or [`TestIssuer::shutdown`] is called.
/// Its `Debug` output shows the issuer URL only, never key material.
pub struct TestIssuer {
    pub(super) shared: Arc<Shared>,
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
            port,
            tls,
            subject,
            code_lifetime,
            access_token_lifetime,
        } = builder;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
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
            exchange_hits: AtomicUsize::new(0),
            exchange_policy: Mutex::new(exchange::ExchangePolicy::default()),
            subject: Mutex::new(subject),
            clients: Mutex::new(clients::Registry::default()),
            codes: Mutex::new(authorize::Codes::default()),
            refresh_tokens: Mutex::new(token_endpoint::RefreshTokens::default()),
            code_lifetime,
            access_token_lifetime,
            fault: watch::Sender::new(JwksFault::None),
            cache_control: Mutex::new(None),
            age: Mutex::new(None),
            jwks_override: Mutex::new(None),
            stopped: stopped.clone(),
        });

        let app = Router::new()
            .route(OAUTH_METADATA_PATH, get(serve_metadata))
            .route(OPENID_METADATA_PATH, get(serve_metadata))
            .route(JWKS_PATH, get(serve_jwks))
            .route(AUTHORIZE_PATH, any(authorize::serve_authorize))
            .route(TOKEN_PATH, any(token_endpoint::serve_token))
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

    /// How many token requests used a token-exchange grant (RFC 8693, or
    /// the on-behalf-of JWT bearer grant), whatever the answer: what a test
    /// counts to show that two calls cost one exchange.
    #[must_use]
    pub fn exchange_hits(&self) -> usize {
        self.shared.exchange_hits.load(Ordering::SeqCst)
    }

    /// Refuses, from now on, exchanges for `audience` (as `audience` or
    /// `resource`) with `invalid_target` (RFC 8693 section 2.2.2).
    pub fn refuse_exchange_audience(&self, audience: impl Into<String>) {
        lock(&self.shared.exchange_policy)
            .refused_audiences
            .insert(audience.into());
    }

    /// Asks for the user's consent, from now on, before exchanging for
    /// `audience`: unless the subject token grants `scope` (what the user
    /// consented to when authorizing the MCP client), the exchange is
    /// refused with `consent_required` (the RFC 8693 grant) or
    /// `invalid_grant` with `suberror: consent_required` (Entra ID's
    /// on-behalf-of grant).
    pub fn require_consent_for_exchange(
        &self,
        audience: impl Into<String>,
        scope: impl Into<String>,
    ) {
        lock(&self.shared.exchange_policy)
            .consent
            .push((audience.into(), scope.into()));
    }

    /// While `on`, every exchange with a valid subject token is answered
    /// `invalid_grant` (as when the user revoked the delegation).
    pub fn refuse_all_exchanges(&self, on: bool) {
        lock(&self.shared.exchange_policy).refuse_all = on;
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

    /// The `Age` value, in seconds, sent with the key set (default none):
    /// what a cache in front of the key server (a CDN) adds to a response
    /// it kept (RFC 9111 section 5.1).
    pub fn set_jwks_age(&self, seconds: Option<u64>) {
        *lock(&self.shared.age) = seconds;
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

/// Builder for a [`TestIssuer`]; see [`TestIssuer::builder`].
#[must_use]
pub struct TestIssuerBuilder {
    alg: SigningAlg,
    port: u16,
    tls: Option<(Arc<rustls::ServerConfig>, String)>,
    subject: String,
    code_lifetime: Duration,
    access_token_lifetime: Duration,
}

impl Default for TestIssuerBuilder {
    fn default() -> Self {
        Self {
            alg: SigningAlg::default(),
            port: 0,
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
            .field("port", &self.port)
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

    /// The loopback port to listen on (default 0: one the system picks).
    /// The issuer URL names it, so a fixed port keeps the same issuer across
    /// restarts (a development server configured once). The socket is
    /// always bound on `127.0.0.1`: the issuer authenticates nobody.
    /// [`start`](Self::start) fails when the port is taken.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
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
