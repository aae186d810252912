//! Size and grammar of the request.

use super::*;

// Size and grammar of the request
// ---------------------------------------------------------------------------

// RFC 6750 section 2.1 and our cap (8 KiB by default): an oversized token is
// refused before anything looks at it; a header far over the server's own
// limit never reaches us (431) or is cut off, never 200.
#[tokio::test]
async fn an_oversized_authorization_header_is_refused_cheaply() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    let padded = format!("{valid}{}", "A".repeat(9 * 1024));
    assert_invalid_token(&rig.send(&padded).await, "token_too_large", "9 KiB");
    assert_invalid_token(
        &rig.send(&"A".repeat(8 * 1024 + 1)).await,
        "token_too_large",
        "8 KiB + 1",
    );
    let huge = format!(
        "GET /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        rig.authority(),
        "A".repeat(1024 * 1024)
    );
    let status = tokio::task::spawn_blocking({
        let rig_request = huge.into_bytes();
        let authority = rig.authority();
        move || raw_status(&authority, &rig_request)
    })
    .await
    .unwrap();
    assert!(
        matches!(status, None | Some(400 | 401 | 431)),
        "1 MiB header: {status:?}"
    );
    assert_eq!(rig.issuer.total_hits(), 0);
}

fn raw_status(authority: &str, request: &[u8]) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let _ = stream.write_all(request);
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

// RFC 6750 sections 2.1 and 3.1: several Authorization headers or two
// tokens make a malformed request: 400 `invalid_request`.
#[tokio::test]
async fn several_authorization_headers_or_two_tokens_are_invalid_request() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    let two_headers = rig
        .http
        .get(&rig.resource)
        .header("authorization", format!("Bearer {valid}"))
        .header("authorization", format!("Bearer {valid}"));
    let outcome = rig.send_request(two_headers).await;
    assert_eq!(outcome.status, 400, "{outcome:?}");
    assert_eq!(outcome.error.as_deref(), Some("invalid_request"));
    assert_eq!(
        outcome.reason.as_deref(),
        Some("multiple_authorization_headers")
    );
    for value in [
        format!("Bearer {valid} {valid}"),
        format!("Bearer {valid}, Bearer {valid}"),
        format!("Bearer {valid},{valid}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer\t{valid}"),
        format!("Bearer \"{valid}\""),
    ] {
        let outcome = rig
            .send_request(rig.http.get(&rig.resource).header("authorization", value))
            .await;
        assert_eq!(outcome.status, 400, "{outcome:?}");
        assert_eq!(outcome.error.as_deref(), Some("invalid_request"));
        assert_eq!(
            outcome.reason.as_deref(),
            Some("malformed_authorization_header")
        );
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 6750 section 3.1; RFC 9728 section 5.1: a request with another scheme
// carries no Bearer credentials: 401 with a Bearer challenge, no error code.
#[tokio::test]
async fn other_schemes_get_a_plain_bearer_challenge() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Negotiate YIIB".to_owned(),
        format!("MAC {valid}"),
        "Digest username=\"x\"".to_owned(),
    ] {
        let outcome = rig
            .send_request(rig.http.get(&rig.resource).header("authorization", &value))
            .await;
        assert_eq!(outcome.status, 401, "{value}: {outcome:?}");
        assert!(outcome.challenged, "{value}");
        assert_eq!(outcome.error, None, "{value}");
        assert_eq!(outcome.reason.as_deref(), Some("missing_token"), "{value}");
    }
    // RFC 9449 section 7.1: the DPoP scheme is read (DPoP is allowed by
    // default); without its proof header it is `invalid_dpop_proof`.
    let outcome = rig
        .send_request(
            rig.http
                .get(&rig.resource)
                .header("authorization", format!("DPoP {valid}")),
        )
        .await;
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(outcome.reason.as_deref(), Some("dpop_proof_missing"));
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 6750 section 2.1 (b64token is ASCII) and RFC 9110 section 5.5: non-ASCII
// and control characters in the header are a malformed request (400), from
// us or from the HTTP parser; never accepted.
#[tokio::test]
async fn non_ascii_and_control_characters_are_refused() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    for value in [
        format!("Bearer {valid}\u{e9}").into_bytes(),
        format!("Bearer \u{2024}{valid}").into_bytes(),
        [b"Bearer ".as_ref(), valid.as_bytes(), b"\xff"].concat(),
    ] {
        let header = reqwest::header::HeaderValue::from_bytes(&value).unwrap();
        let outcome = rig
            .send_request(rig.http.get(&rig.resource).header("authorization", header))
            .await;
        assert_eq!(outcome.status, 400, "{outcome:?}");
        assert_eq!(
            outcome.reason.as_deref(),
            Some("malformed_authorization_header")
        );
    }
    // Control characters no client library will send: raw bytes.
    for control in [b"\x01".as_ref(), b"\x00", b"\x1b[31m", b"\x7f", b"\r"] {
        let request = [
            format!(
                "GET /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer ",
                rig.authority()
            )
            .as_bytes(),
            valid.as_bytes(),
            control,
            b"\r\nConnection: close\r\n\r\n",
        ]
        .concat();
        let authority = rig.authority();
        let status = tokio::task::spawn_blocking(move || raw_status(&authority, &request))
            .await
            .unwrap();
        assert!(
            matches!(status, None | Some(400)),
            "{control:?}: {status:?}"
        );
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    // The server is still up and accepts a good token.
    assert_eq!(rig.send(&valid).await.status, 200);
}

// RFC 6750 sections 2.2 and 2.3 are not supported (OAuth 2.1 section 5.2;
// MCP "Access Token Usage": tokens in the query string MUST NOT be accepted):
// a valid token in the query is refused (400 invalid_request,
// `token_in_query`), one in a form or JSON body is never read; neither is
// verified.
#[tokio::test]
async fn tokens_in_the_query_string_or_form_body_are_never_read() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    let query = rig
        .http
        .get(format!("{}?access_token={valid}", rig.resource));
    let outcome = rig.send_request(query).await;
    assert_eq!(outcome.status, 400, "{outcome:?}");
    assert_eq!(outcome.error.as_deref(), Some("invalid_request"));
    assert_eq!(outcome.reason.as_deref(), Some("token_in_query"));
    let form = rig
        .http
        .post(&rig.resource)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={valid}"));
    let json_body = rig
        .http
        .post(&rig.resource)
        .header("content-type", "application/json")
        .body(format!("{{\"access_token\":\"{valid}\"}}"));
    for request in [form, json_body] {
        let outcome = rig.send_request(request).await;
        assert_eq!(outcome.status, 401, "{outcome:?}");
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.reason.as_deref(), Some("missing_token"));
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// Issue 4, "cheap checks first": size, structure, header policy, issuer and
// time claims are refused before any signature check or network fetch.
#[tokio::test]
async fn cheap_checks_come_before_any_fetch() {
    let rig = Rig::start(|b| b).await;
    let t = now();
    let hostile = vec![
        "A".repeat(9000),
        "not-a-jwt".to_owned(),
        "a.b.c.d.e".to_owned(),
        rig.token().header("alg", json!("none")).sign(),
        rig.token().header("crit", json!(["x"])).sign(),
        rig.token().header("typ", json!("JWT")).sign(),
        rig.token()
            .claim("iss", json!("https://evil.example"))
            .sign(),
        rig.token().expires_at(t - 3600).sign(),
        rig.token().not_before(t + 3600).sign(),
        rig.token()
            .claim("aud", json!("https://other.example"))
            .sign(),
        rig.token().claim("sub", Value::Null).sign(),
        rig.token().claim("cnf", json!({"jkt": "x"})).sign(),
        rig.token().expires_at(t + 400 * 86_400).sign(),
        with_signature(&rig.token().sign(), &[1, 2, 3]),
    ];
    for token in &hostile {
        let outcome = rig.send(token).await;
        assert_eq!(outcome.status, 401, "{outcome:?}");
    }
    assert_eq!(rig.issuer.total_hits(), 0, "a cheap rejection fetched keys");
    // The counter works: a good token costs exactly one fetch.
    assert_eq!(rig.send(&rig.token().sign()).await.status, 200);
    assert_eq!(rig.issuer.jwks_hits(), 1);
}
