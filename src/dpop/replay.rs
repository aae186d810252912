//! Replay detection for DPoP proofs (RFC 9449 section 11.1): each proof's
//! `jti`, under its key, is remembered until its `iat` window closes, and a
//! second use within that time is refused.
//!
//! The MCP profile makes this optional (the `iat` window alone bounds a
//! replay); it is on by default, in memory, bounded: [`MemoryReplayStore`].
//! With a shared store (Redis) configured, proofs are remembered there
//! instead ([`Dpop::first_use_shared`](super::Dpop::first_use_shared)),
//! across replicas.
//!
//! # Who can make the memory forget a proof
//!
//! The memory holds at most `capacity` proofs. A proof is forgotten before
//! its window closes only when the memory is full and none of its entries
//! has expired (expired entries always go first), and then the proof
//! forgotten is one of the key (the proof's `jkt`, the DPoP key a token is
//! bound to) that holds the most proofs, the inserting key's own whenever
//! it is among those: the one whose window closes soonest. So a client
//! flooding fresh proofs with its own key, once the memory is full, forgets
//! only its own proofs (replaying those needs its own private key, which
//! it already has) and never another client's. Making a victim's proof
//! replayable takes a memory full of proofs of keys each holding no more
//! than the victim: at least `capacity / n` distinct DPoP-bound tokens
//! against a victim that holds `n` proofs (100,000 tokens against a victim
//! that sent one proof, at the default capacity), each token issued by the
//! authorization server.
//!
//! No client is ever refused for its rate: a key that sends more proofs
//! than the memory holds within one window (about 330 a second for proofs
//! made when sent, which live about 301 s, at the default capacity of
//! 100,000) keeps working and forgets its own oldest proofs, so only then
//! is a captured proof of that key replayable within its `iat` window, as
//! it would be without replay detection. Refusing such a key instead (a
//! quota) would keep its proofs safe but turn an honest fast client away;
//! the choice here keeps every other client's protection whole and every
//! client working.
//!
//! The structure is a set of indexes under one lock (each operation
//! `O(log n)`, a few microseconds, beside the proof's signature check that
//! costs tens): no general-purpose cache evicts by owner, which is what the
//! guarantee above needs. About 200 bytes per proof remembered (20 MB at
//! the default capacity, full).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::digest::{Context, SHA256, digest};

/// Where used proofs are remembered.
pub(crate) trait ReplayStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records the proof `jti` of the key `jkt` as used until `expires`
    /// (Unix seconds); `false` when it was already used and has not expired
    /// at `now`.
    fn first_use(&self, jkt: &str, jti: &str, expires: u64, now: u64) -> bool;
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

/// 128 bits of a SHA-256 digest: enough to tell proofs (and keys) apart
/// (a collision needs about 2^64 work, a second preimage 2^128), half the
/// memory of the whole digest.
type Id = [u8; 16];

fn id_of(digest: &[u8]) -> Id {
    let mut out = [0u8; 16];
    for (o, d) in out.iter_mut().zip(digest) {
        *o = *d;
    }
    out
}

/// How many expired entries one call forgets at most (beyond the one an
/// insertion into a full memory needs): bounded work per request, and the
/// memory still sheds expired entries faster than it takes new ones.
const EXPIRED_PER_CALL: usize = 16;

/// The in-memory store (see the module documentation for its eviction
/// rule): at most `capacity` proofs.
pub(crate) struct MemoryReplayStore {
    capacity: usize,
    inner: Mutex<Remembered>,
}

/// The proofs remembered, and the indexes that pick which one to forget.
#[derive(Default)]
struct Remembered {
    /// Proof -> (end of its window, its key).
    proofs: HashMap<Id, (u64, Id)>,
    /// Every proof by the end of its window, soonest first.
    by_expiry: BTreeSet<(u64, Id)>,
    /// Each key's proofs by the end of their window, soonest first.
    keys: HashMap<Id, BTreeSet<(u64, Id)>>,
    /// Keys by how many proofs they hold, most last.
    by_count: BTreeSet<(usize, Id)>,
}

impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &self.capacity)
            .field("len", &inner.proofs.len())
            .field("keys", &inner.keys.len())
            .finish()
    }
}

impl MemoryReplayStore {
    /// A store remembering up to `capacity` proofs.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Remembered::default()),
        }
    }
}

impl ReplayStore for MemoryReplayStore {
    fn first_use(&self, jkt: &str, jti: &str, expires: u64, now: u64) -> bool {
        let proof = id_of(&proof_key(jkt, jti));
        let owner = id_of(digest(&SHA256, jkt.as_bytes()).as_ref());
        // Nothing below panics (no indexing, no unwrap), so a poisoned lock
        // still guards consistent indexes.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.forget_expired(now, EXPIRED_PER_CALL);
        match inner.proofs.get(&proof).copied() {
            Some((until, _)) if until > now => return false,
            Some((until, key)) => inner.remove(proof, until, key),
            None => {}
        }
        if inner.proofs.len() >= self.capacity && inner.forget_expired(now, 1) == 0 {
            inner.forget_one_of_the_largest(owner);
        }
        inner.insert(proof, owner, expires);
        true
    }
}

impl Remembered {
    /// Forgets up to `max` proofs whose window closed at `now`; how many.
    fn forget_expired(&mut self, now: u64, max: usize) -> usize {
        let mut forgotten = 0;
        while forgotten < max {
            let Some(&(until, proof)) = self.by_expiry.first() else {
                break;
            };
            if until > now {
                break;
            }
            let key = self.proofs.get(&proof).map_or(proof, |&(_, key)| key);
            self.remove(proof, until, key);
            forgotten += 1;
        }
        forgotten
    }

    /// The memory is full of live proofs: forgets the one whose window
    /// closes soonest among those of the key holding the most, `owner`'s
    /// own when it holds as many as any.
    fn forget_one_of_the_largest(&mut self, owner: Id) {
        let own = self.keys.get(&owner).map_or(0, BTreeSet::len);
        let Some(&(most, largest)) = self.by_count.last() else {
            return;
        };
        let key = if own > 0 && own >= most {
            owner
        } else {
            largest
        };
        let Some(&(until, proof)) = self.keys.get(&key).and_then(BTreeSet::first) else {
            return;
        };
        self.remove(proof, until, key);
    }

    fn insert(&mut self, proof: Id, key: Id, until: u64) {
        self.proofs.insert(proof, (until, key));
        self.by_expiry.insert((until, proof));
        let set = self.keys.entry(key).or_default();
        let before = set.len();
        set.insert((until, proof));
        let after = set.len();
        self.recount(key, before, after);
    }

    fn remove(&mut self, proof: Id, until: u64, key: Id) {
        self.proofs.remove(&proof);
        self.by_expiry.remove(&(until, proof));
        let Some(set) = self.keys.get_mut(&key) else {
            return;
        };
        let before = set.len();
        set.remove(&(until, proof));
        let after = set.len();
        if after == 0 {
            self.keys.remove(&key);
        }
        self.recount(key, before, after);
    }

    fn recount(&mut self, key: Id, before: usize, after: usize) {
        if before == after {
            return;
        }
        self.by_count.remove(&(before, key));
        if after > 0 {
            self.by_count.insert((after, key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_used_once_within_its_window() {
        let store = MemoryReplayStore::new(10);
        assert!(store.first_use("thumb", "jti-1", 100, 10));
        assert!(!store.first_use("thumb", "jti-1", 100, 50));
        // After its window the entry no longer counts.
        assert!(store.first_use("thumb", "jti-1", 200, 100));
        // Another key with the same jti is another proof.
        assert!(store.first_use("other", "jti-1", 100, 10));
        // The length prefix keeps boundaries apart.
        assert_ne!(proof_key("ab", "c"), proof_key("a", "bc"));
    }

    #[test]
    fn one_key_flooding_a_full_memory_forgets_only_its_own_proofs() {
        let store = MemoryReplayStore::new(100);
        for i in 0..5 {
            assert!(store.first_use("victim", &format!("v{i}"), 1_000, 10));
        }
        for i in 0..10_000 {
            assert!(store.first_use("flooder", &format!("f{i}"), 1_000, 10));
        }
        for i in 0..5 {
            assert!(
                !store.first_use("victim", &format!("v{i}"), 1_000, 11),
                "the victim's proof v{i} was forgotten"
            );
        }
        // The flooder's latest proofs are remembered, its oldest forgotten.
        assert!(!store.first_use("flooder", "f9999", 1_000, 11));
        assert!(store.first_use("flooder", "f0", 1_000, 11));
        let inner = store.inner.lock().unwrap();
        assert_eq!(inner.proofs.len(), 100);
        assert_eq!(inner.by_expiry.len(), 100);
        assert_eq!(inner.keys.values().map(BTreeSet::len).sum::<usize>(), 100);
    }

    #[test]
    fn expired_proofs_are_forgotten_before_live_ones() {
        let store = MemoryReplayStore::new(4);
        assert!(store.first_use("a", "old-1", 20, 10));
        assert!(store.first_use("a", "old-2", 20, 10));
        assert!(store.first_use("b", "live", 1_000, 10));
        assert!(store.first_use("a", "live", 1_000, 10));
        // Full; at 30 the two old proofs have expired: the new ones take
        // their place and every live proof is still remembered.
        assert!(store.first_use("c", "new-1", 1_000, 30));
        assert!(store.first_use("c", "new-2", 1_000, 30));
        assert!(!store.first_use("b", "live", 1_000, 31));
        assert!(!store.first_use("a", "live", 1_000, 31));
        assert!(!store.first_use("c", "new-1", 1_000, 31));
    }

    #[test]
    fn many_keys_evict_the_largest_first() {
        let store = MemoryReplayStore::new(6);
        for i in 0..3 {
            assert!(store.first_use("big", &format!("b{i}"), 1_000, 10));
        }
        assert!(store.first_use("small", "s0", 1_000, 10));
        // New keys, one proof each, once full: the largest key pays, never
        // "small".
        for k in 0..4 {
            assert!(store.first_use(&format!("k{k}"), "x", 1_000, 10));
        }
        assert!(!store.first_use("small", "s0", 1_000, 11));
    }
}
