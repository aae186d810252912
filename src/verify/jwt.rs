//! [`JwtVerifier`]: RFC 9068 JWT access tokens verified with the issuer's JWKS.
//!
//! Order of checks, cheapest first, so that garbage never costs a signature
//! check or a network fetch:
//! 1. structure: three canonical base64url parts, the first two JSON
//!    objects without repeated member names at any depth, a non-empty
//!    signature of a plausible length for the algorithm (five parts is a
//!    JWE: refused);
//! 2. header: `alg` on the configured allowlist (never `none` in any case,
//!    never HMAC), `typ` per [`TypPolicy`](crate::TypPolicy), no `crit`, `b64`, `cty`, `enc` or
//!    `zip`, `kid` a string if present; `jku`, `x5u`, `jwk`, `x5c` and
//!    `x5t` are ignored and never fetched (RFC 8725 section 3.1);
//! 3. claims: the [token policy](crate::policy) shared with introspection
//!    (`iss` one of the configured issuers exactly, so an unknown issuer
//!    never causes a fetch; `exp` present and not past, within the lifetime
//!    cap; `nbf`/`iat` not in the future; the audience rule; `sub`; no
//!    `cnf`);
//! 4. key: from that issuer's key set, chosen by `kid` and matching the
//!    algorithm (`kty`, `crv`, the JWK's own `alg`, `use`); a `kid` missing
//!    from the set refetches it at most once per cooldown, a known `kid`
//!    with the wrong algorithm never does;
//! 5. signature.

use std::borrow::Cow;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;

use super::{TokenVerifier, VerifyFuture};
use crate::bearer::BearerToken;
use crate::clock::now_unix;
use crate::config::AuthConfig;
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::fetch::Fetcher;
use crate::json::{self, Members};
use crate::jwks::cache::{CachePolicy, JwksCache, Lookup, log_key_notes};
use crate::jwks::key::{hashes_with_sha256, verify_prehashed, verify_signature};
use crate::jwks::keyset::KeySet;
use crate::policy::{Source, TokenPolicy};
use crate::verify::token_cache::{self, Entry, TokenCache};

/// Verifies JWT access tokens against the configured issuers' key sets.
///
/// Cheap to clone; clones share the key caches.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// Key sets, in the policy's issuer order.
    issuers: Vec<IssuerKeys>,
    /// What the claims must satisfy (shared with introspection).
    policy: Arc<TokenPolicy>,
    cache: Option<TokenCache>,
    resource: String,
    algorithms: Vec<Algorithm>,
    require_keys_before_ready: bool,
    /// The last header that passed [`JwtVerifier::check_header`] (see
    /// [`KnownHeader`]).
    known_header: ArcSwapOption<KnownHeader>,
}

/// A JOSE header that passed the header checks, kept with the exact
/// base64url text it came from.
///
/// Every token of an issuer carries the same header, byte for byte (`alg`,
/// `typ`, `kid`): its decoding, parsing and checks are a function of that
/// text alone and of this verifier's configuration, so a token whose
/// header text equals the last accepted one reuses the outcome instead of
/// deciding again (a fifth of the fixed cost of a cold verification).
/// Any other text is decoded, parsed and checked in full, as before. One
/// entry, replaced by the next header that passes (a key rotation changes
/// `kid`); a header longer than [`KnownHeader::MAX_LEN`] is never kept.
/// Hand-written (one slot swapped atomically) rather than a cache crate:
/// nothing is evicted, there is one entry.
struct KnownHeader {
    /// The header part of the token, as sent (base64url).
    b64: Box<str>,
    alg: Algorithm,
    kid: Option<Box<str>>,
    typ: Option<Box<str>>,
}

impl KnownHeader {
    /// The longest header text kept (real headers are under 200
    /// characters; a header with a certificate chain is decoded each time).
    const MAX_LEN: usize = 512;
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(IssuerKeys::name)
                    .collect::<Vec<_>>(),
            )
            .field("resource", &self.inner.resource)
            .field("algorithms", &self.inner.algorithms)
            .field("backend", &crate::jwks::key::backend_name())
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `config`, with the default HTTP client (rustls with the
    /// platform's trust roots, no redirects, the configured deadline).
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        let client = crate::fetch::default_client(config.http_timeout)?;
        Ok(Self::with_fetch_client(config, client))
    }

    /// A verifier that fetches metadata and keys with `client` (for custom
    /// trust roots or proxies).
    ///
    /// Whatever `client` is configured to do, redirects are refused (a
    /// response from another URL than the one asked is thrown away) and each
    /// request is bounded by the configured `http_timeout`.
    pub fn with_http_client(config: &AuthConfig, client: reqwest::Client) -> Self {
        Self::with_fetch_client(config, client.into())
    }

    fn with_fetch_client(config: &AuthConfig, client: crate::fetch::HttpClient) -> Self {
        let fetcher = Fetcher::with_client(
            client,
            config.max_document_bytes,
            config.allow_insecure_loopback,
            config.http_timeout,
        );
        let policy = cache_policy(config);
        let mut issuers: Vec<IssuerKeys> = config
            .issuers
            .iter()
            .map(|i| {
                let cache = JwksCache::new(
                    i.issuer.clone(),
                    i.jwks_uri.clone(),
                    fetcher.clone(),
                    policy,
                );
                IssuerKeys::Fixed(i.issuer.clone(), cache)
            })
            .collect();
        issuers.extend(
            config
                .tenant_issuers
                .iter()
                .map(|t| IssuerKeys::Tenants(Box::new(TenantKeys::new(t, &fetcher, policy)))),
        );
        Self::from_parts(config, issuers)
    }

    /// A verifier with a fixed key set (an RFC 7517 JWK Set document) for
    /// the only configured issuer, or the only tenant issuer when its key
    /// set is shared by every tenant: nothing is ever fetched, and the
    /// verifier is ready at once. For air-gapped deployments, pinned keys
    /// and tests.
    ///
    /// Keys are filtered as if fetched (unusable keys are dropped with a
    /// warning). Fails when the configuration names several issuers (or a
    /// tenant issuer with key sets per tenant), when the document is not a
    /// JWK Set, or when no usable key is left.
    pub fn with_static_jwks(config: &AuthConfig, jwks: &[u8]) -> Result<Self, ConfigError> {
        let name = match (config.issuers.as_slice(), config.tenant_issuers.as_slice()) {
            ([issuer], []) => issuer.issuer.clone(),
            ([], [tenants]) if TenantKeys::shares_keys(tenants) => tenants.template.clone(),
            _ => {
                return Err(ConfigError::new(
                    "issuer",
                    "a static key set needs exactly one issuer (or one tenant issuer with a shared key set)",
                ));
            }
        };
        let (set, dropped) =
            KeySet::parse(jwks).map_err(|e| ConfigError::new("jwks", e.to_owned()))?;
        log_key_notes(&name, &set, &dropped);
        if set.len() == 0 {
            return Err(ConfigError::new("jwks", "the key set has no usable keys"));
        }
        let cache = JwksCache::fixed(name.clone(), set, cache_policy(config));
        let keys = match config.tenant_issuers.first() {
            None => IssuerKeys::Fixed(name, cache),
            Some(t) => IssuerKeys::Tenants(Box::new(TenantKeys {
                config: t.clone(),
                shared: Some(cache),
                per_tenant: quick_cache::sync::Cache::new(1),
                fetcher: None,
                policy: cache_policy(config),
                new_tenants: None,
            })),
        };
        Ok(Self::from_parts(config, vec![keys]))
    }

    fn from_parts(config: &AuthConfig, issuers: Vec<IssuerKeys>) -> Self {
        // The header check accepts the algorithms of any issuer; the token's
        // issuer's own list is applied once the claims name it.
        let mut algorithms: Vec<Algorithm> = Vec::new();
        let per_issuer = config
            .issuers
            .iter()
            .filter_map(|i| i.policy.as_ref())
            .chain(
                config
                    .tenant_issuers
                    .iter()
                    .filter_map(|t| t.policy.as_ref()),
            )
            .filter_map(|p| p.algorithms.as_ref());
        for a in std::iter::once(&config.algorithms)
            .chain(per_issuer)
            .flatten()
        {
            if !algorithms.contains(&a.to_jwt()) {
                algorithms.push(a.to_jwt());
            }
        }
        Self {
            inner: Arc::new(Inner {
                cache: TokenCache::new(
                    config.verified_cache_max_entries,
                    config.verified_cache_max_age.as_secs(),
                ),
                issuers,
                policy: Arc::new(TokenPolicy::new(config)),
                resource: config.resource.clone(),
                algorithms,
                require_keys_before_ready: config.require_keys_before_ready,
                known_header: ArcSwapOption::empty(),
            }),
        }
    }

    /// Fetches every issuer's key set now (discovery included), and the
    /// shared key set of each tenant issuer that has one (key sets per
    /// tenant are fetched on first use). Returns the first error; the caches
    /// keep retrying on demand either way.
    pub async fn prefetch(&self) -> Result<(), crate::Error> {
        for keys in &self.inner.issuers {
            if let Some(cache) = keys.eager() {
                cache.refresh_now().await.map_err(|e| {
                    crate::Error::KeysUnavailable(format!("issuer {}: {e}", keys.name()))
                })?;
            }
        }
        Ok(())
    }

    /// Fetches the issuers' key sets that are not loaded yet, each only
    /// when its failure backoff allows (see `JwksCache::load_if_due`); loaded
    /// ones are left alone (found from outside: a probe re-downloaded a
    /// healthy issuer's set while another issuer was down). For the
    /// readiness probe, which anyone may call.
    pub(crate) async fn load_missing(&self) {
        futures_util::future::join_all(
            self.inner
                .issuers
                .iter()
                .filter_map(IssuerKeys::eager)
                .map(|cache| cache.load_if_due()),
        )
        .await;
    }

    /// Whether the verifier can verify tokens: every issuer's key set (and
    /// every shared tenant key set) has been fetched successfully at least
    /// once; key sets per tenant are fetched on first use and not waited for. With
    /// [`require_keys_before_ready(false)`](crate::AuthConfigBuilder::require_keys_before_ready)
    /// it is always `true`. Meant for a readiness probe; once ready, a later
    /// key-server outage does not make it unready (the stale window and then
    /// 503 answers handle that).
    pub fn is_ready(&self) -> bool {
        !self.inner.require_keys_before_ready
            || self
                .inner
                .issuers
                .iter()
                .filter_map(IssuerKeys::eager)
                .all(|c| c.is_loaded())
    }

    /// Whether every issuer's key server has answered: a key set loaded, or
    /// one read that holds no usable key (see [`Self::is_ready`]). A server
    /// that also verifies opaque tokens by introspection is ready then: an
    /// issuer of opaque tokens only may sign nothing (found from outside:
    /// such a deployment never became ready).
    pub(crate) fn has_answered(&self) -> bool {
        self.inner
            .issuers
            .iter()
            .filter_map(IssuerKeys::eager)
            .all(|c| c.has_answered())
    }

    async fn verify_token(&self, token: &str) -> Result<AuthContext, AuthError> {
        let now = now_unix();
        // 0: a token verified before (see `token_cache` for why this is safe).
        // A miss costs a short keyed hash, not the token's SHA-256.
        let probe = match &self.inner.cache {
            Some(cache) => {
                let probe = cache.probe(token);
                if let Some(ctx) = self.cached(cache, probe, token, now) {
                    return Ok(ctx);
                }
                cache.count_miss();
                Some(probe)
            }
            None => None,
        };
        // 1-3: everything that needs neither keys nor the network; the
        // header and the claims are decoded and parsed once each.
        let parsed = Parsed::split(token)?;
        let header = self.header(parsed.header_b64)?;
        let alg = header.alg;
        check_signature_length(alg, parsed.signature.len())?;
        let claims_text = decode_part(parsed.payload_b64)?;
        let claims = parse_members(&claims_text)?;
        let policy = &self.inner.policy;
        // The issuer's own algorithms and `typ` rule, once `iss` names it
        // (the header check above admitted those of any issuer).
        let typ = header.typ.as_deref();
        let kid = header.kid.as_deref();
        let checked = match policy.check_with(&claims, now, Source::Jwt, |rules| {
            if !rules.algorithms.iter().any(|a| a.to_jwt() == alg) {
                return Err(AuthErrorKind::DisallowedAlgorithm.into());
            }
            if !rules.typ_allowed(typ) {
                return Err(crate::policy::invalid_type(typ));
            }
            Ok(())
        }) {
            Ok(checked) => checked,
            // The audience a refused token carried is logged for the
            // operator only when a trusted issuer really signed it.
            Err(err)
                if err.kind() == AuthErrorKind::InvalidAudience && err.diagnosis().is_some() =>
            {
                return Err(self.confirm_diagnosis(err, &claims, &parsed, alg, kid));
            }
            Err(err) => return Err(err),
        };
        // 4: the key (may fetch; an unknown or unlisted tenant never gets here).
        let issuer_keys = self
            .inner
            .issuers
            .get(checked.issuer)
            .ok_or(AuthErrorKind::InvalidIssuer)
            .and_then(|k| k.for_tenant(checked.tenant.as_ref()))?;
        let keys = match issuer_keys.key_set(kid, alg).await {
            Lookup::Keys(keys) => keys,
            Lookup::Unavailable => return Err(AuthErrorKind::KeysUnavailable.into()),
        };
        // 5: the signature, with the key's algorithm (checked to fit above).
        let signing_input = parsed.signing_input.as_bytes();
        let candidates = keys.candidates(kid, alg);
        if candidates.is_empty() {
            return Err(AuthErrorKind::UnknownKey.into());
        }
        // With the cache on, the token's SHA-256 is needed too: for the
        // algorithms that hash with SHA-256, the signing input is hashed
        // once for both (the hash state is cloned before it is finished).
        let prehashed = (probe.is_some() && hashes_with_sha256(alg)).then(|| {
            let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            hash.update(signing_input);
            let digest = hash.clone().finish();
            (hash, digest)
        });
        let Some(verified_by) = candidates.iter().find(|k| {
            prehashed
                .as_ref()
                .and_then(|(_, digest)| verify_prehashed(alg, k, digest, &parsed.signature))
                .unwrap_or_else(|| verify_signature(alg, k, signing_input, &parsed.signature))
        }) else {
            return Err(AuthErrorKind::InvalidSignature.into());
        };
        let ctx = policy.context(&claims, &checked)?;
        if let (Some(cache), Some(probe)) = (&self.inner.cache, probe) {
            let entry = Entry {
                ctx: ctx.clone(),
                // `Source::Jwt` guarantees `exp`; without it, nothing is kept.
                until: checked
                    .exp
                    .map_or(now, |exp| exp.saturating_add(policy.leeway()))
                    .min(now.saturating_add(cache.max_age)),
                issuer: checked.issuer,
                key: verified_by.fingerprint,
                digest: match prehashed {
                    Some((mut hash, _)) => {
                        // The signing input is a prefix of the token.
                        let rest = token.as_bytes().get(signing_input.len()..);
                        hash.update(rest.unwrap_or_default());
                        let digest = token_cache::digest_array(&hash.finish());
                        token_cache::remember_key(token, digest);
                        digest
                    }
                    None => token_cache::token_key(token),
                },
            };
            cache.insert(probe, entry, now);
        }
        Ok(ctx)
    }

    /// The context of a token verified before whose key is still trusted
    /// (a hit is counted; a miss is the caller's to count).
    fn cached(&self, cache: &TokenCache, probe: u64, token: &str, now: u64) -> Option<AuthContext> {
        let entry = cache.get(probe, token, now)?;
        if self
            .inner
            .issuers
            .get(entry.issuer)
            .and_then(|k| k.existing(entry.ctx.tenant()))
            .is_some_and(|keys| keys.trusts(entry.key))
        {
            cache.count_hit();
            return Some(entry.ctx);
        }
        cache.remove(probe, &entry.digest);
        None
    }

    /// The token policy this verifier applies (shared with introspection).
    pub(crate) fn policy(&self) -> &Arc<TokenPolicy> {
        &self.inner.policy
    }

    /// Entries in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// The header part `b64` decoded, parsed and checked (rule 2), or the
    /// outcome kept for the same text ([`KnownHeader`]).
    fn header(&self, b64: &str) -> Result<Arc<KnownHeader>, AuthError> {
        if let Some(known) = self.inner.known_header.load_full()
            && *known.b64 == *b64
        {
            return Ok(known);
        }
        let text = decode_part(b64)?;
        let members = parse_members(&text)?;
        let (alg, kid) = self.check_header(&members)?;
        // `check_header` refused a `typ` that is not a string.
        let typ = members.str("typ").ok().flatten();
        let checked = Arc::new(KnownHeader {
            b64: b64.into(),
            alg,
            kid: kid.map(Into::into),
            typ: typ.map(Into::into),
        });
        if b64.len() <= KnownHeader::MAX_LEN {
            self.inner.known_header.store(Some(Arc::clone(&checked)));
        }
        Ok(checked)
    }

    fn check_header<'h>(
        &self,
        header: &Members<'h>,
    ) -> Result<(Algorithm, Option<Cow<'h, str>>), AuthError> {
        let Ok(Some(alg)) = header.str("alg") else {
            return Err(AuthErrorKind::MalformedToken.into());
        };
        // Parsing is exact and case-sensitive: "none", "None", "HS256" with a
        // public key, ... are all refused here (RFC 8725 sections 2.1, 3.1).
        let alg = alg
            .parse::<Algorithm>()
            .ok()
            .filter(|a| self.inner.algorithms.contains(a))
            .ok_or_else(|| AuthError::new(AuthErrorKind::DisallowedAlgorithm))?;
        if UNSUPPORTED_HEADER_MEMBERS
            .iter()
            .any(|k| header.contains(k))
        {
            return Err(AuthErrorKind::UnsupportedHeader.into());
        }
        let typ = header
            .str("typ")
            .map_err(|()| AuthError::new(AuthErrorKind::InvalidType))?;
        if !self.inner.policy.typ_allowed(typ.as_deref()) {
            return Err(crate::policy::invalid_type(typ.as_deref()));
        }
        let kid = header
            .str("kid")
            .map_err(|()| AuthError::new(AuthErrorKind::UnsupportedHeader))?;
        Ok((alg, kid))
    }
}

/// JOSE header members no token or DPoP proof may hold: RFC 7515 section
/// 4.1.11, no extension is understood, so any `crit` is fatal; RFC 7797
/// `b64` changes what is signed; `cty` announces a nested JWT, `enc` and
/// `zip` an encrypted one.
pub(crate) const UNSUPPORTED_HEADER_MEMBERS: [&str; 5] = ["crit", "b64", "cty", "enc", "zip"];

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token.as_str()))
    }

    fn verify_cached(&self, token: BearerToken<'_>) -> Option<AuthContext> {
        let cache = self.inner.cache.as_ref()?;
        let token = token.as_str();
        self.cached(cache, cache.probe(token), token, now_unix())
    }

    fn add_metrics(&self, out: &mut crate::MetricsSnapshot) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(cache) = &self.inner.cache {
            let c = &cache.counters;
            out.cache_hits += c.hits.load(Relaxed);
            out.cache_misses += c.misses.load(Relaxed);
            out.cache_evictions += c.evictions.load(Relaxed);
            out.cache_invalidations += c.invalidated.load(Relaxed);
            out.cache_entries += cache.len();
        }
        for issuer in &self.inner.issuers {
            issuer.for_each(|name, keys| {
                out.jwks_fetches += keys.fetches.load(Relaxed);
                out.jwks_fetch_failures += keys.failures.load(Relaxed);
                keys.fetch_latency.merge_into(&mut out.jwks_fetch_latency);
                out.key_set_age.insert(name.to_owned(), keys.age());
            });
        }
    }
}

/// The key sets of one configured issuer or tenant template.
enum IssuerKeys {
    /// A fixed issuer and its key set.
    Fixed(String, Arc<JwksCache>),
    /// A tenant template.
    Tenants(Box<TenantKeys>),
}

impl IssuerKeys {
    fn name(&self) -> &str {
        match self {
            Self::Fixed(name, _) => name,
            Self::Tenants(t) => &t.config.template,
        }
    }

    /// The key set fetched at start and waited for by readiness: a fixed
    /// issuer's, or a tenant template's shared one.
    fn eager(&self) -> Option<&Arc<JwksCache>> {
        match self {
            Self::Fixed(_, cache) => Some(cache),
            Self::Tenants(t) => t.shared.as_ref(),
        }
    }

    /// The key set for a token of `tenant` (created on first use for a
    /// tenant of a template with key sets per tenant): `KeysUnavailable`
    /// past the budget of new tenants, `InvalidIssuer` for a token that
    /// does not fit the issuer.
    fn for_tenant(&self, tenant: Option<&Arc<str>>) -> Result<Arc<JwksCache>, AuthErrorKind> {
        match (self, tenant) {
            (Self::Fixed(_, cache), None) => Ok(Arc::clone(cache)),
            (Self::Tenants(t), Some(tenant)) => t.keys_for(tenant),
            _ => Err(AuthErrorKind::InvalidIssuer),
        }
    }

    /// The key set a cached verification of `tenant` used, if still kept.
    fn existing(&self, tenant: Option<&str>) -> Option<Arc<JwksCache>> {
        match (self, tenant) {
            (Self::Fixed(_, cache), None) => Some(Arc::clone(cache)),
            (Self::Tenants(t), Some(tenant)) => match &t.shared {
                Some(shared) => Some(Arc::clone(shared)),
                None => t.per_tenant.peek(tenant),
            },
            _ => None,
        }
    }

    /// Every key set kept, with the issuer it serves.
    fn for_each(&self, mut f: impl FnMut(&str, &JwksCache)) {
        match self {
            Self::Fixed(name, cache) => f(name, cache),
            Self::Tenants(t) => {
                if let Some(shared) = &t.shared {
                    f(&t.config.template, shared);
                }
                for (tenant, cache) in t.per_tenant.iter() {
                    f(&t.config.issuer_for(&tenant), &cache);
                }
            }
        }
    }
}

/// The key sets of a tenant template: one shared by every tenant, or one
/// per tenant, created on first use (after the tenant passed the policy:
/// allowlisted, well-formed, agreeing with its claim) and kept in a bounded
/// cache, each with the usual cache rules (single flight, cooldown, stale
/// window).
struct TenantKeys {
    config: crate::TenantIssuer,
    shared: Option<Arc<JwksCache>>,
    per_tenant: quick_cache::sync::Cache<Arc<str>, Arc<JwksCache>>,
    /// `None` for a pinned shared key set (nothing is fetched).
    fetcher: Option<Fetcher>,
    policy: CachePolicy,
    /// The budget of new tenants a second, when any tenant is accepted:
    /// tenants without a usable key set (not kept yet, or kept after failed
    /// fetches) let through to a fetch, each costing the authorization
    /// server a discovery and a key-set request.
    new_tenants: Option<crate::breaker::PerSecond>,
}

impl TenantKeys {
    /// Whether every tenant of `config` shares one key set: a key-set URL
    /// without the placeholder, or discovery from an issuer without one (the
    /// tenant is a claim).
    fn shares_keys(config: &crate::TenantIssuer) -> bool {
        use crate::config::tenant::TENANT_PLACEHOLDER;
        match config.jwks_uri.as_deref() {
            Some(uri) => !uri.contains(TENANT_PLACEHOLDER),
            None => !config.template.contains(TENANT_PLACEHOLDER),
        }
    }

    fn new(config: &crate::TenantIssuer, fetcher: &Fetcher, policy: CachePolicy) -> Self {
        let shared_uri = Self::shares_keys(config).then(|| {
            config
                .jwks_uri
                .as_deref()
                .and_then(|uri| url::Url::parse(uri).ok())
        });
        let shared = shared_uri
            .map(|uri| JwksCache::new(config.template.clone(), uri, fetcher.clone(), policy));
        let capacity = match config.allowed_tenants() {
            Some(list) => list.len(),
            None => config.max_key_sets,
        };
        let new_tenants = (shared.is_none() && config.allowed_tenants().is_none())
            .then(|| crate::breaker::PerSecond::new(config.new_tenants_per_second));
        Self {
            config: config.clone(),
            shared,
            per_tenant: quick_cache::sync::Cache::new(capacity.max(1)),
            fetcher: Some(fetcher.clone()),
            policy,
            new_tenants,
        }
    }

    fn keys_for(&self, tenant: &Arc<str>) -> Result<Arc<JwksCache>, AuthErrorKind> {
        if let Some(shared) = &self.shared {
            return Ok(Arc::clone(shared));
        }
        let fetcher = self.fetcher.as_ref().ok_or(AuthErrorKind::InvalidIssuer)?;
        if let Some(budget) = &self.new_tenants {
            let kept = self.per_tenant.get(tenant);
            // A tenant kept without a usable key set (its fetches failed:
            // a made-up tenant) is fetched again after each retry
            // interval: within the same budget, or a thousand kept
            // made-up tenants would cost the issuer a request each every
            // few seconds.
            if let Some(kept) = &kept
                && kept.current().is_some()
            {
                return Ok(Arc::clone(kept));
            }
            if budget.take() != crate::breaker::Take::Taken {
                tracing::debug!(
                    issuer = %self.config.template,
                    per_second = self.config.new_tenants_per_second,
                    "refused a token of a tenant without a usable key set: the budget of new tenants a second is spent"
                );
                return Err(AuthErrorKind::KeysUnavailable);
            }
            if let Some(kept) = kept {
                return Ok(kept);
            }
        }
        let created = self.per_tenant.get_or_insert_with(tenant, || {
            let issuer = self.config.issuer_for(tenant);
            // The tenant id's charset keeps a filled template a URL of the
            // same shape (checked at build time with a sample id).
            let jwks = self.config.jwks_uri.as_deref().and_then(|uri| {
                url::Url::parse(&uri.replacen(crate::config::tenant::TENANT_PLACEHOLDER, tenant, 1))
                    .ok()
            });
            Ok::<_, std::convert::Infallible>(JwksCache::new(
                issuer,
                jwks,
                fetcher.clone(),
                self.policy,
            ))
        });
        let Ok(cache) = created;
        Ok(cache)
    }
}

/// The cache policy of a configuration.
fn cache_policy(config: &AuthConfig) -> CachePolicy {
    CachePolicy {
        ttl: config.jwks_cache_ttl,
        max_ttl: config.jwks_cache_max_ttl,
        cooldown: config.jwks_refresh_cooldown,
        max_stale: config.jwks_max_stale,
    }
}

/// A signature whose length cannot be right for `alg` is refused before any
/// key is looked up: RFC 7518 section 3.4 fixes ECDSA lengths (`R || S`),
/// RFC 8037 section 3.1 Ed25519's, and an RSA signature is as long as a
/// 2048..=8192-bit modulus.
fn check_signature_length(alg: Algorithm, len: usize) -> Result<(), AuthError> {
    use Algorithm::*;
    let ok = match alg {
        ES256 | EdDSA => len == 64,
        ES384 => len == 96,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => (256..=1024).contains(&len),
        // HMAC never passes the allowlist; anything newer is refused rather
        // than guessed at.
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AuthErrorKind::InvalidSignature.into())
    }
}

/// A compact JWS split into its parts, not yet trusted.
impl JwtVerifier {
    /// `err` with its diagnosis (the claims that explain the refusal) kept
    /// only if one of the trusted issuers signed the token: claims of a
    /// token nobody trusted signed are the sender's text and are never
    /// logged. Only the key set already held is used (no fetch).
    fn confirm_diagnosis(
        &self,
        err: AuthError,
        claims: &Members<'_>,
        parsed: &Parsed<'_>,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> AuthError {
        let iss = claims.str("iss").ok().flatten();
        // A fixed issuer's keys (a tenant template's audience refusals are
        // logged without the token's audience).
        let issuer = iss.and_then(|iss| {
            self.inner.issuers.iter().find_map(|k| match k {
                IssuerKeys::Fixed(name, cache) if *name == *iss => Some(cache),
                _ => None,
            })
        });
        let Some(issuer_keys) = issuer else {
            return err.without_diagnosis();
        };
        // The keys held now: a diagnosis never costs a fetch.
        let Some(keys) = issuer_keys.current() else {
            return err.without_diagnosis();
        };
        let signing_input = parsed.signing_input.as_bytes();
        let signed = keys
            .candidates(kid, alg)
            .iter()
            .any(|k| verify_signature(alg, k, signing_input, &parsed.signature));
        if signed { err } else { err.without_diagnosis() }
    }
}

struct Parsed<'a> {
    header_b64: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
    signing_input: &'a str,
}

impl<'a> Parsed<'a> {
    fn split(token: &'a str) -> Result<Self, AuthError> {
        let malformed = || AuthError::new(AuthErrorKind::MalformedToken);
        // The last dot starts the signature, the first one ends the (short)
        // header; the payload between them must have no dot.
        // `memchr`'s searches are vectorized (the signature part is about
        // 350 characters for RSA); `str::rsplit_once` scans a word at a time.
        let last = memchr::memrchr(b'.', token.as_bytes()).ok_or_else(malformed)?;
        let (signing_input, s) = (
            token.get(..last).ok_or_else(malformed)?,
            token.get(last + 1..).ok_or_else(malformed)?,
        );
        let first = memchr::memchr(b'.', signing_input.as_bytes()).ok_or_else(malformed)?;
        let (h, p) = (
            signing_input.get(..first).ok_or_else(malformed)?,
            signing_input.get(first + 1..).ok_or_else(malformed)?,
        );
        match memchr::memchr_iter(b'.', p.as_bytes()).count() {
            0 => {}
            // Five parts is a JWE (RFC 7516 section 7.1); anything else is garbage.
            2 => return Err(AuthErrorKind::EncryptedToken.into()),
            _ => return Err(malformed()),
        }
        if h.is_empty() || p.is_empty() {
            return Err(AuthErrorKind::MalformedToken.into());
        }
        // Canonical base64url only (no padding, no stray bits), so that one
        // signature has one encoding.
        // An empty signature (an unsecured JWS, RFC 7515 appendix A.5) is
        // refused by the length check once `alg` is known.
        let signature = decode_b64(s)?;
        Ok(Self {
            header_b64: h,
            payload_b64: p,
            signature,
            signing_input,
        })
    }
}

/// One part of a compact JWS decoded: canonical base64url without padding
/// (RFC 7515 section 2), so that one value has one encoding. Refused, as
/// `malformed_token`: a padding `=`, any character outside the URL-safe
/// alphabet (`+`, `/`, whitespace), a length of 1 modulo 4, and set bits
/// after the last whole byte.
fn decode_b64(part: &str) -> Result<Vec<u8>, AuthError> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(part)
        .map_err(|_| AuthError::new(AuthErrorKind::MalformedToken))
}

/// A header or payload part as JSON text (base64url, UTF-8).
fn decode_part(part: &str) -> Result<String, AuthError> {
    String::from_utf8(decode_b64(part)?).map_err(|_| AuthError::new(AuthErrorKind::MalformedToken))
}

fn parse_members(text: &str) -> Result<Members<'_>, AuthError> {
    Members::parse(text).map_err(|e| match e {
        json::ObjectError::Malformed => AuthError::new(AuthErrorKind::MalformedToken),
        json::ObjectError::Duplicate => AuthError::new(AuthErrorKind::DuplicateMember),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_shapes() {
        assert_eq!(
            Parsed::split("a.b.c.d.e").err().map(|e| e.kind()),
            Some(AuthErrorKind::EncryptedToken)
        );
        assert_eq!(
            Parsed::split("a.b").err().map(|e| e.kind()),
            Some(AuthErrorKind::MalformedToken)
        );
        assert_eq!(
            Parsed::split(".b.c").err().map(|e| e.kind()),
            Some(AuthErrorKind::MalformedToken)
        );
        let p = Parsed::split("aa.bb.cQ").ok().unwrap();
        assert_eq!(p.signing_input, "aa.bb");
        assert_eq!(p.signature, [0x71]);
        // RFC 7515 section 2: base64url without padding; canonical bits only.
        for bad in ["aa.bb.cQ=", "aa.bb.c", "aa.bb.cc", "aa.bb.c+", "aa.bb.c/"] {
            assert_eq!(
                Parsed::split(bad).err().map(|e| e.kind()),
                Some(AuthErrorKind::MalformedToken),
                "{bad}"
            );
        }
        assert!(Parsed::split("aa.bb.").ok().unwrap().signature.is_empty());
    }

    /// What the `base64` crate's strict unpadded URL-safe engine (the
    /// decoder before issue 13's sixteenth pass) makes of `text`.
    fn reference_decode(text: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()
    }

    // RFC 7515 section 2: base64url without padding. Every spelling the
    // earlier decoder refused is refused (`malformed_token`), and every
    // accepted one decodes to the same bytes.
    #[test]
    fn part_decoding_refuses_every_non_canonical_spelling() {
        for bad in [
            "cQ=", "cQ==", "c", "cc", "cR", "c+", "c/", "c Q", " cQ", "cQ\n", "YWJj=", "YW=j",
            "YWJjZA=", "YWJjZA==", "YWJjZB", "YWJjZGU=", "YWJjZGF", "\u{e9}Q",
        ] {
            assert_eq!(
                reference_decode(bad),
                None,
                "{bad:?}: the reference accepts it"
            );
            assert_eq!(
                decode_b64(bad).err().map(|e| e.kind()),
                Some(AuthErrorKind::MalformedToken),
                "{bad:?}"
            );
        }
        for good in ["", "cQ", "YWI", "YWJj", "YWJjZA", "YWJjZGU", "_-8", "-_-_"] {
            assert_eq!(decode_b64(good).ok(), reference_decode(good), "{good:?}");
        }
        assert_eq!(
            decode_part("bm90IFVURi04_w").err().map(|e| e.kind()),
            Some(AuthErrorKind::MalformedToken),
            "not UTF-8"
        );
        assert_eq!(decode_part("e30").ok().as_deref(), Some("{}"));
    }

    fn base64_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        // Mostly the URL-safe alphabet, with the characters a wrong decoder
        // would take (padding, the standard alphabet, whitespace, a dot).
        let ch = prop_oneof![
            20 => proptest::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9'].into()),
            3 => Just('-'),
            3 => Just('_'),
            1 => Just('='),
            1 => Just('+'),
            1 => Just('/'),
            1 => Just(' '),
            1 => Just('.'),
        ];
        proptest::collection::vec(ch, 0..80).prop_map(|v| v.into_iter().collect())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// Issue 13: the SIMD decoder accepts exactly what the `base64`
        /// crate's strict engine accepts, with the same bytes.
        #[test]
        fn part_decoding_agrees_with_the_reference(text in base64_like()) {
            proptest::prop_assert_eq!(decode_b64(&text).ok(), reference_decode(&text), "{:?}", text);
        }

        /// Every byte string round-trips, whatever its length modulo 3.
        #[test]
        fn part_decoding_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            use base64::Engine as _;
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            proptest::prop_assert_eq!(decode_b64(&text).ok(), Some(bytes));
        }
    }

    // RFC 7518 sections 3.3, 3.4; RFC 8037 section 3.1.
    #[test]
    fn signature_lengths() {
        use Algorithm::*;
        assert!(check_signature_length(ES256, 64).is_ok());
        assert!(check_signature_length(ES256, 63).is_err());
        assert!(check_signature_length(ES256, 72).is_err());
        assert!(check_signature_length(ES384, 96).is_ok());
        assert!(check_signature_length(EdDSA, 64).is_ok());
        assert!(check_signature_length(EdDSA, 32).is_err());
        assert!(check_signature_length(RS256, 256).is_ok());
        assert!(check_signature_length(PS512, 1024).is_ok());
        assert!(check_signature_length(RS256, 128).is_err());
        assert!(check_signature_length(HS256, 32).is_err());
        for alg in [ES256, ES384, EdDSA, RS256, PS256] {
            assert!(check_signature_length(alg, 0).is_err());
        }
    }
}
