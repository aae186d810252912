//! Calling downstream APIs as the caller, never with the caller's token
//! (issue 18; MCP "Token passthrough", RFC 8693): the layer keeps the
//! caller's `Authorization` header from the handlers, the exchange runs
//! against the real `TestIssuer` token endpoint, and a real downstream API on
//! loopback verifies what it receives with a `JwtVerifier` for its own
//! audience.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use futures_util::future::BoxFuture;
use mcp_oauth2::testing::{ClientRegistration, TestIssuer};
use mcp_oauth2::verify::ClientAuthMethod;
use mcp_oauth2::{
    AuthConfig, AuthContext, AuthLayer, DownstreamClient, ExchangeErrorKind, ExchangeGrant,
    ExchangeRequest, ExchangeSettings, ExchangeStore, JwtVerifier, StoredToken, TokenExchanger,
};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use support::fixture::{bounded, call_result, legacy_client, stateless_client, verify};
use support::notes::Notes;
use support::notes::server::Downstream;

/// The confidential client the MCP server exchanges tokens as.
const CLIENT: &str = "mcp-server";
const SECRET: &str = "s3cret-of-the-mcp-server";

/// A real downstream API on loopback. `GET /api/me` verifies the Bearer
/// token with a `JwtVerifier` for the API's own audience and echoes `sub`,
/// `aud`, `act` and `client_id`; every `Authorization` value it receives is
/// recorded. `/api/away` redirects to another origin, `/api/home` to
/// `/api/me`. `POST /fake-token` is a token endpoint that answers what the
/// test set (`{SUBJECT}` in the body is replaced by the `subject_token`).
struct Api {
    base: String,
    audience: String,
    seen: Arc<Mutex<Vec<String>>>,
    fake: Arc<Mutex<(u16, String)>>,
    /// Another origin, answering any request with 200 and plain text.
    other_base: String,
    other_hits: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct ApiState {
    verifier: JwtVerifier,
    seen: Arc<Mutex<Vec<String>>>,
    fake: Arc<Mutex<(u16, String)>>,
    other: String,
}

impl Api {
    async fn start(issuer: &TestIssuer) -> Self {
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_base = format!("http://{}", other.local_addr().unwrap());
        let other_hits = Arc::new(AtomicUsize::new(0));
        let hits = Arc::clone(&other_hits);
        let other_app = Router::new().fallback(any(move || {
            let hits = Arc::clone(&hits);
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "the other origin"
            }
        }));
        tokio::spawn(async move { axum::serve(other, other_app).await });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let audience = format!("{base}/api");
        let config = AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(&audience)
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let fake = Arc::new(Mutex::new((200, String::new())));
        let state = ApiState {
            verifier: JwtVerifier::new(&config).unwrap(),
            seen: Arc::clone(&seen),
            fake: Arc::clone(&fake),
            other: other_base.clone(),
        };
        let app = Router::new()
            .route("/api/me", get(me))
            .route("/api/away", get(away))
            .route("/api/home", get(home))
            // 64 KiB and one byte more than `downstream_whoami` passes on.
            .route("/api/big", get(|| async { "x".repeat(64 * 1024 + 1) }))
            .route("/api/just", get(|| async { "y".repeat(64 * 1024) }))
            .route(
                "/api/loop",
                get(|| async { (StatusCode::FOUND, [("location", "/api/loop")]) }),
            )
            .route("/fake-token", any(fake_token))
            .route(
                "/slow-token",
                any(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "{}"
                }),
            )
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            audience,
            seen,
            fake,
            other_base,
            other_hits,
        }
    }

    fn me(&self) -> String {
        format!("{}/me", self.audience)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn answer(&self, status: u16, body: &str) {
        *self.fake.lock().unwrap() = (status, body.to_owned());
    }
}

async fn me(State(st): State<ApiState>, headers: HeaderMap) -> (StatusCode, String) {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return (StatusCode::UNAUTHORIZED, "no token".into());
    };
    st.seen.lock().unwrap().push(value.to_owned());
    let Some(token) = value.strip_prefix("Bearer ") else {
        return (StatusCode::UNAUTHORIZED, "not Bearer".into());
    };
    match verify(&st.verifier, token).await {
        Ok(ctx) => (
            StatusCode::OK,
            json!({
                "sub": ctx.subject(),
                "aud": ctx.audience(),
                "act": ctx.claim("act"),
                "client_id": ctx.client_id(),
            })
            .to_string(),
        ),
        Err(kind) => (StatusCode::UNAUTHORIZED, kind.code().to_owned()),
    }
}

async fn away(State(st): State<ApiState>) -> impl IntoResponse {
    (
        StatusCode::FOUND,
        [("location", format!("{}/stolen", st.other))],
    )
}

async fn home() -> impl IntoResponse {
    (StatusCode::FOUND, [("location", "/api/me")])
}

async fn fake_token(State(st): State<ApiState>, body: String) -> impl IntoResponse {
    let subject = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "subject_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let (status, answer) = st.fake.lock().unwrap().clone();
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        answer.replace("{SUBJECT}", &subject),
    )
}

/// An issuer that knows the MCP server as a confidential client.
async fn issuer_with_lifetime(lifetime: Duration) -> TestIssuer {
    let issuer = TestIssuer::builder()
        .access_token_lifetime(lifetime)
        .start()
        .await
        .unwrap();
    issuer.register_client(ClientRegistration::confidential(CLIENT, SECRET));
    issuer
}

/// The reference server's downstream configuration, as from its variables.
fn downstream_vars(api: &Api, token_endpoint: Option<&str>) -> Downstream {
    downstream_vars_with(api, token_endpoint, &[])
}

/// The same, with more variables.
fn downstream_vars_with(
    api: &Api,
    token_endpoint: Option<&str>,
    more: &[(&'static str, &str)],
) -> Downstream {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("MCP_OAUTH2_DOWNSTREAM_AUDIENCE", api.audience.clone()),
        ("MCP_OAUTH2_DOWNSTREAM_URL", api.me()),
        ("MCP_OAUTH2_CLIENT_ID", CLIENT.to_owned()),
        ("MCP_OAUTH2_CLIENT_SECRET", SECRET.to_owned()),
        ("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1".to_owned()),
    ]);
    if let Some(endpoint) = token_endpoint {
        vars.insert("MCP_OAUTH2_TOKEN_ENDPOINT", endpoint.to_owned());
    }
    for (name, value) in more {
        vars.insert(name, (*value).to_owned());
    }
    Downstream::from_vars(|name| vars.get(name).cloned(), None).unwrap()
}

// MCP "Token passthrough": by default the handler cannot read the caller's
// Authorization header (nor a DPoP proof), with either lifecycle; the tool
// does list the headers it sees.
#[tokio::test]
async fn handlers_do_not_see_the_callers_token_by_default() {
    let notes = Notes::start().await;
    let token = notes.token(&["notes:read"]);
    for stateless in [false, true] {
        let client = if stateless {
            bounded(stateless_client(&notes.resource, &token))
                .await
                .unwrap()
        } else {
            bounded(legacy_client(&notes.resource, &token))
                .await
                .unwrap()
        };
        let (is_error, text) = call_result(&client, "seen_headers").await;
        assert!(!is_error, "{text}");
        let names: Vec<String> = serde_json::from_str(&text).unwrap();
        assert!(names.contains(&"content-type".to_owned()), "{names:?}");
        assert!(!names.contains(&"authorization".to_owned()), "{names:?}");
        assert!(!names.contains(&"dpop".to_owned()), "{names:?}");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(!text.contains(&token));
        client.cancel().await.unwrap();
    }
}

// The loudly named opt-out keeps the header where handlers can read it.
#[tokio::test]
async fn the_unsafe_opt_out_forwards_the_header() {
    let issuer = TestIssuer::start().await.unwrap();
    let notes = Notes::start_on(issuer, |b| b, None, true).await;
    let token = notes.token(&["notes:read"]);
    let client = bounded(legacy_client(&notes.resource, &token))
        .await
        .unwrap();
    let (_, text) = call_result(&client, "seen_headers").await;
    let names: Vec<String> = serde_json::from_str(&text).unwrap();
    assert!(names.contains(&"authorization".to_owned()), "{names:?}");
    client.cancel().await.unwrap();
}

// The reference server's `downstream_whoami`: the downstream sees a token
// with its own audience, the caller as subject and this server as actor,
// never the caller's token; two calls cost one exchange; another caller
// gets its own token (the cache is per principal).
#[tokio::test]
async fn downstream_whoami_calls_the_api_as_the_caller() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    // The token endpoint discovered from the caller's issuer (RFC 8414).
    let notes = Notes::start_on(issuer, |b| b, Some(downstream_vars(&api, None)), false).await;
    let alice = notes.token_for("alice", &["notes:read"]);
    let client = bounded(legacy_client(&notes.resource, &alice))
        .await
        .unwrap();
    for _ in 0..2 {
        let (is_error, text) = call_result(&client, "downstream_whoami").await;
        assert!(!is_error, "{text}");
        let who: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(who["sub"], "alice");
        assert_eq!(who["aud"], json!([api.audience]));
        assert_eq!(who["act"], json!({ "sub": CLIENT }));
        assert_eq!(who["client_id"], CLIENT);
    }
    assert_eq!(notes.issuer.exchange_hits(), 1, "two calls, one exchange");
    client.cancel().await.unwrap();

    let bob = notes.token_for("bob", &["notes:read"]);
    let client = bounded(legacy_client(&notes.resource, &bob)).await.unwrap();
    let (_, text) = call_result(&client, "downstream_whoami").await;
    let who: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(who["sub"], "bob");
    assert_eq!(notes.issuer.exchange_hits(), 2);
    client.cancel().await.unwrap();

    let seen = api.seen();
    assert_eq!(seen.len(), 3);
    for value in &seen {
        assert!(
            !value.contains(&alice) && !value.contains(&bob),
            "passthrough"
        );
    }
}

// The downstream's answer goes whole into the tool result, so it is read
// up to 64 KiB (found from outside: 30 MB were passed back whole); one
// byte more is a tool error saying so.
#[tokio::test]
async fn downstream_whoami_reads_at_most_64_kib() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    for (path, whole) in [("/api/just", true), ("/api/big", false)] {
        let url = format!("{}{path}", api.base);
        let notes = Notes::start_on(
            issuer_with_lifetime(Duration::from_secs(300)).await,
            |b| b,
            Some(downstream_vars_with(
                &api,
                None,
                &[("MCP_OAUTH2_DOWNSTREAM_URL", &url)],
            )),
            false,
        )
        .await;
        let token = notes.token_for("alice", &["notes:read"]);
        let client = bounded(legacy_client(&notes.resource, &token))
            .await
            .unwrap();
        let (is_error, text) = call_result(&client, "downstream_whoami").await;
        if whole {
            assert!(!is_error, "{}", &text[..100]);
            assert_eq!(text.len(), 64 * 1024);
        } else {
            assert!(is_error, "{}", &text[..text.len().min(100)]);
            assert_eq!(text, "the downstream's answer is larger than 64 KiB");
        }
        client.cancel().await.unwrap();
    }
}

// The reference server trusting two issuers (`MCP_OAUTH2_ISSUER=A,B`): its
// client is taken as registered at the first, so a caller of B gets
// `issuer_not_allowed` as the tool's error, B's token endpoint is never
// sent the secret, and A's is never sent B's caller's token; a caller of A
// is served. The same with `MCP_OAUTH2_TOKEN_ENDPOINT` set to A's endpoint
// (found from outside: B's users' tokens, good at this server, went to A's
// endpoint as the subject token, and the exchange succeeded).
#[tokio::test]
async fn the_reference_server_exchanges_only_its_first_issuer_s_callers() {
    for given_endpoint in [false, true] {
        let a = issuer_with_lifetime(Duration::from_secs(300)).await;
        let b = issuer_with_lifetime(Duration::from_secs(300)).await;
        let api = Api::start(&a).await;
        let issuers = format!("{},{}", a.issuer(), b.issuer());
        let endpoint = given_endpoint.then(|| a.token_endpoint());
        let vars = downstream_vars_with(
            &api,
            endpoint.as_deref(),
            &[("MCP_OAUTH2_ISSUER", &issuers)],
        );
        let b_issuer = b.issuer().to_owned();
        let notes = Notes::start_on(a, |c| c.issuer(b_issuer), Some(vars), false).await;
        let from_b = b
            .token()
            .subject("alice")
            .audience(&notes.resource)
            .scopes(["notes:read"])
            .sign();
        let client = bounded(legacy_client(&notes.resource, &from_b))
            .await
            .unwrap();
        let (is_error, text) = call_result(&client, "downstream_whoami").await;
        let case = format!("token endpoint given: {given_endpoint}");
        assert!(
            is_error && text.contains("issuer_not_allowed"),
            "{case}: {text}"
        );
        assert_eq!(notes.issuer.exchange_hits(), 0, "{case}: A heard nothing");
        assert_eq!((b.token_hits(), b.exchange_hits()), (0, 0), "{case}");
        client.cancel().await.unwrap();
        let from_a = notes.token_for("alice", &["notes:read"]);
        let client = bounded(legacy_client(&notes.resource, &from_a))
            .await
            .unwrap();
        let (is_error, text) = call_result(&client, "downstream_whoami").await;
        assert!(!is_error, "{case}: {text}");
        assert_eq!(notes.issuer.exchange_hits(), 1, "{case}");
        client.cancel().await.unwrap();
    }
}

// Whose callers the reference server exchanges (`MCP_OAUTH2_ISSUER`,
// `MCP_OAUTH2_TENANTS`): every caller of one plain issuer; the first of
// several; with an issuer template first, the tenants listed, and nobody
// with `*` (found from outside: a template alone sent the client's secret
// to the token endpoint of any tenant a token named). The exchange refuses
// the others with `issuer_not_allowed` before sending anything
// (`the_reference_server_exchanges_only_its_first_issuer_s_callers`).
#[test]
fn the_reference_server_exchanges_the_callers_its_client_is_registered_for() {
    use support::notes::server::exchange_issuers;
    let t = "https://login.example/t/{tenant}";
    let cases: [(&str, &str, Option<Vec<&str>>); 7] = [
        ("https://a.example", "", None),
        (
            "https://a.example, https://b.example",
            "",
            Some(vec!["https://a.example"]),
        ),
        (t, "*", Some(vec![t])),
        (t, "", Some(vec![t])),
        (
            t,
            "acme, beta",
            Some(vec![
                t,
                "https://login.example/t/acme",
                "https://login.example/t/beta",
            ]),
        ),
        (
            &format!("{t},https://a.example"),
            "acme",
            Some(vec![t, "https://login.example/t/acme"]),
        ),
        ("", "", None),
    ];
    for (issuers, tenants, expected) in cases {
        let expected = expected.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(
            exchange_issuers(issuers, tenants),
            expected,
            "{issuers} / {tenants}"
        );
    }
}

// A failed exchange's result names its code, not its detail: the token
// endpoint's URL and the HTTP client's error text are the operator's, in
// the log (found from outside: the internal endpoint's URL reached any
// caller).
#[tokio::test]
async fn a_failed_exchange_tells_the_caller_its_code_not_its_detail() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let downstream = downstream_vars_with(&api, Some("http://127.0.0.1:1/internal-token"), &[]);
    let notes = Notes::start_on(issuer, |b| b, Some(downstream), false).await;
    let token = notes.token_for("alice", &["notes:read"]);
    let client = bounded(legacy_client(&notes.resource, &token))
        .await
        .unwrap();
    let (is_error, text) = call_result(&client, "downstream_whoami").await;
    assert!(is_error, "{text}");
    assert_eq!(text, "transport: the token exchange failed");
    client.cancel().await.unwrap();

    // The exchange goes through and the downstream call fails: said as
    // such (found from outside: it read "the token exchange failed").
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let downstream = downstream_vars_with(
        &api,
        None,
        &[("MCP_OAUTH2_DOWNSTREAM_URL", "http://127.0.0.1:1/me")],
    );
    let notes = Notes::start_on(issuer, |b| b, Some(downstream), false).await;
    let token = notes.token_for("alice", &["notes:read"]);
    let client = bounded(legacy_client(&notes.resource, &token))
        .await
        .unwrap();
    let (is_error, text) = call_result(&client, "downstream_whoami").await;
    assert!(is_error, "{text}");
    assert_eq!(text, "downstream: the call to the downstream API failed");
    assert_eq!(notes.issuer.exchange_hits(), 1);
    client.cancel().await.unwrap();
}

// Without its variables the tool answers `isError: true` naming each
// missing one; a refused exchange names the token endpoint's error code.
#[tokio::test]
async fn downstream_whoami_errors_are_tool_results() {
    let notes = Notes::start().await;
    let token = notes.token(&["notes:read"]);
    let client = bounded(legacy_client(&notes.resource, &token))
        .await
        .unwrap();
    let (is_error, text) = call_result(&client, "downstream_whoami").await;
    assert!(is_error);
    for var in [
        "MCP_OAUTH2_DOWNSTREAM_AUDIENCE",
        "MCP_OAUTH2_DOWNSTREAM_URL",
        "MCP_OAUTH2_CLIENT_ID",
        "MCP_OAUTH2_CLIENT_SECRET",
    ] {
        assert!(text.contains(var), "{text}");
    }
    client.cancel().await.unwrap();
    // Only the missing ones are named.
    let vars = HashMap::from([
        ("MCP_OAUTH2_DOWNSTREAM_AUDIENCE", "https://api.example"),
        ("MCP_OAUTH2_CLIENT_ID", "  "),
    ]);
    let Ok(Downstream::Unavailable(why)) =
        Downstream::from_vars(|n| vars.get(n).map(|v| v.to_string()), None)
    else {
        panic!("configured without its variables")
    };
    assert!(
        !why.contains("AUDIENCE") && why.contains("MCP_OAUTH2_CLIENT_ID"),
        "{why}"
    );
    // A variable that is set but unusable is an error naming it (the
    // reference server stops before listening: tests/reference_config.rs),
    // whatever else is missing.
    let vars: HashMap<&str, &str> = HashMap::from([
        ("MCP_OAUTH2_DOWNSTREAM_AUDIENCE", "https://api.example"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "https://api.example/me"),
        ("MCP_OAUTH2_CLIENT_ID", "id"),
        ("MCP_OAUTH2_CLIENT_SECRET", "secret"),
    ]);
    for (name, bad, loopback) in [
        ("MCP_OAUTH2_TOKEN_ENDPOINT", "not a url", "1"),
        ("MCP_OAUTH2_TOKEN_ENDPOINT", "http://as.example/token", "1"),
        ("MCP_OAUTH2_TOKEN_ENDPOINT", "http://127.0.0.1:1/token", "0"),
        (
            "MCP_OAUTH2_TOKEN_ENDPOINT",
            "http://svc:S3cr3tPw@127.0.0.1:1/token",
            "1",
        ),
        (
            "MCP_OAUTH2_DOWNSTREAM_URL",
            "https://u:S3cr3tPw@api.example/me",
            "1",
        ),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "https://api.example/me#x", "1"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "garbage", "1"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "http://api.example/me", "1"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "data:text/plain,me", "1"),
        ("MCP_OAUTH2_EXCHANGE_CACHE_KEY", "short", "1"),
        ("MCP_OAUTH2_EXCHANGE_CACHE_KEY", "c2hvcnQ=", "1"),
        // One byte repeated (found from outside: an all-zero key was
        // accepted).
        (
            "MCP_OAUTH2_EXCHANGE_CACHE_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "1",
        ),
        // A counter (found from outside: the bytes 0 to 31 were taken):
        // base64 of `0123456789abcdefghijklmnopqrstuv`.
        (
            "MCP_OAUTH2_EXCHANGE_CACHE_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXY=",
            "1",
        ),
        // A short pattern repeated, or a key of a few distinct bytes
        // (found from outside: `abab...` was accepted): base64 of
        // `abab...ab` and of 31 zeros and a one.
        (
            "MCP_OAUTH2_EXCHANGE_CACHE_KEY",
            "YWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWI=",
            "1",
        ),
        (
            "MCP_OAUTH2_EXCHANGE_CACHE_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=",
            "1",
        ),
    ] {
        for without in [None, Some("MCP_OAUTH2_DOWNSTREAM_AUDIENCE")] {
            let mut vars = vars.clone();
            vars.insert(name, bad);
            vars.insert("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", loopback);
            if let Some(without) = without {
                vars.remove(without);
            }
            let why =
                Downstream::from_vars(|n| vars.get(n).map(|v| v.to_string()), None).expect_err(bad);
            assert!(why.contains(name), "{name}={bad:?}: {why}");
            assert!(!why.contains("S3cr3tPw"), "{why}");
        }
    }
    // The control: loopback http:// with the opt-in, a 32-byte key.
    let mut vars = vars.clone();
    vars.insert("MCP_OAUTH2_TOKEN_ENDPOINT", "http://127.0.0.1:1/token");
    vars.insert("MCP_OAUTH2_DOWNSTREAM_URL", "http://localhost:1/me");
    vars.insert("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1");
    vars.insert(
        "MCP_OAUTH2_EXCHANGE_CACHE_KEY",
        "+//j5RbU51P9odSBOayXXEYELblJWjUk5QDzDLzU73I=",
    );
    // A key needs a store to share the tokens through (MCP_OAUTH2_REDIS_URL).
    let why = Downstream::from_vars(|n| vars.get(n).map(|v| v.to_string()), None)
        .err()
        .unwrap_or_default();
    assert!(
        why.contains("MCP_OAUTH2_EXCHANGE_CACHE_KEY") && why.contains("MCP_OAUTH2_REDIS_URL"),
        "{why}"
    );
    // The key in either base64 alphabet, padded or not (found from
    // outside: only padded standard base64 was read), and wrapped across
    // lines as `base64` writes it (found from outside: refused as not
    // base64).
    for key in [
        "+//j5RbU51P9odSBOayXXEYELblJWjUk5QDzDLzU73I=",
        "+//j5RbU51P9odSBOayXXEYELblJWjUk5QDzDLzU73I",
        "-__j5RbU51P9odSBOayXXEYELblJWjUk5QDzDLzU73I",
        "-__j5RbU51P9odSBOayXXEYELblJWjUk5QDzDLzU73I=",
        "+//j5RbU51P9odSBOayXX\nEYELblJWjUk5QDzDLzU73I=\n",
    ] {
        let mut vars = vars.clone();
        vars.insert("MCP_OAUTH2_EXCHANGE_CACHE_KEY", key);
        let store: std::sync::Arc<dyn mcp_oauth2::store::SharedStore> =
            std::sync::Arc::new(mcp_oauth2::store::MemoryStore::default());
        assert!(
            matches!(
                Downstream::from_vars(|n| vars.get(n).map(|v| v.to_string()), Some(store)),
                Ok(Downstream::Ready { .. })
            ),
            "{key}"
        );
    }
    // Step-up scopes a challenge cannot name.
    for bad in ["offline_access", "a\"b", "caf\u{e9}"] {
        let mut vars = vars.clone();
        vars.remove("MCP_OAUTH2_EXCHANGE_CACHE_KEY");
        vars.insert("MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES", bad);
        let why = Downstream::from_vars(|n| vars.get(n).map(|v| v.to_string()), None)
            .err()
            .unwrap_or_default();
        assert!(
            why.contains("MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES"),
            "{bad}: {why}"
        );
    }

    // Refusals by the real token endpoint.
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let endpoint = issuer.token_endpoint();
    let notes = Notes::start_on(
        issuer,
        |b| b,
        Some(downstream_vars(&api, Some(&endpoint))),
        false,
    )
    .await;
    let token = notes.token(&["notes:read"]);
    let client = bounded(legacy_client(&notes.resource, &token))
        .await
        .unwrap();
    notes.issuer.refuse_all_exchanges(true);
    let (is_error, text) = call_result(&client, "downstream_whoami").await;
    assert!(is_error && text.starts_with("invalid_grant"), "{text}");
    notes.issuer.refuse_all_exchanges(false);
    notes.issuer.refuse_exchange_audience(api.audience.clone());
    let (is_error, text) = call_result(&client, "downstream_whoami").await;
    assert!(is_error && text.starts_with("invalid_target"), "{text}");
    // Failures are not kept: each call asked again.
    assert_eq!(notes.issuer.exchange_hits(), 2);
    assert!(api.seen().is_empty());
    client.cancel().await.unwrap();
}

/// A protected axum app whose `GET /call` exchanges the caller's token
/// with `exchanger` and GETs `url` with the result, answering
/// `<status>\n<body>` (or 502 with the error code).
#[derive(Clone)]
struct App {
    exchanger: TokenExchanger,
    http: DownstreamClient,
    audience: String,
    url: String,
    scopes: Vec<String>,
}

async fn call_downstream(State(app): State<App>, auth: AuthContext) -> (StatusCode, String) {
    let request = ExchangeRequest::audience(app.audience.as_str()).scopes(app.scopes.clone());
    let token = match app.exchanger.exchange_for(&auth, request).await {
        Ok(token) => token,
        Err(e) if e.needs_user_interaction() => {
            let suberror = e.suberror().unwrap_or("-");
            return (StatusCode::FORBIDDEN, format!("{} {suberror}", e.code()));
        }
        Err(e) => return (StatusCode::BAD_GATEWAY, e.code().to_owned()),
    };
    match app.http.get(&app.url, &token).await {
        Ok(r) => (
            StatusCode::OK,
            format!("{}\n{}", r.status().as_u16(), r.text().await.unwrap()),
        ),
        Err(e) => (StatusCode::BAD_GATEWAY, e.code().to_owned()),
    }
}

/// Serves `app` behind the layer; returns its `/call` URL and a token of
/// `alice` for it.
async fn serve_app(issuer: &TestIssuer, app: App) -> (String, String) {
    let (url, mut tokens) = serve_app_trusting(&[issuer], app).await;
    (url, tokens.remove(0))
}

/// Serves `app` behind a layer trusting `issuers`; its `/call` URL and a
/// token of `alice` from each issuer.
async fn serve_app_trusting(issuers: &[&TestIssuer], app: App) -> (String, Vec<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    let mut config = AuthConfig::builder();
    for issuer in issuers {
        config = config.issuer(issuer.issuer());
    }
    let config = config
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let router = Router::new()
        .route("/call", get(call_downstream))
        .with_state(app)
        .layer(AuthLayer::new(config).unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let tokens = issuers
        .iter()
        .map(|issuer| {
            issuer
                .token()
                .subject("alice")
                .audience(&resource)
                .scopes(["notes:read"])
                .sign()
        })
        .collect();
    (format!("{base}/call"), tokens)
}

fn settings(issuer: &TestIssuer) -> ExchangeSettings {
    ExchangeSettings::new(CLIENT, SECRET)
        .endpoint(url::Url::parse(&issuer.token_endpoint()).unwrap())
        .allow_insecure_http_for_loopback(true)
}

fn app(api: &Api, settings: ExchangeSettings) -> App {
    App {
        exchanger: TokenExchanger::new(settings).unwrap(),
        http: DownstreamClient::new(Duration::from_secs(5))
            .unwrap()
            .allow_insecure_http_for_loopback(true),
        audience: api.audience.clone(),
        url: api.me(),
        scopes: vec!["read".into()],
    }
}

async fn get_call(url: &str, token: &str) -> (u16, String) {
    let resp = bounded(reqwest::Client::new().get(url).bearer_auth(token).send())
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

// A server trusting two authorization servers, its client registered at
// one (A): with `ExchangeSettings::issuer(A)` a caller of B gets
// `issuer_not_allowed` and B hears nothing (no discovery, no token
// request: the client's secret never reaches it); a caller of A is
// exchanged at A's discovered endpoint. Without the setting (the control)
// B's endpoint is discovered and sent the secret.
#[tokio::test]
async fn the_client_secret_goes_only_to_the_issuers_it_is_registered_at() {
    let a = issuer_with_lifetime(Duration::from_secs(300)).await;
    let b = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&a).await;
    let discovered =
        || ExchangeSettings::new(CLIENT, SECRET).allow_insecure_http_for_loopback(true);
    let bound = app(&api, discovered().issuer(a.issuer()));
    let (url, tokens) = serve_app_trusting(&[&a, &b], bound).await;
    let [from_a, from_b] = <[String; 2]>::try_from(tokens).unwrap();
    let (status, body) = get_call(&url, &from_b).await;
    assert_eq!((status, body.as_str()), (502, "issuer_not_allowed"));
    // B's token endpoint was never called (its metadata and keys were
    // fetched by the layer, to verify the token).
    assert_eq!((b.token_hits(), b.exchange_hits()), (0, 0));
    let (status, body) = get_call(&url, &from_a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(a.exchange_hits(), 1);

    let open = app(&api, discovered());
    let (url, tokens) = serve_app_trusting(&[&a, &b], open).await;
    let from_b = &tokens[1];
    let _ = get_call(&url, from_b).await;
    assert_eq!(b.exchange_hits(), 1, "the control: B got the exchange");
}

// Single flight: concurrent calls needing the same token wait for one
// exchange.
#[tokio::test]
async fn concurrent_calls_share_one_exchange() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let app = app(&api, settings(&issuer));
    let exchanger = app.exchanger.clone();
    let (url, token) = serve_app(&issuer, app).await;
    let calls = (0..8).map(|_| get_call(&url, &token));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("200\n"), "{body}");
        let who: Value = serde_json::from_str(body.lines().nth(1).unwrap()).unwrap();
        assert_eq!(who["sub"], "alice");
    }
    assert_eq!(issuer.exchange_hits(), 1);
    assert_eq!(exchanger.exchanges(), 1);
}

// A token is reused until `expires_in` minus the margin, then exchanged
// again.
#[tokio::test]
async fn an_expired_exchanged_token_is_renewed() {
    let issuer = issuer_with_lifetime(Duration::from_secs(2)).await;
    let api = Api::start(&issuer).await;
    let app = app(
        &api,
        settings(&issuer).expiry_margin(Duration::from_secs(1)),
    );
    let (url, token) = serve_app(&issuer, app).await;
    assert_eq!(get_call(&url, &token).await.0, 200);
    assert_eq!(get_call(&url, &token).await.0, 200);
    assert_eq!(issuer.exchange_hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = get_call(&url, &token).await;
    assert!(status == 200 && body.starts_with("200\n"), "{body}");
    assert_eq!(issuer.exchange_hits(), 2);
    // A lifetime within the margin: never kept, exchanged every time.
    let app2 = app_with_margin(&api, &issuer, Duration::from_secs(5));
    let (url, token) = serve_app(&issuer, app2).await;
    get_call(&url, &token).await;
    get_call(&url, &token).await;
    assert_eq!(issuer.exchange_hits(), 4);
}

fn app_with_margin(api: &Api, issuer: &TestIssuer, margin: Duration) -> App {
    app(api, settings(issuer).expiry_margin(margin))
}

// The Entra ID on-behalf-of grant (JWT bearer, `requested_token_use`,
// `<audience>/.default`), with client_secret_post; the preset's endpoint.
#[tokio::test]
async fn entra_on_behalf_of_against_the_test_issuer() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let mut app = app(
        &api,
        settings(&issuer)
            .grant(ExchangeGrant::EntraOnBehalfOf)
            .auth_method(ClientAuthMethod::ClientSecretPost),
    );
    app.scopes.clear();
    let (url, token) = serve_app(&issuer, app).await;
    let (status, body) = get_call(&url, &token).await;
    assert_eq!(status, 200, "{body}");
    let who: Value = serde_json::from_str(body.lines().nth(1).unwrap()).unwrap();
    assert_eq!(who["sub"], "alice");
    assert_eq!(who["aud"], json!([api.audience]));
    let preset = ExchangeSettings::entra_on_behalf_of("contoso.onmicrosoft.com", "id", "s");
    let dbg = format!("{:?}", preset.unwrap());
    assert!(
        dbg.contains("login.microsoftonline.com")
            && dbg.contains("\"/contoso.onmicrosoft.com/oauth2/v2.0/token\"")
            && dbg.contains("EntraOnBehalfOf")
            && dbg.contains("ClientSecretPost"),
        "{dbg}"
    );
    // A tenant cannot add path segments.
    let dbg = format!(
        "{:?}",
        ExchangeSettings::entra_on_behalf_of("../evil/x", "id", "s").unwrap()
    );
    assert!(
        dbg.contains("\"/..%2Fevil%2Fx/oauth2/v2.0/token\""),
        "{dbg}"
    );
    assert!(!dbg.contains("\"s\""), "{dbg}");
}

/// `call` as a stateless (2026-07-28) client sends it with `token`: it must
/// be answered by the step-up challenge (403 `insufficient_scope` with the
/// resource metadata); the scopes it asks for.
async fn step_up_scope(notes: &Notes, token: &str, call: &Value) -> String {
    use support::fixture::{challenge, param};
    let mut params = call.clone();
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "downstream_whoami"),
    ];
    let resp = notes.post(token, &headers, &body.to_string()).await;
    assert_eq!(resp.status(), 403);
    let c = challenge(&resp);
    assert_eq!(param(&c, "error"), Some("insufficient_scope"));
    assert!(param(&c, "resource_metadata").is_some());
    param(&c, "scope").unwrap().to_owned()
}

// Issue 18, "where the user must consent or step up, to the MCP step-up
// challenge": the token endpoint answers `consent_required`, and the tool
// call becomes HTTP 403 `insufficient_scope` naming the step-up scope
// (MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES) and the caller's scopes, with the
// resource metadata, in both protocol revisions; the downstream is never
// called. A token that carries the consent
// gets through. Other refusals stay tool results.
#[tokio::test]
async fn a_downstream_needing_consent_answers_the_step_up_challenge() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    issuer.require_consent_for_exchange(api.audience.clone(), "downstream:consent");
    let downstream = downstream_vars_with(
        &api,
        None,
        &[("MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES", "downstream:consent")],
    );
    let notes = Notes::start_on(issuer, |b| b, Some(downstream), false).await;
    let alice = notes.token_for("alice", &["notes:read", "notes:write"]);
    // A token whose client asked for a refresh token carries
    // `offline_access`, and an authorization server may grant texts that
    // are no scope token: left out of the challenge, which still comes
    // (found from outside: 500 `requirement_failed` instead).
    let offline = notes.token_for(
        "alice",
        &["notes:read", "notes:write", "offline_access", "we\"ird"],
    );
    let call = json!({ "name": "downstream_whoami", "arguments": {} });
    // Stateless (an SSE answer, held until its first event), twice.
    for token in [&alice, &alice, &offline] {
        let scope = step_up_scope(&notes, token, &call).await;
        let scopes: Vec<&str> = scope.split(' ').collect();
        assert_eq!(
            scopes,
            ["downstream:consent", "notes:read", "notes:write"],
            "{scope}"
        );
    }
    assert!(api.seen().is_empty(), "the downstream was never called");
    assert_eq!(notes.issuer.exchange_hits(), 3, "refusals are not cached");

    // A caller holding more than 2 KiB of scopes (found from outside: 400
    // introspected scopes made a 17 KB head that Node's fetch dropped) is
    // asked for the step-up scope alone; at the budget, for all of them.
    let many: Vec<String> = (0..200).map(|i| format!("extra:scope{i:03}")).collect();
    let mut held: Vec<&str> = vec!["notes:read", "notes:write"];
    held.extend(many.iter().map(String::as_str));
    let crowded = notes.token_for("alice", &held);
    let fits: Vec<String> = (0..100).map(|i| format!("extra:scope{i:03}")).collect();
    let mut under: Vec<&str> = vec!["notes:read", "notes:write"];
    under.extend(fits.iter().map(String::as_str));
    let roomy = notes.token_for("alice", &under);
    for (token, expected) in [
        (&crowded, vec!["downstream:consent"]),
        (&roomy, {
            let mut all = vec!["downstream:consent"];
            all.extend(under.iter().copied());
            all
        }),
    ] {
        let scope = step_up_scope(&notes, token, &call).await;
        let scopes: Vec<&str> = scope.split(' ').collect();
        assert_eq!(scopes, expected, "{scope}");
    }

    // Legacy session (rmcp client): the same refusal is an error, never a
    // result with someone's data.
    let client = bounded(legacy_client(&notes.resource, &alice))
        .await
        .unwrap();
    let refused = bounded(client.call_tool(CallToolRequestParams::new("downstream_whoami"))).await;
    assert!(refused.is_err(), "{refused:?}");
    client.cancel().await.unwrap();

    // After the user consented (the client authorized again with the
    // step-up scope), the exchange goes through.
    let consented = notes.token_for("alice", &["notes:read", "downstream:consent"]);
    let client = bounded(legacy_client(&notes.resource, &consented))
        .await
        .unwrap();
    let (is_error, text) = call_result(&client, "downstream_whoami").await;
    assert!(!is_error, "{text}");
    let who: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(who["sub"], "alice");
    client.cancel().await.unwrap();
    assert_eq!(api.seen().len(), 1);
}

// Entra ID's on-behalf-of says "consent first" as `invalid_grant` with
// `suberror: consent_required`: typed as needing the user, suberror kept.
#[tokio::test]
async fn entra_consent_required_is_typed_as_needing_the_user() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    issuer.require_consent_for_exchange(api.audience.clone(), "downstream:consent");
    let mut app = app(
        &api,
        settings(&issuer)
            .grant(ExchangeGrant::EntraOnBehalfOf)
            .auth_method(ClientAuthMethod::ClientSecretPost),
    );
    app.scopes.clear();
    let (url, token) = serve_app(&issuer, app).await;
    assert_eq!(
        get_call(&url, &token).await,
        (403, "invalid_grant consent_required".into())
    );
    // The RFC 8693 grant, same policy: the OpenID Connect code.
    let (url, token) = serve_app(&issuer, self::app(&api, settings(&issuer))).await;
    assert_eq!(
        get_call(&url, &token).await,
        (403, "consent_required -".into())
    );
    assert!(api.seen().is_empty());
}

// Client authentication as for introspection: a wrong secret is
// `invalid_client`, a public client `unauthorized_client`, an audience
// refused `invalid_target`, a subject token the issuer cannot vouch for
// (another issuer's) `invalid_grant`.
#[tokio::test]
async fn refusals_are_typed() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    issuer.register_client(ClientRegistration::public("public-app"));
    let api = Api::start(&issuer).await;
    let wrong = app(
        &api,
        ExchangeSettings::new(CLIENT, "wrong")
            .endpoint(url::Url::parse(&issuer.token_endpoint()).unwrap())
            .allow_insecure_http_for_loopback(true),
    );
    let (url, token) = serve_app(&issuer, wrong).await;
    assert_eq!(get_call(&url, &token).await, (502, "invalid_client".into()));
    let public = app(
        &api,
        ExchangeSettings::new("public-app", "")
            .endpoint(url::Url::parse(&issuer.token_endpoint()).unwrap())
            .auth_method(ClientAuthMethod::ClientSecretPost)
            .allow_insecure_http_for_loopback(true),
    );
    let (url, token) = serve_app(&issuer, public).await;
    assert_eq!(
        get_call(&url, &token).await,
        (502, "unauthorized_client".into())
    );
    issuer.refuse_exchange_audience(api.audience.clone());
    let (url, token) = serve_app(&issuer, app(&api, settings(&issuer))).await;
    assert_eq!(get_call(&url, &token).await, (502, "invalid_target".into()));
    // Another issuer's token endpoint cannot vouch for this subject token.
    let stranger = issuer_with_lifetime(Duration::from_secs(300)).await;
    let (url, token) = serve_app(&issuer, app(&api, settings(&stranger))).await;
    assert_eq!(get_call(&url, &token).await, (502, "invalid_grant".into()));
    assert!(api.seen().is_empty());
}

/// The app served with its exchanges sent to the downstream API's
/// `/fake-token` (which answers what the test sets), and a caller's token.
async fn serve_with_fake_endpoint(issuer: &TestIssuer, api: &Api) -> (String, String) {
    let fake = ExchangeSettings::new(CLIENT, SECRET)
        .endpoint(url::Url::parse(&format!("{}/fake-token", api.base)).unwrap())
        .allow_insecure_http_for_loopback(true);
    serve_app(issuer, app(api, fake)).await
}

// A token endpoint's answer that is not a usable token response is
// refused with a precise kind, never used.
#[tokio::test]
async fn malformed_token_responses_are_refused() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let (url, token) = serve_with_fake_endpoint(&issuer, &api).await;
    let cases: [(u16, &str, &str); 18] = [
        // The caller's own token inside another text, and tokens that are
        // no RFC 6750 b64token (found from outside: `<token> ` reached the
        // downstream, which read the caller's token).
        (
            200,
            r#"{"access_token":"{SUBJECT} ","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":" {SUBJECT}","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"Bearer {SUBJECT}","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"{SUBJECT}.","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"{SUBJECT}\t","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"abc def","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"a\"b","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (200, r#"{"token_type":"Bearer"}"#, "malformed_response"),
        (
            200,
            r#"{"access_token":"","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"{SUBJECT}","token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"x","token_type":"DPoP"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"x","token_type":"Bearer","access_token":"y"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"x","token_type":"Bearer","expires_in":"60"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":5,"token_type":"Bearer"}"#,
            "malformed_response",
        ),
        (
            200,
            r#"{"access_token":"x","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:refresh_token"}"#,
            "malformed_response",
        ),
        (
            400,
            r#"{"error":"temporarily_unavailable"}"#,
            "temporarily_unavailable",
        ),
        // An answer that is no token response, nor an OAuth error answer:
        // malformed (found from outside: `transport`, which the README
        // keeps for no answer, 5xx and 429).
        (400, "{\"error\":\"bad\\u0022code\"}", "malformed_response"),
        (302, "{}", "malformed_response"),
    ];
    for (status, body, code) in cases {
        api.answer(status, body);
        assert_eq!(
            get_call(&url, &token).await,
            (502, code.to_owned()),
            "{body}"
        );
    }
    // Codes that need the user, and Entra's suberror (kept only when it is
    // a well-formed code).
    for (body, answer) in [
        (r#"{"error":"consent_required"}"#, "consent_required -"),
        (
            r#"{"error":"invalid_grant","suberror":"consent_required"}"#,
            "invalid_grant consent_required",
        ),
        (
            r#"{"error":"interaction_required","suberror":"bad\u0022one"}"#,
            "interaction_required -",
        ),
    ] {
        api.answer(400, body);
        assert_eq!(
            get_call(&url, &token).await,
            (403, answer.to_owned()),
            "{body}"
        );
    }
    api.answer(400, r#"{"error":"invalid_grant","suberror":"bad_token"}"#);
    assert_eq!(get_call(&url, &token).await, (502, "invalid_grant".into()));
    // A usable answer without `expires_in` is used but not kept.
    api.answer(
        200,
        r#"{"access_token":"opaque-downstream-token","token_type":"bearer","scope":"read"}"#,
    );
    for _ in 0..2 {
        let (status, body) = get_call(&url, &token).await;
        assert_eq!(status, 200);
        assert!(
            body.starts_with("401\n"),
            "the API refuses the opaque token: {body}"
        );
    }
    assert_eq!(api.seen(), ["Bearer opaque-downstream-token"; 2]);
    // Not JSON at all.
    api.answer(200, "<html>");
    assert_eq!(
        get_call(&url, &token).await,
        (502, "malformed_response".into())
    );
    // Last: a 5xx is an outage, whose cooldown would turn the answers
    // above into `transport` (see the outage test below), an OAuth error
    // code in it or not (found from outside: `server_error` was typed as a
    // refusal).
    api.answer(500, r#"{"error":"server_error"}"#);
    assert_eq!(get_call(&url, &token).await, (502, "transport".into()));
}

// A 200 answer holding an `error` member is an error answer (RFC 6749
// section 5.2), whatever else it holds: the refusal its code names, as in
// a 400, or `malformed_response` when `error` is no OAuth error code; its
// `access_token` is never used (found from outside: a 200 with both
// `access_token` and `error` was taken as a success, and the token sent
// downstream).
#[tokio::test]
async fn a_200_answer_with_an_error_member_is_refused() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let (url, token) = serve_with_fake_endpoint(&issuer, &api).await;
    for (body, answer) in [
        (
            r#"{"access_token":"hostile-token","token_type":"Bearer","expires_in":300,"error":"invalid_grant"}"#,
            (502, "invalid_grant"),
        ),
        (
            r#"{"error":"invalid_target","access_token":"hostile-token","token_type":"Bearer"}"#,
            (502, "invalid_target"),
        ),
        (
            r#"{"access_token":"hostile-token","token_type":"Bearer","error":"consent_required"}"#,
            (403, "consent_required -"),
        ),
        (
            r#"{"access_token":"hostile-token","token_type":"Bearer","error":"bad"code"}"#,
            (502, "malformed_response"),
        ),
        (
            r#"{"access_token":"hostile-token","token_type":"Bearer","error":null}"#,
            (502, "malformed_response"),
        ),
        (
            r#"{"access_token":"hostile-token","token_type":"Bearer","error":5}"#,
            (502, "malformed_response"),
        ),
    ] {
        api.answer(200, body);
        assert_eq!(
            get_call(&url, &token).await,
            (answer.0, answer.1.to_owned()),
            "{body}"
        );
    }
    assert!(
        api.seen().is_empty(),
        "the hostile token went downstream: {:?}",
        api.seen()
    );
    // The same endpoint's plain token answer is used (nothing was kept).
    api.answer(
        200,
        r#"{"access_token":"good-token","token_type":"Bearer","expires_in":300}"#,
    );
    assert_eq!(get_call(&url, &token).await.0, 200);
    assert_eq!(api.seen(), ["Bearer good-token"]);
}

// The downstream helper never carries the token to another origin; a
// redirect within the origin is followed; only https:// (or loopback with
// the opt-in) is called.
#[tokio::test]
async fn downstream_redirects_stay_within_the_origin() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let mut away = app(&api, settings(&issuer));
    away.url = format!("{}/api/away", api.base);
    let (url, token) = serve_app(&issuer, away).await;
    let (status, body) = get_call(&url, &token).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("302\n"), "{body}");
    assert_eq!(api.other_hits.load(Ordering::SeqCst), 0);
    let mut home = app(&api, settings(&issuer));
    home.url = format!("{}/api/home", api.base);
    let (url, token) = serve_app(&issuer, home).await;
    let (_, body) = get_call(&url, &token).await;
    assert!(body.starts_with("200\n"), "{body}");
    let loops = format!("{}/api/loop", api.base);
    for bad in [
        "http://api.example/me",
        "not a url",
        "ftp://127.0.0.1/x",
        &loops,
    ] {
        let mut refused = app(&api, settings(&issuer));
        refused.url = bad.into();
        let (url, token) = serve_app(&issuer, refused).await;
        assert_eq!(
            get_call(&url, &token).await,
            (502, "downstream".into()),
            "{bad}"
        );
    }
    // Nothing listens there: a transport failure of the downstream call.
    let mut closed = app(&api, settings(&issuer));
    closed.url = "http://127.0.0.1:9/me".into();
    let (url, token) = serve_app(&issuer, closed).await;
    assert_eq!(get_call(&url, &token).await, (502, "downstream".into()));
}

// A custom integration that authenticates headers itself
// (`AuthLayer::authenticate`) gets a context it can exchange too.
#[tokio::test]
async fn a_context_from_authenticate_can_be_exchanged() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let resource = "http://127.0.0.1:1/mcp";
    let token = issuer.token().subject("dora").audience(resource).sign();
    let auth = authenticated(&issuer, resource, &token).await;
    let app = app(&api, settings(&issuer));
    let exchanged = app
        .exchanger
        .exchange_for(&auth, ExchangeRequest::audience(api.audience.as_str()))
        .await
        .unwrap();
    assert_ne!(exchanged.secret(), token);
    let who: Value = app
        .http
        .get(&api.me(), &exchanged)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["sub"], "dora");
    assert!(exchanged.expires_at().is_some());
}

// A context not made by the layer for this request holds no caller token:
// nothing to exchange.
#[tokio::test]
async fn a_context_built_by_hand_cannot_be_exchanged() {
    let exchanger = TokenExchanger::new(ExchangeSettings::new(CLIENT, SECRET)).unwrap();
    let ctx = AuthContext::builder("https://as.example", "alice").build();
    let err = exchanger
        .exchange_for(&ctx, ExchangeRequest::audience("https://api.example"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ExchangeErrorKind::NoSubjectToken);
    assert_eq!(err.code(), "no_subject_token");
    let data = rmcp::ErrorData::from(err);
    assert_eq!(data.data, Some(json!({ "error": "no_subject_token" })));
    // Discovery refuses the loopback issuer's http:// metadata without the
    // opt-in: the exchange fails as a transport failure.
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let strict = app(&api, ExchangeSettings::new(CLIENT, SECRET));
    let (url, token) = serve_app(&issuer, strict).await;
    assert_eq!(get_call(&url, &token).await, (502, "transport".into()));
    assert_eq!(issuer.exchange_hits(), 0);
    // Settings refused at build time.
    assert!(TokenExchanger::new(ExchangeSettings::new("", SECRET)).is_err());
    let http = ExchangeSettings::new(CLIENT, SECRET)
        .endpoint(url::Url::parse("http://as.example/token").unwrap());
    assert!(TokenExchanger::new(http).is_err());
}

/// A shared store (what a Redis store would be), in memory.
#[derive(Clone, Default)]
struct MemoryStore(Arc<Mutex<HashMap<[u8; 32], StoredToken>>>);

impl ExchangeStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a [u8; 32]) -> BoxFuture<'a, Option<StoredToken>> {
        Box::pin(async move { self.0.lock().unwrap().get(key).cloned() })
    }

    fn put<'a>(&'a self, key: &'a [u8; 32], token: StoredToken) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0.lock().unwrap().insert(*key, token);
        })
    }
}

// Two servers sharing a store: the second reuses the first one's token
// (keys are hashes; the store holds no caller token).
#[tokio::test]
async fn a_shared_store_spares_the_second_server_an_exchange() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let store = MemoryStore::default();
    let mut first = app(&api, settings(&issuer));
    first.exchanger = first.exchanger.with_store(store.clone());
    let mut second = app(&api, settings(&issuer));
    second.exchanger = second.exchanger.with_store(store.clone());
    let (url1, token1) = serve_app(&issuer, first).await;
    let (url2, token2) = serve_app(&issuer, second).await;
    assert_eq!(get_call(&url1, &token1).await.0, 200);
    // Alice again, with her token for the second server.
    let (status, body) = get_call(&url2, &token2).await;
    assert!(status == 200 && body.starts_with("200\n"), "{body}");
    let stored = store.0.lock().unwrap().values().next().cloned().unwrap();
    assert!(stored.reuse_until > SystemTime::now());
    assert!(!format!("{stored:?}").contains(&stored.token));
    assert_eq!(issuer.exchange_hits(), 1);
}

/// Everything the subscriber of one test writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// Tokens never in logs: the whole flow (MCP call, exchange, downstream call,
// a refused exchange) at TRACE level leaves no caller token, exchanged
// token or client secret in the output. One thread: the subscriber is this
// test's alone.
#[tokio::test(flavor = "current_thread")]
async fn logs_hold_no_token_material() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let notes = Notes::start_on(issuer, |b| b, Some(downstream_vars(&api, None)), false).await;
    let alice = notes.token_for("alice", &["notes:read"]);
    let client = bounded(legacy_client(&notes.resource, &alice))
        .await
        .unwrap();
    let (is_error, text) = call_result(&client, "downstream_whoami").await;
    assert!(!is_error, "{text}");
    notes.issuer.refuse_all_exchanges(true);
    let bob = notes.token_for("bob", &["notes:read"]);
    let client_b = bounded(legacy_client(&notes.resource, &bob)).await.unwrap();
    let (is_error, _) = call_result(&client_b, "downstream_whoami").await;
    assert!(is_error);
    client.cancel().await.unwrap();
    client_b.cancel().await.unwrap();
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("exchange"), "the flow was logged");
    let mut secrets = vec![alice, bob, SECRET.to_owned()];
    secrets.extend(
        api.seen()
            .iter()
            .map(|v| v.trim_start_matches("Bearer ").to_owned()),
    );
    assert_eq!(secrets.len(), 4);
    for secret in &secrets {
        // The signature part alone is enough to use nothing of it.
        let tail = secret.rsplit('.').next().unwrap();
        assert!(!logs.contains(tail), "token material in the logs");
    }
}

// The reference server binary, configured by environment only: tool
// `seen_headers` shows no Authorization; `downstream_whoami` exchanges at
// MCP_OAUTH2_TOKEN_ENDPOINT and calls MCP_OAUTH2_DOWNSTREAM_URL.
#[tokio::test]
async fn reference_server_contract_from_the_environment() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let token_endpoint = issuer.token_endpoint();
    let me = api.me();
    let mut server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", issuer.issuer()),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_CLIENT_ID", CLIENT),
            ("MCP_OAUTH2_CLIENT_SECRET", SECRET),
            ("MCP_OAUTH2_TOKEN_ENDPOINT", &token_endpoint),
            ("MCP_OAUTH2_DOWNSTREAM_AUDIENCE", &api.audience),
            ("MCP_OAUTH2_DOWNSTREAM_URL", &me),
        ],
    )
    .await;
    let token = issuer
        .token()
        .subject("carol")
        .audience(&resource)
        .scopes(["notes:read"])
        .sign();
    let client = bounded(legacy_client(&resource, &token)).await.unwrap();
    let (_, text) = call_result(&client, "seen_headers").await;
    assert!(
        !text.contains("authorization") && text.contains("host"),
        "{text}"
    );
    let (is_error, text) = call_result(&client, "downstream_whoami").await;
    assert!(!is_error, "{text}");
    let who: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(who["sub"], "carol");
    assert_eq!(who["act"], json!({ "sub": CLIENT }));
    assert_eq!(issuer.exchange_hits(), 1);
    client.cancel().await.unwrap();
    server.child.kill().await.unwrap();
}

/// POSTs a token request to `issuer` as the confidential client (unless
/// `auth` is false) and returns the status and the JSON answer.
async fn token_request(issuer: &TestIssuer, auth: bool, params: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(issuer.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(params));
    if auth {
        request = request.basic_auth(CLIENT, Some(SECRET));
    }
    let resp = bounded(request.send()).await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn form(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The claims of a JWT, unverified (the test trusts its own issuer).
fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

const TE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

// The TestIssuer's RFC 8693 grant (section 2.1, 2.2, 4.1, 4.4) with every
// key type, and its refusals of bad requests and bad subject tokens.
#[tokio::test]
async fn test_issuer_token_exchange_grant() {
    use mcp_oauth2::testing::SigningAlg;
    for alg in [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa] {
        let issuer = TestIssuer::start_with_alg(alg).await.unwrap();
        issuer.register_client(ClientRegistration::confidential(CLIENT, SECRET));
        // Delegation chain: the subject token already has an actor.
        let subject = issuer
            .token()
            .subject("alice")
            .claim("act", json!({ "sub": "first-hop" }))
            .claim("may_act", json!({ "sub": CLIENT }))
            .sign();
        let (status, body) = token_request(
            &issuer,
            true,
            &[
                ("grant_type", TE),
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("audience", "https://api.example"),
                ("resource", "https://api.example/v2"),
                ("scope", "read write"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert_eq!(body["issued_token_type"], AT);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "read write");
        let claims = claims_of(body["access_token"].as_str().unwrap());
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["client_id"], CLIENT);
        assert_eq!(
            claims["aud"],
            json!(["https://api.example", "https://api.example/v2"])
        );
        assert_eq!(
            claims["act"],
            json!({ "sub": CLIENT, "act": { "sub": "first-hop" } })
        );
    }

    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    issuer.register_client(ClientRegistration::public("public-app"));
    let good = issuer.token().subject("alice").sign();
    let base = |subject: &str| {
        vec![
            ("grant_type", TE.to_owned()),
            ("subject_token", subject.to_owned()),
            ("subject_token_type", AT.to_owned()),
        ]
    };
    let with = |mut params: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]| {
        for (k, v) in extra {
            params.retain(|(name, _)| name != k);
            if !v.is_empty() {
                params.push((k, (*v).to_owned()));
            }
        }
        params
    };
    type Case = (bool, Vec<(&'static str, String)>, &'static str);
    let cases: Vec<Case> = vec![
        (false, base(&good), "invalid_client"),
        (
            true,
            with(base(&good), &[("subject_token", "")]),
            "invalid_request",
        ),
        (
            true,
            with(base(&good), &[("subject_token_type", "")]),
            "invalid_request",
        ),
        (
            true,
            with(
                base(&good),
                &[(
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                )],
            ),
            "invalid_request",
        ),
        (
            true,
            with(base(&good), &[("actor_token", "x")]),
            "invalid_request",
        ),
        (
            true,
            with(base(&good), &[("resource", "not-absolute")]),
            "invalid_target",
        ),
        (
            true,
            with(base(&good), &[("scope", "a\"b")]),
            "invalid_scope",
        ),
    ];
    for (auth, params, code) in cases {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = token_request(&issuer, auth, &params).await;
        assert!(status == 400 || status == 401, "{params:?}: {status}");
        assert_eq!(body["error"], code, "{params:?}");
    }
    // A public client may not exchange.
    let resp = reqwest::Client::new()
        .post(issuer.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", TE),
            ("subject_token", &good),
            ("subject_token_type", AT),
            ("client_id", "public-app"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");

    // Subject tokens the issuer cannot vouch for.
    let other = TestIssuer::start().await.unwrap();
    let [h, p, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let no_kid = issuer
        .try_sign_raw(br#"{"alg":"RS256"}"#, p.as_bytes())
        .unwrap();
    let wrong_alg = issuer
        .token()
        .header("alg", json!("ES256"))
        .subject("alice")
        .sign();
    let bad = [
        "abc".to_owned(),
        format!("{good}.x"),
        format!("!!.{p}.{s}"),
        format!("{}.{p}.{s}", URL_B64.encode("not json")),
        format!("{h}.{p}.{}", URL_B64.encode("forged")),
        format!("{h}.!!.{s}"),
        no_kid,
        wrong_alg,
        other.token().subject("alice").sign(),
        issuer
            .token()
            .header("kid", json!("no-such-key"))
            .subject("alice")
            .sign(),
        issuer
            .token()
            .claim("iss", json!("https://elsewhere.example"))
            .sign(),
        issuer.token().expires_at(1_000).sign(),
        issuer.token().claim("sub", Value::Null).sign(),
        issuer
            .token()
            .claim("may_act", json!({ "sub": "someone-else" }))
            .sign(),
    ];
    for subject in bad {
        let (status, body) = token_request(
            &issuer,
            true,
            &[
                ("grant_type", TE),
                ("subject_token", &subject),
                ("subject_token_type", AT),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{subject}"
        );
    }
    // No audience asked: no `aud`, no scope.
    let (status, body) = token_request(
        &issuer,
        true,
        &[
            ("grant_type", TE),
            ("subject_token", &good),
            ("subject_token_type", AT),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        claims_of(body["access_token"].as_str().unwrap())
            .get("aud")
            .is_none()
    );
    assert!(body.get("scope").is_none());
}

use base64::Engine as _;
const URL_B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

// The TestIssuer's on-behalf-of form (Entra ID): scopes name their
// resource; `.default` asks for the audience alone.
#[tokio::test]
async fn test_issuer_on_behalf_of_grant() {
    const JB: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let good = issuer.token().subject("alice").sign();
    let (status, body) = token_request(
        &issuer,
        true,
        &[
            ("grant_type", JB),
            ("assertion", &good),
            ("requested_token_use", "on_behalf_of"),
            (
                "scope",
                "https://api.example/read https://api.example/.default",
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");
    assert!(body.get("issued_token_type").is_none());
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(claims["act"], json!({ "sub": CLIENT }));
    for (params, code) in [
        (
            vec![
                ("assertion", good.as_str()),
                ("scope", "https://a/.default"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("requested_token_use", "on_behalf_of"),
                ("scope", "https://a/.default"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("assertion", good.as_str()),
                ("requested_token_use", "on_behalf_of"),
                ("scope", "read"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("assertion", good.as_str()),
                ("requested_token_use", "on_behalf_of"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("assertion", good.as_str()),
                ("requested_token_use", "on_behalf_of"),
                ("scope", "a\"b/x"),
            ],
            "invalid_scope",
        ),
    ] {
        let mut all = vec![("grant_type", JB)];
        all.extend(params);
        let (status, body) = token_request(&issuer, true, &all).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{all:?}"
        );
    }
}

/// A token endpoint elsewhere: records every request (method, `Authorization`,
/// body) and answers with a usable token response.
async fn start_elsewhere_token_endpoint() -> (Arc<Mutex<Vec<String>>>, String) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::clone(&seen);
    let app = Router::new().fallback(
        move |method: axum::http::Method, headers: HeaderMap, body: String| {
            let log = Arc::clone(&log);
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap_or("").to_owned())
                    .unwrap_or_default();
                log.lock()
                    .unwrap()
                    .push(format!("{method} auth={auth} body={body}"));
                (
                    [("content-type", "application/json")],
                    r#"{"access_token":"forged-downstream-token","token_type":"Bearer","expires_in":60}"#,
                )
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, base)
}

// RFC 6749 section 2.3.1 and RFC 8693 section 2.1: the client secret and
// the subject token go to the configured token endpoint only. A caller's
// HTTP client that follows redirects (reqwest's default) must not carry
// them to the host a redirect names (307/308 re-send a POST body), and that
// host's answer is never used: the call fails as `transport`.
#[tokio::test]
async fn a_redirecting_token_endpoint_is_refused_even_with_a_following_client() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    for method in [
        ClientAuthMethod::ClientSecretPost,
        ClientAuthMethod::ClientSecretBasic,
    ] {
        for status in [301u16, 302, 303, 307, 308] {
            let (seen, other) = start_elsewhere_token_endpoint().await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let redirector = format!("http://{}/token", listener.local_addr().unwrap());
            let target = format!("{other}/token");
            let router = Router::new().fallback(move || {
                let target = target.clone();
                async move {
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [("location", target)],
                    )
                }
            });
            tokio::spawn(async move { axum::serve(listener, router).await });
            let settings = ExchangeSettings::new(CLIENT, SECRET)
                .endpoint(url::Url::parse(&redirector).unwrap())
                .auth_method(method)
                .allow_insecure_http_for_loopback(true);
            let mut app = app(&api, settings.clone());
            app.exchanger =
                TokenExchanger::with_http_client(settings, reqwest::Client::new()).unwrap();
            let (url, token) = serve_app(&issuer, app).await;
            assert_eq!(
                get_call(&url, &token).await,
                (502, "malformed_response".to_owned()),
                "{method:?} {status}"
            );
            for request in seen.lock().unwrap().iter() {
                assert!(
                    !request.contains(&token[token.len() - 20..])
                        && !request.contains("subject_token")
                        && !request.contains("client_secret")
                        && !request.contains("Basic"),
                    "{method:?} {status}: the other host received {request}"
                );
            }
        }
    }
    assert!(api.seen().is_empty());
}

/// Distinct users asking for a downstream token during one outage.
const OUTAGE_USERS: usize = 40;

/// Requests the token endpoint may get from `OUTAGE_USERS` users in one
/// outage: the first failure, then one probe per cooldown (1 s, 2 s, 4 s,
/// then every 5 s) on a loaded machine. Before the cooldown it was one
/// request per user (40).
const OUTAGE_ALLOWED: u64 = 8;

/// `OUTAGE_USERS` distinct users (`alice` tokens of other subjects) call
/// `url` once each; every call must fail with `transport`. Returns the
/// requests the exchanger sent.
async fn outage_flood(issuer: &TestIssuer, url: &str, exchanger: &TokenExchanger) -> u64 {
    let resource = url.replace("/call", "/mcp");
    let before = exchanger.exchanges();
    for i in 0..OUTAGE_USERS {
        let token = issuer
            .token()
            .subject(format!("user-{i}"))
            .audience(&resource)
            .scopes(["notes:read"])
            .sign();
        assert_eq!(
            get_call(url, &token).await,
            (502, "transport".to_owned()),
            "user {i}"
        );
    }
    exchanger.exchanges() - before
}

// An outage of the token endpoint (5xx, 429, a refused connection, the
// deadline) is not paid once per user: after the first failure the
// exchange fails fast with the documented `transport` for a cooldown, one
// probe per cooldown; an answer (a recovered endpoint) is used again at
// once. A 4xx OAuth refusal is not an outage (the control: one request
// per call, as before).
#[tokio::test]
async fn an_outage_of_the_token_endpoint_is_asked_once_per_cooldown() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let fake = format!("{}/fake-token", api.base);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/token", l.local_addr().unwrap())
    };
    let slow = format!("{}/slow-token", api.base);
    for (label, endpoint, status) in [
        ("503", &fake, 503),
        ("429", &fake, 429),
        ("refused", &closed, 0),
        ("timeout", &slow, 0),
    ] {
        if status != 0 {
            api.answer(status, r#"{"message":"down"}"#);
        }
        let app = app(
            &api,
            ExchangeSettings::new(CLIENT, SECRET)
                .endpoint(url::Url::parse(endpoint).unwrap())
                .timeout(Duration::from_millis(300))
                .allow_insecure_http_for_loopback(true),
        );
        let exchanger = app.exchanger.clone();
        let (url, _) = serve_app(&issuer, app).await;
        let sent = outage_flood(&issuer, &url, &exchanger).await;
        eprintln!("{label}: {OUTAGE_USERS} users -> {sent} token requests");
        assert!(
            (1..=OUTAGE_ALLOWED).contains(&sent),
            "{label}: {sent} requests for {OUTAGE_USERS} users"
        );
        if label == "503" {
            // The endpoint recovers: within the cooldown (at most 5 s) a
            // probe gets through and the next users are served.
            api.answer(
                200,
                r#"{"access_token":"recovered-token","token_type":"Bearer","expires_in":600}"#,
            );
            let resource = url.replace("/call", "/mcp");
            let mut served = false;
            for i in 0..80 {
                let token = issuer
                    .token()
                    .subject(format!("back-{i}"))
                    .audience(&resource)
                    .scopes(["notes:read"])
                    .sign();
                let (status, body) = get_call(&url, &token).await;
                if status == 200 {
                    served = true;
                    break;
                }
                assert_eq!((status, body.as_str()), (502, "transport"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(served, "the recovered endpoint is used again");
        }
    }
    // The control: OAuth refusals are answers, each call asks.
    api.answer(400, r#"{"error":"invalid_grant"}"#);
    let app = app(
        &api,
        ExchangeSettings::new(CLIENT, SECRET)
            .endpoint(url::Url::parse(&fake).unwrap())
            .allow_insecure_http_for_loopback(true),
    );
    let exchanger = app.exchanger.clone();
    let (url, token) = serve_app(&issuer, app).await;
    for _ in 0..5 {
        assert_eq!(get_call(&url, &token).await, (502, "invalid_grant".into()));
    }
    assert_eq!(
        exchanger.exchanges(),
        5,
        "a refusal is neither kept nor an outage"
    );
}

// The discovery of the token endpoint in an outage (the caller's issuer
// answers its metadata URLs with something that is not a document): tried
// once per cooldown, not once per call. The layer knows the issuer's keys
// from `jwks_uri`, so callers are verified while discovery fails.
#[tokio::test]
async fn a_failing_discovery_of_the_token_endpoint_is_tried_once_per_cooldown() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let resource = "http://127.0.0.1:1/mcp";
    let layer = AuthLayer::new(
        AuthConfig::builder()
            .issuer(&api.other_base)
            .jwks_uri(issuer.jwks_uri())
            .resource(resource)
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap(),
    )
    .unwrap();
    let app = app(
        &api,
        ExchangeSettings::new(CLIENT, SECRET)
            .timeout(Duration::from_millis(300))
            .allow_insecure_http_for_loopback(true),
    );
    for i in 0..OUTAGE_USERS {
        let token = issuer
            .token()
            .claim("iss", json!(api.other_base))
            .subject(format!("user-{i}"))
            .audience(resource)
            .sign();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let auth = layer.authenticate(&headers).await.unwrap();
        let err = bounded(
            app.exchanger
                .exchange_for(&auth, ExchangeRequest::audience(api.audience.as_str())),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ExchangeErrorKind::Transport, "user {i}");
    }
    let hits = api.other_hits.load(Ordering::SeqCst);
    eprintln!("discovery: {OUTAGE_USERS} users -> {hits} metadata requests");
    // One discovery: the RFC 8414 then the OpenID Connect metadata URL.
    assert!(
        (1..=OUTAGE_ALLOWED as usize * 2).contains(&hits),
        "{hits} metadata requests for {OUTAGE_USERS} users"
    );
    assert_eq!(app.exchanger.exchanges(), 0);
}

// Odd answers of a token endpoint that does answer (none is an outage, so
// none starts a cooldown): lifetimes that are not whole seconds, zero or
// absurd; an access token near the size cap; a body over it; a 400
// `invalid_grant` (an answer: neither kept nor a cooldown). The exchanger,
// its settings and the exchanged token never show a secret in `Debug`.
#[tokio::test]
async fn odd_answers_of_the_token_endpoint_are_judged_without_a_cooldown() {
    let issuer = issuer_with_lifetime(Duration::from_secs(300)).await;
    let api = Api::start(&issuer).await;
    let fake = ExchangeSettings::new(CLIENT, SECRET)
        .endpoint(url::Url::parse(&format!("{}/fake-token", api.base)).unwrap())
        .allow_insecure_http_for_loopback(true);
    let app = app(&api, fake);
    let exchanger = app.exchanger.clone();
    let (url, token) = serve_app(&issuer, app).await;
    let ok =
        |expires: &str| format!(r#"{{"access_token":"odd-token","token_type":"Bearer"{expires}}}"#);
    let big = "t".repeat(60 * 1024);
    let cases = [
        (200, ok(r#","expires_in":-1"#), "malformed_response"),
        (200, ok(r#","expires_in":1.5"#), "malformed_response"),
        (200, ok(r#","expires_in":1e3"#), "malformed_response"),
        (
            200,
            ok(r#","expires_in":99999999999999999999999"#),
            "malformed_response",
        ),
        (200, ok(r#","expires_in":null"#), "malformed_response"),
        (
            200,
            format!(
                r#"{{"access_token":"x","token_type":"Bearer","pad":"{}"}}"#,
                "p".repeat(70 * 1024)
            ),
            "malformed_response",
        ),
        (
            400,
            r#"{"error":"invalid_grant"}"#.to_owned(),
            "invalid_grant",
        ),
        (200, ok(r#","expires_in":0"#), "200"),
        (200, ok(r#","expires_in":18446744073709551615"#), "200"),
        (
            200,
            format!(r#"{{"access_token":"{big}","token_type":"Bearer","expires_in":60}}"#),
            "200",
        ),
    ];
    for (status, body, expected) in cases {
        api.answer(status, &body);
        let (got, text) = get_call(&url, &token).await;
        let short = &body[..body.len().min(120)];
        if expected == "200" {
            assert_eq!(got, 200, "{short}: {text}");
        } else {
            assert_eq!((got, text.as_str()), (502, expected), "{short}");
        }
    }
    // Every answer was asked for but the last: none started a cooldown,
    // none was kept but `u64::MAX` seconds, kept a day at most (it was
    // added to the clock unchecked once: found from outside), which
    // served the last case.
    assert_eq!(exchanger.exchanges(), 9);
    assert_eq!(get_call(&url, &token).await.0, 200);
    assert_eq!(exchanger.exchanges(), 9, "the kept token is reused");
    let shown = format!("{exchanger:?} {:?}", ExchangeSettings::new(CLIENT, SECRET));
    assert!(!shown.contains(SECRET), "{shown}");
    let auth = authenticated(&issuer, &url.replace("/call", "/mcp"), &token).await;
    let exchanged = exchanger
        .exchange_for(
            &auth,
            ExchangeRequest::audience(api.audience.as_str()).scopes(["read"]),
        )
        .await
        .unwrap();
    assert!(!format!("{exchanged:?}").contains("ttt"), "{exchanged:?}");
    // A lifetime past what the clock can represent: the token's expiry is
    // unknown (`None`), never "now" (it used to read as expired at once).
    api.answer(200, &ok(r#","expires_in":18446744073709551615"#));
    let endless = exchanger
        .exchange_for(
            &auth,
            ExchangeRequest::audience(api.audience.as_str()).scopes(["other"]),
        )
        .await
        .unwrap();
    assert_eq!(endless.expires_at(), None);
}

/// The context `AuthLayer::authenticate` gives `token` (issued by `issuer`
/// for `resource`), as a custom integration gets it.
async fn authenticated(issuer: &TestIssuer, resource: &str, token: &str) -> AuthContext {
    AuthLayer::new(
        AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(resource)
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap(),
    )
    .unwrap()
    .authenticate(&{
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    })
    .await
    .unwrap()
}
