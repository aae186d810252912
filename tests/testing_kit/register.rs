//! Registration (`POST /register`) and the hit counters.

use super::*;

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

async fn register(issuer: &TestIssuer, metadata: &Value) -> (StatusCode, Value) {
    let response = bounded(
        http()
            .post(issuer.registration_endpoint())
            .json(metadata)
            .send(),
    )
    .await
    .expect("register");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

/// RFC 7591 sections 2, 3.2.1 and 3.2.2.
#[tokio::test]
async fn dynamic_client_registration() {
    let issuer = TestIssuer::start().await.expect("issuer");

    // The default method is client_secret_basic: a secret is issued, and it
    // works at the token endpoint.
    let (status, confidential) = register(
        &issuer,
        &json!({"client_name": "svc", "grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{confidential}");
    assert_eq!(
        confidential["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(confidential["client_name"], "svc");
    assert_eq!(confidential["client_secret_expires_at"], 0);
    assert_eq!(confidential["redirect_uris"], json!([]));
    let id = confidential["client_id"].as_str().expect("client_id");
    let secret = confidential["client_secret"].as_str().expect("secret");
    let (status, _, body) = token_request(
        &issuer,
        &[("grant_type", "client_credentials")],
        Some((id, secret)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A public client: no secret; its redirect URIs are enforced.
    let (status, public) = register(
        &issuer,
        &json!({
            "redirect_uris": ["http://127.0.0.1:7777/callback"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{public}");
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["grant_types"], json!(["authorization_code"]));
    let public_id = public["client_id"].as_str().expect("client_id");
    assert_ne!(public_id, id);
    let (_, challenge) = pkce();
    let response = bounded(
        http()
            .get(authorize_url(
                &issuer,
                &[
                    ("response_type", "code"),
                    ("client_id", public_id),
                    ("redirect_uri", "http://127.0.0.1:7777/other"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ],
            ))
            .send(),
    )
    .await
    .expect("authorize");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Refusals.
    let cases = [
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": "http://127.0.0.1/cb"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (metadata, error) in cases {
        let (status, body) = register(&issuer, &metadata).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{metadata}");
        assert_eq!(body["error"], error, "{metadata}");
    }
    let form_body = bounded(
        http()
            .post(issuer.registration_endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .body("client_name=x")
            .send(),
    )
    .await
    .expect("request");
    assert_eq!(form_body.status(), StatusCode::BAD_REQUEST);
    assert_eq!(issuer.registration_hits(), 10);
}

/// Hostile input gets an OAuth error, never a panic or a header injection.
#[tokio::test]
async fn hostile_inputs_get_oauth_errors() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let base = issuer.authorization_endpoint();
    for query in [
        "client_id=%FF%FE&redirect_uri=%00",
        "client_id=a&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb%0D%0ASet-Cookie%3A%20x&response_type=code",
        "%%%&&&==",
        "client_id=a&redirect_uri=http://[::1/cb",
    ] {
        let response = bounded(http().get(format!("{base}?{query}")).send())
            .await
            .expect("authorize");
        assert!(response.headers().get("set-cookie").is_none(), "{query}");
        if let Some(location) = response.headers().get("location") {
            assert_eq!(response.status(), StatusCode::FOUND);
            assert!(!location.as_bytes().iter().any(|b| *b < 0x20), "{query}");
        } else {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
            let body: Value = response.json().await.expect("JSON");
            assert!(body["error"].is_string(), "{query}");
        }
    }

    let token = |body: Vec<u8>, authorization: Option<&'static str>| {
        let mut request = http()
            .post(issuer.token_endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        async move {
            let response = bounded(request.send()).await.expect("token");
            let status = response.status();
            let body: Value = response.json().await.expect("JSON");
            (status, body)
        }
    };
    // Basic credentials that are not UTF-8, or have no colon.
    for authorization in ["Basic //79", "Basic YWJj", "Basic"] {
        let (status, body) = token(
            b"grant_type=client_credentials".to_vec(),
            Some(authorization),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization}");
        assert_eq!(body["error"], "invalid_client");
    }
    for body in [
        b"grant_type=%FF%FE".to_vec(),
        vec![0xFF, 0x00, b'=', b'&'],
        b"grant_type=authorization_code&code=%00&redirect_uri=x&code_verifier=y".to_vec(),
    ] {
        let (status, answer) = token(body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["error"].is_string());
    }

    // Deeply nested JSON at the registration endpoint.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let response = bounded(
        http()
            .post(issuer.registration_endpoint())
            .header("content-type", "application/json")
            .body(deep)
            .send(),
    )
    .await
    .expect("register");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Every endpoint is counted, and `total_hits` adds them up.
#[tokio::test]
async fn every_endpoint_is_counted() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let _ = approved_code(&issuer, "app", &[]).await;
    let _ = token_request(&issuer, &[], None).await;
    let _ = register(&issuer, &json!({})).await;
    let _ = bounded(http().get(issuer.metadata_url()).send()).await;
    let _ = bounded(http().get(issuer.jwks_uri()).send()).await;
    let _ = bounded(http().get(format!("{}/nope", issuer.issuer())).send()).await;
    assert_eq!(
        [
            issuer.authorize_hits(),
            issuer.token_hits(),
            issuer.registration_hits(),
            issuer.metadata_hits(),
            issuer.jwks_hits(),
            issuer.other_hits(),
        ],
        [1, 1, 1, 1, 1, 1]
    );
    assert_eq!(issuer.total_hits(), 6);
}
