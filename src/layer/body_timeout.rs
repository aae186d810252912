//! The body read timeout's error and answer, shared by the layer (which
//! reads a request's body to judge it) and `McpServer`'s body guard (which
//! times it): one 408 whichever of them sees the limit pass.

use std::time::Duration;

use axum::response::Response;

/// The error a body read by the server's guard ends with when its limit
/// passes first (`McpServer::body_read_timeout`, `BodyGuardLayer`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimedOut(pub(crate) Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within the body read timeout ({} s)",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

/// HTTP 408 with `Connection: close` (the rest of the body cannot be
/// skipped on an HTTP/1 connection) and the JSON error body of the crate's
/// other refusals, for the request `request_id`: the guard's answer to a
/// body that did not come in time, and the layer's when it was the one
/// reading it.
pub(crate) fn body_timeout_response(
    request_id: Option<http::HeaderValue>,
    limit: Duration,
) -> Response {
    use axum::response::IntoResponse as _;
    use http::header::{CONNECTION, CONTENT_TYPE};
    // Fixed ASCII, and the request id is `[A-Za-z0-9._:-]`: no escaping.
    let id_member =
        crate::layer::request_id_member(request_id.as_ref().and_then(|v| v.to_str().ok()));
    let body = format!(
        "{{\"error\":\"request_timeout\",\"error_description\":\"The request body did not arrive within {} s\",\"reason\":\"body_read_timeout\"{id_member}}}",
        limit.as_secs_f64()
    );
    let mut response = (
        http::StatusCode::REQUEST_TIMEOUT,
        [
            (
                CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            ),
            (CONNECTION, http::HeaderValue::from_static("close")),
        ],
        body,
    )
        .into_response();
    crate::challenge::error_headers(response.headers_mut());
    if let Some(id) = request_id {
        response
            .headers_mut()
            .insert(crate::correlation::REQUEST_ID_HEADER, id);
    }
    response
}
