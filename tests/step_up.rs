//! Authorization decided per request (issue 15): scopes computed from a
//! call's arguments before dispatch, and late step-up from inside a
//! handler, on the wire, with raw HTTP and the real rmcp client in both
//! protocol generations.
//!
//! The reference server's contract: `read_note` needs `notes:read`, and from
//! the `private` folder also `notes:private` (403 before dispatch, one
//! challenge naming both); `export_notes` needs `notes:read` and asks for
//! `notes:export` mid-call (403 naming both).
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use support::fixture::{
    Client, GATE, Harness, STEP_UP_SECRET, bounded, call_text, challenge, legacy_client, param,
    stateless_client,
};
use support::notes::{Notes, assert_insufficient};

fn read_note(id: Value, folder: Value) -> Value {
    json!({"name": "read_note", "arguments": {"id": id, "folder": folder}})
}

fn call_body(params: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}).to_string()
}

const LEGACY: (&str, &str) = ("mcp-protocol-version", "2025-11-25");

/// The 2026-07-28 `_meta` a stateless request carries.
const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}"#;

/// POSTs a raw stateless `tools/call` of `tool` whose `params` members
/// (without braces) are `members`.
async fn post_tool_raw(n: &Notes, token: &str, tool: &str, members: &str) -> reqwest::Response {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{{members},{META}}}}}"#
    );
    n.post(
        token,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
        ],
        &body,
    )
    .await
}

/// The text of a tool result in a JSON (or single-event SSE) response.
async fn result_text(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let json_text = body
        .lines()
        .find_map(|l| {
            l.strip_prefix("data:")
                .map(str::trim)
                .filter(|d| !d.is_empty())
        })
        .unwrap_or(&body)
        .to_owned();
    let message: Value = serde_json::from_str(&json_text).unwrap();
    let text = message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no tool result: {message}"));
    serde_json::from_str(text).unwrap()
}

// Reference contract, raw HTTP, both protocol generations: the private
// folder needs both scopes, named in one challenge before dispatch; the
// shared folder needs notes:read; a missing note is a result.
#[tokio::test]
async fn read_note_folder_decides_the_scopes() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    let both = n.token(&["notes:read", "notes:private"]);
    let private = read_note(json!(1), json!("private"));
    let shared = read_note(json!(1), json!("shared"));

    let resp = n
        .post_modern(&reader, "tools/call", Some("read_note"), private.clone())
        .await;
    assert_insufficient(&resp, "notes:read notes:private");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "notes:read notes:private");
    let resp = n.post(&reader, &[LEGACY], &call_body(&private)).await;
    assert_insufficient(&resp, "notes:read notes:private");
    // Without any scope, the challenge still names everything at once.
    let none = n.token(&[]);
    let resp = n.post(&none, &[LEGACY], &call_body(&private)).await;
    assert_insufficient(&resp, "notes:read notes:private");
    let resp = n.post(&none, &[LEGACY], &call_body(&shared)).await;
    assert_insufficient(&resp, "notes:read");

    let text = result_text(
        n.post_modern(&reader, "tools/call", Some("read_note"), shared)
            .await,
    )
    .await;
    assert_eq!(text["found"], true);
    assert_eq!(text["text"], "Welcome to the notes server.");
    let text = result_text(
        n.post_modern(
            &reader,
            "tools/call",
            Some("read_note"),
            read_note(json!(99), json!("shared")),
        )
        .await,
    )
    .await;
    assert_eq!(text, json!({"found": false, "id": 99, "folder": "shared"}));
    let text = result_text(
        n.post_modern(&both, "tools/call", Some("read_note"), private)
            .await,
    )
    .await;
    assert_eq!(text, json!({"found": false, "id": 1, "folder": "private"}));
}

// Found from outside: `list_notes` (scope `notes:read`) answered the text
// of every note, the same notes `notes://private/{n}` and `read_note` from
// the private folder guard with `notes:private`. Without that scope it
// names them by URI (`notes:write` does not imply it); with it, their
// text.
#[tokio::test]
async fn list_notes_shows_text_only_with_notes_private() {
    let n = Notes::start().await;
    let writer = n.token(&["notes:write"]);
    let list = json!({"name": "list_notes", "arguments": {}});
    let add = json!({"name": "add_note", "arguments": {"text": "my secret"}});
    let added = result_text(
        n.post_modern(&writer, "tools/call", Some("add_note"), add)
            .await,
    )
    .await;
    assert_eq!(added["added"], true);
    for scopes in [&["notes:read"][..], &["notes:write"]] {
        let token = n.token(scopes);
        let text = result_text(
            n.post_modern(&token, "tools/call", Some("list_notes"), list.clone())
                .await,
        )
        .await;
        assert_eq!(
            text,
            json!({"notes": ["notes://private/1"], "text_needs": "notes:private"}),
            "{scopes:?}"
        );
    }
    // With `notes:private`, or `notes:export` (which implies it: the
    // export holds the text, found from outside), every route agrees.
    for scopes in [
        &["notes:read", "notes:private"][..],
        &["notes:read", "notes:export"],
    ] {
        let token = n.token(scopes);
        let text = result_text(
            n.post_modern(&token, "tools/call", Some("list_notes"), list.clone())
                .await,
        )
        .await;
        assert_eq!(text, json!({"notes": ["my secret"]}), "{scopes:?}");
        let read = json!({"name": "read_note", "arguments": {"id": 1, "folder": "private"}});
        let text = result_text(
            n.post_modern(&token, "tools/call", Some("read_note"), read)
                .await,
        )
        .await;
        assert_eq!(text["text"], "my secret", "{scopes:?}");
    }
    let exporter = n.token(&["notes:read", "notes:export"]);
    let export = json!({"name": "export_notes", "arguments": {}});
    let text = result_text(
        n.post_modern(&exporter, "tools/call", Some("export_notes"), export)
            .await,
    )
    .await;
    assert_eq!(text["notes"], json!(["my secret"]));
}

// Found from outside: one user's notes (1,000 of 16 KiB) made every
// listing and export a single answer of 115 MB once escaped twice. An
// answer holds at most 64 KiB of note text (at least one note); `next`
// names the `from` of the rest, and the pages together are every note once,
// in order.
#[tokio::test]
async fn note_listings_and_exports_come_in_pages() {
    let n = Notes::start().await;
    let writer = n.token(&["notes:write"]);
    let all = n.token(&["notes:read", "notes:private", "notes:export"]);
    // Nine notes of 16 KiB of control characters (escaped six bytes each).
    let texts: Vec<String> = (0..9u8)
        .map(|i| {
            let mut text = "\u{1}".repeat(16 * 1024 - 1);
            text.push(char::from(b'a' + i));
            text
        })
        .collect();
    for text in &texts {
        let add = json!({"name": "add_note", "arguments": {"text": text}});
        let added = result_text(
            n.post_modern(&writer, "tools/call", Some("add_note"), add)
                .await,
        )
        .await;
        assert_eq!(added["added"], true);
    }
    for tool in ["list_notes", "export_notes"] {
        let mut seen = Vec::new();
        let mut from: Option<u64> = None;
        let mut pages = 0;
        loop {
            let arguments = match from {
                Some(from) => json!({ "from": from }),
                None => json!({}),
            };
            let call = json!({"name": tool, "arguments": arguments});
            let resp = n.post_modern(&all, "tools/call", Some(tool), call).await;
            let page = result_text(resp).await;
            let notes = page["notes"].as_array().unwrap().clone();
            let bytes: usize = notes.iter().map(|t| t.as_str().unwrap().len()).sum();
            assert!(!notes.is_empty() && bytes <= 64 * 1024, "{tool}: {bytes}");
            seen.extend(notes.into_iter().map(|t| t.as_str().unwrap().to_owned()));
            pages += 1;
            match page.get("next") {
                Some(next) => from = Some(next.as_u64().unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, texts, "{tool}");
        assert_eq!(pages, 3, "{tool}");
        // Past the end: an empty page, no `next`.
        let call = json!({"name": tool, "arguments": {"from": 99}});
        let page = result_text(n.post_modern(&all, "tools/call", Some(tool), call).await).await;
        assert_eq!(page["notes"], json!([]), "{tool}");
        assert!(page.get("next").is_none(), "{tool}");
        // A `from` that is no number: a tool error (rmcp's answer to
        // arguments its handler cannot read), nothing listed.
        let call = json!({"name": tool, "arguments": {"from": "x"}});
        let resp = n.post_modern(&all, "tools/call", Some(tool), call).await;
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["result"]["isError"], true, "{tool}: {body}");
    }
}

// Attack the computed requirement: every spelling that could reach the
// private folder (or that the handler refuses anyway) needs notes:private;
// repeated members are refused before anything is computed; batches union.
#[tokio::test]
async fn read_note_spellings_batches_and_duplicates() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    for folder in [
        json!("PRIVATE"),
        json!("private "),
        json!(["shared"]),
        json!({"shared": true}),
        Value::Null,
        json!(""),
    ] {
        let resp = n
            .post(
                &reader,
                &[LEGACY],
                &call_body(&read_note(json!(1), folder.clone())),
            )
            .await;
        assert_insufficient(&resp, "notes:read notes:private");
    }
    // JSON escapes decode to the same text rmcp sees.
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":{"id":1,"folder":"\u0070rivate"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_\u006eote","arguments":{"id":1,"folder":"private"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":{"id":1}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":"folder=shared"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note"}}"#,
    ] {
        let resp = n.post(&reader, &[LEGACY], body).await;
        assert_insufficient(&resp, "notes:read notes:private");
    }
    let escaped_shared = r#""name":"read_note","arguments":{"id":1,"folder":"\u0073hared"}"#;
    let resp = post_tool_raw(&n, &reader, "read_note", escaped_shared).await;
    assert_eq!(result_text(resp).await["found"], true);
    let escaped_private = r#""name":"read_note","arguments":{"id":1,"folder":"\u0070rivate"}"#;
    let resp = post_tool_raw(&n, &reader, "read_note", escaped_private).await;
    assert_insufficient(&resp, "notes:read notes:private");
    // A repeated member: never guess which copy the handler sees.
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":{"id":1,"folder":"shared","folder":"private"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":{"id":1,"folder":"private","f\u006flder":"shared"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":{"folder":"shared"},"arguments":{"folder":"private"}}}"#,
    ] {
        let resp = n.post(&reader, &[LEGACY], body).await;
        assert_eq!(resp.status(), 400, "{body}");
    }
    // A batch: one private read among shared ones needs both.
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":read_note(json!(1), json!("shared"))},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":read_note(json!(1), json!("private"))},
    ]);
    let resp = n.post(&reader, &[LEGACY], &batch.to_string()).await;
    assert_insufficient(&resp, "notes:read notes:private");
    // Mcp-Name cannot stand in for the body's name.
    let resp = n
        .post_modern(
            &reader,
            "tools/call",
            Some("list_notes"),
            read_note(json!(1), json!("private")),
        )
        .await;
    assert_eq!(resp.status(), 400);
}

// MCP 2026-07-28 "Transports": values mirrored into `Mcp-Param-*` headers
// (`x-mcp-header`) are never trusted for a security decision. The computed
// requirement reads the body's arguments: a header saying `shared` beside a
// body reading the private folder still needs notes:private, in every
// spelling of the header and in both generations.
#[tokio::test]
async fn mirrored_param_headers_never_decide() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    let private = r#""name":"read_note","arguments":{"id":1,"folder":"private"}"#;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{{private},{META}}}}}"#
    );
    for header in [
        "mcp-param-folder",
        "Mcp-Param-Folder",
        "x-mcp-header-folder",
    ] {
        for value in ["shared", "=?base64?c2hhcmVk?="] {
            let resp = n
                .post(
                    &reader,
                    &[
                        ("mcp-protocol-version", "2026-07-28"),
                        ("mcp-method", "tools/call"),
                        ("mcp-name", "read_note"),
                        (header, value),
                    ],
                    &body,
                )
                .await;
            assert_insufficient(&resp, "notes:read notes:private");
        }
    }
    let resp = n
        .post(
            &reader,
            &[LEGACY, ("mcp-param-folder", "shared")],
            &call_body(&read_note(json!(1), json!("private"))),
        )
        .await;
    assert_insufficient(&resp, "notes:read notes:private");
    // The header does not add a requirement either: the body decides.
    let shared = r#""name":"read_note","arguments":{"id":1,"folder":"shared"}"#;
    let body =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{{shared},{META}}}}}"#);
    let resp = n
        .post(
            &reader,
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "read_note"),
                ("mcp-param-folder", "private"),
            ],
            &body,
        )
        .await;
    assert_eq!(result_text(resp).await["found"], true);
}

// Reference contract: export_notes asks for notes:export mid-call; without
// it the caller gets a real HTTP 403 naming notes:read and notes:export, in
// both generations (JSON answers and legacy SSE streams).
#[tokio::test]
async fn export_notes_steps_up_mid_call_on_the_wire() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    let export = json!({"name": "export_notes", "arguments": {}});
    let resp = n
        .post_modern(&reader, "tools/call", Some("export_notes"), export.clone())
        .await;
    assert_insufficient(&resp, "notes:read notes:export");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let c = challenge(&resp);
    assert!(param(&c, "resource_metadata").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "insufficient_scope");
    assert_eq!(body["scope"], "notes:read notes:export");

    // A legacy session: the response is an SSE stream, held until its first
    // event, so the 403 still replaces it.
    let client = bounded(legacy_client(&n.resource, &reader)).await.unwrap();
    let err = bounded(client.call_tool(CallToolRequestParams::new("export_notes")))
        .await
        .unwrap_err();
    let value = err.auth_challenge().expect("an HTTP challenge").to_owned();
    let c = mcp_oauth2::testing::parse_bearer_challenge(&value).unwrap();
    assert_eq!(param(&c, "error"), Some("insufficient_scope"));
    assert_eq!(param(&c, "scope"), Some("notes:read notes:export"));
    // The session still works after the refusal.
    assert!(bounded(call_text(&client, "list_notes")).await.is_ok());
    client.cancel().await.unwrap();

    let exporter = n.token(&["notes:read", "notes:export"]);
    let text = result_text(
        n.post_modern(&exporter, "tools/call", Some("export_notes"), export)
            .await,
    )
    .await;
    assert_eq!(text["notes"], json!([]));
}

/// A client of either generation.
async fn client(n: &Notes, token: &str, stateless: bool) -> Client {
    if stateless {
        bounded(stateless_client(&n.resource, token)).await.unwrap()
    } else {
        bounded(legacy_client(&n.resource, token)).await.unwrap()
    }
}

/// Calls `tool` and returns the JSON of its text result.
async fn call_json(client: &Client, tool: &str, args: Value) -> Result<Value, rmcp::ServiceError> {
    let params = CallToolRequestParams::new(tool.to_owned())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let result = bounded(client.call_tool(params)).await?;
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let text = result.content[0].as_text().unwrap().text.clone();
    Ok(serde_json::from_str(&text).unwrap())
}

// MCP "Step-Up Authorization Flow" with the real rmcp client, for both
// tools and both generations: the call fails with the HTTP challenge; the
// client re-authorizes at the issuer with exactly the challenged scopes,
// retries, and succeeds.
#[tokio::test]
async fn rmcp_client_completes_both_step_ups() {
    let n = Notes::start().await;
    let writer = n.token(&["notes:write"]);
    let c = client(&n, &writer, true).await;
    assert!(
        bounded(call_text(&c, "add_note")).await.is_err(),
        "needs an argument"
    );
    let added = call_json(&c, "add_note", json!({"text": "first"}))
        .await
        .unwrap();
    assert_eq!(added["count"], 1);
    c.cancel().await.unwrap();

    let calls = [
        (
            "read_note",
            json!({"id": 1, "folder": "private"}),
            "notes:read notes:private",
        ),
        ("export_notes", json!({}), "notes:read notes:export"),
    ];
    for stateless in [true, false] {
        for (tool, args, expected) in &calls {
            let reader = n.token(&["notes:read"]);
            let c = client(&n, &reader, stateless).await;
            let err = call_json(&c, tool, args.clone()).await.unwrap_err();
            let value = err
                .auth_challenge()
                .unwrap_or_else(|| panic!("{tool} (stateless {stateless}): {err:?}"))
                .to_owned();
            let challenge = mcp_oauth2::testing::parse_bearer_challenge(&value).unwrap();
            assert_eq!(param(&challenge, "error"), Some("insufficient_scope"));
            let scope = param(&challenge, "scope").unwrap().to_owned();
            assert_eq!(scope, *expected, "{tool}");
            c.cancel().await.unwrap();

            // Re-authorize with the challenged scopes, retry.
            let scopes: Vec<&str> = scope.split(' ').collect();
            let stepped = n.token(&scopes);
            let c = client(&n, &stepped, stateless).await;
            let answer = call_json(&c, tool, args.clone()).await.unwrap();
            match *tool {
                "read_note" => assert_eq!(answer["text"], "first", "{answer}"),
                _ => assert_eq!(answer["notes"], json!(["first"]), "{answer}"),
            }
            c.cancel().await.unwrap();
        }
    }
}

// Once a notification was streamed the status line is gone: the call
// answers with the JSON-RPC error carrying the same scopes (documented
// fallback). Before that, a quiet handler gets the HTTP 403 naming the
// required scopes first, then what it asked for.
#[tokio::test]
async fn late_step_up_after_a_streamed_notification_falls_back_to_json_rpc() {
    let h = Harness::start(|b| b.required_scopes(["mcp"])).await;
    let token = h
        .issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .scopes(["mcp"])
        .sign();
    let auth = format!("Bearer {token}");
    for (headers, body) in [
        (
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "chatty_export"),
            ],
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"chatty_export","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#.to_owned(),
        ),
    ] {
        let mut all = headers.clone();
        all.push(("authorization", &auth));
        let resp = bounded(h.post(&all, &body)).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let text = bounded(resp.text()).await.unwrap();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:").map(str::trim))
            .filter(|d| !d.is_empty())
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(events[0]["method"], "notifications/message", "{text}");
        let error = events
            .iter()
            .find(|e| e["id"] == 9)
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(error["error"]["code"], -32600);
        assert_eq!(
            error["error"]["data"],
            json!({"error": "insufficient_scope", "scope": "mcp notes:export"})
        );

        // The quiet handler: a real 403 naming the required scope first.
        let quiet = body.replace("chatty_export", "quiet_export");
        let mut all = headers
            .iter()
            .map(|(k, v)| (*k, if *v == "chatty_export" { "quiet_export" } else { *v }))
            .collect::<Vec<_>>();
        all.push(("authorization", &auth));
        let resp = bounded(h.post(&all, &quiet)).await;
        assert_eq!(resp.status(), 403);
        let c = challenge(&resp);
        assert_eq!(param(&c, "scope"), Some("mcp notes:export notes:read"));
    }

    // A legacy session with the rmcp client: rmcp sends a log message
    // that is not tied to a request on the session's own stream, so the
    // call's stream starts with the error and the 403 still replaces it.
    let client = bounded(legacy_client(&h.resource, &token)).await.unwrap();
    let err = bounded(client.call_tool(CallToolRequestParams::new("chatty_export")))
        .await
        .unwrap_err();
    let value = err.auth_challenge().expect("an HTTP challenge").to_owned();
    let c = mcp_oauth2::testing::parse_bearer_challenge(&value).unwrap();
    assert_eq!(param(&c, "scope"), Some("mcp notes:export"));
    let err = bounded(client.call_tool(CallToolRequestParams::new("quiet_export")))
        .await
        .unwrap_err();
    let value = err.auth_challenge().expect("an HTTP challenge").to_owned();
    let c = mcp_oauth2::testing::parse_bearer_challenge(&value).unwrap();
    assert_eq!(param(&c, "scope"), Some("mcp notes:export notes:read"));
    client.cancel().await.unwrap();
}

/// The JSON-RPC messages of an SSE body (its non-empty `data:` fields).
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:").map(str::trim))
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// The one answer to request `id` among `events`: the step-up error.
fn assert_step_up_error(events: &[Value], id: u64, scope: &str, text: &str) {
    let answers: Vec<&Value> = events.iter().filter(|e| e["id"] == id).collect();
    assert_eq!(answers.len(), 1, "{text}");
    assert_eq!(answers[0]["error"]["code"], -32600, "{text}");
    assert_eq!(
        answers[0]["error"]["data"],
        json!({"error": "insufficient_scope", "scope": scope}),
        "{text}"
    );
    assert!(answers[0].get("result").is_none(), "{text}");
}

/// A legacy (2025-11-25) session opened with raw requests.
async fn legacy_session(h: &Harness, auth: &str) -> String {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let resp = bounded(h.post(&[("authorization", auth)], init)).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    bounded(resp.text()).await.unwrap();
    let done = bounded(h.post(
        &[("authorization", auth), ("mcp-session-id", &id), LEGACY],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ))
    .await;
    assert_eq!(done.status(), 202);
    id
}

// "A failed `require_scopes` marks the request even if the handler carries
// on." After a streamed notification the head has left; a handler that
// ignores its failed step-up and answers anyway must still not get its
// answer out. Before, the answer (the secret) was streamed as it was.
#[tokio::test]
async fn a_handler_carrying_on_after_its_step_up_never_gets_its_answer_out() {
    let h = Harness::start(|b| b.required_scopes(["mcp"])).await;
    let token = h
        .issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .scopes(["mcp"])
        .sign();
    let auth = format!("Bearer {token}");
    let before = h.metrics.snapshot();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"chatty_carry_on","arguments":{{}},{META}}}}}"#
    );
    let resp = bounded(h.post(
        &[
            ("authorization", &auth),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "chatty_carry_on"),
        ],
        &body,
    ))
    .await;
    assert_eq!(resp.status(), 200);
    let text = bounded(resp.text()).await.unwrap();
    assert!(!text.contains(STEP_UP_SECRET), "{text}");
    let seen = events(&text);
    assert_eq!(seen[0]["method"], "notifications/message", "{text}");
    assert_step_up_error(&seen, 9, "mcp notes:export", &text);
    let after = h.metrics.snapshot();
    assert_eq!(
        after
            .rejected
            .get("insufficient_scope")
            .copied()
            .unwrap_or(0),
        before
            .rejected
            .get("insufficient_scope")
            .copied()
            .unwrap_or(0)
            + 1,
        "counted once"
    );

    // In a legacy session, held: the quiet one is a 403 with nothing sent.
    let session = legacy_session(&h, &auth).await;
    for tool in ["quiet_carry_on", "chatty_carry_on"] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        );
        let resp = bounded(h.post(
            &[
                ("authorization", &auth),
                ("mcp-session-id", &session),
                LEGACY,
            ],
            &body,
        ))
        .await;
        let status = resp.status();
        let text = bounded(resp.text()).await.unwrap();
        assert!(!text.contains(STEP_UP_SECRET), "{tool}: {text}");
        if status == 403 {
            continue;
        }
        assert_eq!(status, 200, "{tool}: {text}");
        assert_step_up_error(&events(&text), 3, "mcp notes:export", &text);
    }
}

// A refusal in the stream is counted and audited when the handler asks,
// not when its answer would have been replaced: a client that leaves after
// the head (and a notification) but before the answer still leaves a
// refusal on record. Before, nothing was counted or audited.
#[tokio::test]
async fn a_refusal_in_the_stream_is_counted_when_the_client_leaves_before_the_answer() {
    let h = Harness::start(|b| b.required_scopes(["mcp"])).await;
    let token = h.scoped_token(&["mcp"]);
    let auth = format!("Bearer {token}");
    let refused = |m: &mcp_oauth2::MetricsSnapshot| {
        m.rejected.get("insufficient_scope").copied().unwrap_or(0)
    };
    let before = refused(&h.metrics.snapshot());
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{{"name":"chatty_ask_then_wait","arguments":{{}},{META}}}}}"#
    );
    let asked = support::fixture::ASKED.notified();
    let mut resp = bounded(h.post(
        &[
            ("authorization", &auth),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "chatty_ask_then_wait"),
        ],
        &body,
    ))
    .await;
    assert_eq!(resp.status(), 200);
    // The notification, sent before the ask.
    let first = bounded(resp.chunk()).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("notifications/message"));
    bounded(asked).await;
    assert_eq!(refused(&h.metrics.snapshot()), before, "not yet answered");
    drop(resp);
    let mut counted = refused(&h.metrics.snapshot());
    for _ in 0..200 {
        if counted > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        counted = refused(&h.metrics.snapshot());
    }
    assert_eq!(
        counted,
        before + 1,
        "the refusal is counted once the client left"
    );
}

// `hold_streams_for_step_up(false)`: the head of a legacy call's stream
// leaves before the handler answers (as rmcp alone sends it), a late
// step-up is answered in the stream with the JSON-RPC error, for the raw
// wire and the real rmcp client, and a handler carrying on still never
// gets its answer out.
#[tokio::test]
async fn with_streams_unheld_a_late_step_up_answers_in_the_stream() {
    let h = Harness::start(|b| b.hold_streams_for_step_up(false)).await;
    let token = h.token("alice");
    let auth = format!("Bearer {token}");
    let session = legacy_session(&h, &auth).await;
    let headers = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", &session),
        LEGACY,
    ];
    let call = |id: u64, tool: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        )
    };

    // The head arrives while the handler waits for the gate.
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        h.post(&headers, call(1, "gated_echo")),
    )
    .await
    .expect("the head was held until the answer");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    GATE.notify_one();
    let text = bounded(resp.text()).await.unwrap();
    assert!(text.contains("released"), "{text}");

    for (id, tool, scope) in [
        (2, "quiet_export", "notes:export notes:read"),
        (3, "quiet_carry_on", "notes:export"),
        (4, "chatty_carry_on", "notes:export"),
    ] {
        let resp = bounded(h.post(&headers, call(id, tool))).await;
        assert_eq!(resp.status(), 200, "{tool}");
        let text = bounded(resp.text()).await.unwrap();
        assert!(!text.contains(STEP_UP_SECRET), "{tool}: {text}");
        assert_step_up_error(&events(&text), id, scope, &text);
    }
    // A call that needs nothing more is untouched.
    let resp = bounded(h.post(&headers, call(5, "whoami"))).await;
    let text = bounded(resp.text()).await.unwrap();
    assert!(text.contains("alice"), "{text}");

    // The real rmcp client reads the JSON-RPC error.
    let client = bounded(legacy_client(&h.resource, &token)).await.unwrap();
    let err = bounded(client.call_tool(CallToolRequestParams::new("quiet_carry_on")))
        .await
        .unwrap_err();
    let rmcp::ServiceError::McpError(data) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(data.code.0, -32600, "{err:?}");
    assert_eq!(
        data.data,
        Some(json!({"error": "insufficient_scope", "scope": "notes:export"}))
    );
    client.cancel().await.unwrap();
}

// Computed requirements fail closed: a refusal answers 403 access_denied
// without a challenge, a panic or an invalid scope 500 server_error; the
// handler never runs. Prompts and resources take computed rules too.
#[tokio::test]
async fn computed_requirements_fail_closed_and_cover_prompts_and_resources() {
    let n = Notes::start_with(|b| {
        b.tool_scopes_with(
            "whoami",
            |call: &mcp_oauth2::OperationRequest<'_>, _: &mcp_oauth2::AuthContext| match call
                .argument_str("mode")
            {
                Some("deny") => Err(mcp_oauth2::Refusal::new("denied by the test")),
                Some("panic") => panic!("a bug in a requirement"),
                Some("bad") => Ok(vec!["two words".to_owned()]),
                Some("offline") => Ok(vec!["offline_access".to_owned()]),
                _ => Ok(vec![]),
            },
        )
        .prompt_scopes_with(
            "summary",
            |call: &mcp_oauth2::OperationRequest<'_>, auth: &mcp_oauth2::AuthContext| {
                assert_eq!(call.method(), "prompts/get");
                Ok(vec![format!("prompts:{}", auth.subject())])
            },
        )
        .resource_scopes_with(
            "notes://shared/{id}",
            |call: &mcp_oauth2::OperationRequest<'_>, _: &mcp_oauth2::AuthContext| {
                Ok(if call.target().ends_with("/rules") {
                    vec!["notes:rules".to_owned()]
                } else {
                    vec![]
                })
            },
        )
    })
    .await;
    let reader = n.token(&["notes:read"]);
    let whoami = |mode: &str| call_body(&json!({"name": "whoami", "arguments": {"mode": mode}}));
    let resp = n.post(&reader, &[LEGACY], &whoami("deny")).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("www-authenticate").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    assert_eq!(body["reason"], "requirement_refused");
    for mode in ["panic", "bad", "offline"] {
        let resp = n.post(&reader, &[LEGACY], &whoami(mode)).await;
        assert_eq!(resp.status(), 500, "{mode}");
        assert!(resp.headers().get("www-authenticate").is_none());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "server_error");
        assert_eq!(body["reason"], "requirement_failed");
    }
    // The server survives a panicking rule and answers the next call.
    let fine = json!({"name": "whoami", "arguments": {"mode": "fine"}});
    let ok = result_text(
        n.post_modern(&reader, "tools/call", Some("whoami"), fine)
            .await,
    )
    .await;
    assert_eq!(ok["subject"], "alice");

    let prompt = json!({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summary"}});
    let resp = n.post(&reader, &[LEGACY], &prompt.to_string()).await;
    assert_insufficient(&resp, "prompts:alice");

    let read = |uri: &str| {
        json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":uri}}).to_string()
    };
    let resp = n
        .post(&reader, &[LEGACY], &read("notes://shared/rules"))
        .await;
    assert_insufficient(&resp, "notes:read notes:rules");
    let resp = n
        .post_modern(
            &reader,
            "resources/read",
            Some("notes://shared/welcome"),
            json!({"uri": "notes://shared/welcome"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let listen = json!({"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["notes://shared/welcome","notes://shared/rules"]}}});
    let resp = n.post(&reader, &[], &listen.to_string()).await;
    assert_insufficient(&resp, "notes:read notes:rules");
}

// MCP "Scope Selection Strategy": `offline_access` never goes in a
// challenge, and RFC 6750 section 3 / RFC 6749 section 3.3: a challenge's
// `scope` is scope tokens. A handler's late `require_scopes` of something
// that is not one (`offline_access`, a quote, a space, nothing) was put in
// the 403 challenge as it came (`scope="offline_access"`). It is now
// answered as a computed requirement that returns such a scope is: 500
// `server_error`, reason `requirement_failed`, no challenge. A valid scope
// is the control (403 naming it).
#[tokio::test]
async fn a_late_step_up_of_a_scope_no_challenge_may_name_is_a_server_error() {
    use axum::routing::post;
    use mcp_oauth2::{AuthContext, AuthLayer};

    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let (listener, resource, config) = support::loopback::bind_with_config(&issuer, |b| b).await;
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/mcp/{scope}",
            post(
                |auth: AuthContext, axum::extract::Path(scope): axum::extract::Path<String>| async move {
                    match auth.require_scopes([scope]) {
                        Ok(()) => "granted".to_owned(),
                        Err(e) => e.message.to_string(),
                    }
                },
            ),
        )
        .layer(AuthLayer::new(config).unwrap());
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let token = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["notes:read"])
        .sign();
    let post = |scope: &str| {
        reqwest::Client::new()
            .post(format!("http://{addr}/mcp/{scope}"))
            .bearer_auth(&token)
            .send()
    };
    let control = post("notes:export").await.unwrap();
    assert_eq!(control.status(), 403);
    let challenge = control.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains(r#"scope="notes:export""#), "{challenge}");
    for bad in ["offline_access", "a%22b", "a%20b", "a%5Cb", "caf%C3%A9"] {
        let response = post(bad).await.unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        assert_eq!(status, 500, "{bad}: {challenge:?} {body}");
        assert!(challenge.is_none(), "{bad}: {challenge:?}");
        assert!(body.contains("requirement_failed"), "{bad}: {body}");
    }
    serving.abort();
}

/// rmcp behind the layer with a wrapper between them that cuts the answer
/// stream into `piece`-byte frames (as a proxy to an upstream server, or
/// any body re-framed, hands on what it read): events split across
/// frames, and frames holding the end of one event and the start of the
/// next.
async fn rechunked_server(
    issuer: &mcp_oauth2::testing::TestIssuer,
    piece: usize,
) -> (String, tokio_util::sync::CancellationToken) {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let config = mcp_oauth2::AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .required_scopes(["mcp"])
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let rmcp = StreamableHttpService::new(
        || Ok(support::fixture::EchoServer::new()),
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_json_response(true),
    );
    let recut = move |response: http::Response<_>| {
        use futures_util::StreamExt as _;
        response.map(|body| {
            let body = axum::body::Body::new(body);
            let pieces = body.into_data_stream().flat_map(move |chunk| {
                let cut: Vec<Result<axum::body::Bytes, axum::Error>> = match chunk {
                    Ok(bytes) => (0..bytes.len())
                        .step_by(piece)
                        .map(|at| Ok(bytes.slice(at..(at + piece).min(bytes.len()))))
                        .collect(),
                    Err(e) => vec![Err(e)],
                };
                futures_util::stream::iter(cut)
            });
            axum::body::Body::from_stream(pieces)
        })
    };
    let app = axum::Router::new()
        .route_service(
            "/mcp",
            tower::ServiceBuilder::new()
                .map_response(recut)
                .service(rmcp),
        )
        .layer(mcp_oauth2::AuthLayer::new(config).unwrap());
    let ct = tokio_util::sync::CancellationToken::new();
    let stop = ct.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });
    (resource, ct)
}

// The in-stream judge read each frame as one whole event (as rmcp writes
// them). With events cut across frames by a wrapper between the layer and
// rmcp, a piece without a `data:` line passed as "nothing to judge", so
// the answer of a handler carrying on after its failed step-up reached
// the client piece by piece (the secret on the wire). Events are now
// judged whole, whatever the framing.
#[tokio::test]
async fn a_step_up_holds_when_events_are_cut_across_frames() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    for piece in [1, 5, 7, 64] {
        let (resource, ct) = rechunked_server(&issuer, piece).await;
        let token = issuer
            .token()
            .subject("alice")
            .audience(&resource)
            .scopes(["mcp"])
            .sign();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"chatty_carry_on","arguments":{{}},{META}}}}}"#
        );
        let resp = bounded(
            reqwest::Client::new()
                .post(&resource)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "chatty_carry_on")
                .body(body)
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200, "piece {piece}");
        let text = bounded(resp.text()).await.unwrap();
        assert!(!text.contains(STEP_UP_SECRET), "piece {piece}: {text}");
        let seen = events(&text);
        assert_eq!(seen[0]["method"], "notifications/message", "{text}");
        assert_step_up_error(&seen, 9, "mcp notes:export", &text);
        ct.cancel();
    }
}

// `hold_streams_for_step_up(false)` with the real rmcp client in both
// generations: a late step-up is never a success and never carries what
// the handler returned after its failed check (the 403 challenge for a
// JSON answer, the JSON-RPC error in a stream).
#[tokio::test]
async fn with_streams_unheld_the_rmcp_client_never_gets_the_answer_of_a_failed_step_up() {
    let h = Harness::start(|b| b.required_scopes(["mcp"]).hold_streams_for_step_up(false)).await;
    let token = h
        .issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .scopes(["mcp"])
        .sign();
    for stateless in [true, false] {
        let client = if stateless {
            bounded(stateless_client(&h.resource, &token))
                .await
                .unwrap()
        } else {
            bounded(legacy_client(&h.resource, &token)).await.unwrap()
        };
        for tool in ["quiet_carry_on", "chatty_carry_on", "quiet_export"] {
            let err = bounded(client.call_tool(CallToolRequestParams::new(tool)))
                .await
                .expect_err(tool);
            let text = format!("{err:?}");
            assert!(!text.contains(STEP_UP_SECRET), "{stateless} {tool}: {text}");
            if let Some(value) = err.auth_challenge() {
                let c = mcp_oauth2::testing::parse_bearer_challenge(value).unwrap();
                assert!(
                    param(&c, "scope").is_some_and(|s| s.contains("notes:export")),
                    "{stateless} {tool}: {value}"
                );
                continue;
            }
            let rmcp::ServiceError::McpError(data) = &err else {
                panic!("{stateless} {tool}: {err:?}");
            };
            assert_eq!(data.code.0, -32600, "{stateless} {tool}: {err:?}");
            assert_eq!(data.data.as_ref().unwrap()["error"], "insufficient_scope");
        }
        // A call needing nothing more still answers.
        assert!(
            bounded(call_text(&client, "whoami"))
                .await
                .unwrap()
                .contains("alice")
        );
        client.cancel().await.unwrap();
    }
}

// The reference server with `MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP=0`:
// `export_notes` asks for `notes:export` mid-call. A legacy session's
// answer is a stream whose head leaves at once, so the real rmcp client gets
// the JSON-RPC error naming both scopes (or the 403 challenge, when the
// handler asked before the head was handed on); a stateless call answers
// JSON, so it always gets the 403 challenge. Neither ever gets the export.
#[tokio::test]
async fn reference_server_unheld_answers_export_notes_in_the_stream() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let _server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", issuer.issuer()),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP", "0"),
        ],
    )
    .await;
    let token = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["notes:read", "notes:write"])
        .sign();
    for stateless in [false, true] {
        let client = if stateless {
            bounded(stateless_client(&resource, &token)).await.unwrap()
        } else {
            bounded(legacy_client(&resource, &token)).await.unwrap()
        };
        let params = CallToolRequestParams::new("add_note").with_arguments(
            json!({"text": "secret plans"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        bounded(client.call_tool(params)).await.unwrap();
        let err = bounded(client.call_tool(CallToolRequestParams::new("export_notes")))
            .await
            .expect_err("no notes:export");
        assert!(!format!("{err:?}").contains("secret plans"), "{err:?}");
        // In the session, rmcp runs the handler in a task of its own: when
        // the handler asks before rmcp has handed the layer the stream's
        // head (a race a loaded machine's scheduler decides), nothing has
        // left yet and the layer answers the 403 challenge; otherwise the
        // head has left and the answer is the JSON-RPC error in the stream.
        // Either names both scopes; neither carries the export.
        if let Some(value) = err.auth_challenge() {
            let c = mcp_oauth2::testing::parse_bearer_challenge(value).unwrap();
            assert_eq!(param(&c, "scope"), Some("notes:read notes:export"));
        } else {
            assert!(!stateless, "a stateless call answers JSON: {err:?}");
            let rmcp::ServiceError::McpError(data) = &err else {
                panic!("{err:?}");
            };
            assert_eq!(data.code.0, -32600, "{err:?}");
            assert_eq!(
                data.data,
                Some(json!({"error": "insufficient_scope", "scope": "notes:read notes:export"}))
            );
        }
        client.cancel().await.unwrap();
    }
}
