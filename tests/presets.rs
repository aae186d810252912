//! Provider presets verified with tokens shaped like each provider's (the
//! shapes, with their sources, are in `spec-fixtures/providers/`).
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{
    AuthConfig, AuthConfigBuilder, AuthErrorKind, BearerToken, JwtVerifier, TokenVerifier, presets,
};
use serde_json::{Map, Value, json};

const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A provider fixture, its placeholders in hosts written in lowercase: an
/// issuer with capitals in its host is refused at build (the provider
/// publishes it in lowercase, and issuers are compared exactly), and the
/// fixtures spell placeholders in capitals (`TENANT`, `HOST`, ...).
fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/spec-fixtures/providers/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(path).unwrap();
    for (placeholder, host) in LOWERCASE_HOSTS {
        text = text.replace(placeholder, host);
    }
    serde_json::from_str(&text).unwrap()
}

/// The host placeholders of the fixtures and their lowercase spelling.
const LOWERCASE_HOSTS: [(&str, &str); 4] = [
    ("https://TENANT.", "https://tenant."),
    ("https://HOST/", "https://host/"),
    ("https://DOMAIN", "https://domain"),
    ("cognito-idp.REGION.", "cognito-idp.region."),
];

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Mints a token with exactly this header (alg/kid from the issuer) and these
/// claims (times moved to now).
fn mint(issuer: &TestIssuer, header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
    let mut b = issuer.token();
    for name in ["typ", "iss", "sub", "client_id", "jti", "iat", "exp"] {
        b = if name == "typ" {
            b.header(name, Value::Null)
        } else {
            b.claim(name, Value::Null)
        };
    }
    for (k, v) in header {
        if k != "alg" && k != "kid" {
            b = b.header(k.clone(), v.clone());
        }
    }
    for (k, v) in claims {
        let v = match k.as_str() {
            "iat" | "auth_time" | "nbf" => json!(now() - 5),
            "exp" => json!(now() + 600),
            _ => v.clone(),
        };
        b = b.claim(k.clone(), v);
    }
    b.sign()
}

fn variant_claims(base: &Map<String, Value>, variant: &Value) -> Map<String, Value> {
    let mut claims = match variant.get("claims").and_then(Value::as_object) {
        Some(c) => c.clone(),
        None => base.clone(),
    };
    if let Some(changes) = variant.get("claims_changes").and_then(Value::as_object) {
        for (k, v) in changes {
            claims.insert(k.clone(), v.clone());
        }
    }
    if let Some(remove) = variant.get("remove_claims").and_then(Value::as_array) {
        for k in remove {
            claims.remove(k.as_str().unwrap());
        }
    }
    claims
}

struct Case {
    file: &'static str,
    preset: AuthConfigBuilder,
    client_id: &'static str,
    scope: &'static str,
    /// Variants this preset must accept; every other variant must be refused.
    accepted_variants: &'static [&'static str],
}

async fn run(case: Case) {
    let f = fixture(case.file);
    let issuer = TestIssuer::start().await.unwrap();
    let config = case.preset.resource(RESOURCE).build().unwrap();
    assert_eq!(
        config.issuers()[0].issuer(),
        f["claims"]["iss"].as_str().unwrap(),
        "{}",
        case.file
    );
    let v = JwtVerifier::with_static_jwks(&config, issuer.jwks().to_string().as_bytes()).unwrap();
    let header = f["header"].as_object().unwrap().clone();
    let claims = f["claims"].as_object().unwrap().clone();
    let ctx = v
        .verify(BearerToken::new(&mint(&issuer, &header, &claims)))
        .await
        .unwrap_or_else(|e| panic!("{}: main example refused: {e:?}", case.file));
    assert_eq!(ctx.subject(), claims["sub"].as_str().unwrap());
    assert_eq!(ctx.client_id(), Some(case.client_id), "{}", case.file);
    assert!(
        ctx.has_scope(case.scope),
        "{}: {:?}",
        case.file,
        ctx.scopes()
    );
    for (name, variant) in f["variants"].as_object().unwrap() {
        let header = variant
            .get("header")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| header.clone());
        let token = mint(&issuer, &header, &variant_claims(&claims, variant));
        let outcome = v
            .verify(BearerToken::new(&token))
            .await
            .map(|_| ())
            .map_err(|e| e.kind());
        if case.accepted_variants.contains(&name.as_str()) {
            assert_eq!(outcome, Ok(()), "{}: variant {name}", case.file);
        } else {
            assert!(
                matches!(
                    outcome,
                    Err(AuthErrorKind::InvalidAudience
                        | AuthErrorKind::InvalidIssuer
                        | AuthErrorKind::InvalidType)
                ),
                "{}: variant {name} must be refused for audience, issuer or type: {outcome:?}",
                case.file
            );
        }
    }
}

#[tokio::test]
async fn keycloak() {
    run(Case {
        file: "keycloak",
        preset: presets::keycloak("https://host/", "REALM"),
        client_id: "mcp-client",
        scope: "mcp:tools",
        accepted_variants: &["at_jwt_client_setting", "resource_indicator_feature"],
    })
    .await;
}

#[tokio::test]
async fn auth0() {
    run(Case {
        file: "auth0",
        preset: presets::auth0("tenant.us.auth0.com"),
        client_id: "hQ7pK2mN9vR4sT1wY6zB3cD8fG5jL0xE",
        scope: "mcp:resources",
        accepted_variants: &[
            "rfc9068_profile",
            "no_openid_scope",
            "client_credentials_auth0_profile",
            "password_grant_auth0_profile",
        ],
    })
    .await;
}

#[tokio::test]
async fn entra_id_v2() {
    run(Case {
        file: "entra-id",
        preset: presets::entra_id("TENANT_ID", "3c9f1e2a-5b7d-4f80-a6c2-9e1d4b7a0f35"),
        client_id: "b41d7c6e-2f9a-4e13-8c50-7a6e3d2f1b98",
        scope: "mcp.tools",
        accepted_variants: &["v2_app_only_client_credentials"],
    })
    .await;
}

#[tokio::test]
async fn okta() {
    run(Case {
        file: "okta",
        preset: presets::okta("domain", "aus8q2wz4rT1bC5dE0x7"),
        client_id: "0oa9x7c6v5b4n3m2l1k0",
        scope: "mcp:tools",
        accepted_variants: &["client_credentials"],
    })
    .await;
}

#[tokio::test]
async fn cognito() {
    run(Case {
        file: "cognito",
        preset: presets::cognito("region", "POOL_ID", ["5r8kq2lm7n4p0s9t3v6w1x8y2z"]),
        client_id: "5r8kq2lm7n4p0s9t3v6w1x8y2z",
        scope: "https://mcp.example.com/mcp/tools",
        accepted_variants: &["client_credentials_m2m", "resource_binding"],
    })
    .await;
}

// Cognito: a token for another app client of the pool is refused.
#[tokio::test]
async fn cognito_refuses_other_clients() {
    let issuer = TestIssuer::start().await.unwrap();
    let config = presets::cognito("eu-west-1", "eu-west-1_Ab12Cd34E", ["ours"])
        .resource(RESOURCE)
        .build()
        .unwrap();
    let v = JwtVerifier::with_static_jwks(&config, issuer.jwks().to_string().as_bytes()).unwrap();
    let t = issuer
        .token()
        .header("typ", Value::Null)
        .claim(
            "iss",
            json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab12Cd34E"),
        )
        .claim("token_use", json!("access"))
        .claim("client_id", json!("theirs"))
        .sign();
    assert_eq!(
        v.verify(BearerToken::new(&t)).await.err().map(|e| e.kind()),
        Some(AuthErrorKind::InvalidAudience)
    );
}

// Cognito: a token of a listed client that does not say `token_use:
// access` (an ID token's `id`, another spelling, none at all) is refused as
// what it is, `not_an_access_token` (docs/security-model.md), not as a
// header `typ` problem (`invalid_type`).
#[tokio::test]
async fn cognito_refuses_other_kinds_of_token_as_not_access_tokens() {
    let issuer = TestIssuer::start().await.unwrap();
    let config = presets::cognito("eu-west-1", "eu-west-1_Ab12Cd34E", ["ours"])
        .resource(RESOURCE)
        .build()
        .unwrap();
    let v = JwtVerifier::with_static_jwks(&config, issuer.jwks().to_string().as_bytes()).unwrap();
    for token_use in [json!("id"), json!("Access"), json!(null), json!(["access"])] {
        let mut t = issuer
            .token()
            .header("typ", Value::Null)
            .claim(
                "iss",
                json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab12Cd34E"),
            )
            .claim("client_id", json!("ours"));
        if !token_use.is_null() {
            t = t.claim("token_use", token_use.clone());
        }
        let t = t.sign();
        assert_eq!(
            v.verify(BearerToken::new(&t)).await.err().map(|e| e.kind()),
            Some(AuthErrorKind::NotAnAccessToken),
            "token_use {token_use}"
        );
    }
}

// Entra ID v1.0 tokens: issuer sts.windows.net, audience the application ID URI.
#[tokio::test]
async fn entra_id_v1() {
    let f = fixture("entra-id");
    let variant = &f["variants"]["v1_delegated"];
    let claims = variant_claims(f["claims"].as_object().unwrap(), variant);
    let issuer = TestIssuer::start().await.unwrap();
    let aud = claims["aud"].as_str().unwrap().to_owned();
    let config = presets::entra_id_v1("TENANT_ID", &aud)
        .resource(RESOURCE)
        .build()
        .unwrap();
    let v = JwtVerifier::with_static_jwks(&config, issuer.jwks().to_string().as_bytes()).unwrap();
    let header = variant
        .get("header")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| f["header"].as_object().unwrap().clone());
    let ctx = v
        .verify(BearerToken::new(&mint(&issuer, &header, &claims)))
        .await
        .unwrap();
    assert_eq!(
        ctx.client_id(),
        claims
            .get("appid")
            .and_then(Value::as_str)
            .or(claims.get("azp").and_then(Value::as_str))
    );
    // The v2 token of the same tenant is not a v1 token.
    let v2 = mint(
        &issuer,
        f["header"].as_object().unwrap(),
        f["claims"].as_object().unwrap(),
    );
    assert_eq!(
        v.verify(BearerToken::new(&v2))
            .await
            .err()
            .map(|e| e.kind()),
        Some(AuthErrorKind::InvalidIssuer)
    );
}

/// A multi-tenant preset against its fixture (issue 19): the main example
/// is accepted with its tenant; each variant is accepted or refused with
/// exactly the reason the fixture names (`expect`).
async fn run_tenants(file: &str, preset: AuthConfigBuilder, tenant_claim: &str) {
    let f = fixture(file);
    let issuer = TestIssuer::start().await.unwrap();
    let config = preset.resource(RESOURCE).build().unwrap();
    // One key set for every tenant: pinned here, nothing is fetched.
    let v = JwtVerifier::with_static_jwks(&config, issuer.jwks().to_string().as_bytes()).unwrap();
    let header = f["header"].as_object().unwrap().clone();
    let claims = f["claims"].as_object().unwrap().clone();
    let ctx = v
        .verify(BearerToken::new(&mint(&issuer, &header, &claims)))
        .await
        .unwrap_or_else(|e| panic!("{file}: main example refused: {e:?}"));
    assert_eq!(ctx.tenant(), claims[tenant_claim].as_str(), "{file}");
    assert_eq!(ctx.issuer(), claims["iss"].as_str().unwrap(), "{file}");
    for (name, variant) in f["variants"].as_object().unwrap() {
        let token = mint(&issuer, &header, &variant_claims(&claims, variant));
        let outcome = v
            .verify(BearerToken::new(&token))
            .await
            .map(|_| "accepted")
            .map_err(|e| e.kind().code());
        let expect = variant["expect"].as_str().unwrap();
        assert_eq!(
            outcome.unwrap_or_else(|e| e),
            expect,
            "{file}: variant {name}"
        );
    }
    assert_eq!(issuer.total_hits(), 0, "{file}: nothing fetched");
}

fn fixture_tenants(file: &str) -> Vec<String> {
    fixture(file)["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn entra_id_multi_tenant() {
    let preset = presets::entra_id_multi_tenant(
        "3c9f1e2a-5b7d-4f80-a6c2-9e1d4b7a0f35",
        fixture_tenants("entra-id-multi-tenant"),
    );
    let config = preset.clone().resource(RESOURCE).build().unwrap();
    let f = fixture("entra-id-multi-tenant");
    let t = &config.tenant_issuers()[0];
    assert_eq!(t.template(), f["issuer_template"].as_str().unwrap());
    assert_eq!(t.claim(), f["tenant_claim"].as_str());
    assert_eq!(
        config.authorization_servers(),
        [f["advertised_issuer"].as_str().unwrap()]
    );
    run_tenants("entra-id-multi-tenant", preset, "tid").await;
}

#[tokio::test]
async fn auth0_organizations() {
    let preset = presets::auth0_organizations(
        "https://tenant.us.auth0.com/",
        fixture_tenants("auth0-organizations"),
    );
    run_tenants("auth0-organizations", preset, "org_id").await;
}

// The domain given to a preset is read as written in the provider's
// console: surrounding spaces, the `https://` scheme and a trailing slash
// are dropped, in any order. A scheme that is not `https://` is not turned
// into a host named `http` (RFC 8414 section 3.3: the issuer names the host
// keys are fetched from): the build is refused.
#[test]
fn preset_domains_are_read_as_written_in_the_console() {
    let issuer = |b: mcp_oauth2::AuthConfigBuilder| {
        b.resource(RESOURCE)
            .build()
            .map(|c| c.issuers()[0].issuer().to_owned())
    };
    for domain in [
        "t.auth0.com",
        " https://t.auth0.com/ ",
        "https://t.auth0.com",
        "t.auth0.com/",
    ] {
        assert_eq!(
            issuer(presets::auth0(domain)).unwrap(),
            "https://t.auth0.com/",
            "{domain:?}"
        );
        assert_eq!(
            issuer(presets::okta(domain, " default ")).unwrap(),
            "https://t.auth0.com/oauth2/default",
            "{domain:?}"
        );
        assert_eq!(
            issuer(presets::keycloak(
                &format!(" https://{} ", domain.trim().trim_start_matches("https://")),
                " acme/ "
            ))
            .unwrap(),
            "https://t.auth0.com/realms/acme",
            "{domain:?}"
        );
    }
    for domain in ["http://t.auth0.com", " http://t.auth0.com/"] {
        assert_eq!(
            issuer(presets::auth0(domain)).unwrap_err().field(),
            "issuer",
            "{domain:?}"
        );
        assert_eq!(
            issuer(presets::okta(domain, "default"))
                .unwrap_err()
                .field(),
            "issuer",
            "{domain:?}"
        );
    }
}

// Entra ID: `common`, `organizations` and `consumers` are sign-in front
// doors, not issuers: a token names its user's own tenant, never them. A
// single-tenant preset given one (as MSAL authorities often are) would
// refuse every token and advertise a server whose tokens it refuses:
// refused at build, pointing to `entra_id_multi_tenant`.
#[test]
fn entra_front_doors_are_not_tenants() {
    for tenant in ["common", "organizations", " Consumers "] {
        for preset in [
            presets::entra_id(tenant, "app"),
            presets::entra_id_v1(tenant, "api://app"),
        ] {
            let e = preset.resource(RESOURCE).build().unwrap_err();
            assert_eq!(e.field(), "tenant_id", "{tenant}: {e}");
            assert!(e.message().contains("entra_id_multi_tenant"), "{e}");
        }
    }
}

// Keycloak realms: each realm's own key set, so no pinned set fits (the
// wire test with per-realm keys is in tests/multi_tenant.rs).
#[test]
fn keycloak_realms_have_a_key_set_each() {
    let f = fixture("keycloak-realms");
    let config = presets::keycloak_realms("https://host/", fixture_tenants("keycloak-realms"))
        .resource(RESOURCE)
        .build()
        .unwrap();
    let t = &config.tenant_issuers()[0];
    assert_eq!(t.template(), f["issuer_template"].as_str().unwrap());
    assert_eq!(
        config.authorization_servers(),
        ["https://host/realms/acme", "https://host/realms/globex"]
    );
    let e = JwtVerifier::with_static_jwks(&config, b"{\"keys\":[]}").unwrap_err();
    assert_eq!(e.field(), "issuer");
}

// OpenID Connect Core section 2: an Entra ID token issued to a client of
// the MCP server's own app registration has that registration's
// application ID as its audience, the one value the Entra presets accept
// beside the resource, and is signed with the same keys; `typ: JWT`
// passes under every preset. It names no client (`azp` in v2.0, `appid`
// in v1.0), which every Entra access token does: refused as
// `not_an_access_token`, v2.0 and v1.0, while the access tokens of the
// fixture pass (the control).
#[tokio::test]
async fn entra_id_tokens_are_not_access_tokens() {
    let f = fixture("entra-id");
    let issuer = TestIssuer::start().await.unwrap();
    let app = "3c9f1e2a-5b7d-4f80-a6c2-9e1d4b7a0f35";
    let header = f["header"].as_object().unwrap().clone();
    let access = f["claims"].as_object().unwrap().clone();
    // The claims of a v2.0 ID token: no azp/azpacr, no scp; a nonce.
    let mut id_token = access.clone();
    for name in ["azp", "azpacr", "scp"] {
        id_token.remove(name);
    }
    id_token.insert("aud".into(), json!(app));
    id_token.insert("nonce".into(), json!("n-0S6_WzA2Mj"));
    let v2 = presets::entra_id("TENANT_ID", app)
        .resource(RESOURCE)
        .build()
        .unwrap();
    let v = JwtVerifier::with_static_jwks(&v2, issuer.jwks().to_string().as_bytes()).unwrap();
    let verify = |claims: &Map<String, Value>| {
        let token = mint(&issuer, &header, claims);
        let v = v.clone();
        async move {
            v.verify(BearerToken::new(&token))
                .await
                .map(|_| ())
                .map_err(|e| e.kind())
        }
    };
    assert_eq!(verify(&access).await, Ok(()));
    assert_eq!(
        verify(&id_token).await,
        Err(AuthErrorKind::NotAnAccessToken)
    );
    // v1.0: an ID token from sts.windows.net with the application ID URI.
    let variant = &f["variants"]["v1_delegated"];
    let v1_access = variant_claims(&access, variant);
    let aud = v1_access["aud"].as_str().unwrap().to_owned();
    let mut v1_id = v1_access.clone();
    for name in ["appid", "appidacr", "scp"] {
        v1_id.remove(name);
    }
    let v1 = presets::entra_id_v1("TENANT_ID", &aud)
        .resource(RESOURCE)
        .build()
        .unwrap();
    let v = JwtVerifier::with_static_jwks(&v1, issuer.jwks().to_string().as_bytes()).unwrap();
    let v1_header = variant
        .get("header")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or(header.clone());
    let verify1 = |claims: &Map<String, Value>| {
        let token = mint(&issuer, &v1_header, claims);
        let v = v.clone();
        async move {
            v.verify(BearerToken::new(&token))
                .await
                .map(|_| ())
                .map_err(|e| e.kind())
        }
    };
    assert_eq!(verify1(&v1_access).await, Ok(()));
    assert_eq!(verify1(&v1_id).await, Err(AuthErrorKind::NotAnAccessToken));
}

// An OpenID Connect ID token has its client's id as audience and names no
// client otherwise. Found from outside: the audience hint led an operator
// to accept that id with `accept_audience`, and every preset but Entra's
// then took ID tokens for access tokens (200, no client, no scope). Every
// preset now refuses a token naming no client; the same token naming its
// client (an access token with that audience) still passes.
#[tokio::test]
async fn no_preset_takes_an_id_token_for_an_access_token() {
    let issuer = TestIssuer::start().await.unwrap();
    let client = "Xk3cLient1d";
    let cases: Vec<(&str, AuthConfigBuilder, String, &str)> = vec![
        (
            "keycloak",
            presets::keycloak("https://sso.example.com", "main"),
            "https://sso.example.com/realms/main".to_owned(),
            "azp",
        ),
        (
            "auth0",
            presets::auth0("tenant.us.auth0.com"),
            "https://tenant.us.auth0.com/".to_owned(),
            "azp",
        ),
        (
            "okta",
            presets::okta("acme.okta.com", "default"),
            "https://acme.okta.com/oauth2/default".to_owned(),
            "cid",
        ),
    ];
    for (name, preset, iss, client_claim) in cases {
        let config = preset
            .resource(RESOURCE)
            .accept_audience(client)
            .build()
            .unwrap();
        let v =
            JwtVerifier::with_static_jwks(&config, issuer.jwks().to_string().as_bytes()).unwrap();
        let token = |names_client: bool, aud: &str| {
            let mut t = issuer
                .token()
                .header("typ", json!("JWT"))
                .claim("iss", json!(iss))
                .claim("client_id", Value::Null)
                .audience(aud)
                .claim("nonce", json!("n-0S6_WzA2Mj"));
            if names_client {
                t = t.claim(client_claim, json!(client));
            }
            t.sign()
        };
        // An ID token naming no client, and one naming its client (`azp`
        // equal to its audience, as OpenID Connect allows: found from
        // outside, it passed once the id was accepted).
        assert_eq!(
            kind_of(&v, token(false, client)).await,
            Some(AuthErrorKind::NotAnAccessToken),
            "{name}"
        );
        assert_eq!(
            kind_of(&v, token(true, client)).await,
            Some(AuthErrorKind::NotAnAccessToken),
            "{name}"
        );
        // Found from outside: the ID token's own client hidden behind a
        // `client_id` naming another client (read first) passed. Every
        // client claim is compared.
        let hidden = issuer
            .token()
            .header("typ", json!("JWT"))
            .claim("iss", json!(iss))
            .claim("client_id", json!("some-other-client"))
            .claim(client_claim, json!(client))
            .audience(client)
            .claim("nonce", json!("n-0S6_WzA2Mj"))
            .sign();
        assert_eq!(
            kind_of(&v, hidden).await,
            Some(AuthErrorKind::NotAnAccessToken),
            "{name}: own client behind another client_id"
        );
        // The client's access token for this server passes.
        assert_eq!(kind_of(&v, token(true, RESOURCE)).await, None, "{name}");
    }
}

// Entra ID names one app two ways, its application ID and its `api://`
// URI; with both accepted, the app's own token for itself named one in
// `aud` and the other in its client claim, and passed (found from
// outside). A client claim equal to any accepted audience, in a token
// naming no resource of ours, is the server app's own token.
#[tokio::test]
async fn an_apps_token_for_itself_is_refused_under_either_of_its_names() {
    let issuer = TestIssuer::start().await.unwrap();
    let (app_id, app_uri) = ("5e1f0c2a-7b3d-4c8e-9a61-2f4d8b0c7e13", "api://notes-app");
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .accept_audience(app_id)
        .accept_audience(app_uri)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let v = JwtVerifier::with_static_jwks(&config, issuer.jwks().to_string().as_bytes()).unwrap();
    let token = |aud: &str, claim: &str, client: &str| {
        issuer
            .token()
            .claim("client_id", Value::Null)
            .audience(aud)
            .claim(claim, json!(client))
            .sign()
    };
    for (aud, claim, client) in [
        (app_uri, "appid", app_id),
        (app_id, "azp", app_uri),
        (app_uri, "azp", app_uri),
        (app_id, "client_id", app_id),
    ] {
        assert_eq!(
            kind_of(&v, token(aud, claim, client)).await,
            Some(AuthErrorKind::NotAnAccessToken),
            "aud {aud}, {claim} {client}"
        );
    }
    // Another client's tokens for the app, under either name, pass; and
    // the app's own token for this resource.
    for (aud, client) in [
        (app_uri, "b41d7c6e-2f9a-4e13-8c50-7a6e3d2f1b98"),
        (app_id, "b41d7c6e-2f9a-4e13-8c50-7a6e3d2f1b98"),
        (RESOURCE, app_id),
    ] {
        assert_eq!(
            kind_of(&v, token(aud, "azp", client)).await,
            None,
            "aud {aud}, azp {client}"
        );
    }
}

/// What `v` refuses `token` for, if anything.
async fn kind_of(v: &JwtVerifier, token: String) -> Option<AuthErrorKind> {
    v.verify(BearerToken::new(&token))
        .await
        .err()
        .map(|e| e.kind())
}
