//! Caches keyed by a SHA-256 digest and bounded twice, in entries and in
//! bytes: the introspection results and the exchanged tokens. Each entry
//! weighs what it holds, at least [`BYTES_PER_ENTRY`], and the byte budget
//! is `BYTES_PER_ENTRY` per allowed entry, so a cache of small entries
//! holds as many as it is allowed and large ones are held fewer at a time
//! (found from outside: answers of up to 256 KiB, or 64 KiB for a token
//! endpoint, were held whole at the entry cap). The verified-token cache
//! weighs its entries once, when they are made, and keeps its own.

/// The byte budget per allowed entry, and the least an entry weighs.
pub(crate) const BYTES_PER_ENTRY: u64 = 4_096;

/// What a cached value holds on the heap, in bytes.
pub(crate) trait HeldBytes {
    /// The bytes held beyond the value's own size.
    fn held_bytes(&self) -> usize;
}

/// Weighs an entry by its size, quick_cache's bookkeeping (about 64
/// bytes) and what it holds, at least [`BYTES_PER_ENTRY`].
#[derive(Clone, Copy, Default)]
pub(crate) struct ByBytes;

impl<V: HeldBytes> quick_cache::Weighter<[u8; 32], V> for ByBytes {
    fn weight(&self, _key: &[u8; 32], value: &V) -> u64 {
        let bytes = std::mem::size_of::<([u8; 32], V)>() + 64 + value.held_bytes();
        (bytes as u64).max(BYTES_PER_ENTRY)
    }
}

/// A cache of values by digest, bounded in entries and bytes.
pub(crate) type DigestCache<V> = quick_cache::sync::Cache<[u8; 32], V, ByBytes>;

/// A cache for `max_entries` values (at least one) and `max_entries` x
/// [`BYTES_PER_ENTRY`] bytes.
pub(crate) fn digest_cache<V: HeldBytes + Clone>(max_entries: usize) -> DigestCache<V> {
    let entries = max_entries.max(1);
    DigestCache::with_weighter(
        entries,
        (entries as u64).saturating_mul(BYTES_PER_ENTRY),
        ByBytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Held(Vec<u8>);

    impl HeldBytes for Held {
        fn held_bytes(&self) -> usize {
            self.0.len()
        }
    }

    // Small values are held as many as allowed; large ones fewer, within
    // the byte budget.
    #[test]
    fn bounded_in_entries_and_in_bytes() {
        let small = digest_cache::<Held>(100);
        for i in 0..200u8 {
            small.insert([i; 32], Held(vec![0; 10]));
        }
        assert!(small.len() <= 100 && small.len() >= 90, "{}", small.len());
        let large = digest_cache::<Held>(100);
        for i in 0..200u8 {
            large.insert([i; 32], Held(vec![0; 64 * 1024]));
        }
        assert!(
            large.weight() <= 100 * BYTES_PER_ENTRY,
            "{}",
            large.weight()
        );
        assert!(large.len() <= 6, "{}", large.len());
    }
}
