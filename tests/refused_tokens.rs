//! A token refused for good is refused again without a second verification
//! for a while (issue 13: a flood of one bad token cost a signature check
//! per request), with the very same answer; a refusal that can pass (an
//! unknown key, not yet valid) is verified again every time. Real layer,
//! real `TestIssuer`, counted through the metrics snapshot.
// Test code: a panic here is a failed run, not an outage.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use std::time::Duration;

use mcp_oauth2::testing::{DpopClient, TestIssuer};
use mcp_oauth2::{AuthConfig, AuthLayer, Metrics};
use serde_json::Value;

struct Server {
    issuer: TestIssuer,
    resource: String,
    metrics: Metrics,
    http: reqwest::Client,
}

/// One answer: status, `WWW-Authenticate`, and the body's `error` and `reason`.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    challenge: String,
    error: Value,
    reason: Value,
}

impl Server {
    async fn start() -> Self {
        let issuer = TestIssuer::start().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let resource = format!("http://{}/api", listener.local_addr().unwrap());
        let config = AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(&resource)
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap();
        let layer = AuthLayer::new(config).unwrap();
        let metrics = layer.metrics();
        let app = axum::Router::new()
            .route("/api", axum::routing::get(|| async { "ok" }))
            .layer(layer);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            issuer,
            resource,
            metrics,
            http,
        }
    }

    async fn get(&self, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.get(&self.resource);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: Value = if status == 200 {
            Value::Null
        } else {
            resp.json().await.unwrap()
        };
        Answer {
            status,
            challenge,
            error: body["error"].clone(),
            reason: body["reason"].clone(),
        }
    }

    async fn bearer(&self, token: &str) -> Answer {
        self.get(&[("authorization", &format!("Bearer {token}"))])
            .await
    }

    /// Full verifications attempted so far (the verified-token cache's misses).
    fn verifications(&self) -> u64 {
        self.metrics.snapshot().cache_misses
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `token` with one signature character changed: same header and claims,
/// a signature that does not verify.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn a_bad_signature_is_checked_once_then_refused_from_memory() {
    let s = Server::start().await;
    let good = s
        .issuer
        .token()
        .subject("alice")
        .audience(&s.resource)
        .sign();
    let bad = tampered(&good);
    let first = s.bearer(&bad).await;
    assert_eq!(first.status, 401);
    assert_eq!(first.reason, "invalid_signature");
    assert_eq!(first.error, "invalid_token");
    assert_eq!(s.verifications(), 1);
    for _ in 0..5 {
        // The very same answer, status, challenge and body alike.
        assert_eq!(s.bearer(&bad).await, first);
    }
    assert_eq!(
        s.verifications(),
        1,
        "the same bad token was verified again"
    );
    let snap = s.metrics.snapshot();
    assert_eq!(snap.rejected.get("invalid_signature"), Some(&6));
    // The good token it was made from is not touched by the memory.
    assert_eq!(s.bearer(&good).await.status, 200);
    // Another bad token is verified on its own.
    let other = tampered(&s.issuer.token().subject("bob").audience(&s.resource).sign());
    assert_eq!(s.bearer(&other).await.reason, "invalid_signature");
    assert_eq!(s.verifications(), 3);
}

#[tokio::test]
async fn lasting_refusals_of_every_kind_are_remembered() {
    let s = Server::start().await;
    let now = now();
    let cases = [
        ("malformed_token", "not-a-jwt".to_owned()),
        (
            "invalid_audience",
            s.issuer
                .token()
                .audience("https://elsewhere.example/api")
                .sign(),
        ),
        (
            "token_expired",
            s.issuer
                .token()
                .audience(&s.resource)
                .issued_at(now - 7200)
                .expires_at(now - 3600)
                .sign(),
        ),
    ];
    for (i, (reason, token)) in cases.iter().enumerate() {
        let first = s.bearer(token).await;
        assert_eq!(first.reason, *reason, "{first:?}");
        let verified = s.verifications();
        assert_eq!(s.bearer(token).await, first);
        assert_eq!(s.bearer(token).await, first);
        assert_eq!(s.verifications(), verified, "{reason} verified again");
        assert!(verified <= i as u64 + 1);
    }
}

// An unknown key can rotate in, a token not yet valid becomes valid: those
// refusals are verified again on every request.
#[tokio::test]
async fn passing_refusals_are_verified_every_time() {
    let s = Server::start().await;
    let now = now();
    let early = s
        .issuer
        .token()
        .audience(&s.resource)
        .not_before(now + 3600)
        .sign();
    assert_eq!(s.bearer(&early).await.reason, "token_not_yet_valid");
    assert_eq!(s.bearer(&early).await.reason, "token_not_yet_valid");
    assert_eq!(s.verifications(), 2);
    let stranger = s
        .issuer
        .token()
        .audience(&s.resource)
        .header("kid", serde_json::json!("a-key-nobody-published"))
        .sign();
    let before = s.verifications();
    assert_eq!(s.bearer(&stranger).await.reason, "unknown_key");
    assert_eq!(s.bearer(&stranger).await.reason, "unknown_key");
    assert_eq!(s.verifications(), before + 2);
}

// The DPoP path checks the proof first, then the memory: a bound token
// whose signature is bad is verified once, whatever proofs come with it.
#[tokio::test]
async fn a_bad_dpop_bound_token_is_verified_once() {
    let s = Server::start().await;
    let client = DpopClient::new();
    let bad = tampered(
        &s.issuer
            .token()
            .audience(&s.resource)
            .dpop_bound_to(client.thumbprint())
            .sign(),
    );
    let auth = format!("DPoP {bad}");
    for _ in 0..3 {
        let proof = client.proof("GET", &s.resource, Some(&bad));
        let a = s.get(&[("authorization", &auth), ("dpop", &proof)]).await;
        assert_eq!(
            (a.status, a.reason.as_str()),
            (401, Some("invalid_signature"))
        );
    }
    assert_eq!(s.verifications(), 1);
    // A bad proof is still judged first, and said so.
    let a = s
        .get(&[("authorization", &auth), ("dpop", "not-a-proof")])
        .await;
    assert_eq!(a.error, "invalid_dpop_proof");
}

// The memory gives the answer a fresh check gives, whichever scheme put
// the token there (found from outside: a key-bound token for another
// audience, refused `invalid_audience` over DPoP, was then refused
// `invalid_audience` as Bearer too, where fresh it is
// `sender_constrained_token`: the scheme is judged before the token).
#[tokio::test]
async fn a_remembered_key_bound_token_sent_as_bearer_is_told_it_is_bound() {
    let s = Server::start().await;
    let client = DpopClient::new();
    for (token, reason) in [
        (
            s.issuer
                .token()
                .audience("http://127.0.0.1:9/elsewhere")
                .dpop_bound_to(client.thumbprint())
                .sign(),
            "invalid_audience",
        ),
        (
            tampered(
                &s.issuer
                    .token()
                    .audience(&s.resource)
                    .dpop_bound_to(client.thumbprint())
                    .sign(),
            ),
            "invalid_signature",
        ),
    ] {
        let fresh = s.bearer(&token).await;
        assert_eq!(
            (fresh.status, fresh.reason.as_str()),
            (401, Some("sender_constrained_token")),
            "{fresh:?}"
        );
        let auth = format!("DPoP {token}");
        let proof = client.proof("GET", &s.resource, Some(&token));
        let a = s.get(&[("authorization", &auth), ("dpop", &proof)]).await;
        assert_eq!((a.status, a.reason.as_str()), (401, Some(reason)), "{a:?}");
        let before = s.verifications();
        // Remembered now; as Bearer, the same answer as fresh, every time.
        for _ in 0..3 {
            assert_eq!(s.bearer(&token).await, fresh);
        }
        // And over DPoP, the remembered answer without a verification.
        let proof = client.proof("GET", &s.resource, Some(&token));
        let again = s.get(&[("authorization", &auth), ("dpop", &proof)]).await;
        assert_eq!(again, a);
        assert_eq!(s.verifications(), before);
    }
}
