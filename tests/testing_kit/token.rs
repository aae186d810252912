//! The token endpoint (`POST /token`).

use super::*;

// ---------------------------------------------------------------------------
// The token endpoint
// ---------------------------------------------------------------------------

/// RFC 7636 section 4.6 and OAuth 2.1 section 4.1.3: the verifier must match,
/// codes are single-use and bound to the client and redirect URI.
#[tokio::test]
async fn authorization_code_rules() {
    let issuer = TestIssuer::start().await.expect("issuer");

    // A wrong verifier: invalid_grant, and the code is spent.
    let code = approved_code(&issuer, "app", &[]).await;
    let (other_verifier, _) = pkce();
    let wrong = Code {
        verifier: other_verifier,
        ..code
    };
    let refused = redeem(&issuer, "app", &wrong, &[]).await;
    assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_grant");

    // Single use.
    let code = approved_code(&issuer, "app", &[]).await;
    let (status, _, _) = redeem(&issuer, "app", &code, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let again = redeem(&issuer, "app", &code, &[]).await;
    assert_oauth_error(&again, StatusCode::BAD_REQUEST, "invalid_grant");

    // Another client.
    let code = approved_code(&issuer, "app", &[]).await;
    let refused = redeem(&issuer, "other-app", &code, &[]).await;
    assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_grant");

    // Another redirect URI.
    let code = approved_code(&issuer, "app", &[]).await;
    let moved = Code {
        redirect_uri: "http://127.0.0.1:7777/elsewhere".to_owned(),
        ..code
    };
    let refused = redeem(&issuer, "app", &moved, &[]).await;
    assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_grant");

    // Missing pieces: invalid_request, and the code is not spent.
    let code = approved_code(&issuer, "app", &[]).await;
    for missing in ["code_verifier", "redirect_uri", "code", "client_id"] {
        let params: Vec<(&str, &str)> = [
            ("grant_type", "authorization_code"),
            ("code", code.code.as_str()),
            ("redirect_uri", code.redirect_uri.as_str()),
            ("code_verifier", code.verifier.as_str()),
            ("client_id", "app"),
        ]
        .into_iter()
        .filter(|(name, _)| *name != missing)
        .collect();
        let refused = token_request(&issuer, &params, None).await;
        assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let malformed = Code {
        verifier: "short".to_owned(),
        code: code.code.clone(),
        redirect_uri: code.redirect_uri.clone(),
    };
    let refused = redeem(&issuer, "app", &malformed, &[]).await;
    assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, _, body) = redeem(&issuer, "app", &code, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// OAuth 2.1 section 4.1.2: codes expire (here at once).
#[tokio::test]
async fn expired_codes_are_refused() {
    let issuer = TestIssuer::builder()
        .code_lifetime(Duration::ZERO)
        .start()
        .await
        .expect("issuer");
    let code = approved_code(&issuer, "app", &[]).await;
    let refused = redeem(&issuer, "app", &code, &[]).await;
    assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_grant");
}

/// RFC 6749 sections 2.3.1 and 4.4: client credentials with
/// `client_secret_basic` or `client_secret_post`; wrong or missing
/// credentials are `401 invalid_client` with a `Basic` challenge.
#[tokio::test]
async fn client_credentials_and_client_authentication() {
    let issuer = TestIssuer::start().await.expect("issuer");
    issuer.register_client(ClientRegistration::confidential("svc", "s3cret"));
    issuer.register_client(ClientRegistration::public("spa"));
    let resource = "https://mcp.example.com/mcp";
    let grant = [
        ("grant_type", "client_credentials"),
        ("scope", "reports:read"),
        ("resource", resource),
    ];

    let basic = token_request(&issuer, &grant, Some(("svc", "s3cret"))).await;
    let mut post_params = grant.to_vec();
    post_params.extend([("client_id", "svc"), ("client_secret", "s3cret")]);
    let post = token_request(&issuer, &post_params, None).await;
    for (status, _, body) in [basic, post] {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["scope"], "reports:read");
        assert!(
            body.get("refresh_token").is_none(),
            "RFC 6749 section 4.4.3"
        );
        let (_, claims) = jwt_parts(body["access_token"].as_str().expect("token"));
        assert_eq!(claims["sub"], "svc");
        assert_eq!(claims["client_id"], "svc");
        assert_eq!(claims["aud"], resource);
        assert_eq!(claims["scope"], "reports:read");
    }

    for credentials in [("svc", "wrong"), ("nobody", "s3cret"), ("spa", "x")] {
        let refused = token_request(&issuer, &grant, Some(credentials)).await;
        assert_oauth_error(&refused, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(
            refused.1["www-authenticate"]
                .to_str()
                .is_ok_and(|v| v.starts_with("Basic ")),
            "RFC 6749 section 5.2"
        );
    }
    let no_credentials = token_request(&issuer, &grant, None).await;
    assert_oauth_error(&no_credentials, StatusCode::UNAUTHORIZED, "invalid_client");
    let mut no_secret = grant.to_vec();
    no_secret.push(("client_id", "svc"));
    let refused = token_request(&issuer, &no_secret, None).await;
    assert_oauth_error(&refused, StatusCode::UNAUTHORIZED, "invalid_client");

    // A public client cannot use this grant.
    let mut public = grant.to_vec();
    public.push(("client_id", "spa"));
    let refused = token_request(&issuer, &public, None).await;
    assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "unauthorized_client");

    // RFC 6749 section 2.3: one authentication method at a time.
    let mut both = grant.to_vec();
    both.push(("client_secret", "s3cret"));
    let refused = token_request(&issuer, &both, Some(("svc", "s3cret"))).await;
    assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_request");

    // A malformed Authorization header.
    let response = bounded(
        http()
            .post(issuer.token_endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "Basic %%%")
            .body(form(&grant))
            .send(),
    )
    .await
    .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// RFC 6749 section 6 with rotation (OAuth 2.1 section 4.3.1): a refresh
/// token works once and may narrow the scope, never widen it.
#[tokio::test]
async fn refresh_tokens_rotate() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let resource = "https://mcp.example.com/mcp";
    let code = approved_code(&issuer, "app", &[("scope", "a b"), ("resource", resource)]).await;
    let (_, _, body) = redeem(&issuer, "app", &code, &[]).await;
    let first = body["refresh_token"].as_str().expect("refresh").to_owned();

    let refresh = |token: &str, scope: Option<&str>| {
        let mut params = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
            ("client_id", "app".to_owned()),
        ];
        if let Some(scope) = scope {
            params.push(("scope", scope.to_owned()));
        }
        let issuer = &issuer;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(issuer, &params, None).await
        }
    };
    let (status, _, body) = refresh(&first, Some("a")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "a");
    let (_, claims) = jwt_parts(body["access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], resource);
    assert_eq!(claims["sub"], "test-user");
    let second = body["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(first, second);

    let reused = refresh(&first, None).await;
    assert_oauth_error(&reused, StatusCode::BAD_REQUEST, "invalid_grant");
    let widened = refresh(&second, Some("a c")).await;
    assert_oauth_error(&widened, StatusCode::BAD_REQUEST, "invalid_scope");
}

/// RFC 6749 sections 3.2 and 5.2: malformed token requests.
#[tokio::test]
async fn malformed_token_requests() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let unsupported = token_request(&issuer, &[("grant_type", "password")], None).await;
    assert_oauth_error(
        &unsupported,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    );
    let missing = token_request(&issuer, &[("code", "x")], None).await;
    assert_oauth_error(&missing, StatusCode::BAD_REQUEST, "invalid_request");
    let repeated = token_request(
        &issuer,
        &[("grant_type", "client_credentials"), ("grant_type", "x")],
        None,
    )
    .await;
    assert_oauth_error(&repeated, StatusCode::BAD_REQUEST, "invalid_request");

    let json_body = bounded(
        http()
            .post(issuer.token_endpoint())
            .json(&json!({"grant_type": "client_credentials"}))
            .send(),
    )
    .await
    .expect("request");
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    let body: Value = json_body.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_request");

    let get = bounded(http().get(issuer.token_endpoint()).send())
        .await
        .expect("GET");
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(issuer.token_hits(), 5);
}
