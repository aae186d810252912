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
                self.pass_on_unknown_issuer || !jose_shaped(token.as_str())
            }
            AuthErrorKind::InvalidIssuer => self.pass_on_unknown_issuer,
            _ => false,
        }
    }
}

/// Whether `token` is shaped as a JWT, however damaged: its first part
/// (the whole token, without a dot) decodes to a JSON object with an `alg`
/// member, a JOSE header (RFC 7515 section 4.1.1), or its second part to
/// a JSON object with a registered claim (RFC 7519 section 4.1) or
/// `client_id`/`scope`, a claims set behind a damaged header. Parts are
/// decoded as base64url or base64, padded or not, loose trailing bits
/// allowed. Judged on what the parts hold, not on their spelling: a
/// header of `{ "alg"` is `eyAi...`, not `eyJ` (found from outside, both
/// ways: such damaged JWTs still reached the introspection endpoint, and
/// Ory Hydra's opaque tokens, two random base64url parts, were refused
/// when `eyJ` happened to be in them, about one in 3,000; then, in a
/// second round, a header damaged in transit, its claims intact, was
/// introspected). Random parts never decode to such objects. Only on a
/// refusal's path.
fn jose_shaped(token: &str) -> bool {
    const CLAIMS: [&str; 9] = [
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "scope",
    ];
    let mut parts = token.split('.');
    let header = parts.next().and_then(json_object);
    if header.is_some_and(|h| h.contains_key("alg")) {
        return true;
    }
    parts
        .next()
        .and_then(json_object)
        .is_some_and(|claims| CLAIMS.iter().any(|c| claims.contains_key(*c)))
}

/// `part` decoded (base64url or base64, padded or not) and read as a JSON
/// object, if it is one.
fn json_object(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    const LOOSE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let part: String = part
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    if part.is_empty() {
        return None;
    }
    let bytes = LOOSE.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
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
                            && jose_shaped(token.as_str()) =>
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

#[cfg(test)]
#[allow(clippy::string_slice, clippy::indexing_slicing)]
mod tests {
    use super::jose_shaped;
    use base64::Engine as _;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    // JOSE headers, however spelled, and damaged however the rest is;
    // opaque tokens, however they happen to read.
    #[test]
    fn a_jose_header_is_read_not_spelled() {
        let claims = b64(r#"{"sub":"a"}"#);
        for header in [
            r#"{"alg":"RS256"}"#,
            r#"{ "alg": "RS256" }"#,
            "{\n\"alg\":\"ES256\"}",
            r#" {"alg":"none","typ":"JWT"}"#,
        ] {
            let h = b64(header);
            for token in [
                format!("{h}.{claims}.sig"),
                format!("{h}.{claims}.sig="),
                format!("{h}.{claims}"),
                format!("{h}.{claims}.sig.x"),
                format!("{h}=.{claims}.sig"),
                format!("{h}.{claims}.a+b/c"),
            ] {
                assert!(jose_shaped(&token), "{header}: {token}");
            }
        }
        // A header damaged (one character changed, cut, not JSON) before
        // intact claims; the header alone, without a dot.
        let good = b64(r#"{"alg":"RS256","kid":"k"}"#);
        let mut changed = good.clone();
        changed.replace_range(3..4, "Q");
        for token in [
            format!("{changed}.{claims}.sig"),
            format!("{}.{claims}.sig", &good[..good.len() - 1]),
            format!("{}.{claims}.sig", b64("not json")),
            format!(".{claims}.sig"),
            good.clone(),
        ] {
            assert!(jose_shaped(&token), "{token}");
        }
        // The standard alphabet in the header itself.
        let std =
            base64::engine::general_purpose::STANDARD.encode(r#"{"alg":"RS256","kid":"??>>"}"#);
        assert!(jose_shaped(&format!("{std}.x.y")), "{std}");
        for opaque in [
            "ory_at_eyJhbGciOiJSUzI1NiJ9abc.eyJzdWIiOiJhIn0xyz",
            "ory_at_ZXlKaGJH.eyJhbGciOiJSUzI1NiJ9",
            "opaque-token-123",
            "abc.def",
            &format!("{}.sig", b64(r#"{"sub":"a","exp":1}"#)),
            &format!("{}.sig", b64("not json")),
            ".",
            "",
        ] {
            assert!(!jose_shaped(opaque), "{opaque}");
        }
    }
}
