//! The auto-approving authorization endpoint, `GET /authorize`: the
//! authorization code grant of OAuth 2.1 with PKCE S256 (RFC 7636), resource
//! indicators (RFC 8707) and the `iss` response parameter (RFC 9207). No
//! user is asked anything: a well-formed request is approved at once for the
//! configured subject.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

use super::clients::check_redirect_uri;
use super::issuer::Shared;
use super::oauth_error::{OAuthError, method_not_allowed, no_store};
use super::params::Params;
use super::plumbing::{b64, lock, random_b64};

/// An authorization code waiting to be exchanged.
#[derive(Debug)]
pub(super) struct PendingCode {
    pub(super) client_id: String,
    /// Exactly as sent to `/authorize`; the token request must repeat it.
    pub(super) redirect_uri: String,
    pub(super) code_challenge: String,
    pub(super) scopes: Vec<String>,
    pub(super) resources: Vec<String>,
    pub(super) subject: String,
    issued: Instant,
}

/// Why a code cannot be exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodeRejection {
    /// Never issued, or already exchanged.
    Unknown,
    /// Older than the code lifetime.
    Expired,
}

/// The codes issued and not yet exchanged.
#[derive(Debug, Default)]
pub(super) struct Codes {
    pending: HashMap<String, PendingCode>,
}

impl Codes {
    fn insert(&mut self, code: String, pending: PendingCode, lifetime: Duration) {
        self.pending
            .retain(|_, pending| pending.issued.elapsed() < lifetime);
        self.pending.insert(code, pending);
    }

    /// Removes `code`, so that it is used at most once (OAuth 2.1 section
    /// 4.1.3), and returns it if it has not expired.
    pub(super) fn take(
        &mut self,
        code: &str,
        lifetime: Duration,
    ) -> Result<PendingCode, CodeRejection> {
        let pending = self.pending.remove(code).ok_or(CodeRejection::Unknown)?;
        if pending.issued.elapsed() >= lifetime {
            return Err(CodeRejection::Expired);
        }
        Ok(pending)
    }
}

/// RFC 7636 section 4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] /
/// "-" / "." / "_" / "~"`.
pub(super) fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge: base64url without padding of a SHA-256 hash, so 43
/// characters of the base64url alphabet (RFC 7636 section 4.2).
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(crate::error::is_base64url)
}

/// RFC 7636 section 4.6: `BASE64URL(SHA256(ASCII(code_verifier)))` equals
/// the challenge.
pub(super) fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let computed = b64(digest(&SHA256, verifier.as_bytes()).as_ref());
    aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes())
        .is_ok()
}

/// RFC 8707 section 2: an absolute URI without a fragment.
pub(super) fn is_resource_indicator(resource: &str) -> bool {
    Url::parse(resource).is_ok_and(|url| url.fragment().is_none())
}

/// Splits a `scope` value into its tokens (RFC 6749 section 3.3), without
/// duplicates; `None` if a token has a character outside `%x21 / %x23-5B /
/// %x5D-7E`.
pub(super) fn parse_scope(scope: &str) -> Option<Vec<String>> {
    let mut tokens: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|token| !token.is_empty()) {
        if !token
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        {
            return None;
        }
        if !tokens.iter().any(|seen| seen == token) {
            tokens.push(token.to_owned());
        }
    }
    Some(tokens)
}

/// `GET /authorize`.
pub(super) async fn serve_authorize(
    State(shared): State<Arc<Shared>>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    shared.authorize_hits.fetch_add(1, Ordering::SeqCst);
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    authorize(&shared, query.as_deref().unwrap_or_default())
}

fn authorize(shared: &Shared, query: &str) -> Response {
    let Ok(params) = Params::parse(query.as_bytes()) else {
        return OAuthError::invalid_request("a parameter is repeated").into_response();
    };
    // RFC 6749 section 4.1.2.1: without a valid client_id and redirect_uri,
    // the error is shown to the user, never redirected.
    let Some(client_id) = params.get("client_id") else {
        return OAuthError::invalid_request("client_id is required").into_response();
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return OAuthError::invalid_request("redirect_uri is required").into_response();
    };
    let redirect = match check_redirect_uri(shared, client_id, redirect_uri) {
        Ok(url) => url,
        Err(error) => return error.into_response(),
    };

    // From here on errors go back to the client (RFC 6749 section 4.1.2.1).
    let state = params.get("state");
    let fail = |code: &'static str, description: &'static str| {
        redirect_with(
            redirect.clone(),
            &[
                ("error", code),
                ("error_description", description),
                ("iss", shared.issuer.as_str()),
            ],
            state,
        )
    };
    match params.get("response_type") {
        Some("code") => {}
        None => return fail("invalid_request", "response_type is required"),
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
    }
    // OAuth 2.1 section 4.1.1 and RFC 7636 section 4.4.1: PKCE is required,
    // and the only method is S256 (absent means `plain`, refused too).
    let Some(challenge) = params.get("code_challenge") else {
        return fail("invalid_request", "code_challenge is required (PKCE)");
    };
    if params.get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if !is_s256_challenge(challenge) {
        return fail(
            "invalid_request",
            "code_challenge is not a base64url SHA-256 value",
        );
    }
    if !params
        .resources()
        .iter()
        .all(|resource| is_resource_indicator(resource))
    {
        return fail(
            "invalid_target",
            "resource must be an absolute URI without a fragment",
        );
    }
    let Some(scopes) = parse_scope(params.get("scope").unwrap_or_default()) else {
        return fail("invalid_scope", "scope is malformed");
    };
    let Ok(code) = random_b64(32) else {
        return fail("server_error", "random generation failed");
    };

    let pending = PendingCode {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: challenge.to_owned(),
        scopes,
        resources: params.resources().to_vec(),
        subject: lock(&shared.subject).clone(),
        issued: Instant::now(),
    };
    tracing::debug!(
        issuer = %shared.issuer,
        client_id = %pending.client_id,
        subject = %pending.subject,
        "test issuer approved an authorization request"
    );
    lock(&shared.codes).insert(code.clone(), pending, shared.code_lifetime);
    redirect_with(
        redirect,
        &[("code", &code), ("iss", shared.issuer.as_str())],
        state,
    )
}

/// `302 Found` to `url` with `pairs` (and `state`, if any) appended to its
/// query (RFC 6749 section 4.1.2, RFC 9207 section 2).
fn redirect_with(mut url: Url, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, no_store()),
            ],
        )
            .into_response(),
        // Unreachable in practice: a serialized URL is ASCII.
        Err(_) => OAuthError::server_error("cannot build the redirect").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_code_verifier(verifier));
        assert!(is_s256_challenge(challenge));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(challenge, challenge));
        assert!(!is_code_verifier("too-short"));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{verifier}+")));
        assert!(!is_s256_challenge(verifier.trim_end_matches('k')));
    }

    #[test]
    fn scopes_follow_rfc_6749_section_3_3() {
        assert_eq!(
            parse_scope("a  b:c a"),
            Some(vec!["a".to_owned(), "b:c".to_owned()])
        );
        assert_eq!(parse_scope(""), Some(vec![]));
        assert_eq!(parse_scope("a\"b"), None);
        assert_eq!(parse_scope("a\\b"), None);
        assert_eq!(parse_scope("é"), None);
    }

    #[test]
    fn resource_indicators_are_absolute_without_fragment() {
        // RFC 8707 section 2.
        assert!(is_resource_indicator("https://mcp.example.com/mcp"));
        assert!(is_resource_indicator("urn:example:api"));
        assert!(!is_resource_indicator("/mcp"));
        assert!(!is_resource_indicator("https://mcp.example.com/mcp#x"));
    }
}
