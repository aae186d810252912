//! The verified-token cache: a client sends the same token on every request
//! of a session, so the full verification (parsing, claims, signature) runs
//! once per token and later requests cost a hash and a lookup.
//!
//! Why this is safe:
//! - the key is the SHA-256 of the token bytes: the cache never holds a
//!   token, and a different token (any bit) is a different key;
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
//! The cache is bounded: when a shard is full, expired entries go first,
//! then the entry closest to expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::AuthContext;

const SHARDS: usize = 16;

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
    shards: Vec<Mutex<HashMap<[u8; 32], Entry>>>,
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
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_entries.div_ceil(SHARDS),
            max_age,
            counters: Counters::default(),
        })
    }

    fn shard(&self, key: &[u8; 32]) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.shards[usize::from(key[0]) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A live entry for `key` at `now`.
    pub(crate) fn get(&self, key: &[u8; 32], now: u64) -> Option<Entry> {
        let found = {
            let shard = self.shard(key);
            shard.get(key).filter(|e| now < e.until).cloned()
        };
        match &found {
            Some(_) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                crate::metrics::emit("mcp_oauth2_token_cache_total", "result", "hit");
            }
            None => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                crate::metrics::emit("mcp_oauth2_token_cache_total", "result", "miss");
            }
        }
        found
    }

    /// Forgets `key` (its verifying key left the set).
    pub(crate) fn remove(&self, key: &[u8; 32]) {
        if self.shard(key).remove(key).is_some() {
            self.counters.invalidated.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn insert(&self, key: [u8; 32], entry: Entry, now: u64) {
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            let before = shard.len();
            shard.retain(|_, e| now < e.until);
            if shard.len() >= self.per_shard
                && let Some(k) = shard.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k)
            {
                shard.remove(&k);
            }
            let evicted = before.saturating_sub(shard.len());
            self.counters
                .evictions
                .fetch_add(evicted as u64, Ordering::Relaxed);
        }
        shard.insert(key, entry);
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
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
