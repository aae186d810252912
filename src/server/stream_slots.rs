//! The handler work of one HTTP/2 connection, bounded by its stream limit.
//!
//! hyper lets an HTTP/2 client have at most [`HTTP2_MAX_CONCURRENT_STREAMS`]
//! streams open at once, and drops a request's future when the client
//! resets its stream. rmcp runs each call's handler in a task of its own,
//! which the reset does not stop (a handler ends when it returns, whether or
//! not anyone waits for its answer). So a client that opens a stream, sends
//! a call and resets the stream at once, in a loop (the "rapid reset" of
//! CVE-2023-44487), started handlers far beyond the stream limit on one
//! connection: h2 ends such a connection (GOAWAY `too_many_resets`) only
//! once more than 20 streams, reset before hyper took them in, wait in its
//! accept queue at once. A server keeping up never gets there (about 1,800
//! calls got through in our runs), and a reconnect starts again (`tests/h2_surface.rs` measured 1,383
//! handlers of one connection running at once).
//!
//! [`StreamSlots`] gives each HTTP/2 request of a connection one of as many
//! slots as the connection has streams. A request whose stream is reset
//! before its answer is ready keeps its slot: its future (the auth layer's,
//! then rmcp's, which waits for the handler's answer) is not dropped but
//! run to its end in a task of its own, and the slot is freed then. A call
//! (a POST) keeps its slot until its answer's body ends, since an event
//! stream's head leaves before its handler is done (see
//! [`hold_until_the_end`]): reset once the head has arrived, its body is
//! read to its end in a task of its own. A
//! request that finds no slot free waits for one (cheaply: nothing has run
//! for it yet, and a reset drops the wait). An honest client, whose open
//! streams never exceed the limit, never waits.
//!
//! HTTP/1 requests need no slot (a connection carries one at a time), but
//! the same happens when a client closes its connection while its request
//! is in progress: hyper drops the request's future, and rmcp's handler
//! runs on. Closing the connection right after sending a slow call, on 400
//! connections one after the other, left 400 handlers running. So every
//! request, HTTP/1 or HTTP/2, whose future is dropped before its end is run
//! to its end in a task of its own holding its connection's slot of the
//! server's connection limit (see `connections`): the handlers a client
//! abandons count as open connections until they end, and a client cannot
//! have more of them running than the limit. The request that completes
//! (every honest one) pays a reference count.
//!
//! A handler that watches its `RequestContext` cancellation token is no
//! longer cancelled by a reset of its stream before its first message
//! (rmcp cancels it when the request's future is dropped): it answers into
//! the void, within the slot it holds. A notification cancels it as before
//! (`notifications/cancelled`, on the legacy protocol).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, PollSemaphore};

use super::connections::ConnectionSlot;

/// How many streams an HTTP/2 client may have open on one connection
/// (SETTINGS_MAX_CONCURRENT_STREAMS, hyper's default), and how many of its
/// requests may be in progress at once, reset ones included.
pub(crate) const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// The slots of one connection (see the module documentation).
pub(crate) fn slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(HTTP2_MAX_CONCURRENT_STREAMS as usize))
}

/// The per-connection service that hands out the slots.
#[derive(Clone)]
pub(crate) struct StreamSlots<S> {
    pub(crate) inner: S,
    pub(crate) slots: Arc<Semaphore>,
    /// The connection's slot of the server's connection limit, which a
    /// request dropped before its end keeps until it ends.
    pub(crate) connection: ConnectionSlot,
    /// Cancelled when the connection ends: answers read after a reset
    /// (see [`hold_until_the_end`]) are dropped then, so that nothing the
    /// client left (a `subscriptions/listen` stream, which ends only with
    /// its token) outlives the connection.
    pub(crate) closed: CancellationToken,
}

impl<S> tower_service::Service<http::Request<Body>> for StreamSlots<S>
where
    S: tower_service::Service<http::Request<Body>, Response = Response>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Finish<S::Future>, Held<S>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.version() != http::Version::HTTP_2 {
            return Either::Left(Finish {
                running: Some(self.inner.call(req)),
                connection: Some(Arc::clone(&self.connection)),
            });
        }
        let slots = PollSemaphore::new(Arc::clone(&self.slots));
        let call = req.method() == http::Method::POST;
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Either::Right(Held {
                slots,
                waiting: None,
                running: Some(Box::pin(self.inner.call(req))),
                permit: Some(permit),
                connection: Arc::clone(&self.connection),
                call,
                closed: self.closed.clone(),
            });
        }
        // Every slot is held: wait for one. `poll_ready` was called on
        // `self.inner`, not on this clone, which is made ready in turn.
        Either::Right(Held {
            slots,
            waiting: Some((self.inner.clone(), Some(req))),
            running: None,
            permit: None,
            connection: Arc::clone(&self.connection),
            call,
            closed: self.closed.clone(),
        })
    }
}

/// The response future of an HTTP/2 request under [`StreamSlots`].
pub(crate) struct Held<S>
where
    S: tower_service::Service<http::Request<Body>, Response = Response>,
    S::Future: Send + 'static,
{
    slots: PollSemaphore,
    /// The service and the request, until a slot is free.
    waiting: Option<(S, Option<http::Request<Body>>)>,
    /// The service's future, once the request holds a slot.
    running: Option<Pin<Box<S::Future>>>,
    /// The request's slot.
    permit: Option<OwnedSemaphorePermit>,
    /// The connection's slot of the connection limit.
    connection: ConnectionSlot,
    /// A POST (a call): its answer's body holds the slot until it ends.
    call: bool,
    /// The connection's end.
    closed: CancellationToken,
}

impl<S> Future for Held<S>
where
    S: tower_service::Service<http::Request<Body>, Response = Response> + Unpin,
    S::Future: Send + 'static,
{
    type Output = Result<Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.permit.is_none() {
            match this.slots.poll_acquire(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(permit)) => this.permit = Some(permit),
                // The semaphore is never closed; fail closed if it were.
                Poll::Ready(None) => {
                    this.waiting = None;
                    return Poll::Ready(Ok(http::StatusCode::SERVICE_UNAVAILABLE.into_response()));
                }
            }
        }
        if let Some((service, req)) = this.waiting.as_mut() {
            if let Err(e) = std::task::ready!(service.poll_ready(cx)) {
                this.waiting = None;
                this.permit = None;
                return Poll::Ready(Err(e));
            }
            if let Some(req) = req.take() {
                this.running = Some(Box::pin(service.call(req)));
            }
            this.waiting = None;
        }
        let Some(running) = this.running.as_mut() else {
            // Polled after its end.
            return Poll::Ready(Ok(http::StatusCode::SERVICE_UNAVAILABLE.into_response()));
        };
        let answer = std::task::ready!(running.as_mut().poll(cx));
        this.running = None;
        let permit = this.permit.take();
        Poll::Ready(answer.map(|response| match permit {
            Some(permit) if this.call => hold_until_the_end(response, permit, &this.closed),
            _ => response,
        }))
    }
}

impl<S> Drop for Held<S>
where
    S: tower_service::Service<http::Request<Body>, Response = Response>,
    S::Future: Send + 'static,
{
    fn drop(&mut self) {
        // The stream was reset (or the connection lost) while the request
        // was in progress: finish it, in its slot, rather than leave a
        // handler running outside the count.
        if let (Some(running), Some(permit)) = (self.running.take(), self.permit.take())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            drop(runtime.spawn(Orphan {
                running,
                permit: Some(permit),
                _connection: Arc::clone(&self.connection),
                call: self.call,
                closed: self.closed.clone(),
                drain: None,
            }));
        }
    }
}

/// A reset request's future, run to its end with its slots; a call's
/// answer is then read to its end too (and thrown away).
struct Orphan<F> {
    running: Pin<Box<F>>,
    /// The HTTP/2 stream slot (none for HTTP/1).
    permit: Option<OwnedSemaphorePermit>,
    /// The connection's slot of the connection limit, until the end.
    _connection: ConnectionSlot,
    call: bool,
    closed: CancellationToken,
    /// A call's answer, read to its end.
    drain: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<F, E> Future for Orphan<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(drain) = self.drain.as_mut() {
                return drain.as_mut().poll(cx);
            }
            let answer = std::task::ready!(self.running.as_mut().poll(cx));
            let permit = self.permit.take();
            match (answer, permit) {
                (Ok(response), Some(permit)) if self.call && drains(&response) => {
                    let closed = self.closed.clone();
                    self.drain = Some(Box::pin(drain(response.into_body(), permit, closed)));
                }
                _ => return Poll::Ready(()),
            }
        }
    }
}

/// Whether an answer its client left is read to its end (a call's: its
/// handler runs on, and stays counted) rather than dropped at once (a
/// listen's stream, marked [`ListenStream`](crate::layer::ListenStream),
/// which never ends and has nothing running for it).
fn drains(response: &Response) -> bool {
    response
        .extensions()
        .get::<crate::layer::ListenStream>()
        .is_none()
}

/// A call's answer whose body holds the request's slot until it ends.
///
/// The head of an answer leaves before its handler is done whenever the
/// answer is an event stream: with the handler's first message (a log
/// message, a progress notification), or at once (a legacy session's
/// request stream). A client that reset the stream once it had the head
/// would otherwise free the slot while the handler runs on (rmcp does
/// not stop it), and start handlers beyond the stream limit in a loop.
/// The slot is freed when the body ends (rmcp ends a call's stream once
/// its answer is sent); a body dropped before its end (the stream was
/// reset, the connection lost) is read to its end, in a task of its own
/// holding the slot, its bytes thrown away, until it ends or the
/// connection does.
fn hold_until_the_end(
    response: Response,
    permit: OwnedSemaphorePermit,
    closed: &CancellationToken,
) -> Response {
    let closed = closed.clone();
    let drains = drains(&response);
    response.map(|body| {
        Body::new(SlotBody {
            body: Some(body),
            permit: Some(permit),
            closed,
            drains,
        })
    })
}

/// Reads `body` to its end, holding `permit`, or until `closed`.
async fn drain(body: Body, permit: OwnedSemaphorePermit, closed: CancellationToken) {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let read = async { while let Some(Ok(_)) = body.frame().await {} };
    tokio::select! {
        () = read => {}
        () = closed.cancelled() => {}
    }
    drop(permit);
}

/// The body of [`hold_until_the_end`].
struct SlotBody {
    body: Option<Body>,
    /// Held until the body ends.
    permit: Option<OwnedSemaphorePermit>,
    /// The connection's end.
    closed: CancellationToken,
    /// Dropped before its end, the body is read to its end (a call whose
    /// handler may still run); `false` for a listen.
    drains: bool,
}

impl http_body::Body for SlotBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            // The end (or an error, which ends it): the slot is free.
            self.body = None;
            self.permit = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.as_ref().map_or_else(
            || http_body::SizeHint::with_exact(0),
            http_body::Body::size_hint,
        )
    }
}

impl Drop for SlotBody {
    fn drop(&mut self) {
        if let (Some(body), Some(permit)) = (self.body.take(), self.permit.take())
            && self.drains
            && !http_body::Body::is_end_stream(&body)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            drop(runtime.spawn(drain(body, permit, self.closed.clone())));
        }
    }
}

/// The response future of an HTTP/1 request: the service's own, which is
/// run to its end with the connection's slot if it is dropped before.
pub(crate) struct Finish<F: Future + Send + Unpin + 'static> {
    running: Option<F>,
    connection: Option<ConnectionSlot>,
}

impl<F: Future + Send + Unpin + 'static> Future for Finish<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let Some(running) = this.running.as_mut() else {
            // Polled after its end: hyper never does.
            return Poll::Pending;
        };
        let answer = std::task::ready!(Pin::new(running).poll(cx));
        this.running = None;
        this.connection = None;
        Poll::Ready(answer)
    }
}

impl<F: Future + Send + Unpin + 'static> Drop for Finish<F> {
    fn drop(&mut self) {
        // The connection was closed while the request was in progress:
        // finish it, holding the connection's slot, rather than leave its
        // handler running outside the count.
        if let (Some(running), Some(connection)) = (self.running.take(), self.connection.take())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            drop(runtime.spawn(async move {
                // The connection's slot, until the request's end.
                let _connection = connection;
                drop(running.await);
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::time::Duration;

    use futures_util::FutureExt as _;
    use http_body_util::BodyExt as _;
    use tokio::sync::{mpsc, oneshot};
    use tower_service::Service as _;

    use super::*;

    /// An HTTP/2 POST (a call).
    fn call() -> http::Request<Body> {
        http::Request::builder()
            .method(http::Method::POST)
            .version(http::Version::HTTP_2)
            .uri("/mcp")
            .body(Body::empty())
            .unwrap_or_default()
    }

    /// A body whose frames are sent through the returned sender; it ends
    /// when the sender is dropped.
    fn streamed() -> (mpsc::UnboundedSender<&'static str>, Body) {
        let (tx, rx) = mpsc::unbounded_channel::<&'static str>();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|text| (Ok::<_, Infallible>(axum::body::Bytes::from(text)), rx))
        });
        (tx, Body::from_stream(stream))
    }

    /// One stream slot, and the connection's slot.
    fn one_slot<S>(inner: S) -> StreamSlots<S> {
        let connection = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .map(Arc::new)
            .ok();
        StreamSlots {
            inner,
            slots: Arc::new(Semaphore::new(1)),
            connection: connection
                .unwrap_or_else(|| unreachable!("a fresh semaphore has a permit")),
            closed: CancellationToken::new(),
        }
    }

    /// Whether `future` is still pending after the others had time to run.
    async fn still_pending<F: Future + Unpin>(future: &mut F) -> bool {
        tokio::time::timeout(Duration::from_millis(50), future)
            .await
            .is_err()
    }

    // A call's answer holds its slot until its body ends: a second call
    // waits (the path a client past the stream limit takes), then runs.
    #[tokio::test]
    async fn a_call_past_the_limit_waits_until_an_answer_ends() {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let senders = Arc::clone(&bodies);
        let service = tower::service_fn(move |_req: http::Request<Body>| {
            let (tx, body) = streamed();
            if let Ok(mut held) = senders.lock() {
                held.push(tx);
            }
            futures_util::future::ready(Ok::<_, Infallible>(Response::new(body)))
        });
        let mut slots = one_slot(service);
        let first = slots.call(call()).await.ok();
        let first = first.unwrap_or_else(|| unreachable!("infallible"));
        assert!(!http_body::Body::is_end_stream(first.body()));
        let mut second = slots.call(call());
        assert!(still_pending(&mut second).await, "ran past the limit");
        // The first answer ends: its slot is free, and the second runs.
        let sender = bodies.lock().ok().and_then(|mut held| held.pop());
        if let Some(tx) = sender {
            assert!(tx.send("data: done\n\n").is_ok());
        }
        let collected = first.into_body().collect().await.ok();
        assert_eq!(
            collected.map(|c| c.to_bytes()),
            Some(axum::body::Bytes::from_static(b"data: done\n\n"))
        );
        let second = tokio::time::timeout(Duration::from_secs(5), second).await;
        assert!(matches!(second, Ok(Ok(_))), "the freed slot was not taken");
    }

    // A call dropped before its answer (a reset stream) is run to its end
    // in a task of its own, and its answer read to its end, holding the
    // slot all along; the slot is free only then.
    #[tokio::test]
    async fn a_reset_call_keeps_its_slot_until_its_answer_is_read() {
        let (answer_tx, answer_rx) = oneshot::channel::<Response>();
        let pending = Arc::new(Mutex::new(Some(answer_rx)));
        let service = tower::service_fn(move |_req: http::Request<Body>| {
            let rx = pending.lock().ok().and_then(|mut rx| rx.take());
            match rx {
                Some(rx) => rx
                    .map(|answer| Ok::<_, Infallible>(answer.unwrap_or_default()))
                    .left_future(),
                None => futures_util::future::ready(Ok(Response::default())).right_future(),
            }
        });
        let mut slots = one_slot(service);
        let mut first = slots.call(call());
        assert!(still_pending(&mut first).await);
        // The client resets the stream: the call goes on without it.
        drop(first);
        let mut second = slots.call(call());
        assert!(
            still_pending(&mut second).await,
            "a reset call freed its slot"
        );
        // Its answer comes, a stream still open: the slot stays taken.
        let (tx, body) = streamed();
        assert!(answer_tx.send(Response::new(body)).is_ok());
        assert!(
            still_pending(&mut second).await,
            "freed before the answer ended"
        );
        // The answer ends: the slot is free.
        drop(tx);
        let second = tokio::time::timeout(Duration::from_secs(5), second).await;
        assert!(matches!(second, Ok(Ok(_))), "the slot was never freed");
    }

    // The answer of a reset call is no longer read once its connection is
    // gone (a stream that would end only with its token).
    #[tokio::test]
    async fn a_dropped_answer_is_read_only_while_its_connection_lasts() {
        let service = tower::service_fn(|_req: http::Request<Body>| {
            let (tx, body) = streamed();
            // Never ends: the sender lives as long as the body.
            let body = Body::new(body.map_frame(move |frame| {
                let _keep = &tx;
                frame
            }));
            futures_util::future::ready(Ok::<_, Infallible>(Response::new(body)))
        });
        let mut slots = one_slot(service);
        let closed = slots.closed.clone();
        let first = slots.call(call()).await.ok();
        // Dropped before its end: drained in a task holding the slot.
        drop(first);
        let mut second = slots.call(call());
        assert!(still_pending(&mut second).await, "freed before the end");
        closed.cancel();
        let second = tokio::time::timeout(Duration::from_secs(5), second).await;
        assert!(
            matches!(second, Ok(Ok(_))),
            "held past the connection's end"
        );
    }
}
