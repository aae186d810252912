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

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;

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
}

impl Activity {
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
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        Some(InProgress(Arc::clone(self)))
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
}

/// One HTTP/2 request in progress; dropped when it is over.
pub(crate) struct InProgress(Arc<Activity>);

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
            Body::new(Held {
                body,
                _in_progress: self,
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted until it is dropped.
    struct Held {
        #[pin]
        body: Body,
        _in_progress: InProgress,
    }
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
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
}
