//! Optional: hiding the tools, prompts and resources a caller may not use
//! from list results (`AuthLayer::hide_unauthorized`). The JSON-RPC responses
//! are rewritten in the HTTP response, JSON or SSE alike, and every filtered
//! list is marked `cacheScope: "private"` (SEP-2549, protocol 2026-07-28):
//! a list that depends on the caller must not be cached for others.

use serde_json::Value;

use crate::context::AuthContext;
use crate::scope::{Operation, ScopePolicy};

/// The list methods this module rewrites.
pub(crate) fn is_list_method(method: &str) -> bool {
    matches!(
        method,
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list"
    )
}

fn allowed(policy: &ScopePolicy, ctx: &AuthContext, method: &str, target: Option<&str>) -> bool {
    let op = Operation {
        method: method.to_owned(),
        target: target.map(str::to_owned),
    };
    policy.required_for(&op).iter().all(|s| ctx.has_scope(s))
}

/// Filters one JSON-RPC response object in place; returns whether it was a list result.
fn filter_message(message: &mut Value, policy: &ScopePolicy, ctx: &AuthContext) -> bool {
    let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) else {
        return false;
    };
    let (key, method, field) = if result.contains_key("tools") {
        ("tools", "tools/call", "name")
    } else if result.contains_key("prompts") {
        ("prompts", "prompts/get", "name")
    } else if result.contains_key("resources") {
        ("resources", "resources/read", "uri")
    } else if result.contains_key("resourceTemplates") {
        ("resourceTemplates", "resources/read", "uriTemplate")
    } else {
        return false;
    };
    if let Some(items) = result.get_mut(key).and_then(Value::as_array_mut) {
        items.retain(|item| {
            let target = item.get(field).and_then(Value::as_str);
            allowed(policy, ctx, method, target)
        });
    }
    result.insert("cacheScope".to_owned(), Value::String("private".to_owned()));
    true
}

fn filter_json(text: &[u8], policy: &ScopePolicy, ctx: &AuthContext) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(text).ok()?;
    let changed = match &mut value {
        Value::Array(batch) => {
            // Every message is filtered: no short circuit.
            let mut changed = false;
            for message in batch.iter_mut() {
                changed |= filter_message(message, policy, ctx);
            }
            changed
        }
        message => filter_message(message, policy, ctx),
    };
    changed.then(|| serde_json::to_vec(&value).ok()).flatten()
}

/// Rewrites an `application/json` body. `None`: leave it as it is.
pub(crate) fn rewrite_json(
    body: &[u8],
    policy: &ScopePolicy,
    ctx: &AuthContext,
) -> Option<Vec<u8>> {
    filter_json(body, policy, ctx)
}

/// Rewrites a `text/event-stream` body event by event; events whose data is
/// not a list result pass through byte for byte.
pub(crate) fn rewrite_sse(body: &[u8], policy: &ScopePolicy, ctx: &AuthContext) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    // Events are separated by a blank line (WHATWG HTML, server-sent events).
    for (i, event) in text.split("\n\n").enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| {
                l.strip_prefix("data:")
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
            })
            .collect();
        let rewritten = (!data.is_empty())
            .then(|| filter_json(data.join("\n").as_bytes(), policy, ctx))
            .flatten();
        match rewritten {
            Some(json) => {
                let mut first_data = true;
                let mut lines = Vec::new();
                for line in event.lines() {
                    if line.starts_with("data:") {
                        if first_data {
                            lines.push(format!("data: {}", String::from_utf8_lossy(&json)));
                            first_data = false;
                        }
                    } else {
                        lines.push(line.to_owned());
                    }
                }
                out.push_str(&lines.join("\n"));
            }
            None => out.push_str(event),
        }
    }
    out.into_bytes()
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

    #[test]
    fn filters_json_and_marks_private() {
        let ctx = AuthContext::builder("i", "s")
            .scopes(["notes:read"])
            .build();
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"whoami"},{"name":"add_note"}],"cacheScope":"public","ttlMs":60000}}"#;
        let out: Value =
            serde_json::from_slice(&rewrite_json(body, &policy(), &ctx).unwrap()).unwrap();
        assert_eq!(
            out["result"]["tools"],
            serde_json::json!([{"name":"whoami"}])
        );
        assert_eq!(out["result"]["cacheScope"], "private");
        let resources = br#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"admin://x"},{"uri":"notes://1"}]}}"#;
        let out: Value =
            serde_json::from_slice(&rewrite_json(resources, &policy(), &ctx).unwrap()).unwrap();
        assert_eq!(
            out["result"]["resources"],
            serde_json::json!([{"uri":"notes://1"}])
        );
        assert!(
            rewrite_json(
                br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
                &policy(),
                &ctx
            )
            .is_none()
        );
    }

    #[test]
    fn filters_sse_events_only_where_needed() {
        let ctx = AuthContext::builder("i", "s").build();
        let body = "id: 0\nretry: 3000\ndata: \n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"prompts\":[{\"name\":\"secret\"},{\"name\":\"hello\"}]}}\n\n";
        let out = String::from_utf8(rewrite_sse(body.as_bytes(), &policy(), &ctx)).unwrap();
        assert!(out.starts_with("id: 0\nretry: 3000\ndata: \n\nevent: message\ndata: {"));
        assert!(out.contains("hello") && !out.contains("secret"));
        assert!(out.contains("\"cacheScope\":\"private\""));
        assert!(out.ends_with("\n\n"));
    }
}
