//! Hostile claims.

use super::*;

// Claims
// ---------------------------------------------------------------------------

// RFC 7519 section 4.1.4; RFC 9068 section 4: `exp` is required, numeric,
// in the future; and (our policy) not absurdly far: a configurable maximum
// lifetime.
#[tokio::test]
async fn exp_missing_past_non_numeric_or_absurd_is_refused() {
    let rig = Rig::start(|b| b).await;
    let t = now();
    let cases: [(&str, Value, &str); 9] = [
        ("missing", Value::Null, "invalid_claims"),
        ("past", json!(t - 3600), "token_expired"),
        ("past beyond leeway", json!(t - 61), "token_expired"),
        ("zero", json!(0), "token_expired"),
        ("string", json!((t + 300).to_string()), "invalid_claims"),
        ("negative", json!(-1), "invalid_claims"),
        ("boolean", json!(true), "invalid_claims"),
        (
            "ten years",
            json!(t + 10 * 365 * 86_400),
            "token_lifetime_too_long",
        ),
        (
            "year 33658",
            json!(999_999_999_999i64),
            "token_lifetime_too_long",
        ),
    ];
    for (name, exp, reason) in cases {
        let outcome = rig.send(&rig.token().claim("exp", exp).sign()).await;
        assert_invalid_token(&outcome, reason, name);
    }
    // exp - iat beyond the maximum, even if exp itself is near.
    let outcome = rig
        .send(
            &rig.token()
                .issued_at(t - 3 * 86_400)
                .expires_at(t + 60)
                .sign(),
        )
        .await;
    assert_invalid_token(&outcome, "token_lifetime_too_long", "old iat");
    // `exp: null` (only expressible as raw JSON).
    let claims = format!(
        r#"{{"iss":"{}","aud":"{}","sub":"a","exp":null}}"#,
        rig.issuer.issuer(),
        rig.resource
    );
    let token = rig
        .issuer
        .try_sign_raw(header_json(&rig).as_bytes(), claims.as_bytes())
        .unwrap();
    assert_invalid_token(&rig.send(&token).await, "invalid_claims", "null");
    assert_eq!(rig.issuer.total_hits(), 0);
    // Within the leeway (default 60 s) an expired-by-a-little token passes.
    let outcome = rig
        .send(&rig.token().claim("exp", json!(t - 20)).sign())
        .await;
    assert_eq!(outcome.status, 200, "{outcome:?}");
}

// Our policy (issue 4): the maximum lifetime is configurable.
#[tokio::test]
async fn maximum_token_lifetime_is_configurable() {
    let rig = Rig::start(|b| b.max_token_lifetime(Duration::from_secs(3600))).await;
    let long = rig.token().expires_in(Duration::from_secs(2 * 3600)).sign();
    assert_invalid_token(&rig.send(&long).await, "token_lifetime_too_long", "2 h");
    let ok = rig.token().expires_in(Duration::from_secs(50 * 60)).sign();
    assert_eq!(rig.send(&ok).await.status, 200);
    // The default (24 h) accepts a 2-hour token and refuses a 25-hour one.
    let rig = Rig::start(|b| b).await;
    let two_hours = rig.token().expires_in(Duration::from_secs(2 * 3600)).sign();
    assert_eq!(rig.send(&two_hours).await.status, 200);
    let day_plus = rig
        .token()
        .expires_in(Duration::from_secs(25 * 3600))
        .sign();
    assert_invalid_token(
        &rig.send(&day_plus).await,
        "token_lifetime_too_long",
        "25 h",
    );
    assert!(
        mcp_oauth2::AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://rs.example/mcp")
            .max_token_lifetime(Duration::ZERO)
            .build()
            .is_err()
    );
}

// RFC 7519 sections 4.1.5 and 4.1.6: `nbf` and `iat` in the future beyond
// the leeway are refused; within it they pass.
#[tokio::test]
async fn nbf_or_iat_in_the_future_beyond_leeway_is_refused() {
    let rig = Rig::start(|b| b.leeway(Duration::from_secs(30))).await;
    let t = now();
    let cases = [
        ("nbf +10 min", rig.token().not_before(t + 600).sign()),
        ("nbf +31 s", rig.token().not_before(t + 45).sign()),
        (
            "iat +10 min",
            rig.token().issued_at(t + 600).expires_at(t + 900).sign(),
        ),
    ];
    for (name, token) in cases {
        assert_invalid_token(&rig.send(&token).await, "token_not_yet_valid", name);
    }
    for (name, value) in [("nbf", json!("soon")), ("iat", json!([1]))] {
        let token = rig.token().claim(name, value).sign();
        assert_invalid_token(&rig.send(&token).await, "invalid_claims", name);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    let ok = rig.token().not_before(t + 10).sign();
    assert_eq!(rig.send(&ok).await.status, 200);
}

// RFC 8725 section 3.8; RFC 9068 section 4; RFC 8414 section 3.3: `iss`
// equals a configured issuer exactly. An unknown issuer never triggers a
// fetch (there is no key set to fetch for it).
#[tokio::test]
async fn iss_missing_array_other_case_or_trailing_slash_is_refused() {
    let rig = Rig::start(|b| b).await;
    let ours = rig.issuer.issuer().to_owned();
    let cases = [
        ("missing", Value::Null),
        ("array", json!([ours.clone()])),
        ("upper case", json!(ours.to_uppercase())),
        ("scheme case", json!(ours.replacen("http", "HTTP", 1))),
        ("trailing slash", json!(format!("{ours}/"))),
        ("path", json!(format!("{ours}/tenant"))),
        ("prefix", json!(&ours[..ours.len() - 1])),
        ("other", json!("https://evil.example")),
        ("number", json!(1)),
        ("empty", json!("")),
    ];
    for (name, iss) in cases {
        let outcome = rig.send(&rig.token().claim("iss", iss).sign()).await;
        assert_invalid_token(&outcome, "invalid_issuer", name);
    }
    assert_eq!(
        rig.issuer.total_hits(),
        0,
        "an unknown iss fetched something"
    );
}

// RFC 8707 section 2; RFC 9068 section 4; RFC 8725 section 3.9; MCP "Token
// Audience Binding": `aud` contains this resource exactly; never by prefix,
// suffix, parent or path case (MCP "Canonical Server URI": scheme and host
// case are insignificant).
#[tokio::test]
async fn aud_edge_cases_are_refused() {
    let rig = Rig::start(|b| b).await;
    let r = rig.resource.clone();
    let origin = r.trim_end_matches("/mcp").to_owned();
    let cases = [
        ("missing", Value::Null),
        ("empty string", json!("")),
        ("empty array", json!([])),
        ("number", json!(1)),
        ("object", json!({ "aud": r.clone() })),
        ("array of numbers", json!([1, 2])),
        ("array with null", json!([null])),
        ("ours plus a number", json!([r.clone(), 5])),
        ("ours nested", json!([[r.clone()]])),
        ("parent", json!(origin.clone())),
        ("parent slash", json!(format!("{origin}/"))),
        ("trailing slash", json!(format!("{r}/"))),
        ("prefix", json!(&r[..r.len() - 1])),
        ("longer name", json!(format!("{r}x"))),
        ("sub path", json!(format!("{r}/tools"))),
        ("query", json!(format!("{r}?x=1"))),
        ("fragment", json!(format!("{r}#x"))),
        ("path case", json!(r.replace("/mcp", "/MCP"))),
        ("other port", json!("http://127.0.0.1:1/mcp")),
        ("another server", json!("https://other.example/mcp")),
        ("space", json!(format!(" {r}"))),
    ];
    for (name, aud) in cases {
        let outcome = rig.send(&rig.token().claim("aud", aud).sign()).await;
        assert_invalid_token(&outcome, "invalid_audience", name);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    // Ours, alone or among others, is accepted.
    for aud in [
        json!(r.clone()),
        json!(["https://other.example/mcp", r.clone()]),
        json!(r.replacen("http", "HTTP", 1)),
    ] {
        let outcome = rig
            .send(&rig.token().claim("aud", aud.clone()).sign())
            .await;
        assert_eq!(outcome.status, 200, "{aud}: {outcome:?}");
    }
}

// RFC 9068 section 2.2: `sub` is required (a non-empty string).
#[tokio::test]
async fn sub_missing_or_not_a_string_is_refused() {
    let rig = Rig::start(|b| b).await;
    for (name, sub) in [
        ("missing", Value::Null),
        ("empty", json!("")),
        ("number", json!(42)),
        ("array", json!(["alice"])),
    ] {
        let outcome = rig.send(&rig.token().claim("sub", sub).sign()).await;
        assert_invalid_token(&outcome, "invalid_claims", name);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 9068 section 2.2: `client_id` is a string; what providers use in
// its place (`azp`, `cid`, `appid`) too. A session is bound to the client,
// so a member of the wrong type must not let a later member, or no client
// at all, stand for it: such a token is refused, as a `sub` of the wrong
// type is.
#[tokio::test]
async fn a_client_id_that_is_not_a_string_is_refused() {
    let rig = Rig::start(|b| b).await;
    let refused = [
        ("number", rig.token().claim("client_id", json!(5)).sign()),
        ("empty", rig.token().claim("client_id", json!("")).sign()),
        (
            "array",
            rig.token().claim("client_id", json!(["app"])).sign(),
        ),
        (
            "object",
            rig.token().claim("client_id", json!({"a": 1})).sign(),
        ),
        (
            "number before azp",
            rig.token()
                .claim("client_id", json!(5))
                .claim("azp", json!("web"))
                .sign(),
        ),
        (
            "azp number",
            without_client_id(&rig).claim("azp", json!(7)).sign(),
        ),
        (
            "cid empty",
            without_client_id(&rig).claim("cid", json!("")).sign(),
        ),
        (
            "appid bool",
            without_client_id(&rig).claim("appid", json!(true)).sign(),
        ),
        // Every client claim is held to the rule, not only the first
        // (found from outside: `azp: ["x"]` passed beside a `client_id`).
        (
            "azp array after client_id",
            rig.token()
                .claim("client_id", json!("app"))
                .claim("azp", json!(["x"]))
                .sign(),
        ),
        (
            "appid empty after azp",
            without_client_id(&rig)
                .claim("azp", json!("web"))
                .claim("appid", json!(""))
                .sign(),
        ),
    ];
    for (name, token) in refused {
        assert_invalid_token(&rig.send(&token).await, "invalid_claims", name);
    }
    for (name, token) in [
        (
            "client_id",
            rig.token().claim("client_id", json!("app")).sign(),
        ),
        (
            "azp",
            without_client_id(&rig).claim("azp", json!("web")).sign(),
        ),
        ("none", without_client_id(&rig).sign()),
        (
            "client_id and azp",
            rig.token()
                .claim("client_id", json!("app"))
                .claim("azp", json!("app"))
                .sign(),
        ),
    ] {
        assert_eq!(rig.send(&token).await.status, 200, "{name}");
    }
}

/// A token of `rig` without the `client_id` the test issuer adds.
fn without_client_id(rig: &Rig) -> mcp_oauth2::testing::TokenBuilder<'_> {
    rig.token().claim("client_id", Value::Null)
}

// RFC 9449 section 7.2 / RFC 8705 section 3 / RFC 7800 section 3: a token
// bound to a key (`cnf`) is useless without the proof of possession;
// presented as a plain Bearer token it is refused.
#[tokio::test]
async fn a_key_bound_token_presented_as_bearer_is_refused() {
    let rig = Rig::start(|b| b).await;
    for cnf in [
        json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }),
        json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
        json!({ "jwk": { "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" } }),
        json!({}),
        json!("garbage"),
    ] {
        let outcome = rig
            .send(&rig.token().claim("cnf", cnf.clone()).sign())
            .await;
        assert_invalid_token(&outcome, "sender_constrained_token", &cnf.to_string());
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// ---------------------------------------------------------------------------

// RFC 6749 section 1.5, OpenID Connect Core section 2: a refresh token or
// an ID token signed by a trusted issuer is not an access token, even when
// its audience names this server (a provider's audience mapper may add it
// to ID tokens too) and the `typ` policy lets `JWT` through, as every
// provider preset does. Keycloak says what a token is in its `typ` claim,
// Cognito and Ory Hydra in `token_use`.
#[tokio::test]
async fn refresh_and_id_tokens_are_not_access_tokens() {
    let rig = Rig::start(|b| b.typ_policy(mcp_oauth2::TypPolicy::AllowJwt)).await;
    let jwt = |name: &str, value: Value| {
        rig.token()
            .header("typ", json!("JWT"))
            .claim(name, value)
            .sign()
    };
    for (case, token) in [
        ("keycloak id token", jwt("typ", json!("ID"))),
        ("keycloak refresh token", jwt("typ", json!("Refresh"))),
        ("keycloak offline token", jwt("typ", json!("offline"))),
        ("cognito id token", jwt("token_use", json!("id"))),
        // An OpenID Connect ID token with nothing else to tell it by.
        (
            "id token with at_hash",
            jwt("at_hash", json!("77QmUPtjPfzWtF2AnpK9RQ")),
        ),
        (
            "id token with c_hash",
            jwt("c_hash", json!("LDktKdoQak3Pk0cnXxCltA")),
        ),
        ("id token with s_hash", jwt("s_hash", json!("x"))),
        (
            "hydra refresh token",
            jwt("token_use", json!("refresh_token")),
        ),
        (
            "refresh token type",
            jwt("token_type", json!("refresh_token")),
        ),
        (
            "at+jwt saying refresh",
            rig.token()
                .claim("token_use", json!("refresh_token"))
                .sign(),
        ),
    ] {
        let outcome = rig.send(&token).await;
        assert_invalid_token(&outcome, "not_an_access_token", case);
    }
    for (case, token) in [
        ("keycloak access token", jwt("typ", json!("Bearer"))),
        ("cognito access token", jwt("token_use", json!("access"))),
        (
            "hydra access token",
            jwt("token_use", json!("access_token")),
        ),
    ] {
        let outcome = rig.send(&token).await;
        assert_eq!(outcome.status, 200, "{case}: {outcome:?}");
    }
}
