//! Requests whose bodies the layer waits for, bounded per user and per
//! process.
//!
//! Why: an HTTP/2 client may have 200 streams open on a connection, each
//! sending its head (up to `max_header_bytes` of decoded fields, which
//! HPACK lets it send in a few bytes) and then no body, or all of a 4 MiB
//! body but its last bytes. While the layer waits for a body (until the
//! server's body read timeout), the request's head, state and the body
//! read so far stay in memory. Found from outside: one holder of a valid
//! token took the reference server from 27 MB to 134 MB with withheld
//! bodies on 20 connections, and to 557 MB with 100 bodies of 4 MiB less
//! 100 bytes on one; HTTP/1 the same per connection (50 connections: 241
//! MB). The connection limit (three quarters of the descriptor limit) was
//! the only bound: terabytes at 15,000 connections.
//!
//! A body that has arrived when the layer first reads it (a call sent with
//! its head) takes nothing: the common call never touches the table
//! (HTTP/1 included: hyper hands the layer a body already in its read
//! buffer at the first read). "Arrived" is what the server has taken from
//! the connection: on HTTP/1 at most its read buffer (16 KiB at the
//! default head limit), on HTTP/2 what the stream's flow-control window
//! let through; a larger body waits for its rest like a withheld one,
//! however fast it comes (found from outside: 16 honest calls of 3.9 MB
//! at once from one user counted 62 MB). A burst of calls on one HTTP/2
//! connection may find some bodies not yet taken from the connection: the
//! default per-user bound is above a connection's 200 streams for that,
//! and the per-user byte bound above sixteen bodies at the 4 MiB cap. One
//! that has not arrived takes a slot of its user's (the caller's user:
//! issuer, tenant, subject; for an unauthenticated JSON POST on an exempt
//! route, the peer's address, an IPv6 peer by its /64) and
//! one of the process's, counting the bytes it holds as they arrive, until
//! it is read whole, refused or dropped. Past
//! [`max_pending_bodies_per_principal`](crate::AuthConfigBuilder::max_pending_bodies_per_principal)
//! or
//! [`max_pending_body_bytes_per_principal`](crate::AuthConfigBuilder::max_pending_body_bytes_per_principal)
//! the request is answered 429, past
//! [`max_pending_bodies`](crate::AuthConfigBuilder::max_pending_bodies) or
//! [`max_pending_body_bytes`](crate::AuthConfigBuilder::max_pending_body_bytes)
//! 503, at once, its body unread.

use std::collections::HashMap;
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
    per_principal_bytes: usize,
    total: usize,
    total_bytes: usize,
    /// Locked only for a body that has not arrived.
    open: Mutex<Open>,
}

/// What is pending: the process's count and bytes, and each key's (only
/// keys with a pending body are kept).
#[derive(Debug, Default)]
struct Open {
    count: usize,
    bytes: usize,
    keys: HashMap<Owner, Load>,
}

/// One key's pending bodies and the bytes they hold.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    count: usize,
    bytes: usize,
}

/// Which bound a pending body found full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The caller's user (or the peer, unauthenticated) waits for
    /// `max_pending_bodies_per_principal` bodies already, or its bodies
    /// would hold more than `max_pending_body_bytes_per_principal`.
    Principal,
    /// The process waits for `max_pending_bodies` bodies already, or the
    /// bodies would hold more than `max_pending_body_bytes`.
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
    pub(crate) fn new(
        per_principal: usize,
        per_principal_bytes: usize,
        total: usize,
        total_bytes: usize,
    ) -> Self {
        Self {
            per_principal,
            per_principal_bytes,
            total,
            total_bytes,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for one more pending body of `key`, holding `bytes` already
    /// (what arrived before it waited), or the bound that is full.
    fn wait(self: &Arc<Self>, key: Owner, bytes: usize) -> Result<PendingSlot, Full> {
        let mut open = self.lock();
        let load = open.keys.get(&key).copied().unwrap_or_default();
        if load.count >= self.per_principal
            || load.bytes.saturating_add(bytes) > self.per_principal_bytes
        {
            return Err(Full::Principal);
        }
        if open.count >= self.total || open.bytes.saturating_add(bytes) > self.total_bytes {
            return Err(Full::Process);
        }
        open.count += 1;
        open.bytes += bytes;
        let load = open.keys.entry(key).or_default();
        load.count += 1;
        load.bytes += bytes;
        Ok(PendingSlot {
            bodies: Arc::clone(self),
            key,
            bytes,
        })
    }

    /// What is pending: the process's count and bytes, and `key`'s count.
    #[cfg(test)]
    fn counts(&self, key: &Owner) -> (usize, usize, usize) {
        let open = self.lock();
        (
            open.count,
            open.bytes,
            open.keys.get(key).map_or(0, |load| load.count),
        )
    }

    /// The bytes `key`'s pending bodies hold.
    #[cfg(test)]
    fn bytes_of(&self, key: &Owner) -> usize {
        self.lock().keys.get(key).map_or(0, |load| load.bytes)
    }
}

/// One pending body, given back when dropped.
struct PendingSlot {
    bodies: Arc<PendingBodies>,
    key: Owner,
    bytes: usize,
}

impl PendingSlot {
    /// `more` bytes of the body arrived while it waits: counted, or the
    /// byte bound of its key or of the process is full.
    fn grow(&mut self, more: usize) -> Result<(), Full> {
        let bodies = &self.bodies;
        let mut open = bodies.lock();
        let open = &mut *open;
        let load = open.keys.entry(self.key).or_default();
        if load.bytes.saturating_add(more) > bodies.per_principal_bytes {
            return Err(Full::Principal);
        }
        if open.bytes.saturating_add(more) > bodies.total_bytes {
            return Err(Full::Process);
        }
        load.bytes += more;
        open.bytes += more;
        self.bytes += more;
        Ok(())
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut open = self.bodies.lock();
        open.count = open.count.saturating_sub(1);
        open.bytes = open.bytes.saturating_sub(self.bytes);
        if let Some(load) = open.keys.get_mut(&self.key) {
            load.count = load.count.saturating_sub(1);
            load.bytes = load.bytes.saturating_sub(self.bytes);
            if load.count == 0 {
                open.keys.remove(&self.key);
            }
        }
    }
}

/// The key an unauthenticated request's pending body counts under: its
/// client's address (`addr`, as the throttle reads it: an IPv4-mapped IPv6
/// address is IPv4 already), an IPv6 address by its /64 as the throttle
/// counts it (a subscriber is given a whole /64 and may pick any address
/// of it: pointed out from outside, a key per address would give such a
/// client the process's bound); all clients without an address share a
/// key. Tagged with "peer" and the family so that it is never a user's
/// key (those are SHA-256 digests) nor another family's.
pub(super) fn peer_key(addr: Option<IpAddr>) -> Owner {
    let mut key = [0; 32];
    key[..4].copy_from_slice(b"peer");
    match addr {
        Some(IpAddr::V4(v4)) => {
            key[4] = 4;
            key[5..9].copy_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            key[4] = 6;
            key[5..13].copy_from_slice(&v6.octets()[..8]);
        }
        None => {}
    }
    key
}

/// Reads a request's `body` whole (at most `limit` bytes, with the errors
/// of `axum::body::to_bytes`): without the table while it has arrived;
/// once a read must wait, within a pending slot of the key `pending()`
/// names, counting the bytes it holds, or not at all when a bound is full.
/// `pending` runs only for a body that waits.
pub(super) async fn read_pending(
    body: Body,
    limit: usize,
    bodies: &Arc<PendingBodies>,
    pending: impl FnOnce() -> Owner,
) -> Result<Bytes, Unread> {
    use http_body::Body as _;
    // `Limited` and its error, as `to_bytes` reads: the layer tells a body
    // over the cap (413) by that error.
    let mut body = std::pin::pin!(http_body_util::Limited::new(body, limit));
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut held = 0;
    let mut pending = Some(pending);
    let mut slot: Option<PendingSlot> = None;
    loop {
        // One poll with the task's own waker: a frame that has arrived is
        // taken without the table.
        let polled = std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if let Some(pending) = pending.take() {
                    slot = Some(bodies.wait(pending(), held).map_err(Unread::Full)?);
                }
                std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        match frame {
            None => break,
            Some(Err(e)) => return Err(Unread::Body(axum::Error::new(e))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                {
                    held += data.len();
                    if let Some(slot) = slot.as_mut() {
                        slot.grow(data.len()).map_err(Unread::Full)?;
                    }
                    chunks.push(data);
                }
            }
        }
    }
    drop(slot);
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => Bytes::from(chunks.concat()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_the_process_hold_at_most_their_caps_and_get_slots_back() {
        let bodies = Arc::new(PendingBodies::new(2, 1000, 3, 1000));
        let (alice, bob, carol) = ([1; 32], [2; 32], [3; 32]);
        let a1 = bodies.wait(alice, 10).unwrap();
        let a2 = bodies.wait(alice, 10).unwrap();
        assert_eq!(bodies.wait(alice, 10).err(), Some(Full::Principal));
        let b1 = bodies.wait(bob, 10).unwrap();
        // The process is full: bob is under his cap, carol has none.
        assert_eq!(bodies.wait(bob, 10).err(), Some(Full::Process));
        assert_eq!(bodies.wait(carol, 10).err(), Some(Full::Process));
        assert_eq!(bodies.counts(&alice), (3, 30, 2));
        drop(a1);
        assert_eq!(bodies.counts(&alice), (2, 20, 1));
        let c1 = bodies.wait(carol, 10).unwrap();
        drop((a2, b1, c1));
        assert_eq!(bodies.counts(&alice), (0, 0, 0));
        // Keys without a pending body are forgotten.
        assert!(bodies.lock().keys.is_empty());
    }

    #[test]
    fn the_process_bytes_are_bounded_as_bodies_arrive() {
        let bodies = Arc::new(PendingBodies::new(8, 100, 8, 100));
        let (alice, bob) = ([1; 32], [2; 32]);
        let mut a = bodies.wait(alice, 60).unwrap();
        assert_eq!(bodies.wait(bob, 41).err(), Some(Full::Process));
        let mut b = bodies.wait(bob, 30).unwrap();
        b.grow(10).unwrap();
        assert_eq!(bodies.counts(&bob), (2, 100, 1));
        assert_eq!(a.grow(1).err(), Some(Full::Process));
        drop(b);
        a.grow(40).unwrap();
        assert_eq!(bodies.counts(&alice), (1, 100, 1));
        drop(a);
        assert_eq!(bodies.counts(&alice), (0, 0, 0));
    }

    // One user may not fill the process's bytes: its own bodies hold at
    // most its byte bound (429), counted at the wait and as they arrive,
    // and the bytes come back with the bodies; another user still waits.
    #[test]
    fn a_key_holds_at_most_its_bytes() {
        let bodies = Arc::new(PendingBodies::new(8, 100, 8, 1000));
        let (alice, bob) = ([1; 32], [2; 32]);
        let mut a1 = bodies.wait(alice, 60).unwrap();
        assert_eq!(bodies.wait(alice, 41).err(), Some(Full::Principal));
        let mut a2 = bodies.wait(alice, 40).unwrap();
        assert_eq!(a2.grow(1).err(), Some(Full::Principal));
        assert_eq!(a1.grow(1).err(), Some(Full::Principal));
        assert_eq!(bodies.bytes_of(&alice), 100);
        // Bob is not held back by Alice's bytes.
        let mut b = bodies.wait(bob, 100).unwrap();
        assert_eq!(b.grow(1).err(), Some(Full::Principal));
        assert_eq!(bodies.counts(&bob), (3, 200, 1));
        drop(a2);
        assert_eq!(bodies.bytes_of(&alice), 60);
        a1.grow(40).unwrap();
        assert_eq!(bodies.counts(&alice), (2, 200, 1));
        drop((a1, b));
        assert_eq!(bodies.counts(&alice), (0, 0, 0));
        assert!(bodies.lock().keys.is_empty());
    }

    #[test]
    fn peer_keys_are_per_address_or_ipv6_64_and_never_a_digest_or_another_family() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        // The IPv6 /64 whose first 32 bits spell 192.0.2.1.
        let v6_like_v4: IpAddr = "c000:201::1".parse().unwrap();
        let keys = [
            peer_key(Some(v4)),
            peer_key(Some(other)),
            peer_key(Some(v6)),
            peer_key(Some("2001:db8:0:1::1".parse().unwrap())),
            peer_key(Some(v6_like_v4)),
            peer_key(None),
        ];
        // Any address of one /64 is the same client.
        assert_eq!(
            peer_key(Some(v6)),
            peer_key(Some("2001:db8::ffff:ffff:ffff:fffe".parse().unwrap()))
        );
        for (i, a) in keys.iter().enumerate() {
            assert!(a.starts_with(b"peer"));
            for b in keys.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
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
    async fn a_body_that_has_arrived_takes_no_slot() {
        // Bounds of one, already full: an arrived body is read anyway.
        let bodies = Arc::new(PendingBodies::new(1, 64, 1, 64));
        let _held = bodies.wait([9; 32], 64).unwrap();
        let read = read_pending(Body::from("{}"), 64, &bodies, || [9; 32]).await;
        assert!(matches!(read, Ok(bytes) if bytes.as_ref() == b"{}"));
    }

    #[tokio::test]
    async fn a_body_past_the_byte_bound_while_it_waits_is_refused() {
        let bodies = Arc::new(PendingBodies::new(8, 1000, 8, 10));
        let (tx, body) = channel_body();
        let waiting = {
            let bodies = Arc::clone(&bodies);
            tokio::spawn(async move { read_pending(body, 64, &bodies, || [5; 32]).await })
        };
        tx.send(Ok(Bytes::from_static(b"[1,2,"))).await.unwrap();
        tx.send(Ok(Bytes::from_static(b"3,4,5,"))).await.unwrap();
        let read = waiting.await.unwrap();
        assert!(matches!(read, Err(Unread::Full(Full::Process))));
        assert_eq!(bodies.counts(&[5; 32]), (0, 0, 0));
        // Over the body cap: the error `to_bytes` gives.
        let read = read_pending(Body::from("x".repeat(65)), 64, &bodies, || [5; 32]).await;
        assert!(matches!(read, Err(Unread::Body(e)) if e.to_string().contains("length limit")));
    }

    #[tokio::test]
    async fn a_body_still_to_come_waits_in_a_slot_or_is_refused() {
        let bodies = Arc::new(PendingBodies::new(1, 1000, 8, 1000));
        let (tx, body) = channel_body();
        let waiting = {
            let bodies = Arc::clone(&bodies);
            tokio::spawn(async move { read_pending(body, 64, &bodies, || [5; 32]).await })
        };
        // The first read holds the key's only slot while it waits, and
        // counts what arrives.
        while bodies.counts(&[5; 32]).2 == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(bodies.counts(&[5; 32]), (1, 0, 1));
        let (tx2, second) = channel_body();
        let refused = read_pending(second, 64, &bodies, || [5; 32]).await;
        assert!(matches!(refused, Err(Unread::Full(Full::Principal))));
        drop(tx2);
        tx.send(Ok(Bytes::from_static(b"[]"))).await.unwrap();
        drop(tx);
        let read = waiting.await.unwrap();
        assert!(matches!(read, Ok(bytes) if bytes.as_ref() == b"[]"));
        assert_eq!(bodies.counts(&[5; 32]), (0, 0, 0));
    }
}
