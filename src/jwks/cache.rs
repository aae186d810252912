//! The per-issuer key-set cache: TTL (the key server's `Cache-Control:
//! max-age` honoured within bounds), stale-while-revalidate within a bounded
//! window, single-flight fetches, and a cooldown on refetches forced by an
//! unknown `kid` or a failed fetch.
//!
//! Refresh policy, in full:
//! - a set is fresh for its TTL: `max-age` clamped to the configured bounds,
//!   or `jwks_cache_ttl` without one;
//! - a fresh set is refetched early only for a token whose `kid` is not in
//!   it (a rotation), at most once per cooldown (counted between such
//!   refetches, so a rotation right after start-up is picked up at once);
//!   other tokens during the cooldown get their answer (`unknown_key`) at
//!   once, without waiting;
//! - a stale set is refetched: in the background while it still has the
//!   wanted key and is within the stale window, else in the foreground;
//! - a failed fetch keeps the last good set (until the stale window ends)
//!   and is retried no sooner than `min(cooldown, 5 s)` after it failed
//!   (counted from its end, so a key server that hangs for the whole
//!   `http_timeout` still leaves that window); meanwhile requests without a
//!   usable set fail fast (`keys_unavailable`, 503);
//! - a retry after a failed fetch is a probe: only the request that
//!   started it waits for it, the others answer at once from what the
//!   cache holds (503 without a usable set), so that a hung key server
//!   holds one request per retry, not every request;
//! - a fetch that yields no usable key is a failed fetch, so that one bad
//!   publication does not wipe a good set; a successful fetch replaces the
//!   whole set;
//! - a key-set URL found by discovery is kept until a fetch from it fails:
//!   the next attempt runs discovery again, so a key set the issuer moved
//!   is found without a restart (a configured `jwks_uri` is kept for good);
//! - at most one fetch per issuer is in flight; everyone who needs it waits
//!   on the same one.
//!
//! The state lock is a plain mutex held only to read or swap a few fields,
//! never across a network fetch. The question asked on every
//! verified-token cache hit ("is the key that verified this token still
//! in a fresh set?") takes no lock: the current set and the end of its
//! freshness are published in an [`ArcSwapOption`] whenever the set is
//! replaced, and only a stale (or missing) set sends the caller to the
//! locked path. A fetch runs in its own task, so a client
//! that disconnects does not cancel it for everybody else waiting on it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use jsonwebtoken::Algorithm;
use url::Url;

use super::keyset::KeySet;
use crate::fetch::{FetchError, Fetcher};

type SharedFetch = Shared<BoxFuture<'static, Result<Arc<KeySet>, FetchError>>>;

/// Retries after a failed fetch wait at most this long (or the cooldown, if shorter).
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Timing policy of a key-set cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    /// Lifetime of a set whose response had no `max-age`.
    pub(crate) ttl: Duration,
    /// Upper bound on a `max-age`.
    pub(crate) max_ttl: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) max_stale: Duration,
}

impl CachePolicy {
    /// The lifetime of a set fetched with this `max-age`.
    pub(crate) fn ttl_for(&self, max_age: Option<Duration>) -> Duration {
        match max_age {
            None => self.ttl,
            Some(age) => {
                let lower = self.cooldown.min(self.ttl);
                let upper = self.max_ttl.max(self.ttl);
                age.clamp(lower, upper)
            }
        }
    }

    fn retry_interval(&self) -> Duration {
        self.cooldown.min(MAX_RETRY_INTERVAL)
    }
}

#[derive(Default)]
struct State {
    jwks_uri: Option<Url>,
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    /// Lifetime of `keys`.
    ttl: Duration,
    /// When the last fetch started, and when it ended if it failed: the
    /// retry interval after a failure counts from there.
    last_attempt: Option<Instant>,
    /// When a refetch for an unknown `kid` last started.
    last_kid_refetch: Option<Instant>,
    last_failed: bool,
    /// A fetch read the key set and found no usable key in it: the issuer
    /// answered (see [`JwksCache::has_answered`]).
    answered_without_keys: bool,
    inflight: Option<SharedFetch>,
}

/// The current key set and the instant it stops being fresh (`None`: a
/// fixed set, fresh for good), for lock-free reads on cache hits.
struct Trusted {
    keys: Arc<KeySet>,
    fresh_until: Option<Instant>,
}

/// The facade name of the key-set fetch latency histogram.
const FETCH_LATENCY: &str = "mcp_oauth2_jwks_fetch_duration_seconds";

/// Keys of one issuer.
pub(crate) struct JwksCache {
    issuer: String,
    /// What `state` holds about the current set, readable without its lock;
    /// written under that lock, right after `state` changes.
    trusted: ArcSwapOption<Trusted>,
    /// `None` for a fixed key set that is never fetched.
    fetcher: Option<Fetcher>,
    /// Whether the key-set URL comes from discovery (none was configured):
    /// then a failed fetch forgets it, and the next attempt discovers again.
    discovers: bool,
    policy: CachePolicy,
    state: Mutex<State>,
    pub(crate) fetches: std::sync::atomic::AtomicU64,
    pub(crate) failures: std::sync::atomic::AtomicU64,
    /// How long fetches take (discovery included).
    pub(crate) fetch_latency: crate::metrics::Histogram,
}

/// The answer of [`JwksCache::key_set`].
pub(crate) enum Lookup {
    /// A key set to verify with (it may still lack the wanted key).
    Keys(Arc<KeySet>),
    /// No usable key set: fail closed.
    Unavailable,
}

/// What a lookup may do about the network, decided under the lock.
struct Plan {
    keys: Option<Arc<KeySet>>,
    fresh: bool,
    usable: bool,
    /// A fetch is in flight: joining it costs nothing (unless it is a
    /// retry after a failure, which nobody joins: `may_refresh` and
    /// `may_refetch_for_kid` are then `false`).
    inflight: bool,
    /// A routine refresh (expired set, or no set yet) may start.
    may_refresh: bool,
    /// A refetch for an unknown `kid` may start.
    may_refetch_for_kid: bool,
    /// The last fetch failed: a key missing from the set may have been
    /// published since, and there is no telling.
    last_failed: bool,
}

impl JwksCache {
    pub(crate) fn new(
        issuer: String,
        jwks_uri: Option<Url>,
        fetcher: Fetcher,
        policy: CachePolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            issuer,
            trusted: ArcSwapOption::empty(),
            fetcher: Some(fetcher),
            discovers: jwks_uri.is_none(),
            policy,
            fetches: Default::default(),
            failures: Default::default(),
            fetch_latency: crate::metrics::Histogram::new(FETCH_LATENCY),
            state: Mutex::new(State {
                jwks_uri,
                ..State::default()
            }),
        })
    }

    /// A cache holding `keys` for good: never fetched, never stale.
    pub(crate) fn fixed(issuer: String, keys: KeySet, policy: CachePolicy) -> Arc<Self> {
        let keys = Arc::new(keys);
        Arc::new(Self {
            issuer,
            trusted: ArcSwapOption::from_pointee(Trusted {
                keys: Arc::clone(&keys),
                fresh_until: None,
            }),
            fetcher: None,
            discovers: false,
            policy,
            fetches: Default::default(),
            failures: Default::default(),
            fetch_latency: crate::metrics::Histogram::new(FETCH_LATENCY),
            state: Mutex::new(State {
                keys: Some(keys),
                fetched_at: Some(Instant::now()),
                ..State::default()
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // fields are always left consistent, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a cached verification by the key with this fingerprint may
    /// still be trusted: the key is in the current set, and the set is within
    /// its stale window (a fixed set always is). A stale set is refreshed
    /// behind, as for a full verification, so that key removals are noticed
    /// even when every request is answered from the verified-token cache.
    ///
    /// While the set is fresh (the common case) this reads the published
    /// snapshot and takes no lock.
    pub(crate) fn trusts(self: &Arc<Self>, fingerprint: u64) -> bool {
        if let Some(trusted) = &*self.trusted.load()
            && trusted
                .fresh_until
                .is_none_or(|until| Instant::now() < until)
        {
            return trusted.keys.contains_fingerprint(fingerprint);
        }
        if self.fetcher.is_none() {
            return self
                .state()
                .keys
                .as_ref()
                .is_some_and(|k| k.contains_fingerprint(fingerprint));
        }
        let plan = self.plan(Instant::now());
        let Some(keys) = &plan.keys else {
            return false;
        };
        // Outside a Tokio runtime (a caller driving the layer by hand)
        // nothing is spawned; the next verification on a runtime refreshes.
        if !plan.fresh
            && plan.may_refresh
            && !plan.inflight
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let refresh = self.refresh();
            runtime.spawn(async move {
                let _ = refresh.await;
            });
        }
        plan.usable && keys.contains_fingerprint(fingerprint)
    }

    /// Age of the current key set (`None` before the first load).
    pub(crate) fn age(&self) -> Option<Duration> {
        self.state().fetched_at.map(|t| t.elapsed())
    }

    /// The key set held now, if any, without fetching (for diagnostics
    /// that must not cost a request to the issuer).
    pub(crate) fn current(&self) -> Option<Arc<KeySet>> {
        self.trusted.load().as_ref().map(|t| Arc::clone(&t.keys))
    }

    /// Whether a key set has been loaded.
    pub(crate) fn is_loaded(&self) -> bool {
        self.state().keys.is_some()
    }

    /// Whether the issuer has answered: a key set was loaded, or one was
    /// read that holds no usable key (an issuer of opaque tokens only may
    /// publish an empty set). Tokens it signed still need a loaded set.
    pub(crate) fn has_answered(&self) -> bool {
        let st = self.state();
        st.keys.is_some() || st.answered_without_keys
    }

    /// Fetches now (single flight), for warming up at start.
    pub(crate) async fn refresh_now(self: &Arc<Self>) -> Result<usize, FetchError> {
        if self.fetcher.is_none() {
            return Ok(self.state().keys.as_ref().map_or(0, |k| k.len()));
        }
        self.refresh().await.map(|k| k.len())
    }

    /// Fetches when no key set is loaded yet and the failure backoff allows
    /// it (a request needing keys would fetch then too), joining a fetch in
    /// flight that is not a retry after a failure; otherwise returns at
    /// once. The readiness probe's question: an unauthenticated probe must
    /// never fetch more often than requests do (found from outside: every
    /// probe started a discovery and a key-set fetch, 419 of each in 2 s,
    /// and a WARN line each, while the issuer was failing).
    pub(crate) async fn load_if_due(self: &Arc<Self>) {
        if self.fetcher.is_none() || self.is_loaded() {
            return;
        }
        if self.plan(Instant::now()).may_refresh {
            let _ = self.refresh().await;
        }
    }

    fn plan(&self, now: Instant) -> Plan {
        let st = self.state();
        let since_attempt = st.last_attempt.map(|t| now.saturating_duration_since(t));
        let since_kid_refetch = st
            .last_kid_refetch
            .map(|t| now.saturating_duration_since(t));
        let age = st.fetched_at.map(|t| now.saturating_duration_since(t));
        let retry_ok =
            !st.last_failed || since_attempt.is_none_or(|d| d >= self.policy.retry_interval());
        let inflight = st.inflight.is_some();
        // A retry after a failure (a probe) may hang for the whole deadline
        // again: the request that started it waits, nobody else does.
        let probing = inflight && st.last_failed;
        Plan {
            keys: st.keys.clone(),
            fresh: age.is_some_and(|a| a < st.ttl),
            usable: age.is_some_and(|a| a < st.ttl.saturating_add(self.policy.max_stale)),
            inflight,
            may_refresh: !probing && (inflight || retry_ok),
            may_refetch_for_kid: !probing
                && (inflight
                    || (retry_ok && since_kid_refetch.is_none_or(|d| d >= self.policy.cooldown))),
            last_failed: st.last_failed,
        }
    }

    /// A key set that should contain the key for (`kid`, `alg`).
    pub(crate) async fn key_set(self: &Arc<Self>, kid: Option<&str>, alg: Algorithm) -> Lookup {
        let plan = self.plan(Instant::now());
        if self.fetcher.is_none() {
            return plan.keys.map_or(Lookup::Unavailable, Lookup::Keys);
        }
        let Some(keys) = plan.keys else {
            if !plan.may_refresh {
                // The last fetch failed moments ago: fail fast, do not hammer.
                return Lookup::Unavailable;
            }
            return match self.refresh().await {
                Ok(keys) => Lookup::Keys(keys),
                Err(_) => Lookup::Unavailable,
            };
        };
        let unknown_kid = keys.may_be_rotated_key(kid, alg);
        // A key the set lacks while the key server cannot be reached may
        // be a key it rotated in: the token cannot be judged, which is a
        // 503, not the 401 of a key that is not there (the client would
        // sign in again for a token naming the same key). Keys the set has
        // keep verifying.
        let unjudged = || {
            if unknown_kid {
                Lookup::Unavailable
            } else {
                Lookup::Keys(Arc::clone(&keys))
            }
        };
        if plan.fresh {
            if !unknown_kid {
                return Lookup::Keys(keys);
            }
            if !plan.may_refetch_for_kid {
                // Within the cooldown: the set as it is, unless the last
                // fetch (this kid's refetch or another's) failed.
                return if plan.last_failed {
                    unjudged()
                } else {
                    Lookup::Keys(keys)
                };
            }
            // Unknown kid: the issuer may have rotated. One refetch per cooldown.
            if !plan.inflight {
                self.state().last_kid_refetch = Some(Instant::now());
                tracing::debug!(issuer = %self.issuer, "unknown kid: refetching the key set");
            }
            return match self.refresh().await {
                Ok(fresh) => Lookup::Keys(fresh),
                Err(_) => unjudged(),
            };
        }
        // Stale.
        if !plan.may_refresh {
            return if plan.usable {
                unjudged()
            } else {
                Lookup::Unavailable
            };
        }
        if plan.usable && !unknown_kid {
            // Stale while revalidate: answer now, refresh behind.
            let refresh = self.refresh();
            tokio::spawn(async move {
                let _ = refresh.await;
            });
            return Lookup::Keys(keys);
        }
        match self.refresh().await {
            Ok(fresh) => Lookup::Keys(fresh),
            Err(_) if plan.usable => unjudged(),
            Err(_) => Lookup::Unavailable,
        }
    }

    /// Joins the fetch in flight, or starts one.
    fn refresh(self: &Arc<Self>) -> SharedFetch {
        let mut st = self.state();
        if let Some(fetch) = &st.inflight {
            return fetch.clone();
        }
        st.last_attempt = Some(Instant::now());
        let this = Arc::clone(self);
        let task = tokio::spawn(async move { this.fetch_and_store().await });
        let fetch = async move {
            task.await
                .unwrap_or_else(|_| Err(FetchError::new("the key-set fetch task failed")))
        }
        .boxed()
        .shared();
        st.inflight = Some(fetch.clone());
        fetch
    }

    async fn fetch_and_store(self: Arc<Self>) -> Result<Arc<KeySet>, FetchError> {
        let started = Instant::now();
        let result = self.fetch().await;
        self.fetch_latency.record(started.elapsed());
        let mut st = self.state();
        st.inflight = None;
        match &result {
            Ok((uri, keys, ttl)) => {
                self.fetches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::metrics::emit("mcp_oauth2_jwks_fetches_total", "result", "ok");
                // The whole set is replaced: keys the issuer stopped
                // publishing stop verifying.
                st.jwks_uri = Some(uri.clone());
                st.keys = Some(Arc::clone(keys));
                let now = Instant::now();
                st.fetched_at = Some(now);
                st.ttl = *ttl;
                st.last_failed = false;
                // Published under the state lock, so two fetches cannot
                // publish out of order. An overflowing instant is never
                // reached: fresh for good.
                self.trusted.store(Some(Arc::new(Trusted {
                    keys: Arc::clone(keys),
                    fresh_until: now.checked_add(*ttl),
                })));
            }
            Err(e) => {
                self.failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::metrics::emit("mcp_oauth2_jwks_fetches_total", "result", "error");
                st.last_failed = true;
                st.answered_without_keys |= e.is_no_keys();
                // The retry interval counts from the failure, not from the
                // start: a fetch cut off by `http_timeout` (longer than the
                // interval) would otherwise let the next request start
                // another at once, and every request wait the deadline.
                st.last_attempt = Some(Instant::now());
                if self.discovers {
                    // The issuer may have moved its key set: ask its
                    // metadata again next time.
                    st.jwks_uri = None;
                }
                tracing::warn!(issuer = %self.issuer, error = %e, "fetching the issuer's key set failed");
            }
        }
        result.map(|(_, keys, _)| keys)
    }

    async fn fetch(&self) -> Result<(Url, Arc<KeySet>, Duration), FetchError> {
        let Some(fetcher) = &self.fetcher else {
            return Err(FetchError::new("this key set is fixed"));
        };
        let known = self.state().jwks_uri.clone();
        let uri = match known {
            Some(uri) => uri,
            None => fetcher.discover_jwks_uri(&self.issuer).await?,
        };
        let fetched = fetcher.get_json(&uri).await?;
        let (set, dropped) =
            KeySet::parse(&fetched.body).map_err(|e| FetchError::new(format!("{uri}: {e}")))?;
        log_key_notes(&self.issuer, &set, &dropped);
        if set.len() == 0 {
            return Err(FetchError::no_keys(format!(
                "{uri}: the key set has no usable keys"
            )));
        }
        let ttl = self.policy.ttl_for(fetched.max_age);
        tracing::debug!(issuer = %self.issuer, %uri, keys = set.len(), ttl_secs = ttl.as_secs(), "loaded the issuer's key set");
        Ok((uri, Arc::new(set), ttl))
    }
}

/// Warns about keys that were dropped or published with private members:
/// the first [`KEY_NOTES_SHOWN`] of each kind one line each, the rest in
/// one line with their count by reason. A key set is fetched again on
/// demand (a token naming an unknown `kid`, at most once a cooldown, and
/// anyone can send one): found from outside, a set padded with 85,000
/// empty entries under the size cap wrote 85,000 lines (13 MB) a fetch.
/// `kid`s are printed with `Debug`, so control characters are escaped
/// (`"k1"`; a key without one is `-`, not `None`, and no `Some(..)`
/// around a `kid`: found from outside), and cut past
/// [`KID_SHOWN_BYTES`] bytes (a 200,000-character `kid` was logged whole).
pub(crate) fn log_key_notes(issuer: &str, set: &KeySet, dropped: &[super::keyset::DroppedKey]) {
    for (kid, why) in dropped.iter().take(KEY_NOTES_SHOWN) {
        tracing::warn!(issuer = %issuer, kid = %shown_kid(kid.as_deref()), reason = ?why, "ignoring a key that cannot verify tokens");
    }
    if let Some(rest) = dropped
        .get(KEY_NOTES_SHOWN..)
        .filter(|rest| !rest.is_empty())
    {
        let mut counts: Vec<(super::keyset::Dropped, usize)> = Vec::new();
        for (_, why) in rest {
            match counts.iter_mut().find(|(seen, _)| seen == why) {
                Some((_, n)) => *n += 1,
                None => counts.push((*why, 1)),
            }
        }
        let by_reason = counts
            .iter()
            .map(|(why, n)| format!("{why:?}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(issuer = %issuer, more = rest.len(), reasons = %by_reason, "ignoring more keys that cannot verify tokens (not listed one by one)");
    }
    let private = set.keys_with_private_members();
    for kid in private.iter().take(KEY_NOTES_SHOWN) {
        tracing::warn!(issuer = %issuer, kid = %shown_kid(kid.as_deref()), "the key set publishes private key members; using only the public part (the issuer should remove them)");
    }
    if private.len() > KEY_NOTES_SHOWN {
        tracing::warn!(issuer = %issuer, more = private.len() - KEY_NOTES_SHOWN, "more keys of the set publish private key members (not listed one by one)");
    }
}

/// How many keys of each kind [`log_key_notes`] names one line each.
const KEY_NOTES_SHOWN: usize = 5;

/// How much of a `kid` a log line shows.
const KID_SHOWN_BYTES: usize = 64;

/// A `kid` as log lines show it: `Debug` (escaped), `-` for none, cut past
/// [`KID_SHOWN_BYTES`] bytes of the `kid` with the number of bytes left out.
fn shown_kid(kid: Option<&str>) -> String {
    let Some(kid) = kid else {
        return "-".to_owned();
    };
    if kid.len() <= KID_SHOWN_BYTES {
        return format!("{kid:?}");
    }
    let mut cut = KID_SHOWN_BYTES;
    while !kid.is_char_boundary(cut) {
        cut -= 1;
    }
    let shown = kid.get(..cut).unwrap_or_default();
    format!("{shown:?}...[+{} bytes]", kid.len() - shown.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(3600),
            cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
        }
    }

    // RFC 9111 section 5.2.2.1, bounded by configuration.
    #[test]
    fn max_age_is_honoured_within_bounds() {
        let p = policy();
        assert_eq!(p.ttl_for(None), Duration::from_secs(300));
        assert_eq!(
            p.ttl_for(Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
        assert_eq!(
            p.ttl_for(Some(Duration::from_secs(86_400))),
            Duration::from_secs(3600)
        );
        assert_eq!(p.ttl_for(Some(Duration::ZERO)), Duration::from_secs(30));
        let short = CachePolicy {
            ttl: Duration::from_secs(10),
            max_ttl: Duration::from_secs(5),
            ..p
        };
        assert_eq!(short.ttl_for(Some(Duration::ZERO)), Duration::from_secs(10));
        assert_eq!(
            short.ttl_for(Some(Duration::from_secs(60))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retries_after_failure_wait_at_most_five_seconds() {
        assert_eq!(policy().retry_interval(), Duration::from_secs(5));
        let quick = CachePolicy {
            cooldown: Duration::from_millis(100),
            ..policy()
        };
        assert_eq!(quick.retry_interval(), Duration::from_millis(100));
    }
}
