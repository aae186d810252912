//! The testing kit's authorization server (`TestIssuer` with `/authorize`,
//! `/token`, `/register`): real OAuth clients run the whole MCP flow against
//! it and a protected `McpServer` on loopback, and every refusal is an OAuth
//! error, never a panic.
//!
//! - rmcp's own OAuth client (feature `auth`): discovery from the 401,
//!   dynamic registration, authorization code with PKCE, token, tool call;
//!   and its client credentials flow.
//! - The same flow step by step over plain HTTP, as any standard client
//!   would run it (RFC 9728 -> RFC 8414 -> RFC 7591 -> RFC 6749 + RFC 7636
//!   + RFC 8707 + RFC 9207).
//! - Each rule of the endpoints, with the RFC section it checks.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::loopback;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use loopback::bind_with_config;
use mcp_oauth2::testing::{ClientRegistration, TestIssuer};
use mcp_oauth2::{AuthContext, McpServer};
use reqwest::StatusCode;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolRequestParams, ServerCapabilities, ServerConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{
    AuthClient, AuthorizationRequest, ClientCredentialsConfig, OAuthState,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A server with one tool that says who is calling.
#[derive(Clone)]
struct Whoami {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Whoami {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Who is calling")]
    async fn whoami(&self, auth: AuthContext) -> String {
        json!({
            "subject": auth.subject(),
            "client_id": auth.client_id(),
            "scopes": auth.scopes(),
            "audience": auth.audience(),
        })
        .to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Whoami {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// An issuer and a protected MCP server at `resource`.
struct Setup {
    issuer: TestIssuer,
    resource: String,
    ct: CancellationToken,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

impl Setup {
    async fn start() -> Self {
        Self::with_issuer(TestIssuer::start().await.expect("issuer")).await
    }

    async fn with_issuer(issuer: TestIssuer) -> Self {
        let (listener, resource, config) = bind_with_config(&issuer, |b| b).await;
        let server = McpServer::builder()
            .auth(config)
            .service(|| Ok(Whoami::new()))
            .build()
            .expect("server");
        let ct = server.cancellation_token();
        tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
        Self {
            issuer,
            resource,
            ct,
        }
    }
}

/// Runs `f` with a timeout so no test can hang.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the test step took more than 30 s")
}

type Client = RunningService<RoleClient, ()>;

/// Calls `whoami` and parses its answer.
async fn whoami(client: &Client) -> Value {
    let result = bounded(client.call_tool(CallToolRequestParams::new("whoami")))
        .await
        .expect("call whoami");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    serde_json::from_str(&text).expect("whoami JSON")
}

/// A plain rmcp client sending `token`.
async fn client_with_token(resource: &str, token: &str) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(resource.to_owned())
            .auth_header(token.to_owned()),
    );
    bounded(().serve(transport)).await.expect("connect")
}

/// An HTTP client that does not follow redirects: the tests read them.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The "browser": opens the authorization URL and returns where the issuer
/// redirects to (it approves at once).
async fn browse(url: &str) -> String {
    let response = bounded(http().get(url).send()).await.expect("authorize");
    assert_eq!(response.status(), StatusCode::FOUND, "{url}");
    response
        .headers()
        .get("location")
        .expect("a Location")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

/// The query parameters of a URL.
fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A PKCE pair (RFC 7636 section 4.1 and 4.2, S256).
fn pkce() -> (String, String) {
    let mut bytes = [0_u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("random");
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(hash.as_ref()))
}

/// `issuer`'s authorization URL with `params`.
fn authorize_url(issuer: &TestIssuer, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&issuer.authorization_endpoint()).expect("URL");
    url.query_pairs_mut().extend_pairs(params);
    url.into()
}

/// A form-encoded body.
fn form(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// A token request; returns the status, the headers and the JSON body.
async fn token_request(
    issuer: &TestIssuer,
    params: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = http()
        .post(issuer.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(params));
    if let Some((id, secret)) = basic {
        request = request.header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        );
    }
    let response = bounded(request.send()).await.expect("token request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.expect("JSON body");
    (status, headers, body)
}

/// Asserts an RFC 6749 section 5.2 error.
fn assert_oauth_error(
    (status, headers, body): &(StatusCode, reqwest::header::HeaderMap, Value),
    expected_status: StatusCode,
    error: &str,
) {
    assert_eq!(*status, expected_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert_eq!(headers["cache-control"], "no-store");
}

/// The claims and header of a JWT, decoded without verification.
fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || {
        let part = parts.next().expect("segment");
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).expect("b64")).expect("JSON")
    };
    let header = decode();
    (header, decode())
}

/// A code from an approved authorization for `client_id`, with the PKCE
/// verifier that redeems it.
struct Code {
    code: String,
    verifier: String,
    redirect_uri: String,
}

async fn approved_code(issuer: &TestIssuer, client_id: &str, extra: &[(&str, &str)]) -> Code {
    let (verifier, challenge) = pkce();
    let redirect_uri = "http://127.0.0.1:7777/callback".to_owned();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let location = browse(&authorize_url(issuer, &params)).await;
    let code = query(&location).remove("code").expect("a code");
    Code {
        code,
        verifier,
        redirect_uri,
    }
}

async fn redeem(
    issuer: &TestIssuer,
    client_id: &str,
    code: &Code,
    extra: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("code", code.code.as_str()),
        ("redirect_uri", code.redirect_uri.as_str()),
        ("code_verifier", code.verifier.as_str()),
        ("client_id", client_id),
    ];
    params.extend_from_slice(extra);
    token_request(issuer, &params, None).await
}

// ---------------------------------------------------------------------------
// Real clients, end to end
// ---------------------------------------------------------------------------

/// rmcp's OAuth client starts from nothing but the MCP URL: the 401
/// challenge, RFC 9728 and RFC 8414 discovery, RFC 7591 registration, the
/// authorization code flow with PKCE and `resource`, then the tool call.
#[tokio::test]
async fn rmcp_oauth_client_runs_the_whole_flow() {
    let setup = Setup::start().await;
    setup.issuer.set_next_subject("alice");

    // 1. No token: the server's challenge is where discovery starts.
    let error = bounded(().serve(StreamableHttpClientTransport::from_uri(
        setup.resource.as_str(),
    )))
    .await
    .expect_err("a token is required");
    let challenge = error.auth_challenge().expect("a challenge").to_owned();

    // 2. rmcp discovers, registers and builds the authorization URL.
    let mut state = bounded(OAuthState::new(setup.resource.as_str(), None))
        .await
        .expect("state");
    let request = AuthorizationRequest::new("http://127.0.0.1:7777/callback")
        .with_client_name("testing kit")
        .with_challenge(challenge);
    bounded(state.start_authorization(request))
        .await
        .expect("discovery and registration");
    let auth_url = state.get_authorization_url().await.expect("URL");
    let asked = query(&auth_url);
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["resource"], setup.resource);

    // 3. The issuer approves at once; rmcp checks `state` and `iss` and
    // redeems the code.
    let callback = browse(&auth_url).await;
    assert_eq!(query(&callback)["iss"], setup.issuer.issuer());
    bounded(state.handle_callback_url(&callback))
        .await
        .expect("token exchange");
    let Some(manager) = state.into_authorization_manager() else {
        panic!("rmcp did not reach the authorized state");
    };

    // 4. Connect with the token: the tool sees alice, and the token is
    // bound to this server.
    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(reqwest::Client::default(), manager),
        StreamableHttpClientTransportConfig::with_uri(setup.resource.as_str()),
    );
    let client = bounded(().serve(transport)).await.expect("connect");
    let who = whoami(&client).await;
    assert_eq!(who["subject"], "alice");
    assert_eq!(who["audience"], json!([setup.resource]));
    assert!(
        who["client_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("client-")),
        "{who}"
    );
    bounded(client.cancel()).await.expect("cancel");

    assert_eq!(setup.issuer.registration_hits(), 1);
    assert_eq!(setup.issuer.authorize_hits(), 1);
    assert_eq!(setup.issuer.token_hits(), 1);
    assert!(setup.issuer.metadata_hits() >= 1);
    assert!(setup.issuer.jwks_hits() >= 1);
    assert_eq!(setup.issuer.other_hits(), 0);
}

/// rmcp's client credentials flow (SEP-1046) with a pre-registered
/// confidential client: the token's subject is the client (RFC 9068
/// section 2.2).
#[tokio::test]
async fn rmcp_client_credentials_flow() {
    let setup = Setup::start().await;
    setup
        .issuer
        .register_client(ClientRegistration::confidential("reporting-job", "s3cret"));
    let mut state = bounded(OAuthState::new(setup.resource.as_str(), None))
        .await
        .expect("state");
    bounded(
        state.authenticate_client_credentials(ClientCredentialsConfig::ClientSecret {
            client_id: "reporting-job".to_owned(),
            client_secret: "s3cret".to_owned(),
            scopes: Vec::new(),
            resource: Some(setup.resource.clone()),
        }),
    )
    .await
    .expect("client credentials");
    let Some(manager) = state.into_authorization_manager() else {
        panic!("rmcp did not reach the authorized state");
    };
    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(reqwest::Client::default(), manager),
        StreamableHttpClientTransportConfig::with_uri(setup.resource.as_str()),
    );
    let client = bounded(().serve(transport)).await.expect("connect");
    let who = whoami(&client).await;
    assert_eq!(who["subject"], "reporting-job");
    assert_eq!(who["client_id"], "reporting-job");
    bounded(client.cancel()).await.expect("cancel");
    assert_eq!(setup.issuer.token_hits(), 1);
    assert_eq!(setup.issuer.authorize_hits(), 0);
}

/// The whole flow step by step over plain HTTP, as any standard client runs
/// it.
#[tokio::test]
async fn plain_http_client_runs_the_whole_flow() {
    let setup = Setup::start().await;
    let issuer = &setup.issuer;
    issuer.set_next_subject("bob");

    // RFC 9728 section 5.1: the 401 points at the resource metadata.
    let unauthorized = bounded(
        http()
            .post(&setup.resource)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body("{}")
            .send(),
    )
    .await
    .expect("request");
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    let challenge = mcp_oauth2::challenge::parse_bearer_challenge(
        unauthorized.headers()["www-authenticate"]
            .to_str()
            .expect("ASCII"),
    )
    .expect("a Bearer challenge");
    let prm_url = challenge
        .iter()
        .find(|(k, _)| k == "resource_metadata")
        .map(|(_, v)| v.clone())
        .expect("resource_metadata");

    // RFC 9728 section 3: the resource names its authorization server.
    let prm: Value = bounded(http().get(&prm_url).send())
        .await
        .expect("PRM")
        .json()
        .await
        .expect("JSON");
    assert_eq!(prm["resource"], setup.resource);
    let as_issuer = prm["authorization_servers"][0].as_str().expect("an AS");
    assert_eq!(as_issuer, issuer.issuer());

    // RFC 8414 section 3: the authorization server's metadata.
    let metadata: Value = bounded(
        http()
            .get(format!(
                "{as_issuer}/.well-known/oauth-authorization-server"
            ))
            .send(),
    )
    .await
    .expect("metadata")
    .json()
    .await
    .expect("JSON");
    assert_eq!(metadata["issuer"], as_issuer);
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );

    // RFC 7591 section 3: register a public client.
    let redirect_uri = "http://127.0.0.1:7777/callback";
    let registered = bounded(
        http()
            .post(
                metadata["registration_endpoint"]
                    .as_str()
                    .expect("endpoint"),
            )
            .json(&json!({
                "client_name": "plain",
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
            }))
            .send(),
    )
    .await
    .expect("register");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let registered: Value = registered.json().await.expect("JSON");
    let client_id = registered["client_id"].as_str().expect("client_id");
    assert!(registered.get("client_secret").is_none());

    // RFC 6749 section 4.1.1 with RFC 7636 and RFC 8707; RFC 9207 `iss`.
    let (verifier, challenge) = pkce();
    let mut url = url::Url::parse(
        metadata["authorization_endpoint"]
            .as_str()
            .expect("endpoint"),
    )
    .expect("URL");
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("scope", "notes:read profile"),
        ("state", "xyz 123"),
        ("resource", setup.resource.as_str()),
    ]);
    let location = browse(url.as_str()).await;
    assert!(location.starts_with(redirect_uri), "{location}");
    let callback = query(&location);
    assert_eq!(callback["state"], "xyz 123");
    assert_eq!(callback["iss"], as_issuer);

    // RFC 6749 section 4.1.3 and 5.1.
    let response = bounded(
        http()
            .post(metadata["token_endpoint"].as_str().expect("endpoint"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", callback["code"].as_str()),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier.as_str()),
                ("client_id", client_id),
                ("resource", setup.resource.as_str()),
            ]))
            .send(),
    )
    .await
    .expect("token");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.expect("JSON");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(tokens["scope"], "notes:read profile");
    assert!(tokens["refresh_token"].is_string());
    let access_token = tokens["access_token"].as_str().expect("access_token");

    // RFC 9068: the token's shape.
    let (header, claims) = jwt_parts(access_token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], issuer.current_kid());
    assert_eq!(claims["iss"], as_issuer);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["aud"], setup.resource);
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["scope"], "notes:read profile");

    // The call.
    let client = client_with_token(&setup.resource, access_token).await;
    let who = whoami(&client).await;
    assert_eq!(who["subject"], "bob");
    assert_eq!(who["scopes"], json!(["notes:read", "profile"]));
    bounded(client.cancel()).await.expect("cancel");
}

/// RFC 8707: without `resource`, the token has no audience, and the
/// resource server refuses it (MCP requires audience binding).
#[tokio::test]
async fn a_token_without_resource_has_no_audience_and_is_refused() {
    let setup = Setup::start().await;
    let code = approved_code(&setup.issuer, "app", &[]).await;
    let (status, _, body) = redeem(&setup.issuer, "app", &code, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token");
    let (_, claims) = jwt_parts(token);
    assert!(claims.get("aud").is_none(), "{claims}");
    assert!(body.get("scope").is_none(), "no scope asked, none granted");

    let response = bounded(
        http()
            .post(&setup.resource)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send(),
    )
    .await
    .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ASCII");
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

/// RFC 8707 section 2: several resources at the authorization endpoint;
/// the token request narrows to one, or gets them all.
#[tokio::test]
async fn resources_are_granted_and_narrowed() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let (a, b) = ("https://a.example/mcp", "https://b.example/mcp");
    let both = [("resource", a), ("resource", b)];

    let code = approved_code(&issuer, "app", &both).await;
    let (status, _, body) = redeem(&issuer, "app", &code, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], json!([a, b]));

    let code = approved_code(&issuer, "app", &both).await;
    let (status, _, body) = redeem(&issuer, "app", &code, &[("resource", b)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], b);

    let code = approved_code(&issuer, "app", &[("resource", a)]).await;
    let refused = redeem(&issuer, "app", &code, &[("resource", b)]).await;
    assert_oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_target");
}

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
