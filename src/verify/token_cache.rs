//! The verified-token cache: a client sends the same token on every request
//! of a session, so the full verification (parsing, claims, signature) runs
//! once per token and later requests cost a hash and a lookup.
//!
//! Why this is safe:
//! - an entry is identified by the SHA-256 of the token bytes: the cache
//!   never holds a token, and a different token (any bit) is a different
//!   digest; a hit is a stored digest equal to the presented token's;
//! - only successfully verified tokens are stored, with the context built
//!   from their verified claims, so every claims-dependent decision (scopes,
//!   audience) reads the same facts as a full verification;
//! - an entry never outlives the token's `exp` (plus leeway) nor the
//!   configured maximum age, and is ignored as soon as the key that verified
//!   it is no longer in the issuer's key set (rotation, removal) or that key
//!   set is past its stale window;
//! - what it does not see is revocation at the authorization server: a
//!   revoked JWT stays valid until it expires, with or without this cache.
//!   Where revocation must bite sooner, use short-lived tokens or
//!   introspection.
//!
//! Cost of a miss: entries are found through a *probe*, a SipHash (keyed
//! with per-process random keys, [`RandomState`]) of the token's last
//! [`PROBE_BYTES`] bytes, which for a JWS are signature bytes. A token whose
//! probe finds nothing is a miss without computing its SHA-256: a flood of
//! never-seen or garbage tokens pays a few tens of nanoseconds, not a hash
//! of the whole token. Only when the probe finds an entry is the token's
//! SHA-256 computed and compared with the entry's digest; a token made to
//! share a cached token's tail is then a miss and is verified in full.
//!
//! The cache is bounded: the cap is split evenly over 16 shards, so it is
//! never exceeded (a shard that fills first starts evicting a little before
//! the whole cache is full). In a full shard, expired entries go first, then
//! the sixteenth of its entries closest to expiry.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::AuthContext;

const SHARDS: usize = 16;
/// How much of a token's end the probe hashes: 32 base64url characters are
/// 192 bits of a JWS signature.
const PROBE_BYTES: usize = 32;

/// Entries keyed by probe. A probe is already a keyed SipHash output, so
/// the map uses it as its own hash instead of hashing it again.
type ProbeMap = HashMap<u64, Entry, BuildHasherDefault<ProbeHasher>>;

/// The identity hash of a `u64` probe. Hand-written (a dozen lines) rather
/// than a dependency: std has no pass-through hasher.
#[derive(Default)]
struct ProbeHasher(u64);

impl Hasher for ProbeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `u64` keys; fold anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One verified token.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) ctx: AuthContext,
    /// Unix seconds after which the entry is dead.
    pub(crate) until: u64,
    /// Index of the issuer whose key verified the token.
    pub(crate) issuer: usize,
    /// Fingerprint of that key.
    pub(crate) key: u64,
    /// SHA-256 of the token ([`token_key`]): what a hit must match.
    pub(crate) digest: [u8; 32],
}

/// Counters of the cache.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) invalidated: AtomicU64,
}

pub(crate) struct TokenCache {
    /// Entries by probe.
    shards: Vec<Mutex<ProbeMap>>,
    probe_keys: RandomState,
    per_shard: usize,
    pub(crate) max_age: u64,
    pub(crate) counters: Counters,
}

impl TokenCache {
    /// A cache of at most `max_entries` tokens (0 disables it), each kept at
    /// most `max_age` seconds.
    pub(crate) fn new(max_entries: usize, max_age: u64) -> Option<Self> {
        if max_entries == 0 || max_age == 0 {
            return None;
        }
        Some(Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            probe_keys: RandomState::new(),
            per_shard: max_entries.div_ceil(SHARDS),
            max_age,
            counters: Counters::default(),
        })
    }

    /// The probe of `token`: where its entry would be.
    pub(crate) fn probe(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        self.probe_keys
            .hash_one(&bytes[bytes.len().saturating_sub(PROBE_BYTES)..])
    }

    fn shard(&self, probe: u64) -> std::sync::MutexGuard<'_, ProbeMap> {
        // The map uses the low bits (bucket) and the top seven (tag); the
        // shard comes from bits in between.
        self.shards[(probe >> 32) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A live entry for `token` (whose probe is `probe`) at `now`. Counts
    /// nothing: the caller decides whether the entry is still good.
    pub(crate) fn get(&self, probe: u64, token: &str, now: u64) -> Option<Entry> {
        let candidate = {
            let shard = self.shard(probe);
            shard.get(&probe).filter(|e| now < e.until).cloned()
        };
        // The digest is computed only when the probe found something.
        candidate.filter(|e| e.digest == token_key(token))
    }

    /// Counts a token answered from the cache.
    pub(crate) fn count_hit(&self) {
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        crate::metrics::emit("mcp_oauth2_token_cache_total", "result", "hit");
    }

    /// Counts a token that had to be verified.
    pub(crate) fn count_miss(&self) {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        crate::metrics::emit("mcp_oauth2_token_cache_total", "result", "miss");
    }

    /// Forgets the entry at `probe` if it is the token with `digest` (its
    /// verifying key left the set).
    pub(crate) fn remove(&self, probe: u64, digest: &[u8; 32]) {
        let mut shard = self.shard(probe);
        if shard.get(&probe).is_some_and(|e| e.digest == *digest) {
            shard.remove(&probe);
            self.counters.invalidated.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stores `entry` at `probe` (replacing whatever was there: two live
    /// tokens sharing a probe is a 2^-64 event, and costs only a re-verification).
    ///
    /// A full shard first drops its expired entries; if it is still full, it
    /// drops the sixteenth of its entries closest to expiry at once, so that a
    /// cache full of live tokens pays one sweep per many insertions rather
    /// than one per insertion.
    pub(crate) fn insert(&self, probe: u64, entry: Entry, now: u64) {
        let mut shard = self.shard(probe);
        if shard.len() >= self.per_shard && !shard.contains_key(&probe) {
            let before = shard.len();
            shard.retain(|_, e| now < e.until);
            if shard.len() >= self.per_shard {
                let mut by_expiry: Vec<(u64, u64)> =
                    shard.iter().map(|(p, e)| (e.until, *p)).collect();
                let n = (self.per_shard / 16).clamp(1, by_expiry.len());
                by_expiry.select_nth_unstable(n - 1);
                for (_, p) in &by_expiry[..n] {
                    shard.remove(p);
                }
            }
            let evicted = before.saturating_sub(shard.len());
            self.counters
                .evictions
                .fetch_add(evicted as u64, Ordering::Relaxed);
        }
        shard.insert(probe, entry);
    }

    /// Number of entries (live or not yet swept).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// SHA-256 of the token bytes.
pub(crate) fn token_key(token: &str) -> [u8; 32] {
    digest_array(&aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

/// A SHA-256 digest as an array (the first 32 bytes of any longer one).
pub(crate) fn digest_array(digest: &aws_lc_rs::digest::Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bytes = digest.as_ref();
    let n = bytes.len().min(32);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}
