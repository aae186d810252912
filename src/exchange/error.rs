//! [`ExchangeError`]: why a token exchange (or the downstream call) failed,
//! typed, cheap to clone (shared by every call that waited for the same
//! exchange), never holding token material.

use std::fmt;
use std::sync::Arc;

use crate::context::{AuthContext, StepUp, ask_in};

/// The most bytes of a caller's granted scopes a token exchange's step-up
/// challenge repeats (2 KiB, space-separated): past it the challenge names
/// the step-up scopes alone.
pub(crate) const MAX_CARRIED_SCOPE_BYTES: usize = 2048;

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
    /// The user must come back through the authorization server
    /// (`interaction_required`, `consent_required`, `login_required`,
    /// `insufficient_user_authentication`, or `invalid_grant` with one of
    /// those as Entra ID's `suberror`): consent to the downstream API, sign
    /// in again, add a factor. Returned from a handler (`?`), it becomes the
    /// MCP step-up challenge (see [`ExchangeError`]).
    InteractionRequired,
    /// Another OAuth error code (see [`ExchangeError::code`]).
    Refused,
    /// The token endpoint (or its discovery document) could not be reached
    /// or did not answer: network, deadline, a 5xx or 429, an answer cut
    /// off while read; or it failed moments ago and is not asked again
    /// before its outage cooldown ends (see
    /// [`TokenExchanger`](crate::TokenExchanger), "Outages").
    Transport,
    /// The endpoint answered with something that is not a usable token
    /// response: no `access_token`, a `token_type` other than Bearer, a
    /// repeated member, the caller's own token handed back, another media
    /// type than JSON, a body over the cap, a redirect, an error status
    /// without an OAuth error code, an `error` member (in a 200 answer too)
    /// that is no OAuth error code, ...
    MalformedResponse,
    /// The downstream call was refused before it was sent (a URL that is not
    /// `https://`) or failed (network, deadline).
    Downstream,
    /// The caller's issuer is not one this server's client is registered
    /// at ([`ExchangeSettings::issuer`](crate::ExchangeSettings::issuer)):
    /// nothing was sent, the client's credentials never go to another
    /// authorization server.
    IssuerNotAllowed,
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
    /// Entra ID's `suberror`, checked like `code`.
    suberror: Option<Box<str>>,
    detail: Box<str>,
    /// For [`ExchangeErrorKind::InteractionRequired`] met by one request:
    /// that request's step-up slot and the scopes to ask for, filled when
    /// the error becomes the handler's JSON-RPC error.
    step_up: Option<(Option<Arc<StepUp>>, Vec<String>)>,
}

/// The codes by which an authorization server says the user must interact
/// (OpenID Connect Core section 3.1.2.6; RFC 9470 section 3; Entra ID's
/// `suberror` values for the same).
fn needs_interaction(code: &str) -> bool {
    matches!(
        code,
        "interaction_required"
            | "consent_required"
            | "login_required"
            | "insufficient_user_authentication"
            | "basic_action"
            | "additional_action"
    )
}

impl ExchangeError {
    pub(crate) fn new(kind: ExchangeErrorKind, detail: impl Into<String>) -> Self {
        Self(Arc::new(Inner {
            kind,
            code: None,
            suberror: None,
            detail: detail.into().into_boxed_str(),
            step_up: None,
        }))
    }

    /// A refusal by the token endpoint with the OAuth error `code` and,
    /// from Entra ID, a `suberror` (both checked by the caller with
    /// [`is_error_code`]).
    pub(crate) fn refused(code: &str, suberror: Option<&str>) -> Self {
        let kind = match code {
            _ if needs_interaction(code) => ExchangeErrorKind::InteractionRequired,
            "invalid_grant" if suberror.is_some_and(needs_interaction) => {
                ExchangeErrorKind::InteractionRequired
            }
            "invalid_grant" => ExchangeErrorKind::InvalidGrant,
            "unauthorized_client" => ExchangeErrorKind::UnauthorizedClient,
            "invalid_client" => ExchangeErrorKind::InvalidClient,
            "invalid_target" => ExchangeErrorKind::InvalidTarget,
            "invalid_scope" => ExchangeErrorKind::InvalidScope,
            _ => ExchangeErrorKind::Refused,
        };
        let detail = if kind == ExchangeErrorKind::InteractionRequired {
            "the user must sign in or consent again before this server may act for them"
        } else {
            "the token endpoint refused the exchange"
        };
        Self(Arc::new(Inner {
            kind,
            code: Some(code.into()),
            suberror: suberror.map(Into::into),
            detail: detail.into(),
            step_up: None,
        }))
    }

    /// The same error, for one request: an
    /// [`InteractionRequired`](ExchangeErrorKind::InteractionRequired) one
    /// carries that request's step-up slot and the scopes to ask for (the
    /// request's own `step_up_scopes`, then the caller's granted scopes
    /// when they fit in [`MAX_CARRIED_SCOPE_BYTES`]). Other kinds are
    /// returned as they are.
    pub(crate) fn for_request(self, caller: &AuthContext, step_up_scopes: &[String]) -> Self {
        if self.0.kind != ExchangeErrorKind::InteractionRequired {
            return self;
        }
        let mut scopes: Vec<String> =
            Vec::with_capacity(step_up_scopes.len() + caller.scopes().len());
        // The caller's granted scopes are the authorization server's words:
        // `offline_access` (in the `scope` of any token whose client asked
        // for a refresh token) and texts that are no scope token are left
        // out, not copied into a challenge that would refuse them (found
        // from outside: the consent flow ended in a 500 for such callers).
        let granted = caller
            .scopes()
            .iter()
            .map(|s| &**s)
            .filter(|s| crate::requirement::is_scope_token(s));
        // A caller holding many scopes (an introspected token may hold
        // hundreds) would get a challenge of that size, twice with DPoP:
        // past 16 KiB of head clients drop the answer (found from outside:
        // Node's fetch failed on 400 scopes, 17 KB). Past the budget the
        // challenge names the step-up scopes alone; the client keeps the
        // scopes it has by asking for them too, as MCP's scope selection
        // lets it.
        let granted_bytes: usize = granted.clone().map(|s| s.len() + 1).sum();
        if granted_bytes <= MAX_CARRIED_SCOPE_BYTES {
            crate::scope::extend_unique(
                &mut scopes,
                step_up_scopes.iter().map(String::as_str).chain(granted),
            );
        } else {
            crate::scope::extend_unique(&mut scopes, step_up_scopes.iter().map(String::as_str));
        }
        let inner = &self.0;
        Self(Arc::new(Inner {
            kind: inner.kind,
            code: inner.code.clone(),
            suberror: inner.suberror.clone(),
            detail: inner.detail.clone(),
            step_up: Some((caller.step_up_slot().cloned(), scopes)),
        }))
    }

    /// The kind of failure.
    pub fn kind(&self) -> ExchangeErrorKind {
        self.0.kind
    }

    /// Entra ID's `suberror` of a refusal (`consent_required`, ...), when
    /// the endpoint sent one.
    pub fn suberror(&self) -> Option<&str> {
        self.0.suberror.as_deref()
    }

    /// Whether the user must come back through the authorization server
    /// ([`ExchangeErrorKind::InteractionRequired`]).
    pub fn needs_user_interaction(&self) -> bool {
        self.0.kind == ExchangeErrorKind::InteractionRequired
    }

    /// The token endpoint's OAuth error code for a refusal (`invalid_grant`,
    /// `invalid_target`, ...); otherwise a reason code of this crate:
    /// `no_subject_token`, `transport`, `malformed_response`, `downstream`,
    /// `issuer_not_allowed`.
    pub fn code(&self) -> &str {
        if let Some(code) = &self.0.code {
            return code;
        }
        match self.0.kind {
            ExchangeErrorKind::NoSubjectToken => "no_subject_token",
            ExchangeErrorKind::MalformedResponse => "malformed_response",
            ExchangeErrorKind::Downstream => "downstream",
            ExchangeErrorKind::IssuerNotAllowed => "issuer_not_allowed",
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
            .field("suberror", &self.0.suberror)
            .field("detail", &self.0.detail)
            .finish()
    }
}

impl std::error::Error for ExchangeError {}

/// A tool can return the error with `?`: JSON-RPC internal error whose
/// message names the error's code (`token exchange failed: <code>`, never
/// its detail, which the log holds) and whose data is `{"error": <code>}`.
///
/// **Step-up.** An [`InteractionRequired`](ExchangeErrorKind::InteractionRequired)
/// error from [`TokenExchanger::exchange_for`](crate::TokenExchanger::exchange_for)
/// marks its request for late step-up when it becomes the handler's error,
/// as [`AuthContext::require_scopes`] does: behind the layer, the response is
/// a real HTTP 403 `insufficient_scope` challenge naming what the operation
/// needs (what the layer required, the request's
/// [`step_up_scopes`](crate::ExchangeRequest::step_up_scopes), the caller's
/// granted scopes), so the client authorizes again and the user meets the
/// authorization server (consent, sign-in). Without the layer, or after a
/// notification was streamed, it is the JSON-RPC error `-32600` with the
/// data `{"error": <code>, "scope": <scopes>}`. A handler that catches the
/// error and answers something else triggers nothing.
impl From<ExchangeError> for rmcp::ErrorData {
    fn from(err: ExchangeError) -> Self {
        // The code only: the detail (the endpoint's URL, an HTTP client's
        // error chain) is the operator's, written in the log when the
        // exchange failed, not the caller's (found from outside: the
        // internal token endpoint's URL reached any caller).
        if let Some((slot, scopes)) = &err.0.step_up {
            let needed = ask_in(slot.as_deref(), scopes).join(" ");
            return rmcp::ErrorData::invalid_request(
                format!(
                    "token exchange failed: {}; authorize again with the scope(s) {needed}",
                    err.code()
                ),
                Some(serde_json::json!({ "error": err.code(), "scope": needed })),
            );
        }
        rmcp::ErrorData::internal_error(
            format!("token exchange failed: {}", err.code()),
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
