//! The refusal log limit (issue 13: a flood of refusals must not cost a log
//! line each, nor fill the log): a real `McpServer` on 127.0.0.1:0 and the
//! reference server as a process, called over HTTP with a real
//! `TestIssuer`'s tokens, their audit events captured by a real `tracing`
//! subscriber (in process) or read from the process's JSON lines.
//!
//! Window boundaries are not under the test's control (the windows are
//! whole multiples of their length in Unix time), so the assertions hold
//! wherever a boundary falls: every refusal is either written or counted,
//! the counts carried by the `suppressed` fields add up to the metric, and
//! a burst fits in at most two windows.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::time::Duration;

use mcp_oauth2::testing::TestIssuer;
use serde_json::Value;
use support::audit::{Audit, Event};
use support::fixture::Harness;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn suppressed(events: &[Event]) -> u64 {
    events
        .iter()
        .filter_map(|e| e.get("suppressed"))
        .map(|n| n.parse::<u64>().unwrap())
        .sum()
}

/// A stateless (2026-07-28) `tools/call whoami`.
const WHOAMI: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},"#,
    r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
    r#""io.modelcontextprotocol/clientCapabilities":{}}}}"#
);

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;

/// A token of `issuer` for `url` whose signature does not verify (its last
/// characters changed).
fn forged(issuer: &TestIssuer, url: &str, subject: &str) -> String {
    let token = issuer.token().subject(subject).audience(url).sign();
    let tail = if token.ends_with("AAAA") {
        "BBBB"
    } else {
        "AAAA"
    };
    format!("{}{tail}", &token[..token.len() - 4])
}

async fn post(url: &str, id: &str, auth: &str) -> u16 {
    send(&reqwest::Client::new(), url, id, auth).await
}

async fn send(http: &reqwest::Client, url: &str, id: &str, auth: &str) -> u16 {
    http.post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-request-id", id)
        .header("authorization", auth)
        .body(LIST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn refusal_events_are_limited_per_kind_and_the_rest_counted() {
    let audit = Audit::default();
    tracing_subscriber::registry()
        .with(audit.clone())
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        limited(&audit).await;
        unlimited(&audit).await;
    });
}

/// Two `auth.refused` events a second: a burst of forged tokens is mostly
/// counted, an `authz.refused` of a verified caller in the same second is
/// still written, and the first event of a later window carries the count.
async fn limited(audit: &Audit) {
    let h = Harness::start(|b| {
        b.required_scopes(["mcp:use"])
            .audit_refusal_limit(2, Duration::from_secs(1))
    })
    .await;
    let (issuer, url) = (&h.issuer, &h.resource);
    const BURST: usize = 12;
    // One client for the burst, and the windows it spanned counted: on a
    // loaded machine (an instrumented coverage run) twelve requests once
    // took over two seconds, and three windows' events were written; a
    // burst under a second may still straddle two windows.
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    for i in 0..BURST {
        // Distinct forged tokens, and a missing one: one budget for both.
        let auth = if i == 0 {
            "Basic Zm9vOmJhcg==".to_owned()
        } else {
            format!("Bearer {}", forged(issuer, url, &format!("f{i}")))
        };
        assert_eq!(send(&http, url, &format!("lim-{i:02}"), &auth).await, 401);
    }
    // The limiter's windows start at its own first event, not here: a
    // burst of d seconds overlaps at most floor(d) + 2 of them.
    let windows = started.elapsed().as_secs() as usize + 2;
    // A verified caller without the scope: its own budget.
    let weak = issuer.token().subject("bob").audience(url).sign();
    assert_eq!(post(url, "authz-1", &format!("Bearer {weak}")).await, 403);
    let authz = audit.with_prefix("authz-");
    assert_eq!(authz.len(), 1, "{authz:#?}");
    assert_eq!(authz[0]["event"], "authz.refused");
    assert_eq!(authz[0]["subject"], "bob");

    let burst = audit.with_prefix("lim-");
    assert!(burst.iter().all(|e| e["event"] == "auth.refused"));
    // Two events in each window the burst spanned, at most.
    let most = 2 * windows;
    assert!(
        (2..=most).contains(&burst.len()),
        "{} of {BURST} written in {windows} windows",
        burst.len()
    );
    // With no later refusal of the kind, what was left out since the last
    // line written is told on a line of its own within a second or so
    // (found from outside: the tail of a flood was in no line, ever).
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let all = audit.with_prefix("lim-");
    assert_eq!(
        all.len() as u64 + suppressed(&all) + audit.flushed("auth.refused"),
        BURST as u64,
        "every refusal of the burst written or told"
    );
    // A later window: its first event is written and carries what was
    // left out since the last one written or told.
    let last = forged(issuer, url, "last");
    assert_eq!(post(url, "lim-last", &format!("Bearer {last}")).await, 401);
    let all = audit.with_prefix("lim-");
    assert!(
        all.iter().any(|e| e["request_id"] == "lim-last"),
        "a new window's first event is written"
    );
    let metrics = h.metrics.snapshot();
    // Every refusal written or counted, and the counts carried add up.
    let told = suppressed(&all) + audit.flushed("auth.refused");
    assert_eq!(all.len() as u64 + told, BURST as u64 + 1);
    assert_eq!(metrics.audit_suppressed, told);
    assert!(metrics.audit_suppressed >= BURST.saturating_sub(most) as u64);
    // The request counters count every refusal, written or not.
    assert_eq!(metrics.rejected_total(), BURST as u64 + 2);

    // `request.refused` keeps a budget for refusals naming a verified
    // caller apart from those before authentication (found from outside:
    // a flood from a foreign origin, without a token, crowded a verified
    // caller's cap refusals out of the log).
    let h = Harness::start(|b| {
        b.max_sessions_per_principal(1)
            .audit_refusal_limit(2, Duration::from_secs(1))
    })
    .await;
    for i in 0..12 {
        let status = h
            .post(
                &[
                    ("origin", "http://evil.example"),
                    ("x-request-id", &format!("flood-{i:02}")),
                ],
                LIST,
            )
            .await
            .status();
        assert_eq!(status, 403);
    }
    assert!(
        audit.with_prefix("flood-").len() < 12,
        "the flood was limited"
    );
    let carol = format!("Bearer {}", h.token("carol"));
    let init = support::attack::initialize_body(1);
    let opened = h
        .post(
            &[
                ("authorization", carol.as_str()),
                ("mcp-protocol-version", support::attack::LEGACY),
            ],
            &init,
        )
        .await;
    assert_eq!(opened.status(), 200);
    for i in 0..2 {
        let refused = h
            .post(
                &[
                    ("authorization", carol.as_str()),
                    ("mcp-protocol-version", support::attack::LEGACY),
                    ("x-request-id", &format!("capped-{i}")),
                ],
                &init,
            )
            .await;
        assert_eq!(refused.status(), 429);
    }
    let capped = audit.with_prefix("capped-");
    assert_eq!(capped.len(), 2, "{capped:#?}");
    assert!(
        capped
            .iter()
            .all(|e| e["event"] == "request.refused" && e["subject"] == "carol")
    );
}

/// `unlimited_audit_refusals`: every refusal is written.
async fn unlimited(audit: &Audit) {
    let h = Harness::start(|b| b.unlimited_audit_refusals()).await;
    let (issuer, url) = (&h.issuer, &h.resource);
    for i in 0..150 {
        let bad = forged(issuer, url, &format!("u{i}"));
        assert_eq!(
            post(url, &format!("all-{i:03}"), &format!("Bearer {bad}")).await,
            401
        );
    }
    let all = audit.with_prefix("all-");
    assert_eq!(all.len(), 150);
    assert_eq!(suppressed(&all), 0);
    assert_eq!(h.metrics.snapshot().audit_suppressed, 0);
}

/// The reference server, configured by environment only: its default
/// limit (100 a second) applies with no setting, and
/// `MCP_OAUTH2_AUDIT_REFUSAL_LIMIT` changes it.
#[tokio::test]
async fn reference_server_limits_refusal_lines() {
    let issuer = TestIssuer::start().await.unwrap();
    // (count, window in ms) of each limit.
    for (limit, per_window, sent) in [
        (None, (100, 1_000), 400),
        (Some("3/3600"), (3, 3_600_000), 40),
    ] {
        let port = support::reference::free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let mut env = vec![
            ("MCP_OAUTH2_ISSUER", issuer.issuer().to_owned()),
            ("MCP_OAUTH2_RESOURCE", resource.clone()),
            ("MCP_OAUTH2_LOG_FORMAT", "json".to_owned()),
            // The marker below is an accepted call (INFO).
            ("RUST_LOG", "warn,mcp_oauth2::audit=info".to_owned()),
        ];
        if let Some(limit) = limit {
            env.push(("MCP_OAUTH2_AUDIT_REFUSAL_LIMIT", limit.to_owned()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut server = support::reference::start(port, &env).await;
        // The lines are read while the burst runs (a full pipe would stop
        // the server's logging, and with it the server).
        let mut lines = server.lines;
        let reader = tokio::spawn(async move {
            let (mut written, mut carried) = (0, 0);
            while let Some(line) = lines.next_line().await.unwrap() {
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
                if v["target"] != "mcp_oauth2::audit" {
                    continue;
                }
                let f = &v["fields"];
                if f["request_id"] == "marker" {
                    assert_eq!(f["event"], "auth.accepted", "{line}");
                    return (written, carried);
                }
                // A burst that lasted over a second has its untold
                // refusals told on a line of their own.
                if f["event"] == "audit.suppressed" {
                    assert_eq!(f["of"], "auth.refused", "{line}");
                    carried += f["suppressed"].as_u64().unwrap_or(0);
                    continue;
                }
                assert_eq!(f["event"], "auth.refused", "{line}");
                written += 1;
                carried += f["suppressed"].as_u64().unwrap_or(0);
            }
            panic!("no marker event");
        });
        let http = reqwest::Client::new();
        // Concurrent, so that the default's 100 a second is passed.
        let started = std::time::Instant::now();
        let sends = (0..sent).map(|i| {
            let (http, resource) = (&http, &resource);
            async move { send(http, resource, &format!("ref-{i}"), "Bearer not-a-token").await }
        });
        for status in futures_util::future::join_all(sends).await {
            assert_eq!(status, 401);
        }
        let elapsed = started.elapsed();
        // The limit is spread: min(count, 10) lines at once, then one each
        // window / count (the default: ten, then one every 10 ms). So the
        // burst writes at most that many at once plus one per interval it
        // lasted: far fewer than a second's 100 when it is short (the first
        // 100 of a flood written back to back delayed the calls behind
        // them; BENCHMARKS.md, twenty-fifth pass). `3/3600` writes its
        // three at once.
        let (count, window_ms) = per_window;
        let interval_ms = window_ms / count;
        let least = count.min(10);
        let most = least + u64::try_from(elapsed.as_millis()).unwrap() / interval_ms;
        // A marker after the burst: an accepted call (JSON logs carry
        // every audit event).
        let valid = issuer.token().subject("m").audience(&resource).sign();
        let r = http
            .post(&resource)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-request-id", "marker")
            .header("authorization", format!("Bearer {valid}"))
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami")
            .body(WHOAMI)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (written, carried) = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .unwrap()
            .unwrap();
        assert!(
            written >= least && written <= most && written + carried <= sent,
            "{limit:?}: {written} of {sent} written in {elapsed:?} (at most {most}), {carried} carried"
        );
        server.child.kill().await.unwrap();
    }
}

/// Stopped right after a burst (found from outside: the server stopped
/// within the second its `audit.suppressed` line waits, and 17 of 20
/// refusals were in no line): what the limit left untold is told as the
/// server stops, so the lines written and the counts they carry add up to
/// every refusal.
#[tokio::test]
async fn refusals_left_untold_are_told_when_the_server_stops() {
    let issuer = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", issuer.issuer()),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_LOG_FORMAT", "json"),
            ("MCP_OAUTH2_AUDIT_REFUSAL_LIMIT", "3/3"),
        ],
    )
    .await;
    let (mut child, reader) = server.gather();
    const SENT: usize = 20;
    let http = reqwest::Client::new();
    let sends = (0..SENT).map(|i| {
        let (http, resource) = (&http, &resource);
        async move {
            send(
                http,
                resource,
                &format!("stop-{i}"),
                &format!("Bearer bad{i}"),
            )
            .await
        }
    });
    for status in futures_util::future::join_all(sends).await {
        assert_eq!(status, 401);
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server did not stop")
        .unwrap();
    assert!(status.success(), "exit: {status:?}");
    let lines = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    let (mut written, mut told) = (0u64, 0u64);
    for line in &lines {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["target"] != "mcp_oauth2::audit" {
            continue;
        }
        let f = &v["fields"];
        match f["event"].as_str() {
            Some("auth.refused") => {
                written += 1;
                told += f["suppressed"].as_u64().unwrap_or(0);
            }
            Some("audit.suppressed") => {
                assert_eq!(f["of"], "auth.refused", "{line}");
                told += f["suppressed"].as_u64().unwrap_or(0);
            }
            _ => {}
        }
    }
    assert!(written <= 4, "{written} written");
    assert_eq!(written + told, SENT as u64, "{lines:#?}");
}

/// Floods of the other refusals write within the limit too: requests
/// refused by an HTTP rule before authentication (a foreign `Origin`, a
/// content coding) as `request.refused` events, tokens refused while the
/// keys are unavailable as `auth.refused` alone, unreadable bodies of an
/// authenticated caller as their event alone (found from outside: each
/// wrote a line of its own per request, at INFO or WARN, with no limit
/// and, for the HTTP rules, no audit event).
#[tokio::test]
async fn reference_server_limits_the_lines_of_every_refusal() {
    // Two issuers: one whose keys are unavailable, one whose callers send
    // unreadable bodies.
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_available(false);
    let up = TestIssuer::start().await.unwrap();
    let issuers = format!("{},{}", issuer.issuer(), up.issuer());
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let env = [
        ("MCP_OAUTH2_ISSUER", issuers.as_str()),
        ("MCP_OAUTH2_RESOURCE", resource.as_str()),
        ("MCP_OAUTH2_LOG_FORMAT", "json"),
        // The reference server's own default filter for JSON logs.
        ("RUST_LOG", "info,rmcp=error"),
    ];
    let (mut child, reader) = support::reference::start(port, &env).await.gather();
    let token = issuer.token().subject("alice").audience(&resource).sign();
    let good = up.token().subject("bob").audience(&resource).sign();
    let http = reqwest::Client::new();
    const EACH: usize = 150;
    let started = std::time::Instant::now();
    let sends = (0..4 * EACH).map(|i| {
        let (http, resource, token, good) = (&http, &resource, &token, &good);
        async move {
            let r = http
                .post(resource)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("x-request-id", format!("flood-{i}"));
            let bearer = |t: &str| format!("Bearer {t}");
            let (r, body, expected) = match i % 4 {
                0 => (r.header("origin", "https://evil.example"), LIST, 403),
                1 => (r.header("content-encoding", "gzip"), LIST, 415),
                2 => (r.header("authorization", bearer(token)), LIST, 503),
                _ => (r.header("authorization", bearer(good)), "[1,2]", 400),
            };
            let status = r.body(body).send().await.unwrap().status().as_u16();
            assert_eq!(status, expected, "request {i}");
        }
    });
    futures_util::future::join_all(sends).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap();
    child.kill().await.unwrap();
    let all: Vec<Value> = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    // The default limit: ten at once, then one every 10 ms, per kind.
    let most = 10 + elapsed_ms / 10;
    let events = |event: &str, reason: &str| {
        let of: Vec<&Value> = all
            .iter()
            .filter(|v| v["fields"]["event"] == event && v["fields"]["reason"] == reason)
            .collect();
        let written = u64::try_from(of.len()).unwrap();
        let carried: u64 = of
            .iter()
            .filter_map(|v| v["fields"]["suppressed"].as_u64())
            .sum();
        (written, carried)
    };
    let origin = events("request.refused", "origin_not_allowed");
    let coding = events("request.refused", "unsupported_content_encoding");
    let keys = events("auth.refused", "keys_unavailable");
    let unreadable: Vec<&Value> = all
        .iter()
        .filter(|v| v["fields"]["reason"] == "body_unreadable")
        .collect();
    let each = u64::try_from(EACH).unwrap();
    assert!(
        !unreadable.is_empty() && u64::try_from(unreadable.len()).unwrap() <= most,
        "{} body_unreadable events, at most {most}",
        unreadable.len()
    );
    // One budget for the two HTTP rules, another for the token refusals.
    assert!(
        origin.0 >= 1 && coding.0 >= 1 && origin.0 + coding.0 <= most,
        "{origin:?} {coding:?}, at most {most} in {elapsed_ms} ms"
    );
    assert!(origin.0 + origin.1 + coding.0 + coding.1 <= 2 * each);
    assert!(keys.0 >= 1 && keys.0 <= most, "{keys:?}, at most {most}");
    let example = all
        .iter()
        .find(|v| v["fields"]["reason"] == "origin_not_allowed")
        .unwrap();
    assert_eq!(example["level"], "WARN", "{example}");
    assert_eq!(example["target"], "mcp_oauth2::audit", "{example}");
    assert_eq!(example["fields"]["status"], 403, "{example}");
    assert!(
        example["fields"]["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("flood-")),
        "{example}"
    );
    // Nothing else is written per request: the server's other lines are
    // a handful (the failed key-set fetches, at most one per retry
    // interval), not one per refusal.
    let other: Vec<&Value> = all
        .iter()
        .filter(|v| v["target"] != "mcp_oauth2::audit")
        .collect();
    assert!(
        other.len() <= 10,
        "{} other lines for {} refusals: {:?}",
        other.len(),
        4 * EACH,
        other.iter().take(5).collect::<Vec<_>>()
    );
}

/// The reference server's default filter keeps rmcp's per-call WARN lines
/// out: rmcp writes one for each call it answers with a JSON-RPC error,
/// holding the client's `id` and `method` as sent (found from outside: a
/// JWT sent as the id was written whole, one line per request, unlimited).
#[tokio::test]
async fn the_reference_server_s_default_log_holds_no_client_text_from_rmcp() {
    let issuer = TestIssuer::start().await.unwrap();
    // `RUST_LOG` unset (the server's own default filter), and set without
    // naming rmcp, which keeps rmcp's lines of client text out too (found
    // from outside: `RUST_LOG=debug` wrote a JWT sent as the id whole).
    for (format, rust_log) in [
        ("text", ""),
        ("json", ""),
        ("text", "debug,rustls_platform_verifier=warn"),
        ("json", "debug,rustls_platform_verifier=warn"),
    ] {
        let format = format!("{format} {rust_log}");
        let (server, resource) = support::reference::start_logging(
            issuer.issuer(),
            format.split(' ').next().unwrap(),
            rust_log,
        )
        .await;
        let (mut child, reader) = server.gather();
        let token = issuer.token().subject("alice").audience(&resource).sign();
        let planted = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.cGxhbnRlZC1zaWduYXR1cmU";
        let http = reqwest::Client::new();
        for i in 0..30 {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":"{planted}-{i}","method":"x/{planted}","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
            );
            let r = http
                .post(&resource)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", format!("Bearer {token}"))
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", format!("x/{planted}"))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            assert!(text.contains("-32601"), "{status} {text}");
        }
        // Listen streams closed by their client: rmcp writes an ERROR for
        // each (found from outside: thousands of lines a second).
        for _ in 0..30 {
            let body = r#"{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
            // A client of its own, so that the connection closes with it.
            let one = reqwest::Client::new();
            let mut r = one
                .post(&resource)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", format!("Bearer {token}"))
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "subscriptions/listen")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            // The acknowledgement, then the client goes.
            let first = r.chunk().await.unwrap();
            assert!(first.is_some());
            drop(r);
            drop(one);
        }
        // The server notices the closed streams.
        tokio::time::sleep(Duration::from_millis(500)).await;
        child.kill().await.unwrap();
        let all = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .unwrap()
            .unwrap();
        let signature = planted.rsplit('.').next().unwrap();
        let leaked: Vec<&String> = all.iter().filter(|l| l.contains(signature)).collect();
        assert!(leaked.is_empty(), "{format}: {leaked:?}");
        assert!(
            all.iter().filter(|l| l.contains("rmcp")).count() == 0,
            "{format}: {all:?}"
        );
    }
}
