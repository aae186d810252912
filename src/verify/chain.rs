//! Composing verifiers: an ordered chain, and any async closure as a verifier.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::{TokenVerifier, VerifyFuture};
use crate::bearer::BearerToken;
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind};

/// Tries verifiers in order. A verifier that answers "not mine" (the token is
/// not in its format, or names an issuer it does not know) passes the token
/// on; any other answer, success or failure, is final. So a chain of a
/// [`JwtVerifier`](super::JwtVerifier) and an
/// [`IntrospectionVerifier`](super::IntrospectionVerifier) verifies JWTs
/// locally and sends only opaque tokens to introspection, and a forged JWT
/// never costs an introspection call. When a later verifier has nothing to
/// ask (`introspection_not_offered`) about a token shaped as a JWT that an
/// earlier one found malformed, the answer is `malformed_token`.
#[derive(Clone)]
pub struct ChainVerifier {
    links: Vec<Arc<dyn TokenVerifier>>,
    pass_on_unknown_issuer: bool,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            links: Vec::new(),
            pass_on_unknown_issuer: true,
        }
    }
}

impl fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("links", &self.links.len())
            .finish()
    }
}

impl ChainVerifier {
    /// An empty chain (it refuses everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a verifier.
    #[must_use]
    pub fn then(mut self, verifier: impl TokenVerifier) -> Self {
        self.links.push(Arc::new(verifier));
        self
    }

    /// Whether a JWT goes on to the next verifier when one refuses it for
    /// its issuer or its shape (default `true`, for chains of verifiers
    /// with different issuers or formats). Set `false` when the next
    /// verifier calls the network (an introspection endpoint), so that a
    /// JWT never causes a request there: one with a made-up issuer keeps
    /// `invalid_issuer`, and a token shaped as a JWT that a verifier found
    /// malformed (a part cut, padded, in another alphabet, one part more)
    /// keeps `malformed_token`, rather than being sent whole to the
    /// endpoint and judged by its answer (found from outside: a damaged
    /// JWT of another issuer, with another audience, reached the
    /// introspection endpoint). Tokens that are not shaped as JWTs go on.
    #[must_use]
    pub fn pass_on_unknown_issuer(mut self, on: bool) -> Self {
        self.pass_on_unknown_issuer = on;
        self
    }

    fn passes_on(&self, kind: AuthErrorKind, token: &BearerToken<'_>) -> bool {
        match kind {
            AuthErrorKind::MalformedToken => {
                self.pass_on_unknown_issuer
                    || !crate::error::looks_like_a_jwt(token.as_str().as_bytes())
            }
            AuthErrorKind::InvalidIssuer => self.pass_on_unknown_issuer,
            _ => false,
        }
    }
}

impl TokenVerifier for ChainVerifier {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        Box::pin(async move {
            let mut last = AuthError::new(AuthErrorKind::Rejected);
            for link in &self.links {
                match link.verify(token).await {
                    Ok(ctx) => return Ok(ctx),
                    Err(e) if self.passes_on(e.kind(), &token) => last = e,
                    // A link with nothing to ask (no introspection endpoint)
                    // says nothing about a JWT an earlier link found damaged:
                    // that finding is the answer (found from outside: a JWT
                    // with a broken part was told it is "not a JWT").
                    Err(e)
                        if e.kind() == AuthErrorKind::IntrospectionNotOffered
                            && last.kind() == AuthErrorKind::MalformedToken
                            && crate::error::looks_like_a_jwt(token.as_str().as_bytes()) =>
                    {
                        return Err(last);
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(last)
        })
    }

    /// The first link that knows the token. A link only holds a token it
    /// verified itself, which the links before it passed on then, and would
    /// again (their rules do not change).
    fn verify_cached(&self, token: BearerToken<'_>) -> Option<AuthContext> {
        self.links.iter().find_map(|link| link.verify_cached(token))
    }

    fn add_metrics(&self, out: &mut crate::MetricsSnapshot) {
        for link in &self.links {
            link.add_metrics(out);
        }
    }
}

/// A verifier from an async closure taking the token text.
pub struct FnVerifier<F>(F);

impl<F> fmt::Debug for FnVerifier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnVerifier")
    }
}

/// Makes any async closure a [`TokenVerifier`]:
///
/// ```
/// use mcp_oauth2::{AuthContext, AuthError, AuthErrorKind};
/// let verifier = mcp_oauth2::verify::from_fn(|token: String| async move {
///     if token == "let-me-in" {
///         Ok(AuthContext::builder("https://issuer.example", "alice").build())
///     } else {
///         Err(AuthError::new(AuthErrorKind::Rejected))
///     }
/// });
/// # let _ = verifier;
/// ```
pub fn from_fn<F, Fut>(f: F) -> FnVerifier<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AuthContext, AuthError>> + Send + 'static,
{
    FnVerifier(f)
}

impl<F, Fut> TokenVerifier for FnVerifier<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AuthContext, AuthError>> + Send + 'static,
{
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        Box::pin((self.0)(token.as_str().to_owned()))
    }
}
