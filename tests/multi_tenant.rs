//! Many tenants, many issuers (issue 19), on the wire: a real `McpServer`,
//! `TestIssuer`s playing the tenants' authorization servers (one shared key
//! set, Entra ID style; one key set per realm, Keycloak style; one issuer
//! with the tenant in a claim, Auth0 Organizations style), real rmcp
//! clients, and every key-set request counted.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture::{bounded, call_text, call_with, legacy_client};
use support::realms::Realms;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{
    Algorithm, AuthConfig, AuthConfigBuilder, IssuerPolicy, TenantIssuer, TypPolicy, presets,
};
use serde_json::{Value, json};

/// The API's application id (Entra puts it in `aud`).
const APP_ID: &str = "3c9f1e2a-5b7d-4f80-a6c2-9e1d4b7a0f35";
const T1: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const T2: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
const T3: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// A protected echo server on 127.0.0.1:0: (resource, metrics, stop).
struct Served {
    resource: String,
    base: String,
    metrics: mcp_oauth2::Metrics,
    ct: tokio_util::sync::CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

async fn serve(config: impl FnOnce(&str) -> AuthConfigBuilder) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    let config = config(&resource)
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let (ct, metrics) = support::fixture::serve_echo(listener, config);
    Served {
        resource,
        base,
        metrics,
        ct,
    }
}

/// A legacy `initialize` with `token`: (status, `reason` of the JSON body
/// if any).
async fn post(resource: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(resource)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let reason = response
        .json::<Value>()
        .await
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, reason)
}

async fn whoami(resource: &str, token: &str) -> Value {
    let client = bounded(legacy_client(resource, token)).await.unwrap();
    let who = serde_json::from_str(&bounded(call_text(&client, "whoami")).await.unwrap()).unwrap();
    client.cancel().await.unwrap();
    who
}

async fn metadata(base: &str) -> Value {
    reqwest::get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The Entra ID v2 issuer of `tenant` under the issuer playing Microsoft.
fn entra_iss(ms: &TestIssuer, tenant: &str) -> String {
    format!("{}/{tenant}/v2.0", ms.issuer())
}

/// An Entra-shaped v2 access token (`typ: JWT`, `aud` the app id, `tid`,
/// `scp`, `azp`; see `spec-fixtures/providers/entra-id-multi-tenant.json`).
fn entra_token(ms: &TestIssuer, iss_tenant: &str, tid: Option<&str>) -> String {
    let mut b = ms
        .token()
        .header("typ", json!("JWT"))
        .claim("iss", json!(entra_iss(ms, iss_tenant)))
        .claim("aud", json!(APP_ID))
        .claim("client_id", Value::Null)
        .claim("azp", json!("b41d7c6e-2f9a-4e13-8c50-7a6e3d2f1b98"))
        .claim("scp", json!("mcp.tools"))
        .claim("ver", json!("2.0"))
        .subject("AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ");
    if let Some(tid) = tid {
        b = b.claim("tid", json!(tid));
    }
    b.sign()
}

/// The multi-tenant Entra ID configuration of the README, on loopback: the
/// template, the allowlist, `tid`, the common (shared) key set.
fn entra_config(ms: &TestIssuer) -> impl FnOnce(&str) -> AuthConfigBuilder {
    let template = format!("{}/{{tenant}}/v2.0", ms.issuer());
    let keys = ms.jwks_uri();
    let advertised = format!("{}/organizations/v2.0", ms.issuer());
    move |_| {
        AuthConfig::builder()
            .tenant_issuer(
                TenantIssuer::new(template)
                    .tenants([T1, T2])
                    .tenant_claim("tid")
                    .jwks_uri(keys)
                    .advertise(advertised),
            )
            .typ_policy(TypPolicy::AllowJwt)
            .accept_audience(APP_ID)
            .scope_claims(["scp"])
    }
}

// Allowlisted tenants are accepted, with their tenant and their own issuer in
// the context; one shared key set serves them all (fetched once); the
// metadata advertises the configured issuer.
#[tokio::test]
async fn allowlisted_tenants_are_accepted_with_one_shared_key_set() {
    let ms = TestIssuer::start().await.unwrap();
    let s = serve(entra_config(&ms)).await;
    let doc = metadata(&s.base).await;
    assert_eq!(
        doc["authorization_servers"],
        json!([format!("{}/organizations/v2.0", ms.issuer())])
    );
    for tenant in [T1, T2] {
        let token = entra_token(&ms, tenant, Some(tenant));
        assert_eq!(post(&s.resource, &token).await, (200, String::new()));
        let who = whoami(&s.resource, &token).await;
        assert_eq!(who["tenant"], tenant);
        assert_eq!(who["issuer"], entra_iss(&ms, tenant));
    }
    assert_eq!(ms.jwks_hits(), 1, "one shared key set, fetched once");
    assert_eq!(ms.metadata_hits(), 0, "no discovery with a key-set URL");
}

// Cross-tenant attempts: a well-signed token of a tenant not on the list is
// refused (`tenant_not_allowed`) and a `tid` that disagrees with `iss`
// (`tenant_mismatch`), without a single key-set request.
#[tokio::test]
async fn cross_tenant_tokens_are_refused_without_a_fetch() {
    let ms = TestIssuer::start().await.unwrap();
    let s = serve(entra_config(&ms)).await;
    // Warm the shared key set, then count.
    let ok = entra_token(&ms, T1, Some(T1));
    assert_eq!(post(&s.resource, &ok).await.0, 200);
    let hits = ms.jwks_hits() + ms.metadata_hits() + ms.other_hits();
    let cases = [
        // Not on the list (a real tenant id shape, well signed).
        (entra_token(&ms, T3, Some(T3)), "tenant_not_allowed"),
        // Tenant ids are compared exactly: another case is another tenant.
        (
            entra_token(&ms, &T1.to_uppercase(), Some(&T1.to_uppercase())),
            "tenant_not_allowed",
        ),
        // `tid` disagrees with `iss`, either way round, or is missing.
        (entra_token(&ms, T1, Some(T2)), "tenant_mismatch"),
        (entra_token(&ms, T2, Some(T1)), "tenant_mismatch"),
        (entra_token(&ms, T1, Some(T3)), "tenant_mismatch"),
        (entra_token(&ms, T1, None), "tenant_mismatch"),
        (entra_token(&ms, T1, Some("")), "tenant_mismatch"),
    ];
    for (token, reason) in &cases {
        assert_eq!(post(&s.resource, token).await, (401, (*reason).to_owned()));
    }
    // A non-string `tid`.
    let numeric = ms
        .token()
        .header("typ", json!("JWT"))
        .claim("iss", json!(entra_iss(&ms, T1)))
        .claim("aud", json!(APP_ID))
        .claim("tid", json!(1))
        .sign();
    assert_eq!(
        post(&s.resource, &numeric).await,
        (401, "tenant_mismatch".into())
    );
    assert_eq!(
        ms.jwks_hits() + ms.metadata_hits() + ms.other_hits(),
        hits,
        "a refused tenant never causes a request"
    );
}

// Tenant ids crafted to escape the template (other paths, dots, encodings,
// empty, too long, non-ASCII) are refused before any fetch.
#[tokio::test]
async fn crafted_tenant_ids_are_refused() {
    let ms = TestIssuer::start().await.unwrap();
    let s = serve(entra_config(&ms)).await;
    assert_eq!(
        post(&s.resource, &entra_token(&ms, T1, Some(T1))).await.0,
        200
    );
    let hits = ms.total_hits();
    let long = "a".repeat(65);
    let crafted = [
        "a/b",
        "..",
        ".",
        "%2F",
        "%2e%2e",
        "a.b",
        "",
        long.as_str(),
        "é",
        "t\u{0131}",
        "{tenant}",
        "a b",
        "a?b",
        "a#b",
        "a\\b",
        "a@b",
        "a:b",
    ];
    let path_tricks = [
        format!("{T1}/../{T3}"),
        format!("{T3}/../{T1}"),
        format!("{T1}/"),
        format!("/{T1}"),
        format!("{T1}/v2.0/{T1}"),
    ];
    for tenant in crafted
        .iter()
        .copied()
        .chain(path_tricks.iter().map(String::as_str))
    {
        // The claim agrees, so only the id itself is judged.
        let token = entra_token(&ms, tenant, Some(tenant));
        let (status, reason) = post(&s.resource, &token).await;
        assert_eq!(status, 401, "{tenant:?}");
        assert!(
            reason == "tenant_invalid" || reason == "invalid_issuer",
            "{tenant:?}: {reason}"
        );
    }
    // Near misses of the template itself.
    for iss in [
        format!("{}/{T1}/v2.0/", ms.issuer()),
        format!("{}/{T1}/v2.00", ms.issuer()),
        format!("{}//{T1}/v2.0", ms.issuer()),
        format!("{}/{T1}/V2.0", ms.issuer()),
        format!("{}/{T1}", ms.issuer()),
        format!("{}/v2.0", ms.issuer()),
    ] {
        let token = ms
            .token()
            .header("typ", json!("JWT"))
            .claim("iss", json!(iss))
            .claim("aud", json!(APP_ID))
            .claim("tid", json!(T1))
            .sign();
        let (status, reason) = post(&s.resource, &token).await;
        assert_eq!(status, 401, "{iss}");
        assert!(
            reason == "tenant_invalid" || reason == "invalid_issuer",
            "{iss}: {reason}"
        );
    }
    assert_eq!(ms.total_hits(), hits, "nothing was fetched");
}

// A thousand distinct unknown tenants cost no fetch, and no key set is
// created for any of them (bounded memory).
#[tokio::test]
async fn a_thousand_unknown_tenants_cost_nothing() {
    let ms = TestIssuer::start().await.unwrap();
    let s = serve(entra_config(&ms)).await;
    // The shared key set is fetched at start (and by a first good token).
    assert_eq!(
        post(&s.resource, &entra_token(&ms, T1, Some(T1))).await.0,
        200
    );
    let hits = ms.total_hits();
    let fetches = s.metrics.snapshot().jwks_fetches;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..1000u32 {
        let tenant = format!("{i:08x}-0000-4000-8000-000000000000");
        let token = entra_token(&ms, &tenant, Some(&tenant));
        let client = client.clone();
        let resource = s.resource.clone();
        tasks.push(async move {
            client
                .post(&resource)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(INITIALIZE)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    // Sixteen at a time (the machine is shared).
    let mut tasks = tasks.into_iter();
    loop {
        let batch: Vec<_> = tasks.by_ref().take(16).collect();
        if batch.is_empty() {
            break;
        }
        statuses.extend(futures_util::future::join_all(batch).await);
    }
    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|s| *s == 401));
    assert_eq!(ms.total_hits(), hits, "no request reached the issuer");
    let snap = s.metrics.snapshot();
    assert!(
        snap.key_set_age.len() <= 1,
        "no key set per unknown tenant: {:?}",
        snap.key_set_age.keys().collect::<Vec<_>>()
    );
    assert_eq!(snap.jwks_fetches, fetches);
}

// Keycloak, one realm per tenant (the README's configuration, the preset):
// each realm has its own keys, fetched on its first token only; a realm's
// key never verifies another realm's token; a realm that exists but is not
// on the list is never contacted.
#[tokio::test]
async fn keycloak_realms_each_with_its_own_keys() {
    let realms = Realms::start(&["acme", "globex", "initech"]).await;
    let base = realms.base.clone();
    let s = serve(move |_| presets::keycloak_realms(&base, ["acme", "globex"])).await;
    assert_eq!(
        metadata(&s.base).await["authorization_servers"],
        json!([realms.issuer("acme"), realms.issuer("globex")])
    );
    let token = |realm: &str| {
        realms
            .token(realm)
            .header("typ", json!("JWT"))
            .audience(&s.resource)
            .claim("azp", json!("mcp-client"))
            .claim("client_id", Value::Null)
            .claim("scope", json!("openid mcp:tools"))
            .subject("alice")
            .sign()
    };
    assert_eq!(
        realms.total_hits(),
        0,
        "key sets per realm are fetched lazily"
    );
    assert_eq!(post(&s.resource, &token("acme")).await.0, 200);
    assert_eq!((realms.hits("acme"), realms.hits("globex")), (1, 0));
    assert_eq!(post(&s.resource, &token("globex")).await.0, 200);
    assert_eq!(post(&s.resource, &token("acme")).await.0, 200);
    assert_eq!((realms.hits("acme"), realms.hits("globex")), (1, 1));
    let who = whoami(&s.resource, &token("globex")).await;
    assert_eq!(who["tenant"], "globex");
    assert_eq!(who["issuer"], realms.issuer("globex"));
    // Signed with acme's key, claiming globex (with globex's kid or acme's).
    for kid in [
        realms.signer("globex").current_kid(),
        realms.signer("acme").current_kid(),
    ] {
        let forged = realms
            .signer("acme")
            .token()
            .header("typ", json!("JWT"))
            .header("kid", json!(kid))
            .claim("iss", json!(realms.issuer("globex")))
            .audience(&s.resource)
            .sign();
        let (status, reason) = post(&s.resource, &forged).await;
        assert_eq!(status, 401);
        assert!(
            reason == "invalid_signature" || reason == "unknown_key",
            "{reason}"
        );
    }
    // A real realm of the same server, not on the list.
    assert_eq!(
        post(&s.resource, &token("initech")).await,
        (401, "tenant_not_allowed".into())
    );
    assert_eq!(realms.hits("initech"), 0);
}

// Without a key-set URL, each tenant's issuer is discovered (its OpenID
// configuration under the realm), lazily on its first token, once, and a
// tenant off the list is never discovered.
#[tokio::test]
async fn each_tenant_is_discovered_lazily_without_a_key_set_url() {
    let realms = Realms::start(&["acme", "globex", "initech"]).await;
    let template = format!("{}/realms/{{tenant}}", realms.base);
    let s = serve(move |_| {
        AuthConfig::builder()
            .tenant_issuer(TenantIssuer::new(template).tenants(["acme", "globex"]))
            .typ_policy(TypPolicy::AllowJwt)
    })
    .await;
    let token = |realm: &str| {
        realms
            .token(realm)
            .header("typ", json!("JWT"))
            .audience(&s.resource)
            .subject("alice")
            .sign()
    };
    assert_eq!(
        (realms.discovery_hits("acme"), realms.total_hits()),
        (0, 0),
        "nothing is discovered before a tenant's first token"
    );
    assert_eq!(post(&s.resource, &token("acme")).await.0, 200);
    assert_eq!((realms.discovery_hits("acme"), realms.hits("acme")), (1, 1));
    assert_eq!(realms.discovery_hits("globex"), 0);
    assert_eq!(post(&s.resource, &token("globex")).await.0, 200);
    assert_eq!(post(&s.resource, &token("acme")).await.0, 200);
    assert_eq!(
        (
            realms.discovery_hits("acme"),
            realms.hits("acme"),
            realms.discovery_hits("globex"),
            realms.hits("globex")
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        whoami(&s.resource, &token("globex")).await["tenant"],
        "globex"
    );
    // A real realm of the same server, not on the list: never discovered.
    assert_eq!(
        post(&s.resource, &token("initech")).await,
        (401, "tenant_not_allowed".into())
    );
    assert_eq!(
        (realms.discovery_hits("initech"), realms.hits("initech")),
        (0, 0)
    );
}

// The cache rules hold per tenant: the first tokens of a realm, arriving
// together, share one fetch of its key set (single flight), and another
// realm's fetch is its own.
#[tokio::test]
async fn a_realms_key_set_is_fetched_once_for_concurrent_first_tokens() {
    let realms = Realms::start(&["acme", "globex"]).await;
    let base = realms.base.clone();
    let s = serve(move |_| presets::keycloak_realms(&base, ["acme", "globex"])).await;
    let tokens: Vec<String> = (0..12)
        .map(|i| {
            let realm = if i % 3 == 0 { "globex" } else { "acme" };
            realms
                .token(realm)
                .audience(&s.resource)
                .subject(format!("user-{i}"))
                .sign()
        })
        .collect();
    let statuses =
        futures_util::future::join_all(tokens.iter().map(|t| post(&s.resource, t))).await;
    assert!(
        statuses.iter().all(|(status, _)| *status == 200),
        "{statuses:?}"
    );
    assert_eq!((realms.hits("acme"), realms.hits("globex")), (1, 1));
}

// With any tenant accepted (the loudly named opt-in), each new tenant costs
// one key-set fetch, and at most `max_key_sets` key sets are kept.
#[tokio::test]
async fn any_tenant_keeps_a_bounded_number_of_key_sets() {
    let realms = Realms::start(&["acme"]).await;
    let template = format!("{}/realms/{{tenant}}", realms.base);
    let keys = format!(
        "{}/realms/{{tenant}}/protocol/openid-connect/certs",
        realms.base
    );
    let front_door = format!("{}/realms/master", realms.base);
    let s = serve(move |_| {
        AuthConfig::builder()
            .tenant_issuer(
                TenantIssuer::new(template)
                    .allow_any_tenant_unrestricted()
                    .max_key_sets(4)
                    // The budget of new tenants is tested apart.
                    .max_new_tenants_per_second(1_000)
                    .jwks_uri(keys)
                    .advertise(front_door),
            )
            .typ_policy(TypPolicy::AllowJwt)
    })
    .await;
    let acme = realms
        .token("acme")
        .header("typ", json!("JWT"))
        .audience(&s.resource)
        .sign();
    assert_eq!(post(&s.resource, &acme).await.0, 200);
    for i in 0..40 {
        let realm = format!("unknown-{i}");
        let token = foreign_realm_token(&realms, &realm, &s.resource);
        // Accepted as a tenant, but the realm has no keys: 503, fail closed.
        assert_eq!(
            post(&s.resource, &token).await,
            (503, "keys_unavailable".into()),
            "{realm}"
        );
        assert_eq!(realms.hits(&realm), 1, "{realm}");
    }
    let kept = s.metrics.snapshot().key_set_age.len();
    assert!(kept <= 8, "key sets kept: {kept}");
    // A crafted id is still refused without a fetch.
    let before = realms.total_hits();
    let crafted = realms
        .signer("acme")
        .token()
        .claim("iss", json!(format!("{}/realms/a.b", realms.base)))
        .audience(&s.resource)
        .sign();
    assert_eq!(
        post(&s.resource, &crafted).await,
        (401, "tenant_invalid".into())
    );
    assert_eq!(realms.total_hits(), before);
}

// Found from outside (round 2): with any tenant accepted, each token
// naming a made-up tenant made the server ask the authorization server
// for that tenant's key set before any signature could be checked, so
// garbage bought outbound requests one for one (a provider may throttle
// or block such a server, for every tenant). Now at most
// `max_new_tenants_per_second` tenants not yet kept are fetched in a
// second; past it, such a token gets 503 `keys_unavailable` at once, with
// no request to the issuer, while tenants already kept are served and a
// real new tenant is served once the second has passed.
#[tokio::test]
async fn new_tenants_past_the_budget_cost_the_issuer_nothing() {
    let realms = Realms::start(&["acme", "globex"]).await;
    let template = format!("{}/realms/{{tenant}}", realms.base);
    let front_door = format!("{}/realms/master", realms.base);
    let s = serve(move |_| {
        AuthConfig::builder()
            .tenant_issuer(
                TenantIssuer::new(template)
                    .allow_any_tenant_unrestricted()
                    .max_new_tenants_per_second(5)
                    .advertise(front_door),
            )
            .typ_policy(TypPolicy::AllowJwt)
            .jwks_refresh_cooldown(std::time::Duration::from_millis(100))
    })
    .await;
    let token = |realm: &str| {
        realms
            .token(realm)
            .header("typ", json!("JWT"))
            .audience(&s.resource)
            .sign()
    };
    let acme = token("acme");
    assert_eq!(post(&s.resource, &acme).await.0, 200);
    let started = std::time::Instant::now();
    let mut fetched = 0;
    let mut refused_at_once = 0;
    for i in 0..30 {
        let realm = format!("made-up-{i}");
        let garbage = foreign_realm_token(&realms, &realm, &s.resource);
        assert_eq!(
            post(&s.resource, &garbage).await,
            (503, "keys_unavailable".into()),
            "{realm}"
        );
        match realms.discovery_hits(&realm) + realms.hits(&realm) {
            0 => refused_at_once += 1,
            _ => fetched += 1,
        }
        // The tenant already kept is served all along.
        assert_eq!(post(&s.resource, &acme).await.0, 200, "{realm}");
    }
    let seconds = started.elapsed().as_secs() + 1;
    assert!(fetched <= 5 * seconds, "{fetched} fetched in {seconds} s");
    // Saturating: under a slow run (coverage) more seconds pass than the
    // 30 made-up tenants need, and the bound is then none.
    assert!(
        refused_at_once >= 30u64.saturating_sub(5 * seconds),
        "{refused_at_once}"
    );
    assert!(refused_at_once > 0);
    // A real new tenant, once the second has passed: served.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(post(&s.resource, &token("globex")).await.0, 200);
    assert_eq!(realms.hits("globex"), 1);

    // A made-up tenant kept after its failed fetch is asked for again
    // after each retry interval (100 ms here): those fetches are within
    // the budget too. Before, cycling through the kept ones cost the
    // issuer a request per tenant per interval, whatever the budget.
    let kept: Vec<String> = (0..30)
        .map(|i| format!("made-up-{i}"))
        .filter(|realm| realms.discovery_hits(realm) > 0)
        .collect();
    assert!(!kept.is_empty());
    let asked = |realms: &Realms| -> usize {
        kept.iter()
            .map(|r| realms.discovery_hits(r) + realms.hits(r))
            .sum()
    };
    let before = asked(&realms);
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(1_500) {
        for realm in &kept {
            let garbage = foreign_realm_token(&realms, realm, &s.resource);
            assert_eq!(post(&s.resource, &garbage).await.0, 503);
        }
        tokio::time::sleep(std::time::Duration::from_millis(110)).await;
    }
    let seconds = started.elapsed().as_secs() as usize + 1;
    let again = asked(&realms) - before;
    assert!(again <= 5 * seconds, "{again} fetches in {seconds} s");
}

/// A token for `audience` naming the realm `realm` as its issuer, signed
/// with acme's key (a realm that does not exist has no key set to fetch).
fn foreign_realm_token(realms: &Realms, realm: &str, audience: &str) -> String {
    realms
        .signer("acme")
        .token()
        .claim("iss", json!(format!("{}/realms/{realm}", realms.base)))
        .audience(audience)
        .sign()
}

/// Calls `tool`, returning the text or the JSON-RPC error message.
async fn call(
    client: &support::fixture::Client,
    tool: &'static str,
    value: Option<&str>,
) -> Result<String, String> {
    bounded(call_with(client, tool, value))
        .await
        .map_err(|e| match e {
            rmcp::ServiceError::McpError(e) => e.message.to_string(),
            other => other.to_string(),
        })
}

/// Opens a legacy session with `token`: its `Mcp-Session-Id`.
async fn open_session(resource: &str, token: &str) -> String {
    let response = reqwest::Client::new()
        .post(resource)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A POST into session `id` with `token`: the status.
async fn post_in_session(resource: &str, token: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .post(resource)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", id)
        .header("mcp-protocol-version", "2025-06-18")
        .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

// Auth0 Organizations: one issuer, the tenant in `org_id`. The same `sub`,
// client and issuer in two organizations are two principals: neither opens
// the other's handles nor uses the other's session.
#[tokio::test]
async fn same_subject_in_two_tenants_is_kept_apart() {
    let auth0 = TestIssuer::start().await.unwrap();
    let issuer = auth0.issuer().to_owned();
    let s = serve(move |_| {
        AuthConfig::builder().tenant_issuer(
            TenantIssuer::new(issuer)
                .tenant_claim("org_id")
                .tenants(["org_acme", "org_globex"]),
        )
    })
    .await;
    let token = |org: Option<&str>| {
        let mut b = auth0
            .token()
            .subject("auth0|alice")
            .client_id("mcp-client")
            .audience(&s.resource);
        if let Some(org) = org {
            b = b.claim("org_id", json!(org));
        }
        b.sign()
    };
    let (a, b) = (token(Some("org_acme")), token(Some("org_globex")));
    assert_eq!(whoami(&s.resource, &a).await["tenant"], "org_acme");
    assert_eq!(whoami(&s.resource, &b).await["tenant"], "org_globex");
    // Handles.
    let alice_a = bounded(legacy_client(&s.resource, &a)).await.unwrap();
    let alice_b = bounded(legacy_client(&s.resource, &b)).await.unwrap();
    let handle = call(&alice_a, "mint", Some("cart-1")).await.unwrap();
    assert_eq!(
        call(&alice_a, "open", Some(&handle)).await.unwrap(),
        "cart-1"
    );
    assert_eq!(
        call(&alice_b, "open", Some(&handle)).await,
        Err("the handle is not valid for this caller".into())
    );
    let theirs = call(&alice_b, "mint", Some("cart-2")).await.unwrap();
    assert!(call(&alice_a, "open", Some(&theirs)).await.is_err());
    alice_a.cancel().await.unwrap();
    alice_b.cancel().await.unwrap();
    // Sessions.
    let id = open_session(&s.resource, &a).await;
    assert_eq!(post_in_session(&s.resource, &b, &id).await, 404);
    assert_eq!(post_in_session(&s.resource, &a, &id).await, 202);
    // Other organizations, and none.
    assert_eq!(
        post(&s.resource, &token(Some("org_initech"))).await,
        (401, "tenant_not_allowed".into())
    );
    assert_eq!(
        post(&s.resource, &token(None)).await,
        (401, "tenant_invalid".into())
    );
    assert_eq!(
        post(&s.resource, &token(Some("org/acme"))).await,
        (401, "tenant_invalid".into())
    );
}

// A policy per issuer from the builder, no hand-built chain: a strict
// issuer (RFC 9068 `at+jwt`, `aud` the resource) beside a legacy one (`typ:
// JWT`, its own audience and scope claim, RS256 only).
#[tokio::test]
async fn a_policy_per_issuer_needs_no_chain() {
    let strict = TestIssuer::start().await.unwrap();
    let legacy = TestIssuer::start().await.unwrap();
    let es = TestIssuer::start_with_alg(mcp_oauth2::testing::SigningAlg::Es256)
        .await
        .unwrap();
    let (si, li, ei) = (
        strict.issuer().to_owned(),
        legacy.issuer().to_owned(),
        es.issuer().to_owned(),
    );
    let s = serve(move |_| {
        AuthConfig::builder()
            .issuer(&si)
            .issuer(&li)
            .issuer(&ei)
            .issuer_policy(
                &li,
                IssuerPolicy::new()
                    .typ_policy(TypPolicy::AllowJwt)
                    .accept_audience("api://legacy")
                    .scope_claims(["scp"])
                    .algorithms([Algorithm::RS256]),
            )
            .issuer_policy(&ei, IssuerPolicy::new().algorithms([Algorithm::RS256]))
            .required_scopes(["tools"])
    })
    .await;
    let legacy_token = |issuer: &TestIssuer| {
        issuer
            .token()
            .header("typ", json!("JWT"))
            .claim("aud", json!("api://legacy"))
            .claim("scope", Value::Null)
            .claim("scp", json!(["tools"]))
            .sign()
    };
    assert_eq!(post(&s.resource, &legacy_token(&legacy)).await.0, 200);
    // The same shape from the strict issuer: refused on its type first.
    assert_eq!(
        post(&s.resource, &legacy_token(&strict)).await,
        (401, "invalid_type".into())
    );
    let strict_token = strict
        .token()
        .audience(&s.resource)
        .scopes(["tools"])
        .sign();
    assert_eq!(post(&s.resource, &strict_token).await.0, 200);
    // `api://legacy` names this server for the legacy issuer only.
    let cross = strict
        .token()
        .claim("aud", json!("api://legacy"))
        .scopes(["tools"])
        .sign();
    assert_eq!(
        post(&s.resource, &cross).await,
        (401, "invalid_audience".into())
    );
    // The legacy issuer's scopes are in `scp` only: `scope` grants nothing.
    let scope_only = legacy
        .token()
        .header("typ", json!("JWT"))
        .claim("aud", json!("api://legacy"))
        .scopes(["tools"])
        .sign();
    assert_eq!(post(&s.resource, &scope_only).await.0, 403);
    // ES256 is accepted globally but not for the issuer limited to RS256.
    let es_token = es.token().audience(&s.resource).scopes(["tools"]).sign();
    assert_eq!(
        post(&s.resource, &es_token).await,
        (401, "disallowed_algorithm".into())
    );
}

// The reference server configured by the environment variables alone: an
// issuer template, the allowlist, the tenant claim, the shared key set, and
// the metadata's list; `whoami` names the tenant; notes are per tenant.
#[tokio::test]
async fn reference_server_with_tenants_from_the_environment() {
    let ms = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let advertised = format!("{}/organizations/v2.0", ms.issuer());
    let template = format!("{}/{{tenant}}/v2.0", ms.issuer());
    let tenants = format!("{T1}, {T2}");
    let mut server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", &template),
            ("MCP_OAUTH2_TENANTS", &tenants),
            ("MCP_OAUTH2_TENANT_CLAIM", "tid"),
            ("MCP_OAUTH2_JWKS_URI", &ms.jwks_uri()),
            ("MCP_OAUTH2_AUTHORIZATION_SERVERS", &advertised),
            // Entra's front door is not an issuer: the explicit opt-in.
            ("MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS", &advertised),
            ("MCP_OAUTH2_RESOURCE", &resource),
        ],
    )
    .await;
    let doc = metadata(&format!("http://127.0.0.1:{port}")).await;
    assert_eq!(doc["authorization_servers"], json!([advertised]));
    let token = |tenant: &str, tid: &str| {
        ms.token()
            .claim("iss", json!(entra_iss(&ms, tenant)))
            .claim("tid", json!(tid))
            .subject("alice")
            .audience(&resource)
            .scopes(["notes:read", "notes:write", "notes:private"])
            .sign()
    };
    let mut clients = Vec::new();
    for tenant in [T1, T2] {
        let client = bounded(legacy_client(&resource, &token(tenant, tenant)))
            .await
            .unwrap();
        let who: Value =
            serde_json::from_str(&bounded(call_text(&client, "whoami")).await.unwrap()).unwrap();
        assert_eq!(who["subject"], "alice");
        assert_eq!(who["tenant"], tenant);
        assert_eq!(who["issuer"], entra_iss(&ms, tenant));
        clients.push(client);
    }
    // alice of T1 writes a note; alice of T2 does not see it.
    let add = rmcp::model::CallToolRequestParams::new("add_note")
        .with_arguments(json!({"text": "t1 secret"}).as_object().unwrap().clone());
    bounded(clients[0].call_tool(add)).await.unwrap();
    let mine = bounded(call_text(&clients[0], "list_notes")).await.unwrap();
    let theirs = bounded(call_text(&clients[1], "list_notes")).await.unwrap();
    assert!(mine.contains("t1 secret"), "{mine}");
    assert!(!theirs.contains("t1 secret"), "{theirs}");
    for client in clients {
        client.cancel().await.unwrap();
    }
    for (tenant, tid, reason) in [
        (T3, T3, "tenant_not_allowed"),
        (T1, T2, "tenant_mismatch"),
        ("a.b", "a.b", "tenant_invalid"),
    ] {
        assert_eq!(
            post(&resource, &token(tenant, tid)).await,
            (401, reason.to_owned())
        );
    }
    server.child.kill().await.unwrap();
}

// The Keycloak realms fixture (`spec-fixtures/providers/keycloak-realms.json`)
// on the wire: `HOST` is the realms server, each realm signs with its own
// keys; every variant gets exactly the outcome the fixture names.
#[tokio::test]
async fn keycloak_realms_fixture() {
    let path = format!(
        "{}/spec-fixtures/providers/keycloak-realms.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let realms = Realms::start(&["acme", "globex", "initech", "master"]).await;
    let tenants: Vec<String> = f["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let base = realms.base.clone();
    let s = serve(move |_| presets::keycloak_realms(&base, tenants)).await;
    let host = |v: &Value| -> Value {
        match v.as_str() {
            Some(text) => json!(text.replace("https://HOST", &realms.base)),
            None => v.clone(),
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mint = |changes: &serde_json::Map<String, Value>| {
        let mut claims = f["claims"].as_object().unwrap().clone();
        for (k, v) in changes {
            claims.insert(k.clone(), v.clone());
        }
        let iss = host(&claims["iss"]).as_str().unwrap().to_owned();
        let realm = iss.rsplit('/').next().unwrap().to_owned();
        let signer = if ["acme", "globex", "initech", "master"].contains(&realm.as_str()) {
            realms.signer(&realm)
        } else {
            realms.signer("acme")
        };
        let mut b = signer.token().header("typ", json!("JWT"));
        for (k, v) in &claims {
            let v = match k.as_str() {
                "iat" => json!(now - 5),
                "exp" => json!(now + 300),
                "aud" => json!(s.resource),
                _ => host(v),
            };
            b = b.claim(k.clone(), v);
        }
        b.claim("client_id", Value::Null).sign()
    };
    assert_eq!(post(&s.resource, &mint(&Default::default())).await.0, 200);
    for (name, variant) in f["variants"].as_object().unwrap() {
        let token = mint(variant["claims_changes"].as_object().unwrap());
        let (status, reason) = post(&s.resource, &token).await;
        match variant["expect"].as_str().unwrap() {
            "accepted" => assert_eq!(status, 200, "{name}: {reason}"),
            expect => assert_eq!((status, reason.as_str()), (401, expect), "{name}"),
        }
    }
    assert_eq!(realms.hits("initech") + realms.hits("master"), 0);
}
