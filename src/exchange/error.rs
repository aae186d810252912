//! [`ExchangeError`]: why a token exchange (or the downstream call) failed,
//! typed, cheap to clone (shared by every call that waited for the same
//! exchange), never holding token material.

use std::fmt;
use std::sync::Arc;

/// The kind of an [`ExchangeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeErrorKind {
    /// The [`AuthContext`](crate::AuthContext) holds no caller token: it was
    /// not made by the layer for this request (a context built by hand, or
    /// kept from another request).
    NoSubjectToken,
    /// The endpoint answered `invalid_grant`: the caller's token is not
    /// acceptable for the exchange (expired, revoked, not delegable).
    InvalidGrant,
    /// `unauthorized_client`: this server may not use the grant.
    UnauthorizedClient,
    /// `invalid_client`: this server's client authentication failed.
    InvalidClient,
    /// `invalid_target` (RFC 8693 section 2.2.2): the downstream audience or
    /// resource is refused.
    InvalidTarget,
    /// `invalid_scope`: the requested scopes are refused.
    InvalidScope,
    /// Another OAuth error code (see [`ExchangeError::code`]).
    Refused,
    /// The token endpoint (or its discovery document) could not be reached
    /// or did not answer with a usable document: network, deadline, status,
    /// size, media type.
    Transport,
    /// The endpoint answered 200 with something that is not a usable token
    /// response (no `access_token`, a `token_type` other than Bearer, a
    /// repeated member, the caller's own token handed back, ...).
    MalformedResponse,
    /// The downstream call was refused before it was sent (a URL that is not
    /// `https://`) or failed (network, deadline).
    Downstream,
}

/// Why a token exchange or a downstream call failed. Its text names the
/// kind and the endpoint's error code, never a token.
#[derive(Clone)]
pub struct ExchangeError(Arc<Inner>);

struct Inner {
    kind: ExchangeErrorKind,
    /// The OAuth `error` code of a refusal (RFC 6749 section 5.2), checked
    /// to contain only the characters allowed there.
    code: Option<Box<str>>,
    detail: Box<str>,
}

impl ExchangeError {
    pub(crate) fn new(kind: ExchangeErrorKind, detail: impl Into<String>) -> Self {
        Self(Arc::new(Inner {
            kind,
            code: None,
            detail: detail.into().into_boxed_str(),
        }))
    }

    /// A refusal by the token endpoint with the OAuth error `code`.
    pub(crate) fn refused(code: &str) -> Self {
        let kind = match code {
            "invalid_grant" => ExchangeErrorKind::InvalidGrant,
            "unauthorized_client" => ExchangeErrorKind::UnauthorizedClient,
            "invalid_client" => ExchangeErrorKind::InvalidClient,
            "invalid_target" => ExchangeErrorKind::InvalidTarget,
            "invalid_scope" => ExchangeErrorKind::InvalidScope,
            _ => ExchangeErrorKind::Refused,
        };
        Self(Arc::new(Inner {
            kind,
            code: Some(code.into()),
            detail: "the token endpoint refused the exchange".into(),
        }))
    }

    /// The kind of failure.
    pub fn kind(&self) -> ExchangeErrorKind {
        self.0.kind
    }

    /// The token endpoint's OAuth error code for a refusal (`invalid_grant`,
    /// `invalid_target`, ...); otherwise a reason code of this crate:
    /// `no_subject_token`, `transport`, `malformed_response`, `downstream`.
    pub fn code(&self) -> &str {
        if let Some(code) = &self.0.code {
            return code;
        }
        match self.0.kind {
            ExchangeErrorKind::NoSubjectToken => "no_subject_token",
            ExchangeErrorKind::MalformedResponse => "malformed_response",
            ExchangeErrorKind::Downstream => "downstream",
            _ => "transport",
        }
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "token exchange failed: {}: {}",
            self.code(),
            self.0.detail
        )
    }
}

impl fmt::Debug for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeError")
            .field("kind", &self.0.kind)
            .field("code", &self.code())
            .field("detail", &self.0.detail)
            .finish()
    }
}

impl std::error::Error for ExchangeError {}

/// A tool can return the error with `?`: JSON-RPC internal error whose
/// message is the error's text and whose data is `{"error": <code>}`.
impl From<ExchangeError> for rmcp::ErrorData {
    fn from(err: ExchangeError) -> Self {
        rmcp::ErrorData::internal_error(
            err.to_string(),
            Some(serde_json::json!({ "error": err.code() })),
        )
    }
}

/// Whether `code` is a valid OAuth error code (RFC 6749 section 5.2:
/// `%x20-21 / %x23-5B / %x5D-7E`), at most 64 bytes and not empty.
pub(crate) fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}
