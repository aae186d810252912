//! Learning which MCP operations a request carries, for per-operation scope
//! decisions before rmcp dispatches.
//!
//! The JSON-RPC body is authoritative: it is what rmcp dispatches. It is read
//! (with a size cap) for every protocol revision, batches included. When the
//! 2026-07-28 `Mcp-Method` / `Mcp-Name` headers are present they must agree
//! with the body, or the request is refused: a header that disagrees with the
//! body never gets a call through.

use base64::Engine as _;
use serde_json::Value;

use crate::scope::Operation;

/// Why the operations of a request could not be determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperationError {
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

fn target_of(method: &str, params: Option<&Value>) -> Option<String> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        _ => return None,
    };
    params?.get(key)?.as_str().map(str::to_owned)
}

fn operation_of(message: &Value) -> Option<Operation> {
    let method = message.get("method")?.as_str()?;
    Some(Operation {
        method: method.to_owned(),
        target: target_of(method, message.get("params")),
    })
}

/// The operations in a JSON-RPC body. `None` when the body is not JSON (rmcp
/// answers it with a parse error and dispatches nothing).
pub(crate) fn operations_in(body: &[u8]) -> Option<Vec<Operation>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(match &value {
        Value::Array(batch) => batch.iter().filter_map(operation_of).collect(),
        message => operation_of(message).into_iter().collect(),
    })
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
        && m != op.method
    {
        return Err(OperationError::HeaderMismatch);
    }
    if let Some(raw) = name {
        let decoded = decode_header_value(raw).ok_or(OperationError::HeaderMismatch)?;
        if op.target.as_deref() != Some(decoded.as_str()) {
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
        Operation {
            method: m.into(),
            target: t.map(Into::into),
        }
    }

    #[test]
    fn reads_single_messages_and_batches() {
        let single = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note","arguments":{}}}"#;
        assert_eq!(
            operations_in(single).unwrap(),
            [op("tools/call", Some("add_note"))]
        );
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
            {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"notes://1"}},
            {"jsonrpc":"2.0","id":3,"result":{}}]"#;
        assert_eq!(
            operations_in(batch).unwrap(),
            [
                op("tools/list", None),
                op("resources/read", Some("notes://1"))
            ]
        );
        assert!(operations_in(b"not json").is_none());
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
