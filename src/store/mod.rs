//! State shared by the replicas of one server: failed-auth counters, legacy
//! session owners, MCP task owners, DPoP proofs already seen, cached
//! introspection results.
//!
//! One small trait, [`SharedStore`], with two implementations: [`MemoryStore`]
//! (the default: in process memory, bounded, each replica its own) and, with
//! the `redis` feature, a Redis store that several replicas share.
//!
//! Keys are short ASCII strings built by the crate from hashes, one namespace
//! per user of the store (`mcp_oauth2:throttle:`, `mcp_oauth2:session:`,
//! `mcp_oauth2:task:`, `mcp_oauth2:dpop:`, `mcp_oauth2:introspection:`; the
//! Redis store's short-lived write markers `mcp_oauth2:op:`; `McpServer`'s
//! start-up read of `mcp_oauth2:probe`, never written); never token
//! material.
//! Values are small byte strings the crate wrote itself.
//!
//! Every operation can fail ([`StoreError`]: unavailable or timed out); each
//! user of the store decides, and documents, whether it then fails closed
//! (security depends on the answer) or falls back to its authoritative
//! source.
//!
//! Near the leaves: imports only the clock.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;

/// A boxed future returned by store operations.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The count of a fixed window counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowCount {
    /// Hits counted in the current window, this one included.
    pub count: u64,
    /// Time until the window closes and the counter starts again from zero.
    pub resets_in: Duration,
}

impl WindowCount {
    /// A count, for implementations of [`SharedStore`] outside this crate.
    pub fn new(count: u64, resets_in: Duration) -> Self {
        Self { count, resets_in }
    }
}

/// State shared by replicas: counters, owners, seen proofs, cached results.
/// Keys are short ASCII strings built by the crate from hashes (never token material).
///
/// Durations (`window`, `ttl`) are kept to the millisecond, rounded up and
/// at least one millisecond (Redis' `PX` resolution).
pub trait SharedStore: Send + Sync + std::fmt::Debug + 'static {
    /// Adds one to the counter `key`; the window starts at the first hit and the key expires with it.
    /// Exactly once per call, even when an implementation retries it.
    fn hit(&self, key: &str, window: Duration) -> StoreFuture<'_, WindowCount>;
    /// The counter's current window, if any (no increment).
    fn peek(&self, key: &str) -> StoreFuture<'_, Option<WindowCount>>;
    /// Stores `value` under `key` for `ttl` unless the key exists; `true` when stored (Redis: SET NX PX).
    /// A call that stored the key answers `true` even when an
    /// implementation retried it (its own write is not "already present").
    fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool>;
    /// The value under `key`, if present and not expired.
    fn get(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>>;
    /// Stores `value` under `key` for `ttl` (overwrites).
    fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, ()>;
    /// Removes `key`.
    fn delete(&self, key: &str) -> StoreFuture<'_, ()>;
    /// Restarts the expiry of `key` at `ttl` if it holds exactly `value`;
    /// `true` when it did. Never writes a key that is absent or holds
    /// another value (a binding another replica removed stays removed).
    /// Redis: one script (`GET`, compare, `PEXPIRE`). The default reads
    /// then writes, which is not atomic: implementations shared by
    /// replicas should override it.
    fn refresh_if(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
        let key = key.to_owned();
        let value = value.to_vec();
        Box::pin(async move {
            match self.get(&key).await? {
                Some(found) if found == value => {
                    self.put(&key, &value, ttl).await?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }
}

/// A store operation failed (Redis down, timeout, ...). Never contains values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or refused the operation; the text
    /// says why (never a key's value).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within the operation timeout.
    #[error("store timed out")]
    Timeout,
}

/// What an operation refused at once while a store's breaker is open fails
/// with (`StoreError::Unavailable`; the Redis store's).
pub(crate) const COOLING_DOWN: &str =
    "redis: not answering; refused at once until a probe after the cooldown is answered";

/// Whether `error` is a refusal at once while the store's breaker is open:
/// the breaker logged the outage when it opened, so such errors are logged
/// at `debug` (see [`log_store_error!`]), not a `warn` line per request.
pub(crate) fn cooling_down(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(why) if why == COOLING_DOWN)
}

/// Logs a failed store operation: at `warn` at most once a second per
/// call site, or at `debug`. A store down has its breaker open and
/// refuses at once (logged when it opened); a store that *answers* with an
/// error (a wrong password, `EVAL` refused, a full Redis) keeps its
/// breaker closed, and every request then fails the same way: without the
/// gate that was a `warn` line (four for a refused token: the throttle's
/// counters) for each request anyone sends (found from outside: 750 lines
/// for 150 bad tokens with a wrong Redis password). The `warn` line that
/// follows lines left at `debug` carries their number in `suppressed`; the
/// `store_errors` counters count every one. The first argument is the
/// error, the rest what `tracing::warn!` takes (`target:` first, if any).
macro_rules! log_store_error {
    ($error:expr, target: $target:expr, $($rest:tt)+) => {{
        static GATE: $crate::store::LogGate = $crate::store::LogGate::new();
        match GATE.open($error) {
            Some(0) => tracing::warn!(target: $target, $($rest)+),
            Some(suppressed) => tracing::warn!(target: $target, suppressed, $($rest)+),
            None => tracing::debug!(target: $target, $($rest)+),
        }
    }};
    ($error:expr, $($rest:tt)+) => {{
        static GATE: $crate::store::LogGate = $crate::store::LogGate::new();
        match GATE.open($error) {
            Some(0) => tracing::warn!($($rest)+),
            Some(suppressed) => tracing::warn!(suppressed, $($rest)+),
            None => tracing::debug!($($rest)+),
        }
    }};
}
pub(crate) use log_store_error;

/// The once-a-second gate of one [`log_store_error!`] call site.
/// Hand-rolled: two atomics, and the count of lines left at `debug` that a
/// rate-limiting crate does not keep.
#[derive(Debug)]
pub(crate) struct LogGate {
    /// When the next `warn` line may be written ([`crate::clock::monotonic_nanos`]).
    next_ns: AtomicU64,
    /// Errors left at `debug` since the last `warn` line.
    missed: AtomicU64,
}

impl LogGate {
    /// A gate open for its first error.
    pub(crate) const fn new() -> Self {
        Self {
            next_ns: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        }
    }

    /// `Some(errors left at debug since the last warn line)` when `error`
    /// is to be a `warn` line; `None` for `debug`: a refusal at once while
    /// the breaker is open (logged when it opened; not counted as left
    /// out), or a second error within the second.
    pub(crate) fn open(&self, error: &StoreError) -> Option<u64> {
        if cooling_down(error) {
            return None;
        }
        self.open_at(crate::clock::monotonic_nanos())
    }

    fn open_at(&self, now_ns: u64) -> Option<u64> {
        let next = self.next_ns.load(Ordering::Relaxed);
        if now_ns >= next
            && self
                .next_ns
                .compare_exchange(
                    next,
                    now_ns.saturating_add(LOG_GATE_NS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.missed.swap(0, Ordering::Relaxed));
        }
        self.missed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// One `warn` line a second per call site of [`log_store_error!`].
const LOG_GATE_NS: u64 = 1_000_000_000;

/// The key of one namespace (`mcp_oauth2:session:`, ...) for a digest:
/// the prefix and the digest in lowercase hex (never the material hashed).
pub(crate) fn hashed_key(namespace: &str, digest: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(namespace.len() + 2 * digest.len());
    key.push_str(namespace);
    for b in digest {
        // Writing to a String cannot fail.
        let _ = write!(key, "{b:02x}");
    }
    key
}

/// A duration in whole milliseconds, rounded up, at least 1 (Redis' `PX`
/// refuses 0), saturated at `u64::MAX`.
pub(crate) fn millis_at_least_one(d: Duration) -> u64 {
    let ms = d.as_millis();
    let up = if Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)) < d {
        ms.saturating_add(1)
    } else {
        ms
    };
    u64::try_from(up).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_is_a_warn_line_once_a_second_and_counts_the_rest() {
        let gate = LogGate::new();
        assert_eq!(gate.open_at(5), Some(0));
        for t in [6, 500_000_000, LOG_GATE_NS + 4] {
            assert_eq!(gate.open_at(t), None, "{t}");
        }
        assert_eq!(gate.open_at(LOG_GATE_NS + 5), Some(3));
        assert_eq!(gate.open_at(LOG_GATE_NS + 6), None);
        // The end of the clock saturates, without a panic.
        assert_eq!(gate.open_at(u64::MAX), Some(1));
        // A refusal at once while the breaker is open: debug, not counted.
        let refused = StoreError::Unavailable(COOLING_DOWN.to_owned());
        let fresh = LogGate::new();
        assert_eq!(fresh.open(&refused), None);
        assert_eq!(fresh.open(&StoreError::Timeout), Some(0));
    }

    #[test]
    fn durations_round_up_to_a_millisecond() {
        assert_eq!(millis_at_least_one(Duration::ZERO), 1);
        assert_eq!(millis_at_least_one(Duration::from_nanos(1)), 1);
        assert_eq!(millis_at_least_one(Duration::from_millis(5)), 5);
        assert_eq!(millis_at_least_one(Duration::from_micros(5_001)), 6);
        assert_eq!(millis_at_least_one(Duration::MAX), u64::MAX);
    }

    #[test]
    fn hashed_keys_are_the_namespace_and_lowercase_hex() {
        assert_eq!(
            hashed_key("mcp_oauth2:dpop:", &[0, 0xab, 0x7f]),
            "mcp_oauth2:dpop:00ab7f"
        );
        assert_eq!(hashed_key("n:", &[]), "n:");
    }

    #[test]
    fn errors_say_what_failed_and_nothing_else() {
        assert_eq!(
            StoreError::Unavailable("connection refused".into()).to_string(),
            "store unavailable: connection refused"
        );
        assert_eq!(StoreError::Timeout.to_string(), "store timed out");
        assert_eq!(
            WindowCount::new(3, Duration::from_secs(1)),
            WindowCount {
                count: 3,
                resets_in: Duration::from_secs(1)
            }
        );
    }
}
