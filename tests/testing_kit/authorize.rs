//! The authorization endpoint (`GET /authorize`).

use super::*;

// ---------------------------------------------------------------------------
// The authorization endpoint
// ---------------------------------------------------------------------------

/// RFC 6749 section 4.1.2.1: errors about the request are redirected with
/// `state` (and RFC 9207 `iss`); PKCE S256 is mandatory (RFC 7636 section
/// 4.4.1, OAuth 2.1 section 4.1.1).
#[tokio::test]
async fn authorization_errors_are_redirected() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let (_, challenge) = pkce();
    let challenge = challenge.as_str();
    let base = [
        ("client_id", "app"),
        ("redirect_uri", "http://localhost:9/cb"),
        ("state", "s1"),
    ];
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "token"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ],
            "unsupported_response_type",
        ),
        (&[("response_type", "code")], "invalid_request"),
        (
            &[("response_type", "code"), ("code_challenge", challenge)],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "code"),
                ("code_challenge", challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "code"),
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "code"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
                ("resource", "https://mcp.example.com/mcp#fragment"),
            ],
            "invalid_target",
        ),
    ];
    for (extra, error) in cases {
        let mut params = base.to_vec();
        params.extend_from_slice(extra);
        let location = browse(&authorize_url(&issuer, &params)).await;
        assert!(location.starts_with("http://localhost:9/cb?"), "{location}");
        let answer = query(&location);
        assert_eq!(
            answer.get("error").map(String::as_str),
            Some(error),
            "{extra:?}"
        );
        assert!(answer.contains_key("error_description"));
        assert!(!answer.contains_key("code"));
        assert_eq!(answer["state"], "s1");
        assert_eq!(answer["iss"], issuer.issuer());
    }
    let bad_scope = [
        ("response_type", "code"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", "a\"b"),
    ];
    let mut params = base.to_vec();
    params.extend_from_slice(&bad_scope);
    let location = browse(&authorize_url(&issuer, &params)).await;
    assert_eq!(query(&location)["error"], "invalid_scope");
    assert_eq!(issuer.authorize_hits(), 8);
}

/// RFC 6749 section 4.1.2.1: a missing or invalid `client_id` or
/// `redirect_uri` is never redirected; OAuth 2.1 section 2.3.1: only https
/// or loopback http; registered clients must use a registered URI (any port
/// on loopback, RFC 8252 section 7.3).
#[tokio::test]
async fn bad_client_or_redirect_is_answered_directly() {
    let issuer = TestIssuer::start().await.expect("issuer");
    issuer.register_client(
        ClientRegistration::public("registered").redirect_uri("http://127.0.0.1/cb"),
    );
    let (_, challenge) = pkce();
    let pkce = [
        ("response_type", "code"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let cases: [&[(&str, &str)]; 7] = [
        &[("redirect_uri", "http://127.0.0.1/cb")],
        &[("client_id", "app")],
        &[
            ("client_id", "app"),
            ("redirect_uri", "http://evil.example/cb"),
        ],
        &[
            ("client_id", "app"),
            ("redirect_uri", "https://app.example/cb#x"),
        ],
        &[("client_id", "app"), ("redirect_uri", "not a url")],
        &[
            ("client_id", "registered"),
            ("redirect_uri", "http://127.0.0.1/other"),
        ],
        &[
            ("client_id", "app"),
            ("client_id", "app2"),
            ("redirect_uri", "http://127.0.0.1/cb"),
        ],
    ];
    for case in cases {
        let mut params = pkce.to_vec();
        params.extend_from_slice(case);
        let response = bounded(http().get(authorize_url(&issuer, &params)).send())
            .await
            .expect("authorize");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case:?}");
        assert!(response.headers().get("location").is_none());
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"], "invalid_request", "{case:?}");
    }
    // The registered URI on another loopback port is accepted.
    let mut params = pkce.to_vec();
    params.extend_from_slice(&[
        ("client_id", "registered"),
        ("redirect_uri", "http://127.0.0.1:4321/cb"),
    ]);
    let location = browse(&authorize_url(&issuer, &params)).await;
    assert!(query(&location).contains_key("code"));

    let response = bounded(http().post(issuer.authorization_endpoint()).send())
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(issuer.authorize_hits(), 9);
}

/// The subject is configurable: per builder, then per test.
#[tokio::test]
async fn the_subject_follows_the_configuration() {
    let issuer = TestIssuer::builder()
        .subject("carol")
        .start()
        .await
        .expect("issuer");
    let first = approved_code(&issuer, "app", &[]).await;
    issuer.set_next_subject("dave");
    let second = approved_code(&issuer, "app", &[]).await;
    for (code, subject) in [(first, "carol"), (second, "dave")] {
        let (status, _, body) = redeem(&issuer, "app", &code, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, claims) = jwt_parts(body["access_token"].as_str().expect("token"));
        assert_eq!(claims["sub"], subject);
    }
}
