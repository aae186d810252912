//! The per-issuer key-set cache: TTL, stale-while-revalidate within a bounded
//! window, single-flight fetches, and a cooldown on refetches forced by an
//! unknown `kid` or a failed fetch.
//!
//! The state lock is a plain mutex held only to read or swap a few fields,
//! never across a network fetch. A fetch runs in its own task, so a client
//! that disconnects does not cancel it for everybody else waiting on it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use jsonwebtoken::Algorithm;
use url::Url;

use super::fetch::{FetchError, Fetcher};
use super::keyset::KeySet;

type SharedFetch = Shared<BoxFuture<'static, Result<Arc<KeySet>, FetchError>>>;

/// Timing policy of a key-set cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    pub(crate) ttl: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) max_stale: Duration,
}

#[derive(Default)]
struct State {
    jwks_uri: Option<Url>,
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_failed: bool,
    inflight: Option<SharedFetch>,
}

/// Keys of one issuer.
pub(crate) struct JwksCache {
    issuer: String,
    fetcher: Fetcher,
    policy: CachePolicy,
    state: Mutex<State>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The answer of [`JwksCache::key_set`].
pub(crate) enum Lookup {
    /// A key set to verify with (it may still lack the wanted key).
    Keys(Arc<KeySet>),
    /// No usable key set: fail closed.
    Unavailable,
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
            fetcher,
            policy,
            state: Mutex::new(State {
                jwks_uri,
                ..State::default()
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // fields are always left consistent, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a key set has been loaded.
    pub(crate) fn is_loaded(&self) -> bool {
        self.state().keys.is_some()
    }

    /// Fetches now (single flight), for warming up at start.
    pub(crate) async fn refresh_now(self: &Arc<Self>) -> Result<usize, FetchError> {
        self.refresh().await.map(|k| k.len())
    }

    /// A key set that should contain the key for (`kid`, `alg`).
    pub(crate) async fn key_set(self: &Arc<Self>, kid: Option<&str>, alg: Algorithm) -> Lookup {
        let now = Instant::now();
        let (keys, age, may_refetch, failed) = {
            let st = self.state();
            let age = st.fetched_at.map(|t| now.saturating_duration_since(t));
            let cooled = st.last_attempt.is_none_or(|t| {
                now.saturating_duration_since(t) >= self.retry_interval(st.last_failed)
            });
            (
                st.keys.clone(),
                age,
                cooled && st.inflight.is_none(),
                st.last_failed,
            )
        };
        let inflight_or_allowed = may_refetch || self.state().inflight.is_some();
        match (keys, age) {
            (Some(keys), Some(age)) if age < self.policy.ttl => {
                if !keys.candidates(kid, alg).is_empty() || !inflight_or_allowed {
                    return Lookup::Keys(keys);
                }
                // Unknown kid: the issuer may have rotated. One refetch per cooldown.
                tracing::debug!(issuer = %self.issuer, "unknown kid: refetching the key set");
                match self.refresh().await {
                    Ok(fresh) => Lookup::Keys(fresh),
                    Err(_) => Lookup::Keys(keys),
                }
            }
            (Some(keys), Some(age)) => {
                let usable = age < self.policy.ttl + self.policy.max_stale;
                if inflight_or_allowed {
                    if usable && !keys.candidates(kid, alg).is_empty() {
                        // Stale while revalidate: answer now, refresh behind.
                        let refresh = self.refresh();
                        tokio::spawn(async move {
                            let _ = refresh.await;
                        });
                        return Lookup::Keys(keys);
                    }
                    match self.refresh().await {
                        Ok(fresh) => return Lookup::Keys(fresh),
                        Err(_) if usable => return Lookup::Keys(keys),
                        Err(_) => return Lookup::Unavailable,
                    }
                }
                if usable {
                    Lookup::Keys(keys)
                } else {
                    Lookup::Unavailable
                }
            }
            _ => {
                if failed && !inflight_or_allowed {
                    // The last fetch failed moments ago: fail fast, do not hammer.
                    return Lookup::Unavailable;
                }
                match self.refresh().await {
                    Ok(keys) => Lookup::Keys(keys),
                    Err(_) => Lookup::Unavailable,
                }
            }
        }
    }

    fn retry_interval(&self, last_failed: bool) -> Duration {
        if last_failed {
            // After a failure, retry sooner than the unknown-kid cooldown so
            // a blip at start-up does not lock the server out for long.
            self.policy.cooldown.min(Duration::from_secs(5))
        } else {
            self.policy.cooldown
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
        let result = self.fetch().await;
        let mut st = self.state();
        st.inflight = None;
        match &result {
            Ok((uri, keys)) => {
                st.jwks_uri = Some(uri.clone());
                st.keys = Some(Arc::clone(keys));
                st.fetched_at = Some(Instant::now());
                st.last_failed = false;
            }
            Err(e) => {
                st.last_failed = true;
                tracing::warn!(issuer = %self.issuer, error = %e, "fetching the issuer's key set failed");
            }
        }
        result.map(|(_, keys)| keys)
    }

    async fn fetch(&self) -> Result<(Url, Arc<KeySet>), FetchError> {
        let known = self.state().jwks_uri.clone();
        let uri = match known {
            Some(uri) => uri,
            None => self.fetcher.discover_jwks_uri(&self.issuer).await?,
        };
        let body = self.fetcher.get_json(&uri).await?;
        let (set, dropped) =
            KeySet::parse(&body).map_err(|e| FetchError::new(format!("{uri}: {e}")))?;
        for (kid, why) in &dropped {
            tracing::warn!(issuer = %self.issuer, kid = ?kid, reason = ?why, "ignoring a key that cannot verify tokens");
        }
        if set.len() == 0 {
            tracing::warn!(issuer = %self.issuer, %uri, "the issuer's key set has no usable keys");
        } else {
            tracing::debug!(issuer = %self.issuer, %uri, keys = set.len(), "loaded the issuer's key set");
        }
        Ok((uri, Arc::new(set)))
    }
}
