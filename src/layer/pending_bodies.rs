//! HTTP/2 requests whose bodies the layer waits for, bounded per user and
//! per process.
//!
//! Why: an HTTP/2 client may have 200 streams open on a connection, each
//! sending its head (up to `max_header_bytes` of decoded fields, which
//! HPACK lets it send in a few bytes) and then no body. While the layer
//! waits for a body (until the server's body read timeout), the stream's
//! head and state stay in memory: about 31 KB a stream at the defaults.
//! Found from outside: one holder of a valid token, on 20 connections, took
//! the reference server from 27 MB to 134 MB, and the connection limit
//! (three quarters of the descriptor limit) was the only bound: 96 GB at
//! 15,000 connections. HTTP/1 carries one request at a time on a
//! connection, which the connection limit bounds.
//!
//! A body that has arrived when the layer first reads it (an honest call,
//! sent with its head) takes nothing: the common call never touches the
//! table. One that has not takes a slot of its user's (the caller's user:
//! issuer, tenant, subject; for an unauthenticated JSON POST on an exempt
//! route, the peer's address) and one of the process's until it is read
//! whole, refused or dropped. Past
//! [`max_pending_bodies_per_principal`](crate::AuthConfigBuilder::max_pending_bodies_per_principal)
//! the request is answered 429, past
//! [`max_pending_bodies`](crate::AuthConfigBuilder::max_pending_bodies)
//! 503, at once, its body unread.

use std::collections::HashMap;
use std::future::Future as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use axum::body::{Body, Bytes};

use super::sessions::Owner;

/// The pending bodies of each user and of the process (see the module
/// documentation).
#[derive(Debug)]
pub(crate) struct PendingBodies {
    per_principal: usize,
    total: usize,
    /// The process's count, and each key's (only keys with a pending body
    /// are kept). Locked only for a body that has not arrived.
    open: Mutex<(usize, HashMap<Owner, usize>)>,
}

/// Which bound a pending body found full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The caller's user (or the peer, unauthenticated) waits for
    /// `max_pending_bodies_per_principal` bodies already.
    Principal,
    /// The process waits for `max_pending_bodies` bodies already.
    Process,
}

/// Why a body was not read.
pub(super) enum Unread {
    /// Broken off, over the byte cap, or past the body read timeout.
    Body(axum::Error),
    /// Not yet arrived, and a bound is full.
    Full(Full),
}

impl PendingBodies {
    pub(crate) fn new(per_principal: usize, total: usize) -> Self {
        Self {
            per_principal,
            total,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<Owner, usize>)> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for one more pending body of `key`, or the bound that is
    /// full.
    fn wait(self: &Arc<Self>, key: Owner) -> Result<PendingSlot, Full> {
        let mut open = self.lock();
        let (total, keys) = &mut *open;
        if keys.get(&key).copied().unwrap_or(0) >= self.per_principal {
            return Err(Full::Principal);
        }
        if *total >= self.total {
            return Err(Full::Process);
        }
        *total += 1;
        *keys.entry(key).or_insert(0) += 1;
        Ok(PendingSlot {
            bodies: Arc::clone(self),
            key,
        })
    }

    /// How many bodies are pending: the process's, and `key`'s.
    #[cfg(test)]
    fn counts(&self, key: &Owner) -> (usize, usize) {
        let open = self.lock();
        (open.0, open.1.get(key).copied().unwrap_or(0))
    }
}

/// One pending body, given back when dropped.
struct PendingSlot {
    bodies: Arc<PendingBodies>,
    key: Owner,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut open = self.bodies.lock();
        let (total, keys) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(count) = keys.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

/// The key an unauthenticated request's pending body counts under: its
/// peer's address (all peers without one share a key). Tagged so that it
/// is never a user's key (those are SHA-256 digests).
pub(super) fn peer_key(addr: Option<IpAddr>) -> Owner {
    let mut key = [0; 32];
    key[..4].copy_from_slice(b"peer");
    match addr {
        Some(IpAddr::V4(v4)) => key[4..8].copy_from_slice(&v4.octets()),
        Some(IpAddr::V6(v6)) => key[4..20].copy_from_slice(&v6.octets()),
        None => {}
    }
    key
}

/// Reads an HTTP/2 request's `body` whole (at most `limit` bytes, as
/// `axum::body::to_bytes`): at once when it has arrived; else within a
/// pending slot of `key()`'s, or not at all when the bounds are full.
pub(super) async fn read_pending(
    body: Body,
    limit: usize,
    bodies: &Arc<PendingBodies>,
    key: impl FnOnce() -> Owner,
) -> Result<Bytes, Unread> {
    let mut read = std::pin::pin!(axum::body::to_bytes(body, limit));
    // One poll with the task's own waker: a body that has arrived is read
    // now, without the table.
    let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
    if let Poll::Ready(done) = first {
        return done.map_err(Unread::Body);
    }
    let _slot = bodies.wait(key()).map_err(Unread::Full)?;
    read.await.map_err(Unread::Body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_the_process_hold_at_most_their_caps_and_get_slots_back() {
        let bodies = Arc::new(PendingBodies::new(2, 3));
        let (alice, bob, carol) = ([1; 32], [2; 32], [3; 32]);
        let a1 = bodies.wait(alice).unwrap();
        let a2 = bodies.wait(alice).unwrap();
        assert_eq!(bodies.wait(alice).err(), Some(Full::Principal));
        let b1 = bodies.wait(bob).unwrap();
        // The process is full: bob is under his cap, carol has none.
        assert_eq!(bodies.wait(bob).err(), Some(Full::Process));
        assert_eq!(bodies.wait(carol).err(), Some(Full::Process));
        assert_eq!(bodies.counts(&alice), (3, 2));
        drop(a1);
        assert_eq!(bodies.counts(&alice), (2, 1));
        let c1 = bodies.wait(carol).unwrap();
        drop((a2, b1, c1));
        assert_eq!(bodies.counts(&alice), (0, 0));
        // Keys without a pending body are forgotten.
        assert!(bodies.lock().1.is_empty());
    }

    #[test]
    fn peer_keys_are_per_address_and_never_a_digest_of_zeroes() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let keys = [
            peer_key(Some(v4)),
            peer_key(Some(other)),
            peer_key(Some(v6)),
            peer_key(None),
        ];
        for (i, a) in keys.iter().enumerate() {
            assert!(a.starts_with(b"peer"));
            for b in keys.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_has_arrived_takes_no_slot() {
        // Bounds of one, already full: an arrived body is read anyway.
        let bodies = Arc::new(PendingBodies::new(1, 1));
        let _held = bodies.wait([9; 32]).unwrap();
        let read = read_pending(Body::from("{}"), 64, &bodies, || [9; 32]).await;
        assert!(matches!(read, Ok(bytes) if bytes.as_ref() == b"{}"));
    }

    type Chunk = Result<Bytes, std::io::Error>;

    /// A body whose chunks come from the sender.
    fn channel_body() -> (tokio::sync::mpsc::Sender<Chunk>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        (tx, Body::from_stream(stream))
    }

    #[tokio::test]
    async fn a_body_still_to_come_waits_in_a_slot_or_is_refused() {
        let bodies = Arc::new(PendingBodies::new(1, 8));
        let (tx, body) = channel_body();
        let waiting = {
            let bodies = Arc::clone(&bodies);
            tokio::spawn(async move { read_pending(body, 64, &bodies, || [5; 32]).await })
        };
        // The first read holds the key's only slot while it waits.
        while bodies.counts(&[5; 32]).1 == 0 {
            tokio::task::yield_now().await;
        }
        let (tx2, second) = channel_body();
        let refused = read_pending(second, 64, &bodies, || [5; 32]).await;
        assert!(matches!(refused, Err(Unread::Full(Full::Principal))));
        drop(tx2);
        tx.send(Ok(Bytes::from_static(b"[]"))).await.unwrap();
        drop(tx);
        let read = waiting.await.unwrap();
        assert!(matches!(read, Ok(bytes) if bytes.as_ref() == b"[]"));
        assert_eq!(bodies.counts(&[5; 32]), (0, 0));
    }
}
