//! A protected endpoint's address and configuration on 127.0.0.1:0, shared
//! by the test fixtures ([`fixture`](super::fixture), [`rig`](super::rig)).

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, AuthConfigBuilder};

/// Binds 127.0.0.1:0 and configures `issuer` for the MCP endpoint there
/// (`http://127.0.0.1:<port>/mcp`, plain HTTP allowed on loopback), with
/// `tweak` applied. Returns the listener, the resource URI and the config.
pub(crate) async fn bind_with_config(
    issuer: &TestIssuer,
    tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
) -> (tokio::net::TcpListener, String, AuthConfig) {
    bind_at(issuer, "/mcp", tweak).await
}

/// [`bind_with_config`] with the endpoint at `path` (`/api/mcp`, ...).
pub(crate) async fn bind_at(
    issuer: &TestIssuer,
    path: &str,
    tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
) -> (tokio::net::TcpListener, String, AuthConfig) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let resource = format!("http://{}{path}", listener.local_addr().expect("addr"));
    let config = tweak(
        AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(&resource)
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .expect("config");
    (listener, resource, config)
}

/// A plain `AuthLayer` for `issuer` (configured as [`bind_at`] does, then
/// `layer` applied) in front of one axum route at `path`, served on
/// 127.0.0.1:0 until the test ends. Returns the resource URI.
pub(crate) async fn serve_route(
    issuer: &TestIssuer,
    path: &str,
    layer: impl FnOnce(mcp_oauth2::AuthLayer) -> mcp_oauth2::AuthLayer,
    route: axum::routing::MethodRouter,
) -> String {
    let (listener, resource, config) = bind_at(issuer, path, |b| b).await;
    let layer = layer(mcp_oauth2::AuthLayer::new(config).expect("layer"));
    let app: axum::Router = axum::Router::new().route(path, route).layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    resource
}

/// A route answering, for any method, the names of the header fields its
/// handler sees, comma-separated in the order of the map (the oracle of
/// what the layer takes off before the handler).
pub(crate) fn seen_headers() -> axum::routing::MethodRouter {
    axum::routing::any(|headers: http::HeaderMap| async move {
        let names: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
        names.join(",")
    })
}
