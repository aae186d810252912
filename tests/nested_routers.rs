//! `AuthLayer` in apps that nest routers (`Router::nest`, `nest_service`):
//! axum hands a nested router the request with its prefix stripped, so a
//! layer applied inside the nest sees `/mcp` for a request to `/api/mcp`.
//! Real `TestIssuer`, real axum apps on 127.0.0.1:0, real HTTP.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use axum::Router;
use axum::routing::post;
use mcp_oauth2::testing::{DpopClient, TestIssuer};
use mcp_oauth2::{AuthConfig, AuthContext, AuthLayer};
use support::loopback::{bind_at, bind_with_config};

/// A configuration trusting `issuer` for the resource at `path` on `addr`.
fn config_at(issuer: &TestIssuer, addr: std::net::SocketAddr, path: &str) -> AuthConfig {
    AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(format!("http://{addr}{path}"))
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap()
}

async fn whoami(auth: AuthContext) -> String {
    auth.subject().to_owned()
}

/// How the app places the layer around `/api/mcp`.
#[derive(Debug, Clone, Copy)]
enum Placement {
    /// `Router::new().nest("/api", McpServer::builder()..path("/mcp")..into_router())`.
    McpServerInsideNest,
    /// `Router::new().nest("/api", Router::new().route("/mcp", ..).layer(layer))`.
    InsideNest,
    /// `Router::new().nest_service("/api/mcp", Router::new().route("/", ..).layer(layer))`.
    InsideNestService,
    /// `Router::new().nest("/api", Router::new().route("/mcp", ..)).layer(layer)`.
    OutsideNest,
}

struct App {
    addr: std::net::SocketAddr,
    resource: String,
    issuer: TestIssuer,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start(placement: Placement) -> App {
    start_with(placement, false).await
}

/// `merge_metadata`: the app also merges `AuthLayer::metadata_router()`
/// into its outermost router (the remedy for a layer inside a nest).
async fn start_with(placement: Placement, merge_metadata: bool) -> App {
    let issuer = TestIssuer::start().await.unwrap();
    let (listener, resource, config) = bind_at(&issuer, "/api/mcp", |b| b).await;
    let addr = listener.local_addr().unwrap();
    let server = mcp_oauth2::McpServer::builder()
        .auth(config.clone())
        .path("/mcp")
        .service(|| Ok(Empty))
        .build()
        .unwrap();
    let layer = AuthLayer::new(config).unwrap();
    // Asked for only by an app that merges it: handing it out marks the
    // document as served.
    let metadata = merge_metadata.then(|| layer.metadata_router());
    let app: Router = match placement {
        Placement::McpServerInsideNest => Router::new().nest("/api", server.into_router()),
        Placement::InsideNest => Router::new().nest(
            "/api",
            Router::new().route("/mcp", post(whoami)).layer(layer),
        ),
        Placement::InsideNestService => Router::new().nest_service(
            "/api/mcp",
            Router::new().route("/", post(whoami)).layer(layer),
        ),
        Placement::OutsideNest => Router::new()
            .nest("/api", Router::new().route("/mcp", post(whoami)))
            .layer(layer),
    };
    let app = match metadata {
        Some(metadata) => app.merge(metadata),
        None => app,
    };
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    App {
        addr,
        resource,
        issuer,
        server,
    }
}

// RFC 9449 section 4.3: `htu` is the URI the client requested
// (`http://host/api/mcp`), whatever path the layer's router is handed.
#[tokio::test]
async fn a_dpop_proof_for_the_requested_uri_is_accepted_wherever_the_layer_sits() {
    for placement in [
        Placement::OutsideNest,
        Placement::InsideNest,
        Placement::InsideNestService,
    ] {
        let app = start(placement).await;
        let client = DpopClient::new();
        let token = app
            .issuer
            .token()
            .subject("alice")
            .audience(&app.resource)
            .dpop_bound_to(client.thumbprint())
            .sign();
        let call = |proof: String| {
            reqwest::Client::new()
                .post(format!("http://{}/api/mcp", app.addr))
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .send()
        };
        let ok = call(client.proof("POST", &app.resource, Some(&token)))
            .await
            .unwrap();
        let status = ok.status();
        let body = ok.text().await.unwrap();
        assert_eq!(status, 200, "{placement:?}: {body}");
        assert_eq!(body, "alice", "{placement:?}");
        // A proof made for the path the nested router is handed is a proof
        // for another URI: refused.
        let stripped = format!("http://{}/mcp", app.addr);
        let refused = call(client.proof("POST", &stripped, Some(&token)))
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{placement:?}");
        let body = refused.text().await.unwrap();
        assert!(body.contains("dpop_uri_mismatch"), "{placement:?}: {body}");
    }
}

/// The `resource_metadata` URL of a 401 challenge from `POST /api/mcp`.
async fn challenge_url(app: &App) -> String {
    let refused = reqwest::Client::new()
        .post(format!("http://{}/api/mcp", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned()
}

/// Every WARN event of the `mcp_oauth2` crate, as text.
#[derive(Clone, Default)]
struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        let meta = event.metadata();
        if *meta.level() == tracing::Level::WARN && meta.target().starts_with("mcp_oauth2") {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0.lock().unwrap().push(text.0);
        }
    }
}

// RFC 9728 section 5.1: the challenge's `resource_metadata` must serve the
// document. A layer inside a nest cannot route the root well-known URL to
// itself: it says so once (a WARN naming the remedy) instead of letting
// clients meet a 404, and with the remedy (the layer's metadata router
// merged into the outermost router) the URL serves the document. A layer
// outside the nest serves it by itself and says nothing.
#[tokio::test]
async fn the_challenge_names_a_url_that_serves_the_metadata() {
    use tracing_subscriber::layer::SubscriberExt as _;
    for placement in [
        Placement::OutsideNest,
        Placement::InsideNest,
        Placement::InsideNestService,
        Placement::McpServerInsideNest,
    ] {
        let warnings = Warnings::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
        let inside = !matches!(placement, Placement::OutsideNest);
        let app = start(placement).await;
        let url = challenge_url(&app).await;
        let _ = challenge_url(&app).await;
        let found = reqwest::get(&url).await.unwrap().status();
        let warned: Vec<String> = warnings
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.contains("nested router"))
            .cloned()
            .collect();
        if inside {
            assert_eq!(found, 404, "{placement:?}: {url}");
            assert_eq!(warned.len(), 1, "{placement:?}: {warned:?}");
            assert!(
                warned[0].contains("metadata_router") && warned[0].contains(&url),
                "{placement:?}: {warned:?}"
            );
        } else {
            assert_eq!(found, 200, "{placement:?}: {url}");
            assert!(warned.is_empty(), "{placement:?}: {warned:?}");
        }
        // With the remedy the URL serves this resource's document, and
        // nothing warns that it does not (found from outside: the warning
        // came with the remedy in place).
        warnings.0.lock().unwrap().clear();
        let app = start_with(placement, true).await;
        let url = challenge_url(&app).await;
        let _ = challenge_url(&app).await;
        let doc = reqwest::get(&url).await.unwrap();
        assert_eq!(doc.status(), 200, "{placement:?}: {url}");
        let doc: serde_json::Value = doc.json().await.unwrap();
        assert_eq!(doc["resource"], app.resource.as_str(), "{placement:?}");
        let warned = warnings.0.lock().unwrap().clone();
        assert!(
            !warned.iter().any(|w| w.contains("nested router")),
            "{placement:?}: {warned:?}"
        );
    }
}

// The MCP path is compared with the path the client requested: behind a
// layer inside the nest, `/api/mcp` is judged as MCP (its `Origin` checked)
// although the nested router is handed `/mcp`.
#[tokio::test]
async fn a_nested_layer_places_the_mcp_path_by_the_requested_path() {
    for placement in [Placement::InsideNest, Placement::InsideNestService] {
        let app = start(placement).await;
        let token = app
            .issuer
            .token()
            .subject("alice")
            .audience(&app.resource)
            .sign();
        let response = reqwest::Client::new()
            .post(format!("http://{}/api/mcp", app.addr))
            .bearer_auth(&token)
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{placement:?}");
        let body = response.text().await.unwrap();
        assert!(body.contains("origin_not_allowed"), "{placement:?}: {body}");
    }
}

// Several resources in one app: two protected MCP servers (`/a/mcp`,
// `/b/mcp`) merged into one router, as `McpServer::into_router` invites.
// Both routers claimed the root well-known route, and axum panicked when
// they were merged ("Cannot merge two `MethodRouter`s that both have a
// fallback"). The root location is one per host: the second server leaves
// it to the first (`root_metadata(false)`), and each document is served at
// its own path-suffixed location (RFC 9728 section 3.1) with its own
// `resource`; the root serves the first's. The same holds for two
// `AuthLayer::metadata_router`s.
#[tokio::test]
async fn several_resources_in_one_app_each_serve_their_metadata() {
    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = |path: &str| config_at(&issuer, addr, path);
    let server = |path: &str, root: bool| {
        mcp_oauth2::McpServer::builder()
            .auth(config(path))
            .path(path)
            .root_metadata(root)
            .service(|| Ok(Empty))
            .build()
            .unwrap()
    };
    let layer = |path: &str, root: bool| AuthLayer::new(config(path)).unwrap().root_metadata(root);
    let app = Router::new()
        .merge(server("/a/mcp", true).into_router())
        .merge(server("/b/mcp", false).into_router())
        .merge(layer("/c/api", false).metadata_router())
        .route("/d/api", post(whoami).layer(layer("/d/api", false)));
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let document = |suffix: &str| {
        let url = format!("http://{addr}/.well-known/oauth-protected-resource{suffix}");
        async move {
            let response = reqwest::get(&url).await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    for path in ["/a/mcp", "/b/mcp", "/c/api"] {
        assert_eq!(
            document(path).await["resource"],
            format!("http://{addr}{path}")
        );
    }
    assert_eq!(
        document("").await["resource"],
        format!("http://{addr}/a/mcp")
    );
    // Each challenge names its own document.
    for path in ["/b/mcp", "/d/api"] {
        let refused = reqwest::Client::new()
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{path}");
        let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource{path}\""
            )),
            "{path}: {challenge}"
        );
    }
    serving.abort();
}

// The README's app layer for another resource: `route_layer` on the app's
// own route, beside `McpServer::into_router()`. A route layer runs only for
// the routes it wraps, so its document is served only when the app merges
// `metadata_router()` (found from outside: the challenge named a URL that
// answered 404); without `root_metadata(false)` the merge panics (the
// MCP server serves the root document).
#[tokio::test]
async fn a_route_layer_for_another_resource_serves_the_document_its_challenge_names() {
    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = |path: &str| config_at(&issuer, addr, path);
    let mcp_server = || {
        mcp_oauth2::McpServer::builder()
            .auth(config("/mcp"))
            .service(|| Ok(Empty))
            .build()
            .unwrap()
    };
    let app = |merge_document: bool| {
        let api_layer = AuthLayer::new(config("/api")).unwrap().root_metadata(false);
        let mut app = Router::new()
            .route("/api", post(whoami))
            .route_layer(api_layer.clone());
        if merge_document {
            app = app.merge(api_layer.metadata_router());
        }
        app.merge(mcp_server().into_router())
    };
    let merged_twice = std::panic::catch_unwind(|| {
        let api_layer = AuthLayer::new(config("/api")).unwrap();
        Router::<()>::new()
            .route("/api", post(whoami))
            .route_layer(api_layer.clone())
            .merge(api_layer.metadata_router())
            .merge(mcp_server().into_router())
    });
    assert!(merged_twice.is_err(), "two root documents merged");
    let without = app(false);
    let with = app(true);
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, with).await;
    });
    let refused = reqwest::Client::new()
        .post(format!("http://{addr}/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    let url = format!("http://{addr}/.well-known/oauth-protected-resource/api");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{url}\"")),
        "{challenge}"
    );
    let document: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(document["resource"], format!("http://{addr}/api"));
    let root: serde_json::Value = reqwest::get(format!(
        "http://{addr}/.well-known/oauth-protected-resource"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(root["resource"], format!("http://{addr}/mcp"));
    let token = issuer
        .token()
        .subject("alice")
        .audience(format!("http://{addr}/api"))
        .sign();
    let served = reqwest::Client::new()
        .post(format!("http://{addr}/api"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.unwrap(), "alice");
    serving.abort();
    // Without the merge, the document the challenge names is not served.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, without).await;
    });
    let missing = reqwest::get(format!(
        "http://{other}/.well-known/oauth-protected-resource/api"
    ))
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
    serving.abort();
}

// A root resource's own location is the root: `root_metadata(false)`
// cannot take it away.
#[tokio::test]
async fn a_root_resource_keeps_its_document_without_the_root_fallback() {
    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(format!("http://{addr}/"))
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let server = mcp_oauth2::McpServer::builder()
        .auth(config)
        .root_metadata(false)
        .service(|| Ok(Empty))
        .build()
        .unwrap();
    let app = server.into_router();
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let response = reqwest::get(format!(
        "http://{addr}/.well-known/oauth-protected-resource"
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let doc: serde_json::Value = response.json().await.unwrap();
    assert_eq!(doc["resource"], format!("http://{addr}"));
    serving.abort();
}

#[derive(Clone)]
struct Empty;
impl rmcp::ServerHandler for Empty {}

// A middleware between the router and the layer that rewrites the URI
// (`/v1/mcp` handed on as `/mcp`): the layer is placed by the path it is
// handed as well as by the one the client requested, whichever names the
// MCP path (fail closed): a foreign `Origin` is refused.
#[tokio::test]
async fn a_rewritten_path_is_placed_as_well_as_the_requested_one() {
    let issuer = TestIssuer::start().await.unwrap();
    let (listener, resource, config) = bind_with_config(&issuer, |b| b).await;
    let addr = listener.local_addr().unwrap();
    let rewrite = axum::middleware::map_request(|mut req: axum::extract::Request| async move {
        *req.uri_mut() = http::Uri::from_static("/mcp");
        req
    });
    let app = Router::new().route(
        "/v1/mcp",
        post(whoami)
            .layer(AuthLayer::new(config).unwrap())
            .layer(rewrite),
    );
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let token = issuer.token().subject("alice").audience(&resource).sign();
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/mcp"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    serving.abort();
}

// A proxy in front maps the public path to a local one: the resource is
// `http://host/api/mcp`, the proxy strips `/api`, and the server is
// mounted at `/mcp` (`McpServerBuilder::path`, or `AuthLayer::mcp_path`,
// "set it when a proxy maps the public path to another local one"). RFC
// 9449 section 4.3: the proof's `htu` is the URI the client sent its
// request to, the public one. The layer expected the resource's scheme and
// authority with the *local* path (`http://host/mcp`), so every DPoP
// request behind such a proxy was refused (401 `dpop_uri_mismatch`).
#[tokio::test]
async fn a_dpop_proof_for_the_public_uri_is_accepted_behind_a_path_mapping_proxy() {
    for mcp_server in [true, false] {
        let issuer = TestIssuer::start().await.unwrap();
        let (listener, resource, config) = bind_at(&issuer, "/api/mcp", |b| b).await;
        let addr = listener.local_addr().unwrap();
        // What the proxy forwards to: the local path.
        let app: Router = if mcp_server {
            mcp_oauth2::McpServer::builder()
                .auth(config)
                .path("/mcp")
                .service(|| Ok(Empty))
                .build()
                .unwrap()
                .into_router()
        } else {
            Router::new()
                .route("/mcp", post(whoami))
                .layer(AuthLayer::new(config).unwrap().mcp_path("/mcp"))
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = DpopClient::new();
        let token = issuer
            .token()
            .subject("alice")
            .audience(&resource)
            .dpop_bound_to(client.thumbprint())
            .sign();
        let call = |proof: String| {
            reqwest::Client::new()
                .post(format!("http://{addr}/mcp"))
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .send()
        };
        let ok = call(client.proof("POST", &resource, Some(&token)))
            .await
            .unwrap();
        let status = ok.status();
        let body = ok.text().await.unwrap();
        assert_ne!(status, 401, "mcp_server={mcp_server}: {body}");
        assert!(!body.contains("dpop_"), "mcp_server={mcp_server}: {body}");
        // A proof for the local URI names a URI the client never used.
        let local = format!("http://{addr}/mcp");
        let refused = call(client.proof("POST", &local, Some(&token)))
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "mcp_server={mcp_server}");
        let body = refused.text().await.unwrap();
        assert!(body.contains("dpop_uri_mismatch"), "{body}");
        server.abort();
    }
}

// Exempt routes are paths the client requests, as the MCP path and a DPoP
// proof's `htu` are ("inside a nest the layer still judges the path the
// client requested"): a layer inside `Router::nest("/api", ..)` with
// `exempt_path("/api/health")` serves `/api/health` without a token, and
// `exempt_path("/health")` (the app's own `/health`, outside the nest) does
// not open the nested router's `/health`, reached as `/api/health`. The
// layer matched exemptions against the path with the prefix stripped:
// the first was refused (401) and the second served without a token.
#[tokio::test]
async fn exempt_routes_are_judged_by_the_requested_path_inside_a_nest() {
    for (exempt, status) in [("/api/health", 200), ("/health", 401)] {
        let issuer = TestIssuer::start().await.unwrap();
        let (listener, _, config) = bind_at(&issuer, "/api/mcp", |b| b.exempt_path(exempt)).await;
        let addr = listener.local_addr().unwrap();
        let inner = Router::new()
            .route("/mcp", post(whoami))
            .route(
                "/health",
                axum::routing::get(|| async { "internal details" }),
            )
            .layer(AuthLayer::new(config).unwrap());
        let app = Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .nest("/api", inner);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let response = reqwest::get(format!("http://{addr}/api/health"))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "exempt_path({exempt:?})");
        server.abort();
    }
}
