//! Grouped settings: the knobs that belong together, each group with its
//! documented defaults. [`AuthConfigBuilder::jwks_policy`] and
//! [`AuthConfigBuilder::token_cache_policy`] set a whole group; the older
//! one-knob setters ([`AuthConfigBuilder::jwks_cache_ttl`], ...) stay as
//! shortcuts that change one knob of the group.

use std::time::Duration;

use super::{
    AuthConfigBuilder, DEFAULT_HTTP_TIMEOUT, DEFAULT_JWKS_CACHE_MAX_TTL, DEFAULT_JWKS_CACHE_TTL,
    DEFAULT_JWKS_MAX_STALE, DEFAULT_JWKS_REFRESH_COOLDOWN, DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_VERIFIED_CACHE_MAX_AGE, DEFAULT_VERIFIED_CACHE_MAX_ENTRIES,
};

/// How key sets (and the issuer metadata that points to them) are fetched
/// and kept. Set with [`AuthConfigBuilder::jwks_policy`].
///
/// | knob | default | meaning |
/// |---|---|---|
/// | [`cache_ttl`](Self::cache_ttl) | 300 s | how long a fetched key set is used before it is fetched again |
/// | [`refresh_cooldown`](Self::refresh_cooldown) | 30 s | minimum time between two fetches forced by an unknown `kid` or a failure |
/// | [`max_stale`](Self::max_stale) | 1 h | how long the last good key set serves while refreshing fails; then 503 |
/// | [`max_ttl`](Self::max_ttl) | 1 h | upper bound on a lifetime taken from `Cache-Control: max-age` |
/// | [`http_timeout`](Self::http_timeout) | 5 s | total deadline of one key-set or introspection request, and of an issuer's whole discovery (every metadata URL tried) |
/// | [`max_document_bytes`](Self::max_document_bytes) | 256 KiB | cap on a fetched document |
///
/// ```
/// use std::time::Duration;
/// use mcp_oauth2::{AuthConfig, JwksPolicy};
///
/// let config = AuthConfig::builder()
///     .issuer("https://auth.example.com")
///     .resource("https://mcp.example.com/mcp")
///     .jwks_policy(
///         JwksPolicy::default()
///             .cache_ttl(Duration::from_secs(600))
///             .refresh_cooldown(Duration::from_secs(10)),
///     )
///     .build()?;
/// # Ok::<(), mcp_oauth2::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksPolicy {
    pub(super) cache_ttl: Duration,
    pub(super) refresh_cooldown: Duration,
    pub(super) max_stale: Duration,
    pub(super) max_ttl: Duration,
    pub(super) http_timeout: Duration,
    pub(super) max_document_bytes: usize,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            cache_ttl: DEFAULT_JWKS_CACHE_TTL,
            refresh_cooldown: DEFAULT_JWKS_REFRESH_COOLDOWN,
            max_stale: DEFAULT_JWKS_MAX_STALE,
            max_ttl: DEFAULT_JWKS_CACHE_MAX_TTL,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

impl JwksPolicy {
    /// How long a fetched key set is used before it is fetched again
    /// (default 300 s; must be greater than zero and at most a day).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Minimum time between two fetches forced by an unknown `kid` or after
    /// a failed fetch (default 30 s; must be
    /// greater than zero and at most a day).
    pub fn refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.refresh_cooldown = cooldown;
        self
    }

    /// How long the last good key set keeps serving while refreshing fails
    /// (default 1 h); after that, requests fail
    /// closed with 503.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Upper bound on a key set's lifetime taken from the key server's
    /// `Cache-Control: max-age` (default 1 h; must
    /// be greater than zero and at most a day). See [`AuthConfigBuilder::jwks_cache_max_ttl`]
    /// for how `max-age` is clamped.
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// Total deadline of one key-set or introspection request, and of an
    /// issuer's whole metadata discovery: the discovery URLs (RFC 8414
    /// section 3.1, OpenID Connect Discovery) share it, so an issuer that
    /// does not answer costs it once, not once per URL (default 5 s; must
    /// be greater than zero).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Cap on a fetched metadata or key-set document (default
    /// 256 KiB).
    pub fn max_document_bytes(mut self, bytes: usize) -> Self {
        self.max_document_bytes = bytes;
        self
    }
}

/// The cache of verified tokens: a token sent again costs a hash and a
/// lookup instead of a full verification. Set with
/// [`AuthConfigBuilder::token_cache_policy`].
///
/// | knob | default | meaning |
/// |---|---|---|
/// | [`max_entries`](Self::max_entries) | 100,000 | how many verified tokens are remembered; 0 turns the cache off |
/// | [`max_age`](Self::max_age) | 300 s | the longest time one is remembered; zero turns the cache off |
///
/// An entry never outlives the token's `exp`, and is ignored once the key
/// that verified it leaves the key set.
///
/// ```
/// use std::time::Duration;
/// use mcp_oauth2::{AuthConfig, TokenCachePolicy};
///
/// let config = AuthConfig::builder()
///     .issuer("https://auth.example.com")
///     .resource("https://mcp.example.com/mcp")
///     .token_cache_policy(TokenCachePolicy::default().max_age(Duration::from_secs(60)))
///     .build()?;
/// # Ok::<(), mcp_oauth2::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCachePolicy {
    pub(super) max_entries: usize,
    pub(super) max_age: Duration,
}

impl Default for TokenCachePolicy {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_VERIFIED_CACHE_MAX_ENTRIES,
            max_age: DEFAULT_VERIFIED_CACHE_MAX_AGE,
        }
    }
}

impl TokenCachePolicy {
    /// A policy that remembers nothing: every request is verified in full.
    pub fn disabled() -> Self {
        Self {
            max_entries: 0,
            max_age: Duration::ZERO,
        }
    }

    /// How many verified tokens are remembered (default
    /// 100,000; 0 turns the cache off).
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries;
        self
    }

    /// The longest time a verified token is remembered (default
    /// 300 s; zero turns the cache off).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }
}

impl AuthConfigBuilder {
    /// How key sets are fetched and kept, all knobs at once (default
    /// [`JwksPolicy::default`]). Replaces every knob, including those set
    /// before with the one-knob shortcuts ([`jwks_cache_ttl`](Self::jwks_cache_ttl),
    /// [`jwks_refresh_cooldown`](Self::jwks_refresh_cooldown),
    /// [`jwks_max_stale`](Self::jwks_max_stale),
    /// [`jwks_cache_max_ttl`](Self::jwks_cache_max_ttl),
    /// [`http_timeout`](Self::http_timeout),
    /// [`max_document_bytes`](Self::max_document_bytes)); a shortcut called
    /// after it changes its one knob.
    pub fn jwks_policy(mut self, policy: JwksPolicy) -> Self {
        self.jwks = policy;
        self
    }

    /// The cache of verified tokens, both knobs at once (default
    /// [`TokenCachePolicy::default`]). Replaces what the shortcuts
    /// [`verified_cache_max_entries`](Self::verified_cache_max_entries) and
    /// [`verified_cache_max_age`](Self::verified_cache_max_age) set before.
    pub fn token_cache_policy(mut self, policy: TokenCachePolicy) -> Self {
        self.token_cache = policy;
        self
    }

    /// Shortcut for [`JwksPolicy::cache_ttl`]: how long a fetched key set is
    /// used before it is fetched again (default 300 s, at most a day).
    pub fn jwks_cache_ttl(mut self, ttl: Duration) -> Self {
        self.jwks.cache_ttl = ttl;
        self
    }

    /// Shortcut for [`JwksPolicy::refresh_cooldown`]: minimum time between
    /// two fetches forced by an unknown `kid` or after a failed fetch
    /// (default 30 s, at most a day).
    pub fn jwks_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks.refresh_cooldown = cooldown;
        self
    }

    /// Shortcut for [`JwksPolicy::max_stale`]: how long the last good key
    /// set keeps serving while refreshing fails (default
    /// 1 h); after that, requests fail closed with 503.
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.jwks.max_stale = max_stale;
        self
    }

    /// Shortcut for [`JwksPolicy::http_timeout`]: total deadline of one
    /// key-set fetch, and of an issuer's whole metadata discovery (default 5 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.jwks.http_timeout = timeout;
        self
    }

    /// Shortcut for [`JwksPolicy::max_document_bytes`]: cap on a fetched
    /// metadata or key-set document (default 256 KiB).
    pub fn max_document_bytes(mut self, bytes: usize) -> Self {
        self.jwks.max_document_bytes = bytes;
        self
    }

    /// Shortcut for [`JwksPolicy::max_ttl`]: upper bound on a key set's
    /// lifetime taken from the key server's `Cache-Control: max-age`
    /// (default 1 h, at most a day).
    ///
    /// A key-set response's `max-age` is honoured, clamped to at least the
    /// smaller of the refresh cooldown and [`jwks_cache_ttl`](Self::jwks_cache_ttl)
    /// and at most the larger of this bound and `jwks_cache_ttl`;
    /// `no-cache`, `no-store` and `max-age=0` get the lower bound. Without a
    /// `max-age`, `jwks_cache_ttl` applies.
    pub fn jwks_cache_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.jwks.max_ttl = max_ttl;
        self
    }

    /// Shortcut for [`TokenCachePolicy::max_entries`]: how many verified
    /// tokens are remembered, so a token sent again costs a hash and a
    /// lookup instead of a full verification (default
    /// 100,000; 0 turns the cache off). An
    /// entry never outlives the token's `exp` nor [`verified_cache_max_age`](Self::verified_cache_max_age),
    /// and is ignored once the key that verified it leaves the key set.
    pub fn verified_cache_max_entries(mut self, entries: usize) -> Self {
        self.token_cache.max_entries = entries;
        self
    }

    /// Shortcut for [`TokenCachePolicy::max_age`]: the longest time a
    /// verified token is remembered (default
    /// 300 s; zero turns the cache off).
    pub fn verified_cache_max_age(mut self, age: Duration) -> Self {
        self.token_cache.max_age = age;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, DEFAULT_MAX_TOKEN_LIFETIME};

    fn base() -> AuthConfigBuilder {
        AuthConfig::builder()
            .issuer("https://auth.example.com")
            .resource("https://mcp.example.com/mcp")
    }

    #[test]
    fn grouped_defaults_are_the_documented_constants() {
        let c = base().build().unwrap();
        assert_eq!(c.jwks_cache_ttl, DEFAULT_JWKS_CACHE_TTL);
        assert_eq!(c.jwks_refresh_cooldown, DEFAULT_JWKS_REFRESH_COOLDOWN);
        assert_eq!(c.jwks_max_stale, DEFAULT_JWKS_MAX_STALE);
        assert_eq!(c.jwks_cache_max_ttl, DEFAULT_JWKS_CACHE_MAX_TTL);
        assert_eq!(c.http_timeout, DEFAULT_HTTP_TIMEOUT);
        assert_eq!(c.max_document_bytes, DEFAULT_MAX_DOCUMENT_BYTES);
        assert_eq!(
            c.verified_cache_max_entries,
            DEFAULT_VERIFIED_CACHE_MAX_ENTRIES
        );
        assert_eq!(c.verified_cache_max_age, DEFAULT_VERIFIED_CACHE_MAX_AGE);
        assert_eq!(c.max_token_lifetime, DEFAULT_MAX_TOKEN_LIFETIME);
    }

    #[test]
    fn jwks_policy_sets_every_knob() {
        let s = Duration::from_secs;
        let c = base()
            .jwks_policy(
                JwksPolicy::default()
                    .cache_ttl(s(1))
                    .refresh_cooldown(s(2))
                    .max_stale(s(3))
                    .max_ttl(s(4))
                    .http_timeout(s(5))
                    .max_document_bytes(6),
            )
            .build()
            .unwrap();
        assert_eq!(
            (
                c.jwks_cache_ttl,
                c.jwks_refresh_cooldown,
                c.jwks_max_stale,
                c.jwks_cache_max_ttl,
                c.http_timeout,
                c.max_document_bytes
            ),
            (s(1), s(2), s(3), s(4), s(5), 6)
        );
    }

    #[test]
    fn shortcut_after_group_changes_one_knob_group_after_shortcut_replaces() {
        let s = Duration::from_secs;
        let c = base()
            .jwks_policy(JwksPolicy::default().max_stale(s(7)))
            .jwks_cache_ttl(s(9))
            .build()
            .unwrap();
        assert_eq!((c.jwks_cache_ttl, c.jwks_max_stale), (s(9), s(7)));
        let c = base()
            .jwks_cache_ttl(s(9))
            .jwks_policy(JwksPolicy::default())
            .build()
            .unwrap();
        assert_eq!(c.jwks_cache_ttl, DEFAULT_JWKS_CACHE_TTL);
    }

    // The group is validated like the shortcuts: zero refused, naming the knob.
    #[test]
    fn jwks_policy_zero_is_refused_naming_the_setting() {
        let zero = Duration::ZERO;
        for (policy, field) in [
            (JwksPolicy::default().cache_ttl(zero), "jwks_cache_ttl"),
            (
                JwksPolicy::default().refresh_cooldown(zero),
                "jwks_refresh_cooldown",
            ),
            (JwksPolicy::default().max_ttl(zero), "jwks_cache_max_ttl"),
            (JwksPolicy::default().http_timeout(zero), "http_timeout"),
        ] {
            let e = base().jwks_policy(policy).build().unwrap_err();
            assert_eq!(e.field(), field);
        }
    }

    // A key set kept for longer than a day (`MCP_OAUTH2_JWKS_CACHE_TTL` with
    // a value meant in milliseconds, or `u64::MAX`) keeps trusting a key the
    // issuer has withdrawn, compromised or not, until the process restarts:
    // refused, naming the setting. A day itself is accepted.
    #[test]
    fn jwks_intervals_past_a_day_are_refused_naming_the_setting() {
        let day = Duration::from_secs(86_400);
        let over = day + Duration::from_secs(1);
        for (policy, field) in [
            (JwksPolicy::default().cache_ttl(over), "jwks_cache_ttl"),
            (
                JwksPolicy::default().refresh_cooldown(over),
                "jwks_refresh_cooldown",
            ),
            (
                JwksPolicy::default().max_ttl(Duration::MAX),
                "jwks_cache_max_ttl",
            ),
        ] {
            let e = base().jwks_policy(policy).build().unwrap_err();
            assert_eq!(e.field(), field);
            assert!(e.message().contains("86400"), "{e}");
        }
        base()
            .jwks_policy(
                JwksPolicy::default()
                    .cache_ttl(day)
                    .refresh_cooldown(day)
                    .max_ttl(day),
            )
            .build()
            .unwrap();
    }

    #[test]
    fn token_cache_policy_sets_both_knobs() {
        let c = base()
            .token_cache_policy(
                TokenCachePolicy::default()
                    .max_entries(5)
                    .max_age(Duration::from_secs(6)),
            )
            .build()
            .unwrap();
        assert_eq!(c.verified_cache_max_entries, 5);
        assert_eq!(c.verified_cache_max_age, Duration::from_secs(6));
        let c = base()
            .verified_cache_max_entries(5)
            .token_cache_policy(TokenCachePolicy::disabled())
            .build()
            .unwrap();
        assert_eq!(c.verified_cache_max_entries, 0);
        assert_eq!(c.verified_cache_max_age, Duration::ZERO);
    }
}
