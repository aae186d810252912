//! The body read timeout of [`McpServer::serve`](crate::McpServer::serve):
//! a request's whole body must arrive within a limit, or reading it fails.
//!
//! hyper bounds the time a client may take to send a request's head, not
//! its body: a client that sends a head with `Content-Length: 1000` and
//! then nothing (or one byte a minute) holds its connection, and the task
//! reading the body, for as long as it likes. Hand-written because the
//! crate that has a body timeout (`tower-http`'s `TimeoutBody`) resets its
//! clock after every frame, which a client trickling one byte at a time
//! defeats, and arms a timer for every body, even one that arrived with
//! its head (most MCP requests: one small JSON-RPC message).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::idle::{Activity, InProgress};

pub(crate) use crate::layer::BodyTimedOut;

/// A request body [`TimedBodies`] can wrap (hyper's `Incoming`, and
/// `axum::body::Body` in tests): one name for the bounds every impl here
/// repeats.
pub(crate) trait RequestBody:
    http_body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Send + Unpin + 'static
{
}

impl<B> RequestBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Send + Unpin + 'static
{
}

/// What a request's [`TimedBody`] and its [`TimedResponse`] share.
#[derive(Default)]
pub(crate) struct Shared {
    /// The limit passed: the response is a 408.
    timed_out: AtomicBool,
    /// The body was read to its end.
    finished: AtomicBool,
    /// HTTP/1: what the service left unread of the body when it dropped
    /// it, for the response to read before it is sent (see
    /// [`TimedResponse`]).
    left: Mutex<Option<Body>>,
}

impl Shared {
    /// The body was read to its end, or timed out.
    fn is_over(&self) -> bool {
        self.finished.load(Ordering::Relaxed) || self.timed_out.load(Ordering::Relaxed)
    }

    /// Taken only for a body that was not read to its end (never on the
    /// path of a call that succeeds).
    fn take_left(&self) -> Option<Body> {
        self.left
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

pin_project_lite::pin_project! {
    /// A request body that must be received whole within `limit` (when
    /// there is one), counted from the first time its reader has to wait
    /// for bytes. A body that arrived with its head never waits, so it
    /// never arms a timer. On HTTP/1, a body its reader drops before its
    /// end is handed back to the response (`give_back`).
    pub(crate) struct TimedBody<B>
    where
        B: RequestBody,
    {
        body: Option<B>,
        limit: Option<Duration>,
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        give_back: bool,
        shared: Arc<Shared>,
    }

    impl<B> PinnedDrop for TimedBody<B>
    where
        B: RequestBody,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.give_back || this.shared.is_over() {
                return;
            }
            if let Some(body) = this.body.take()
                && !body.is_end_stream()
            {
                *this.shared.left.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(Body::new(body));
            }
        }
    }
}

impl<B> TimedBody<B>
where
    B: RequestBody,
{
    pub(crate) fn new(
        body: B,
        limit: Option<Duration>,
        give_back: bool,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            body: Some(body),
            limit,
            deadline: None,
            give_back,
            shared,
        }
    }
}

impl<B> http_body::Body for TimedBody<B>
where
    B: RequestBody,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        if this.shared.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
            if frame.is_none() || body.is_end_stream() {
                this.shared.finished.store(true, Ordering::Relaxed);
                this.deadline.set(None);
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let Some(limit) = *this.limit else {
            return Poll::Pending;
        };
        if this.deadline.is_none() {
            this.deadline.set(Some(tokio::time::sleep(limit)));
        }
        if let Some(deadline) = this.deadline.as_pin_mut() {
            ready!(deadline.poll(cx));
        }
        this.shared.timed_out.store(true, Ordering::Relaxed);
        tracing::debug!(
            limit_secs = limit.as_secs_f64(),
            "a request body did not arrive within the body read timeout"
        );
        Poll::Ready(Some(Err(Box::new(BodyTimedOut(limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.shared.is_over()
            || self
                .body
                .as_ref()
                .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

/// A service that gives every request with a body a [`TimedBody`] before
/// the router sees it, answers HTTP 408 when that body timed out, whatever
/// the reader of the body answered (the auth layer's 400, rmcp's 500),
/// and keeps HTTP/1 connections usable after answers given without
/// reading the body. The router boxes a request's body anyway
/// (`axum::body::Body`): boxing the timed body instead costs nothing more;
/// a request without a body (a GET) is left as it is.
///
/// An answer given before the body was read (a refusal: no token, a bad
/// one, an unknown path) leaves the body's bytes on an HTTP/1 connection,
/// in front of the next request. hyper then reads what has already
/// arrived and, if that is not all, closes the connection after the answer
/// without saying so, and a client that sends its next request on it
/// (the Python SDK does, when it wrote the head and the body apart) gets
/// no answer at all. So the answer reads the rest of the body first (at
/// most [`DRAIN_MAX`] bytes, waiting at most [`DRAIN_GRACE`] for them) and
/// the connection serves the next request; when the rest does not come
/// or is too large, the answer says `Connection: close`.
///
/// It also tells the connection's [`Activity`] about each request (the
/// HTTP/2 idle limit), when the connection has one.
#[derive(Clone)]
pub(crate) struct TimedBodies<S> {
    pub(crate) inner: S,
    pub(crate) limit: Option<Duration>,
    pub(crate) activity: Option<Arc<Activity>>,
}

/// The most an answer reads of a body its service left unread.
const DRAIN_MAX: usize = 64 * 1024;

/// How long an answer waits for the rest of a body its service left
/// unread.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

impl<S, B> tower_service::Service<http::Request<B>> for TimedBodies<S>
where
    S: tower_service::Service<http::Request<Body>, Response = Response>,
    B: RequestBody,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let in_progress = self
            .activity
            .as_ref()
            .and_then(|activity| activity.start(req.version()));
        let http1 = req.version() < http::Version::HTTP_2;
        // An HTTP/2 answer to HEAD goes out without its body: hyper strips
        // it over HTTP/1 only (found from outside: the JSON of a refusal
        // went out as a DATA frame after a HEAD's 401 or 405, which a
        // client reads as a protocol error; RFC 9110 section 9.3.2).
        let head = !http1 && req.method() == http::Method::HEAD;
        // With `Expect: 100-continue` the client waits for a go-ahead
        // before it sends the body: an answer without one is not worth
        // the body, which is not asked for (the answer closes instead).
        let give_back = http1 && !req.headers().contains_key(http::header::EXPECT);
        let (parts, body) = req.into_parts();
        let (body, shared) = if body.is_end_stream() || (self.limit.is_none() && !http1) {
            (Body::new(body), None)
        } else {
            let shared = Arc::new(Shared::default());
            let timed = TimedBody::new(body, self.limit, give_back, Arc::clone(&shared));
            (Body::new(timed), Some(shared))
        };
        TimedResponse {
            inner: self.inner.call(http::Request::from_parts(parts, body)),
            shared,
            limit: self.limit,
            http1,
            head,
            in_progress,
            state: State::Waiting,
        }
    }
}

/// Where a [`TimedResponse`] is.
enum State {
    /// Waiting for the service's answer.
    Waiting,
    /// Reading what the service left of an HTTP/1 body before sending
    /// `answer`.
    Draining {
        answer: Response,
        left: Body,
        read: usize,
        grace: Option<Pin<Box<tokio::time::Sleep>>>,
    },
    /// Answered.
    Done,
}

pin_project_lite::pin_project! {
    /// The response future of [`TimedBodies`].
    pub(crate) struct TimedResponse<F> {
        #[pin]
        inner: F,
        shared: Option<Arc<Shared>>,
        limit: Option<Duration>,
        http1: bool,
        // An HTTP/2 HEAD: the answer's body is left out.
        head: bool,
        // An HTTP/2 request counted until its response body is dropped.
        in_progress: Option<InProgress>,
        state: State,
    }
}

/// Reads `left` to its end; `false` when it errs, passes [`DRAIN_MAX`]
/// bytes or stalls past [`DRAIN_GRACE`].
fn poll_drain(
    left: &mut Body,
    read: &mut usize,
    grace: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    use http_body::Body as _;
    loop {
        let room = DRAIN_MAX.saturating_sub(*read) as u64;
        if left.size_hint().lower() > room {
            return Poll::Ready(false);
        }
        match Pin::new(&mut *left).poll_frame(cx) {
            Poll::Ready(None) => return Poll::Ready(true),
            Poll::Ready(Some(Ok(frame))) => {
                *read = read.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                if *read > DRAIN_MAX {
                    return Poll::Ready(false);
                }
            }
            Poll::Ready(Some(Err(_))) => return Poll::Ready(false),
            Poll::Pending => {
                let grace = grace.get_or_insert_with(|| Box::pin(tokio::time::sleep(DRAIN_GRACE)));
                ready!(grace.as_mut().poll(cx));
                return Poll::Ready(false);
            }
        }
    }
}

impl<F, E> Future for TimedResponse<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let State::Waiting = this.state {
            let response = ready!(this.inner.poll(cx))?;
            let Some(shared) = this.shared.as_ref() else {
                return Poll::Ready(Ok(finish(response, this.in_progress, *this.head)));
            };
            if shared.timed_out.load(Ordering::Relaxed) {
                let limit = this.limit.unwrap_or_default();
                let response = timeout_response(&response, limit);
                return Poll::Ready(Ok(finish(response, this.in_progress, *this.head)));
            }
            if !*this.http1 || shared.finished.load(Ordering::Relaxed) {
                return Poll::Ready(Ok(finish(response, this.in_progress, *this.head)));
            }
            let Some(left) = shared.take_left() else {
                // Neither read nor handed back (`Expect`, or a reader
                // still holds it): the connection cannot serve another
                // request after this one.
                return Poll::Ready(Ok(finish(closing(response), this.in_progress, *this.head)));
            };
            *this.state = State::Draining {
                answer: response,
                left,
                read: 0,
                grace: None,
            };
        }
        // `Done`: polled again after its answer (a caller's bug); nothing
        // to give, and never a panic.
        let State::Draining {
            answer,
            left,
            read,
            grace,
        } = this.state
        else {
            return Poll::Pending;
        };
        let drained = ready!(poll_drain(left, read, grace, cx));
        let mut response = std::mem::take(answer);
        *this.state = State::Done;
        if !drained {
            tracing::trace!(
                "the rest of an unread request body did not come in time: closing the connection after the answer"
            );
            response = closing(response);
        }
        Poll::Ready(Ok(finish(response, this.in_progress, *this.head)))
    }
}

/// `response`, with the request's HTTP/2 guard (if any) held by its body;
/// without its body when `head` (an HTTP/2 HEAD).
fn finish(response: Response, in_progress: &mut Option<InProgress>, head: bool) -> Response {
    let response = if head {
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Response::from_parts(parts, Body::empty())
    } else {
        response
    };
    match in_progress.take() {
        Some(in_progress) => in_progress.hold(response),
        None => response,
    }
}

/// `response` saying the connection closes after it.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// HTTP 408 with `Connection: close` (the rest of the body cannot be
/// skipped on an HTTP/1 connection) and the JSON error body of the crate's
/// other refusals; `X-Request-Id` kept from the answer it replaces.
fn timeout_response(replaced: &Response, limit: Duration) -> Response {
    crate::layer::body_timeout_response(
        replaced
            .headers()
            .get(crate::correlation::REQUEST_ID_HEADER)
            .cloned(),
        limit,
    )
}

/// The request-body guards of [`McpServer::serve`](crate::McpServer::serve)
/// as a tower layer, for an app served by something else (`axum::serve`,
/// a router taken with [`McpServer::into_router`](crate::McpServer::into_router),
/// [`AuthLayer`](crate::AuthLayer) in an app of your own). Put it
/// outermost, so that it sees every request the app answers:
///
/// - **A body read timeout** (default 30 s, as
///   [`McpServerBuilder::body_read_timeout`](crate::McpServerBuilder::body_read_timeout)):
///   a request's whole body must arrive within the limit of the first
///   moment its reader has to wait for its bytes, or reading it fails and
///   the request is answered HTTP 408 (`request_timeout`, reason
///   `body_read_timeout`, `Connection: close`). A body that came with its
///   head (most MCP requests) never arms the timer.
/// - **Keep-alive after early answers.** An answer given before the
///   request's body was read (a refusal: no token, a bad one, an unknown
///   path, a method not allowed) leaves the body's bytes on an HTTP/1
///   connection. hyper then reads what has already arrived and, if that is
///   not all, closes the connection after the answer without saying so; a
///   client that wrote the head and the body apart (the Python SDK does,
///   under load) and sends its next request on that connection gets no
///   answer. With this layer the answer first reads the rest of the body
///   (at most 64 KiB, waiting at most 1 s), so the connection serves the
///   next request; when the rest does not come in time or is larger, the
///   answer says `Connection: close`. A request with
///   `Expect: 100-continue` is answered at once, with `Connection: close`.
///
/// What needs the server's own accept loop is not here: the header read
/// timeout, the response write timeout and the HTTP/2 idle limit belong to
/// `McpServer::serve` (see its documentation); an app served with
/// `axum::serve` sets such limits in front of it (a reverse proxy).
///
/// ```
/// use std::time::Duration;
/// use mcp_oauth2::BodyGuardLayer;
///
/// let app: axum::Router = axum::Router::new()
///     .route("/health", axum::routing::get(|| async { "ok" }))
///     .layer(BodyGuardLayer::new().read_timeout(Some(Duration::from_secs(10))));
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct BodyGuardLayer {
    limit: Option<Duration>,
}

impl Default for BodyGuardLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl BodyGuardLayer {
    /// The guards with a body read timeout of 30 s.
    pub fn new() -> Self {
        Self {
            limit: Some(super::BODY_READ_TIMEOUT),
        }
    }

    /// How long a request's body may take to arrive (`None`: no limit; the
    /// keep-alive handling stays). Zero fails every body that did not
    /// arrive with its head.
    pub fn read_timeout(mut self, limit: Option<Duration>) -> Self {
        self.limit = limit;
        self
    }
}

impl<S> tower_layer::Layer<S> for BodyGuardLayer {
    type Service = BodyGuard<S>;
    fn layer(&self, inner: S) -> BodyGuard<S> {
        BodyGuard(TimedBodies {
            inner,
            limit: self.limit,
            activity: None,
        })
    }
}

/// The service of [`BodyGuardLayer`].
#[derive(Clone)]
pub struct BodyGuard<S>(TimedBodies<S>);

impl<S> std::fmt::Debug for BodyGuard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyGuard")
            .field("read_timeout", &self.0.limit)
            .finish_non_exhaustive()
    }
}

impl<S> tower_service::Service<http::Request<Body>> for BodyGuard<S>
where
    S: tower_service::Service<http::Request<Body>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BodyGuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        BodyGuardFuture {
            inner: self.0.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`BodyGuard`].
    pub struct BodyGuardFuture<F> {
        #[pin]
        inner: TimedResponse<F>,
    }
}

impl<F> std::fmt::Debug for BodyGuardFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyGuardFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for BodyGuardFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

/// A body whose bytes never come (a stalled upload; a quiet event stream
/// as a response), for the tests of this module and of `idle`.
#[cfg(test)]
pub(super) struct Stalled;

#[cfg(test)]
impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    async fn next<B: http_body::Body + Unpin>(
        body: &mut B,
    ) -> Option<Result<Frame<B::Data>, B::Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn a_stalled_body_fails_at_the_limit_and_then_ends() {
        let limit = Duration::from_millis(200);
        let shared = Arc::new(Shared::default());
        let mut body = Box::pin(TimedBody::new(
            Stalled,
            Some(limit),
            true,
            Arc::clone(&shared),
        ));
        let started = tokio::time::Instant::now();
        let err = next(&mut body).await.unwrap().unwrap_err();
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
        assert!(err.downcast_ref::<BodyTimedOut>().is_some(), "{err}");
        assert!(err.to_string().contains("0.2 s"), "{err}");
        assert!(shared.timed_out.load(Ordering::Relaxed));
        assert!(body.is_end_stream());
        assert!(next(&mut body).await.is_none());
        // A timed-out body is not handed back: the answer is the 408.
        drop(body);
        assert!(shared.take_left().is_none());
    }

    #[tokio::test]
    async fn a_body_that_is_there_is_read_whole() {
        let shared = Arc::new(Shared::default());
        let body = TimedBody::new(
            Body::from("{\"jsonrpc\":\"2.0\"}"),
            Some(Duration::from_secs(1)),
            true,
            Arc::clone(&shared),
        );
        let bytes = axum::body::to_bytes(Body::new(body), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"{\"jsonrpc\":\"2.0\"}");
        assert!(!shared.timed_out.load(Ordering::Relaxed));
        assert!(shared.finished.load(Ordering::Relaxed));
        assert!(shared.take_left().is_none());
    }

    #[tokio::test]
    async fn a_body_dropped_unread_is_handed_back_on_http1_only() {
        for give_back in [true, false] {
            let shared = Arc::new(Shared::default());
            let body = TimedBody::new(Stalled, None, give_back, Arc::clone(&shared));
            drop(body);
            assert!(!shared.finished.load(Ordering::Relaxed));
            assert_eq!(shared.take_left().is_some(), give_back);
        }
    }

    #[tokio::test]
    async fn without_a_limit_a_stalled_body_waits() {
        let shared = Arc::new(Shared::default());
        let mut body = Box::pin(TimedBody::new(Stalled, None, true, shared));
        let waited = tokio::time::timeout(Duration::from_millis(300), next(&mut body)).await;
        assert!(waited.is_err());
    }

    /// A body of `len` bytes, in one frame.
    fn sized(len: usize) -> Body {
        Body::from(vec![b'x'; len])
    }

    async fn drain(mut left: Body) -> bool {
        let mut read = 0;
        let mut grace = None;
        std::future::poll_fn(|cx| poll_drain(&mut left, &mut read, &mut grace, cx)).await
    }

    #[tokio::test]
    async fn what_is_left_is_drained_up_to_the_cap_and_the_grace() {
        assert!(drain(sized(10)).await);
        assert!(drain(sized(DRAIN_MAX)).await);
        // Known too large: refused without reading.
        assert!(!drain(sized(DRAIN_MAX + 1)).await);
        // Of unknown length and too large: refused once past the cap.
        let chunks = unsized_chunks(DRAIN_MAX / 1000 + 2, 1000);
        assert!(!drain(chunks).await);
        // Stalled: refused after the grace, not before.
        let started = tokio::time::Instant::now();
        assert!(!drain(Body::new(Stalled)).await);
        assert!(started.elapsed() >= DRAIN_GRACE);
    }

    /// A body of `count` frames of `len` bytes with no size hint.
    fn unsized_chunks(count: usize, len: usize) -> Body {
        struct Chunks(usize, usize);
        impl http_body::Body for Chunks {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                if self.0 == 0 {
                    return Poll::Ready(None);
                }
                self.0 -= 1;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; self.1])))))
            }
        }
        Body::new(Chunks(count, len))
    }
}
