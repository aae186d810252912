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

#[path = "../support/mod.rs"]
mod support;

use support::loopback;

mod authorize;
mod register;
mod token;

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
    let challenge = mcp_oauth2::testing::parse_bearer_challenge(
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
