//! Replay detection for DPoP proofs (RFC 9449 section 11.1): each proof's
//! `jti`, under its key, is remembered until its `iat` window closes, and a
//! second use within that time is refused.
//!
//! The MCP profile makes this optional (the `iat` window alone bounds a
//! replay); it is on by default, in memory, bounded: [`MemoryReplayStore`].
//! A store shared by several replicas (Redis, issue 17) plugs in behind
//! [`ReplayStore`]; until then each replica remembers its own proofs, so a
//! proof replayed against another replica within the window is only
//! bounded by that window.

use std::time::Duration;

use aws_lc_rs::digest::{Context, SHA256};
use quick_cache::sync::{Cache, GuardResult};

/// Where used proofs are remembered.
pub(crate) trait ReplayStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records the proof `key` as used until `expires` (Unix seconds);
    /// `false` when it was already used and has not expired at `now`.
    fn first_use(&self, key: [u8; 32], expires: u64, now: u64) -> bool;
}

/// The key of a proof: SHA-256 over the key thumbprint and the `jti`
/// (length-prefixed, so the boundary is unambiguous).
pub(crate) fn proof_key(jkt: &str, jti: &str) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&(jkt.len() as u64).to_be_bytes());
    ctx.update(jkt.as_bytes());
    ctx.update(jti.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The in-memory store: a bounded concurrent cache (the least useful
/// entries are evicted first when full), one entry per proof.
pub(crate) struct MemoryReplayStore {
    seen: Cache<[u8; 32], u64>,
}

impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("len", &self.seen.len())
            .finish()
    }
}

impl MemoryReplayStore {
    /// A store remembering up to `capacity` proofs.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: Cache::new(capacity.max(1)),
        }
    }
}

impl ReplayStore for MemoryReplayStore {
    fn first_use(&self, key: [u8; 32], expires: u64, now: u64) -> bool {
        // A zero timeout: two concurrent uses of one proof cannot both be
        // first (the loser finds the other's placeholder and is refused).
        match self.seen.get_value_or_guard(&key, Some(Duration::ZERO)) {
            GuardResult::Guard(guard) => {
                let _ = guard.insert(expires);
                true
            }
            GuardResult::Value(until) if until <= now => {
                self.seen.insert(key, expires);
                true
            }
            GuardResult::Value(_) | GuardResult::Timeout => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_used_once_within_its_window() {
        let store = MemoryReplayStore::new(10);
        let k = proof_key("thumb", "jti-1");
        assert!(store.first_use(k, 100, 10));
        assert!(!store.first_use(k, 100, 50));
        // After its window the entry no longer counts.
        assert!(store.first_use(k, 200, 100));
        // Another key with the same jti is another proof.
        assert!(store.first_use(proof_key("other", "jti-1"), 100, 10));
        // The length prefix keeps boundaries apart.
        assert_ne!(proof_key("ab", "c"), proof_key("a", "bc"));
    }
}
