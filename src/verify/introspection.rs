//! [`IntrospectionVerifier`]: opaque tokens checked with the authorization
//! server's RFC 7662 introspection endpoint.
//!
//! This module keeps only HTTP: which endpoint to ask, how to
//! authenticate to it, and the cache. The answer must say `active: true`
//! (RFC 7662 section 2.2); then the same [token policy](crate::policy) as for
//! JWTs decides: issuer among the configured ones, `exp` not past, the
//! lifetime cap, the audience rule (with `accept_audience` and the Cognito
//! rule), `scope_claims`, and key binding (`cnf`, or `token_type: DPoP`, is
//! refused as Bearer, RFC 9449 section 7.2).
//!
//! Endpoints: each issuer may have its own settings
//! ([`AuthConfigBuilder::issuer_introspection`](crate::AuthConfigBuilder::issuer_introspection)),
//! vouching for that issuer's tokens only; the shared settings
//! ([`AuthConfigBuilder::introspection`](crate::AuthConfigBuilder::introspection))
//! vouch for every configured issuer. They are asked in issuer order, the
//! shared one last, until one says `active`.
//!
//! Results are cached in a bounded [`quick_cache`] keyed by a SHA-256 hash of
//! the token (never the token itself), until the earlier of `exp` and the
//! cache TTL; refusals are cached for the negative TTL; a failure to reach
//! the endpoint is not cached. An entry past its time is never served: it is
//! dropped when met, or evicted (the cache holds at most `max_entries`,
//! and at most 4 KiB per allowed entry: see `ResultCache`). Concurrent lookups of one token share one
//! request; a lookup that is cancelled hands over to a waiting one, so no
//! lookup is ever left behind.
//!
//! An outage of an endpoint (no answer, a 5xx or 429, past `http_timeout`;
//! or a failed discovery of it) opens a short cooldown for that endpoint:
//! tokens not in the cache are refused at once (`introspection_unavailable`,
//! 503) instead of costing it one request each; after 1 s one request
//! probes it (the others still fail fast), and an answer closes the
//! cooldown, so a recovered endpoint is used again at once, while a failed
//! probe doubles the cooldown, up to 5 s (as the key sets' retries after a
//! failed fetch). Any other answer (a 4xx such as `invalid_client`, about
//! this server's own configuration; a redirect; a body that is not JSON)
//! is not an outage: it is answered at once and opens no cooldown. Cached
//! results (and results in a shared store) keep serving until their
//! deadline; each replica has its own cooldown.
//!
//! With a shared store ([`AuthConfigBuilder::shared_store`](crate::AuthConfigBuilder::shared_store)),
//! active results are also shared by the replicas: under
//! `mcp_oauth2:introspection:<SHA-256 of the token>`, the endpoint's answer
//! (its claims, which hold no token) with the deadline of the entry, kept
//! no longer than that deadline, authenticated with HMAC-SHA256 under a key
//! derived from the client secret, client id and resource (a writer of the
//! store without the secret cannot plant an answer; another deployment's
//! answers are misses). A replica that misses its own cache asks
//! the store before the endpoint, and judges a stored answer again with the
//! same policy (so `exp` is checked again). Refusals stay local. A store
//! that is slow or down is skipped with a warning: the endpoint is asked,
//! as without a store (fail open to the authoritative source, never to
//! acceptance).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use super::token_cache::token_key;
use super::{TokenVerifier, VerifyFuture};
use crate::bearer::BearerToken;
use crate::breaker::{Breaker, Settle};
use crate::clock::{deadline, now_unix};
pub use crate::config::introspection::{ClientAuthMethod, ClientSecret, IntrospectionSettings};
use crate::config::{AuthConfig, check_https};
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::fetch::{HttpClient, default_client};
use crate::json::{Members, ObjectError};
use crate::policy::{Source, TokenPolicy};

type Outcome = Result<AuthContext, AuthErrorKind>;

/// A cached result. `until` is never later than the token's `exp` nor the
/// cache TTL.
#[derive(Clone)]
struct Entry {
    outcome: Outcome,
    until: Instant,
    /// When the lookup finished: a request that waited for it takes its
    /// result even when that is not to be kept (a zero TTL, a failure).
    produced: Instant,
    /// A failure to reach the endpoints: handed to the requests that waited
    /// for this lookup, then dropped (never answers a later request).
    transient: bool,
}

impl Entry {
    fn fresh(&self, now: Instant) -> bool {
        self.until > now
    }
}

/// The bounded result cache: keys are SHA-256 hashes of the token (never
/// the token), and a lookup in flight is a placeholder that concurrent
/// requests for the same token wait on (single flight; a cancelled or
/// failed lookup hands the placeholder to a waiter, so none is ever left
/// behind).
///
/// Bounded twice, as the verified-token cache is: in entries (the largest
/// `max_entries` of the endpoints' settings) and in bytes,
/// [`BYTES_PER_ENTRY`](crate::weighed::BYTES_PER_ENTRY) per allowed entry (40 MB at the default 10,000).
/// Each entry weighs what its context holds (the answer's members kept as
/// claims), at least `BYTES_PER_ENTRY`: found from outside, answers of
/// 250 KB kept about 360 KB each, 3.5 GB at the entry cap.
type ResultCache = crate::weighed::DigestCache<Entry>;

impl crate::weighed::HeldBytes for Entry {
    fn held_bytes(&self) -> usize {
        self.outcome.as_ref().map_or(0, AuthContext::retained_bytes)
    }
}

/// A refusal of an introspected token: it judged the endpoint's answer,
/// which may differ the next time, so the layer never remembers it as a
/// refusal of the token's bytes (found from outside: an answer refused for
/// its audience kept the token refused 30 s after the endpoint fixed it,
/// where the README promises 5 s).
fn answered(kind: AuthErrorKind) -> AuthError {
    AuthError::new(kind).judging_an_answer()
}

/// The deadline of one request to an endpoint: `http_timeout`, but within
/// nine tenths of the verification deadline, so that it fails (and the
/// endpoint's breaker learns of it) before the verification is abandoned.
fn endpoint_timeout(http_timeout: Duration, verify_timeout: Duration) -> Duration {
    http_timeout.min(verify_timeout.mul_f64(0.9))
}

/// One introspection endpoint and what it may vouch for.
struct Endpoint {
    /// Index of the issuer it belongs to (the issuer of an answer without
    /// `iss`, and the one its endpoint is discovered from).
    issuer: usize,
    /// Whether it vouches for its own issuer's tokens only (per-issuer
    /// settings) or for every configured issuer (the shared settings).
    only_own: bool,
    settings: IntrospectionSettings,
    url: Mutex<Discovered>,
    /// One discovery at a time: requests arriving meanwhile take its
    /// outcome (found from outside: sixty concurrent first tokens ran
    /// sixty discoveries, each with its own WARN line).
    discovering: tokio::sync::Mutex<()>,
    /// Authenticates the results of this endpoint shared in a store (see
    /// [`seal_key`]): a replica trusts a stored result only if it was made
    /// with the same client credentials for the same resource.
    seal: aws_lc_rs::hmac::Key,
    /// The outage cooldown of this endpoint and of its discovery.
    breaker: Breaker,
    /// Its requests a second (`max_lookups_per_second`).
    budget: crate::breaker::PerSecond,
}

/// What is known of an endpoint's URL.
enum Discovered {
    /// Not discovered yet.
    Unknown,
    /// Configured, or discovered.
    Found(Url),
    /// The issuer's metadata names no `introspection_endpoint` (read at
    /// the instant given): believed for [`ABSENT_RECHECK`].
    Absent(Instant),
    /// The last discovery failed (ended at the instant given): the
    /// requests that waited for it take its outcome.
    Failed(Instant),
}

impl Discovered {
    /// Whether the metadata was read lately and names no endpoint.
    fn absent_lately(&self) -> bool {
        matches!(self, Self::Absent(at) if at.elapsed() < ABSENT_RECHECK)
    }
}

/// How long an issuer's metadata without `introspection_endpoint` is
/// believed before it is read again (the issuer may add one).
const ABSENT_RECHECK: Duration = Duration::from_secs(300);

/// Why a request to an endpoint failed: the message for the log, and
/// whether it is an outage (no answer, a 5xx or 429, the deadline), which
/// opens the endpoint's [`Breaker`], or an answer that is not usable (a
/// 4xx about our own configuration, a redirect, a body that is not JSON),
/// which does not.
struct Failed {
    message: String,
    outage: bool,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

struct Inner {
    policy: Arc<TokenPolicy>,
    endpoints: Vec<Endpoint>,
    resource: String,
    client: HttpClient,
    /// Whether `client` is a caller's (it may follow redirects).
    caller_client: bool,
    allow_loopback_http: bool,
    timeout: Duration,
    max_bytes: usize,
    cache: ResultCache,
    calls: std::sync::atomic::AtomicU64,
    /// Shared-store operations that failed (read or write of a result).
    store_errors: std::sync::atomic::AtomicU64,
    /// Active results shared by replicas.
    store: Option<Arc<dyn crate::store::SharedStore>>,
}

/// The namespace of introspection results in a shared store.
const RESULT_NS: &str = "mcp_oauth2:introspection:";

/// The version byte of a shared result (format: version, endpoint index
/// as u16, deadline in Unix milliseconds as u64, all big-endian, the
/// HMAC-SHA256 tag, then the endpoint's answer). Version 1 had no tag: such
/// a value is a miss.
const SHARED_V2: u8 = 2;

/// Length of a shared result before the endpoint's answer.
const SHARED_HEAD: usize = 1 + 2 + 8 + TAG_LEN;

/// Length of the tag of a shared result (HMAC-SHA256).
const TAG_LEN: usize = 32;

/// The key that authenticates the results of an endpoint shared in a store.
///
/// Anyone who can write to the store could otherwise plant an active
/// answer for a token they made up and be admitted as any subject; and two
/// deployments sharing a store would share their answers. The key is
/// derived (HKDF-SHA256, RFC 5869) from what every replica of one
/// deployment already shares and nobody else holds: the client secret the
/// endpoint authenticates, salted with the client id and the resource.
fn seal_key(
    settings: &IntrospectionSettings,
    resource: &str,
) -> Result<aws_lc_rs::hmac::Key, ConfigError> {
    use aws_lc_rs::{hkdf, hmac};
    let mut salt = Vec::with_capacity(64 + settings.client_id.len() + resource.len());
    salt.extend_from_slice(b"mcp-oauth2 introspection results v2\0");
    salt.extend_from_slice(settings.client_id.as_bytes());
    salt.push(0);
    salt.extend_from_slice(resource.as_bytes());
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt)
        .extract(settings.client_secret.secret().as_bytes());
    prk.expand(&[b"hmac-sha256"], hmac::HMAC_SHA256)
        .map(Into::into)
        .map_err(|_| ConfigError::new("introspection", "could not derive the result store key"))
}

/// The tag of a shared result: its store key, its head and its answer.
fn shared_tag(
    key: &aws_lc_rs::hmac::Key,
    store_key: &str,
    head: &[u8],
    body: &[u8],
) -> aws_lc_rs::hmac::Tag {
    let mut ctx = aws_lc_rs::hmac::Context::with_key(key);
    ctx.update(
        &u64::try_from(store_key.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes(),
    );
    ctx.update(store_key.as_bytes());
    ctx.update(head);
    ctx.update(body);
    ctx.sign()
}

/// An active answer to share: which endpoint gave it, until when.
struct ToShare {
    endpoint: usize,
    body: Vec<u8>,
    ttl: Duration,
}

/// Verifies opaque tokens with RFC 7662 introspection. Cheap to clone.
#[derive(Clone)]
pub struct IntrospectionVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for IntrospectionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: Vec<_> = self
            .inner
            .endpoints
            .iter()
            .map(|e| {
                (
                    self.inner.policy.issuer(e.issuer),
                    &e.settings.client_id,
                    &e.settings.client_secret,
                )
            })
            .collect();
        f.debug_struct("IntrospectionVerifier")
            .field("resource", &self.inner.resource)
            .field("endpoints", &endpoints)
            .finish_non_exhaustive()
    }
}

impl IntrospectionVerifier {
    /// A verifier for `config`'s resource and issuers: `settings` describe
    /// the shared endpoint: given, it vouches for every configured issuer;
    /// discovered from the first issuer, for that issuer only. The issuers' own
    /// settings ([`AuthConfigBuilder::issuer_introspection`](crate::AuthConfigBuilder::issuer_introspection))
    /// are used too, before it.
    pub fn new(config: &AuthConfig, settings: IntrospectionSettings) -> Result<Self, ConfigError> {
        Self::build(
            config,
            Some(settings),
            (default_client(config.http_timeout)?, false),
            Arc::new(TokenPolicy::new(config)),
        )
    }

    /// Like [`new`](Self::new), with a caller's HTTP client (custom roots).
    ///
    /// Whatever `client` is configured to do, redirects are refused: the
    /// form (token, client secret) is never sent again to the URL a
    /// redirect names, and an answer from another URL than the endpoint's
    /// is `introspection_unavailable`.
    pub fn with_http_client(
        config: &AuthConfig,
        settings: IntrospectionSettings,
        client: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        Self::build(
            config,
            Some(settings),
            (client.into(), true),
            Arc::new(TokenPolicy::new(config)),
        )
    }

    /// A verifier for the introspection settings in `config`: the shared
    /// ones ([`AuthConfigBuilder::introspection`](crate::AuthConfigBuilder::introspection))
    /// and each issuer's. Fails when there are none.
    pub fn from_config(config: &AuthConfig) -> Result<Self, ConfigError> {
        Self::build(
            config,
            config.introspection.clone(),
            (default_client(config.http_timeout)?, false),
            Arc::new(TokenPolicy::new(config)),
        )
    }

    /// Whether `config` asks for introspection at all.
    pub(crate) fn configured(config: &AuthConfig) -> bool {
        config.introspection.is_some() || config.issuers.iter().any(|i| i.introspection.is_some())
    }

    /// The verifier of `config` sharing the JWT verifier's `policy`.
    pub(crate) fn with_policy(
        config: &AuthConfig,
        policy: Arc<TokenPolicy>,
    ) -> Result<Self, ConfigError> {
        Self::build(
            config,
            config.introspection.clone(),
            (default_client(config.http_timeout)?, false),
            policy,
        )
    }

    fn build(
        config: &AuthConfig,
        shared: Option<IntrospectionSettings>,
        (client, caller_client): (HttpClient, bool),
        policy: Arc<TokenPolicy>,
    ) -> Result<Self, ConfigError> {
        if config.issuers.is_empty() {
            if config.tenant_issuers.is_empty() {
                return Err(ConfigError::new(
                    "issuer",
                    "at least one issuer is required",
                ));
            }
            // Tenant templates only: the shared endpoint vouches for the
            // tenants they accept (an answer must then name its `iss`), and
            // there is no single issuer to discover it from.
            if shared.as_ref().is_some_and(|s| s.endpoint.is_none()) {
                return Err(crate::config::introspection::no_endpoint_to_discover());
            }
        }
        let own = config
            .issuers
            .iter()
            .enumerate()
            .filter_map(|(i, issuer)| issuer.introspection.clone().map(|s| (i, true, s)));
        let first_has_own = config
            .issuers
            .first()
            .is_some_and(|i| i.introspection.is_some());
        if let Some(s) = &shared
            && s.endpoint.is_none()
            && first_has_own
        {
            return Err(ConfigError::new(
                "introspection",
                "the shared settings would discover the first issuer's endpoint, which has its own settings: give the shared settings an endpoint",
            ));
        }
        // The shared settings' endpoint, when given, vouches for every
        // configured issuer (the operator named it for the deployment).
        // Discovered, it is the first issuer's own endpoint and vouches for
        // that issuer only, as an issuer's own settings do: another issuer's
        // users are not its to vouch for (found from outside in round 2:
        // issuer A's endpoint answered `iss` B, `sub` victim, and the
        // caller was B's victim). Tenant templates alone need an endpoint
        // (checked above).
        let shared = shared.map(|s| (0, s.endpoint.is_none(), s));
        let mut endpoints = Vec::new();
        for (issuer, only_own, settings) in own.chain(shared) {
            if let Some(endpoint) = &settings.endpoint {
                check_https(
                    endpoint,
                    config.allow_insecure_loopback,
                    "introspection_endpoint",
                )?;
            }
            settings.check(("client_id", "client_secret"))?;
            endpoints.push(Endpoint {
                issuer,
                only_own,
                url: Mutex::new(
                    settings
                        .endpoint
                        .clone()
                        .map_or(Discovered::Unknown, Discovered::Found),
                ),
                discovering: tokio::sync::Mutex::new(()),
                seal: seal_key(&settings, &config.resource)?,
                breaker: Breaker::new("introspection", "503 introspection_unavailable"),
                budget: crate::breaker::PerSecond::new(settings.lookups_per_second),
                settings,
            });
        }
        if endpoints.is_empty() {
            return Err(ConfigError::new(
                "introspection",
                "no introspection settings are configured",
            ));
        }
        let capacity = endpoints
            .iter()
            .map(|e| e.settings.max_entries)
            .max()
            .unwrap_or(1)
            .max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                policy,
                endpoints,
                resource: config.resource.clone(),
                client,
                caller_client,
                allow_loopback_http: config.allow_insecure_loopback,
                // Within the verification deadline: a request the layer's
                // `verify_timeout` cut off was dropped before it failed, so
                // a hung endpoint never opened the cooldown and every new
                // token cost it a request and its caller the whole wait
                // (found from outside, `MCP_OAUTH2_VERIFY_TIMEOUT=1`). It
                // times out first now, and counts as the outage it is.
                timeout: endpoint_timeout(config.http_timeout, config.verify_timeout),
                max_bytes: config.max_document_bytes,
                cache: crate::weighed::digest_cache(capacity),
                calls: Default::default(),
                store_errors: Default::default(),
                store: config.shared_store.clone(),
            }),
        })
    }

    async fn verify_token(&self, token: &str) -> Result<AuthContext, AuthError> {
        let key = token_key(token);
        let cache = &self.inner.cache;
        // A token whose active result just ran out is asked about again
        // outside the lookup budget: the budget is for tokens not known,
        // and a flood of made-up ones must not refuse a user's token each
        // time its result is renewed (found from outside: once a minute,
        // at `cache_ttl`). Only a real active answer makes one.
        let mut renewal = false;
        if let Some(entry) = cache.get(&key) {
            if entry.fresh(Instant::now()) {
                return entry.outcome.map_err(answered);
            }
            renewal = entry.outcome.is_ok();
            cache.remove_if(&key, |e| !e.fresh(Instant::now()));
        }
        // A result produced while this request waited is its answer; a
        // stale entry met on the way (it expired between two looks) is
        // dropped and the lookup tried again, a bounded number of times.
        let started = Instant::now();
        for _ in 0..3 {
            match cache.get_value_or_guard_async(&key).await {
                Ok(entry) if entry.produced >= started || entry.fresh(Instant::now()) => {
                    return entry.outcome.map_err(answered);
                }
                Ok(stale) => {
                    renewal |= stale.outcome.is_ok();
                    cache.remove_if(&key, |e| !e.fresh(Instant::now()));
                }
                Err(guard) => {
                    let entry = match self.shared_result(&key).await {
                        Some(entry) => entry,
                        None => {
                            let (entry, share) = self.lookup(token, renewal).await;
                            if let Some(share) = share {
                                self.share_result(&key, share).await;
                            }
                            entry
                        }
                    };
                    let outcome = entry.outcome.clone();
                    let transient = entry.transient;
                    // Wakes the waiters with the result; a transient one is
                    // then removed at once (no await in between).
                    let _ = guard.insert(entry);
                    if transient {
                        cache.remove_if(&key, |e| e.transient);
                    }
                    return outcome.map_err(answered);
                }
            }
        }
        Err(AuthErrorKind::IntrospectionUnavailable.into())
    }

    /// Asks the endpoints in order. The first `active` answer decides (its
    /// policy check included); inactive everywhere is inactive; an endpoint
    /// that cannot be reached makes the result unavailable unless another
    /// one knew the token.
    async fn lookup(&self, token: &str, renewal: bool) -> (Entry, Option<ToShare>) {
        let mut unavailable = false;
        let mut negative_ttl: Option<Duration> = None;
        for (index, endpoint) in self.inner.endpoints.iter().enumerate() {
            let outcome = self.introspect(endpoint, token, renewal).await;
            let now = Instant::now();
            let s = &endpoint.settings;
            match outcome {
                Err(AuthErrorKind::IntrospectionUnavailable) => unavailable = true,
                // This endpoint does not exist: the others decide.
                Err(AuthErrorKind::IntrospectionNotOffered) => {}
                Err(AuthErrorKind::TokenInactive) => {
                    negative_ttl =
                        Some(negative_ttl.map_or(s.negative_ttl, |t| t.min(s.negative_ttl)));
                }
                Ok((ctx, body)) => {
                    // Never past `exp` (without the leeway) nor the TTL.
                    let ttl = match ctx.expires_at_unix() {
                        Some(exp) => {
                            Duration::from_secs(exp.saturating_sub(now_unix())).min(s.cache_ttl)
                        }
                        None => s.cache_ttl,
                    };
                    let entry = Entry {
                        outcome: Ok(ctx),
                        until: deadline(now, ttl),
                        produced: now,
                        transient: false,
                    };
                    let share = ToShare {
                        endpoint: index,
                        body,
                        ttl,
                    };
                    return (entry, Some(share));
                }
                Err(kind) => {
                    let entry = Entry {
                        outcome: Err(kind),
                        until: deadline(now, s.negative_ttl),
                        produced: now,
                        transient: false,
                    };
                    return (entry, None);
                }
            }
        }
        let now = Instant::now();
        let transient = |kind| Entry {
            outcome: Err(kind),
            until: now,
            produced: now,
            transient: true,
        };
        let entry = match negative_ttl {
            Some(ttl) if !unavailable => Entry {
                outcome: Err(AuthErrorKind::TokenInactive),
                until: deadline(now, ttl),
                produced: now,
                transient: false,
            },
            _ if unavailable => transient(AuthErrorKind::IntrospectionUnavailable),
            // No endpoint exists to ask: an answer per endpoint, kept there
            // (`Discovered::Absent`), not per token.
            _ => transient(AuthErrorKind::IntrospectionNotOffered),
        };
        (entry, None)
    }

    /// Counts a failed shared-store operation (`store_errors`, and
    /// `mcp_oauth2_store_errors_total{user="introspection"}`).
    fn store_error(&self) {
        self.inner
            .store_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::emit("mcp_oauth2_store_errors_total", "user", "introspection");
    }

    /// An active result another replica (or this one) put in the shared
    /// store, judged again; `None`: no store, nothing there, or the store
    /// did not answer (then the endpoint is asked).
    async fn shared_result(&self, key: &[u8; 32]) -> Option<Entry> {
        let store = self.inner.store.as_ref()?;
        let store_key = crate::store::hashed_key(RESULT_NS, key);
        let stored = match store.get(&store_key).await {
            Ok(stored) => stored?,
            Err(e) => {
                self.store_error();
                crate::store::log_store_error!(
                    &e,
                    error = %e,
                    reason = "store_unavailable",
                    "introspection: the shared result store did not answer; asking the endpoint"
                );
                return None;
            }
        };
        let (endpoint, until_ms, tag, body) = decode_shared(&stored)?;
        let left = until_ms.saturating_sub(crate::clock::now_unix_millis());
        let endpoint = self.inner.endpoints.get(endpoint)?;
        // Made by a replica holding this endpoint's client secret, for this
        // resource and this token (constant-time comparison).
        let head = stored.get(..SHARED_HEAD - TAG_LEN)?;
        let expected = shared_tag(&endpoint.seal, &store_key, head, body);
        if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_ref(), tag).is_err() {
            tracing::warn!(
                reason = "store_result_forged",
                "introspection: a stored result is not authenticated by this deployment's key; asking the endpoint"
            );
            return None;
        }
        let ctx = self.judge(endpoint, body).ok()?;
        let now = Instant::now();
        (left > 0).then(|| Entry {
            outcome: Ok(ctx),
            until: deadline(now, Duration::from_millis(left)),
            produced: now,
            transient: false,
        })
    }

    /// Shares an active result with the other replicas (best effort: a
    /// store that does not answer only costs them an endpoint call).
    async fn share_result(&self, key: &[u8; 32], share: ToShare) {
        let Some(store) = &self.inner.store else {
            return;
        };
        if share.ttl.is_zero() {
            return;
        }
        let until_ms = crate::clock::now_unix_millis()
            .saturating_add(u64::try_from(share.ttl.as_millis()).unwrap_or(u64::MAX));
        let Some(endpoint) = self.inner.endpoints.get(share.endpoint) else {
            return;
        };
        let key = crate::store::hashed_key(RESULT_NS, key);
        let mut value = Vec::with_capacity(SHARED_HEAD + share.body.len());
        value.push(SHARED_V2);
        value.extend_from_slice(
            &u16::try_from(share.endpoint)
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        value.extend_from_slice(&until_ms.to_be_bytes());
        let tag = shared_tag(&endpoint.seal, &key, &value, &share.body);
        value.extend_from_slice(tag.as_ref());
        value.extend_from_slice(&share.body);
        if let Err(e) = store.put(&key, &value, share.ttl).await {
            self.store_error();
            crate::store::log_store_error!(
                &e,
                error = %e,
                reason = "store_unavailable",
                "introspection: could not share a result with the other replicas"
            );
        }
    }

    /// Whether the issuer's metadata was read lately and names no
    /// endpoint.
    fn known_absent(endpoint: &Endpoint) -> bool {
        lock(&endpoint.url).absent_lately()
    }

    /// What is known of the endpoint's URL for a request that began to
    /// ask at `asked`: `None` when a discovery is needed.
    fn known(endpoint: &Endpoint, asked: Instant) -> Option<Result<Url, AuthErrorKind>> {
        match &*lock(&endpoint.url) {
            Discovered::Found(url) => Some(Ok(url.clone())),
            absent if absent.absent_lately() => Some(Err(AuthErrorKind::IntrospectionNotOffered)),
            Discovered::Failed(at) if *at >= asked => {
                Some(Err(AuthErrorKind::IntrospectionUnavailable))
            }
            _ => None,
        }
    }

    async fn endpoint(&self, endpoint: &Endpoint) -> Result<Url, AuthErrorKind> {
        let asked = Instant::now();
        if let Some(known) = Self::known(endpoint, asked) {
            return known;
        }
        let _one = endpoint.discovering.lock().await;
        // A discovery that ended while this request waited is its answer.
        if let Some(known) = Self::known(endpoint, asked) {
            return known;
        }
        let found = self.discover(endpoint.issuer).await;
        *lock(&endpoint.url) = match &found {
            Ok(url) => Discovered::Found(url.clone()),
            Err(AuthErrorKind::IntrospectionNotOffered) => Discovered::Absent(Instant::now()),
            Err(_) => Discovered::Failed(Instant::now()),
        };
        found
    }

    /// Discovers the endpoints not configured nor discovered yet, and says
    /// in the log when an issuer offers none: called once when a server
    /// starts, so that a configuration without an endpoint to use is told
    /// at start-up, not at the first opaque token (found from outside:
    /// `MCP_OAUTH2_CLIENT_ID` set for the token exchange turns introspection
    /// on, and with an issuer whose metadata has no
    /// `introspection_endpoint` every token that is not a JWT got 503
    /// `introspection_unavailable` for good).
    pub(crate) async fn discover_endpoints(&self) {
        for endpoint in &self.inner.endpoints {
            if matches!(
                *lock(&endpoint.url),
                Discovered::Unknown | Discovered::Failed(_)
            ) && let Some(pass) = endpoint.breaker.admit()
            {
                let found = self.endpoint(endpoint).await;
                pass.settle(match found {
                    Err(AuthErrorKind::IntrospectionUnavailable) => Settle::Outage,
                    _ => Settle::Answered,
                });
            }
        }
    }

    /// The issuer's `introspection_endpoint`, by the crate's one discovery
    /// ([`Fetcher::discover_endpoint`](crate::fetch::Fetcher::discover_endpoint):
    /// one deadline for every discovery URL, the document's `issuer` equal
    /// to the issuer, no repeated member names, an `https://` endpoint).
    async fn discover(&self, issuer: usize) -> Result<Url, AuthErrorKind> {
        let issuer = self
            .inner
            .policy
            .issuer(issuer)
            .ok_or(AuthErrorKind::IntrospectionUnavailable)?;
        let fetcher = crate::fetch::Fetcher::with_client(
            self.inner.client.clone(),
            self.inner.max_bytes,
            self.inner.allow_loopback_http,
            self.inner.timeout,
        );
        fetcher
            .discover_endpoint(issuer, "introspection_endpoint")
            .await
            .map_err(|e| {
                if e.is_absent() {
                    tracing::warn!(
                        %issuer,
                        error = %e,
                        reason = "introspection_not_offered",
                        "the issuer's metadata names no introspection endpoint: tokens that are not JWTs are refused (401 introspection_not_offered) until it does; configure the endpoint (MCP_OAUTH2_INTROSPECTION_URI, IntrospectionSettings::endpoint) or leave introspection off"
                    );
                    AuthErrorKind::IntrospectionNotOffered
                } else {
                    tracing::warn!(%issuer, error = %e, "introspection discovery failed");
                    AuthErrorKind::IntrospectionUnavailable
                }
            })
    }

    async fn introspect(
        &self,
        endpoint: &Endpoint,
        token: &str,
        renewal: bool,
    ) -> Result<(AuthContext, Vec<u8>), AuthErrorKind> {
        if Self::known_absent(endpoint) {
            return Err(AuthErrorKind::IntrospectionNotOffered);
        }
        // A token not already known costs the endpoint a request: at most
        // `max_lookups_per_second` of them (found from outside: made-up
        // opaque tokens bought requests one for one).
        if !renewal && let crate::breaker::Take::Refused { first } = endpoint.budget.take() {
            if first {
                tracing::warn!(
                    issuer = self.inner.policy.issuer(endpoint.issuer).map(|i| &**i),
                    per_second = endpoint.settings.lookups_per_second,
                    reason = "introspection_budget",
                    "introspection: more new tokens this second than the endpoint may be asked about (max_lookups_per_second); the others get 503 introspection_unavailable until the next second"
                );
            }
            return Err(AuthErrorKind::IntrospectionUnavailable);
        }
        // In an outage's cooldown: refused at once, without a request
        // (see `crate::breaker`).
        let pass = endpoint
            .breaker
            .admit()
            .ok_or(AuthErrorKind::IntrospectionUnavailable)?;
        let url = match self.endpoint(endpoint).await {
            Ok(url) => url,
            // The issuer's answer, not an outage.
            Err(AuthErrorKind::IntrospectionNotOffered) => {
                pass.settle(Settle::Answered);
                return Err(AuthErrorKind::IntrospectionNotOffered);
            }
            Err(kind) => {
                // A discovery's answer is the same for every token: a
                // failed one (whatever the reason) is not tried again per
                // token.
                pass.settle(Settle::Outage);
                return Err(kind);
            }
        };
        self.inner
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::emit(
            "mcp_oauth2_introspection_calls_total",
            "endpoint",
            "introspection",
        );
        let s = &endpoint.settings;
        let form = vec![("token", token), ("token_type_hint", "access_token")];
        let request = crate::fetch::client_form_post(
            self.inner.client.post(&url),
            form,
            s.auth_method,
            &s.client_id,
            &s.client_secret,
            self.inner.caller_client,
        );
        let sent = self.send(request, &url).await;
        pass.settle(match &sent {
            Err(Failed { outage: true, .. }) => Settle::Outage,
            _ => Settle::Answered,
        });
        let doc = sent.map_err(|e| {
            tracing::warn!(endpoint = %crate::fetch::Logged(&url), error = %e, "token introspection failed");
            AuthErrorKind::IntrospectionUnavailable
        })?;
        self.judge(endpoint, &doc).map(|ctx| (ctx, doc))
    }

    /// RFC 7662 section 2.2 (`active` is the JSON `true`), then the token
    /// policy shared with the JWT verifier. The answer is read with the
    /// strict reader (a repeated member name is refused).
    fn judge(&self, endpoint: &Endpoint, body: &[u8]) -> Outcome {
        let unreadable = || {
            tracing::warn!("token introspection: the answer is not a JSON object");
            AuthErrorKind::IntrospectionUnavailable
        };
        let text = std::str::from_utf8(body).map_err(|_| unreadable())?;
        let claims = Members::parse(text).map_err(|e| match e {
            ObjectError::Malformed => unreadable(),
            ObjectError::Duplicate => AuthErrorKind::DuplicateMember,
        })?;
        if claims.get("active").map(|a| a.get()) != Some("true") {
            return Err(AuthErrorKind::TokenInactive);
        }
        let policy = &self.inner.policy;
        let source = Source::Introspection {
            issuer: endpoint.issuer,
            only_own: endpoint.only_own,
        };
        let checked = policy
            .check(&claims, now_unix(), source)
            .map_err(|e| e.kind())?;
        policy.context(&claims, &checked).map_err(|e| e.kind())
    }

    /// Sends a request to `url`: status 200, a JSON body within the size
    /// cap and the deadline, no redirects (an answer from another URL than
    /// `url`, which a caller's client may have followed, is refused).
    async fn send(&self, request: reqwest::RequestBuilder, url: &Url) -> Result<Vec<u8>, Failed> {
        let max = self.inner.max_bytes;
        let fut = async move {
            let response = request.send().await.map_err(|e| Failed {
                message: format!("request failed: {}", crate::fetch::request_error(e)),
                outage: true,
            })?;
            let response = crate::fetch::from_url(response, url).map_err(|message| Failed {
                message,
                outage: false,
            })?;
            let status = response.status();
            let outage = status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS;
            crate::fetch::read_json_body(response, max)
                .await
                .map_err(|message| Failed { message, outage })
        };
        tokio::time::timeout(self.inner.timeout, fut)
            .await
            .map_err(|_| Failed {
                message: "timed out".to_owned(),
                outage: true,
            })?
    }
}

impl TokenVerifier for IntrospectionVerifier {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token.as_str()))
    }

    /// An active token's cached introspection result (refusals take the
    /// slow path, where their own cache answers them).
    fn verify_cached(&self, token: BearerToken<'_>) -> Option<AuthContext> {
        self.inner
            .cache
            .get(&token_key(token.as_str()))
            .filter(|e| e.fresh(Instant::now()))?
            .outcome
            .ok()
    }

    fn add_metrics(&self, out: &mut crate::MetricsSnapshot) {
        use std::sync::atomic::Ordering::Relaxed;
        out.introspection_calls += self.inner.calls.load(Relaxed);
        out.store_errors += self.inner.store_errors.load(Relaxed);
    }
}

/// A shared result: (endpoint index, deadline in Unix ms, answer); `None`
/// for anything else (another version, too short).
/// A shared result's endpoint index, deadline, tag and answer; `None` for
/// another version or a value cut short.
fn decode_shared(stored: &[u8]) -> Option<(usize, u64, &[u8], &[u8])> {
    let (&version, rest) = stored.split_first()?;
    if version != SHARED_V2 {
        return None;
    }
    let (index, rest) = rest.split_first_chunk::<2>()?;
    let (until, rest) = rest.split_first_chunk::<8>()?;
    let (tag, body) = rest.split_first_chunk::<TAG_LEN>()?;
    Some((
        usize::from(u16::from_be_bytes(*index)),
        u64::from_be_bytes(*until),
        tag,
        body,
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Found from outside: answers of 250 KB kept about 360 KB each, 3.5 GB
    // at the default entry cap. The cache holds at most its byte budget,
    // and small answers are limited by the entry count alone.
    #[test]
    fn an_endpoint_times_out_within_the_verification_deadline() {
        let s = Duration::from_secs;
        assert_eq!(endpoint_timeout(s(5), s(30)), s(5));
        assert_eq!(endpoint_timeout(s(5), s(1)), Duration::from_millis(900));
    }

    #[test]
    fn the_result_cache_is_bounded_in_bytes() {
        let entry = |bytes: usize| {
            let mut claims = serde_json::Map::new();
            claims.insert("big".into(), serde_json::Value::String("x".repeat(bytes)));
            let now = Instant::now();
            Entry {
                outcome: Ok(AuthContext::builder("https://a.example", "u")
                    .claims(claims)
                    .build()),
                until: now + std::time::Duration::from_secs(60),
                produced: now,
                transient: false,
            }
        };
        let cache: ResultCache = crate::weighed::digest_cache(100);
        for i in 0..100u8 {
            cache.insert([i; 32], entry(250_000));
        }
        assert!(
            cache.weight() <= 100 * crate::weighed::BYTES_PER_ENTRY,
            "{}",
            cache.weight()
        );
        assert!(cache.len() < 5, "{} answers of 250 KB kept", cache.len());
        // Small answers weigh the least an entry weighs: half the entry
        // cap stays (the cache's shards each hold their share).
        let cache: ResultCache = crate::weighed::digest_cache(100);
        for i in 0..50u8 {
            cache.insert([i; 32], entry(10));
        }
        assert!(cache.len() >= 45, "{}", cache.len());
    }

    #[test]
    fn shared_results_of_another_shape_are_misses() {
        let mut value = vec![SHARED_V2, 0, 3];
        value.extend_from_slice(&7u64.to_be_bytes());
        value.extend_from_slice(&[9; TAG_LEN]);
        value.extend_from_slice(b"{}");
        assert_eq!(
            decode_shared(&value),
            Some((3, 7, &[9; TAG_LEN][..], &b"{}"[..]))
        );
        // Another version (1 had no tag), or cut short: never read as a result.
        let mut other = value.clone();
        other[0] = 1;
        assert_eq!(decode_shared(&other), None);
        assert_eq!(decode_shared(&value[..SHARED_HEAD - 1]), None);
        assert_eq!(decode_shared(&[]), None);
    }

    // The key is the deployment's: another client secret, client id or
    // resource gives another tag for the same stored result.
    #[test]
    fn the_seal_key_depends_on_the_secret_the_client_and_the_resource() {
        let tag = |id: &str, secret: &str, resource: &str| {
            let key = seal_key(&IntrospectionSettings::new(id, secret), resource).unwrap();
            shared_tag(&key, "k", b"head", b"{}").as_ref().to_vec()
        };
        let base = tag("rs", "secret", "https://h/mcp");
        assert_eq!(base, tag("rs", "secret", "https://h/mcp"));
        assert_ne!(base, tag("rs", "other", "https://h/mcp"));
        assert_ne!(base, tag("rs2", "secret", "https://h/mcp"));
        assert_ne!(base, tag("rs", "secret", "https://h/other"));
    }
}
