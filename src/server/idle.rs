//! The idle limit of an HTTP/2 connection served by
//! [`McpServer::serve`](crate::McpServer::serve).
//!
//! hyper closes an HTTP/1 connection that sends no request head within the
//! header read timeout, idle keep-alive connections included; it has no
//! such limit for HTTP/2, whose keep-alive pings any client library answers
//! by itself. So a client could open connections, send the HTTP/2 preface
//! (or part of a request's headers) and nothing more, and hold them (a file
//! descriptor and a task each) forever. [`Activity`] counts a connection's
//! HTTP/2 requests in progress (a request is in progress until its response
//! body is dropped: a long event stream keeps its connection busy), and
//! [`Activity::idle`] resolves once none has been in progress for the
//! limit; the connection is then shut down gracefully (GOAWAY). hyper and
//! h2 expose no count of open streams, hence this count of our own.
//!
//! The same count also finds a response the client has stopped taking
//! (the response write timeout, HTTP/2 side). A client that never grants
//! flow-control window leaves its stream's response unsent while it keeps
//! answering pings: the socket never blocks, so the write timer on the
//! socket never starts, and the request stays in progress forever. hyper
//! sends a frame it took from a response body only when the stream has
//! window for it, and comes back for the next (or drops the body after the
//! last) once it has, so a body that has handed hyper a frame (or was just
//! created) and is neither polled again nor dropped is one whose client
//! does not read: [`Activity::stalled`]
//! resolves once such a body has waited for the limit (it looks every
//! quarter of the limit), and the connection is dropped.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The requests of one connection, as far as its idle limit needs them.
#[derive(Default)]
pub(crate) struct Activity {
    /// An HTTP/1 request was seen: hyper's header timer guards this
    /// connection, the idle watch stands down.
    http1: AtomicBool,
    /// HTTP/2 requests whose response is not finished.
    in_progress: AtomicUsize,
    /// HTTP/2 requests started so far (tells a watch that slept through a
    /// short request that the connection was not idle).
    started: AtomicU64,
    /// Wakes the watch when the connection becomes idle or turns out to be
    /// HTTP/1.
    changed: Notify,
    /// Whether response bodies that hyper does not come back for are
    /// watched (the response write timeout is on).
    watch_stalls: bool,
    /// The HTTP/2 response bodies hyper owes a poll (created and not yet
    /// polled, or polled for a frame and not polled since), by request
    /// number, with the time they started waiting. A few entries at most:
    /// a lock of this connection's alone.
    owed: Mutex<Vec<(u64, Instant)>>,
}

impl Activity {
    /// An activity that also watches for stalled responses when
    /// `watch_stalls`.
    pub(crate) fn new(watch_stalls: bool) -> Self {
        Self {
            watch_stalls,
            ..Self::default()
        }
    }

    /// Notes a request of HTTP version `version`. For HTTP/2, the guard
    /// that keeps the request counted until it is dropped (with the
    /// response body, or with the response future if that never finishes).
    pub(crate) fn start(self: &Arc<Self>, version: http::Version) -> Option<InProgress> {
        if version != http::Version::HTTP_2 {
            if !self.http1.load(Ordering::Relaxed) {
                self.http1.store(true, Ordering::Relaxed);
                self.changed.notify_one();
            }
            return None;
        }
        let number = self.started.fetch_add(1, Ordering::Relaxed);
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        Some(InProgress(Arc::clone(self), number))
    }

    /// Whether the connection turned out to be HTTP/1.
    pub(crate) fn is_http1(&self) -> bool {
        self.http1.load(Ordering::Relaxed)
    }

    /// Whether an HTTP/2 request is in progress.
    pub(crate) fn is_busy(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) > 0
    }

    /// Resolves once no HTTP/2 request has been in progress for `limit`;
    /// never on an HTTP/1 connection once its first request was seen.
    pub(crate) async fn idle(&self, limit: Duration) {
        loop {
            if self.http1.load(Ordering::Relaxed) {
                return std::future::pending().await;
            }
            if self.is_busy() {
                self.changed.notified().await;
                continue;
            }
            let started = self.started.load(Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(limit) => {
                    if !self.http1.load(Ordering::Relaxed)
                        && !self.is_busy()
                        && self.started.load(Ordering::Relaxed) == started
                    {
                        return;
                    }
                }
                () = self.changed.notified() => {}
            }
        }
    }

    /// Resolves once an HTTP/2 response body has waited `limit` for hyper
    /// to poll it again (its client grants no window); never while every
    /// body is polled or waiting for its own data.
    pub(crate) async fn stalled(&self, limit: Duration) {
        // The watch looks every quarter of the limit (a stall is found
        // between one limit and one and a quarter after it began): a timer
        // per connection, instead of a wake-up of the connection's task
        // for every response.
        let tick = limit / 4;
        loop {
            if self.http1.load(Ordering::Relaxed) {
                return std::future::pending().await;
            }
            tokio::time::sleep(tick).await;
            let oldest = self.owed().iter().map(|(_, since)| *since).min();
            if oldest.is_some_and(|since| since.elapsed() >= limit) {
                return;
            }
        }
    }

    fn owed(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Instant)>> {
        // The list stays consistent whatever panicked while holding it.
        self.owed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Body `number` now waits for hyper to poll it.
    fn owe(&self, number: u64) {
        self.owed().push((number, Instant::now()));
    }

    /// Body `number` was polled (or dropped).
    fn paid(&self, number: u64) {
        self.owed().retain(|(n, _)| *n != number);
    }
}

/// One HTTP/2 request in progress (and its number); dropped when it is
/// over.
pub(crate) struct InProgress(Arc<Activity>, u64);

impl Drop for InProgress {
    fn drop(&mut self) {
        if self.0.in_progress.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_one();
        }
    }
}

impl InProgress {
    /// `response`, with this guard held by its body.
    pub(crate) fn hold(self, response: Response) -> Response {
        response.map(|body| {
            // A body already over is never polled: it owes nothing.
            let owes = self.0.watch_stalls && !http_body::Body::is_end_stream(&body);
            if owes {
                self.0.owe(self.1);
            }
            Body::new(Held {
                body,
                owes,
                rest: None,
                in_progress: self,
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted until it is dropped,
    /// and tells the stall watch when hyper owes it a poll.
    struct Held {
        #[pin]
        body: Body,
        // Whether the body is on the list of those hyper owes a poll.
        owes: bool,
        // The rest of a large data frame, handed over in `PIECE`s.
        rest: Option<Bytes>,
        in_progress: InProgress,
    }

    impl PinnedDrop for Held {
        fn drop(this: Pin<&mut Self>) {
            if this.owes {
                this.in_progress.0.paid(this.in_progress.1);
            }
        }
    }
}

/// The largest piece of data a watched body hands hyper at once (HTTP/2's
/// default frame size). hyper polls again only once the client has taken
/// (or granted window for) what it was given: in pieces, a large answer
/// read slowly but steadily brings hyper back often, and only a client
/// that stops taking data leaves it away for the limit.
const PIECE: usize = 16 * 1024;

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let activity = &this.in_progress.0;
        if !activity.watch_stalls {
            return this.body.poll_frame(cx);
        }
        if *this.owes {
            activity.paid(this.in_progress.1);
            *this.owes = false;
        }
        let mut body = this.body;
        let frame = match this.rest.take() {
            Some(rest) => Frame::data(rest),
            None => match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            },
        };
        let frame = match frame.into_data() {
            Ok(mut data) => {
                if data.len() > PIECE {
                    *this.rest = Some(data.split_off(PIECE));
                }
                Frame::data(data)
            }
            Err(frame) => frame,
        };
        // A frame handed over: hyper comes back once the client has
        // granted window for it, or drops the body once it sent the last
        // one. The last frame too: hyper (1.12) takes a frame before it
        // waits for window, so a body that handed over all it had may
        // still wait on a client that grants none (found from outside: a
        // stream window of 0 held a connection, a 401 of a request without
        // a token included, for good).
        if frame.is_data() {
            activity.owe(this.in_progress.1);
            *this.owes = true;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.as_ref().map_or(0, |rest| rest.len() as u64);
        crate::layer::size_with(self.body.size_hint(), rest)
    }
}

#[cfg(test)]
mod tests {
    use super::super::timed_body::Stalled;
    use super::*;

    const LIMIT: Duration = Duration::from_millis(200);

    async fn idle_within(activity: &Activity, guard: Duration) -> bool {
        tokio::time::timeout(guard, activity.idle(LIMIT))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_connection_without_requests_is_idle_after_the_limit() {
        let activity = Arc::new(Activity::default());
        let started = std::time::Instant::now();
        assert!(idle_within(&activity, Duration::from_secs(5)).await);
        assert!(started.elapsed() >= LIMIT);
    }

    #[tokio::test]
    async fn a_request_in_progress_keeps_it_busy_until_dropped() {
        let activity = Arc::new(Activity::default());
        let guard = activity.start(http::Version::HTTP_2).unwrap();
        assert!(!idle_within(&activity, LIMIT * 3).await);
        let response = guard.hold(Response::new(Body::from("x")));
        assert!(!idle_within(&activity, LIMIT * 3).await);
        drop(response);
        let dropped = std::time::Instant::now();
        assert!(idle_within(&activity, Duration::from_secs(5)).await);
        assert!(dropped.elapsed() >= LIMIT);
    }

    #[tokio::test]
    async fn an_http1_connection_is_never_idle_here() {
        let activity = Arc::new(Activity::default());
        assert!(activity.start(http::Version::HTTP_11).is_none());
        assert!(!idle_within(&activity, LIMIT * 3).await);
    }

    async fn stalled_within(activity: &Activity, guard: Duration) -> bool {
        tokio::time::timeout(guard, activity.stalled(LIMIT))
            .await
            .is_ok()
    }

    /// One poll of `body`'s next frame.
    async fn next_frame(body: &mut Body) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        std::future::poll_fn(|cx| {
            Poll::Ready(http_body::Body::poll_frame(Pin::new(&mut *body), cx))
        })
        .await
    }

    fn watched() -> (Arc<Activity>, InProgress) {
        let activity = Arc::new(Activity::new(true));
        let guard = activity.start(http::Version::HTTP_2).unwrap();
        (activity, guard)
    }

    #[tokio::test]
    async fn a_body_hyper_does_not_come_back_for_is_stalled() {
        let (activity, guard) = watched();
        let mut body = guard
            .hold(Response::new(Body::from(vec![7u8; 100_000])))
            .into_body();
        assert!(matches!(
            next_frame(&mut body).await,
            Poll::Ready(Some(Ok(_)))
        ));
        let handed = std::time::Instant::now();
        assert!(stalled_within(&activity, Duration::from_secs(5)).await);
        assert!(handed.elapsed() >= LIMIT);
    }

    #[tokio::test]
    async fn a_body_never_polled_is_stalled() {
        let (activity, guard) = watched();
        let _response = guard.hold(Response::new(Body::from("x")));
        assert!(stalled_within(&activity, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_body_waiting_for_its_own_data_is_not_stalled() {
        let (activity, guard) = watched();
        let mut body = guard.hold(Response::new(Body::new(Stalled))).into_body();
        assert!(next_frame(&mut body).await.is_pending());
        assert!(!stalled_within(&activity, LIMIT * 3).await);
    }

    // hyper (1.12) takes a frame before it waits for window: a body that
    // handed over its last frame owes until hyper drops it, which it does
    // once that frame is sent (found from outside: a one-frame answer at a
    // stream window of zero held its connection for good). Dropped, it owes
    // nothing, whatever it had left.
    #[tokio::test]
    async fn a_last_frame_owes_until_its_body_is_dropped() {
        let (activity, guard) = watched();
        let mut body = guard.hold(Response::new(Body::from("x"))).into_body();
        assert!(matches!(
            next_frame(&mut body).await,
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(http_body::Body::is_end_stream(&body));
        assert!(stalled_within(&activity, Duration::from_secs(5)).await);
        drop(body);
        assert!(!stalled_within(&activity, LIMIT * 3).await);
        let (activity, guard) = watched();
        let mut body = guard
            .hold(Response::new(Body::from(vec![7u8; 100_000])))
            .into_body();
        assert!(matches!(
            next_frame(&mut body).await,
            Poll::Ready(Some(Ok(_)))
        ));
        drop(body);
        assert!(!stalled_within(&activity, LIMIT * 3).await);
    }

    #[tokio::test]
    async fn a_large_frame_is_handed_over_in_pieces() {
        let (_activity, guard) = watched();
        let mut body = guard
            .hold(Response::new(Body::from(vec![7u8; 100_000])))
            .into_body();
        let mut total = 0usize;
        let mut frames = 0usize;
        while let Poll::Ready(Some(Ok(frame))) = next_frame(&mut body).await {
            let data = frame.into_data().unwrap();
            assert!(data.len() <= PIECE);
            assert_eq!(
                http_body::Body::size_hint(&body).exact(),
                Some((100_000 - total - data.len()) as u64)
            );
            total += data.len();
            frames += 1;
        }
        assert_eq!(total, 100_000);
        assert_eq!(frames, 100_000_usize.div_ceil(PIECE));
        assert!(http_body::Body::is_end_stream(&body));
    }

    #[tokio::test]
    async fn without_the_watch_nothing_is_split_or_owed() {
        let activity = Arc::new(Activity::new(false));
        let guard = activity.start(http::Version::HTTP_2).unwrap();
        let mut body = guard
            .hold(Response::new(Body::from(vec![7u8; 100_000])))
            .into_body();
        let Poll::Ready(Some(Ok(frame))) = next_frame(&mut body).await else {
            panic!("no frame");
        };
        assert_eq!(frame.into_data().unwrap().len(), 100_000);
        assert!(!stalled_within(&activity, LIMIT * 3).await);
    }
}
