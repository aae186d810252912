//! Learning which MCP operations a request carries, for per-operation scope
//! decisions before rmcp dispatches.
//!
//! The JSON-RPC body is authoritative: it is what rmcp dispatches. It is read
//! (with a size cap) for every protocol revision, batches included, with the
//! crate's strict JSON reader: a body in which two readers could see
//! different operations is refused rather than guessed at. Refused, as
//! [`OperationError::Unreadable`]:
//! - a body that is not UTF-8 or not JSON, or whose top level is neither an
//!   object nor an array of objects;
//! - an object, at any depth, that repeats a member name (`serde_json`, and so
//!   rmcp, keeps the last copy; another reader may keep the first);
//! - a lone UTF-16 surrogate in a `\u` escape, a number out of range, nesting
//!   deeper than `serde_json`'s recursion limit;
//! - a request whose method needs a target that is missing or not a string
//!   (`params.name` of `tools/call` and `prompts/get`, `params.uri` of
//!   `resources/read`, `resources/subscribe`, `resources/unsubscribe`), a
//!   `subscriptions/listen` whose `params.notifications.resourceSubscriptions`
//!   is not an array of strings, a `method` that is not a string.
//!
//! Messages without a `method` (responses the client sends back) are not
//! dispatched as calls and carry no operation.
//!
//! When the 2026-07-28 `Mcp-Method` / `Mcp-Name` headers are present they
//! must agree with the body, or the request is refused: a header that
//! disagrees with the body never gets a call through.

use base64::Engine as _;
use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::json::{self, Members};
use crate::scope::Operation;

/// Why the operations of a request could not be determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperationError {
    /// The body cannot be read strictly (see the module documentation): the
    /// layer answers 400 whenever per-operation rules exist.
    Unreadable,
    /// `Mcp-Method`/`Mcp-Name` contradict the body, or are malformed.
    HeaderMismatch,
}

const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// Decodes an `Mcp-Name` value: plain, or the `=?base64?…?=` sentinel form.
pub(crate) fn decode_header_value(raw: &str) -> Option<String> {
    match raw
        .strip_prefix(BASE64_PREFIX)
        .and_then(|s| s.strip_suffix(BASE64_SUFFIX))
    {
        Some(inner) => base64::engine::general_purpose::STANDARD
            .decode(inner)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(raw.to_owned()),
    }
}

/// The member `key` of `params` as a string; missing `params`, `params`
/// that is not an object, a missing or non-string value: unreadable (rmcp
/// would not dispatch the call, but we do not guess).
fn required_str(params: Option<&RawValue>, key: &str) -> Result<String, OperationError> {
    let params = params.ok_or(OperationError::Unreadable)?;
    let params = Members::parse_checked(params.get()).map_err(|_| OperationError::Unreadable)?;
    let value = params
        .str(key)
        .map_err(|()| OperationError::Unreadable)?
        .ok_or(OperationError::Unreadable)?;
    Ok(value.into_owned())
}

/// The resource URIs a `subscriptions/listen` request subscribes to
/// (`params.notifications.resourceSubscriptions`, MCP 2026-07-28).
fn listened_uris(params: Option<&RawValue>) -> Result<Vec<String>, OperationError> {
    let Some(params) = params else {
        return Ok(Vec::new());
    };
    let params = Members::parse_checked(params.get()).map_err(|_| OperationError::Unreadable)?;
    let Some(notifications) = params.get("notifications") else {
        return Ok(Vec::new());
    };
    let notifications =
        Members::parse_checked(notifications.get()).map_err(|_| OperationError::Unreadable)?;
    match notifications.get("resourceSubscriptions") {
        None => Ok(Vec::new()),
        Some(uris) if uris.get() == "null" => Ok(Vec::new()),
        Some(uris) => json::str_array(uris)
            .map(|uris| uris.into_iter().map(Cow::into_owned).collect())
            .map_err(|()| OperationError::Unreadable),
    }
}

fn targets_of(method: &str, params: Option<&RawValue>) -> Result<Vec<String>, OperationError> {
    Ok(match method {
        "tools/call" | "prompts/get" => vec![required_str(params, "name")?],
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            vec![required_str(params, "uri")?]
        }
        "subscriptions/listen" => listened_uris(params)?,
        _ => Vec::new(),
    })
}

/// The operation of one message (raw JSON text already accepted by
/// [`json::is_clean`]); `None` for a message without `method`.
fn operation_of(message: &RawValue) -> Result<Option<Operation>, OperationError> {
    // Only objects are messages: `Members` refuses any other value.
    let message = Members::parse_checked(message.get()).map_err(|_| OperationError::Unreadable)?;
    let Some(method) = message.get("method") else {
        return Ok(None);
    };
    let method = json::as_str(method).map_err(|()| OperationError::Unreadable)?;
    let targets = targets_of(&method, message.get("params"))?;
    Ok(Some(Operation::new(method, targets)))
}

/// The operations in a JSON-RPC body (one message or a batch), read
/// strictly. See the module documentation for what is
/// [`Unreadable`](OperationError::Unreadable).
///
/// The body is checked once by [`json::is_clean`] (repeated names, lone
/// surrogates, number range, depth) and then read level by level as raw
/// members: no tree of values is built, only the members that name the
/// operation are decoded.
pub(crate) fn read_operations(body: &[u8]) -> Result<Vec<Operation>, OperationError> {
    let text = std::str::from_utf8(body).map_err(|_| OperationError::Unreadable)?;
    // JSON whitespace (RFC 8259 section 2) before the value; the strict
    // check looks at the value's first byte.
    let text = text.trim_start_matches([' ', '\t', '\n', '\r']);
    let batch = match text.as_bytes().first() {
        Some(b'{') => false,
        Some(b'[') => true,
        _ => return Err(OperationError::Unreadable),
    };
    // No repeated name at any depth, no lone surrogate, numbers in range,
    // depth within the recursion limit, nothing after the value: after
    // this, every member read below is exactly what every JSON reader sees.
    if json::is_clean(text) != Ok(true) {
        return Err(OperationError::Unreadable);
    }
    let messages: Vec<&RawValue> = if batch {
        serde_json::from_str(text).map_err(|_| OperationError::Unreadable)?
    } else {
        vec![serde_json::from_str(text).map_err(|_| OperationError::Unreadable)?]
    };
    let mut ops = Vec::with_capacity(messages.len());
    for message in messages {
        if let Some(op) = operation_of(message)? {
            ops.push(op);
        }
    }
    Ok(ops)
}

/// The name `Mcp-Name` mirrors for `op`: the tool or prompt name or the
/// resource URI of a call that names exactly one thing.
fn header_name(op: &Operation) -> Option<&str> {
    match op.method() {
        "subscriptions/listen" => None,
        _ => op.name(),
    }
}

/// Checks `Mcp-Method` / `Mcp-Name` against the body's operations.
pub(crate) fn check_headers(
    headers: &http::HeaderMap,
    ops: &[Operation],
) -> Result<(), OperationError> {
    let method = single_header(headers, "mcp-method")?;
    let name = single_header(headers, "mcp-name")?;
    if method.is_none() && name.is_none() {
        return Ok(());
    }
    // The headers describe one message; a batch cannot carry them truthfully.
    let [op] = ops else {
        return Err(OperationError::HeaderMismatch);
    };
    if let Some(m) = method
        && m != op.method()
    {
        return Err(OperationError::HeaderMismatch);
    }
    if let Some(raw) = name {
        let decoded = decode_header_value(raw).ok_or(OperationError::HeaderMismatch)?;
        if header_name(op) != Some(decoded.as_str()) {
            return Err(OperationError::HeaderMismatch);
        }
    }
    Ok(())
}

fn single_header<'a>(
    headers: &'a http::HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, OperationError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OperationError::HeaderMismatch);
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| OperationError::HeaderMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn op(m: &str, t: Option<&str>) -> Operation {
        Operation::new(m, t)
    }

    fn unreadable(body: &[u8]) {
        assert_eq!(
            read_operations(body),
            Err(OperationError::Unreadable),
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    #[test]
    fn reads_single_messages_and_batches() {
        let single = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note","arguments":{}}}"#;
        assert_eq!(
            read_operations(single).unwrap(),
            [op("tools/call", Some("add_note"))]
        );
        let batch = br#" [{"jsonrpc":"2.0","id":1,"method":"tools/list"},
            {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"notes://1"}},
            {"jsonrpc":"2.0","id":3,"result":{}}]"#;
        assert_eq!(
            read_operations(batch).unwrap(),
            [
                op("tools/list", None),
                op("resources/read", Some("notes://1"))
            ]
        );
        let escaped = br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"\u006eame":"add_\u006eote"}}"#;
        assert_eq!(
            read_operations(escaped).unwrap(),
            [op("tools/call", Some("add_note"))]
        );
        assert_eq!(read_operations(b"[]").unwrap(), []);
    }

    // Issue 12: with `serde_json::Value` the last duplicate won, while
    // another reader (or rmcp tomorrow) may dispatch the first.
    #[test]
    fn duplicate_members_anywhere_are_unreadable() {
        unreadable(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"add_note"}}"#);
        unreadable(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"add_note"}}"#);
        unreadable(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"},"params":{"name":"add_note"}}"#);
        unreadable(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"notes://shared/1","\u0075ri":"notes://private/1"}}"#);
        unreadable(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{"a":1,"a":2}}}"#);
        unreadable(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"id":3,"method":"tools/list"}]"#);
    }

    #[test]
    fn malformed_bodies_are_unreadable() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}{}}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        for body in [
            &b"not json"[..],
            b"",
            b"   ",
            b"1",
            b"\"tools/call\"",
            b"null",
            b"{\"method\":\"tools/list\"",
            b"{\"method\":\"tools/list\"} trailing",
            b"\xef\xbb\xbf{\"method\":\"tools/list\"}",
            b"{\"method\":\"tools/list\",\"x\":\"\xff\"}",
            // RFC 8259 section 8.2: a lone surrogate is no character.
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note\ud800"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"n":1e999}}"#,
            deep.as_bytes(),
            // Non-object batch elements and unusable targets.
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},1]"#,
            br#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":null}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":"notes://private/1"}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["notes://shared/1",7]}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":[]}}"#,
            // Read level by level without a tree (issue 13): the same
            // refusals as a strict tree reader at every level.
            br#"{"jsonrpc":"2.0","id":1,"method":null}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":["tools/call"]}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["whoami"]}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":null}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":null}}"#,
            br#"[["tools/call",{"name":"add_note"}]]"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}] []"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}{"method":"tools/call"}"#,
        ] {
            unreadable(body);
        }
    }

    // MCP 2026-07-28: `subscriptions/listen` carries its resource URIs in
    // `params.notifications.resourceSubscriptions`.
    #[test]
    fn subscriptions_listen_targets_every_uri() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"notifications":{"toolsListChanged":true,"resourceSubscriptions":["notes://shared/1","notes://private/2"]}}}"#;
        let ops = read_operations(body).unwrap();
        assert_eq!(
            ops,
            [Operation::new(
                "subscriptions/listen",
                ["notes://shared/1", "notes://private/2"]
            )]
        );
        let none = br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true}}}"#;
        assert_eq!(
            read_operations(none).unwrap(),
            [op("subscriptions/listen", None)]
        );
        let null = br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":null}}}"#;
        assert_eq!(
            read_operations(null).unwrap(),
            [op("subscriptions/listen", None)]
        );
        // `Mcp-Name` names one thing; a listen request has none to mirror.
        let mut h = http::HeaderMap::new();
        h.insert(
            "mcp-method",
            HeaderValue::from_static("subscriptions/listen"),
        );
        assert!(check_headers(&h, &ops).is_ok());
        h.insert("mcp-name", HeaderValue::from_static("notes://shared/1"));
        assert_eq!(check_headers(&h, &ops), Err(OperationError::HeaderMismatch));
    }

    #[test]
    fn headers_must_agree_with_the_body() {
        let ops = [op("tools/call", Some("add_note"))];
        let mut h = http::HeaderMap::new();
        assert!(check_headers(&h, &ops).is_ok());
        h.insert("mcp-method", HeaderValue::from_static("tools/call"));
        h.insert("mcp-name", HeaderValue::from_static("add_note"));
        assert!(check_headers(&h, &ops).is_ok());
        h.insert("mcp-name", HeaderValue::from_static("whoami"));
        assert_eq!(check_headers(&h, &ops), Err(OperationError::HeaderMismatch));
        // Base64 sentinel form (SEP-2243).
        let enc = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("add_note")
        );
        h.insert("mcp-name", HeaderValue::from_str(&enc).unwrap());
        assert!(check_headers(&h, &ops).is_ok());
        h.insert("mcp-method", HeaderValue::from_static("tools/list"));
        assert_eq!(check_headers(&h, &ops), Err(OperationError::HeaderMismatch));
        // Headers with a batch.
        let two = [op("tools/list", None), op("tools/list", None)];
        assert_eq!(check_headers(&h, &two), Err(OperationError::HeaderMismatch));
    }
}
