//! The `subscriptions/listen` streams (MCP 2026-07-28) one user holds open,
//! per process.
//!
//! Why: a listen's answer is an event stream that stays open until its
//! client closes it or its token expires, and rmcp keeps the URIs it names
//! for as long (about 2 MB of the process's memory a stream at the caps of
//! [`MAX_LISTENED_URIS`](crate::operation::MAX_LISTENED_URIS) and
//! [`MAX_LISTENED_URI_BYTES`](crate::operation::MAX_LISTENED_URI_BYTES)).
//! Nothing else bounded how many one token could open: 200 per HTTP/2
//! connection, times `max_connections` (found from outside: one HTTP/2
//! connection of listens held about 140 MB). A client needs one listen,
//! a user with several clients a few; past
//! [`AuthConfigBuilder::max_listens_per_principal`](crate::AuthConfigBuilder::max_listens_per_principal)
//! a new one is answered 429 before dispatch, and the open ones are never
//! closed for it.
//!
//! Counted per user (issuer, tenant, subject: all its clients together, as
//! the session cap is), so that tokens of many clients of one user do not
//! multiply it. A slot is taken once the request is admitted and given back
//! when the answer's body is dropped: the stream closed by its client, by
//! the server at the token's expiry, or an answer that was not a stream (a
//! JSON-RPC error) once it is sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::Response;

use super::sessions::Owner;

/// The open listens of each user (see the module documentation).
#[derive(Debug)]
pub(crate) struct Listens {
    per_user: usize,
    /// Only users with an open listen are kept: the table holds at most one
    /// entry per open stream. A lock taken twice per listen (open, close),
    /// never on another request's path.
    open: Mutex<HashMap<Owner, usize>>,
}

impl Listens {
    pub(crate) fn new(per_user: usize) -> Self {
        Self {
            per_user,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Owner, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for one more listen of `user`, or `None` at the cap.
    pub(super) fn open(self: &Arc<Self>, user: Owner) -> Option<ListenSlot> {
        let mut open = self.lock();
        let count = open.entry(user).or_insert(0);
        if *count >= self.per_user {
            return None;
        }
        *count += 1;
        Some(ListenSlot {
            listens: Arc::clone(self),
            user,
        })
    }

    /// How many listens `user` holds open.
    #[cfg(test)]
    fn count(&self, user: &Owner) -> usize {
        self.lock().get(user).copied().unwrap_or(0)
    }
}

/// One open listen, given back when dropped.
#[derive(Debug)]
pub(super) struct ListenSlot {
    listens: Arc<Listens>,
    user: Owner,
}

impl Drop for ListenSlot {
    fn drop(&mut self) {
        let mut open = self.listens.lock();
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl ListenSlot {
    /// `response` with its body holding the slot until it is dropped
    /// (hyper drops a body when its stream ends or its client goes, so no
    /// end needs watching): the slot lives in the body's frame mapping.
    /// The response is marked [`ListenStream`].
    pub(super) fn hold(self, response: Response) -> Response {
        let mut response = hold_with_body(self, response);
        response.extensions_mut().insert(ListenStream);
        response
    }
}

/// `response` with its body holding `guard` until the body is dropped
/// (hyper drops a body when its stream ends or its client goes, so no end
/// needs watching): the guard lives in the body's frame mapping.
pub(super) fn hold_with_body<T: Send + Sync + 'static>(guard: T, response: Response) -> Response {
    use http_body_util::BodyExt as _;
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = &guard;
            frame
        }))
    })
}

/// Marks the answer of a `subscriptions/listen` (a response extension):
/// a stream that ends only when its client closes it or its token expires.
/// `McpServer` reads a call's answer dropped before its end (an HTTP/2
/// stream reset) to its end so that its handler stays counted; a listen
/// has no handler left once its client goes, and read to its end it would
/// hold its user's listen slot and the connection's stream slot until the
/// connection ends (found from outside: a client changing its
/// subscriptions by resetting streams locked its user out). Dropped at
/// once instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenStream;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_cap_and_gets_slots_back() {
        let listens = Arc::new(Listens::new(2));
        let (alice, bob) = ([1; 32], [2; 32]);
        let first = listens.open(alice).unwrap();
        let second = listens.open(alice).unwrap();
        assert!(listens.open(alice).is_none());
        // Another user is not counted with her.
        let his = listens.open(bob).unwrap();
        assert_eq!(listens.count(&alice), 2);
        drop(first);
        assert_eq!(listens.count(&alice), 1);
        let third = listens.open(alice).unwrap();
        drop((second, third, his));
        // Nothing kept for users without an open listen.
        assert!(listens.lock().is_empty());
    }

    #[tokio::test]
    async fn the_slot_is_given_back_when_the_body_is_dropped() {
        use http_body_util::BodyExt as _;
        let listens = Arc::new(Listens::new(1));
        let user = [7; 32];
        let held = listens
            .open(user)
            .unwrap()
            .hold(Response::new(Body::from("event")));
        assert!(listens.open(user).is_none());
        let (_, body) = held.into_parts();
        // Read to its end and dropped: the stream is over.
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"event");
        assert_eq!(listens.count(&user), 0);
        assert!(listens.open(user).is_some());
    }
}
