//! Optional: hiding the tools, prompts and resources a caller may not use
//! from list results ([`AuthConfigBuilder::hide_unauthorized_in_lists`](crate::AuthConfigBuilder::hide_unauthorized_in_lists)). The JSON-RPC responses
//! are rewritten in the HTTP response, JSON or SSE alike, and every filtered
//! list is marked `cacheScope: "private"` (SEP-2549, protocol 2026-07-28):
//! a list that depends on the caller must not be cached for others.
//!
//! The filter fails closed: a response to a list request that it cannot
//! read (not UTF-8, a JSON body or an SSE event whose data is not JSON, a
//! list member that is not an array) is [`Unfilterable`], and the caller
//! answers 500 instead of passing it on unfiltered. SSE is parsed as the
//! WHATWG HTML standard ("Server-sent events", "Interpreting an event
//! stream") says: lines end in CRLF, LF or CR; a blank line ends an event;
//! the `data` lines of an event are joined with LF; comments and other
//! fields pass through.

use std::borrow::Cow;

use serde_json::Value;

use crate::context::AuthContext;
use crate::scope::{Operation, ScopePolicy};

/// A list response the filter could not read. The caller must not pass it
/// on: it answers 500 (fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unfilterable;

/// The list methods this module rewrites.
pub(crate) fn is_list_method(method: &str) -> bool {
    matches!(
        method,
        "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            // SEP-2640 (rmcp 3.11): a directory's children (the shape of
            // `resources/list`) and the skills (their `SKILL.md` URIs).
            | crate::scope::DIRECTORY_READ
            | "skills/list"
    )
}

fn allowed(policy: &ScopePolicy, ctx: &AuthContext, method: &str, target: Option<&str>) -> bool {
    let op = Operation::new(method, target);
    policy.required_for(&op).iter().all(|s| ctx.has_scope(s))
}

/// Filters one JSON-RPC response object in place; returns whether it was a
/// list result.
fn filter_message(
    message: &mut Value,
    policy: &ScopePolicy,
    ctx: &AuthContext,
) -> Result<bool, Unfilterable> {
    let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let (key, method, field) = if result.contains_key("tools") {
        ("tools", "tools/call", "name")
    } else if result.contains_key("prompts") {
        ("prompts", "prompts/get", "name")
    } else if result.contains_key("resources") {
        ("resources", "resources/read", "uri")
    } else if result.contains_key("resourceTemplates") {
        ("resourceTemplates", "resources/read", "uriTemplate")
    } else if result.contains_key("skills") {
        ("skills", crate::scope::SKILL_GET, "uri")
    } else {
        return Ok(false);
    };
    let items = result
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .ok_or(Unfilterable)?;
    items.retain(|item| {
        let target = item.get(field).and_then(Value::as_str);
        allowed(policy, ctx, method, target)
    });
    result.insert("cacheScope".to_owned(), Value::String("private".to_owned()));
    Ok(true)
}

/// The filtered JSON text, `None` when no message in it is a list result.
fn filter_json(
    text: &[u8],
    policy: &ScopePolicy,
    ctx: &AuthContext,
) -> Result<Option<Vec<u8>>, Unfilterable> {
    let mut value: Value = serde_json::from_slice(text).map_err(|_| Unfilterable)?;
    let changed = match &mut value {
        Value::Array(batch) => {
            // Every message is filtered: no short circuit.
            let mut changed = false;
            for message in batch.iter_mut() {
                changed |= filter_message(message, policy, ctx)?;
            }
            changed
        }
        message => filter_message(message, policy, ctx)?,
    };
    if !changed {
        return Ok(None);
    }
    serde_json::to_vec(&value)
        .map(Some)
        .map_err(|_| Unfilterable)
}

/// Rewrites an `application/json` body. `Ok(None)`: leave it as it is (an
/// empty body, or no list result in it).
pub(crate) fn rewrite_json(
    body: &[u8],
    policy: &ScopePolicy,
    ctx: &AuthContext,
) -> Result<Option<Vec<u8>>, Unfilterable> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    filter_json(body, policy, ctx)
}

/// Rewrites a `text/event-stream` body event by event. Events whose data is
/// not a list result pass through byte for byte; a rewritten event keeps its
/// other fields and carries its data on one `data:` line, its lines ending
/// in LF.
pub(crate) fn rewrite_sse(
    body: &[u8],
    policy: &ScopePolicy,
    ctx: &AuthContext,
) -> Result<Vec<u8>, Unfilterable> {
    let text = std::str::from_utf8(body).map_err(|_| Unfilterable)?;
    let mut out = String::with_capacity(text.len());
    // One byte order mark may start the stream.
    let (bom, mut rest) = match text.strip_prefix('\u{feff}') {
        Some(after) => ("\u{feff}", after),
        None => ("", text),
    };
    out.push_str(bom);
    // `rest` is consumed line by line; `event` is the text of the event
    // being read (from its first line to the blank line that ends it).
    let mut event_start = rest;
    let mut event_len = 0usize;
    let mut lines: Vec<&str> = Vec::new();
    loop {
        let Some((line, terminator)) = next_line(rest) else {
            // End of the stream: an unterminated last event is filtered too.
            if !lines.is_empty() {
                let event = event_start.get(..event_len).ok_or(Unfilterable)?;
                out.push_str(&rewrite_event(event, &lines, false, policy, ctx)?);
            }
            break;
        };
        let consumed = line.len() + terminator.len();
        rest = rest.get(consumed..).ok_or(Unfilterable)?;
        event_len += consumed;
        if line.is_empty() {
            // A blank line dispatches the event.
            let event = event_start.get(..event_len).ok_or(Unfilterable)?;
            out.push_str(&rewrite_event(event, &lines, true, policy, ctx)?);
            lines.clear();
            event_start = rest;
            event_len = 0;
        } else {
            lines.push(line);
        }
    }
    Ok(out.into_bytes())
}

/// The next line of `text` and its terminator (CRLF, LF, CR, or empty at
/// the end of the stream); `None` when `text` is empty.
fn next_line(text: &str) -> Option<(&str, &str)> {
    if text.is_empty() {
        return None;
    }
    let Some(at) = memchr::memchr2(b'\r', b'\n', text.as_bytes()) else {
        return Some((text, ""));
    };
    // `at` is the position of an ASCII byte, so a character boundary.
    let (line, after) = text.split_at_checked(at)?;
    let terminator_len = if after.starts_with("\r\n") { 2 } else { 1 };
    let terminator = after.get(..terminator_len)?;
    Some((line, terminator))
}

/// A field line split into its name and value (one leading space removed).
fn field(line: &str) -> (&str, &str) {
    match line.split_once(':') {
        Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
        None => (line, ""),
    }
}

/// One event, filtered: `raw` (its text, blank line included when
/// `terminated`) unchanged when its data is not a list result.
fn rewrite_event<'a>(
    raw: &'a str,
    lines: &[&str],
    terminated: bool,
    policy: &ScopePolicy,
    ctx: &AuthContext,
) -> Result<Cow<'a, str>, Unfilterable> {
    let mut data = String::new();
    for line in lines.iter().filter(|l| !l.starts_with(':')) {
        let (name, value) = field(line);
        if name == "data" {
            data.push_str(value);
            data.push('\n');
        }
    }
    // The final LF is removed; an event with empty data is not dispatched.
    data.pop();
    if data.is_empty() {
        return Ok(Cow::Borrowed(raw));
    }
    let Some(json) = filter_json(data.as_bytes(), policy, ctx)? else {
        return Ok(Cow::Borrowed(raw));
    };
    let json = String::from_utf8(json).map_err(|_| Unfilterable)?;
    let mut out = String::with_capacity(raw.len() + json.len());
    let mut data_written = false;
    for line in lines {
        let is_data = !line.starts_with(':') && field(line).0 == "data";
        if !is_data {
            out.push_str(line);
            out.push('\n');
        } else if !data_written {
            out.push_str("data: ");
            out.push_str(&json);
            out.push('\n');
            data_written = true;
        }
    }
    if terminated {
        out.push('\n');
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScopePolicy {
        let mut p = ScopePolicy::default();
        p.tools
            .insert("add_note".into(), vec!["notes:write".into()]);
        p.prompts.insert("secret".into(), vec!["admin".into()]);
        p.resources.push((
            crate::scope::UriPattern::new("admin://*"),
            vec!["admin".into()],
        ));
        p
    }

    fn sse(body: &str) -> Result<String, Unfilterable> {
        let ctx = AuthContext::builder("i", "s").build();
        rewrite_sse(body.as_bytes(), &policy(), &ctx).map(|b| String::from_utf8(b).unwrap())
    }

    const PROMPTS: &str =
        r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"secret"},{"name":"hello"}]}}"#;

    fn assert_filtered(out: &str) {
        assert!(out.contains("hello") && !out.contains("secret"), "{out:?}");
        assert!(out.contains("\"cacheScope\":\"private\""), "{out:?}");
    }

    #[test]
    fn filters_json_and_marks_private() {
        let ctx = AuthContext::builder("i", "s")
            .scopes(["notes:read"])
            .build();
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"whoami"},{"name":"add_note"}],"cacheScope":"public","ttlMs":60000}}"#;
        let out: Value =
            serde_json::from_slice(&rewrite_json(body, &policy(), &ctx).unwrap().unwrap()).unwrap();
        assert_eq!(
            out["result"]["tools"],
            serde_json::json!([{"name":"whoami"}])
        );
        assert_eq!(out["result"]["cacheScope"], "private");
        let resources = br#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"admin://x"},{"uri":"notes://1"}]}}"#;
        let out: Value =
            serde_json::from_slice(&rewrite_json(resources, &policy(), &ctx).unwrap().unwrap())
                .unwrap();
        assert_eq!(
            out["result"]["resources"],
            serde_json::json!([{"uri":"notes://1"}])
        );
        // SEP-2640 `skills/list`: each skill is the resource of its
        // `SKILL.md`.
        let skills = br#"{"jsonrpc":"2.0","id":1,"result":{"skills":[{"uri":"admin://a/SKILL.md"},{"uri":"notes://b/SKILL.md"}]}}"#;
        let out: Value =
            serde_json::from_slice(&rewrite_json(skills, &policy(), &ctx).unwrap().unwrap())
                .unwrap();
        assert_eq!(
            out["result"]["skills"],
            serde_json::json!([{"uri":"notes://b/SKILL.md"}])
        );
        assert!(is_list_method("skills/list") && is_list_method("resources/directory/read"));
        assert_eq!(
            rewrite_json(
                br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
                &policy(),
                &ctx
            ),
            Ok(None)
        );
        assert_eq!(rewrite_json(b"", &policy(), &ctx), Ok(None));
    }

    // Fail closed: a list response that cannot be read is never passed on.
    #[test]
    fn unreadable_json_list_response_fails_closed() {
        let ctx = AuthContext::builder("i", "s").build();
        for body in [
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"prompts\":[{\"name\":\"secret\"}]"[..],
            b"\xff{}",
            br#"{"jsonrpc":"2.0","id":1,"result":{"prompts":{"name":"secret"}}}"#,
        ] {
            assert_eq!(rewrite_json(body, &policy(), &ctx), Err(Unfilterable));
        }
    }

    #[test]
    fn filters_sse_events_only_where_needed() {
        let body = format!("id: 0\nretry: 3000\ndata: \n\nevent: message\ndata: {PROMPTS}\n\n");
        let out = sse(&body).unwrap();
        assert!(out.starts_with("id: 0\nretry: 3000\ndata: \n\nevent: message\ndata: {"));
        assert_filtered(&out);
        assert!(out.ends_with("\n\n"));
        // Events that are not list results pass byte for byte.
        let other =
            "id: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n";
        assert_eq!(sse(other).unwrap(), other);
    }

    // WHATWG HTML, server-sent events: a line ends in CRLF, LF or CR. Issue
    // 12: CRLF-framed events were not parsed and passed unfiltered.
    #[test]
    fn sse_crlf_framed_events_are_filtered() {
        let out = sse(&format!(
            "id: 0\r\ndata:\r\n\r\nevent: message\r\ndata: {PROMPTS}\r\n\r\n"
        ))
        .unwrap();
        assert_filtered(&out);
        assert!(
            out.starts_with("id: 0\r\ndata:\r\n\r\nevent: message\ndata: {"),
            "{out:?}"
        );
        assert!(out.ends_with("}\n\n"), "{out:?}");
    }

    #[test]
    fn sse_cr_framed_events_are_filtered() {
        let out = sse(&format!(
            "id: 0\rdata:\r\revent: message\rdata: {PROMPTS}\r\r"
        ))
        .unwrap();
        assert_filtered(&out);
        assert!(
            out.starts_with("id: 0\rdata:\r\revent: message\ndata: {"),
            "{out:?}"
        );
    }

    #[test]
    fn sse_mixed_framing_and_bom_are_filtered() {
        let out = sse(&format!(
            "\u{feff}: comment\r\nid: 7\rdata: {PROMPTS}\n\r\n"
        ))
        .unwrap();
        assert_filtered(&out);
        assert!(
            out.starts_with("\u{feff}: comment\nid: 7\ndata: {"),
            "{out:?}"
        );
    }

    // Multi-line data is joined with LF before it is read as JSON.
    #[test]
    fn sse_multi_line_data_is_joined() {
        let split = PROMPTS
            .replace("},{", "},\r\ndata:{")
            .replace("\"prompts\":", "\"prompts\":\ndata: ");
        let out = sse(&format!("event: message\ndata: {split}\n\n")).unwrap();
        assert_filtered(&out);
        assert_eq!(out.matches("data:").count(), 1, "{out:?}");
        assert!(out.ends_with("\n\n"));
    }

    // An unterminated last event is filtered too (a lenient client might
    // still dispatch it).
    #[test]
    fn sse_unterminated_last_event_is_filtered() {
        assert_filtered(&sse(&format!("data: {PROMPTS}")).unwrap());
        assert_filtered(&sse(&format!("data: {PROMPTS}\r\n")).unwrap());
    }

    // Fail closed: an event whose data is not JSON, or a body that is not
    // UTF-8, makes the whole list response unfilterable.
    #[test]
    fn sse_unparseable_event_fails_closed() {
        assert_eq!(
            sse(&format!("data: {PROMPTS}\n\ndata: {{\"jsonrpc\"\n\n")),
            Err(Unfilterable)
        );
        assert_eq!(sse("data: not json\r\n\r\n"), Err(Unfilterable));
        assert_eq!(
            sse(r#"data: {"jsonrpc":"2.0","id":1,"result":{"tools":"x"}}"#),
            Err(Unfilterable)
        );
        let ctx = AuthContext::builder("i", "s").build();
        assert_eq!(
            rewrite_sse(b"data: \xff\n\n", &policy(), &ctx),
            Err(Unfilterable)
        );
    }
}
