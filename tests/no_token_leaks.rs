//! Observability without leaks (issue 4): every log line of a full hostile
//! run, at TRACE level and from every crate (ours, rmcp, hyper, reqwest, and
//! `log` records through tracing-log), is captured while a real protected
//! MCP server on 127.0.0.1:0 is sent valid and hostile requests. No token,
//! token part, signature, attacker-chosen claim or header value, or private
//! key member may appear; every rejection must be logged with its stable
//! reason code; attacker-controlled text must not reach the log unescaped.
//!
//! One test in its own binary, because it installs the global subscriber.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::rig;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, McpServer, RequestContextExt};
use rig::now;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;

/// Everything written by the subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(Arc::clone(&self.0))
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[derive(Clone)]
struct Hello {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Hello {
    #[tool(description = "Greets the caller")]
    async fn whoami(&self, ctx: RequestContext<RoleServer>) -> Result<String, rmcp::ErrorData> {
        Ok(format!("hello {}", ctx.auth()?.subject()))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Marks attacker-chosen text; must never show up in a log.
const MARK: &str = "LEAKMARK";
/// A private key member the issuer wrongly publishes; must never show up.
const PRIVATE: &str = "UFJJVkFURS1rZXktbWVtYmVy";

/// What one request should be logged with.
struct Sent {
    secret: String,
    reason: Option<&'static str>,
}

// RFC 6750 section 5.3 and issue 4 "Observability without leaks".
#[test]
fn a_hostile_run_logs_reason_codes_and_never_token_material() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this test binary");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sent = runtime.block_on(hostile_run());
    drop(runtime);
    let logs = capture.text();

    assert!(!logs.is_empty());
    // Our own events are there, at every level (proves the capture works).
    assert!(logs.contains("mcp_oauth2"), "no event of ours captured");
    assert!(logs.contains("TRACE"), "TRACE events were not captured");

    // Other crates' events too: the server, the HTTP stack, the client.
    for target in ["rmcp", "hyper", "reqwest"] {
        assert!(logs.contains(target), "no event from {target}");
    }
    // The key-set warnings were emitted, escaped and without values.
    assert!(
        logs.contains("private key members"),
        "no private-member warning"
    );
    assert!(
        logs.contains(r"\u{1b}[31mred\u{7}"),
        "the odd kid was not logged escaped"
    );
    // A `kid` is written quoted, not as `Some("..")` (found from outside).
    assert!(!logs.contains("kid=Some("), "a kid logged as an Option");
    if std::env::var_os("LEAK_TEST_DUMP").is_some() {
        eprintln!("{logs}");
    }

    // 1. No token material: whole tokens, their parts, markers, secrets.
    for s in &sent {
        let secret = &s.secret;
        assert!(
            !logs.contains(secret.as_str()),
            "a credential was logged: {secret:.40}..."
        );
        for part in secret.split(['.', ' ', ',']) {
            if part.len() >= 16 {
                assert!(
                    !logs.contains(part),
                    "a token part was logged: {part:.40}..."
                );
            }
        }
    }
    // Issue 17: the one claim logged is the audience of a token the trusted
    // issuer signed (`token_audience` of the audit event), which explains an
    // operator's configuration problem; it is issuer text, not the sender's.
    let signed_audience = format!("token_audience=\"https://{MARK}.example/mcp\"");
    assert!(
        logs.contains(&signed_audience),
        "the audit event names the audience"
    );
    let logs = logs.replace(&signed_audience, "token_audience=<checked>");
    for needle in [MARK, PRIVATE] {
        if let Some(at) = logs.find(needle) {
            let start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!("{needle} was logged: {}", &logs[start..end]);
        }
    }
    // 2. Attacker- or issuer-controlled text is escaped: no raw control bytes.
    assert!(
        !logs.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character reached the log"
    );
    // 3. Every rejection is logged with its stable reason code.
    let rejections = logs
        .lines()
        .filter(|l| l.contains("mcp_oauth2::layer") && l.contains("reason="))
        .count();
    let expected = sent.iter().filter(|s| s.reason.is_some()).count();
    assert_eq!(rejections, expected, "one reason-coded event per rejection");
    for s in &sent {
        if let Some(reason) = s.reason {
            assert!(
                logs.contains(&format!("reason=\"{reason}\""))
                    || logs.contains(&format!("reason={reason}")),
                "no event with reason {reason}"
            );
        }
    }
}

async fn hostile_run() -> Vec<Sent> {
    let issuer = TestIssuer::start().await.unwrap();
    // The issuer wrongly publishes a private member and a kid with an escape
    // sequence; both are logged about (escaped, without the value).
    let mut jwk = issuer.public_jwk().unwrap();
    jwk["d"] = json!(PRIVATE);
    let mut odd = issuer.public_jwk().unwrap();
    odd["kid"] = json!("\u{1b}[31mred\u{7}");
    odd["use"] = json!("enc");
    issuer.set_jwks_document(Some(json!({ "keys": [jwk, odd] })));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let server = McpServer::builder()
        .auth(config)
        .service(|| {
            Ok(Hello {
                tool_router: Hello::tool_router(),
            })
        })
        .build()
        .unwrap();
    let ct = server.cancellation_token();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut sent = Vec::new();
    let t = now();
    let good = || issuer.token().audience(&resource).subject("alice");
    let marked = || {
        issuer
            .token()
            .audience(&resource)
            .subject(format!("{MARK}-sub"))
            .claim("note", json!(format!("{MARK}-claim \u{1b}[2J")))
            .header("x-note", json!(format!("{MARK}-header")))
    };

    // A valid session through rmcp: initialize, initialized, tools/call.
    let valid = good().sign();
    let session = mcp_session(&http, &resource, &valid).await;
    sent.push(Sent {
        secret: valid.clone(),
        reason: None,
    });
    let _ = session;

    // Hostile tokens, each with attacker-chosen text inside.
    let attacker = TestIssuer::start().await.unwrap();
    let hostile: Vec<(String, &'static str)> = vec![
        (
            marked().header("alg", json!("none")).sign(),
            "disallowed_algorithm",
        ),
        (
            marked().header("alg", json!("HS256")).sign(),
            "disallowed_algorithm",
        ),
        (
            marked().header("crit", json!([MARK])).sign(),
            "unsupported_header",
        ),
        (marked().header("typ", json!(MARK)).sign(), "invalid_type"),
        (
            marked()
                .claim("iss", json!(format!("https://{MARK}.example")))
                .sign(),
            "invalid_issuer",
        ),
        (
            marked()
                .claim("aud", json!(format!("https://{MARK}.example/mcp")))
                .sign(),
            "invalid_audience",
        ),
        (marked().expires_at(t - 3600).sign(), "token_expired"),
        (marked().not_before(t + 3600).sign(), "token_not_yet_valid"),
        (
            marked().expires_at(t + 100 * 86_400).sign(),
            "token_lifetime_too_long",
        ),
        (
            marked().claim("cnf", json!({ "jkt": MARK })).sign(),
            "sender_constrained_token",
        ),
        (marked().claim("sub", json!(7)).sign(), "invalid_claims"),
        (
            marked()
                .header("kid", json!(format!("{MARK}\u{1b}[0m")))
                .sign(),
            "unknown_key",
        ),
        (
            attacker
                .token()
                .claim("iss", json!(issuer.issuer()))
                .audience(&resource)
                .claim("note", json!(MARK))
                .header("jku", json!(format!("{}/{MARK}", attacker.issuer())))
                .sign(),
            "invalid_signature",
        ),
        (format!("{MARK}.{MARK}.{MARK}"), "malformed_token"),
        (
            format!("{MARK}A.{MARK}B.{MARK}C.{MARK}D.{MARK}E"),
            "encrypted_token",
        ),
        (format!("{MARK}{}", "A".repeat(9000)), "token_too_large"),
    ];
    for (token, reason) in hostile {
        let status = post(&http, &resource, Some(format!("Bearer {token}").as_bytes())).await;
        assert_eq!(
            status,
            if reason == "keys_unavailable" {
                503
            } else {
                401
            },
            "{reason}"
        );
        sent.push(Sent {
            secret: token,
            reason: Some(reason),
        });
    }
    // Duplicate members (raw JSON, signed).
    let dup = issuer
        .try_sign_raw(
            format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"key-1","x":"{MARK}"}}"#).as_bytes(),
            format!(
                r#"{{"iss":"{}","aud":"{resource}","sub":"{MARK}","sub":"admin","exp":{}}}"#,
                issuer.issuer(),
                t + 300
            )
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(
        post(&http, &resource, Some(format!("Bearer {dup}").as_bytes())).await,
        401
    );
    sent.push(Sent {
        secret: dup,
        reason: Some("duplicate_member"),
    });

    // Broken Authorization headers carrying attacker text.
    let headers: Vec<(Vec<u8>, u16, &'static str)> = vec![
        (
            format!("Bearer {MARK} {valid}").into_bytes(),
            400,
            "malformed_authorization_header",
        ),
        (
            format!("Bearer {MARK}\u{e9}").into_bytes(),
            400,
            "malformed_authorization_header",
        ),
        (format!("Basic {MARK}").into_bytes(), 401, "missing_token"),
        (format!("DPoP {valid}").into_bytes(), 401, "missing_token"),
    ];
    for (value, status, reason) in headers {
        assert_eq!(
            post(&http, &resource, Some(&value)).await,
            status,
            "{reason}"
        );
        sent.push(Sent {
            secret: String::from_utf8_lossy(&value).into_owned(),
            reason: Some(reason),
        });
    }
    // Two Authorization headers.
    let response = http
        .post(&resource)
        .header("authorization", format!("Bearer {MARK}1"))
        .header("authorization", format!("Bearer {MARK}2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    sent.push(Sent {
        secret: format!("{MARK}1"),
        reason: Some("multiple_authorization_headers"),
    });
    // A token in the query string is refused, not read (and not logged).
    let response = http
        .post(format!("{resource}?access_token={valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    sent.push(Sent {
        secret: valid.clone(),
        reason: Some("token_in_query"),
    });

    // The key server goes down and the stale window is long gone: 503,
    // logged as keys_unavailable, token not logged.
    let short = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    issuer.set_jwks_available(false);
    let cold = mcp_oauth2::AuthLayer::new(short).unwrap();
    let app = axum::Router::new()
        .route("/mcp", axum::routing::any(|| async { "ok" }))
        .layer(cold);
    let cold_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cold_url = format!("http://{}/mcp", cold_listener.local_addr().unwrap());
    let cold_server = tokio::spawn(async move {
        let _ = axum::serve(cold_listener, app).await;
    });
    let fresh = good().claim("note", json!(MARK)).sign();
    assert_eq!(
        post(&http, &cold_url, Some(format!("Bearer {fresh}").as_bytes())).await,
        503
    );
    sent.push(Sent {
        secret: fresh,
        reason: Some("keys_unavailable"),
    });

    // Opaque tokens through introspection (RFC 7662), the client
    // authenticating with each method: neither the tokens nor the client
    // secret (nor its Basic encoding) reach the log at any level.
    const CLIENT_SECRET: &str = "Q2xpZW50U2VjcmV0VmFsdWUtMTIzNDU2";
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("rs-client:{CLIENT_SECRET}"))
    };
    let active = format!("opaque{MARK}active0123456789");
    let answer = json!({"active": true, "sub": "carol", "aud": &resource, "iss": issuer.issuer(),
        "exp": t + 300, "client_id": "c"});
    let known = active.clone();
    let endpoint = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move |body: String| {
            let answer = if body.contains(&known) {
                answer.clone()
            } else {
                json!({"active": false})
            };
            async move { axum::Json(answer) }
        }),
    );
    let endpoint_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint_url = format!(
        "http://{}/introspect",
        endpoint_listener.local_addr().unwrap()
    );
    let endpoint_server = tokio::spawn(async move {
        let _ = axum::serve(endpoint_listener, endpoint).await;
    });
    for (i, method) in [
        mcp_oauth2::verify::ClientAuthMethod::ClientSecretBasic,
        mcp_oauth2::verify::ClientAuthMethod::ClientSecretPost,
    ]
    .into_iter()
    .enumerate()
    {
        let settings = mcp_oauth2::verify::IntrospectionSettings::new("rs-client", CLIENT_SECRET)
            .auth_method(method)
            .endpoint(url::Url::parse(&endpoint_url).unwrap());
        let config = AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(&resource)
            .allow_insecure_http_for_loopback(true)
            .introspection(settings)
            .build()
            .unwrap();
        let app = axum::Router::new()
            .route("/mcp", axum::routing::any(|| async { "ok" }))
            .layer(mcp_oauth2::AuthLayer::new(config).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        assert_eq!(
            post(&http, &url, Some(format!("Bearer {active}").as_bytes())).await,
            200
        );
        let inactive = format!("opaque{MARK}inactive{i}0123456789");
        assert_eq!(
            post(&http, &url, Some(format!("Bearer {inactive}").as_bytes())).await,
            401
        );
        sent.push(Sent {
            secret: inactive,
            reason: Some("token_inactive"),
        });
        server.abort();
    }
    endpoint_server.abort();
    for secret in [active, CLIENT_SECRET.to_owned(), basic] {
        sent.push(Sent {
            secret,
            reason: None,
        });
    }

    cold_server.abort();
    ct.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), serving).await;
    sent
}

/// POSTs an empty JSON-RPC ping with the given Authorization value.
async fn post(http: &reqwest::Client, url: &str, authorization: Option<&[u8]>) -> u16 {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    if let Some(value) = authorization {
        let mut value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
        value.set_sensitive(true);
        request = request.header("authorization", value);
    }
    request.send().await.unwrap().status().as_u16()
}

/// A legacy-lifecycle MCP session with a valid token; returns the session id.
async fn mcp_session(http: &reqwest::Client, url: &str, token: &str) -> Option<String> {
    let rpc = |body: Value, session: Option<&str>| {
        let mut r = http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string());
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r
    };
    let init = rpc(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "leak-test", "version": "0"}
        }}),
        None,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(init.status(), 200, "initialize with a valid token");
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = init.text().await;
    let s = session.as_deref();
    let _ = rpc(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        s,
    )
    .send()
    .await
    .unwrap();
    let call = rpc(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "whoami", "arguments": {}}}),
        s,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(call.status(), 200);
    let text = call.text().await.unwrap();
    assert!(text.contains("hello alice"), "{text}");
    session
}
