//! [`MemoryStore`]: the default [`SharedStore`], in process memory.
//!
//! A bounded concurrent cache (`quick_cache`: sharded, the least useful
//! entries evicted first when full), capacity counted in entries. Nothing
//! expires in the background: an entry's expiry is checked when it is read,
//! and an expired entry is then removed; entries never read again leave when
//! eviction picks them.
//!
//! Counters are an [`AtomicU64`] per key: a hit in a live window takes the
//! shard's read lock and one atomic add; starting a window (first hit, or
//! the first hit after the window closed) replaces the entry under the
//! shard's write lock, so two first hits never both start a window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, EntryAction, EntryResult};

use super::{SharedStore, StoreError, StoreFuture, WindowCount, millis_at_least_one};

/// The longest TTL or window kept (ten years): longer ones are cut to it,
/// so that a deadline is always representable.
const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The capacity of [`MemoryStore::default`], in entries.
const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Clone)]
enum Slot {
    Value {
        bytes: Arc<[u8]>,
        expires: Instant,
    },
    Counter {
        count: Arc<AtomicU64>,
        resets_at: Instant,
    },
}

impl Slot {
    fn live(&self, now: Instant) -> bool {
        match self {
            Slot::Value { expires, .. } => *expires > now,
            Slot::Counter { resets_at, .. } => *resets_at > now,
        }
    }

    fn value(bytes: &[u8], ttl: Duration, now: Instant) -> Self {
        Slot::Value {
            bytes: Arc::from(bytes),
            expires: until(now, ttl),
        }
    }

    fn counter(window: Duration, now: Instant) -> Self {
        Slot::Counter {
            count: Arc::new(AtomicU64::new(1)),
            resets_at: until(now, window),
        }
    }
}

/// `now + d`, with `d` rounded up to a millisecond (at least one) and cut
/// to [`LONGEST`].
fn until(now: Instant, d: Duration) -> Instant {
    let d = Duration::from_millis(millis_at_least_one(d)).min(LONGEST);
    crate::clock::deadline(now, d)
}

/// One more hit on a live counter.
fn add_one(count: &AtomicU64, resets_at: Instant, now: Instant) -> WindowCount {
    // Relaxed: the count is the only data; no other memory is published.
    let n = count.fetch_add(1, Ordering::Relaxed).saturating_add(1);
    WindowCount::new(n, resets_at.saturating_duration_since(now))
}

/// The default: in process memory, bounded (capacity in entries), expiry checked on read.
///
/// Each replica has its own: use a shared store (the `redis` feature) when
/// several replicas serve one resource. [`Default`] holds 100,000 entries.
pub struct MemoryStore {
    entries: Cache<String, Slot>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys or values: only how full it is.
        f.debug_struct("MemoryStore")
            .field("len", &self.entries.len())
            .field("capacity", &self.entries.capacity())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MemoryStore {
    /// A store holding up to about `capacity` entries (at least one); when
    /// full, the least useful entries are evicted first.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::new(capacity.max(1)),
        }
    }

    /// The number of entries held (expired ones included until read or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn hit_now(&self, key: &str, window: Duration) -> WindowCount {
        let now = Instant::now();
        // Fast path: a live window, read lock and one atomic add.
        if let Some(Slot::Counter { count, resets_at }) = self.entries.get(key)
            && resets_at > now
        {
            return add_one(&count, resets_at, now);
        }
        let fresh = Slot::counter(window, now);
        let first = match &fresh {
            Slot::Counter { resets_at, .. } => {
                WindowCount::new(1, resets_at.saturating_duration_since(now))
            }
            Slot::Value { .. } => WindowCount::new(1, Duration::ZERO),
        };
        // Under the shard's write lock: one window started, whoever races.
        let result = self.entries.entry(key, None, |_, slot| match slot {
            Slot::Counter { count, resets_at } if *resets_at > now => {
                EntryAction::Retain(add_one(count, *resets_at, now))
            }
            _ => {
                *slot = fresh.clone();
                EntryAction::Retain(first)
            }
        });
        match result {
            EntryResult::Retained(count) => count,
            EntryResult::Vacant(guard) => {
                let _ = guard.insert(fresh);
                first
            }
            // Not produced: the callback only retains and there is no timeout.
            _ => first,
        }
    }

    fn peek_now(&self, key: &str) -> Option<WindowCount> {
        let now = Instant::now();
        match self.entries.get(key)? {
            Slot::Counter { count, resets_at } if resets_at > now => Some(WindowCount::new(
                count.load(Ordering::Relaxed),
                resets_at.saturating_duration_since(now),
            )),
            _ => None,
        }
    }

    fn put_if_absent_now(&self, key: &str, value: &[u8], ttl: Duration) -> bool {
        let now = Instant::now();
        let result = self.entries.entry(key, None, |_, slot| {
            if slot.live(now) {
                EntryAction::Retain(false)
            } else {
                *slot = Slot::value(value, ttl, now);
                EntryAction::Retain(true)
            }
        });
        match result {
            EntryResult::Retained(stored) => stored,
            EntryResult::Vacant(guard) => {
                let _ = guard.insert(Slot::value(value, ttl, now));
                true
            }
            // Not produced: the callback only retains and there is no timeout.
            _ => false,
        }
    }

    fn get_now(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let slot = self.entries.get(key)?;
        if !slot.live(now) {
            // Expiry on read: drop it unless it was replaced meanwhile.
            self.entries.remove_if(key, |s| !s.live(now));
            return None;
        }
        match slot {
            Slot::Value { bytes, .. } => Some(bytes.to_vec()),
            // As Redis: a counter reads as its decimal count.
            Slot::Counter { count, .. } => {
                Some(count.load(Ordering::Relaxed).to_string().into_bytes())
            }
        }
    }
}

impl SharedStore for MemoryStore {
    fn hit(&self, key: &str, window: Duration) -> StoreFuture<'_, WindowCount> {
        Box::pin(std::future::ready(Ok(self.hit_now(key, window))))
    }

    fn peek(&self, key: &str) -> StoreFuture<'_, Option<WindowCount>> {
        Box::pin(std::future::ready(Ok(self.peek_now(key))))
    }

    fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
        Box::pin(std::future::ready(Ok(
            self.put_if_absent_now(key, value, ttl)
        )))
    }

    fn get(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>> {
        Box::pin(std::future::ready(Ok(self.get_now(key))))
    }

    fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, ()> {
        self.entries
            .insert(key.to_owned(), Slot::value(value, ttl, Instant::now()));
        Box::pin(std::future::ready(Ok::<(), StoreError>(())))
    }

    fn delete(&self, key: &str) -> StoreFuture<'_, ()> {
        self.entries.remove(key);
        Box::pin(std::future::ready(Ok::<(), StoreError>(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(80);

    #[tokio::test]
    async fn a_counter_counts_within_its_window_and_restarts_after() {
        let store = MemoryStore::new(100);
        assert_eq!(store.peek("c").await.unwrap(), None);
        let first = store.hit("c", WINDOW).await.unwrap();
        assert_eq!(first.count, 1);
        assert!(first.resets_in <= WINDOW && first.resets_in > Duration::ZERO);
        assert_eq!(store.hit("c", WINDOW).await.unwrap().count, 2);
        // The window is fixed at the first hit: later hits do not extend it.
        let third = store.hit("c", Duration::from_secs(3600)).await.unwrap();
        assert_eq!(third.count, 3);
        assert!(third.resets_in <= WINDOW);
        let peeked = store.peek("c").await.unwrap().unwrap();
        assert_eq!(peeked.count, 3);
        // Another key is another counter.
        assert_eq!(store.hit("C", WINDOW).await.unwrap().count, 1);
        assert_eq!(store.get("c").await.unwrap().unwrap(), b"3");

        tokio::time::sleep(WINDOW + Duration::from_millis(20)).await;
        assert_eq!(store.peek("c").await.unwrap(), None);
        let again = store.hit("c", WINDOW).await.unwrap();
        assert_eq!(again.count, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_hits_are_all_counted_in_one_window() {
        let store = Arc::new(MemoryStore::new(100));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut ones = 0;
                for _ in 0..500 {
                    let c = store.hit("k", Duration::from_secs(60)).await.unwrap();
                    if c.count == 1 {
                        ones += 1;
                    }
                }
                ones
            }));
        }
        let mut ones = 0;
        for t in tasks {
            ones += t.await.unwrap();
        }
        // Exactly one hit started the window; none was lost.
        assert_eq!(ones, 1);
        assert_eq!(store.peek("k").await.unwrap().unwrap().count, 4000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn put_if_absent_has_one_winner_until_expiry() {
        let store = Arc::new(MemoryStore::new(100));
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.put_if_absent("p", &[i], WINDOW).await.unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
        let held = store.get("p").await.unwrap().unwrap();
        assert_eq!(held.len(), 1);
        assert!(!store.put_if_absent("p", b"late", WINDOW).await.unwrap());
        assert_eq!(store.get("p").await.unwrap().unwrap(), held);

        tokio::time::sleep(WINDOW + Duration::from_millis(20)).await;
        assert_eq!(store.get("p").await.unwrap(), None);
        assert!(store.put_if_absent("p", b"new", WINDOW).await.unwrap());
        assert_eq!(store.get("p").await.unwrap().unwrap(), b"new");
        // An expired value not read before is replaced too.
        store.put("q", b"old", Duration::ZERO).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(store.put_if_absent("q", b"new", WINDOW).await.unwrap());
        // A live counter is a present key.
        store.hit("n", WINDOW).await.unwrap();
        assert!(!store.put_if_absent("n", b"x", WINDOW).await.unwrap());
    }

    #[tokio::test]
    async fn put_overwrites_and_delete_removes() {
        let store = MemoryStore::default();
        assert!(store.is_empty());
        store.put("v", b"one", WINDOW).await.unwrap();
        store
            .put("v", b"two", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.get("v").await.unwrap().unwrap(), b"two");
        // A value under a counter's key is no counter, and a hit replaces it.
        assert_eq!(store.peek("v").await.unwrap(), None);
        assert_eq!(store.hit("v", WINDOW).await.unwrap().count, 1);
        store.delete("v").await.unwrap();
        assert_eq!(store.get("v").await.unwrap(), None);
        store.delete("never-there").await.unwrap();
        // Expired on read: the entry is gone, not just hidden.
        store
            .put("e", b"x", Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(store.len(), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.get("e").await.unwrap(), None);
        assert_eq!(store.len(), 0);
        // A huge TTL is cut, never an overflow.
        store.put("h", b"x", Duration::MAX).await.unwrap();
        assert_eq!(store.get("h").await.unwrap().unwrap(), b"x");
        assert_eq!(
            store.hit("hc", Duration::MAX).await.unwrap().resets_in,
            LONGEST
        );
    }

    #[tokio::test]
    async fn the_store_is_bounded_and_its_debug_shows_no_key_or_value() {
        let store = MemoryStore::new(64);
        for i in 0..10_000 {
            store
                .put(
                    &format!("key-{i}"),
                    b"secret-value",
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
            store
                .hit(&format!("ctr-{i}"), Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(store.len() <= 64, "{} entries", store.len());
        // A new entry still finds room.
        store
            .put("last", b"secret-value", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.get("last").await.unwrap().unwrap(), b"secret-value");
        let debug = format!("{store:?}");
        assert!(debug.starts_with("MemoryStore { len: "), "{debug}");
        assert!(
            !debug.contains("secret") && !debug.contains("key-") && !debug.contains("last"),
            "{debug}"
        );
        // At least one entry, whatever was asked.
        let tiny = MemoryStore::new(0);
        tiny.put("a", b"1", WINDOW).await.unwrap();
        assert_eq!(tiny.get("a").await.unwrap().unwrap(), b"1");
    }
}
