//! A protected axum app on 127.0.0.1:0 in front of a real [`TestIssuer`],
//! for the hardening tests (issue 4): hostile tokens, key-server faults, TLS
//! and log hygiene. Everything goes over real HTTP.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::any;
use mcp_oauth2::testing::{TestIssuer, TokenBuilder};
use mcp_oauth2::{AuthConfig, AuthConfigBuilder, AuthContext, AuthLayer, JwtVerifier};
use tokio::task::JoinHandle;

use super::loopback::bind_with_config;

/// An issuer, a verifier and a protected endpoint at `resource`.
pub struct Rig {
    pub issuer: TestIssuer,
    pub resource: String,
    pub verifier: JwtVerifier,
    pub http: reqwest::Client,
    server: JoinHandle<()>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    /// `error` of the `WWW-Authenticate: Bearer` challenge, if any.
    pub error: Option<String>,
    /// Whether a Bearer challenge with `resource_metadata` was sent.
    pub challenged: bool,
    /// `reason` of the JSON error body.
    pub reason: Option<String>,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Rig {
    /// A rig around a fresh RS256 issuer; the key set is not prefetched, so
    /// every key-server hit is the verifier's doing.
    pub async fn start(tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder) -> Self {
        let issuer = TestIssuer::start().await.expect("issuer");
        Self::with_issuer(issuer, tweak).await
    }

    pub async fn with_issuer(
        issuer: TestIssuer,
        tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
    ) -> Self {
        let (listener, resource, config) = bind_with_config(&issuer, tweak).await;
        let verifier = JwtVerifier::new(&config).expect("verifier");
        Self::serve(issuer, resource, listener, config, verifier)
    }

    /// A rig with a verifier built by the caller (for a custom HTTP client).
    pub async fn with_verifier(
        issuer: TestIssuer,
        config: impl FnOnce(&str) -> AuthConfig,
        verifier: impl FnOnce(&AuthConfig) -> JwtVerifier,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let resource = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let config = config(&resource);
        let verifier = verifier(&config);
        Self::serve(issuer, resource, listener, config, verifier)
    }

    fn serve(
        issuer: TestIssuer,
        resource: String,
        listener: tokio::net::TcpListener,
        config: AuthConfig,
        verifier: JwtVerifier,
    ) -> Self {
        let app = Router::new()
            .route(
                "/mcp",
                any(|auth: AuthContext| async move { format!("hello {}", auth.subject()) }),
            )
            .layer(AuthLayer::with_verifier(config, verifier.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            issuer,
            resource,
            verifier,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            server,
        }
    }

    /// A token addressed to this resource, otherwise the issuer's defaults.
    pub fn token(&self) -> TokenBuilder<'_> {
        self.issuer.token().audience(&self.resource)
    }

    /// Sends `Authorization: Bearer <token>`.
    pub async fn send(&self, token: &str) -> Outcome {
        let mut value =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
        value.set_sensitive(true);
        self.send_request(
            self.http
                .get(&self.resource)
                .header(reqwest::header::AUTHORIZATION, value),
        )
        .await
    }

    /// Sends the request as built.
    pub async fn send_request(&self, request: reqwest::RequestBuilder) -> Outcome {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let challenge = header(reqwest::header::WWW_AUTHENTICATE);
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let params = challenge
            .as_deref()
            .and_then(mcp_oauth2::testing::parse_bearer_challenge)
            .unwrap_or_default();
        let error = params
            .iter()
            .find(|(k, _)| k == "error")
            .map(|(_, v)| v.clone());
        let challenged = params.iter().any(|(k, _)| k == "resource_metadata");
        let body = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned));
        Outcome {
            status,
            error,
            challenged,
            reason,
            retry_after,
            body,
        }
    }

    /// The `Host:port` of the protected server.
    pub fn authority(&self) -> String {
        self.resource
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_owned()
    }
}

/// Asserts a 401 `invalid_token` with the full challenge and the given reason.
#[track_caller]
pub fn assert_invalid_token(outcome: &Outcome, reason: &str, case: &str) {
    assert_eq!(outcome.status, 401, "{case}: {outcome:?}");
    assert_eq!(
        outcome.error.as_deref(),
        Some("invalid_token"),
        "{case}: {outcome:?}"
    );
    assert!(outcome.challenged, "{case}: {outcome:?}");
    assert_eq!(
        outcome.reason.as_deref(),
        Some(reason),
        "{case}: {outcome:?}"
    );
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Polls `f` until it holds (at most ~10 s): for effects of background
/// tasks, asserted by count, never by time.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}
