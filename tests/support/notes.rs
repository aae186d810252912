//! The reference notes server (`examples/common/notes.rs`, what
//! `examples/protected_server` serves) behind the real layer on
//! 127.0.0.1:0, with a real issuer, for tests of its public contract.

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfigBuilder, McpServer};
use tokio_util::sync::CancellationToken;

use super::fixture::{bounded, challenge, param};

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/common/notes.rs"]
pub mod server;

/// The issuer and the reference notes server; stopped on drop.
pub struct Notes {
    pub issuer: TestIssuer,
    pub resource: String,
    ct: CancellationToken,
}

impl Drop for Notes {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

impl Notes {
    /// With the reference server's rules.
    pub async fn start() -> Self {
        Self::start_with(|b| b).await
    }

    /// With more rules than the reference server's.
    pub async fn start_with(tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder) -> Self {
        let issuer = TestIssuer::start().await.expect("issuer");
        Self::start_on(issuer, tweak, None, false).await
    }

    /// On `issuer`, with the reference server's rules, `downstream_whoami`
    /// configured by `downstream` (else unconfigured), and the caller's
    /// `Authorization` header forwarded to the handlers when
    /// `forward_authorization` (the unsafe opt-out).
    pub async fn start_on(
        issuer: TestIssuer,
        tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
        downstream: Option<server::Downstream>,
        forward_authorization: bool,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let resource = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let config = tweak(server::declare_scopes(
            mcp_oauth2::AuthConfig::builder()
                .issuer(issuer.issuer())
                .resource(&resource)
                .allow_insecure_http_for_loopback(true),
        ))
        .build()
        .expect("config");
        let store = server::NoteStore::default();
        let downstream = std::sync::Arc::new(
            downstream.unwrap_or_else(|| server::Downstream::from_vars(|_| None, None).unwrap()),
        );
        let server = McpServer::builder()
            .auth(config)
            .forward_authorization_header_to_handlers_unsafe(forward_authorization)
            .service(move || {
                Ok(server::NotesServer::with_downstream(
                    store.clone(),
                    downstream.clone(),
                ))
            })
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

    /// A token of `alice` for this server with `scopes`.
    pub fn token(&self, scopes: &[&str]) -> String {
        self.token_for("alice", scopes)
    }

    /// A token of `subject` for this server with `scopes`.
    pub fn token_for(&self, subject: &str, scopes: &[&str]) -> String {
        self.issuer
            .token()
            .subject(subject)
            .audience(&self.resource)
            .scopes(scopes.iter().copied())
            .sign()
    }

    /// POSTs `body` with `token` and extra headers.
    pub async fn post(
        &self,
        token: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(&self.resource)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_owned());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        bounded(req.send()).await.expect("request")
    }

    /// POSTs one 2026-07-28 request (stateless, `Mcp-Method` and, when
    /// `name` is given, `Mcp-Name`).
    pub async fn post_modern(
        &self,
        token: &str,
        method: &str,
        name: Option<&str>,
        params: serde_json::Value,
    ) -> reqwest::Response {
        let mut params = params;
        params["_meta"] = serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut headers = vec![
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
        ];
        if let Some(name) = name {
            headers.push(("mcp-name", name));
        }
        self.post(token, &headers, &body.to_string()).await
    }
}

/// Asserts an RFC 6750 section 3.1 `insufficient_scope` answer naming
/// exactly `scope`.
pub fn assert_insufficient(resp: &reqwest::Response, scope: &str) {
    assert_eq!(resp.status(), 403);
    let c = challenge(resp);
    assert_eq!(param(&c, "error"), Some("insufficient_scope"));
    assert_eq!(param(&c, "scope"), Some(scope));
}
