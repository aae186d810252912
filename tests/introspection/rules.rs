//! The token rules (audience, scopes, lifetime, issuers, key binding)
//! applied to introspection answers, and hostile answers.

use super::*;

/// Settings for the endpoint at `base` (given, not discovered).
fn settings(base: &str) -> IntrospectionSettings {
    IntrospectionSettings::new("rs:client", "s3cr&t")
        .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap())
}

/// A verifier for the endpoint at `base`, its issuer first, configured by `tweak`.
fn verifier_with(
    base: &str,
    tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
) -> IntrospectionVerifier {
    let config = tweak(
        AuthConfig::builder()
            .issuer(base)
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .unwrap();
    IntrospectionVerifier::new(&config, settings(base)).unwrap()
}

fn answer(e: &Endpoint, token: &str, value: Value) {
    e.answers.lock().unwrap().insert(token.to_owned(), value);
}

// RFC 9449 section 7.2: a key-bound token (`cnf` of any kind, or
// `token_type: DPoP` in the introspection answer, any case) presented as a
// Bearer token is refused, through the real layer: 401 invalid_token with
// the reason `sender_constrained_token`.
#[tokio::test]
async fn key_bound_opaque_token_is_refused_as_bearer() {
    let (e, base) = start_endpoint().await;
    let issuer = TestIssuer::start().await.unwrap();
    let h = Harness::start_with_issuer(issuer, |b| b.introspection(settings(&base))).await;
    let fine = json!({"active": true, "sub": "a", "aud": h.resource, "token_type": "Bearer"});
    answer(&e, "plain", fine.clone());
    let bound = [
        (
            "jkt",
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        ),
        (
            "x5t",
            json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
        ),
        ("empty-cnf", json!({"cnf": {}})),
        ("dpop", json!({"token_type": "DPoP"})),
        ("dpop-lower", json!({"token_type": "dpop"})),
    ];
    for (name, extra) in &bound {
        let mut v = fine.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        answer(&e, name, v);
    }
    let call = |token: &str| {
        let auth = format!("Bearer {token}");
        let h = &h;
        async move {
            h.post(
                &[("authorization", &auth)],
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            )
            .await
        }
    };
    assert_ne!(call("plain").await.status(), 401);
    for (name, _) in &bound {
        let resp = call(name).await;
        assert_eq!(resp.status(), 401, "{name}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{name}: {challenge}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["reason"], "sender_constrained_token", "{name}");
    }
}

// `accept_audience` and the audience rule apply to introspected tokens
// exactly as to JWTs (RFC 8707; the Cognito rule).
#[tokio::test]
async fn introspection_honours_accept_audience_and_the_audience_rule() {
    let (e, base) = start_endpoint().await;
    answer(
        &e,
        "entra",
        json!({"active": true, "sub": "a", "aud": "api://mcp-app"}),
    );
    answer(
        &e,
        "other",
        json!({"active": true, "sub": "a", "aud": "api://other"}),
    );
    let v = verifier_with(&base, |b| b.accept_audience("api://mcp-app"));
    assert_eq!(check(&v, "entra").await.unwrap().subject(), "a");
    assert_eq!(
        check(&v, "other").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
    // Without the setting, the extra audience is not ours.
    let strict = verifier_with(&base, |b| b);
    assert_eq!(
        check(&strict, "entra").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
    // Cognito: no `aud`; `token_use: access` and a listed `client_id`.
    answer(
        &e,
        "cog-ok",
        json!({"active": true, "sub": "a", "token_use": "access", "client_id": "c1"}),
    );
    answer(
        &e,
        "cog-client",
        json!({"active": true, "sub": "a", "token_use": "access", "client_id": "c2"}),
    );
    answer(
        &e,
        "cog-id",
        json!({"active": true, "sub": "a", "token_use": "id", "client_id": "c1"}),
    );
    answer(
        &e,
        "cog-aud",
        json!({"active": true, "sub": "a", "token_use": "access", "client_id": "c1", "aud": "https://else.example"}),
    );
    let cognito = verifier_with(&base, |b| {
        b.audience_rule(AudienceRule::CognitoClientIds(vec!["c1".into()]))
    });
    assert_eq!(
        check(&cognito, "cog-ok").await.unwrap().client_id(),
        Some("c1")
    );
    assert_eq!(
        check(&cognito, "cog-client").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
    assert_eq!(
        check(&cognito, "cog-id").await.err(),
        Some(AuthErrorKind::NotAnAccessToken)
    );
    assert_eq!(
        check(&cognito, "cog-aud").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
    // The default rule still needs `aud`.
    assert_eq!(
        check(&strict, "cog-ok").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
}

// `scope_claims` (and the default `scope`, else `scp`) apply to
// introspected tokens as to JWTs; a scope claim of another shape is a 401.
#[tokio::test]
async fn introspection_honours_scope_claims() {
    let (e, base) = start_endpoint().await;
    answer(
        &e,
        "perm",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "scope": "basic", "permissions": ["notes:read", "notes:write"]}),
    );
    answer(
        &e,
        "scp",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "scp": ["notes:read"]}),
    );
    answer(
        &e,
        "bad-scope",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "scope": ["notes:read"]}),
    );
    let by_path = verifier_with(&base, |b| b.scope_claims(["permissions"]));
    let ctx = check(&by_path, "perm").await.unwrap();
    assert!(ctx.has_scope("notes:write") && !ctx.has_scope("basic"));
    let default = verifier_with(&base, |b| b);
    let ctx = check(&default, "perm").await.unwrap();
    assert!(ctx.has_scope("basic") && !ctx.has_scope("notes:write"));
    assert!(
        check(&default, "scp")
            .await
            .unwrap()
            .has_scope("notes:read")
    );
    assert_eq!(
        check(&default, "bad-scope").await.err(),
        Some(AuthErrorKind::InvalidClaims)
    );
}

// The token-lifetime cap applies to introspected tokens: by `exp - now`
// and by `exp - iat`.
#[tokio::test]
async fn introspection_honours_the_lifetime_cap() {
    let (e, base) = start_endpoint().await;
    let n = now();
    answer(
        &e,
        "ok",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iat": n - 10, "exp": n + 3000}),
    );
    answer(
        &e,
        "far",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": n + 7200}),
    );
    answer(
        &e,
        "long",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iat": n - 5000, "exp": n + 100}),
    );
    let v = verifier_with(&base, |b| b.max_token_lifetime(Duration::from_secs(3600)));
    assert!(check(&v, "ok").await.is_ok());
    for token in ["far", "long"] {
        assert_eq!(
            check(&v, token).await.err(),
            Some(AuthErrorKind::LifetimeTooLong),
            "{token}"
        );
    }
}

// Introspection trusts every configured issuer: an answer whose `iss` is
// the second one is accepted, and the context names it.
#[tokio::test]
async fn answer_naming_the_second_configured_issuer_is_accepted() {
    let (e, base) = start_endpoint().await;
    let second = "https://second.example";
    answer(
        &e,
        "t",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iss": second}),
    );
    answer(
        &e,
        "stranger",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iss": "https://third.example"}),
    );
    let v = verifier_with(&base, |b| b.issuer(second));
    assert_eq!(check(&v, "t").await.unwrap().issuer(), second);
    assert_eq!(
        check(&v, "stranger").await.err(),
        Some(AuthErrorKind::InvalidIssuer)
    );
}

// Multi-tenant issuers only (no fixed issuer): the shared endpoint, given
// explicitly (there is no single issuer to discover it from), vouches for
// the tenants the template accepts, by the same rules as a JWT: an answer
// naming an allowlisted tenant's issuer is accepted with that tenant, one
// of another tenant or with a tenant claim that disagrees is refused, and
// an answer naming no issuer cannot be placed in a tenant: refused. Without
// an endpoint the configuration is refused at build.
#[tokio::test]
async fn tenant_issuers_alone_are_introspected_through_an_explicit_endpoint() {
    use mcp_oauth2::TenantIssuer;
    let (e, base) = start_endpoint().await;
    let iss = |tenant: &str| format!("{base}/realms/{tenant}");
    let good =
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iss": iss("acme"), "org": "acme"});
    answer(&e, "acme", good);
    answer(
        &e,
        "globex",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iss": iss("globex"), "org": "globex"}),
    );
    answer(
        &e,
        "claim",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iss": iss("acme"), "org": "initech"}),
    );
    answer(
        &e,
        "no-iss",
        json!({"active": true, "sub": "a", "aud": RESOURCE}),
    );
    let builder = || {
        AuthConfig::builder()
            .tenant_issuer(
                TenantIssuer::new(format!("{base}/realms/{{tenant}}"))
                    .tenants(["acme"])
                    .tenant_claim("org"),
            )
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true)
    };
    let config = builder().introspection(settings(&base)).build().unwrap();
    let v = IntrospectionVerifier::from_config(&config).unwrap();
    let ctx = check(&v, "acme").await.unwrap();
    assert_eq!((ctx.issuer(), ctx.tenant()), (&*iss("acme"), Some("acme")));
    assert_eq!(
        check(&v, "globex").await.err(),
        Some(AuthErrorKind::TenantNotAllowed)
    );
    assert_eq!(
        check(&v, "claim").await.err(),
        Some(AuthErrorKind::TenantMismatch)
    );
    assert_eq!(
        check(&v, "no-iss").await.err(),
        Some(AuthErrorKind::InvalidIssuer)
    );
    let err = builder()
        .introspection(IntrospectionSettings::new("rs:client", "s3cr&t"))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "introspection_endpoint", "{err}");
}

// The shared settings without an endpoint discover the first issuer's: that
// is the first issuer's own endpoint, which vouches for it alone (found from
// outside in round 2: issuer A's endpoint answered `iss` B with B's user as
// `sub`, and the caller was that user of B). Given explicitly, the shared
// endpoint vouches for every configured issuer, as documented.
#[tokio::test]
async fn a_discovered_shared_endpoint_vouches_for_its_own_issuer_only() {
    let (e1, base1) = start_endpoint().await;
    let (_e2, base2) = start_endpoint().await;
    answer(
        &e1,
        "as-1",
        json!({"active": true, "sub": "one", "aud": RESOURCE, "iss": base1}),
    );
    answer(
        &e1,
        "no-iss",
        json!({"active": true, "sub": "anon", "aud": RESOURCE}),
    );
    answer(
        &e1,
        "as-2",
        json!({"active": true, "sub": "victim", "aud": RESOURCE, "iss": base2}),
    );
    let build = |settings: IntrospectionSettings| {
        let config = AuthConfig::builder()
            .issuer(&base1)
            .issuer(&base2)
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true)
            .introspection(settings)
            .build()
            .unwrap();
        IntrospectionVerifier::from_config(&config).unwrap()
    };
    let discovered = build(IntrospectionSettings::new("rs:client", "s3cr&t"));
    let ctx = check(&discovered, "as-1").await.unwrap();
    assert_eq!((ctx.subject(), ctx.issuer()), ("one", base1.as_str()));
    let ctx = check(&discovered, "no-iss").await.unwrap();
    assert_eq!((ctx.subject(), ctx.issuer()), ("anon", base1.as_str()));
    assert_eq!(
        check(&discovered, "as-2").await.err(),
        Some(AuthErrorKind::InvalidIssuer),
        "issuer 1's endpoint vouched for a user of issuer 2"
    );
    let given = build(settings(&base1));
    let ctx = check(&given, "as-2").await.unwrap();
    assert_eq!((ctx.subject(), ctx.issuer()), ("victim", base2.as_str()));
}

// Settings per issuer: each issuer's endpoint is asked (discovered from
// that issuer), vouches only for its own issuer, and the first `active`
// answer decides; the shared `introspection(..)` keeps working beside them.
#[tokio::test]
async fn per_issuer_introspection_settings() {
    let (e1, base1) = start_endpoint().await;
    let (e2, base2) = start_endpoint().await;
    answer(
        &e1,
        "from-1",
        json!({"active": true, "sub": "one", "aud": RESOURCE}),
    );
    answer(
        &e2,
        "from-2",
        json!({"active": true, "sub": "two", "aud": RESOURCE}),
    );
    // Endpoint 1 vouching for a token of issuer 2: not its to vouch for.
    answer(
        &e1,
        "1-claims-2",
        json!({"active": true, "sub": "x", "aud": RESOURCE, "iss": base2}),
    );
    let config = AuthConfig::builder()
        .issuer(&base1)
        .issuer(&base2)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .issuer_introspection(&base1, IntrospectionSettings::new("rs:client", "s3cr&t"))
        .issuer_introspection(
            &base2,
            IntrospectionSettings::new("rs:client", "s3cr&t")
                .auth_method(ClientAuthMethod::ClientSecretPost),
        )
        .build()
        .unwrap();
    assert!(config.issuers()[1].introspection().is_some());
    let v = IntrospectionVerifier::from_config(&config).unwrap();
    let ctx = check(&v, "from-1").await.unwrap();
    assert_eq!((ctx.subject(), ctx.issuer()), ("one", base1.as_str()));
    let ctx = check(&v, "from-2").await.unwrap();
    assert_eq!((ctx.subject(), ctx.issuer()), ("two", base2.as_str()));
    assert_eq!(
        check(&v, "1-claims-2").await.err(),
        Some(AuthErrorKind::InvalidIssuer)
    );
    assert_eq!(
        check(&v, "nobody").await.err(),
        Some(AuthErrorKind::TokenInactive)
    );
    assert_eq!(*e2.seen_auth.lock().unwrap(), ["post", "post"]);
    // Unknown issuer or twice for one issuer: a configuration error.
    let build = |b: AuthConfigBuilder| {
        b.resource(RESOURCE)
            .allow_insecure_http_for_loopback(true)
            .build()
            .err()
            .map(|e| e.to_string())
    };
    let s = || IntrospectionSettings::new("rs:client", "s3cr&t");
    assert!(
        build(
            AuthConfig::builder()
                .issuer(&base1)
                .issuer_introspection("https://x.example", s())
        )
        .is_some()
    );
    assert!(
        build(
            AuthConfig::builder()
                .issuer(&base1)
                .issuer_introspection(&base1, s())
                .issuer_introspection(&base1, s())
        )
        .is_some()
    );
    // Through the real layer: the per-issuer settings alone turn introspection on.
    let issuer = TestIssuer::start().await.unwrap();
    let iss = issuer.issuer().to_owned();
    let h =
        Harness::start_with_issuer(issuer, |b| b.issuer_introspection(iss, settings(&base2))).await;
    answer(
        &e2,
        "layer",
        json!({"active": true, "sub": "lee", "aud": h.resource}),
    );
    let client = bounded(legacy_client(&h.resource, "layer")).await.unwrap();
    assert_eq!(
        bounded(call_text(&client, "whoami_arg")).await.unwrap(),
        "lee"
    );
    client.cancel().await.unwrap();
}

// An absurd `exp` from the endpoint (1e300, u64::MAX, negative, not an
// integer, not a number) is refused with a precise reason, never panics,
// and leaves no lookup behind: concurrent and later requests for that
// token get a proper answer, never 503.
#[tokio::test]
async fn absurd_exp_neither_panics_nor_leaves_the_lookup_behind() {
    let (e, base) = start_endpoint().await;
    let cases = [
        ("huge-float", json!(1e300), AuthErrorKind::InvalidClaims),
        ("u64-max", json!(u64::MAX), AuthErrorKind::LifetimeTooLong),
        ("i64-max", json!(i64::MAX), AuthErrorKind::LifetimeTooLong),
        ("negative", json!(-5), AuthErrorKind::InvalidClaims),
        ("fraction-past", json!(1.5), AuthErrorKind::Expired),
        ("string", json!("soon"), AuthErrorKind::InvalidClaims),
        ("null", json!(null), AuthErrorKind::InvalidClaims),
    ];
    let config = AuthConfig::builder()
        .issuer(&base)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let v = IntrospectionVerifier::new(
        &config,
        settings(&base)
            .negative_ttl(Duration::ZERO)
            .cache_ttl(Duration::MAX),
    )
    .unwrap();
    e.delay_ms.store(50, Ordering::SeqCst);
    for (token, exp, kind) in &cases {
        answer(
            &e,
            token,
            json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": exp}),
        );
        let results = futures_util::future::join_all((0..5).map(|_| check(&v, token))).await;
        for r in results {
            assert_eq!(r.err(), Some(*kind), "{token}");
        }
        // The endpoint changes its mind: the next request asks again and
        // gets the new answer (no lookup was left behind).
        answer(
            &e,
            token,
            json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() + 60}),
        );
        assert!(check(&v, token).await.is_ok(), "{token}");
        // A TTL too large to add to the clock disables caching, no panic.
        assert!(check(&v, token).await.is_ok(), "{token}");
    }
    // The context's expiry never overflows `SystemTime` either.
    let ctx = mcp_oauth2::AuthContext::builder("i", "s")
        .expires_at_unix(u64::MAX)
        .build();
    assert!(ctx.expires_at().is_some());
}

// A lookup whose caller goes away hands over to a request waiting for the
// same token: single flight never leaves a placeholder behind.
#[tokio::test]
async fn a_cancelled_lookup_hands_over_to_a_waiting_request() {
    let (e, base) = start_endpoint().await;
    answer(
        &e,
        "t",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() + 300}),
    );
    e.delay_ms.store(1000, Ordering::SeqCst);
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, false);
    let first = {
        let v = v.clone();
        tokio::spawn(async move { check(&v, "t").await.map(|c| c.subject().to_owned()) })
    };
    // The first request's lookup is in flight (it holds the placeholder).
    bounded(async {
        while e.hits.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let second = {
        let v = v.clone();
        tokio::spawn(async move { check(&v, "t").await.map(|c| c.subject().to_owned()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    assert_eq!(second.await.unwrap(), Ok("a".to_owned()));
    assert_eq!(e.hits.load(Ordering::SeqCst), 2);
    assert!(check(&v, "t").await.is_ok());
    assert_eq!(e.hits.load(Ordering::SeqCst), 2, "cached");
}

// MCP "Canonical Server URI" / RFC 8707 section 2 for introspected tokens:
// scheme and host case, and a root resource's trailing slash, are
// insignificant; nothing else is.
#[tokio::test]
async fn canonical_uri_audience_in_introspection() {
    let (e, base) = start_endpoint().await;
    answer(
        &e,
        "upper",
        json!({"active": true, "sub": "a", "aud": "HTTPS://MCP.Example.COM/mcp"}),
    );
    answer(
        &e,
        "slash",
        json!({"active": true, "sub": "a", "aud": "https://mcp.example.com/mcp/"}),
    );
    answer(
        &e,
        "root-slash",
        json!({"active": true, "sub": "a", "aud": "https://mcp.example.com/"}),
    );
    answer(
        &e,
        "root",
        json!({"active": true, "sub": "a", "aud": "https://mcp.example.com"}),
    );
    let v = verifier_with(&base, |b| b);
    assert!(check(&v, "upper").await.is_ok());
    for token in ["slash", "root-slash", "root"] {
        assert_eq!(
            check(&v, token).await.err(),
            Some(AuthErrorKind::InvalidAudience),
            "{token}"
        );
    }
    let root = verifier_with(&base, |b| b.resource("https://mcp.example.com"));
    for token in ["root-slash", "root"] {
        assert!(check(&root, token).await.is_ok(), "{token}");
    }
    assert_eq!(
        check(&root, "upper").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
}

// The answer is read with the strict reader: a repeated member name (which
// two parsers could read differently) is refused; a body that is not a
// JSON object fails closed as unavailable.
#[tokio::test]
async fn repeated_member_names_in_an_answer_are_refused() {
    let (e, base) = start_endpoint().await;
    let raw = format!(r#"{{"active":true,"sub":"a","aud":"{RESOURCE}","sub":"admin"}}"#);
    e.raw.lock().unwrap().insert("dup".into(), raw);
    e.raw.lock().unwrap().insert("array".into(), "[1]".into());
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, false);
    assert_eq!(
        check(&v, "dup").await.err(),
        Some(AuthErrorKind::DuplicateMember)
    );
    assert_eq!(
        check(&v, "array").await.err(),
        Some(AuthErrorKind::IntrospectionUnavailable)
    );
}

// RFC 7662 section 2.2: `sub` is optional; a token of the client
// credentials grant is about its client. Without either, or with a
// `token_type` that is not a string, the answer is refused.
#[tokio::test]
async fn subject_falls_back_to_the_client_and_claims_are_typed() {
    let (e, base) = start_endpoint().await;
    let v = verifier_with(&base, |b| b);
    let exp = now() + 300;
    answer(
        &e,
        "client-credentials",
        json!({"active": true, "client_id": "svc-1", "aud": RESOURCE, "exp": exp}),
    );
    let ctx = check(&v, "client-credentials").await.unwrap();
    assert_eq!(ctx.subject(), "svc-1");
    assert_eq!(ctx.client_id(), Some("svc-1"));
    for (token, value) in [
        (
            "nobody",
            json!({"active": true, "aud": RESOURCE, "exp": exp}),
        ),
        (
            "empty-client",
            json!({"active": true, "client_id": "", "aud": RESOURCE, "exp": exp}),
        ),
        (
            "empty-sub",
            json!({"active": true, "sub": "", "client_id": "c", "aud": RESOURCE, "exp": exp}),
        ),
        (
            "numeric-type",
            json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": exp, "token_type": 5}),
        ),
    ] {
        answer(&e, token, value);
        assert_eq!(
            check(&v, token).await.map(|c| c.subject().to_owned()),
            Err(AuthErrorKind::InvalidClaims),
            "{token}"
        );
    }
}

// RFC 9449 sections 6.2 and 7.1: an introspected DPoP-bound token
// (`cnf.jkt`, `token_type: DPoP`) is accepted with a proof of its key, and
// refused with another key's proof (`dpop_key_mismatch`).
#[tokio::test]
async fn dpop_bound_opaque_token_is_accepted_with_its_proof() {
    use mcp_oauth2::testing::DpopClient;
    let (e, base) = start_endpoint().await;
    let issuer = TestIssuer::start().await.unwrap();
    let h = Harness::start_with_issuer(issuer, |b| b.introspection(settings(&base))).await;
    let client = DpopClient::new();
    answer(
        &e,
        "opaque-dpop",
        json!({"active": true, "sub": "a", "aud": h.resource, "token_type": "DPoP",
               "cnf": {"jkt": client.thumbprint()}}),
    );
    let call = |proof: String| {
        let h = &h;
        async move {
            h.post(
                &[("authorization", "DPoP opaque-dpop"), ("dpop", &proof)],
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            )
            .await
        }
    };
    let resp = call(client.proof("POST", &h.resource, Some("opaque-dpop"))).await;
    // Admitted (rmcp answers the bare `tools/list` itself).
    assert_ne!(resp.status(), 401);
    let other = DpopClient::new();
    let resp = call(other.proof("POST", &h.resource, Some("opaque-dpop"))).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert_eq!(body["reason"], "dpop_key_mismatch");
}

// RFC 7662 section 2.2 and RFC 6749 section 1.5: an introspection endpoint
// may answer `active: true` for a refresh token (Ory Hydra says so with
// `token_use: refresh_token`, others with `token_type: refresh_token`,
// Keycloak with the claim `typ: Refresh`). A refresh token is never an
// access token: presented as one, it is refused (`not_an_access_token`),
// whatever it says about its audience. Access tokens that say so are
// accepted.
#[tokio::test]
async fn refresh_and_id_tokens_are_not_access_tokens() {
    let (e, base) = start_endpoint().await;
    let fine = json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() + 300});
    let with = |extra: Value| {
        let mut v = fine.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let refused = [
        ("hydra-refresh", json!({"token_use": "refresh_token"})),
        ("token-type-refresh", json!({"token_type": "refresh_token"})),
        (
            "token-type-refresh-case",
            json!({"token_type": "Refresh_Token"}),
        ),
        ("keycloak-refresh", json!({"typ": "Refresh"})),
        ("keycloak-offline", json!({"typ": "Offline"})),
        ("keycloak-id", json!({"typ": "ID"})),
        ("cognito-id", json!({"token_use": "id"})),
        ("token-type-id", json!({"token_type": "id_token"})),
        ("oidc-at-hash", json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"})),
        ("oidc-c-hash", json!({"c_hash": "LDktKdoQak3Pk0cnXxCltA"})),
    ];
    let accepted = [
        ("plain", json!({})),
        ("hydra-access", json!({"token_use": "access_token"})),
        ("cognito-access", json!({"token_use": "access"})),
        ("bearer", json!({"token_type": "Bearer"})),
        ("keycloak-bearer", json!({"typ": "Bearer"})),
    ];
    for (name, extra) in refused.iter().chain(&accepted) {
        answer(&e, name, with(extra.clone()));
    }
    let v = verifier_with(&base, |b| b);
    for (name, _) in &accepted {
        assert!(check(&v, name).await.is_ok(), "{name}");
    }
    for (name, _) in &refused {
        assert_eq!(
            check(&v, name).await.err(),
            Some(AuthErrorKind::NotAnAccessToken),
            "{name}"
        );
    }
}
