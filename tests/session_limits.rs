//! Issue 12 item 4, "Sessions bounded": a per-principal cap and a total cap
//! refuse a new legacy session (429 with `Retry-After` and a JSON body)
//! instead of evicting live ones. Configured with
//! `AuthConfigBuilder::max_sessions_per_principal(n)` and `max_sessions(n)`
//! (env `MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL`, default at most 64;
//! `MCP_OAUTH2_MAX_SESSIONS`, default at most 10,000).
//!
//! Kept apart from tests/routes.rs so that the other attack tests compile
//! while these setters are being added.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::sync::Arc;

use support::attack;

use attack::{LEGACY, Mount, RawResponse, Target, TokenKind, tool_call_body};

/// Asserts the refusal of a new session: 429, `Retry-After`, a JSON body,
/// and no session id handed out.
#[track_caller]
fn assert_session_refused(response: &RawResponse, case: &str) {
    assert_eq!(response.status, 429, "{case}: {}", response.summary());
    let retry_after = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("{case}: no Retry-After: {}", response.summary()));
    assert!(
        retry_after.parse::<u64>().is_ok(),
        "{case}: Retry-After {retry_after:?} is not delay-seconds"
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{case}: {}",
        response.summary()
    );
    assert!(
        serde_json::from_slice::<serde_json::Value>(&response.body).is_ok(),
        "{case}: not a JSON body: {}",
        response.summary()
    );
    assert!(
        response.header("mcp-session-id").is_none(),
        "{case}: a session id was handed out: {}",
        response.summary()
    );
}

/// Opens `n` sessions for `kind`, asserting each is granted.
async fn open_n(t: &Target, kind: TokenKind, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (id, response) = t.open_session(kind).await;
        ids.push(id.unwrap_or_else(|| {
            panic!(
                "{kind:?} session {i} of {n} refused: {}",
                response.summary()
            )
        }));
    }
    ids
}

// Issue 12 item 4: one principal over its cap gets 429 with Retry-After and
// a JSON body; its existing sessions keep working (never evicted).
#[tokio::test]
async fn principal_over_its_session_cap_gets_429_and_keeps_its_sessions() {
    let t = Target::start_with(Mount::Default, |b| b.max_sessions_per_principal(3)).await;
    let alices = open_n(&t, TokenKind::AliceAll, 3).await;
    let (refused, response) = t.open_session(TokenKind::AliceAll).await;
    assert_eq!(refused, None);
    assert_session_refused(&response, "alice's 4th session");
    // The same principal with another token (other scopes) is the same principal.
    let (refused, response) = t.open_session(TokenKind::AliceRead).await;
    assert_eq!(refused, None);
    assert_session_refused(&response, "alice's 4th session, another token");
    for id in &alices {
        assert!(
            t.session_works(TokenKind::AliceAll, id).await,
            "alice's session {id} was evicted"
        );
    }
}

// The cap is per principal: others still open sessions.
#[tokio::test]
async fn other_principals_still_open_sessions_when_one_is_capped() {
    let t = Target::start_with(Mount::Default, |b| b.max_sessions_per_principal(2)).await;
    let _alices = open_n(&t, TokenKind::AliceAll, 2).await;
    let (_, response) = t.open_session(TokenKind::AliceAll).await;
    assert_session_refused(&response, "alice over her cap");
    let bobs = open_n(&t, TokenKind::Bob, 2).await;
    for id in &bobs {
        assert!(t.session_works(TokenKind::Bob, id).await);
    }
}

// The per-principal cap counts the user (issuer, subject), whatever the
// client: one subject with tokens of many clients (dynamic client
// registration makes them cheap) cannot multiply it and fill the total
// cap. Each session still belongs to its own client.
#[tokio::test]
async fn the_cap_counts_a_user_across_clients() {
    let t = Target::start_with(Mount::Default, |b| b.max_sessions_per_principal(2)).await;
    let token = |client: &str| {
        t.issuer
            .token()
            .subject("mallory")
            .client_id(client)
            .audience(&t.resource)
            .scopes([attack::READ, attack::WRITE])
            .sign()
    };
    let open = |token: String| {
        let t = &t;
        async move {
            t.request("POST", t.path())
                .header("Content-Type", "application/json")
                .header("Accept", "application/json, text/event-stream")
                .header("Authorization", &format!("Bearer {token}"))
                .body(attack::initialize_body(1))
                .send()
                .await
                .unwrap_or_else(|e| RawResponse::failed(&e))
        }
    };
    let mut sessions = Vec::new();
    for client in ["dcr-0", "dcr-1"] {
        let response = open(token(client)).await;
        assert_eq!(response.status, 200, "{client}: {}", response.summary());
        sessions.push(response.header("mcp-session-id").expect("id").to_owned());
    }
    for client in ["dcr-2", "dcr-3", "dcr-0"] {
        assert_session_refused(&open(token(client)).await, client);
    }
    // Another user is not counted with mallory.
    let (bob, response) = t.open_session(TokenKind::Bob).await;
    assert!(bob.is_some(), "bob: {}", response.summary());
    // Each session belongs to its client: dcr-1 cannot use dcr-0's.
    let used = t
        .request("POST", t.path())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("Authorization", &format!("Bearer {}", token("dcr-1")))
        .header("Mcp-Session-Id", &sessions[0])
        .header("MCP-Protocol-Version", attack::LEGACY)
        .body(tool_call_body(9, "open_tool"))
        .send()
        .await
        .unwrap_or_else(|e| RawResponse::failed(&e));
    assert_eq!(used.status, 404, "{}", used.summary());
}

// Ending a session frees its slot.
#[tokio::test]
async fn ended_session_frees_a_slot() {
    let t = Target::start_with(Mount::Default, |b| b.max_sessions_per_principal(2)).await;
    let alices = open_n(&t, TokenKind::AliceAll, 2).await;
    let (_, response) = t.open_session(TokenKind::AliceAll).await;
    assert_session_refused(&response, "alice over her cap");
    let first = alices.first().expect("two sessions");
    let ended = t
        .request("DELETE", t.path())
        .header("Authorization", &t.bearer(TokenKind::AliceAll))
        .header("Mcp-Session-Id", first)
        .header("MCP-Protocol-Version", attack::LEGACY)
        .send()
        .await
        .expect("a response");
    assert!(
        (200..300).contains(&ended.status),
        "DELETE of her own session: {}",
        ended.summary()
    );
    let (again, response) = t.open_session(TokenKind::AliceAll).await;
    assert!(again.is_some(), "slot not freed: {}", response.summary());
}

// The total cap refuses a new session from anyone, without evicting.
#[tokio::test]
async fn total_session_cap_refuses_new_sessions_without_evicting() {
    let t = Target::start_with(Mount::Default, |b| {
        b.max_sessions_per_principal(3).max_sessions(4)
    })
    .await;
    let alices = open_n(&t, TokenKind::AliceAll, 3).await;
    let bobs = open_n(&t, TokenKind::Bob, 1).await;
    let (refused, response) = t.open_session(TokenKind::Bob).await;
    assert_eq!(refused, None);
    assert_session_refused(&response, "the 5th session overall");
    for id in &alices {
        assert!(
            t.session_works(TokenKind::AliceAll, id).await,
            "{id} evicted"
        );
    }
    for id in &bobs {
        assert!(t.session_works(TokenKind::Bob, id).await, "{id} evicted");
    }
}

// The caps hold on every route the router sends to the MCP service, not
// only on the exact mount path.
#[tokio::test]
async fn session_cap_holds_on_every_route_spelling() {
    let t = Target::start_with(Mount::Default, |b| b.max_sessions_per_principal(2)).await;
    let mut granted = 0;
    for target in ["/mcp", "/mcp/", "/mcp/x", "/mcp", "/mcp/"] {
        let (id, response) = t.open_session_at(target, TokenKind::AliceAll).await;
        if id.is_some() {
            granted += 1;
        } else if response.status == 429 {
            assert_session_refused(&response, target);
        }
    }
    assert!(granted <= 2, "{granted} sessions opened past a cap of 2");
}

// Issue 12 item 4: the default per-principal cap is at most 64 (one
// scope-less token opened 2,000 sessions in the audit).
#[tokio::test]
async fn default_per_principal_cap_is_at_most_64() {
    let t = Target::start(Mount::Default).await;
    let mut opened = Vec::new();
    for i in 0..=64 {
        let (id, response) = t.open_session(TokenKind::AliceNone).await;
        match id {
            Some(id) => opened.push(id),
            None => {
                assert_session_refused(&response, &format!("session {i}"));
                break;
            }
        }
    }
    assert!(
        opened.len() <= 64,
        "{} sessions for one principal",
        opened.len()
    );
    for id in opened.iter().take(3) {
        assert!(
            t.session_works(TokenKind::AliceNone, id).await,
            "{id} evicted"
        );
    }
}

// Issue 12 item 4: a session unused for `session_idle_timeout` expires: it
// answers 404 and no longer counts against the principal's cap.
#[tokio::test]
async fn idle_sessions_expire_and_free_their_slot() {
    let t = Target::start_with(Mount::Default, |b| {
        b.max_sessions_per_principal(1)
            .session_idle_timeout(std::time::Duration::from_secs(1))
    })
    .await;
    let first = open_n(&t, TokenKind::AliceAll, 1).await;
    let (refused, response) = t.open_session(TokenKind::AliceAll).await;
    assert_eq!(refused, None);
    assert_session_refused(&response, "alice's 2nd session while the 1st is live");
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert!(
        !t.session_works(TokenKind::AliceAll, &first[0]).await,
        "an idle-expired session still works"
    );
    open_n(&t, TokenKind::AliceAll, 1).await;
}

// Issue 12 item 4: the stateless-only switch. No session is ever created,
// and a request naming one gets 404 with a JSON reason.
#[tokio::test]
async fn stateless_only_creates_no_session() {
    let t = Target::start_with(Mount::Default, |b| b.stateless_only(true)).await;
    let (id, response) = t.open_session(TokenKind::AliceAll).await;
    assert_eq!(id, None, "{}", response.summary());
    assert!(response.header("mcp-session-id").is_none());
    let named = send_raw(
        t.mcp_post(
            "/mcp",
            Some(TokenKind::AliceAll),
            &tool_call_body(3, "open_tool"),
        )
        .header("MCP-Protocol-Version", LEGACY)
        .header("Mcp-Session-Id", "made-up"),
    )
    .await;
    assert_eq!(named.status, 404, "{}", named.summary());
    assert!(
        named.text().contains("sessions_disabled"),
        "{}",
        named.summary()
    );
    let log = t.log.take();
    assert!(log.iter().all(|e| e.what == "initialize"), "{log:?}");
    // A browser is told the methods it can use: POST only, since GET and
    // DELETE serve sessions (found from outside: the preflight named
    // them, and they were 405); with sessions on, all four.
    let on = Target::start(Mount::Default).await;
    for (target, methods) in [(&t, "POST, OPTIONS"), (&on, "GET, POST, DELETE, OPTIONS")] {
        for asked in ["POST", "GET", "DELETE"] {
            let preflight = send_raw(
                target
                    .request("OPTIONS", "/mcp")
                    .header("Origin", &target.origin())
                    .header("Access-Control-Request-Method", asked),
            )
            .await;
            assert_eq!(preflight.status, 204, "{}", preflight.summary());
            assert_eq!(
                preflight.header("access-control-allow-methods"),
                Some(methods),
                "{asked}: {}",
                preflight.summary()
            );
        }
    }
    let get = send_raw(
        t.request("GET", "/mcp")
            .header("Authorization", &t.bearer(TokenKind::AliceAll))
            .header("Accept", "text/event-stream"),
    )
    .await;
    assert_eq!(get.status, 405, "{}", get.summary());
}

// A request the layer cannot check against the caps beforehand (an
// `initialize` declaring the stateless revision, which normally creates no
// session) is still bound to its creator when the service does open a
// session, and over the cap that session is closed and refused with 429.
#[tokio::test]
async fn a_session_created_past_the_check_is_bound_within_the_caps() {
    let t = Target::start_with(Mount::Default, |b| b.max_sessions_per_principal(1)).await;
    let declared = |kind| stateless_initialize(&t, kind, &attack::initialize_body(1));
    let first = send_raw(declared(TokenKind::AliceAll)).await;
    let id = opened_for_alice(&t, &first).await;
    let second = send_raw(declared(TokenKind::AliceAll)).await;
    assert_session_refused(&second, "a second session past the check");
    assert!(
        t.session_works(TokenKind::AliceAll, &id).await,
        "the first one stays"
    );
}

/// The session `response` opened, checked to serve alice, its creator,
/// and not bob.
async fn opened_for_alice(t: &Target, response: &RawResponse) -> String {
    let id = response
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("rmcp opened a session: {}", response.summary()))
        .to_owned();
    assert!(t.session_works(TokenKind::AliceAll, &id).await);
    assert!(
        !t.session_works(TokenKind::Bob, &id).await,
        "bound to its creator"
    );
    id
}

/// `initialize` as `body` spells it, declaring the stateless revision (in
/// its `protocolVersion` and its header), which normally opens no session.
fn stateless_initialize(t: &Target, kind: TokenKind, body: &str) -> attack::Raw {
    t.mcp_post("/mcp", Some(kind), &body.replace(LEGACY, "2026-07-28"))
        .header("MCP-Protocol-Version", "2026-07-28")
}

async fn send_raw(raw: attack::Raw) -> attack::RawResponse {
    raw.send().await.expect("a response within the timeout")
}

// Issue 13: a POST without a session whose body holds no `initialize` gets
// no session hook (rmcp opens sessions for `initialize` only). Every
// spelling of `initialize` that rmcp reads (an escaped method name, a
// declared stateless revision) is still held to the caps and bound to its
// creator; the other POSTs open nothing, within the caps or past them.
#[tokio::test]
async fn every_spelling_of_initialize_is_held_to_the_caps_and_nothing_else_opens_a_session() {
    let t = Target::start_with(Mount::Default, |b| b.max_sessions_per_principal(2)).await;
    let escaped = attack::initialize_body(1).replace("\"initialize\"", "\"initi\\u0061lize\"");
    let first = send_raw(t.mcp_post("/mcp", Some(TokenKind::AliceAll), &escaped)).await;
    opened_for_alice(&t, &first).await;
    let _second = open_n(&t, TokenKind::AliceAll, 1).await;
    let third = send_raw(t.mcp_post("/mcp", Some(TokenKind::AliceAll), &escaped)).await;
    assert_session_refused(&third, "an escaped initialize past the cap");
    let declared = stateless_initialize(&t, TokenKind::AliceAll, &escaped);
    assert_session_refused(
        &send_raw(declared).await,
        "a stateless initialize past the cap",
    );
    // Past the cap, requests that cannot open a session are rmcp's to
    // answer, and none opens one.
    for body in [
        tool_call_body(2, "whoami"),
        attack::INITIALIZED.to_owned(),
        r#"{"jsonrpc":"2.0","id":3,"result":{}}"#.to_owned(),
    ] {
        let response = send_raw(t.mcp_post("/mcp", Some(TokenKind::AliceAll), &body)).await;
        assert_ne!(response.status, 429, "{body}: {}", response.summary());
        assert!(
            response.header("mcp-session-id").is_none(),
            "{body}: {}",
            response.summary()
        );
    }
}

/// Opens session `id`'s event stream (a legacy GET) as `kind`, with
/// `Connection: close` (the connection ends with the stream): the
/// connection, once its response head (200) is read.
async fn open_event_stream(t: &Target, kind: TokenKind, id: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nAccept: text/event-stream\r\nMCP-Protocol-Version: {LEGACY}\r\nMcp-Session-Id: {id}\r\nConnection: close\r\n\r\n",
        t.path(),
        t.addr,
        t.bearer(kind),
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(attack::HEAD_TIMEOUT, tcp.read(&mut buf))
            .await
            .expect("a response head")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    tcp
}

/// Whether `tcp` stays open for `wait` (events and keep-alive comments may
/// arrive meanwhile).
async fn stays_open(tcp: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0; 1024];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return true,
            Ok(Ok(0) | Err(_)) => return false,
            Ok(Ok(_)) => {}
        }
    }
}

// Found from outside: a legacy client that only listened on its session's
// event stream (the channel of `resources/subscribe` updates) lost its
// session at the idle timeout: rmcp's keep-alive counted messages, the
// stream was cut and the next call got 404. An open stream is a request
// still running: the session lives while it is open, its idle clock
// restarts when it ends, and then it expires as any other.
#[tokio::test]
async fn an_open_event_stream_keeps_its_session_alive() {
    let idle = std::time::Duration::from_secs(1);
    let t = Target::start_with(Mount::Default, |b| b.session_idle_timeout(idle)).await;
    let (id, response) = t.open_session(TokenKind::AliceAll).await;
    let id = id.unwrap_or_else(|| panic!("a session: {}", response.summary()));
    let mut stream = open_event_stream(&t, TokenKind::AliceAll, &id).await;
    assert!(
        stays_open(&mut stream, idle * 3).await,
        "the stream was cut at the idle timeout"
    );
    assert!(t.session_works(TokenKind::AliceAll, &id).await);
    // Another's stream on it: refused, and it keeps nothing alive.
    let foreign = send_raw(
        t.request("GET", "/mcp")
            .header("Authorization", &t.bearer(TokenKind::Bob))
            .header("Accept", "text/event-stream")
            .header("MCP-Protocol-Version", LEGACY)
            .header("Mcp-Session-Id", &id),
    )
    .await;
    assert_eq!(foreign.status, 404, "{}", foreign.summary());
    drop(stream);
    // Idle after its stream: ended by the layer's sweep (a quarter of the
    // timeout at most later), in rmcp too, without a request to notice.
    tokio::time::sleep(idle * 2).await;
    assert!(!t.session_works(TokenKind::AliceAll, &id).await);
}

// The same for a call that sends nothing for longer than the idle
// timeout: rmcp's keep-alive ended its session under it (the layer only
// kept its own table), so the answer never came. It comes now, and the
// session stays.
#[tokio::test]
async fn a_silent_call_longer_than_the_idle_timeout_keeps_its_session() {
    use support::slow_tools::{Count, Slow};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let (listener, resource, config) = support::loopback::bind_with_config(&issuer, |b| {
        b.session_idle_timeout(std::time::Duration::from_secs(1))
    })
    .await;
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Count::default());
    let server = mcp_oauth2::McpServer::builder()
        .auth(config)
        .service(move || Ok(Slow::new(&count, std::time::Duration::from_millis(2500))))
        .build()
        .unwrap();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let token = issuer.token().audience(&resource).sign();
    let post = |session: Option<&str>, body: &str| {
        let session = session
            .map(|id| format!("Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: {LEGACY}\r\n"))
            .unwrap_or_default();
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let send = |request: String| async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            tcp.read_to_end(&mut out),
        )
        .await
        .expect("an answer")
        .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let opened = send(post(None, &attack::initialize_body(1))).await;
    let id = opened
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id: ")
                .map(|_| l["mcp-session-id: ".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| panic!("a session: {opened}"));
    send(post(Some(&id), attack::INITIALIZED)).await;
    let call =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{}}}"#;
    let answer = send(post(Some(&id), call)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("done"), "the answer never came: {answer}");
    let again = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    let listed = send(post(Some(&id), again)).await;
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
}

// Its owner's DELETE racing the session's calls and GET streams: each
// request is answered as for a session that is there or gone, never with
// rmcp's 500 (found from outside: a request that passed the layer's check
// as the DELETE ended the session got "Encounter an error when get
// session: Session not found", which clients take for a server fault).
#[tokio::test]
async fn a_delete_racing_the_sessions_requests_never_answers_500() {
    let t = Target::start(Mount::Default).await;
    let auth = t.bearer(TokenKind::AliceAll);
    for round in 0..30 {
        let (session, opened) = t.open_session(TokenKind::AliceAll).await;
        let session = session.unwrap_or_else(|| panic!("{round}: {}", opened.summary()));
        let call = |id: u64| {
            send_raw(
                t.mcp_post(
                    "/mcp",
                    Some(TokenKind::AliceAll),
                    &tool_call_body(id, "open_tool"),
                )
                .header("MCP-Protocol-Version", LEGACY)
                .header("Mcp-Session-Id", &session),
            )
        };
        let get = || {
            let mut raw = t
                .request("GET", "/mcp")
                .header("Authorization", &auth)
                .header("Accept", "text/event-stream")
                .header("MCP-Protocol-Version", LEGACY)
                .header("Mcp-Session-Id", &session);
            raw.head_only_for_streams = true;
            send_raw(raw)
        };
        let delete = send_raw(
            t.request("DELETE", "/mcp")
                .header("Authorization", &auth)
                .header("MCP-Protocol-Version", LEGACY)
                .header("Mcp-Session-Id", &session),
        );
        let (deleted, a, b, g) = tokio::join!(delete, call(11), call(12), get());
        assert!(
            matches!(deleted.status, 200 | 202 | 204 | 404),
            "{round}: {}",
            deleted.summary()
        );
        for answer in [a, b, g] {
            assert!(
                matches!(answer.status, 200 | 202 | 404),
                "{round}: {}",
                answer.summary()
            );
        }
        let _ = t.log.take();
    }
}
