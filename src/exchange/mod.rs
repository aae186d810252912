//! Calling other APIs as the caller, never with the caller's token.
//!
//! The MCP specification forbids token passthrough: the token a client sent
//! to this server is for this server only. A tool that calls a downstream
//! API as the user asks the authorization server for a token meant for that
//! API: RFC 8693 token exchange (or the Entra ID on-behalf-of grant). The
//! layer keeps the caller's token aside (removed from the request the
//! handlers see) in the [`AuthContext`]; only [`TokenExchanger`] reads it,
//! to send it as the `subject_token`.
//!
//! Rooms: `settings` (endpoint, client authentication, grant, cache knobs),
//! `error` (typed failures), `token` (the exchanged token), `cache` (keys,
//! reuse time, the shared-store seam), `downstream` (the HTTP helper). The
//! exchange itself, its discovery and its single flight are here.

mod cache;
mod downstream;
mod error;
mod settings;
mod shared;
mod token;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

pub use cache::{ExchangeStore, StoredToken};
pub use downstream::DownstreamClient;
pub use error::{ExchangeError, ExchangeErrorKind};
pub use settings::{ExchangeGrant, ExchangeSettings};
pub use shared::SealedExchangeStore;
pub use token::ExchangedToken;

use crate::breaker::{Breaker, Settle};
use crate::clock::deadline;
use crate::context::AuthContext;
use crate::error::ConfigError;
use crate::fetch::{Fetcher, HttpClient, default_client};
use crate::json::Members;
use cache::{Cache, Entry};

/// RFC 8693 section 2.1.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 section 3.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 section 3.
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// RFC 7523 section 2.1 (Entra ID on-behalf-of).
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What to ask for: a token for one downstream audience, with scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ExchangeRequest {
    audience: String,
    scopes: Vec<String>,
    step_up_scopes: Vec<String>,
}

impl ExchangeRequest {
    /// A token for the downstream `audience` (sent as `audience`, and as
    /// `resource` too when it is an absolute URI without a fragment, RFC
    /// 8707).
    pub fn audience(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            scopes: Vec::new(),
            step_up_scopes: Vec::new(),
        }
    }

    /// Scopes of *this* server for the client to ask for when the exchange
    /// needs the user ([`ExchangeErrorKind::InteractionRequired`]): the
    /// step-up challenge names them first, then the caller's granted
    /// scopes (and what the layer required). Use the scope whose consent
    /// covers the downstream API at your authorization server; without it,
    /// the client authorizes again with what it has, which still brings the
    /// user to the authorization server.
    pub fn step_up_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.step_up_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The scopes asked for (sent as `scope`; order and duplicates do not
    /// matter).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        scopes.sort_unstable();
        scopes.dedup();
        self.scopes = scopes;
        self
    }
}

/// Exchanges the caller's token for tokens meant for downstream APIs, and
/// keeps them while they last. Cheap to clone; build one per server.
///
/// ```no_run
/// # use mcp_oauth2::{AuthContext, DownstreamClient, ExchangeRequest, TokenExchanger};
/// # async fn tool(auth: AuthContext, exchanger: TokenExchanger, http: DownstreamClient)
/// #     -> Result<String, rmcp::ErrorData> {
/// let request = ExchangeRequest::audience("https://api.example").scopes(["read"]);
/// let token = exchanger.exchange_for(&auth, request).await?;
/// let me = http.get("https://api.example/me", &token).await?;
/// # Ok(me.text().await.unwrap_or_default()) }
/// ```
///
/// **Cache.** Exchanged tokens are kept per (issuer, subject, the caller's
/// client, tenant and granted scopes, its `act`, `may_act`, `acr`, `amr`
/// and `auth_time` claims, this server's client, grant, audience,
/// requested scopes), keyed by a SHA-256 hash of those, until their
/// `expires_in` minus the margin, in a bounded cache; calls that need the
/// same token while it is being exchanged wait for that one exchange.
/// Failures are not kept: the calls that waited share it, the next call
/// tries again. A token answered without `expires_in` is not kept either:
/// the calls that waited for the exchange that obtained it use it, no
/// later call does. The cache serves any caller the layer accepted,
/// including one whose token is past its `exp` but within the clock
/// leeway: acceptance is the layer's decision.
///
/// **Error answers.** An answer holding an `error` member is an error
/// answer whatever its status (RFC 6749 section 5.2): a well-formed code
/// is the refusal it names (as in a 400), anything else
/// [`ExchangeErrorKind::MalformedResponse`]; its `access_token` is never
/// used.
///
/// **Outages.** A token endpoint that does not answer (connection refused
/// or reset, past the timeout), answers 5xx or 429, or whose discovery
/// fails, starts a cooldown of that endpoint: calls that need a new token
/// fail at once with [`ExchangeErrorKind::Transport`], without a request,
/// for 1 s; then one call probes the endpoint (the others still fail
/// fast); an answer ends the cooldown, a failed probe doubles it up to
/// 5 s. Cached tokens keep serving; an OAuth refusal is an answer and
/// starts no cooldown. Per endpoint (per issuer when discovered) and per
/// process.
#[derive(Clone)]
pub struct TokenExchanger {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ExchangeSettings,
    client: HttpClient,
    /// Whether `client` is a caller's (it may follow redirects).
    caller_client: bool,
    cache: Cache,
    store: Option<Arc<dyn ExchangeStore>>,
    /// Token endpoints discovered, per issuer.
    discovered: Mutex<HashMap<String, Url>>,
    /// The outage breaker of each token endpoint: per issuer when it is
    /// discovered, one (under `""`) when it is configured. Bounded by the
    /// issuers the layer trusts (only their callers get this far).
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    exchanges: AtomicU64,
}

impl fmt::Debug for TokenExchanger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchanger")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl TokenExchanger {
    /// An exchanger with `settings`. Fails on an empty client id or a token
    /// endpoint that is not `https://`.
    pub fn new(settings: ExchangeSettings) -> Result<Self, ConfigError> {
        let client = default_client(settings.timeout)?;
        Self::build(settings, client, false)
    }

    /// Like [`new`](Self::new), with a caller's HTTP client (custom roots).
    /// Redirects are never followed, whatever the client does.
    pub fn with_http_client(
        settings: ExchangeSettings,
        client: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        Self::build(settings, client.into(), true)
    }

    fn build(
        settings: ExchangeSettings,
        client: HttpClient,
        caller_client: bool,
    ) -> Result<Self, ConfigError> {
        if settings.client_id.is_empty() {
            return Err(ConfigError::new(
                "client_id",
                "is required for the token exchange",
            ));
        }
        if let Some(endpoint) = &settings.endpoint {
            // User information would go out as Basic credentials in place
            // of the client's, and into every log line and error naming
            // the endpoint (found from outside).
            crate::config::url::check_url_parts(
                endpoint,
                crate::config::url::UrlParts::Endpoint,
                "token_endpoint",
            )?;
            crate::config::check_https(
                endpoint,
                settings.allow_insecure_loopback,
                "token_endpoint",
            )?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                cache: cache::cache(settings.max_entries),
                settings,
                client,
                caller_client,
                store: None,
                discovered: Mutex::new(HashMap::new()),
                breakers: Mutex::new(HashMap::new()),
                exchanges: AtomicU64::new(0),
            }),
        })
    }

    /// Shares exchanged tokens through `store` as a second level (see
    /// [`ExchangeStore`]).
    #[must_use]
    pub fn with_store(self, store: impl ExchangeStore) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                settings: inner.settings.clone(),
                client: inner.client.clone(),
                caller_client: inner.caller_client,
                cache: cache::cache(inner.settings.max_entries),
                store: Some(Arc::new(store)),
                discovered: Mutex::new(HashMap::new()),
                breakers: Mutex::new(HashMap::new()),
                exchanges: AtomicU64::new(0),
            }),
        }
    }

    /// How many requests this exchanger sent to the token endpoint.
    pub fn exchanges(&self) -> u64 {
        self.inner.exchanges.load(Ordering::Relaxed)
    }

    /// A token for `request`'s audience and scopes, on behalf of the
    /// caller `auth` (the context the layer made for this request: it holds
    /// the caller's token). Reused from the cache while it lasts.
    pub async fn exchange_for(
        &self,
        auth: &AuthContext,
        request: ExchangeRequest,
    ) -> Result<ExchangedToken, ExchangeError> {
        let subject = auth
            .subject_token()
            .and_then(|t| t.expose())
            .ok_or_else(|| {
                ExchangeError::new(
                    ExchangeErrorKind::NoSubjectToken,
                    "the AuthContext holds no caller token (it was not made by the layer for this request)",
                )
            })?;
        let s = &self.inner.settings;
        let key = cache::key(
            auth,
            &s.client_id,
            grant_name(s.grant),
            &request.audience,
            &request.scopes,
        );
        let cache = &self.inner.cache;
        let started = Instant::now();
        // A stale entry met on the way (it expired between two looks) is
        // dropped and the lookup tried again, a bounded number of times.
        for _ in 0..3 {
            match cache.get_value_or_guard_async(&key).await {
                Ok(entry) if entry.produced >= started || entry.fresh(Instant::now()) => {
                    return entry
                        .outcome
                        .map_err(|e| e.for_request(auth, &request.step_up_scopes));
                }
                Ok(_) => {
                    cache.remove_if(&key, |e| !e.fresh(Instant::now()));
                }
                Err(guard) => {
                    let entry = self.produce(&key, auth, subject, &request).await;
                    let outcome = entry.outcome.clone();
                    let transient = entry.transient;
                    let _ = guard.insert(entry);
                    if transient {
                        cache.remove_if(&key, |e| e.transient);
                    }
                    return outcome.map_err(|e| e.for_request(auth, &request.step_up_scopes));
                }
            }
        }
        Err(ExchangeError::new(
            ExchangeErrorKind::Transport,
            "the cached token kept expiring",
        ))
    }

    /// The shared store first, then the token endpoint.
    async fn produce(
        &self,
        key: &[u8; 32],
        auth: &AuthContext,
        subject: &str,
        request: &ExchangeRequest,
    ) -> Entry {
        let store = self.inner.store.as_deref();
        if let Some(store) = store
            && let Some(stored) = store.get(key).await
            && let Ok(left) = stored
                .reuse_until
                .duration_since(std::time::SystemTime::now())
            && !left.is_zero()
        {
            let now = Instant::now();
            return Entry {
                outcome: Ok(ExchangedToken {
                    token: stored.token.into(),
                    expires_at: None,
                    scope: stored.scope.map(Into::into),
                }),
                until: deadline(now, left),
                produced: now,
                transient: false,
            };
        }
        let outcome = self.exchange(auth, subject, request).await;
        let now = Instant::now();
        let (outcome, reuse) = match outcome {
            Ok((token, expires_in)) => {
                let reuse = cache::reuse_for(expires_in, self.inner.settings.margin);
                if let (Some(store), Some(ttl)) = (store, reuse) {
                    let stored = StoredToken::new(
                        token.token.to_string(),
                        crate::clock::system_now_after(ttl),
                        token.scope.as_deref().map(str::to_owned),
                    );
                    store.put(key, stored).await;
                }
                (Ok(token), reuse)
            }
            Err(err) => (Err(err), None),
        };
        Entry {
            outcome,
            until: deadline(now, reuse.unwrap_or_default()),
            produced: now,
            transient: reuse.is_none(),
        }
    }

    /// One request to the token endpoint.
    async fn exchange(
        &self,
        auth: &AuthContext,
        subject: &str,
        request: &ExchangeRequest,
    ) -> Result<(ExchangedToken, Option<u64>), ExchangeError> {
        let s = &self.inner.settings;
        self.check_issuer(auth.issuer())?;
        // In an outage's cooldown: refused at once, without a request
        // (see `crate::breaker`).
        let breaker = self.breaker(auth.issuer());
        let pass = breaker.admit().ok_or_else(|| {
            ExchangeError::new(
                ExchangeErrorKind::Transport,
                "the token endpoint failed moments ago (no answer, 5xx or 429, the deadline, or its discovery): not asked again before its cooldown ends",
            )
        })?;
        let endpoint = match self.endpoint(auth.issuer(), auth.tenant().is_some()).await {
            Ok(url) => url,
            Err(e) => {
                // A discovery's answer is the same for every caller: a
                // failed one is not tried again per call.
                pass.settle(Settle::Outage);
                return Err(e);
            }
        };
        let scope = request.scopes.join(" ");
        let default_scope;
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(8);
        match s.grant {
            ExchangeGrant::TokenExchange => {
                form.push(("grant_type", TOKEN_EXCHANGE));
                form.push(("subject_token", subject));
                form.push(("subject_token_type", ACCESS_TOKEN_TYPE));
                if !request.audience.is_empty() {
                    form.push(("audience", &request.audience));
                }
                // RFC 8707 section 2: a resource is an absolute URI without
                // a fragment.
                if Url::parse(&request.audience).is_ok_and(|u| u.fragment().is_none()) {
                    form.push(("resource", &request.audience));
                }
                if !scope.is_empty() {
                    form.push(("scope", &scope));
                }
            }
            ExchangeGrant::EntraOnBehalfOf => {
                form.push(("grant_type", JWT_BEARER));
                form.push(("assertion", subject));
                form.push(("requested_token_use", "on_behalf_of"));
                let scope = if scope.is_empty() {
                    default_scope = format!("{}/.default", request.audience.trim_end_matches('/'));
                    &default_scope
                } else {
                    &scope
                };
                form.push(("scope", scope));
            }
        }
        let http = crate::fetch::client_form_post(
            self.inner.client.post(&endpoint),
            form,
            s.auth_method,
            &s.client_id,
            &s.client_secret,
            self.inner.caller_client,
        );
        self.inner.exchanges.fetch_add(1, Ordering::Relaxed);
        crate::metrics::emit("mcp_oauth2_token_exchange_calls_total", "endpoint", "token");
        let max = s.max_response_bytes;
        let asked = &endpoint;
        // An error is `(failure, detail)`: an outage is no answer, a 5xx
        // or 429 (whatever the body says), the deadline; an answer that is
        // no token response (a redirect, another media type, too large) is
        // `malformed_response`, not `transport` (found from outside: a 200
        // of HTML was `transport`, which the docs keep for no answer).
        let sent = async move {
            let response = http
                .send()
                .await
                .map_err(|e| (Failed::Outage, crate::fetch::request_error(e)))?;
            // A caller's client may have followed a redirect: an answer
            // from another URL is never used.
            let response =
                crate::fetch::from_url(response, asked).map_err(|e| (Failed::Unusable, e))?;
            let status = response.status();
            let outage = status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS;
            if status.is_redirection() {
                return Err((
                    Failed::Unusable,
                    format!("HTTP status {status}: redirects are not followed"),
                ));
            }
            let body = crate::fetch::read_json_any_status(response, max)
                .await
                .map_err(|(unusable, e)| {
                    let failed = match (outage, unusable) {
                        (true, _) => Failed::Outage,
                        (false, true) => Failed::Unusable,
                        (false, false) => Failed::Transport,
                    };
                    (failed, format!("HTTP status {status}: {e}"))
                })?;
            Ok((status, body, outage))
        };
        let answer = match tokio::time::timeout(s.timeout, sent).await {
            Ok(answer) => answer,
            Err(_) => Err((Failed::Outage, "timed out".to_owned())),
        };
        pass.settle(match &answer {
            Err((Failed::Outage, _)) | Ok((_, _, true)) => Settle::Outage,
            _ => Settle::Answered,
        });
        let (status, body) = match answer {
            Ok((status, body, _)) => (status, body),
            Err((Failed::Unusable, e)) => {
                tracing::warn!(endpoint = %crate::fetch::Logged(&endpoint), error = %e, "the token endpoint's answer is not usable");
                return Err(ExchangeError::new(
                    ExchangeErrorKind::MalformedResponse,
                    format!("{}: {e}", crate::fetch::Logged(&endpoint)),
                ));
            }
            Err((_, e)) => return Err(self.transport(&endpoint, e)),
        };
        let text = std::str::from_utf8(&body).map_err(|_| malformed("the answer is not UTF-8"))?;
        let members = Members::parse(text)
            .map_err(|_| malformed("the answer is not a JSON object without repeated members"))?;
        // A 5xx or 429 is an outage whatever its body says (its cooldown
        // started above): `transport`, as the calls refused during the
        // cooldown are (found from outside: the first was `server_error`,
        // typed as a refusal, the next ones `transport`).
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            let code = members
                .str("error")
                .ok()
                .flatten()
                .filter(|c| error::is_error_code(c));
            return Err(self.transport(
                &endpoint,
                format!("HTTP status {status} ({})", code.as_deref().unwrap_or("-")),
            ));
        }
        // RFC 6749 section 5.2: an answer holding `error` is an error
        // answer whatever its status (found from outside: a 200 holding
        // both `access_token` and `error` was used as a token). Its code
        // is the refusal it names, as in a 400.
        if status != http::StatusCode::OK || members.contains("error") {
            let code = members.str("error").ok().flatten();
            // Entra ID says why in `suberror` (consent_required, ...);
            // kept only when it is a well-formed code.
            let suberror = members
                .str("suberror")
                .ok()
                .flatten()
                .filter(|s| error::is_error_code(s));
            return Err(match code {
                Some(code) if error::is_error_code(&code) => {
                    tracing::info!(
                        endpoint = %crate::fetch::Logged(&endpoint),
                        error = %code,
                        suberror = suberror.as_deref().unwrap_or_default(),
                        subject = crate::audit::loggable(auth.subject()).as_ref(),
                        "the token endpoint refused an exchange"
                    );
                    ExchangeError::refused(&code, suberror.as_deref())
                }
                // An answer, and no OAuth error answer (RFC 6749 section
                // 5.2): unusable, as a 200 without a token is.
                _ => malformed(
                    "an error answer (an error status or member) without an OAuth error code",
                ),
            });
        }
        read_token_response(&members, subject)
    }

    fn transport(&self, endpoint: &Url, detail: String) -> ExchangeError {
        let shown = crate::fetch::Logged(endpoint);
        tracing::warn!(endpoint = %shown, error = %detail, "token exchange failed");
        ExchangeError::new(ExchangeErrorKind::Transport, format!("{shown}: {detail}"))
    }

    /// The outage breaker of the token endpoint used for `issuer`'s
    /// callers.
    fn breaker(&self, issuer: &str) -> Arc<Breaker> {
        let key = if self.inner.settings.endpoint.is_some() {
            ""
        } else {
            issuer
        };
        let mut breakers = lock(&self.inner.breakers);
        if let Some(breaker) = breakers.get(key) {
            return Arc::clone(breaker);
        }
        let breaker = Arc::new(Breaker::new("token_exchange", "transport"));
        breakers.insert(key.to_owned(), Arc::clone(&breaker));
        breaker
    }

    /// Never an exchange for an issuer the client is not registered at
    /// (when that is said).
    fn check_issuer(&self, issuer: &str) -> Result<(), ExchangeError> {
        let s = &self.inner.settings;
        if !s.issuers.is_empty() && !s.issuers.iter().any(|allowed| allowed == issuer) {
            tracing::warn!(
                issuer,
                "refused a token exchange: this server's client is not registered at the caller's issuer"
            );
            return Err(ExchangeError::new(
                ExchangeErrorKind::IssuerNotAllowed,
                "the caller's issuer is not one this server's client is registered at",
            ));
        }
        Ok(())
    }

    /// The configured endpoint, or the one discovered from `issuer` (after
    /// [`check_issuer`](Self::check_issuer)). For a tenant of an issuer
    /// template (`tenant`), whose metadata any tenant's administrator may
    /// shape, a discovered endpoint must be on the issuer's own origin: the
    /// client's secret is sent there (found from outside: with
    /// `MCP_OAUTH2_TENANTS=*`, a tenant's metadata could name any host).
    async fn endpoint(&self, issuer: &str, tenant: bool) -> Result<Url, ExchangeError> {
        let s = &self.inner.settings;
        if let Some(url) = &s.endpoint {
            return Ok(url.clone());
        }
        if let Some(url) = lock(&self.inner.discovered).get(issuer) {
            return Ok(url.clone());
        }
        let fetcher = Fetcher::with_client(
            self.inner.client.clone(),
            s.max_response_bytes,
            s.allow_insecure_loopback,
            s.timeout,
        );
        let url = fetcher
            .discover_endpoint(issuer, "token_endpoint")
            .await
            .map_err(|e| {
                tracing::warn!(issuer, error = %e, "token endpoint discovery failed");
                ExchangeError::new(ExchangeErrorKind::Transport, e.to_string())
            })?;
        if tenant && Url::parse(issuer).map_or(true, |i| i.origin() != url.origin()) {
            tracing::warn!(
                issuer,
                endpoint = %crate::fetch::Logged(&url),
                "refused a token exchange: the tenant's discovered token endpoint is not on its issuer's origin"
            );
            return Err(ExchangeError::new(
                ExchangeErrorKind::IssuerNotAllowed,
                "the tenant's discovered token endpoint is not on its issuer's origin: give the endpoint",
            ));
        }
        lock(&self.inner.discovered).insert(issuer.to_owned(), url.clone());
        Ok(url)
    }
}

/// How a token request failed before its answer could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// No answer, a 5xx or 429, the deadline: `transport`, and the
    /// endpoint's breaker counts it.
    Outage,
    /// The answer came but could not be read whole (a reset mid-body):
    /// `transport`, not counted as an outage.
    Transport,
    /// An answer that is no token response: `malformed_response`.
    Unusable,
}

fn malformed(detail: &str) -> ExchangeError {
    tracing::warn!(reason = detail, "the token endpoint's answer is not usable");
    ExchangeError::new(ExchangeErrorKind::MalformedResponse, detail)
}

/// RFC 8693 section 2.2.1 / RFC 6749 section 5.1: `access_token` (not the
/// caller's own), `token_type` Bearer, optional `issued_token_type` (an
/// access token or a JWT), `expires_in` (whole seconds), `scope`.
fn read_token_response(
    members: &Members<'_>,
    subject: &str,
) -> Result<(ExchangedToken, Option<u64>), ExchangeError> {
    let string = |name: &str| {
        members
            .str(name)
            .map_err(|()| malformed("a member of the answer is not a string"))
    };
    let token = string("access_token")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("the answer has no access_token"))?;
    // The endpoint handed the caller's token back, alone or inside
    // another text (`<token> `, `Bearer <token>`, `<token>.`): using it
    // downstream would be the passthrough this exchange exists to avoid
    // (found from outside: a trailing space passed an exact comparison,
    // and the downstream read the caller's token after trimming it).
    if token.contains(subject) {
        return Err(malformed("the answer is the caller's own token"));
    }
    // RFC 6750 section 2.1: what goes after `Bearer ` is one b64token; a
    // space, a tab or a quote in it would make the downstream read
    // another token, or none.
    if !crate::bearer::is_b64token(token.as_bytes()) {
        return Err(malformed("the access_token is not an RFC 6750 b64token"));
    }
    if !string("token_type")?.is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
        return Err(malformed("token_type is not Bearer"));
    }
    if let Some(issued) = string("issued_token_type")?
        && issued != ACCESS_TOKEN_TYPE
        && issued != JWT_TOKEN_TYPE
    {
        return Err(malformed("issued_token_type is not an access token"));
    }
    let expires_in = match members.get("expires_in") {
        None => None,
        Some(raw) => Some(
            raw.get()
                .parse::<u64>()
                .map_err(|_| malformed("expires_in is not a whole number of seconds"))?,
        ),
    };
    let scope = string("scope")?;
    let now = Instant::now();
    Ok((
        ExchangedToken {
            token: Arc::from(&*token),
            // A lifetime past what the clock can represent is unknown
            // (`None`), not "now" (`deadline` saturates to `now`).
            expires_at: expires_in.and_then(|s| now.checked_add(Duration::from_secs(s))),
            scope: scope.map(|s| Arc::from(&*s)),
        },
        expires_in,
    ))
}

fn grant_name(grant: ExchangeGrant) -> &'static str {
    match grant {
        ExchangeGrant::TokenExchange => TOKEN_EXCHANGE,
        ExchangeGrant::EntraOnBehalfOf => JWT_BEARER,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
