//! [`IntrospectionVerifier`]: opaque tokens checked with the authorization
//! server's RFC 7662 introspection endpoint.
//!
//! The same rules as for JWTs apply: the response must say `active: true`,
//! `exp` (when present) must not be past, `iss` (when present) must be the
//! configured issuer, and `aud` must contain this resource: the audience rule
//! is not optional here either. Results are cached by a SHA-256 hash of the
//! token (never the token itself) until the earlier of `exp` and the cache
//! TTL; inactive results are cached briefly; concurrent lookups of one token
//! share one request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use http::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Map, Value};
use url::Url;

use super::jwt::now_unix;
use super::token_cache::token_key;
use super::{TokenVerifier, VerifyFuture};
use crate::bearer::BearerToken;
use crate::config::{AuthConfig, check_https};
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind, ConfigError};

/// How the resource server authenticates to the introspection endpoint
/// (RFC 7662 section 2.1, RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A client secret; its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// Introspection settings (part of [`AuthConfig`] or given to
/// [`IntrospectionVerifier::new`]).
#[derive(Debug, Clone)]
pub struct IntrospectionSettings {
    pub(crate) endpoint: Option<Url>,
    pub(crate) client_id: String,
    pub(crate) client_secret: ClientSecret,
    pub(crate) auth_method: ClientAuthMethod,
    pub(crate) cache_ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) max_entries: usize,
}

impl IntrospectionSettings {
    /// Settings with the defaults: endpoint discovered from the issuer's
    /// metadata (`introspection_endpoint`), `client_secret_basic`, results
    /// cached up to 60 s, inactive results 5 s, at most 10,000 entries.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            client_id: client_id.into(),
            client_secret: ClientSecret::new(client_secret),
            auth_method: ClientAuthMethod::default(),
            cache_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            max_entries: 10_000,
        }
    }

    /// The introspection endpoint (else discovered from the first issuer).
    pub fn endpoint(mut self, url: Url) -> Self {
        self.endpoint = Some(url);
        self
    }

    /// How to authenticate to the endpoint.
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Upper bound on how long an active result is reused (never past `exp`).
    /// Revocation takes effect within this time.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long an inactive result is remembered.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Cap on cached results.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }
}

type Outcome = Result<AuthContext, AuthErrorKind>;
type SharedLookup = Shared<BoxFuture<'static, Outcome>>;

struct Entry {
    outcome: Outcome,
    until: Instant,
}

struct Inner {
    issuer: String,
    resource: String,
    settings: IntrospectionSettings,
    client: reqwest::Client,
    allow_loopback_http: bool,
    timeout: Duration,
    max_bytes: usize,
    leeway: u64,
    endpoint: Mutex<Option<Url>>,
    cache: Mutex<HashMap<[u8; 32], Entry>>,
    inflight: Mutex<HashMap<[u8; 32], SharedLookup>>,
    calls: std::sync::atomic::AtomicU64,
}

/// Verifies opaque tokens with RFC 7662 introspection. Cheap to clone.
#[derive(Clone)]
pub struct IntrospectionVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for IntrospectionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionVerifier")
            .field("issuer", &self.inner.issuer)
            .field("resource", &self.inner.resource)
            .field("client_id", &self.inner.settings.client_id)
            .field("client_secret", &self.inner.settings.client_secret)
            .finish_non_exhaustive()
    }
}

impl IntrospectionVerifier {
    /// A verifier for `config`'s first issuer and resource with `settings`.
    pub fn new(config: &AuthConfig, settings: IntrospectionSettings) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.http_timeout)
            .user_agent(concat!("mcp-oauth2/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ConfigError::new("http_client", format!("cannot build the HTTP client: {e}"))
            })?;
        Self::with_http_client(config, settings, client)
    }

    /// Like [`new`](Self::new), with a caller's HTTP client (custom roots).
    pub fn with_http_client(
        config: &AuthConfig,
        settings: IntrospectionSettings,
        client: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let issuer = config
            .issuers
            .first()
            .map(|i| i.issuer.clone())
            .ok_or_else(|| ConfigError::new("issuer", "at least one issuer is required"))?;
        if let Some(endpoint) = &settings.endpoint {
            check_https(
                endpoint,
                config.allow_insecure_loopback,
                "introspection_endpoint",
            )?;
        }
        if settings.client_id.is_empty() {
            return Err(ConfigError::new(
                "client_id",
                "is required for introspection",
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                issuer,
                resource: config.resource.clone(),
                endpoint: Mutex::new(settings.endpoint.clone()),
                settings,
                client,
                allow_loopback_http: config.allow_insecure_loopback,
                timeout: config.http_timeout,
                max_bytes: config.max_document_bytes,
                leeway: config.leeway.as_secs(),
                cache: Mutex::new(HashMap::new()),
                inflight: Mutex::new(HashMap::new()),
                calls: Default::default(),
            }),
        })
    }

    async fn verify_token(&self, token: &str) -> Result<AuthContext, AuthError> {
        let key = token_key(token);
        let now = Instant::now();
        if let Some(outcome) = self.cached(&key, now) {
            return outcome.map_err(AuthError::new);
        }
        let lookup = {
            let mut inflight = lock(&self.inner.inflight);
            match inflight.get(&key) {
                Some(l) => l.clone(),
                None => {
                    let this = self.clone();
                    let token = token.to_owned();
                    // Its own task: a disconnecting client does not cancel the
                    // lookup for the others waiting on it.
                    let task = tokio::spawn(async move { this.lookup(key, token).await });
                    let l = async move {
                        task.await
                            .unwrap_or(Err(AuthErrorKind::IntrospectionUnavailable))
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, l.clone());
                    l
                }
            }
        };
        lookup.await.map_err(AuthError::new)
    }

    fn cached(&self, key: &[u8; 32], now: Instant) -> Option<Outcome> {
        let cache = lock(&self.inner.cache);
        cache
            .get(key)
            .filter(|e| e.until > now)
            .map(|e| e.outcome.clone())
    }

    async fn lookup(self, key: [u8; 32], token: String) -> Outcome {
        let outcome = self.introspect(&token).await;
        let now = Instant::now();
        let s = &self.inner.settings;
        let until = match &outcome {
            Ok(ctx) => {
                let by_exp = ctx.expires_at_unix().map(|exp| {
                    let left = exp.saturating_sub(now_unix());
                    now + Duration::from_secs(left)
                });
                Some(by_exp.map_or(now + s.cache_ttl, |t| t.min(now + s.cache_ttl)))
            }
            Err(AuthErrorKind::IntrospectionUnavailable) => None,
            Err(_) => Some(now + s.negative_ttl),
        };
        {
            let mut cache = lock(&self.inner.cache);
            if let Some(until) = until {
                if cache.len() >= s.max_entries {
                    cache.retain(|_, e| e.until > now);
                }
                if cache.len() >= s.max_entries {
                    // Still full of live entries: drop the one expiring first.
                    if let Some(k) = cache.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k) {
                        cache.remove(&k);
                    }
                }
                cache.insert(
                    key,
                    Entry {
                        outcome: outcome.clone(),
                        until,
                    },
                );
            }
        }
        lock(&self.inner.inflight).remove(&key);
        outcome
    }

    async fn endpoint(&self) -> Result<Url, AuthErrorKind> {
        if let Some(url) = lock(&self.inner.endpoint).clone() {
            return Ok(url);
        }
        let url = self.discover().await?;
        *lock(&self.inner.endpoint) = Some(url.clone());
        Ok(url)
    }

    async fn discover(&self) -> Result<Url, AuthErrorKind> {
        let issuer = &self.inner.issuer;
        let urls = crate::jwks::fetch::discovery_urls(issuer)
            .map_err(|_| AuthErrorKind::IntrospectionUnavailable)?;
        for url in urls {
            let request = self
                .inner
                .client
                .get(url.clone())
                .header(ACCEPT, "application/json");
            let Ok(doc) = self.send(request).await else {
                continue;
            };
            if doc.get("issuer").and_then(Value::as_str) != Some(issuer.as_str()) {
                tracing::warn!(%url, "introspection discovery: the document's issuer differs; rejected");
                return Err(AuthErrorKind::IntrospectionUnavailable);
            }
            let endpoint = doc
                .get("introspection_endpoint")
                .and_then(Value::as_str)
                .and_then(|s| Url::parse(s).ok())
                .ok_or(AuthErrorKind::IntrospectionUnavailable)?;
            check_https(
                &endpoint,
                self.inner.allow_loopback_http,
                "introspection_endpoint",
            )
            .map_err(|_| AuthErrorKind::IntrospectionUnavailable)?;
            return Ok(endpoint);
        }
        Err(AuthErrorKind::IntrospectionUnavailable)
    }

    async fn introspect(&self, token: &str) -> Outcome {
        let endpoint = self.endpoint().await?;
        self.inner
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::emit(
            "mcp_oauth2_introspection_calls_total",
            "endpoint",
            "introspection",
        );
        let s = &self.inner.settings;
        let mut form: Vec<(&str, &str)> =
            vec![("token", token), ("token_type_hint", "access_token")];
        let mut request = self
            .inner
            .client
            .post(endpoint.clone())
            .header(ACCEPT, "application/json");
        match s.auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                // RFC 6749 section 2.3.1: form-encode id and secret, then Basic.
                let id = form_encode(&s.client_id);
                let secret = form_encode(s.client_secret.secret());
                request = request.basic_auth(id, Some(secret));
            }
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", &s.client_id));
                form.push(("client_secret", s.client_secret.secret()));
            }
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = request
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let doc = self.send(request).await.map_err(|e| {
            tracing::warn!(endpoint = %endpoint, error = %e, "token introspection failed");
            AuthErrorKind::IntrospectionUnavailable
        })?;
        self.judge(doc)
    }

    /// RFC 7662 section 2.2 plus our audience and issuer rules.
    fn judge(&self, doc: Map<String, Value>) -> Outcome {
        if doc.get("active") != Some(&Value::Bool(true)) {
            return Err(AuthErrorKind::TokenInactive);
        }
        let now = now_unix();
        let exp = match doc.get("exp") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or(AuthErrorKind::InvalidClaims)?),
        };
        if exp.is_some_and(|exp| now >= exp.saturating_add(self.inner.leeway)) {
            return Err(AuthErrorKind::Expired);
        }
        let nbf = match doc.get("nbf") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or(AuthErrorKind::InvalidClaims)?),
        };
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.inner.leeway)) {
            return Err(AuthErrorKind::NotYetValid);
        }
        match doc.get("iss") {
            None => {}
            Some(Value::String(iss)) if *iss == self.inner.issuer => {}
            Some(_) => return Err(AuthErrorKind::InvalidIssuer),
        }
        let audience: Vec<String> = match doc.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or(AuthErrorKind::InvalidAudience)
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(AuthErrorKind::InvalidAudience),
        };
        if !audience.iter().any(|a| *a == self.inner.resource) {
            return Err(AuthErrorKind::InvalidAudience);
        }
        let scopes: Vec<String> = match doc.get("scope") {
            None => Vec::new(),
            Some(Value::String(s)) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(_) => return Err(AuthErrorKind::InvalidClaims),
        };
        let client_id = doc
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let subject = doc
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| client_id.clone())
            .ok_or(AuthErrorKind::InvalidClaims)?;
        let mut b = AuthContext::builder(self.inner.issuer.clone(), subject)
            .scopes(scopes)
            .audience(audience);
        if let Some(c) = client_id {
            b = b.client_id(c);
        }
        if let Some(exp) = exp {
            b = b.expires_at_unix(exp);
        }
        if let Some(jti) = doc.get("jti").and_then(Value::as_str) {
            b = b.token_id(jti);
        }
        Ok(b.claims(doc).build())
    }

    /// Sends a request: status 200, a JSON object body, within the size cap
    /// and the deadline, no redirects.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Map<String, Value>, String> {
        let max = self.inner.max_bytes;
        let fut = async move {
            let response = request
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let body = crate::jwks::fetch::read_json_body(response, max).await?;
            serde_json::from_slice::<Map<String, Value>>(&body)
                .map_err(|_| "the body is not a JSON object".to_owned())
        };
        tokio::time::timeout(self.inner.timeout, fut)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

impl TokenVerifier for IntrospectionVerifier {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token.as_str()))
    }

    /// An active token's cached introspection result (refusals take the
    /// slow path, where their own cache answers them).
    fn verify_cached(&self, token: BearerToken<'_>) -> Option<AuthContext> {
        self.cached(&token_key(token.as_str()), Instant::now())?
            .ok()
    }

    fn add_metrics(&self, out: &mut crate::MetricsSnapshot) {
        out.introspection_calls += self.inner.calls.load(std::sync::atomic::Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `application/x-www-form-urlencoded` encoding (WHATWG URL), via the url crate.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
