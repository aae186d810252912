//! Authorization inside MCP: per-operation scopes as real HTTP 403 step-up
//! challenges, the scope hierarchy, principal-bound sessions (handles:
//! `tests/handles.rs`).
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use fixture::{Harness, bounded, call_text, challenge, legacy_client, param, stateless_client};
use mcp_oauth2::AuthConfigBuilder;

fn notes_rules(b: AuthConfigBuilder) -> AuthConfigBuilder {
    b.scopes_supported(["notes:read"])
        .tool_scopes("whoami_arg", ["notes:write"])
        .tool_scopes("whoami", ["notes:read"])
        .scope_implies("notes:write", ["notes:read"])
}

fn tool_call(name: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
    )
}

// MCP "Step-Up Authorization Flow": 403 with every scope the call needs; a
// new token with the union of scopes succeeds. With the real rmcp client, in
// both protocol generations.
#[tokio::test]
async fn step_up_with_the_rmcp_client() {
    let h = Harness::start(notes_rules).await;
    let read = h
        .issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .scopes(["notes:read"])
        .sign();
    for stateless in [false, true] {
        let client = if stateless {
            bounded(stateless_client(&h.resource, &read)).await.unwrap()
        } else {
            bounded(legacy_client(&h.resource, &read)).await.unwrap()
        };
        assert!(bounded(call_text(&client, "whoami")).await.is_ok());
        let err = bounded(call_text(&client, "whoami_arg")).await.unwrap_err();
        let value = err
            .auth_challenge()
            .expect("an HTTP challenge, not a JSON-RPC error")
            .to_owned();
        let c = mcp_oauth2::testing::parse_bearer_challenge(&value).unwrap();
        assert_eq!(param(&c, "error"), Some("insufficient_scope"));
        assert_eq!(param(&c, "scope"), Some("notes:write"));
        assert_eq!(
            param(&c, "resource_metadata"),
            Some(format!("{}/.well-known/oauth-protected-resource/mcp", h.base).as_str())
        );
        client.cancel().await.unwrap();
    }
    let union = h
        .issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .scopes(["notes:read", "notes:write"])
        .sign();
    let client = bounded(stateless_client(&h.resource, &union))
        .await
        .unwrap();
    assert_eq!(
        bounded(call_text(&client, "whoami_arg")).await.unwrap(),
        "alice"
    );
    client.cancel().await.unwrap();
}

// RFC 6750 section 3.1 over raw HTTP: status, challenge and body.
#[tokio::test]
async fn insufficient_scope_response_on_the_wire() {
    let h = Harness::start(|b| notes_rules(b).required_scopes(["mcp"])).await;
    let token = h.scoped_token(&["mcp", "notes:read"]);
    let resp = h
        .post(
            &[("authorization", &format!("Bearer {token}"))],
            &tool_call("whoami_arg"),
        )
        .await;
    assert_eq!(resp.status(), 403);
    let c = challenge(&resp);
    assert_eq!(c[0], ("error".into(), "insufficient_scope".into()));
    // Every scope this operation needs: the global one and the tool's.
    assert_eq!(param(&c, "scope"), Some("mcp notes:write"));
    assert!(param(&c, "error_description").is_some());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    // The body names the challenge's scopes too.
    assert_eq!(body["scope"], "mcp notes:write");
}

// MCP: servers must account for scope hierarchies.
#[tokio::test]
async fn implied_scopes_and_wildcards() {
    let h = Harness::start(|b| notes_rules(b).scope_wildcards(true)).await;
    let write_only = h.scoped_token(&["notes:write"]);
    let client = bounded(legacy_client(&h.resource, &write_only))
        .await
        .unwrap();
    assert!(
        bounded(call_text(&client, "whoami")).await.is_ok(),
        "notes:write implies notes:read"
    );
    assert_eq!(
        bounded(call_text(&client, "read_inside")).await.unwrap(),
        "read ok",
        "in handlers too"
    );
    client.cancel().await.unwrap();
    let wildcard = h
        .issuer
        .token()
        .subject("w")
        .audience(&h.resource)
        .scopes(["notes:*"])
        .sign();
    let client = bounded(legacy_client(&h.resource, &wildcard))
        .await
        .unwrap();
    assert_eq!(
        bounded(call_text(&client, "whoami_arg")).await.unwrap(),
        "w"
    );
    client.cancel().await.unwrap();
    // Even with wildcards on, a bare `*` (or `:*`) grants nothing: only a
    // `prefix:*` is a wildcard.
    for bare in ["*", ":*"] {
        let token = h.scoped_token(&[bare]);
        let resp = h
            .post(
                &[("authorization", &format!("Bearer {token}"))],
                &tool_call("whoami"),
            )
            .await;
        assert_eq!(resp.status(), 403, "{bare}");
    }
    // Wildcards are off unless enabled.
    let h = Harness::start(notes_rules).await;
    let wildcard = h.scoped_token(&["notes:*"]);
    let resp = h
        .post(
            &[("authorization", &format!("Bearer {wildcard}"))],
            &tool_call("whoami"),
        )
        .await;
    assert_eq!(resp.status(), 403);
}

// Entra ID / Okta send `scp` (string or array) instead of `scope`.
#[tokio::test]
async fn scp_claims_count_as_scopes() {
    let h = Harness::start(notes_rules).await;
    for scp in [
        serde_json::json!(["notes:write"]),
        serde_json::json!("notes:write"),
    ] {
        let token = h
            .issuer
            .token()
            .subject("s")
            .audience(&h.resource)
            .claim("scp", scp)
            .sign();
        let client = bounded(legacy_client(&h.resource, &token)).await.unwrap();
        assert_eq!(
            bounded(call_text(&client, "whoami_arg")).await.unwrap(),
            "s"
        );
        client.cancel().await.unwrap();
    }
    let malformed = h
        .issuer
        .token()
        .audience(&h.resource)
        .claim("scope", serde_json::json!(["a"]))
        .sign();
    let resp = h
        .post(
            &[("authorization", &format!("Bearer {malformed}"))],
            &tool_call("whoami"),
        )
        .await;
    assert_eq!(
        resp.status(),
        401,
        "a malformed scope claim is invalid_token"
    );
}

async fn stateless_post(
    h: &Harness,
    token: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
    ];
    // A 2026-07-28 client names the method (and target) in headers; a test
    // that lies about them passes its own.
    let message: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let method = message["method"].as_str().unwrap_or_default().to_owned();
    let target = message["params"]["name"]
        .as_str()
        .or(message["params"]["uri"].as_str())
        .or(message["params"]["taskId"].as_str())
        .unwrap_or_default()
        .to_owned();
    if !extra.iter().any(|(k, _)| *k == "mcp-method") && !method.is_empty() {
        headers.push(("mcp-method", &method));
        // Every method whose name `Mcp-Name` mirrors (as rmcp's client
        // sends it).
        if !target.is_empty()
            && matches!(
                method.as_str(),
                "tools/call"
                    | "resources/read"
                    | "prompts/get"
                    | "resources/subscribe"
                    | "resources/unsubscribe"
                    | "tasks/get"
                    | "tasks/update"
                    | "tasks/cancel"
            )
        {
            headers.push(("mcp-name", &target));
        }
    }
    headers.extend_from_slice(extra);
    h.post(&headers, body).await
}

// Resources (exact, template, prefix), prompts and methods.
#[tokio::test]
async fn resources_prompts_and_methods() {
    let h = Harness::start(|b| {
        b.resource_scopes("notes://{id}", ["notes:read"])
            .resource_scopes("admin://*", ["admin"])
            .prompt_scopes("summarize", ["ai"])
            .method_scopes("tools/list", ["catalog"])
    })
    .await;
    let none = h.issuer.token().audience(&h.resource).sign();
    let cases = [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"notes://42"}}"#,
            "notes:read",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"admin://x/y"}}"#,
            "admin",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"notes://1"}}"#,
            "notes:read",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summarize"}}"#,
            "ai",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            "catalog",
        ),
    ];
    for (body, scope) in cases {
        let resp = stateless_post(&h, &none, &[], body).await;
        assert_eq!(resp.status(), 403, "{body}");
        assert_eq!(param(&challenge(&resp), "scope"), Some(scope), "{body}");
        let granted = h.scoped_token(&[scope]);
        let resp = stateless_post(&h, &granted, &[], body).await;
        assert_ne!(resp.status(), 403, "{body}");
    }
    // Unprotected targets pass.
    let resp = stateless_post(
        &h,
        &none,
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"notes://1/x"}}"#,
    )
    .await;
    assert_ne!(resp.status(), 403);
}

// A batch needs the union of its calls' scopes; body-only (legacy) requests
// are judged by their body.
#[tokio::test]
async fn batches_and_legacy_bodies() {
    let h = Harness::start(notes_rules).await;
    let read = h.scoped_token(&["notes:read"]);
    let batch = format!(
        "[{},{}]",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        tool_call("whoami_arg")
    );
    let resp = h
        .post(&[("authorization", &format!("Bearer {read}"))], &batch)
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(param(&challenge(&resp), "scope"), Some("notes:write"));
    // No protocol-version header at all: the body decides.
    let resp = h
        .post(
            &[("authorization", &format!("Bearer {read}"))],
            &tool_call("whoami_arg"),
        )
        .await;
    assert_eq!(resp.status(), 403);
}

// MCP 2026-07-28: `subscriptions/listen` names resources in
// `params.notifications.resourceSubscriptions`; the per-resource rules
// cover every one of them, in one challenge.
#[tokio::test]
async fn subscriptions_listen_needs_every_resource_scope() {
    let h = Harness::start(|b| {
        b.resource_scopes("notes://{id}", ["notes:read"])
            .resource_scopes("admin://*", ["admin"])
    })
    .await;
    let none = h.issuer.token().audience(&h.resource).sign();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["notes://1","admin://x/y","other://z"]}}}"#;
    let resp = stateless_post(&h, &none, &[("mcp-method", "subscriptions/listen")], body).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(param(&challenge(&resp), "scope"), Some("notes:read admin"));
    let read = h.scoped_token(&["notes:read"]);
    let resp = stateless_post(&h, &read, &[("mcp-method", "subscriptions/listen")], body).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(param(&challenge(&resp), "scope"), Some("notes:read admin"));
    // A listen without resource subscriptions needs no resource scope.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true}}}"#;
    let resp = stateless_post(&h, &none, &[("mcp-method", "subscriptions/listen")], body).await;
    assert_ne!(resp.status(), 403);
}

// `subscriptions/listen` replaced `resources/subscribe` in 2026-07-28: a
// `method_scopes("resources/subscribe", ..)` gate on subscribing applies to a
// listen that subscribes to resources too. Before, a 2026-07-28 client
// subscribed to any resource without it.
#[tokio::test]
async fn a_subscribe_method_rule_covers_subscriptions_listen() {
    let h = Harness::start(|b| b.method_scopes("resources/subscribe", ["notes:subscribe"])).await;
    let none = h.issuer.token().audience(&h.resource).sign();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["notes://1"]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let resp = stateless_post(&h, &none, &[("mcp-method", "subscriptions/listen")], body).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(param(&challenge(&resp), "scope"), Some("notes:subscribe"));
    // Legacy `resources/subscribe`, as before.
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"notes://1"}}"#;
    let resp = h
        .post(
            &[
                ("authorization", &format!("Bearer {none}")),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            body,
        )
        .await;
    assert_eq!(resp.status(), 403);
    // A listen that subscribes to no resource does not subscribe.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true}}}"#;
    let resp = stateless_post(&h, &none, &[("mcp-method", "subscriptions/listen")], body).await;
    assert_ne!(resp.status(), 403);
}

// The operation reader is strict (duplicate members, lone surrogates, bodies
// that are not JSON): whenever per-operation rules exist, a body it cannot
// read is 400 with the JSON-RPC parse error, never dispatched on a guess.
#[tokio::test]
async fn unreadable_bodies_are_refused_when_rules_exist() {
    let h = Harness::start(notes_rules).await;
    let read = h.scoped_token(&["notes:read"]);
    let auth = format!("Bearer {read}");
    let utf16: Vec<u8> = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let cases: [(Vec<u8>, i32, &str); 12] = [
        // serde_json keeps the last `name`: whoami_arg would run.
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","name":"whoami_arg","arguments":{}}}"#.to_vec(),
            -32700,
            "repeats a member name",
        ),
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","\u006eame":"whoami_arg"}}"#.to_vec(),
            -32700,
            "repeats a member name",
        ),
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","method":"tools/call","params":{"name":"whoami_arg"}}"#.to_vec(),
            -32700,
            "repeats a member name",
        ),
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami\ud800"}}"#.to_vec(),
            -32700,
            "not valid JSON",
        ),
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami"}"#.to_vec(),
            -32700,
            "ends before its JSON value",
        ),
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}{}"#.to_vec(),
            -32700,
            "more after its JSON value",
        ),
        // No JSON at all is a parse error (JSON-RPC 2.0 section 5.1; found
        // from outside: these were -32600); a bare JSON value is JSON but
        // no request.
        (b"not json".to_vec(), -32700, "is not JSON"),
        (
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"}".into(),
            -32700,
            "byte order mark",
        ),
        (b"\"tools/list\"".to_vec(), -32600, "a bare JSON value"),
        (vec![0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe], -32700, "not UTF-8"),
        // Without a byte-order mark it is told apart from a syntax error
        // too (found from outside).
        (utf16, -32700, "UTF-16 bodies are not accepted"),
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{}}}"#.to_vec(),
            -32602,
            "params.name",
        ),
    ];
    for (body, code, says) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let resp = h.post(&[("authorization", &auth)], body).await;
        assert_eq!(resp.status(), 400, "{shown}");
        // A JSON-RPC error naming the rule the body broke, not an OAuth
        // challenge (a 2026-07-28 client must not take it for a legacy
        // server).
        assert!(resp.headers().get("www-authenticate").is_none(), "{shown}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(answer["error"]["code"], code, "{shown}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{shown}: {message}");
        assert_eq!(
            answer["error"]["data"]["reason"], "body_unreadable",
            "{shown}"
        );
    }
}

// The -32020 answer says what is wrong: a header that differs from the
// body, one that is missing, or a batch (found from outside: a missing
// header was said not to match).
#[tokio::test]
async fn header_mismatch_answers_say_what_is_wrong() {
    let h = Harness::start(notes_rules).await;
    let read = h.scoped_token(&["notes:read"]);
    let auth = format!("Bearer {read}");
    let call = tool_call("whoami");
    let batch = format!("[{call},{}]", tool_call("whoami_arg"));
    let differs: &[(&str, &str)] = &[("mcp-method", "tools/call"), ("mcp-name", "other")];
    let no_name: &[(&str, &str)] = &[("mcp-method", "tools/call")];
    let named: &[(&str, &str)] = &[("mcp-method", "tools/call"), ("mcp-name", "whoami")];
    let cases = [
        (differs, &call, "does not match", serde_json::json!(7)),
        (no_name, &call, "is missing", serde_json::json!(7)),
        (&[][..], &call, "is missing", serde_json::json!(7)),
        (named, &batch, "no batches", serde_json::Value::Null),
    ];
    for (extra, body, says, id) in cases {
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("mcp-protocol-version", "2026-07-28"),
        ];
        headers.extend_from_slice(extra);
        let resp = h.post(&headers, body).await;
        assert_eq!(resp.status(), 400, "{extra:?} {body}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(answer["error"]["code"], -32020, "{answer}");
        assert_eq!(answer["id"], id, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{extra:?}: {answer}");
    }
}

// A header that disagrees with the body never gets a call through.
#[tokio::test]
async fn lying_headers_are_refused() {
    let h = Harness::start(notes_rules).await;
    let read = h.scoped_token(&["notes:read"]);
    let lies: [&[(&str, &str)]; 4] = [
        &[("mcp-method", "tools/call"), ("mcp-name", "whoami")],
        &[("mcp-method", "tools/list")],
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?d2hvYW1p?="),
        ],
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?not base64?="),
        ],
    ];
    for headers in lies {
        let resp = stateless_post(&h, &read, headers, &tool_call("whoami_arg")).await;
        // MCP 2026-07-28 "Transports": 400 with the JSON-RPC error -32020
        // (HeaderMismatch), never an OAuth challenge.
        assert_eq!(resp.status(), 400, "{headers:?}");
        assert!(resp.headers().get("www-authenticate").is_none());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32020, "{body}");
        assert_eq!(body["id"], 7, "{body}");
        assert_eq!(body["error"]["data"]["reason"], "mcp_header_mismatch");
    }
    // Truthful headers in the Base64 sentinel form are fine: the call is
    // judged (and refused for scope, not for the header).
    let resp = stateless_post(
        &h,
        &read,
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?d2hvYW1pX2FyZw==?="),
        ],
        &tool_call("whoami_arg"),
    )
    .await;
    assert_eq!(resp.status(), 403);
}

// SEP-2663 (rmcp 3.11): a 2026-07-28 client names the task of
// `tasks/get`, `tasks/update` and `tasks/cancel` in `Mcp-Name` (rmcp's
// client sends it and rmcp's server requires it). The layer read no target
// for these methods, so every truthful `Mcp-Name` was refused as a
// mismatch (400 -32020 `mcp_header_mismatch`) and no task could be polled
// behind it. The name is `params.taskId`; a lying one is still refused.
#[tokio::test]
async fn task_requests_name_their_task_in_mcp_name() {
    let h = Harness::start(notes_rules).await;
    let read = h.scoped_token(&["notes:read"]);
    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{{"taskId":"t-1","inputResponses":{{}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}}}}"#
        );
        let truthful = [("mcp-method", method), ("mcp-name", "t-1")];
        let resp = stateless_post(&h, &read, &truthful, &body).await;
        // Past the layer: rmcp answers (this server serves no tasks).
        let text = resp.text().await.unwrap();
        assert!(!text.contains("mcp_header_mismatch"), "{method}: {text}");
        let lying = [("mcp-method", method), ("mcp-name", "t-2")];
        let resp = stateless_post(&h, &read, &lying, &body).await;
        assert_eq!(resp.status(), 400, "{method}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32020, "{body}");
        assert_eq!(body["error"]["data"]["reason"], "mcp_header_mismatch");
    }
    // Without a string `taskId` the request is unreadable (-32602).
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tasks/get","params":{"taskId":7}}"#;
    let resp = stateless_post(&h, &read, &[("mcp-method", "tasks/get")], body).await;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32602, "{body}");
}

// A legacy session belongs to the principal that created it.
#[tokio::test]
async fn sessions_are_bound_to_their_principal() {
    let h = Harness::start(|b| b).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let alice = h
        .issuer
        .token()
        .subject("alice")
        .client_id("app")
        .audience(&h.resource)
        .sign();
    let resp = h
        .post(&[("authorization", &format!("Bearer {alice}"))], init)
        .await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let with = |token: &str| {
        vec![
            ("authorization".to_owned(), format!("Bearer {token}")),
            ("mcp-session-id".to_owned(), session.clone()),
            ("mcp-protocol-version".to_owned(), "2025-11-25".to_owned()),
        ]
    };
    let send = |headers: Vec<(String, String)>, body: &'static str| {
        let h = &h;
        async move {
            let refs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            h.post(&refs, body).await.status()
        }
    };
    assert_eq!(send(with(&alice), initialized).await, 202);
    assert_eq!(send(with(&alice), list).await, 200);
    // The same principal with a refreshed token keeps the session.
    let refreshed = h
        .issuer
        .token()
        .subject("alice")
        .client_id("app")
        .audience(&h.resource)
        .sign();
    assert_ne!(refreshed, alice);
    assert_eq!(send(with(&refreshed), list).await, 200);
    // Anyone else: 404, as if the session did not exist.
    let bob = h
        .issuer
        .token()
        .subject("bob")
        .client_id("app")
        .audience(&h.resource)
        .sign();
    let other_client = h
        .issuer
        .token()
        .subject("alice")
        .client_id("other")
        .audience(&h.resource)
        .sign();
    assert_eq!(send(with(&bob), list).await, 404);
    assert_eq!(send(with(&other_client), list).await, 404);
    // A session id this server never issued: 404.
    let mut forged = with(&alice);
    forged[1].1 = "forged-session".into();
    assert_eq!(send(forged, list).await, 404);
    // Alice still has it.
    assert_eq!(send(with(&alice), list).await, 200);
}

// Another principal's session id is the 404 of an unknown session whatever
// the token's scopes, on every method: the session is judged before the
// call's scopes (found from outside: a caller lacking the call's scope got
// 403 insufficient_scope, stepped up, and then met the 404). The owner
// lacking a scope still gets the 403, and a refused call claims no request
// id (the same id is served once the scope is there).
#[tokio::test]
async fn another_principals_session_is_404_before_any_scope_is_judged() {
    let h = Harness::start(|b| notes_rules(b).required_scopes(["mcp"])).await;
    let token = |sub: &str, scopes: &[&str]| {
        h.issuer
            .token()
            .subject(sub)
            .client_id("app")
            .audience(&h.resource)
            .scopes(scopes.iter().copied())
            .sign()
    };
    let alice = token("alice", &["mcp", "notes:write"]);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let resp = h
        .post(&[("authorization", &format!("Bearer {alice}"))], init)
        .await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let send = |method: reqwest::Method, token: String, id: String, body: String| {
        let url = h.resource.clone();
        async move {
            let resp = reqwest::Client::new()
                .request(method, url)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .header("mcp-session-id", id)
                .body(body)
                .send()
                .await
                .unwrap();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), challenge)
        }
    };
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned();
    let sid = || session.clone();
    let post = reqwest::Method::POST;
    assert_eq!(
        send(post.clone(), alice.clone(), sid(), initialized)
            .await
            .0,
        202
    );
    let write_call = tool_call("whoami_arg");
    let read_call = tool_call("whoami");
    let others = [
        (
            "bob, read only, a write call",
            token("bob", &["mcp", "notes:read"]),
            write_call.clone(),
        ),
        ("bob, no scope at all", token("bob", &[]), read_call.clone()),
        (
            "bob, every scope",
            token("bob", &["mcp", "notes:write"]),
            write_call.clone(),
        ),
        (
            "alice of another client, no scope",
            {
                h.issuer
                    .token()
                    .subject("alice")
                    .client_id("other")
                    .audience(&h.resource)
                    .sign()
            },
            read_call.clone(),
        ),
    ];
    for (case, other, body) in &others {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::GET,
            reqwest::Method::DELETE,
        ] {
            let body = if method == reqwest::Method::POST {
                body.clone()
            } else {
                String::new()
            };
            let (status, challenge) = send(method.clone(), other.clone(), sid(), body).await;
            assert_eq!((status, challenge), (404, None), "{case}, {method}");
        }
        // An id no session has: the same 404, whatever the scopes.
        let (status, _) = send(post.clone(), other.clone(), "made-up".into(), body.clone()).await;
        assert_eq!(status, 404, "{case}, made-up id");
    }
    // The owner, lacking the call's scope: the step-up 403 (the session is
    // hers), and the call's request id is not left claimed by it.
    let alice_low = token("alice", &["mcp", "notes:read"]);
    let (status, challenge) =
        send(post.clone(), alice_low.clone(), sid(), write_call.clone()).await;
    assert_eq!(status, 403);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains("notes:write"), "{challenge}");
    let (status, _) = send(post.clone(), alice_low, sid(), write_call.clone()).await;
    assert_eq!(
        status, 403,
        "the same id again: still the scope's answer, not an id in use"
    );
    assert_eq!(
        send(post.clone(), alice.clone(), sid(), write_call).await.0,
        200
    );
    // Nothing of the above ended or took her session.
    assert_eq!(send(post, alice, sid(), read_call).await.0, 200);
}

// Optional list filtering: callers do not see what they may not use, and the
// filtered list is never marked publicly cacheable.
#[tokio::test]
async fn hidden_tools_and_private_cache_scope() {
    let h = Harness::start(|b| notes_rules(b).hide_unauthorized_in_lists(true)).await;
    let read = h.scoped_token(&["notes:read"]);
    for stateless in [false, true] {
        let client = if stateless {
            bounded(stateless_client(&h.resource, &read)).await.unwrap()
        } else {
            bounded(legacy_client(&h.resource, &read)).await.unwrap()
        };
        let names: Vec<String> = bounded(client.list_all_tools())
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert!(names.contains(&"whoami".to_owned()), "{names:?}");
        assert!(!names.contains(&"whoami_arg".to_owned()), "{names:?}");
        assert!(names.contains(&"mint".to_owned()), "{names:?}");
        client.cancel().await.unwrap();
    }
    let write = h.scoped_token(&["notes:write"]);
    let client = bounded(legacy_client(&h.resource, &write)).await.unwrap();
    let names: Vec<String> = bounded(client.list_all_tools())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"whoami_arg".to_owned()));
    client.cancel().await.unwrap();
    // On the wire (2026-07-28): cacheScope private.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let resp = stateless_post(&h, &read, &[("mcp-method", "tools/list")], body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"cacheScope\":\"private\""), "{text}");
    assert!(!text.contains("whoami_arg"), "{text}");
}

// Off by default: everyone sees every tool.
#[tokio::test]
async fn lists_are_not_filtered_by_default() {
    let h = Harness::start(notes_rules).await;
    let read = h.scoped_token(&["notes:read"]);
    let client = bounded(legacy_client(&h.resource, &read)).await.unwrap();
    let names: Vec<String> = bounded(client.list_all_tools())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"whoami_arg".to_owned()));
    client.cancel().await.unwrap();
}

// A session created by a request whose token is already verified (the
// layer's fast path, no verification future) is bound like any other, and
// a DELETE on that path ends the binding.
#[tokio::test]
async fn sessions_created_with_a_known_token_are_bound_too() {
    let h = Harness::start(|b| b).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let alice = h.token("alice");
    let bob = h.token("bob");
    let bearer = |t: &str| format!("Bearer {t}");
    // Both tokens verified once (and cached) before the session exists.
    for t in [&alice, &bob] {
        assert_eq!(
            h.post(&[("authorization", &bearer(t))], init)
                .await
                .status(),
            200
        );
    }
    let resp = h.post(&[("authorization", &bearer(&alice))], init).await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let with = |t: &str| {
        vec![
            ("authorization".to_owned(), bearer(t)),
            ("mcp-session-id".to_owned(), session.clone()),
            ("mcp-protocol-version".to_owned(), "2025-11-25".to_owned()),
        ]
    };
    let send = |headers: Vec<(String, String)>, method: reqwest::Method, body: &'static str| {
        let h = &h;
        async move {
            let mut req = reqwest::Client::new()
                .request(method, &h.resource)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            req.send().await.unwrap().status()
        }
    };
    assert_eq!(
        send(with(&alice), reqwest::Method::POST, initialized).await,
        202
    );
    assert_eq!(send(with(&alice), reqwest::Method::POST, list).await, 200);
    assert_eq!(send(with(&bob), reqwest::Method::POST, list).await, 404);
    // Bob cannot end alice's session; alice can.
    assert_eq!(send(with(&bob), reqwest::Method::DELETE, "").await, 404);
    assert_eq!(send(with(&alice), reqwest::Method::POST, list).await, 200);
    assert!(
        send(with(&alice), reqwest::Method::DELETE, "")
            .await
            .is_success()
    );
    assert_eq!(send(with(&alice), reqwest::Method::POST, list).await, 404);
}
