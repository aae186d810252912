//! [`MemoryStore`]: the default store, in this process's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{SharedStore, StoreFuture, WindowCount};

/// The default: in process memory, bounded (capacity in entries), expiry
/// checked on read.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    count: u64,
    expires: Instant,
}

impl MemoryStore {
    /// A store of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T) -> T {
        let now = Instant::now();
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= self.capacity {
            map.retain(|_, e| e.expires > now);
        }
        f(&mut map, now)
    }

    fn insert(map: &mut HashMap<String, Entry>, capacity: usize, key: &str, entry: Entry) {
        if map.len() >= capacity && !map.contains_key(key) {
            return;
        }
        map.insert(key.to_owned(), entry);
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl SharedStore for MemoryStore {
    fn hit(&self, key: &str, window: Duration) -> StoreFuture<'_, WindowCount> {
        let out = self.with(|map, now| {
            let entry = match map.get_mut(key) {
                Some(e) if e.expires > now => {
                    e.count += 1;
                    e.clone()
                }
                _ => {
                    let e = Entry {
                        value: Vec::new(),
                        count: 1,
                        expires: now + window,
                    };
                    Self::insert(map, self.capacity, key, e.clone());
                    e
                }
            };
            WindowCount {
                count: entry.count,
                resets_in: entry.expires.saturating_duration_since(now),
            }
        });
        Box::pin(std::future::ready(Ok(out)))
    }

    fn peek(&self, key: &str) -> StoreFuture<'_, Option<WindowCount>> {
        let out = self.with(|map, now| {
            map.get(key)
                .filter(|e| e.expires > now)
                .map(|e| WindowCount {
                    count: e.count,
                    resets_in: e.expires.saturating_duration_since(now),
                })
        });
        Box::pin(std::future::ready(Ok(out)))
    }

    fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
        let out = self.with(|map, now| {
            if map.get(key).is_some_and(|e| e.expires > now) {
                return false;
            }
            let e = Entry {
                value: value.to_vec(),
                count: 0,
                expires: now + ttl,
            };
            Self::insert(map, self.capacity, key, e);
            map.contains_key(key)
        });
        Box::pin(std::future::ready(Ok(out)))
    }

    fn get(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>> {
        let out = self.with(|map, now| {
            map.get(key)
                .filter(|e| e.expires > now)
                .map(|e| e.value.clone())
        });
        Box::pin(std::future::ready(Ok(out)))
    }

    fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, ()> {
        self.with(|map, now| {
            let e = Entry {
                value: value.to_vec(),
                count: 0,
                expires: now + ttl,
            };
            Self::insert(map, self.capacity, key, e);
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete(&self, key: &str) -> StoreFuture<'_, ()> {
        self.with(|map, _| map.remove(key));
        Box::pin(std::future::ready(Ok(())))
    }
}
