//! `completion/complete` (MCP "Completion") completes an argument of a
//! prompt (`ref/prompt`) or of a resource template (`ref/resource`): what
//! it answers may reveal what the prompt or the resources hold, so it needs
//! the scopes of the prompt or template it names, as `prompts/get` and
//! `resources/read` do, before rmcp dispatches it.
//!
//! The oracle is the attack fixture's execution log: its `complete` handler
//! records every completion it ran and for whom.
// Test code: a panic here is a failed run, not an outage.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use support::attack::*;

/// A `completion/complete` of `reference` (the JSON of `params.ref`).
fn complete_body(id: u64, reference: &str, meta: bool) -> String {
    let meta = if meta {
        format!(",{MODERN_META}")
    } else {
        String::new()
    };
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"completion/complete","params":{{"ref":{reference},"argument":{{"name":"id","value":""}}{meta}}}}}"#
    )
}

const PRIVATE_TEMPLATE: &str = r#"{"type":"ref/resource","uri":"res://private/{id}"}"#;
const PUBLIC_TEMPLATE: &str = r#"{"type":"ref/resource","uri":"res://public/{id}"}"#;
const SECRET_PROMPT: &str = r#"{"type":"ref/prompt","name":"secret"}"#;

async fn target() -> Target {
    Target::start_with(Mount::Default, |b| b.prompt_scopes("secret", [PRIVATE])).await
}

/// Sends a completion with `kind`'s token: in a legacy session of that
/// token when `session` is given, else as a 2026-07-28 stateless call.
async fn complete(
    target: &Target,
    kind: TokenKind,
    session: Option<&str>,
    reference: &str,
) -> RawResponse {
    let raw = match session {
        Some(session) => target
            .mcp_post("/mcp", Some(kind), &complete_body(7, reference, false))
            .header("Mcp-Session-Id", session)
            .header("MCP-Protocol-Version", LEGACY),
        None => target
            .mcp_post("/mcp", Some(kind), &complete_body(7, reference, true))
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", "completion/complete"),
    };
    raw.send().await.unwrap_or_else(|e| RawResponse::failed(&e))
}

fn challenge_scope(response: &RawResponse) -> Option<String> {
    let challenge = response.header("www-authenticate")?;
    let start = challenge.find("scope=\"")? + "scope=\"".len();
    let rest = challenge.get(start..)?;
    Some(rest.get(..rest.find('"')?)?.to_owned())
}

// MCP "Completion": a token without the scope of the template or prompt is
// refused with 403 insufficient_scope naming it (RFC 6750 section 3.1),
// and the handler never runs, in a legacy session and statelessly alike.
#[tokio::test]
async fn completing_a_protected_template_or_prompt_needs_its_scopes() {
    let target = target().await;
    let (alice_read, _) = target.open_session(TokenKind::AliceRead).await;
    let alice_read = alice_read.expect("alice's session");
    let _ = target.log.take();
    for session in [Some(alice_read.as_str()), None] {
        for reference in [PRIVATE_TEMPLATE, SECRET_PROMPT] {
            let response = complete(&target, TokenKind::AliceRead, session, reference).await;
            let ran = target.log.take();
            assert_eq!(
                response.status,
                403,
                "{reference} in {session:?}: {}",
                response.summary()
            );
            assert_eq!(challenge_scope(&response).as_deref(), Some(PRIVATE));
            assert!(
                response.text().contains("insufficient_scope"),
                "{}",
                response.summary()
            );
            assert!(ran.is_empty(), "{reference}: the handler ran: {ran:?}");
        }
        // RFC 3986 section 6.2.2: another spelling of the protected
        // template (scheme case, an escaped unreserved character, a dot
        // segment) needs its scope too (before: completed, 200).
        for reference in [
            r#"{"type":"ref/resource","uri":"RES://private/{id}"}"#,
            r#"{"type":"ref/resource","uri":"res://%70rivate/{id}"}"#,
            r#"{"type":"ref/resource","uri":"res://private/x/../{id}"}"#,
            // A template written otherwise than the rule, which may expand
            // to what it covers (found from outside: completed, 200).
            r#"{"type":"ref/resource","uri":"res://private{/id}"}"#,
            r#"{"type":"ref/resource","uri":"res://{kind}/{id}"}"#,
        ] {
            let response = complete(&target, TokenKind::AliceRead, session, reference).await;
            let ran = target.log.take();
            assert_eq!(response.status, 403, "{reference}: {}", response.summary());
            assert_eq!(challenge_scope(&response).as_deref(), Some(PRIVATE));
            assert!(ran.is_empty(), "{reference}: the handler ran: {ran:?}");
        }
        // A template no rule protects is completed for any verified caller.
        let response = complete(&target, TokenKind::AliceRead, session, PUBLIC_TEMPLATE).await;
        let ran = target.log.take();
        assert_eq!(response.status, 200, "{}", response.summary());
        assert_eq!(ran.len(), 1, "{ran:?}");
        assert_eq!(ran[0].what, "complete:res://public/{id}");
    }
    // The control: a token with the scope gets its completions.
    let (alice_all, _) = target.open_session(TokenKind::AliceAll).await;
    let alice_all = alice_all.expect("session");
    let _ = target.log.take();
    for session in [Some(alice_all.as_str()), None] {
        for (reference, what) in [
            (PRIVATE_TEMPLATE, "complete:res://private/{id}"),
            (SECRET_PROMPT, "complete:secret"),
        ] {
            let response = complete(&target, TokenKind::AliceAll, session, reference).await;
            let ran = target.log.take();
            assert_eq!(response.status, 200, "{}", response.summary());
            assert!(
                response.text().contains("secret-1"),
                "{}",
                response.summary()
            );
            assert_eq!(ran.len(), 1, "{ran:?}");
            assert_eq!(ran[0].what, what);
            assert_eq!(ran[0].subject.as_deref(), Some("alice"));
        }
    }
}

// A completion whose `ref` the layer cannot read (not an object, no `type`,
// an unknown type, a missing or non-string `uri` / `name`, a repeated
// member) is refused with 400 and the JSON-RPC error -32602 (invalid
// params), never guessed at; rmcp would not dispatch it either.
#[tokio::test]
async fn a_completion_whose_reference_cannot_be_read_is_refused() {
    let target = target().await;
    for reference in [
        r#""res://private/{id}""#,
        r#"null"#,
        r#"{"uri":"res://private/{id}"}"#,
        r#"{"type":"ref/other","uri":"res://private/{id}"}"#,
        r#"{"type":7,"uri":"res://private/{id}"}"#,
        r#"{"type":"ref/resource"}"#,
        r#"{"type":"ref/resource","uri":7}"#,
        r#"{"type":"ref/resource","name":"res://private/{id}"}"#,
        r#"{"type":"ref/prompt","uri":"secret"}"#,
        r#"{"type":"ref/prompt","name":null}"#,
    ] {
        for session in [false, true] {
            let session_id = if session {
                target.open_session(TokenKind::AliceAll).await.0
            } else {
                None
            };
            let _ = target.log.take();
            let response = complete(
                &target,
                TokenKind::AliceAll,
                session_id.as_deref(),
                reference,
            )
            .await;
            let ran = target.log.take();
            assert_eq!(response.status, 400, "{reference}: {}", response.summary());
            let body: serde_json::Value =
                serde_json::from_str(&response.text()).expect("a JSON-RPC error");
            assert_eq!(body["error"]["code"], -32602, "{reference}: {body}");
            assert_eq!(body["error"]["data"]["reason"], "body_unreadable");
            assert!(ran.is_empty(), "{reference}: {ran:?}");
        }
    }
    // Without `params` at all, as with `ref` missing: refused the same way.
    let response = target
        .mcp_post(
            "/mcp",
            Some(TokenKind::AliceAll),
            &format!(
                r#"{{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{{"argument":{{"name":"id","value":""}},{MODERN_META}}}}}"#
            ),
        )
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", "completion/complete")
        .send()
        .await
        .unwrap_or_else(|e| RawResponse::failed(&e));
    assert_eq!(response.status, 400, "{}", response.summary());
    assert!(target.log.take().is_empty());
}
