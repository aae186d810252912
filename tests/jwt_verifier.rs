//! The JWT verifier against a real issuer on loopback: claim policy, key
//! selection, discovery, caching and rotation. Counts key-server hits.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use std::time::Duration;

use fixture::{now, verify};
use mcp_oauth2::testing::{SigningAlg, TestIssuer};
use mcp_oauth2::{
    Algorithm, AuthConfig, AuthConfigBuilder, AuthErrorKind, BearerToken, JwtVerifier,
    TokenVerifier, TypPolicy,
};
use serde_json::json;

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn config(
    issuer: &TestIssuer,
    tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
) -> AuthConfig {
    tweak(
        AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .unwrap()
}

#[tokio::test]
async fn accepts_each_algorithm() {
    for alg in [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa] {
        let issuer = TestIssuer::start_with_alg(alg).await.unwrap();
        let v = JwtVerifier::new(&config(&issuer, |b| b)).unwrap();
        let ctx = verify(&v, &issuer.token().subject("s").audience(RESOURCE).sign())
            .await
            .unwrap();
        assert_eq!(ctx.subject(), "s", "{alg}");
    }
}

// RFC 8707 / MCP "Token Audience Binding": aud must contain our resource
// exactly, after the canonicalisation of MCP "Canonical Server URI" (scheme
// and host case only; see canonical_uri_audience_* for the root slash).
#[tokio::test]
async fn audience_must_contain_the_resource_exactly() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| b)).unwrap();
    let ok = [
        json!(RESOURCE),
        json!(["https://other.example.com", RESOURCE]),
        json!("HTTPS://MCP.EXAMPLE.COM/mcp"),
    ];
    for aud in ok {
        assert!(
            verify(&v, &issuer.token().claim("aud", aud.clone()).sign())
                .await
                .is_ok(),
            "{aud}"
        );
    }
    let bad = [
        json!("https://mcp.example.com"),
        json!("https://mcp.example.com/mcp/"),
        json!("https://mcp.example.com/mcpx"),
        json!("https://mcp.example.com/mcp/sub"),
        json!("https://mcp.example.com/MCP"),
        json!("https://mcp.example.com:443/mcp"),
        json!("https://evil.example.com/?https://mcp.example.com/mcp"),
        json!([]),
        json!(["https://other.example.com"]),
        json!([RESOURCE, 5]),
        json!(5),
        json!(null),
    ];
    for aud in bad {
        assert_eq!(
            verify(&v, &issuer.token().claim("aud", aud.clone()).sign())
                .await
                .err(),
            Some(AuthErrorKind::InvalidAudience),
            "{aud}"
        );
    }
}

// MCP "Canonical Server URI" / RFC 8707 section 2: a root resource is named
// by `https://h` and by `https://h/` (the TypeScript SDK's form), in any
// scheme/host case; below the root a trailing slash names another resource.
#[tokio::test]
async fn canonical_uri_audience_root_slash_and_case() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| b.resource("https://mcp.example.com/"))).unwrap();
    for aud in [
        "https://mcp.example.com",
        "https://mcp.example.com/",
        "HTTPS://Mcp.Example.Com/",
    ] {
        let token = issuer.token().claim("aud", json!(aud)).sign();
        assert!(verify(&v, &token).await.is_ok(), "{aud}");
    }
    for aud in [
        "https://mcp.example.com//",
        "https://mcp.example.com/mcp",
        "https://mcp.example.co",
        "https://mcp.example.com.evil",
    ] {
        let token = issuer.token().claim("aud", json!(aud)).sign();
        assert_eq!(
            verify(&v, &token).await.err(),
            Some(AuthErrorKind::InvalidAudience),
            "{aud}"
        );
    }
}

// MCP "Token Validation": only configured issuers, compared exactly; no fetch for strangers.
#[tokio::test]
async fn issuer_must_match_exactly_without_fetching() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| b)).unwrap();
    let iss = issuer.issuer().to_owned();
    for bad in [
        json!(format!("{iss}/")),
        json!(iss.to_uppercase()),
        json!([iss.clone()]),
        json!("https://evil.example.com"),
        json!(null),
    ] {
        assert_eq!(
            verify(
                &v,
                &issuer
                    .token()
                    .audience(RESOURCE)
                    .claim("iss", bad.clone())
                    .sign()
            )
            .await
            .err(),
            Some(AuthErrorKind::InvalidIssuer),
            "{bad}"
        );
    }
    assert_eq!(
        issuer.jwks_hits() + issuer.metadata_hits(),
        0,
        "an unknown issuer must not cause a fetch"
    );
}

// RFC 7519 sections 4.1.4, 4.1.5, 4.1.6 with leeway; RFC 9068 section 2.2: exp and sub required.
#[tokio::test]
async fn time_claims_and_required_claims() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| b.leeway(Duration::from_secs(30)))).unwrap();
    let t = || issuer.token().audience(RESOURCE);
    let n = now();
    assert!(
        verify(&v, &t().expires_at(n - 10).sign()).await.is_ok(),
        "within leeway"
    );
    assert_eq!(
        verify(&v, &t().expires_at(n - 60).sign()).await.err(),
        Some(AuthErrorKind::Expired)
    );
    assert_eq!(
        verify(&v, &t().claim("exp", json!(null)).sign())
            .await
            .err(),
        Some(AuthErrorKind::InvalidClaims)
    );
    assert_eq!(
        verify(&v, &t().claim("exp", json!("soon")).sign())
            .await
            .err(),
        Some(AuthErrorKind::InvalidClaims)
    );
    assert!(verify(&v, &t().not_before(n + 10).sign()).await.is_ok());
    assert_eq!(
        verify(&v, &t().not_before(n + 120).sign()).await.err(),
        Some(AuthErrorKind::NotYetValid)
    );
    assert_eq!(
        verify(&v, &t().claim("iat", json!(n + 120)).sign())
            .await
            .err(),
        Some(AuthErrorKind::NotYetValid)
    );
    assert_eq!(
        verify(&v, &t().claim("sub", json!(null)).sign())
            .await
            .err(),
        Some(AuthErrorKind::InvalidClaims)
    );
    assert_eq!(
        verify(&v, &t().claim("sub", json!(42)).sign()).await.err(),
        Some(AuthErrorKind::InvalidClaims)
    );
}

// RFC 8725 section 3.1: the allowlist comes from configuration, never the token.
#[tokio::test]
async fn algorithm_allowlist_and_typ_policy() {
    let issuer = TestIssuer::start().await.unwrap();
    let es_only = JwtVerifier::new(&config(&issuer, |b| b.algorithms([Algorithm::ES256]))).unwrap();
    let token = issuer.token().audience(RESOURCE).sign();
    assert_eq!(
        verify(&es_only, &token).await.err(),
        Some(AuthErrorKind::DisallowedAlgorithm)
    );
    let v = JwtVerifier::new(&config(&issuer, |b| b)).unwrap();
    for alg in ["none", "None", "HS256", "rs256", ""] {
        let token = issuer
            .token()
            .audience(RESOURCE)
            .header("alg", json!(alg))
            .sign();
        assert_eq!(
            verify(&v, &token).await.err(),
            Some(AuthErrorKind::DisallowedAlgorithm),
            "{alg}"
        );
    }
    // RFC 9068 section 2.1: typ at+jwt by default.
    let jwt_typ = issuer
        .token()
        .audience(RESOURCE)
        .header("typ", json!("JWT"))
        .sign();
    let no_typ = issuer
        .token()
        .audience(RESOURCE)
        .header("typ", json!(null))
        .sign();
    assert_eq!(
        verify(&v, &jwt_typ).await.err(),
        Some(AuthErrorKind::InvalidType)
    );
    assert_eq!(
        verify(&v, &no_typ).await.err(),
        Some(AuthErrorKind::InvalidType)
    );
    let at = issuer
        .token()
        .audience(RESOURCE)
        .header("typ", json!("application/at+jwt"))
        .sign();
    assert!(verify(&v, &at).await.is_ok());
    let lenient =
        JwtVerifier::new(&config(&issuer, |b| b.typ_policy(TypPolicy::AllowJwt))).unwrap();
    assert!(verify(&lenient, &jwt_typ).await.is_ok());
    assert!(verify(&lenient, &no_typ).await.is_ok());
    let id_token = issuer
        .token()
        .audience(RESOURCE)
        .header("typ", json!("id_token+jwt"))
        .sign();
    assert_eq!(
        verify(&lenient, &id_token).await.err(),
        Some(AuthErrorKind::InvalidType)
    );
}

// RFC 7515 section 4 / RFC 8725 sections 2.1, 3.1: the verifier keeps the
// outcome of the last header that passed and reuses it for the same header
// text only. Any other header is decoded and checked in full, in a verifier
// that has just accepted a token, and the kept header never stands in for
// the rest of a token.
#[tokio::test]
async fn a_header_seen_before_is_reused_for_the_same_text_only() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| b)).unwrap();
    let good = || issuer.token().audience(RESOURCE).sign();
    assert!(verify(&v, &good()).await.is_ok());
    let refused = [
        ("alg", json!("none"), AuthErrorKind::DisallowedAlgorithm),
        ("alg", json!("HS256"), AuthErrorKind::DisallowedAlgorithm),
        ("crit", json!(["exp"]), AuthErrorKind::UnsupportedHeader),
        ("b64", json!(false), AuthErrorKind::UnsupportedHeader),
        ("kid", json!(7), AuthErrorKind::UnsupportedHeader),
        ("typ", json!("JWT"), AuthErrorKind::InvalidType),
        ("typ", json!(["at+jwt"]), AuthErrorKind::InvalidType),
    ];
    for (name, value, kind) in refused {
        let token = issuer
            .token()
            .audience(RESOURCE)
            .header(name, value.clone())
            .sign();
        assert_eq!(
            verify(&v, &token).await.err(),
            Some(kind),
            "{name}: {value}"
        );
        // The header accepted before is still accepted, and still refused
        // under the other header.
        assert!(verify(&v, &good()).await.is_ok(), "{name}: {value}");
        assert_eq!(
            verify(&v, &token).await.err(),
            Some(kind),
            "{name}: {value}"
        );
    }
    // A repeated member, and a header that is not base64url JSON, behind a
    // known one.
    let token = good();
    let (header, rest) = token.split_once('.').unwrap();
    let repeated = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","alg":"none"}"#)
    };
    for (bad, kind) in [
        (repeated.as_str(), AuthErrorKind::DuplicateMember),
        ("eyJhbGciOiJSUzI1NiJ9=", AuthErrorKind::MalformedToken),
        ("e30", AuthErrorKind::MalformedToken),
    ] {
        let token = format!("{bad}.{rest}");
        assert_eq!(verify(&v, &token).await.err(), Some(kind), "{bad}");
    }
    // The known header does not vouch for the rest of a token.
    let (signed, _) = token.rsplit_once('.').unwrap();
    let other_signature = good();
    let (_, signature) = other_signature.rsplit_once('.').unwrap();
    assert_eq!(
        verify(&v, &format!("{signed}.{signature}")).await.err(),
        Some(AuthErrorKind::InvalidSignature)
    );
    assert!(verify(&v, &format!("{header}.{rest}")).await.is_ok());
    // Each verifier keeps its own: a header one configuration accepts is
    // checked again by another one.
    let lenient =
        JwtVerifier::new(&config(&issuer, |b| b.typ_policy(TypPolicy::AllowJwt))).unwrap();
    let jwt_typ = issuer
        .token()
        .audience(RESOURCE)
        .header("typ", json!("JWT"))
        .sign();
    assert!(verify(&lenient, &jwt_typ).await.is_ok());
    assert_eq!(
        verify(&v, &jwt_typ).await.err(),
        Some(AuthErrorKind::InvalidType)
    );
}

// RFC 8414 section 3 / OpenID discovery: the key set is found from the issuer.
#[tokio::test]
async fn discovers_the_key_set_or_uses_the_configured_one() {
    let issuer = TestIssuer::start().await.unwrap();
    let discovered = JwtVerifier::new(&config(&issuer, |b| b)).unwrap();
    assert!(!discovered.is_ready());
    assert!(
        verify(&discovered, &issuer.token().audience(RESOURCE).sign())
            .await
            .is_ok()
    );
    assert!(discovered.is_ready());
    assert_eq!(issuer.metadata_hits(), 1);
    assert_eq!(issuer.jwks_hits(), 1);
    let configured = JwtVerifier::new(&config(&issuer, |b| b.jwks_uri(issuer.jwks_uri()))).unwrap();
    configured.prefetch().await.unwrap();
    assert_eq!(
        issuer.metadata_hits(),
        1,
        "no discovery with a configured jwks_uri"
    );
    assert_eq!(issuer.jwks_hits(), 2);
}

// RFC 8414 section 3.3: a document whose issuer differs is rejected.
#[tokio::test]
async fn discovery_rejects_a_document_for_another_issuer() {
    let issuer = TestIssuer::start().await.unwrap();
    let claimed = format!("{}/", issuer.issuer());
    let cfg = AuthConfig::builder()
        .issuer(&claimed)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let v = JwtVerifier::new(&cfg).unwrap();
    // The error names both issuers and the trailing '/' they differ by
    // (found from outside: the operator could not see why).
    let error = v.prefetch().await.unwrap_err().to_string();
    assert!(
        error.contains(&format!("{:?}", issuer.issuer())) && error.contains("trailing '/'"),
        "{error}"
    );
    let token = issuer
        .token()
        .audience(RESOURCE)
        .claim("iss", json!(claimed))
        .sign();
    assert_eq!(
        verify(&v, &token).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert_eq!(issuer.jwks_hits(), 0);
}

/// A metadata server on loopback that answers its RFC 8414 URL with
/// `template`, its own origin put in place of `{base}` (as
/// `application/json`, byte for byte), and counts the requests. Returns its
/// issuer (that origin), the request count and the server task.
async fn raw_metadata(
    template: &str,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let (counted, text) = (Arc::clone(&hits), template.replace("{base}", &base));
    let app = axum::Router::new().route(
        "/.well-known/oauth-authorization-server",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let text = text.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], text) }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits, server)
}

// RFC 8414 section 3.3 and RFC 8259 section 4: a metadata document that
// repeats a member name (at any depth, even after leading whitespace) is
// rejected whole. Parsers disagree on which copy counts, so the `issuer`
// checked and the `jwks_uri` used could come from different copies.
#[tokio::test]
async fn discovery_rejects_a_document_that_repeats_a_member_or_names_plain_http_keys() {
    let keys = TestIssuer::start().await.unwrap();
    let other = TestIssuer::start().await.unwrap();
    let (good, evil) = (keys.jwks_uri(), other.jwks_uri());
    let docs = [
        format!(r#"{{"issuer":"{{base}}","jwks_uri":"{evil}","jwks_uri":"{good}"}}"#),
        format!(r#"{{"issuer":"https://as.example","issuer":"{{base}}","jwks_uri":"{good}"}}"#),
        format!(
            r#" {{"issuer":"{{base}}","jwks_uri":"{good}","mtls_endpoint_aliases":{{"a":"x","\u0061":"y"}}}}"#
        ),
        // SPEC-NOTES "All authorization server endpoints are HTTPS": a
        // discovered key-set URL on plain http to a host that is not
        // loopback is refused before any connection, opt-in or not.
        r#"{"issuer":"{base}","jwks_uri":"http://keys.example/jwks"}"#.to_owned(),
        // A key-set URL with user information is refused before any
        // connection (found from outside: fetched, then refused as
        // redirected, its password written to the log).
        format!(
            r#"{{"issuer":"{{base}}","jwks_uri":"{}"}}"#,
            good.replacen("://", "://svc:secretpw@", 1)
        ),
        // The control: the same document without a repeated name is used.
        format!(r#"{{"issuer":"{{base}}","jwks_uri":"{good}"}}"#),
    ];
    for (i, doc) in docs.iter().enumerate() {
        let (base, hits, server) = raw_metadata(doc).await;
        let cfg = AuthConfig::builder()
            .issuer(&base)
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap();
        let v = JwtVerifier::new(&cfg).unwrap();
        let token = keys
            .token()
            .audience(RESOURCE)
            .claim("iss", json!(base))
            .sign();
        let got = verify(&v, &token).await.err();
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "{i}");
        if i == docs.len() - 1 {
            assert_eq!(got, None, "the clean document");
        } else {
            assert_eq!(got, Some(AuthErrorKind::KeysUnavailable), "document {i}");
        }
        if doc.contains("secretpw") {
            // The error names the member at fault, not only the
            // document's URL (found from outside: read as a fault of the
            // document's own URL), and never its password.
            let said = v.prefetch().await.unwrap_err().to_string();
            assert!(
                said.contains("its jwks_uri must not contain user information"),
                "{said}"
            );
            assert!(!said.contains("secretpw"), "{said}");
        }
        server.abort();
    }
    assert_eq!(keys.jwks_hits(), 1, "only the clean document's key set");
    assert_eq!(other.jwks_hits(), 0);
}

#[tokio::test]
async fn the_key_set_is_cached_and_concurrent_misses_share_one_fetch() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| b.jwks_uri(issuer.jwks_uri()))).unwrap();
    let token = issuer.token().audience(RESOURCE).sign();
    let results = futures_util::future::join_all((0..50).map(|_| verify(&v, &token))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(issuer.jwks_hits(), 1, "single flight");
    for _ in 0..20 {
        verify(&v, &token).await.unwrap();
    }
    assert_eq!(issuer.jwks_hits(), 1, "cached");
}

// Rotation: a new kid triggers one refetch; unknown kids refetch at most once per cooldown.
#[tokio::test]
async fn rotation_and_unknown_kid_cooldown() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| b.jwks_uri(issuer.jwks_uri()))).unwrap();
    v.prefetch().await.unwrap();
    assert_eq!(issuer.jwks_hits(), 1);
    issuer.rotate_key();
    let rotated = issuer.token().audience(RESOURCE).sign();
    assert!(verify(&v, &rotated).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 2, "one refetch for the new kid");
    for i in 0..10 {
        let t = issuer
            .token()
            .audience(RESOURCE)
            .header("kid", json!(format!("nope-{i}")))
            .sign();
        assert_eq!(verify(&v, &t).await.err(), Some(AuthErrorKind::UnknownKey));
    }
    assert_eq!(
        issuer.jwks_hits(),
        2,
        "within the cooldown, unknown kids fail fast"
    );
    // A token signed by the new key still verifies from the cache.
    assert!(verify(&v, &rotated).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn cooldown_elapses_then_one_more_refetch() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| {
        b.jwks_uri(issuer.jwks_uri())
            .jwks_refresh_cooldown(Duration::from_millis(200))
    }))
    .unwrap();
    v.prefetch().await.unwrap();
    let unknown = issuer
        .token()
        .audience(RESOURCE)
        .header("kid", json!("unknown"))
        .sign();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        verify(&v, &unknown).await.err(),
        Some(AuthErrorKind::UnknownKey)
    );
    assert_eq!(
        verify(&v, &unknown).await.err(),
        Some(AuthErrorKind::UnknownKey)
    );
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn signature_from_another_key_is_refused() {
    let ours = TestIssuer::start().await.unwrap();
    let attacker = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&ours, |b| b)).unwrap();
    // Same kid as ours, our issuer claimed, signed with the attacker's key.
    let forged = attacker
        .token()
        .audience(RESOURCE)
        .claim("iss", json!(ours.issuer()))
        .header("kid", json!(ours.current_kid()))
        .sign();
    assert_eq!(
        verify(&v, &forged).await.err(),
        Some(AuthErrorKind::InvalidSignature)
    );
    // Header tricks that would pick the key for us are ignored and never fetched.
    let tricky = attacker
        .token()
        .audience(RESOURCE)
        .claim("iss", json!(ours.issuer()))
        .header("kid", json!(ours.current_kid()))
        .header("jku", json!(attacker.jwks_uri()))
        .header("x5u", json!(attacker.jwks_uri()))
        .header("jwk", attacker.jwks()["keys"][0].clone())
        .sign();
    assert_eq!(
        verify(&v, &tricky).await.err(),
        Some(AuthErrorKind::InvalidSignature)
    );
    assert_eq!(attacker.jwks_hits() + attacker.metadata_hits(), 0);
}

#[tokio::test]
async fn debug_output_of_the_verifier_and_errors_has_no_token() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = JwtVerifier::new(&config(&issuer, |b| b)).unwrap();
    let token = issuer.token().audience("https://x.example").sign();
    let err = v.verify(BearerToken::new(&token)).await.unwrap_err();
    for text in [
        format!("{err:?}"),
        err.to_string(),
        format!("{v:?}"),
        format!("{:?}", BearerToken::new(&token)),
    ] {
        assert!(!text.contains(&token[..20]), "{text}");
        assert!(!text.contains(token.rsplit('.').next().unwrap()), "{text}");
    }
}
