//! A snapshot of what the authentication layer has done: accepted and
//! rejected requests (by reason code), verified-token cache activity, key-set
//! fetches and age, introspection calls. No token material, ever.
//!
//! With the `metrics` feature the same events also go to the
//! [`metrics`](https://docs.rs/metrics) facade, so any exporter
//! (Prometheus, OpenTelemetry, ...) can pick them up:
//! `mcp_oauth2_requests_total{outcome, reason}`,
//! `mcp_oauth2_token_cache_total{result}`, `mcp_oauth2_jwks_fetches_total{result}`,
//! `mcp_oauth2_introspection_calls_total`.

use std::collections::BTreeMap;
use std::sync::Mutex;
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
}

impl MetricsSnapshot {
    /// All rejections, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Request outcomes counted by the layer.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    accepted: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl Outcomes {
    pub(crate) fn accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("mcp_oauth2_requests_total", "outcome" => "accepted", "reason" => "ok")
            .increment(1);
    }

    pub(crate) fn reject(&self, reason: &'static str) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
        #[cfg(feature = "metrics")]
        metrics::counter!("mcp_oauth2_requests_total", "outcome" => "rejected", "reason" => reason)
            .increment(1);
    }

    pub(crate) fn fill(&self, out: &mut MetricsSnapshot) {
        out.accepted = self.accepted.load(Ordering::Relaxed);
        out.rejected = self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
    }
}

/// Emits a facade counter (no-op without the `metrics` feature).
#[allow(unused_variables)]
pub(crate) fn emit(name: &'static str, label: &'static str, value: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name, label => value).increment(1);
}
