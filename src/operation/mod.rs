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

mod scan;

use scan::{Facts, List, Shape, Text, scan};

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

/// A target that must be a string: anything else is unreadable (rmcp would
/// not dispatch the call, but we do not guess).
fn required(params: Shape, target: Text<'_>) -> Result<String, OperationError> {
    match (params, target) {
        (Shape::Object, Text::Str(s)) => Ok(s.into_owned()),
        _ => Err(OperationError::Unreadable),
    }
}

/// The resource URIs a `subscriptions/listen` request subscribes to
/// (`params.notifications.resourceSubscriptions`, MCP 2026-07-28).
fn listened_uris(
    params: Shape,
    notifications: Shape,
    subscriptions: List<'_>,
) -> Result<Vec<String>, OperationError> {
    match (params, notifications, subscriptions) {
        (Shape::Absent, ..) | (Shape::Object, Shape::Absent, _) => Ok(Vec::new()),
        (Shape::Object, Shape::Object, List::Absent | List::Null) => Ok(Vec::new()),
        (Shape::Object, Shape::Object, List::Strs(uris)) => {
            Ok(uris.into_iter().map(Cow::into_owned).collect())
        }
        _ => Err(OperationError::Unreadable),
    }
}

/// The operation of one message; `None` for a message without `method`.
fn operation_of(facts: Facts<'_>) -> Result<Option<Operation>, OperationError> {
    let Facts {
        object,
        method,
        params,
        name,
        uri,
        notifications,
        subscriptions,
    } = facts;
    if !object {
        return Err(OperationError::Unreadable);
    }
    let method = match method {
        Text::Absent => return Ok(None),
        Text::Other => return Err(OperationError::Unreadable),
        Text::Str(method) => method.into_owned(),
    };
    let targets = match method.as_str() {
        "tools/call" | "prompts/get" => vec![required(params, name)?],
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            vec![required(params, uri)?]
        }
        "subscriptions/listen" => listened_uris(params, notifications, subscriptions)?,
        _ => Vec::new(),
    };
    Ok(Some(Operation::new(method, targets)))
}

/// The operations in a JSON-RPC body (one message or a batch), read
/// strictly. See the module documentation for what is
/// [`Unreadable`](OperationError::Unreadable).
///
/// One pass ([`scan`]) checks the whole body as strictly as
/// [`crate::json::is_clean`] and keeps only the members that name each
/// message's operation: no tree of values is built.
pub(crate) fn read_operations(body: &[u8]) -> Result<Vec<Operation>, OperationError> {
    let text = std::str::from_utf8(body).map_err(|_| OperationError::Unreadable)?;
    // JSON whitespace (RFC 8259 section 2) before the value; the strict
    // check looks at the value's first byte.
    let text = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !matches!(text.as_bytes().first(), Some(b'{' | b'[')) {
        return Err(OperationError::Unreadable);
    }
    let messages = scan(text).ok_or(OperationError::Unreadable)?;
    let mut ops = Vec::with_capacity(messages.len());
    for facts in messages {
        if let Some(op) = operation_of(facts)? {
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

/// Which of `Mcp-Method` and `Mcp-Name` a request carries (each once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Present {
    /// `Mcp-Method`.
    pub(crate) method: bool,
    /// `Mcp-Name`.
    pub(crate) name: bool,
}

/// Checks `Mcp-Method` / `Mcp-Name` against the body's operations; which
/// of them the request carries, so that the caller does not look again.
pub(crate) fn check_headers(
    headers: &http::HeaderMap,
    ops: &[Operation],
) -> Result<Present, OperationError> {
    let method = single_header(headers, &METHOD_HEADER)?;
    let name = single_header(headers, &NAME_HEADER)?;
    let present = Present {
        method: method.is_some(),
        name: name.is_some(),
    };
    if method.is_none() && name.is_none() {
        return Ok(present);
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
    Ok(present)
}

/// `Mcp-Method` and `Mcp-Name` (constants: a `&str` name is parsed on
/// every lookup). The layer's header rules use these too.
pub(crate) const METHOD_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-method");
pub(crate) const NAME_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-name");

fn single_header<'a>(
    headers: &'a http::HeaderMap,
    name: &http::HeaderName,
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
        // Values of every JSON type elsewhere are checked, not kept.
        let typed = br#"{"jsonrpc":"2.0","id":-3,"method":"tools/call","params":{"name":"add_note","arguments":{"b":true,"n":-1,"u":2,"f":1.5,"z":null,"a":[1,"x",{"k":false}]},"_meta":{"progressToken":0.25}}}"#;
        assert_eq!(
            read_operations(typed).unwrap(),
            [op("tools/call", Some("add_note"))]
        );
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
            // Members of the wrong type, whatever the type.
            br#"{"jsonrpc":"2.0","id":1,"method":true}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":-1}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":1.5}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":{"name":"tools/call"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":true}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"x":"add_note"}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":2.5}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":true}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[false]}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":{"uri":"notes://1"}}}}"#,
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

    /// The reader before issue 13's single pass, kept as the reference the
    /// single pass must agree with: the strict check, then a tree of values.
    fn tree_reader(body: &[u8]) -> Result<Vec<Operation>, OperationError> {
        use serde_json::Value;
        let bad = OperationError::Unreadable;
        let text = std::str::from_utf8(body).map_err(|_| bad)?;
        let text = text.trim_start_matches([' ', '\t', '\n', '\r']);
        if !matches!(text.as_bytes().first(), Some(b'{' | b'['))
            || crate::json::is_clean(text) != Ok(true)
        {
            return Err(bad);
        }
        let value: Value = serde_json::from_str(text).map_err(|_| bad)?;
        let messages: Vec<&Value> = match &value {
            Value::Array(batch) => batch.iter().collect(),
            message => vec![message],
        };
        let required = |params: Option<&Value>, key: &str| {
            params
                .and_then(|p| p.as_object())
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(bad)
        };
        let mut ops = Vec::new();
        for message in messages {
            let message = message.as_object().ok_or(bad)?;
            let Some(method) = message.get("method") else {
                continue;
            };
            let method = method.as_str().ok_or(bad)?;
            let params = message.get("params");
            let targets = match method {
                "tools/call" | "prompts/get" => vec![required(params, "name")?],
                "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                    vec![required(params, "uri")?]
                }
                "subscriptions/listen" => match params {
                    None => Vec::new(),
                    Some(p) => {
                        let p = p.as_object().ok_or(bad)?;
                        match p.get("notifications") {
                            None => Vec::new(),
                            Some(n) => match n.as_object().ok_or(bad)?.get("resourceSubscriptions")
                            {
                                None | Some(Value::Null) => Vec::new(),
                                Some(Value::Array(uris)) => uris
                                    .iter()
                                    .map(|u| u.as_str().map(str::to_owned).ok_or(bad))
                                    .collect::<Result<_, _>>()?,
                                Some(_) => return Err(bad),
                            },
                        }
                    }
                },
                _ => Vec::new(),
            };
            ops.push(Operation::new(method, targets));
        }
        Ok(ops)
    }

    /// JSON text shaped like JSON-RPC messages: the member names the reader
    /// looks for (some escaped, some repeated), every kind of value, nesting.
    fn json_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec![
            "method",
            "params",
            "name",
            "uri",
            "notifications",
            "resourceSubscriptions",
            "id",
            "jsonrpc",
            "arguments",
            "_meta",
            "\\u006eame",
            "meth\\u006fd",
            "io.modelcontextprotocol/x",
        ]);
        let leaf = prop::sample::select(vec![
            "\"tools/call\"",
            "\"prompts/get\"",
            "\"resources/read\"",
            "\"subscriptions/listen\"",
            "\"resources/subscribe\"",
            "\"tools/list\"",
            "\"whoami\"",
            "\"notes://shared/1\"",
            "\"a\\u00e9\"",
            "\"\\ud800\"",
            "1",
            "-2.5",
            "1e999",
            "null",
            "true",
            "\"\"",
        ])
        .prop_map(str::to_owned);
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((name.clone(), inner), 0..6).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(n, v)| format!("\"{n}\":{v}"))
                        .collect();
                    format!("{{{}}}", members.join(" , "))
                }),
            ]
        })
    }

    /// JSON-RPC messages (alone or in a batch) whose `method`, `params`,
    /// targets and subscriptions take every shape the reader tells apart.
    fn message_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let pick = |items: &'static [&'static str]| {
            prop::sample::select(items.to_vec()).prop_map(str::to_owned)
        };
        let method = pick(&[
            "\"tools/call\"",
            "\"prompts/get\"",
            "\"resources/read\"",
            "\"resources/subscribe\"",
            "\"resources/unsubscribe\"",
            "\"subscriptions/listen\"",
            "\"tools/list\"",
            "\"tools\\/call\"",
            "null",
            "5",
            "[\"tools/call\"]",
            "{}",
        ]);
        let target = pick(&[
            "\"whoami\"",
            "\"notes://shared/1\"",
            "\"add_\\u006eote\"",
            "null",
            "7",
            "{}",
            "[\"x\"]",
        ]);
        let subs = pick(&[
            "null",
            "[]",
            "[\"notes://1\",\"notes://2\"]",
            "[\"a\",7]",
            "[null]",
            "\"notes://1\"",
            "{}",
            "[[\"a\"]]",
        ]);
        let member = |name: &'static str, value: BoxedStrategy<String>| {
            prop::option::of(value).prop_map(move |v| v.map(|v| format!("\"{name}\":{v}")))
        };
        let notifications = prop_oneof![
            (
                member("toolsListChanged", Just("true".to_owned()).boxed()),
                member("resourceSubscriptions", subs.boxed())
            )
                .prop_map(|(a, b)| format!(
                    "{{{}}}",
                    [a, b].into_iter().flatten().collect::<Vec<_>>().join(",")
                )),
            pick(&["null", "[]", "\"x\""]),
        ];
        let params = prop_oneof![
            4 => (member("name", target.clone().boxed()), member("uri", target.boxed()), member("notifications", notifications.boxed()), member("arguments", json_like().boxed()))
                .prop_map(|(a, b, c, d)| format!("{{{}}}", [d, a, b, c].into_iter().flatten().collect::<Vec<_>>().join(","))),
            1 => pick(&["null", "\"whoami\"", "[]", "3"]),
        ];
        let message = (
            member("jsonrpc", Just("\"2.0\"".to_owned()).boxed()),
            member("method", method.boxed()),
            member("params", params.boxed()),
            member("id", pick(&["1", "\"a\""]).boxed()),
        )
            .prop_map(|(a, b, c, d)| {
                format!(
                    "{{{}}}",
                    [a, d, b, c]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(",")
                )
            });
        prop_oneof![
            3 => message.clone(),
            1 => prop::collection::vec(prop_oneof![4 => message, 1 => pick(&["1", "[]", "null"])], 0..4).prop_map(|m| format!("[{}]", m.join(","))),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// Issue 13: the single pass reads every body exactly as the strict
        /// tree reader did (same operations, same refusals).
        #[test]
        fn single_pass_agrees_with_the_tree_reader(body in proptest::prop_oneof![json_like(), message_like()]) {
            proptest::prop_assert_eq!(read_operations(body.as_bytes()), tree_reader(body.as_bytes()), "{}", body);
        }

        /// The same on bodies cut or with one byte changed.
        #[test]
        fn single_pass_agrees_on_damaged_bodies(body in proptest::prop_oneof![json_like(), message_like()], at in 0usize..400, byte in proptest::prelude::any::<u8>(), cut in proptest::prelude::any::<bool>()) {
            let mut bytes = body.into_bytes();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                if cut { bytes.truncate(at) } else { bytes[at] = byte }
            }
            proptest::prop_assert_eq!(read_operations(&bytes), tree_reader(&bytes));
        }
    }
}
