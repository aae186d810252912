//! State shared by replicas (counters, owners, seen proofs, cached
//! results): the [`SharedStore`] trait and its in-memory default.
//!
//! Local copy of the shared-store contract of issue 17 (branch `store`
//! owns this module; replaced by its version at merge).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod memory;
pub use memory::MemoryStore;

/// A boxed future returned by store operations.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The count of a fixed window counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowCount {
    /// Hits in the current window.
    pub count: u64,
    /// Time left in the window.
    pub resets_in: Duration,
}

/// State shared by replicas: counters, owners, seen proofs, cached results.
/// Keys are short ASCII strings built by the crate from hashes (never token material).
pub trait SharedStore: Send + Sync + std::fmt::Debug + 'static {
    /// Adds one to the counter `key`; the window starts at the first hit and the key expires with it.
    fn hit(&self, key: &str, window: Duration) -> StoreFuture<'_, WindowCount>;
    /// The counter's current window, if any (no increment).
    fn peek(&self, key: &str) -> StoreFuture<'_, Option<WindowCount>>;
    /// Stores `value` under `key` for `ttl` unless the key exists; `true` when stored.
    fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool>;
    /// The value under `key`, if present and not expired.
    fn get(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>>;
    /// Stores `value` under `key` for `ttl` (overwrites).
    fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, ()>;
    /// Removes `key`.
    fn delete(&self, key: &str) -> StoreFuture<'_, ()>;
}

/// A store operation failed (Redis down, timeout, ...). Never contains values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or refused the operation.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The operation took too long.
    #[error("store timed out")]
    Timeout,
}
