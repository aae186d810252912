//! A snapshot of what the authentication layer has done: accepted and
//! rejected requests (by reason code), verified-token cache activity, key-set
//! fetches and age, introspection calls. No token material, ever.
//!
//! With the `metrics` feature the same events also go to the
//! [`metrics`](https://docs.rs/metrics) facade, so any exporter
//! (Prometheus, OpenTelemetry, ...) can pick them up:
//! `mcp_oauth2_requests_total{outcome, reason}`,
//! `mcp_oauth2_token_cache_total{result}`, `mcp_oauth2_jwks_fetches_total{result}`,
//! `mcp_oauth2_introspection_calls_total`, `mcp_oauth2_throttled_total{reason}`,
//! `mcp_oauth2_store_errors_total{user}`,
//! `mcp_oauth2_audit_suppressed_total{event}`, and the histograms (seconds)
//! `mcp_oauth2_verify_duration_seconds` and
//! `mcp_oauth2_jwks_fetch_duration_seconds`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters and gauges at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Requests that passed authentication and authorization.
    pub accepted: u64,
    /// Rejected requests by reason code (`AuthErrorKind::code`).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Verified-token cache hits.
    pub cache_hits: u64,
    /// Verified-token cache misses (full verifications attempted).
    pub cache_misses: u64,
    /// Entries evicted because the cache was full.
    pub cache_evictions: u64,
    /// Entries dropped because their key left the key set.
    pub cache_invalidations: u64,
    /// Entries in the cache now.
    pub cache_entries: usize,
    /// Key-set fetches that succeeded.
    pub jwks_fetches: u64,
    /// Key-set (or metadata) fetches that failed.
    pub jwks_fetch_failures: u64,
    /// Age of each issuer's current key set (`None`: never loaded).
    pub key_set_age: BTreeMap<String, Option<Duration>>,
    /// Calls made to introspection endpoints.
    pub introspection_calls: u64,
    /// Requests answered 429 by the failed-authentication throttle.
    pub throttled: u64,
    /// Shared-store operations that failed, of every user of the store:
    /// the throttle (which then fails open), legacy session owners and DPoP
    /// replay (which then fail closed, 503) and introspection results
    /// (which then ask the endpoint).
    pub store_errors: u64,
    /// Refusal audit events counted but not written because of the refusal
    /// log limit ([`AuthConfigBuilder::audit_refusal_limit`](crate::AuthConfigBuilder::audit_refusal_limit)).
    pub audit_suppressed: u64,
    /// Latency of token verifications that were not answered from the
    /// verified-token cache (signature checks, key fetches, introspection).
    pub verify_latency: LatencyHistogram,
    /// Latency of key-set fetches (discovery included), successful or not.
    pub jwks_fetch_latency: LatencyHistogram,
}

impl MetricsSnapshot {
    /// All rejections, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Verified-token cache hits over lookups (`None` before any lookup).
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let lookups = self.cache_hits + self.cache_misses;
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        (lookups > 0).then(|| self.cache_hits as f64 / lookups as f64)
    }
}

/// Upper bounds of the latency buckets: 100 µs to 5 s.
const LATENCY_BOUNDS: [Duration; 15] = [
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_micros(2_500_000),
    Duration::from_secs(5),
];

/// A latency distribution at one moment: counts per bucket (not
/// cumulative), the count above the last bound, the total count and sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencyHistogram {
    /// `(upper bound, observations at most that long and longer than the
    /// previous bound)`, from 100 µs to 5 s.
    pub buckets: Vec<(Duration, u64)>,
    /// Observations longer than the last bound.
    pub overflow: u64,
    /// All observations.
    pub count: u64,
    /// Their sum.
    pub sum: Duration,
}

/// A latency histogram recorded without a lock: one atomic per bucket.
#[derive(Debug)]
pub(crate) struct Histogram {
    /// The facade name (`metrics` feature).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: &'static str,
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, took: Duration) {
        let i = LATENCY_BOUNDS
            .iter()
            .position(|bound| took <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::histogram!(self.name).record(took.as_secs_f64());
    }

    pub(crate) fn snapshot(&self) -> LatencyHistogram {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let buckets: Vec<(Duration, u64)> = LATENCY_BOUNDS
            .iter()
            .copied()
            .zip(counts.iter().copied())
            .collect();
        LatencyHistogram {
            buckets,
            overflow: counts.last().copied().unwrap_or(0),
            count: counts.iter().sum(),
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Adds `other`'s observations to `into` (key sets of several issuers).
    pub(crate) fn merge_into(&self, into: &mut LatencyHistogram) {
        let mine = self.snapshot();
        if into.buckets.is_empty() {
            *into = mine;
            return;
        }
        for ((_, total), (_, add)) in into.buckets.iter_mut().zip(mine.buckets) {
            *total += add;
        }
        into.overflow += mine.overflow;
        into.count += mine.count;
        into.sum += mine.sum;
    }
}

/// How many distinct rejection reasons [`Outcomes`] counts on its own; the
/// closed set of `AuthErrorKind` codes (about 50, half of them DPoP's) and
/// the layer's other refusals fit with room to spare.
/// A reason beyond it (never, unless the set grows past it) is counted
/// under [`OTHER_REASON`].
const REASON_SLOTS: usize = 96;

/// The reason a rejection is counted under when every slot is taken.
const OTHER_REASON: &str = "other";

/// Request outcomes counted by the layer, without a lock: one atomic
/// counter per rejection reason.
///
/// Reasons get a slot on first use: a rejection scans the slots in order
/// and adds to the one holding its reason, or claims the first empty one
/// (`OnceLock`, so two threads racing for a slot agree on its reason). A
/// slot never changes reason once claimed and a thread only claims the
/// first empty slot after every claimed slot before it, so a reason never
/// ends up in two slots.
#[derive(Debug)]
pub(crate) struct Outcomes {
    accepted: AtomicU64,
    rejected: [ReasonSlot; REASON_SLOTS],
    /// Rejections whose reason found no slot.
    other: AtomicU64,
}

/// One reason and its count.
#[derive(Debug, Default)]
struct ReasonSlot(OnceLock<(&'static str, AtomicU64)>);

impl Default for Outcomes {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            rejected: std::array::from_fn(|_| ReasonSlot::default()),
            other: AtomicU64::new(0),
        }
    }
}

impl Outcomes {
    pub(crate) fn accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("mcp_oauth2_requests_total", "outcome" => "accepted", "reason" => "ok")
            .increment(1);
    }

    pub(crate) fn reject(&self, reason: &'static str) {
        self.counter(reason).fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("mcp_oauth2_requests_total", "outcome" => "rejected", "reason" => reason)
            .increment(1);
    }

    /// The counter of `reason`: its slot, a newly claimed one, or `other`.
    fn counter(&self, reason: &'static str) -> &AtomicU64 {
        for slot in &self.rejected {
            let (claimed, count) = match slot.0.get() {
                Some(entry) => entry,
                None => slot.0.get_or_init(|| (reason, AtomicU64::new(0))),
            };
            if *claimed == reason {
                return count;
            }
        }
        &self.other
    }

    pub(crate) fn fill(&self, out: &mut MetricsSnapshot) {
        out.accepted = self.accepted.load(Ordering::Relaxed);
        out.rejected = self
            .rejected
            .iter()
            .filter_map(|slot| slot.0.get())
            .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
            .collect();
        let other = self.other.load(Ordering::Relaxed);
        if other > 0 {
            *out.rejected.entry(OTHER_REASON).or_default() += other;
        }
    }
}

/// Emits a facade counter (no-op without the `metrics` feature).
#[allow(unused_variables)]
pub(crate) fn emit(name: &'static str, label: &'static str, value: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name, label => value).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_and_merge() {
        let h = Histogram::new("t");
        h.record(Duration::from_micros(50));
        h.record(Duration::from_millis(1));
        h.record(Duration::from_secs(9));
        let snap = h.snapshot();
        assert_eq!(snap.count, 3);
        assert_eq!(snap.overflow, 1);
        assert_eq!(snap.buckets.first(), Some(&(Duration::from_micros(100), 1)));
        assert_eq!(snap.buckets.get(3), Some(&(Duration::from_millis(1), 1)));
        assert_eq!(snap.sum, Duration::from_micros(9_001_050));
        let mut total = LatencyHistogram::default();
        h.merge_into(&mut total);
        h.merge_into(&mut total);
        assert_eq!(total.count, 6);
        assert_eq!(total.overflow, 2);
        let mut m = MetricsSnapshot::default();
        assert_eq!(m.cache_hit_ratio(), None);
        m.cache_hits = 3;
        m.cache_misses = 1;
        assert_eq!(m.cache_hit_ratio(), Some(0.75));
    }

    /// Issue 13: rejections are counted without a lock, one atomic per
    /// reason; threads racing on new reasons agree on one slot per reason
    /// and lose no count.
    #[test]
    fn concurrent_rejections_count_exactly_once_per_reason() {
        const REASONS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
        let outcomes = std::sync::Arc::new(Outcomes::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let outcomes = std::sync::Arc::clone(&outcomes);
                std::thread::spawn(move || {
                    for i in 0..6_000 {
                        let reason = REASONS.get((i + t) % REASONS.len()).copied();
                        outcomes.reject(reason.unwrap_or("a"));
                    }
                    outcomes.accept();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut snapshot = MetricsSnapshot::default();
        outcomes.fill(&mut snapshot);
        assert_eq!(snapshot.accepted, 4);
        assert_eq!(snapshot.rejected.len(), REASONS.len());
        for reason in REASONS {
            assert_eq!(snapshot.rejected.get(reason), Some(&4_000), "{reason}");
        }
        let claimed = outcomes
            .rejected
            .iter()
            .filter(|s| s.0.get().is_some())
            .count();
        assert_eq!(claimed, REASONS.len());
    }

    /// More distinct reasons than slots: the surplus is counted as `other`,
    /// never dropped.
    #[test]
    fn reasons_beyond_the_slots_are_counted_as_other() {
        let outcomes = Outcomes::default();
        let names: Vec<&'static str> = (0..REASON_SLOTS + 3)
            .map(|i| &*Box::leak(format!("r{i}").into_boxed_str()))
            .collect();
        for name in &names {
            outcomes.reject(name);
        }
        let mut snapshot = MetricsSnapshot::default();
        outcomes.fill(&mut snapshot);
        assert_eq!(snapshot.rejected_total(), names.len() as u64);
        assert_eq!(snapshot.rejected.get(OTHER_REASON), Some(&3));
    }
}
