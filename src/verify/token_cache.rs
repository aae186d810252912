//! The verified-token cache: a client sends the same token on every request
//! of a session, so the full verification (parsing, claims, signature) runs
//! once per token and later requests cost a hash and a lookup.
//!
//! Why this is safe:
//! - an entry is identified by the SHA-256 of the token bytes: the cache
//!   never holds a token, and a different token (any bit) is a different
//!   digest; a hit is a stored digest equal to the presented token's (a
//!   connection served by `McpServer` keeps its last token and that token's
//!   digest, so that a client repeating its token is not hashed again: see
//!   [`per_connection`]);
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
//! The cache is bounded twice: in entries (`verified_cache_max_entries`)
//! and in bytes, [`BYTES_PER_ENTRY`] per allowed entry (64 MB at the
//! default 100,000). Each entry weighs what it holds (the context's strings
//! and claims text, the entry itself, the map's slot; see
//! [`AuthContext::retained_bytes`]) but never less than [`BYTES_PER_ENTRY`]:
//! small tokens are then limited by the entry count, large ones by the byte
//! budget, so a flood of oversized valid tokens cannot grow the cache past
//! it. The container is `quick_cache` (sharded, S3-FIFO-like eviction: an
//! entry that is hit again survives a scan of one-off tokens); expired
//! entries are never answered and are the first to go, since nothing hits
//! them.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::AuthContext;

/// How much of a token's end the probe hashes: 32 base64url characters are
/// 192 bits of a JWS signature.
pub(crate) const PROBE_BYTES: usize = 32;

/// The byte budget per allowed entry, and the least an entry weighs: 640
/// bytes, so the default 100,000 entries are bounded by 64 MB. A typical
/// access token's entry (issuer, subject, audience, client id, two scopes,
/// jti, iat, exp) holds about 500 bytes.
pub(crate) const BYTES_PER_ENTRY: u64 = 640;

/// The identity hash of a `u64` probe: a probe is already a keyed SipHash
/// output, so the map uses it as its own hash instead of hashing it again.
/// Hand-written (a dozen lines) rather than a dependency: std has no
/// pass-through hasher.
#[derive(Default, Clone)]
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

/// An entry and its weight, computed once when it is stored (a weight must
/// not change while the entry is in the cache).
#[derive(Clone)]
struct Stored {
    entry: Entry,
    weight: u64,
}

impl Stored {
    fn new(entry: Entry) -> Self {
        // The map's slot (key, value, bookkeeping) plus what the context holds.
        let bytes = (std::mem::size_of::<(u64, Stored)>() + 16 + entry.ctx.retained_bytes()) as u64;
        Self {
            weight: bytes.max(BYTES_PER_ENTRY),
            entry,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct ByBytes;

impl quick_cache::Weighter<u64, Stored> for ByBytes {
    fn weight(&self, _probe: &u64, stored: &Stored) -> u64 {
        stored.weight
    }
}

/// Counts evictions (the cache was full) into [`Counters::evictions`].
#[derive(Clone)]
struct CountEvictions(Arc<Counters>);

impl quick_cache::Lifecycle<u64, Stored> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut Self::RequestState, _probe: u64, _stored: Stored) {
        self.0.evictions.fetch_add(1, Ordering::Relaxed);
    }
}

type Map =
    quick_cache::sync::Cache<u64, Stored, ByBytes, BuildHasherDefault<ProbeHasher>, CountEvictions>;

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
    map: Map,
    probe_keys: RandomState,
    pub(crate) max_age: u64,
    pub(crate) counters: Arc<Counters>,
}

impl TokenCache {
    /// A cache of at most `max_entries` tokens and `max_entries` x
    /// [`BYTES_PER_ENTRY`] bytes (0 disables it), each kept at most
    /// `max_age` seconds.
    pub(crate) fn new(max_entries: usize, max_age: u64) -> Option<Self> {
        if max_entries == 0 || max_age == 0 {
            return None;
        }
        let counters = Arc::new(Counters::default());
        let map = Map::with(
            max_entries,
            (max_entries as u64).saturating_mul(BYTES_PER_ENTRY),
            ByBytes,
            BuildHasherDefault::default(),
            CountEvictions(Arc::clone(&counters)),
        );
        Some(Self {
            map,
            probe_keys: RandomState::new(),
            max_age,
            counters,
        })
    }

    /// The probe of `token`: where its entry would be.
    pub(crate) fn probe(&self, token: &str) -> u64 {
        tail_probe(&self.probe_keys, token)
    }

    /// A live entry for `token` (whose probe is `probe`) at `now`. Counts
    /// nothing: the caller decides whether the entry is still good.
    ///
    /// Inlined into the hit path: called on its own, the entry is moved out
    /// through a copy (about 100 instructions more per hit, callgrind).
    #[inline]
    pub(crate) fn get(&self, probe: u64, token: &str, now: u64) -> Option<Entry> {
        let candidate = self.map.get(&probe).filter(|s| now < s.entry.until)?;
        // The digest is computed only when the probe found something.
        (candidate.entry.digest == token_key(token)).then_some(candidate.entry)
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
        if self
            .map
            .remove_if(&probe, |s| s.entry.digest == *digest)
            .is_some()
        {
            self.counters.invalidated.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stores `entry` at `probe` (replacing whatever was there: two live
    /// tokens sharing a probe is a 2^-64 event, and costs only a
    /// re-verification). A full cache evicts (see the module doc); an entry
    /// heavier than a cache shard is not stored and is verified again next
    /// time.
    pub(crate) fn insert(&self, probe: u64, entry: Entry, _now: u64) {
        self.map.insert(probe, Stored::new(entry));
    }

    /// Number of entries (live or not yet evicted).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// A keyed SipHash of `token`'s last [`PROBE_BYTES`] bytes: how a token's
/// entry is found without hashing the whole token (here and in the layer's
/// memory of refused tokens).
pub(crate) fn tail_probe(keys: &RandomState, token: &str) -> u64 {
    let bytes = token.as_bytes();
    keys.hash_one(
        bytes
            .get(bytes.len().saturating_sub(PROBE_BYTES)..)
            .unwrap_or(bytes),
    )
}

/// SHA-256 of the token bytes. Inside [`per_connection`] (every
/// connection `McpServer` serves), a token equal to the last one hashed on
/// the same connection reuses that digest instead of hashing again.
pub(crate) fn token_key(token: &str) -> [u8; 32] {
    LAST_TOKEN
        .try_with(|last| {
            let Ok(mut last) = last.try_borrow_mut() else {
                return sha256(token);
            };
            if let Some(known) = last.as_ref().and_then(|l| l.digest_of(token)) {
                return known;
            }
            let digest = sha256(token);
            *last = Some(LastToken::new(token, digest));
            digest
        })
        .unwrap_or_else(|_outside| sha256(token))
}

/// Records `digest` as the SHA-256 of `token` (computed elsewhere, as the
/// JWT verifier does while it checks the signature) for the next
/// [`token_key`] on the same connection.
pub(crate) fn remember_key(token: &str, digest: [u8; 32]) {
    let _outside = LAST_TOKEN.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some(LastToken::new(token, digest));
        }
    });
}

fn sha256(token: &str) -> [u8; 32] {
    digest_array(&aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

tokio::task_local! {
    /// The last token a connection presented and its digest (see
    /// [`per_connection`]).
    static LAST_TOKEN: std::cell::RefCell<Option<LastToken>>;
}

/// Runs `connection` (the task serving one connection) with a memory of the
/// last token hashed on it.
///
/// A client sends the same token on every request of a connection, and the
/// cache looks it up by its SHA-256: hashing it again on each request is
/// most of what a cached token costs (about 0.8 us for a typical token on
/// a CPU with SHA extensions, several times that without). With this
/// memory, a request whose token is byte for byte the connection's
/// previous one reuses that digest. The cache, its entries, their expiry
/// and their invalidation are unchanged: only the hash is skipped, and only
/// for identical bytes, so no decision can differ from hashing.
///
/// What it holds: one token (the connection's last, at most
/// `max_token_bytes`: 8 KiB by default, less than hyper's read buffer of
/// the same connection), for as long as the connection lives; the request
/// buffers of the connection held it too. It
/// is compared in constant time, since a connection may carry requests of
/// several principals (a proxy's pooled connection). HTTP/2 streams and the
/// plain tower layer run outside this scope and hash every time.
pub(crate) fn per_connection<F: std::future::Future>(
    connection: F,
) -> impl std::future::Future<Output = F::Output> {
    LAST_TOKEN.scope(std::cell::RefCell::new(None), connection)
}

/// Whether `token` is byte for byte the connection's last token (see
/// [`per_connection`]) and those bytes are a well-formed bearer token
/// (RFC 6750 `b64token`, judged when they were remembered): the Bearer
/// reader then skips its scan of every byte (about 1,100 instructions for
/// a typical token), with the same answer. Compared in constant time.
pub(crate) fn is_last_well_formed_token(token: &[u8]) -> bool {
    LAST_TOKEN
        .try_with(|last| {
            last.try_borrow().is_ok_and(|last| {
                last.as_ref()
                    .is_some_and(|last| last.well_formed && same_bytes(&last.bytes, token))
            })
        })
        .unwrap_or(false)
}

/// A token's bytes and their SHA-256.
struct LastToken {
    bytes: Box<[u8]>,
    digest: [u8; 32],
    /// Whether the bytes are a well-formed bearer token.
    well_formed: bool,
}

impl LastToken {
    fn new(token: &str, digest: [u8; 32]) -> Self {
        Self {
            bytes: token.as_bytes().into(),
            digest,
            well_formed: crate::bearer::is_b64token(token.as_bytes()),
        }
    }

    /// The digest, when `token` is this one.
    fn digest_of(&self, token: &str) -> Option<[u8; 32]> {
        same_bytes(&self.bytes, token.as_bytes()).then_some(self.digest)
    }
}

/// Whether `a` and `b` are equal, in time independent of where they differ
/// (not of their lengths). Hand-written rather than aws-lc-rs's
/// `verify_slices_are_equal`: that one compares a byte at a time, several
/// times slower on a token than this fold without an early exit, which the
/// compiler vectorizes.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A SHA-256 digest as an array (the first 32 bytes of any longer one).
pub(crate) fn digest_array(digest: &aws_lc_rs::digest::Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(digest.as_ref()) {
        *o = *b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

    #[test]
    fn same_bytes_is_equality() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
        assert!(!same_bytes(b"xbc", b"abc"));
        // Every single-bit change anywhere is seen.
        let token = TOKEN.as_bytes();
        for i in 0..token.len() {
            for bit in 0..8 {
                let mut other = token.to_vec();
                other[i] ^= 1 << bit;
                assert!(!same_bytes(token, &other), "byte {i} bit {bit}");
            }
        }
    }

    #[tokio::test]
    async fn a_connection_reuses_the_digest_of_its_last_token_only() {
        let other = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl";
        per_connection(async {
            // Outside any memory the digest is SHA-256; inside, the same.
            assert_eq!(token_key(TOKEN), sha256(TOKEN));
            assert_eq!(token_key(TOKEN), sha256(TOKEN));
            // Another token (same length, same tail) is hashed, not
            // answered with the remembered digest.
            assert_eq!(token_key(other), sha256(other));
            assert_ne!(token_key(other), token_key(TOKEN));
            // A digest recorded by the verifier is used for that token only.
            remember_key(TOKEN, [7; 32]);
            assert_eq!(token_key(TOKEN), [7; 32]);
            assert_eq!(token_key(other), sha256(other));
            assert_eq!(token_key(TOKEN), sha256(TOKEN));
        })
        .await;
        // Outside the scope: hashed every time, and nothing panics.
        remember_key(TOKEN, [7; 32]);
        assert_eq!(token_key(TOKEN), sha256(TOKEN));
    }
}
