//! The [`TokenVerifier`] trait (exported at the crate root).

use std::future::Future;
use std::pin::Pin;

use crate::bearer::BearerToken;
use crate::context::AuthContext;
use crate::error::AuthError;

/// The future returned by [`TokenVerifier::verify`].
pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AuthContext, AuthError>> + Send + 'a>>;

/// Turns a bearer token into an [`AuthContext`], or refuses it.
///
/// Implementations must fail closed: any doubt is an error. The error's
/// [`kind`](AuthError::kind) decides the response (401 `invalid_token`, 503,
/// ...). Implementations must check that the token was issued for this
/// resource (audience), by a trusted issuer, and is not expired.
///
/// A DPoP-bound token (RFC 9449, `cnf.jkt`) verifies: its context says so
/// ([`AuthContext::is_dpop_bound`]) and the layer then accepts it only with
/// a proof of that key, never as Bearer. Code that calls a verifier
/// directly must do the same: refuse a bound context unless it checked a
/// proof (or use [`AuthLayer::authenticate_request`](crate::AuthLayer::authenticate_request)).
///
/// ```
/// use mcp_oauth2::{AuthContext, AuthError, AuthErrorKind, BearerToken, TokenVerifier, VerifyFuture};
///
/// /// Accepts one static token (for illustration only).
/// struct StaticToken;
///
/// impl TokenVerifier for StaticToken {
///     fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
///         Box::pin(async move {
///             if token.as_str() == "let-me-in" {
///                 Ok(AuthContext::builder("https://issuer.example", "alice").build())
///             } else {
///                 Err(AuthError::new(AuthErrorKind::Rejected))
///             }
///         })
///     }
/// }
/// ```
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token`.
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a>;

    /// The context of `token` when it is known without waiting for
    /// anything: a token this verifier has already verified and still
    /// trusts (a cache hit). `None` means "call [`verify`](Self::verify)".
    ///
    /// The layer asks this first, on every request, and only builds and
    /// awaits a verification future when it answers `None`; a client that
    /// reuses its token (all of them) then costs no allocation for the
    /// verification. An implementation must never return a context that
    /// `verify` would refuse at this moment (expired, key withdrawn, ...).
    /// Default: `None`.
    fn verify_cached(&self, token: BearerToken<'_>) -> Option<AuthContext> {
        let _ = token;
        None
    }

    /// Adds this verifier's counters to `out` (default: nothing).
    fn add_metrics(&self, out: &mut crate::MetricsSnapshot) {
        let _ = out;
    }
}

impl<T: TokenVerifier + ?Sized> TokenVerifier for std::sync::Arc<T> {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        (**self).verify(token)
    }

    fn verify_cached(&self, token: BearerToken<'_>) -> Option<AuthContext> {
        (**self).verify_cached(token)
    }

    fn add_metrics(&self, out: &mut crate::MetricsSnapshot) {
        (**self).add_metrics(out);
    }
}
