//! The reference server's resources behind the real layer: per-resource
//! scopes hold for every way of naming a resource (`resources/read`,
//! `resources/subscribe`, `subscriptions/listen`, batches), and the operation
//! reader refuses bodies it cannot read strictly.
//!
//! Runs `examples/common/notes.rs` (the server `examples/protected_server`
//! serves): `notes://shared/{id}` needs `notes:read`,
//! `notes://private/{id}` needs `notes:private`.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::attack;
use support::fixture;
use support::notes::{Notes, assert_insufficient, server as notes};

use base64::Engine as _;
use fixture::{bounded, legacy_client, param, stateless_client};
use rmcp::model::{ReadResourceRequestParams, ResourceContents, SubscribeRequestParams};

const SHARED: &str = "notes://shared/welcome";
const PRIVATE: &str = "notes://private/1";

fn read(uri: &str) -> serde_json::Value {
    serde_json::json!({ "uri": uri })
}

fn listen(uris: &[&str]) -> serde_json::Value {
    serde_json::json!({ "notifications": { "resourceSubscriptions": uris } })
}

/// The `Mcp-Name` of `uri` in SEP-2243's Base64 form (for a URI that is not
/// plain printable ASCII).
fn base64_name(uri: &str) -> String {
    format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode(uri)
    )
}

/// `uri` read in 2026-07-28 (with `name` as its `Mcp-Name`), read in a
/// 2025-11-25 request, and listened to: each is refused 403
/// `insufficient_scope` naming `scope`.
async fn every_reach_needs(n: &Notes, token: &str, uri: &str, name: &str, scope: &str) {
    let resp = n
        .post_modern(token, "resources/read", Some(name), read(uri))
        .await;
    assert_insufficient(&resp, scope);
    let body =
        serde_json::json!({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":uri}});
    let resp = n
        .post(
            token,
            &[("mcp-protocol-version", "2025-11-25")],
            &body.to_string(),
        )
        .await;
    assert_insufficient(&resp, scope);
    let resp = n
        .post_modern(token, "subscriptions/listen", None, listen(&[uri]))
        .await;
    assert_insufficient(&resp, scope);
}

// Reference server contract: a `notes:read` token reads the shared notes and
// gets 403 naming `notes:private` on the private ones (resources/read,
// 2026-07-28 headers).
#[tokio::test]
async fn resources_read_private_needs_notes_private() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    let resp = n
        .post_modern(&reader, "resources/read", Some(SHARED), read(SHARED))
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("Welcome to the notes server."), "{text}");

    let resp = n
        .post_modern(&reader, "resources/read", Some(PRIVATE), read(PRIVATE))
        .await;
    assert_insufficient(&resp, "notes:private");
}

// MCP 2026-07-28: `subscriptions/listen` replaced `resources/subscribe`;
// per-resource rules cover every URI in `resourceSubscriptions`, and the
// challenge names every scope the request needs at once.
#[tokio::test]
async fn subscriptions_listen_covers_every_named_resource() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    let resp = n
        .post_modern(&reader, "subscriptions/listen", None, listen(&[PRIVATE]))
        .await;
    assert_insufficient(&resp, "notes:private");
    let resp = n
        .post_modern(
            &reader,
            "subscriptions/listen",
            None,
            listen(&[SHARED, PRIVATE]),
        )
        .await;
    assert_insufficient(&resp, "notes:read notes:private");
    let none = n.token(&[]);
    let resp = n
        .post_modern(
            &none,
            "subscriptions/listen",
            None,
            listen(&[SHARED, PRIVATE]),
        )
        .await;
    assert_insufficient(&resp, "notes:read notes:private");

    // Allowed: the stream opens (its acknowledgment is the first event).
    let resp = n
        .post_modern(&reader, "subscriptions/listen", None, listen(&[SHARED]))
        .await;
    assert_eq!(resp.status(), 200);
    drop(resp);
    let both = n.token(&["notes:read", "notes:private"]);
    let resp = n
        .post_modern(
            &both,
            "subscriptions/listen",
            None,
            listen(&[SHARED, PRIVATE]),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

// A listen names at most 1,000 resource URIs: past that it is refused
// before dispatch (400, JSON-RPC -32602), since rmcp intersects them in
// quadratic time on a runtime worker (found from outside: 150,000 shared
// URIs cost 30 s of CPU and stalled the server). A thousand is served.
#[tokio::test]
async fn a_listen_of_too_many_uris_is_refused_before_dispatch() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    let uris = |count: usize| -> Vec<String> {
        (0..count).map(|i| format!("notes://shared/{i}")).collect()
    };
    let at_most = uris(1_000);
    let names: Vec<&str> = at_most.iter().map(String::as_str).collect();
    let resp = n
        .post_modern(&reader, "subscriptions/listen", None, listen(&names))
        .await;
    assert_eq!(resp.status(), 200);
    drop(resp);
    // Few URIs but long ones: at most 128 KiB of them (found from outside:
    // 1,000 of 4,000 bytes held 20 MB per open listen).
    let long: Vec<String> = (0..40)
        .map(|i| format!("notes://shared/{i}-{}", "a".repeat(4_000)))
        .collect();
    let names: Vec<&str> = long.iter().map(String::as_str).collect();
    let resp = n
        .post_modern(&reader, "subscriptions/listen", None, listen(&names))
        .await;
    assert_eq!(resp.status(), 400, "160 KB of URIs");
    // 150,000 (the finding's count) is over the value cap too: 413
    // `body_too_complex`, before the URI rule is reached.
    let over = uris(150_000);
    let names: Vec<&str> = over.iter().map(String::as_str).collect();
    let resp = n
        .post_modern(&reader, "subscriptions/listen", None, listen(&names))
        .await;
    assert_eq!(resp.status(), 413, "150,000 URIs");
    for count in [1_001, 50_000] {
        let over = uris(count);
        let names: Vec<&str> = over.iter().map(String::as_str).collect();
        let resp = n
            .post_modern(&reader, "subscriptions/listen", None, listen(&names))
            .await;
        assert_eq!(resp.status(), 400, "{count}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32602, "{body}");
        assert_eq!(body["id"], 1, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("more than 1000 resource URIs"),
            "{body}"
        );
    }
}

// A request refused for its params (`-32602`) was read: its answer names
// its id, as JSON-RPC 2.0 section 5 wants (`null` only when the id could
// not be read; found from outside: `null` every time). A body that is not
// JSON keeps `null`.
#[tokio::test]
async fn invalid_params_answers_name_the_request_s_id() {
    let n = Notes::start().await;
    let token = n.token(&["notes:read", "notes:private"]);
    let headers = [("mcp-protocol-version", "2025-11-25")];
    for (body, id) in [
        (
            r#"{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{}}"#,
            serde_json::json!("call-7"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":42,"method":"resources/read","params":{"uri":5}}"#,
            serde_json::json!(42),
        ),
        (
            r#"{"jsonrpc":"2.0","id":-3,"method":"tasks/get","params":{"taskId":9}}"#,
            serde_json::json!(-3),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"#,
            serde_json::Value::Null,
        ),
    ] {
        let resp = n.post(&token, &headers, body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(answer["id"], id, "{body}: {answer}");
        assert_eq!(
            answer["error"]["data"]["reason"], "body_unreadable",
            "{answer}"
        );
        if id.is_null() {
            assert_eq!(answer["error"]["code"], -32700, "{answer}");
        } else {
            assert_eq!(answer["error"]["code"], -32602, "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("params.taskId"), "{answer}");
        }
    }
}

/// Opens a listen to the shared welcome note with `token`.
async fn open_listen(n: &Notes, token: &str) -> reqwest::Response {
    n.post_modern(token, "subscriptions/listen", None, listen(&[SHARED]))
        .await
}

// One user holds at most `max_listens_per_principal` open listens (found
// from outside: nothing bounded them but the connections, 200 per HTTP/2
// connection, each holding what it names until its token expired). All of
// the user's clients count together, another user not at all; the refused
// one never reaches rmcp, and a closed stream gives its slot back.
#[tokio::test]
async fn a_user_holds_at_most_max_listens_per_principal_listens() {
    let n = Notes::start_with(|b| b.max_listens_per_principal(3)).await;
    let alice = n.token(&["notes:read"]);
    let alice_elsewhere = n
        .issuer
        .token()
        .subject("alice")
        .client_id("another-app")
        .audience(&n.resource)
        .scopes(["notes:read"])
        .sign();
    let bob = n.token_for("bob", &["notes:read"]);
    let mut open = Vec::new();
    for token in [&alice, &alice, &alice_elsewhere] {
        let resp = open_listen(&n, token).await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        open.push(resp);
    }
    for token in [&alice, &alice_elsewhere] {
        let resp = open_listen(&n, token).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "60");
        assert!(resp.headers().get("www-authenticate").is_none());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "too_many_listens", "{body}");
        assert_eq!(body["reason"], "too_many_listens_for_principal", "{body}");
    }
    // Her other calls are not limited by it, nor is another user.
    let read_it = n
        .post_modern(&alice, "resources/read", Some(SHARED), read(SHARED))
        .await;
    assert_eq!(read_it.status(), 200);
    let his = open_listen(&n, &bob).await;
    assert_eq!(his.status(), 200);
    // A listen without the scope is refused for the scope, not counted.
    let unscoped = n.token(&[]);
    assert_insufficient(&open_listen(&n, &unscoped).await, "notes:read");
    // The client closes one stream: its slot comes back once the server
    // sees the connection go.
    drop(open.pop());
    let again = bounded(async {
        loop {
            let resp = open_listen(&n, &alice).await;
            if resp.status() == 200 {
                break resp;
            }
            assert_eq!(resp.status(), 429);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    // And the cap holds again.
    assert_eq!(open_listen(&n, &alice).await.status(), 429);
    drop((again, his, open));
}

/// Opens a listen on an HTTP/2 connection: its status, and its streams
/// (the answer's body, and the request's side to reset it).
async fn open_listen_h2(
    client: &h2::client::SendRequest<axum::body::Bytes>,
    resource: &str,
    token: &str,
) -> (u16, h2::RecvStream, h2::SendStream<axum::body::Bytes>) {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen",
        "params": {
            "notifications": {"resourceSubscriptions": [SHARED]},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    });
    let request = http::Request::post(resource)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let mut client = client.clone().ready().await.unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(body.to_string().into_bytes().into(), true)
        .unwrap();
    let response = bounded(response).await.unwrap();
    (response.status().as_u16(), response.into_body(), send)
}

// HTTP/2: a listen whose client resets its stream (what HTTP clients do
// when a response body is dropped on a pooled connection, to change
// subscriptions) gives its user's slot back at once (found from outside:
// the slot was held until the connection closed or the token expired, so
// re-subscribing locked the user out everywhere).
#[tokio::test]
async fn a_listen_reset_by_its_client_gives_its_slot_back() {
    let n = Notes::start_with(|b| b.max_listens_per_principal(2)).await;
    let alice = n.token(&["notes:read"]);
    let addr = n
        .resource
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let (status, _kept_body, _kept_send) = open_listen_h2(&client, &n.resource, &alice).await;
    assert_eq!(status, 200);
    for round in 0..6 {
        // Each new listen gets the slot the last reset one gave back.
        let (body, mut send) = bounded(async {
            loop {
                let (status, body, send) = open_listen_h2(&client, &n.resource, &alice).await;
                if status == 200 {
                    break (body, send);
                }
                assert_eq!(status, 429, "round {round}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        send.send_reset(h2::Reason::CANCEL);
        drop(body);
    }
    // The cap still holds: the kept listen and one more.
    let (status, _second, _send) = bounded(async {
        loop {
            let opened = open_listen_h2(&client, &n.resource, &alice).await;
            if opened.0 == 200 {
                break opened;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = open_listen_h2(&client, &n.resource, &alice).await;
    assert_eq!(status, 429);
}

// Before 2026-07-28: `resources/subscribe` (and `unsubscribe`) on a private
// note need `notes:private`, checked before rmcp sees the request.
#[tokio::test]
async fn resources_subscribe_private_needs_notes_private() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    for method in ["resources/subscribe", "resources/unsubscribe"] {
        let body =
            serde_json::json!({"jsonrpc":"2.0","id":3,"method":method,"params":{"uri":PRIVATE}});
        let resp = n
            .post(
                &reader,
                &[("mcp-protocol-version", "2025-11-25")],
                &body.to_string(),
            )
            .await;
        assert_insufficient(&resp, "notes:private");
    }

    // With the real rmcp client and a session: shared subscribes, private
    // is refused with the step-up challenge.
    let client = bounded(legacy_client(&n.resource, &reader)).await.unwrap();
    #[allow(deprecated)] // resources/subscribe is the pre-2026-07-28 API.
    let shared = bounded(client.subscribe(SubscribeRequestParams::new(SHARED))).await;
    assert!(shared.is_ok(), "{shared:?}");
    #[allow(deprecated)]
    let err = bounded(client.subscribe(SubscribeRequestParams::new(PRIVATE)))
        .await
        .unwrap_err();
    let value = err.auth_challenge().expect("an HTTP challenge").to_owned();
    let c = mcp_oauth2::testing::parse_bearer_challenge(&value).unwrap();
    assert_eq!(param(&c, "scope"), Some("notes:private"));
    client.cancel().await.unwrap();
}

// A batch is judged as a whole: one private read among shared ones makes the
// request need both scopes.
#[tokio::test]
async fn batch_mixing_shared_and_private_needs_both_scopes() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    let batch = serde_json::json!([
        {"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":SHARED}},
        {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":PRIVATE}},
    ]);
    let resp = n
        .post(
            &reader,
            &[("mcp-protocol-version", "2025-11-25")],
            &batch.to_string(),
        )
        .await;
    assert_insufficient(&resp, "notes:read notes:private");
    let batch = serde_json::json!([
        {"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":SHARED}},
        {"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[PRIVATE]}}},
    ]);
    let resp = n.post(&reader, &[], &batch.to_string()).await;
    assert_insufficient(&resp, "notes:read notes:private");
}

// The strict operation reader: a repeated member (here a second `uri` that
// serde_json would keep) is refused with 400, never guessed at.
#[tokio::test]
async fn duplicate_uri_member_is_refused() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    for body in [
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":"{SHARED}","uri":"{PRIVATE}"}}}}"#
        ),
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":"{PRIVATE}","\u0075ri":"{SHARED}"}}}}"#
        ),
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"resources/read","params":{{"uri":"{PRIVATE}"}}}}"#
        ),
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{{"notifications":{{"resourceSubscriptions":["{SHARED}"],"resourceSubscriptions":["{PRIVATE}"]}}}}}}"#
        ),
    ] {
        let resp = n
            .post(&reader, &[("mcp-protocol-version", "2025-11-25")], &body)
            .await;
        assert_eq!(resp.status(), 400, "{body}");
    }
}

// RFC 3986 section 6.2.2: `NOTES://private/1`, `notes://%70rivate/1` and
// `notes://private/x/../1` name the same resource as `notes://private/1`, and
// a handler that reads URIs with a URI library (or a file system) serves
// them as that one. The layer matched the rule byte for byte, so these
// spellings reached the handler with no scope asked (this reference handler
// is strict and answers "no such note"; a normalizing one served the note).
// Every equivalent spelling needs the scope, on both revisions.
#[tokio::test]
async fn equivalent_spellings_of_a_private_uri_need_notes_private() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    for uri in [
        "NOTES://private/1",
        "notes://PRIVATE/1",
        "notes://%70rivate/1",
        "notes://private/x/../1",
        "notes://private/./1",
        "notes://private/1?x=/y",
        "notes://alice@private/1",
        // A port: a handler looking at the host and the path ignores it as
        // it ignores the userinfo (found from outside: no scope asked).
        "notes://private:1/1",
        "notes://private:443/1",
        "notes://a:b@private:9/1?q",
        // A port neither reading takes for one (found from outside).
        "notes://private:abc/1",
        "notes://private:1:2/1",
        "notes://private:%31/1",
    ] {
        every_reach_needs(&n, &reader, uri, uri, "notes:private").await;
    }
    // Characters the WHATWG reading drops, beside the case and escapes
    // the RFC 3986 reading folds (found from outside: each trick alone
    // needed the scope, together they did not). Not header text: `Mcp-Name`
    // carries them in its base64 form.
    for uri in [
        "NOTES://PRIVATE/1\n",
        "notes://Pri\tvate/1",
        " Notes://Private/1",
        "notes://%70ri\tvate/1",
        "notes://al\tice@Private/1",
    ] {
        every_reach_needs(&n, &reader, uri, &base64_name(uri), "notes:private").await;
    }
    // Another spelling of a shared note still needs only `notes:read`.
    let resp = n
        .post_modern(
            &reader,
            "resources/read",
            Some("NOTES://shared/welcome"),
            read("NOTES://shared/welcome"),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

// A URI that is not an RFC 3986 URI at all, as the WHATWG URL standard
// (the `url` crate, browsers, most URL libraries) reads it: in a special
// scheme (`file`, `http`, `https`, ...) a backslash is a path separator,
// tabs and line breaks are dropped, and `%2e%2e` is a dot segment. A handler
// reading `file:///srv/public\..\private/1` with `url::Url` serves
// `/srv/private/1`: the rule on `file:///srv/private/*` must cover it.
#[tokio::test]
async fn whatwg_spellings_of_a_private_uri_need_its_scopes() {
    let n = Notes::start_with(|b| {
        b.resource_scopes("file:///srv/private/*", ["notes:private"])
            .resource_scopes("https://files.example/private/{id}", ["notes:private"])
    })
    .await;
    let reader = n.token(&["notes:read"]);
    for uri in [
        "file:///srv/public\\..\\private/1",
        "file:///srv\\private\\1",
        "file:///srv/pri\tvate/1",
        "file:///srv/pri\nvate/1",
        "https://files.example\\private\\1",
        "https://files.example/public/%2e%2e\\private/1",
        "HTTPS://files.example/x/..\\private/1",
    ] {
        every_reach_needs(&n, &reader, uri, &base64_name(uri), "notes:private").await;
    }
}

// 2026-07-28: `Mcp-Name` mirrors the URI; one naming the shared note cannot
// carry a private read through.
#[tokio::test]
async fn mcp_name_naming_another_resource_is_refused() {
    let n = Notes::start().await;
    let reader = n.token(&["notes:read"]);
    let resp = n
        .post_modern(&reader, "resources/read", Some(SHARED), read(PRIVATE))
        .await;
    assert_eq!(resp.status(), 400);
}

// Issue 12: a template placeholder followed by literal text sliced a URI
// inside a multi-byte character and panicked the request task.
#[tokio::test]
async fn multibyte_uri_is_answered_not_a_panic() {
    let n =
        Notes::start_with(|b| b.resource_scopes("notes://{kind}/{id}.md", ["notes:read"])).await;
    let reader = n.token(&["notes:read"]);
    for uri in [
        "notes://shared/é",
        "notes://private/é",
        "notes://privé/1",
        "notes://ü",
    ] {
        // SEP-2243: a name that is not plain ASCII goes in the Base64 form.
        let name = base64_name(uri);
        let resp = n
            .post_modern(&reader, "resources/read", Some(&name), read(uri))
            .await;
        if uri.starts_with("notes://private/") {
            // A private URI: its scope is required.
            assert_insufficient(&resp, "notes:private");
        } else {
            // Answered by the server (no such note), not a dropped connection.
            assert_eq!(resp.status(), 200, "{uri}");
            let text = resp.text().await.unwrap();
            assert!(text.contains("no such note"), "{uri}: {text}");
        }
    }
}

// The whole contract with the real rmcp client (2026-07-28): templates are
// listed, a `notes:private` token reads its own note written by `add_note`.
#[tokio::test]
async fn private_note_round_trip_with_the_rmcp_client() {
    let n = Notes::start().await;
    let all = n.token(&["notes:write", "notes:private"]);
    let client = bounded(stateless_client(&n.resource, &all)).await.unwrap();
    let templates: Vec<String> = bounded(client.list_all_resource_templates())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.uri_template.clone())
        .collect();
    assert_eq!(templates, [notes::SHARED_TEMPLATE, notes::PRIVATE_TEMPLATE]);
    let mut args = serde_json::Map::new();
    args.insert("text".into(), "my secret".into());
    bounded(
        client.call_tool(rmcp::model::CallToolRequestParams::new("add_note").with_arguments(args)),
    )
    .await
    .unwrap();
    let result = bounded(client.read_resource(ReadResourceRequestParams::new(PRIVATE)))
        .await
        .unwrap();
    let texts: Vec<&str> = result
        .contents
        .iter()
        .filter_map(|c| match c {
            ResourceContents::TextResourceContents { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["my secret"]);
    // `notes:write` implies `notes:read`: the shared notes are readable too.
    assert!(
        bounded(client.read_resource(ReadResourceRequestParams::new(SHARED)))
            .await
            .is_ok()
    );
    client.cancel().await.unwrap();
}

// The reference server keeps notes in memory: a token with `notes:write`
// cannot grow it without end. A note over 16 KiB and a user's 1,001st note
// are refused with `-32602`, on the wire through the real rmcp client;
// another user still writes. Before, every note was kept (about 3 MiB a
// call with the 4 MiB body cap).
#[tokio::test]
async fn add_note_is_bounded_per_note_and_per_user() {
    let n = Notes::start().await;
    let writer = n.token_for("mallory", &["notes:write"]);
    let client = bounded(stateless_client(&n.resource, &writer))
        .await
        .unwrap();
    let add = |text: String| {
        let mut args = serde_json::Map::new();
        args.insert("text".into(), text.into());
        client.call_tool(rmcp::model::CallToolRequestParams::new("add_note").with_arguments(args))
    };
    let refused = |result: Result<rmcp::model::CallToolResult, rmcp::ServiceError>| match result {
        Err(rmcp::ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32602, "{e:?}");
            e.message.into_owned()
        }
        other => panic!("{other:?}"),
    };
    // The limit is on UTF-8 bytes: 16 KiB of a two-byte character is over.
    let message = refused(bounded(add("é".repeat(notes::MAX_NOTE_BYTES / 2 + 1))).await);
    assert!(message.contains("16384 bytes"), "{message}");
    bounded(add("x".repeat(notes::MAX_NOTE_BYTES)))
        .await
        .unwrap();
    for i in 1..notes::MAX_NOTES_PER_USER {
        bounded(add(format!("note {i}"))).await.unwrap();
    }
    let message = refused(bounded(add("one more".into())).await);
    assert!(message.contains("1000 notes"), "{message}");
    // Another user is not affected.
    let other = n.token_for("alice", &["notes:write"]);
    let client = bounded(stateless_client(&n.resource, &other))
        .await
        .unwrap();
    let mut args = serde_json::Map::new();
    args.insert("text".into(), "mine".into());
    bounded(
        client.call_tool(rmcp::model::CallToolRequestParams::new("add_note").with_arguments(args)),
    )
    .await
    .unwrap();
}

/// A SEP-2640 request (`resources/directory/read`, `skills/get`) on the
/// attack fixture with `kind`'s token, in a legacy session of that token
/// when `session` is given, else as a 2026-07-28 stateless call.
async fn sep2640(
    target: &attack::Target,
    kind: attack::TokenKind,
    session: Option<&str>,
    method: &str,
    params: &str,
) -> attack::RawResponse {
    let body = |meta: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":5,"method":"{method}","params":{{{params}{meta}}}}}"#)
    };
    let raw = match session {
        Some(session) => target
            .mcp_post("/mcp", Some(kind), &body(""))
            .header("Mcp-Session-Id", session)
            .header("MCP-Protocol-Version", attack::LEGACY),
        None => target
            .mcp_post(
                "/mcp",
                Some(kind),
                &body(&format!(",{}", attack::MODERN_META)),
            )
            .header("MCP-Protocol-Version", attack::MODERN)
            .header("Mcp-Method", method),
    };
    raw.send()
        .await
        .unwrap_or_else(|e| attack::RawResponse::failed(&e))
}

// SEP-2640 (rmcp 3.11 dispatches it): `resources/directory/read` lists the
// children of a directory resource and `skills/get` answers a skill's
// manifest by its `SKILL.md` URI. The layer read neither method's `uri`,
// so `res://private` (whose children `res://private/{id}` need
// `s:private`) was listed, and `res://private/SKILL.md` reached its
// handler, for a token without the scope. Both are judged as resources now
// (a directory by itself and by its direct children); a request without
// its `uri` is unreadable (-32602).
#[tokio::test]
async fn directory_reads_and_skills_need_the_scopes_of_their_resources() {
    use attack::TokenKind::{AliceAll, AliceRead};
    let target = attack::Target::start_with(attack::Mount::Default, |b| b).await;
    let (read_session, _) = target.open_session(AliceRead).await;
    let (all_session, _) = target.open_session(AliceAll).await;
    let protected = [
        ("resources/directory/read", "res://private"),
        ("resources/directory/read", "res://private/"),
        ("resources/directory/read", "RES://private"),
        ("skills/get", "res://private/SKILL.md"),
    ];
    for session in [read_session.as_deref(), None] {
        for (method, uri) in protected {
            let _ = target.log.take();
            let params = format!(r#""uri":"{uri}""#);
            let response = sep2640(&target, AliceRead, session, method, &params).await;
            let ran = target.log.take();
            assert_eq!(
                response.status,
                403,
                "{method} {uri}: {}",
                response.summary()
            );
            let challenge = response.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.contains(r#"error="insufficient_scope""#)
                    && challenge.contains(&format!(r#"scope="{}""#, attack::PRIVATE)),
                "{method} {uri}: {challenge}"
            );
            assert!(ran.is_empty(), "{method} {uri}: the handler ran: {ran:?}");
        }
        // A directory no rule covers is read; a refusal without its `uri`
        // is a JSON-RPC -32602, never guessed at.
        let _ = target.log.take();
        let response = sep2640(
            &target,
            AliceRead,
            session,
            "resources/directory/read",
            r#""uri":"res://public""#,
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.summary());
        assert_eq!(target.log.take().len(), 1);
        for method in ["resources/directory/read", "skills/get"] {
            let response = sep2640(&target, AliceRead, session, method, r#""cursor":"x""#).await;
            assert_eq!(response.status, 400, "{method}: {}", response.summary());
            let body: serde_json::Value = serde_json::from_str(&response.text()).unwrap();
            assert_eq!(body["error"]["code"], -32602, "{method}: {body}");
            assert!(target.log.take().is_empty());
        }
    }
    // The control: with the scope, both reach their handlers.
    for session in [all_session.as_deref(), None] {
        for (method, uri) in protected {
            let _ = target.log.take();
            let params = format!(r#""uri":"{uri}""#);
            let response = sep2640(&target, AliceAll, session, method, &params).await;
            assert_eq!(
                response.status,
                200,
                "{method} {uri}: {}",
                response.summary()
            );
            let ran = target.log.take();
            assert_eq!(ran.len(), 1, "{method} {uri}: {ran:?}");
        }
    }
}

// A legacy session's GET opens a standalone event stream that stays open
// like a listen: it counts against the same per-user cap (found from
// outside: one session held 600 of them, bounded only by the connection
// caps), together with `subscriptions/listen`, and gives its slot back
// when its client goes.
#[tokio::test]
async fn legacy_get_streams_count_against_the_listen_cap() {
    let n = Notes::start_with(|b| b.max_listens_per_principal(2)).await;
    let alice = n.token(&["notes:read"]);
    let init = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}},
    });
    let resp = n.post(&alice, &[], &init.to_string()).await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let resp = n.post(&alice, &headers, initialized).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let get_stream = || {
        reqwest::Client::new()
            .get(&n.resource)
            .header("authorization", format!("Bearer {alice}"))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
    };
    let first = bounded(get_stream()).await.unwrap();
    assert_eq!(first.status(), 200);
    let second = open_listen(&n, &alice).await;
    assert_eq!(second.status(), 200);
    for refused in [
        bounded(get_stream()).await.unwrap(),
        open_listen(&n, &alice).await,
    ] {
        assert_eq!(refused.status(), 429);
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["reason"], "too_many_listens_for_principal", "{body}");
    }
    drop(first);
    let again = bounded(async {
        loop {
            let resp = get_stream().await.unwrap();
            if resp.status() == 200 {
                break resp;
            }
            assert_eq!(resp.status(), 429);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    drop((again, second));
}
