//! OAuth error responses of the test issuer: JSON bodies per RFC 6749
//! section 5.2 (token endpoint, and authorization requests that must not be
//! redirected, section 4.1.2.1) and RFC 7591 section 3.2.2 (registration).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `Cache-Control` of every token, registration and error response
/// (RFC 6749 section 5.1).
pub(super) fn no_store() -> HeaderValue {
    HeaderValue::from_static("no-store")
}

/// One OAuth error. The description is always a fixed text: request input is
/// never echoed (RFC 6749 section 5.2 restricts its characters anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OAuthError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) description: &'static str,
    /// Entra ID's `suberror` member, when set.
    pub(super) suberror: Option<&'static str>,
}

impl OAuthError {
    /// `400 invalid_request`.
    pub(super) const fn invalid_request(description: &'static str) -> Self {
        Self::bad_request("invalid_request", description)
    }

    /// `400 invalid_grant`.
    pub(super) const fn invalid_grant(description: &'static str) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    /// `400 invalid_target` (RFC 8707 section 2).
    pub(super) const fn invalid_target(description: &'static str) -> Self {
        Self::bad_request("invalid_target", description)
    }

    /// `401 invalid_client`, with a `Basic` challenge.
    pub(super) const fn invalid_client(description: &'static str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_client",
            description,
            suberror: None,
        }
    }

    /// `500 server_error`.
    pub(super) const fn server_error(description: &'static str) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "server_error",
            description,
            suberror: None,
        }
    }

    /// `400` with any error code.
    pub(super) const fn bad_request(code: &'static str, description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            description,
            suberror: None,
        }
    }

    /// The same error with Entra ID's `suberror`.
    pub(super) const fn with_suberror(mut self, suberror: &'static str) -> Self {
        self.suberror = Some(suberror);
        self
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "error_description": self.description });
        if let (Some(suberror), Some(members)) = (self.suberror, body.as_object_mut()) {
            members.insert("suberror".to_owned(), suberror.into());
        }
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, no_store());
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 section 5.2: a 401 names the supported scheme.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mcp-oauth2 test issuer\""),
            );
        }
        response
    }
}

/// `405 Method Not Allowed` with an `Allow` header.
pub(super) fn method_not_allowed(allow: &'static str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, HeaderValue::from_static(allow))],
    )
        .into_response()
}
