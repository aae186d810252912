//! Building `WWW-Authenticate` challenges (RFC 6750 section 3, RFC 9728
//! section 5.1) and the matching JSON error bodies.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

#[cfg(test)]
use crate::error::RenderedChallenges;
use crate::error::{AuthError, AuthErrorKind, ErrorCode};
// Defined beside `AuthError`, which carries it, so that `error` stays a leaf.
pub(crate) use crate::error::ChallengeParams;

/// Seconds a client is asked to wait when verification keys are unavailable.
pub(crate) const RETRY_AFTER_SECS: u64 = 5;

/// Appends `name="value"` to a challenge, escaping the value as an RFC 9110
/// quoted-string: `"` and `\` are backslash-escaped, and bytes that a
/// quoted-string cannot carry (controls, DEL, non-ASCII) are dropped.
fn push_param(out: &mut String, name: &str, value: &str) {
    // Every parameter ends with a quote; the scheme name never does.
    if out.ends_with('"') {
        out.push(',');
    }
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '\t' => out.push(c),
            c if c.is_ascii_graphic() => out.push(c),
            _ => {}
        }
    }
    out.push('"');
}

/// Builds a Bearer challenge.
///
/// Parameter order follows the MCP specification's examples: without an
/// error `resource_metadata`, `scope`; with one `error`, `scope`,
/// `resource_metadata`, `error_description`. `scope` is omitted when empty.
/// Exposed to tests as `mcp_oauth2::testing::bearer_challenge`.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn bearer_challenge(
    error: Option<ErrorCode>,
    scope: &str,
    resource_metadata: &str,
    error_description: Option<&str>,
) -> String {
    challenge_value(
        "Bearer",
        error,
        scope,
        Some(resource_metadata),
        error_description,
    )
}

/// [`bearer_challenge`] with `resource_metadata` optional: without it (an
/// [`AuthError`] built outside a layer) the challenge names only what the
/// error itself knows.
fn challenge_value(
    scheme: &str,
    error: Option<ErrorCode>,
    scope: &str,
    resource_metadata: Option<&str>,
    error_description: Option<&str>,
) -> String {
    let metadata_len = resource_metadata.map_or(0, str::len);
    let mut out = String::with_capacity(96 + scope.len() + metadata_len);
    out.push_str(scheme);
    match error {
        None => {
            if let Some(resource_metadata) = resource_metadata {
                push_param(&mut out, "resource_metadata", resource_metadata);
            }
            if !scope.is_empty() {
                push_param(&mut out, "scope", scope);
            }
        }
        Some(error) => {
            push_param(&mut out, "error", error.as_str());
            if !scope.is_empty() {
                push_param(&mut out, "scope", scope);
            }
            if let Some(resource_metadata) = resource_metadata {
                push_param(&mut out, "resource_metadata", resource_metadata);
            }
        }
    }
    if let Some(desc) = error_description {
        push_param(&mut out, "error_description", desc);
    }
    out
}

/// Parses a `Bearer` challenge into its parameters, in order (RFC 9110
/// section 11.6.1 auth-params with quoted-string or token values). Returns
/// `None` for another scheme or malformed syntax. Exposed to tests as
/// `mcp_oauth2::testing::parse_bearer_challenge`.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn parse_bearer_challenge(value: &str) -> Option<Vec<(String, String)>> {
    parse_challenge("Bearer", value)
}

/// [`parse_bearer_challenge`] for a challenge of scheme `scheme` (`DPoP`).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn parse_challenge(scheme: &str, value: &str) -> Option<Vec<(String, String)>> {
    let rest = value.strip_prefix(scheme)?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(' ' | '\t' | ',')) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(params);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return None;
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((name.to_ascii_lowercase(), value));
    }
}

/// `X-Content-Type-Options`.
const NOSNIFF: http::HeaderName = http::HeaderName::from_static("x-content-type-options");

/// The headers of every challenge and error body the crate produces:
/// `Cache-Control: no-store` (an answer about credentials is never cached)
/// and `X-Content-Type-Options: nosniff`.
pub(crate) fn error_headers(headers: &mut http::HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(NOSNIFF, HeaderValue::from_static("nosniff"));
}

/// JSON body of an error response: `{"error": ..., "error_description":
/// ..., "reason": ..., "request_id": ...}` (`request_id` when known; it is
/// `[A-Za-z0-9._:-]` only, no escaping needed).
pub(crate) fn error_body(kind: AuthErrorKind, request_id: Option<&str>) -> String {
    json_error_body(
        kind.error_code().map(ErrorCode::as_str),
        kind.description(),
        kind.code(),
        request_id,
    )
}

/// The JSON error body of the crate's refusals (the challenge's, the
/// layer's HTTP rules, throttling): `{"error": ..., "error_description":
/// ..., "reason": ..., "request_id": ...}`, `error` and `request_id` when
/// given. Every piece is fixed ASCII without quotes or backslashes, or a
/// request id (`[A-Za-z0-9._:-]` only): nothing to escape. Pushed in
/// place: `write!` costs a formatter pass per piece (about 1,100
/// instructions a refusal; BENCHMARKS.md, twenty-fourth pass).
pub(crate) fn json_error_body(
    error: Option<&str>,
    description: &str,
    reason: &str,
    request_id: Option<&str>,
) -> String {
    let mut body = String::with_capacity(
        64 + error.map_or(0, str::len)
            + description.len()
            + reason.len()
            + request_id.map_or(0, str::len),
    );
    body.push('{');
    if let Some(error) = error {
        body.push_str("\"error\":\"");
        body.push_str(error);
        body.push_str("\",");
    }
    body.push_str("\"error_description\":\"");
    body.push_str(description);
    body.push_str("\",\"reason\":\"");
    body.push_str(reason);
    body.push('"');
    if let Some(id) = request_id {
        body.push_str(",\"request_id\":\"");
        body.push_str(id);
        body.push('"');
    }
    body.push('}');
    body
}

/// The response for a rejection. The [`AuthError`]'s kind is attached to the
/// response extensions as [`AuthErrorKind`] so outer layers can log it.
/// `dpop_scheme`: the request used the `DPoP` scheme (as does an error
/// marked [`AuthError::is_dpop_scheme`]), so the error goes on the `DPoP`
/// challenge (RFC 9449 section 7.1).
pub(crate) fn rejection_response(
    err: &AuthError,
    params: &ChallengeParams,
    request_id: Option<&str>,
    dpop_scheme: bool,
) -> Response {
    render(err, Some(params), request_id, dpop_scheme)
}

/// The rejection as the layer answers it: the status of the kind
/// ([`AuthErrorKind::status`]), the RFC 6750 section 3 `WWW-Authenticate`
/// challenge, `Cache-Control: no-store` and the JSON body
/// `{"error", "error_description", "reason"}`; `Retry-After` instead of a
/// challenge for the `503` kinds. The kind is attached to the response
/// extensions as [`AuthErrorKind`].
///
/// An error returned by [`AuthLayer::authenticate`](crate::AuthLayer::authenticate)
/// carries that layer's `resource_metadata` (RFC 9728 section 5.1) and default
/// `scope`, so a handler that returns it answers exactly as the layer would.
/// An error built any other way (for example [`AuthError::new`]) knows no
/// resource: its challenge is `Bearer` with the error's own parameters only
/// (`error`, the scopes of [`AuthError::insufficient_scope`],
/// `error_description`), or a bare `Bearer` for
/// [`AuthErrorKind::MissingToken`].
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        render(&self, self.challenge(), None, false)
    }
}

/// The response for a rejection, with the resource's challenge parameters
/// when known. Without them the challenge is `Bearer` with the error's own
/// parameters only: `error`, the scopes an `insufficient_scope` error
/// requires, and `error_description`. The error is on the `DPoP` challenge
/// for a request that used the `DPoP` scheme (`dpop_scheme`, or the error
/// marked so).
pub(crate) fn render(
    err: &AuthError,
    params: Option<&ChallengeParams>,
    request_id: Option<&str>,
    dpop_scheme: bool,
) -> Response {
    let dpop_scheme = dpop_scheme || err.is_dpop_scheme();
    let kind = err.kind();
    // Built in place rather than through `Response::builder()`, whose
    // `header` checks and copies every value again (about 1,400
    // instructions a refusal; BENCHMARKS.md, twenty-fourth pass).
    let mut body = error_body(kind, request_id);
    if kind == AuthErrorKind::InsufficientScope {
        push_body_scope(&mut body, &challenge_scope(err, params));
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = kind.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match kind.error_code() {
        Some(ErrorCode::TemporarilyUnavailable) => {
            headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        // Not about the token: no challenge (a client must not answer
        // these with a new authorization).
        Some(ErrorCode::AccessDenied | ErrorCode::ServerError) => {}
        error => {
            let values = match params {
                // The same for every error of this kind: rendered once.
                Some(p) if !names_own_scopes(err) => {
                    p.rendered.get_or_render(kind, dpop_scheme, || {
                        challenge_headers(err, error, Some(p), dpop_scheme)
                    })
                }
                _ => challenge_headers(err, error, params, dpop_scheme)
                    .map(|v| std::borrow::Cow::Owned(v.into_vec())),
            };
            let Some(values) = values else {
                // Unreachable: push_param only emits visible ASCII, SP and HTAB.
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            for value in values.iter() {
                headers.append(WWW_AUTHENTICATE, value.clone());
            }
        }
    }
    error_headers(headers);
    response.extensions_mut().insert(kind);
    response
}

/// The `scope` of `err`'s challenge: the scopes a step-up names, else the
/// layer's default (empty without parameters).
fn challenge_scope<'a>(
    err: &AuthError,
    params: Option<&'a ChallengeParams>,
) -> std::borrow::Cow<'a, str> {
    if names_own_scopes(err) {
        err.required_scopes().join(" ").into()
    } else {
        params.map_or("", |p| p.scope.as_str()).into()
    }
}

/// Adds `"scope"` to an `insufficient_scope` JSON body (built by
/// [`error_body`], ending in `}`): the challenge's `scope` as its
/// parameter carries it (the characters [`push_param`] keeps), so a client
/// reading the body asks for what the header names. Nothing when empty.
fn push_body_scope(body: &mut String, scope: &str) {
    let kept: String = scope
        .chars()
        .filter(|&c| c == ' ' || c == '\t' || c.is_ascii_graphic())
        .collect();
    if kept.is_empty() {
        return;
    }
    let Ok(value) = serde_json::to_string(&kept) else {
        return;
    };
    if body.ends_with('}') {
        body.pop();
        body.push_str(",\"scope\":");
        body.push_str(&value);
        body.push('}');
    }
}

/// Whether `err` is a step-up naming its own scopes: its challenge's
/// `scope` is those, not the layer's default (so it is not the same for
/// every error of its kind).
fn names_own_scopes(err: &AuthError) -> bool {
    err.kind() == AuthErrorKind::InsufficientScope && !err.required_scopes().is_empty()
}

/// The `WWW-Authenticate` values of a rejection (RFC 6750 section 3; RFC
/// 9449 sections 7.1 and 9 for DPoP); `None` if one is not a valid header
/// value (unreachable: parameters are checked when they are set).
/// `dpop_scheme`: the request used the `DPoP` scheme, so every error of it
/// goes on the `DPoP` challenge.
fn challenge_headers(
    err: &AuthError,
    error: Option<ErrorCode>,
    params: Option<&ChallengeParams>,
    dpop_scheme: bool,
) -> Option<Box<[HeaderValue]>> {
    let kind = err.kind();
    let scope = challenge_scope(err, params);
    let resource_metadata = params.map(|p| p.resource_metadata.as_str());
    // RFC 9449 sections 7.1 and 9: a DPoP error, and any error of a
    // request made with the `DPoP` scheme, goes on the `DPoP` challenge;
    // beside it, the `Bearer` one names no error.
    let dpop_error = dpop_scheme
        || matches!(
            error,
            Some(ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce)
        )
        || kind == AuthErrorKind::DpopTokenNotBound;
    let dpop_algs = params.and_then(|p| p.dpop_algs.as_deref());
    let required = params.is_some_and(|p| p.dpop_required);
    let mut values = Vec::with_capacity(2);
    if !required && (dpop_algs.is_some() || !dpop_error) {
        let bearer_error = if dpop_error { None } else { error };
        let description = bearer_error.map(|_| kind.description());
        values.push(challenge_value(
            "Bearer",
            bearer_error,
            &scope,
            resource_metadata,
            description,
        ));
    }
    if dpop_algs.is_some() || dpop_error {
        let dpop_error = if dpop_error || required { error } else { None };
        let description = dpop_error.map(|_| kind.description());
        let mut value = challenge_value("DPoP", dpop_error, &scope, resource_metadata, description);
        if let Some(algs) = dpop_algs {
            push_param(&mut value, "algs", algs);
        }
        values.push(value);
    }
    values
        .into_iter()
        .map(|challenge| HeaderValue::try_from(challenge).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6750 section 3 / MCP "Protected Resource Metadata Discovery".
    #[test]
    fn challenge_without_error() {
        assert_eq!(
            bearer_challenge(
                None,
                "notes:read",
                "https://h/.well-known/oauth-protected-resource/mcp",
                None
            ),
            r#"Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp", scope="notes:read""#
        );
        assert_eq!(
            bearer_challenge(None, "", "https://h/x", None),
            r#"Bearer resource_metadata="https://h/x""#
        );
    }

    #[test]
    fn challenge_with_error_and_escaping() {
        assert_eq!(
            bearer_challenge(
                Some(ErrorCode::InsufficientScope),
                "a b",
                "https://h/\"x\\",
                Some("bad\r\n\u{7f}é desc")
            ),
            r#"Bearer error="insufficient_scope", scope="a b", resource_metadata="https://h/\"x\\", error_description="bad desc""#
        );
    }

    // MCP 2026-07-28 "Scope Selection Strategy" and "Runtime Insufficient Scope
    // Errors": our challenges equal the specification's examples exactly.
    #[test]
    fn matches_the_mcp_specification_examples() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../spec-fixtures/mcp-challenges.json")).unwrap();
        let mut checked = 0;
        for ex in fixture["challenges"].as_array().unwrap() {
            let expected = ex["www_authenticate"].as_str().unwrap();
            let params: std::collections::HashMap<String, String> =
                parse_bearer_challenge(expected)
                    .unwrap()
                    .into_iter()
                    .collect();
            let error = match params.get("error").map(String::as_str) {
                None => None,
                Some("insufficient_scope") => Some(ErrorCode::InsufficientScope),
                Some(other) => panic!("unexpected error {other}"),
            };
            let built = bearer_challenge(
                error,
                &params["scope"],
                &params["resource_metadata"],
                params.get("error_description").map(String::as_str),
            );
            assert_eq!(built, expected, "{}", ex["section"]);
            checked += 1;
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn parse_round_trips_hostile_values() {
        let built = bearer_challenge(
            Some(ErrorCode::InvalidToken),
            "a\"b c\\",
            "https://h/x",
            Some("d,e=f"),
        );
        let parsed = parse_bearer_challenge(&built).unwrap();
        assert_eq!(
            parsed,
            vec![
                ("error".into(), "invalid_token".into()),
                ("scope".into(), "a\"b c\\".into()),
                ("resource_metadata".into(), "https://h/x".into()),
                ("error_description".into(), "d,e=f".into()),
            ]
        );
        assert!(parse_bearer_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_bearer_challenge("Bearer a=\"unterminated").is_none());
    }

    // An `insufficient_scope` body names the challenge's `scope` (the
    // step-up's own scopes, else the layer's default), escaped as JSON even
    // for scopes a handler spelled with quotes; no `scope` member when the
    // challenge has none, and none for any other kind.
    #[tokio::test]
    async fn insufficient_scope_bodies_name_the_challenges_scope() {
        use http_body_util::BodyExt as _;
        let params = ChallengeParams::new(
            "https://rs.example/.well-known/oauth-protected-resource/mcp".into(),
            "notes:read".into(),
            None,
            false,
        );
        async fn read(response: Response) -> (Option<String>, serde_json::Value) {
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (challenge, serde_json::from_slice(&body).unwrap())
        }
        let cases: [(AuthError, Option<&str>); 5] = [
            (
                AuthError::insufficient_scope(["notes:write", "notes:export"]),
                Some("notes:write notes:export"),
            ),
            (
                AuthError::new(AuthErrorKind::InsufficientScope),
                Some("notes:read"),
            ),
            (
                AuthError::insufficient_scope(["a\"b", "c\\d", "\u{e9}x\n"]),
                Some("a\"b c\\d x"),
            ),
            (AuthError::new(AuthErrorKind::Expired), None),
            (AuthError::new(AuthErrorKind::MissingToken), None),
        ];
        for (err, scope) in cases {
            let (challenge, body) =
                read(rejection_response(&err, &params, Some("r-1"), false)).await;
            assert_eq!(body["scope"].as_str(), scope, "{body}");
            assert_eq!(body["reason"], err.kind().code(), "{body}");
            if let Some(scope) = scope {
                let parsed = parse_bearer_challenge(&challenge.unwrap()).unwrap();
                assert!(
                    parsed.contains(&("scope".into(), scope.into())),
                    "{parsed:?}"
                );
            }
        }
        // Without a layer's parameters and without own scopes: no scope.
        let (_, body) =
            read(AuthError::new(AuthErrorKind::InsufficientScope).into_response()).await;
        assert!(body.get("scope").is_none(), "{body}");
        assert_eq!(body["error"], "insufficient_scope");
    }

    // A layer's challenges are rendered once per kind and reused; a step-up
    // challenge naming its own scopes is rendered each time, never cached
    // under its kind.
    #[test]
    fn rendered_challenges_are_reused_per_kind_but_not_for_own_scopes() {
        let params = ChallengeParams::new(
            "https://rs.example/.well-known/oauth-protected-resource/mcp".into(),
            "notes:read".into(),
            Some("ES256 RS256".into()),
            false,
        );
        let header = |err: AuthError| {
            let response = rejection_response(&err, &params, Some("id-1"), false);
            response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let first = header(AuthError::new(AuthErrorKind::InvalidSignature));
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first[0].contains("error=\"invalid_token\""), "{first:?}");
        assert!(first[1].starts_with("DPoP ") && first[1].contains("algs="));
        assert!(
            params
                .rendered
                .is_rendered(AuthErrorKind::InvalidSignature, false)
        );
        assert_eq!(
            header(AuthError::new(AuthErrorKind::InvalidSignature)),
            first
        );
        let a = header(AuthError::insufficient_scope(["notes:write"]));
        let b = header(AuthError::insufficient_scope(["admin"]));
        assert!(a[0].contains("scope=\"notes:write\""), "{a:?}");
        assert!(b[0].contains("scope=\"admin\""), "{b:?}");
        assert!(
            !params
                .rendered
                .is_rendered(AuthErrorKind::InsufficientScope, false)
        );
        // Without own scopes, insufficient_scope is the layer's default.
        let plain = header(AuthError::new(AuthErrorKind::InsufficientScope));
        assert!(plain[0].contains("scope=\"notes:read\""), "{plain:?}");
        // Every kind has a slot.
        assert_eq!(AuthErrorKind::ALL.len(), AuthErrorKind::COUNT);
        assert!(
            AuthErrorKind::ALL
                .iter()
                .all(|k| (*k as usize) < AuthErrorKind::COUNT)
        );
        // The slot renders once, however often it is asked.
        let slots = RenderedChallenges::default();
        let mut calls = 0;
        for _ in 0..2 {
            let v = slots.get_or_render(AuthErrorKind::InvalidSignature, false, || {
                calls += 1;
                Some(Box::new([HeaderValue::from_static("Bearer")]) as Box<[HeaderValue]>)
            });
            assert_eq!(v.unwrap().len(), 1);
        }
        assert_eq!(calls, 1);
    }

    // RFC 9449 section 7.1: for a request made with the `DPoP` scheme every
    // error is on the `DPoP` challenge, the `Bearer` one beside it names
    // none; rendered in its own slot, so a Bearer request's challenge of the
    // same kind is unchanged.
    #[test]
    fn a_dpop_requests_errors_are_on_the_dpop_challenge() {
        let params = ChallengeParams::new(
            "https://rs.example/.well-known/oauth-protected-resource/mcp".into(),
            "notes:read".into(),
            Some("ES256".into()),
            false,
        );
        let header = |err: &AuthError, dpop: bool| {
            rejection_response(err, &params, None, dpop)
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        for kind in [
            AuthErrorKind::Expired,
            AuthErrorKind::InsufficientScope,
            AuthErrorKind::MalformedAuthorizationHeader,
        ] {
            let code = kind.error_code().unwrap().as_str();
            let marked = AuthError::new(kind).on_dpop_scheme(true);
            for values in [header(&AuthError::new(kind), true), header(&marked, false)] {
                let bearer = parse_bearer_challenge(&values[0]).unwrap();
                assert!(bearer.iter().all(|(n, _)| n != "error"), "{values:?}");
                let dpop = parse_challenge("DPoP", &values[1]).unwrap();
                assert!(dpop.contains(&("error".into(), code.into())), "{values:?}");
            }
            let plain = header(&AuthError::new(kind), false);
            let bearer = parse_bearer_challenge(&plain[0]).unwrap();
            assert!(bearer.contains(&("error".into(), code.into())), "{plain:?}");
            assert!(params.rendered.is_rendered(kind, true));
            assert!(params.rendered.is_rendered(kind, false));
        }
    }

    // Every rejection renders: JSON body, the kind's status, and either a
    // challenge that parses back (RFC 6750 section 3) or `Retry-After`.
    #[test]
    fn every_kind_renders_a_parsable_challenge_and_json_body() {
        let params = ChallengeParams::new(
            "https://rs.example/.well-known/oauth-protected-resource/mcp".into(),
            "notes:read".into(),
            None,
            false,
        );
        for &kind in AuthErrorKind::ALL {
            let response = rejection_response(&AuthError::new(kind), &params, None, false);
            let dpop_error = matches!(
                kind.error_code(),
                Some(ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce)
            ) || kind == AuthErrorKind::DpopTokenNotBound;
            if dpop_error {
                // RFC 9449 section 7.1: the error goes on the `DPoP`
                // challenge (tests/dpop.rs checks its parameters).
                let first = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
                assert!(first.starts_with("DPoP "), "{kind:?}: {first}");
                assert_eq!(response.status(), kind.status(), "{kind:?}");
                continue;
            }
            assert_eq!(response.status(), kind.status(), "{kind:?}");
            assert_eq!(response.extensions().get::<AuthErrorKind>(), Some(&kind));
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            assert_eq!(response.headers().get_all(CONTENT_TYPE).iter().count(), 1);
            assert!(
                response.headers().get_all(WWW_AUTHENTICATE).iter().count() <= 1,
                "{kind:?}: one Bearer challenge without DPoP"
            );
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
            assert_eq!(response.headers()[NOSNIFF], "nosniff");
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| parse_bearer_challenge(v.to_str().unwrap()).unwrap());
            if kind.error_code() == Some(ErrorCode::TemporarilyUnavailable) {
                assert!(challenge.is_none(), "{kind:?}");
                assert_eq!(response.headers()[RETRY_AFTER], "5");
                continue;
            }
            if matches!(
                kind.error_code(),
                Some(ErrorCode::AccessDenied | ErrorCode::ServerError)
            ) {
                // Not about the token: no challenge, no step-up to start.
                assert!(challenge.is_none(), "{kind:?}");
                assert!(response.headers().get(RETRY_AFTER).is_none(), "{kind:?}");
                continue;
            }
            let challenge: std::collections::HashMap<_, _> =
                challenge.expect("a challenge").into_iter().collect();
            assert_eq!(
                challenge.get("error").map(String::as_str),
                kind.error_code().map(ErrorCode::as_str),
                "{kind:?}"
            );
            assert_eq!(
                challenge.get("error_description").map(String::as_str),
                kind.error_code().map(|_| kind.description()),
                "{kind:?}"
            );
            assert_eq!(challenge["resource_metadata"], params.resource_metadata);
        }
    }

    // RFC 9110 section 11.2: `token` values and optional whitespace around
    // `=` are read too; a parameter without a name or `=` is malformed.
    #[test]
    fn parser_reads_token_values_and_refuses_bare_names() {
        assert_eq!(
            parse_bearer_challenge("Bearer error = invalid_token, scope=\"a b\"").unwrap(),
            vec![
                ("error".to_owned(), "invalid_token".to_owned()),
                ("scope".to_owned(), "a b".to_owned()),
            ]
        );
        assert!(parse_bearer_challenge("Bearer realm").is_none());
        assert!(parse_bearer_challenge("Bearer =x").is_none());
    }

    #[test]
    fn body_is_json() {
        for &kind in AuthErrorKind::ALL {
            for request_id in [Some("r-1"), Some("0a.B_c:d-9"), None] {
                let v: serde_json::Value =
                    serde_json::from_str(&error_body(kind, request_id)).unwrap();
                // Exactly these members, no other.
                let mut expected = serde_json::json!({
                    "error_description": kind.description(),
                    "reason": kind.code(),
                });
                if let Some(code) = kind.error_code() {
                    expected["error"] = code.as_str().into();
                }
                if let Some(id) = request_id {
                    expected["request_id"] = id.into();
                }
                assert_eq!(v, expected, "{kind:?} {request_id:?}");
            }
        }
    }
}
