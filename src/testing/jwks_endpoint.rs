//! The key endpoint (`GET /jwks`) and the faults it can simulate.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::issuer::Shared;
use super::plumbing::lock;

/// How the key endpoint (`GET /jwks`) misbehaves; see
/// [`TestIssuer::set_jwks_fault`](super::TestIssuer::set_jwks_fault). Every request is counted in
/// [`TestIssuer::jwks_hits`](super::TestIssuer::jwks_hits) whatever the fault.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JwksFault {
    /// Serve the key set normally (the default).
    #[default]
    None,
    /// `503 Service Unavailable` with a JSON error body.
    Unavailable,
    /// Accept the request and do not answer until the fault is changed
    /// (then answer per the new fault) or the issuer stops.
    Hang,
    /// `200 application/json`: the real key set followed by whitespace, this
    /// many bytes in all, streamed in chunks. With `declare_length` the
    /// response has a `Content-Length`; without, it is chunked, so only a
    /// cap enforced while reading stops it.
    HugeBody {
        /// Total body size in bytes.
        bytes: usize,
        /// Whether to send `Content-Length`.
        declare_length: bool,
    },
    /// `200 application/json` with a truncated JSON document.
    Malformed,
    /// `200 text/html` with the real key set as the body.
    WrongContentType,
    /// `302 Found` to this URL.
    Redirect(String),
    /// `200 application/json` with `{"keys": []}`.
    EmptyKeySet,
}

/// `GET /jwks`, honouring the configured fault.
pub(super) async fn serve_jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mut faults = shared.fault.subscribe();
    let mut stopped = shared.stopped.clone();
    let fault = loop {
        let fault = faults.borrow_and_update().clone();
        if fault != JwksFault::Hang {
            break fault;
        }
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            }
            _ = stopped.wait_for(|stop| *stop) => {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    };
    let mut response = match fault {
        JwksFault::None => Json(shared.jwks_document()).into_response(),
        JwksFault::Unavailable => {
            let body = json!({
                "error": "temporarily_unavailable",
                "error_description": "simulated JWKS outage",
            });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
        // Unreachable: the loop above only ends on another fault.
        JwksFault::Hang => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        JwksFault::HugeBody {
            bytes,
            declare_length,
        } => huge_body(&shared.jwks_document(), bytes, declare_length),
        JwksFault::Malformed => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"keys": [{"kty": "RSA", "n": "#,
        )
            .into_response(),
        JwksFault::WrongContentType => (
            [(header::CONTENT_TYPE, "text/html")],
            shared.jwks_document().to_string(),
        )
            .into_response(),
        JwksFault::Redirect(location) => {
            return (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
        }
        JwksFault::EmptyKeySet => Json(json!({ "keys": [] })).into_response(),
    };
    if let Some(value) = lock(&shared.cache_control).clone()
        && let Ok(value) = header::HeaderValue::from_str(&value)
    {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    if let Some(age) = *lock(&shared.age) {
        response.headers_mut().insert(header::AGE, age.into());
    }
    response
}

/// The key set padded with whitespace to `bytes`, in 16 KiB chunks.
fn huge_body(document: &Value, bytes: usize, declare_length: bool) -> Response {
    const CHUNK: usize = 16 * 1024;
    let head = document.to_string().into_bytes();
    let mut remaining = bytes.saturating_sub(head.len());
    let mut chunks = vec![Ok::<Bytes, io::Error>(Bytes::from(head))];
    while remaining > 0 {
        let n = remaining.min(CHUNK);
        chunks.push(Ok(Bytes::from(vec![b' '; n])));
        remaining -= n;
    }
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if declare_length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(bytes));
    }
    response
}
