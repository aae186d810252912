//! Learning which MCP operations a request carries, for per-operation scope
//! decisions before rmcp dispatches.
//!
//! The JSON-RPC body is authoritative: it is what rmcp dispatches. It is read
//! (with a size cap) for every protocol revision, batches included, with the
//! crate's strict JSON reader: a body in which two readers could see
//! different operations is refused rather than guessed at. Refused, as
//! [`Unreadable`] (which says the rule the body broke):
//! - a body that is not UTF-8 or not JSON, or whose top level is neither an
//!   object nor an array of objects;
//! - an object, at any depth, that repeats a member name (`serde_json`, and so
//!   rmcp, keeps the last copy; another reader may keep the first);
//! - a lone UTF-16 surrogate in a `\u` escape, a number out of range, nesting
//!   deeper than `serde_json`'s recursion limit;
//! - a request whose method needs a target that is missing or not a string
//!   (`params.name` of `tools/call` and `prompts/get`, `params.uri` of
//!   `resources/read`, `resources/subscribe`, `resources/unsubscribe`, and
//!   of the SEP-2640 `resources/directory/read` and `skills/get`), a
//!   `subscriptions/listen` whose `params.notifications.resourceSubscriptions`
//!   is not an array of strings, a `tasks/get`, `tasks/update` or
//!   `tasks/cancel` (SEP-2663) whose `params.taskId` is not a string, a
//!   `completion/complete` whose `params.ref`
//!   is not a `ref/prompt` with a string `name` or a `ref/resource` with a
//!   string `uri`, a `method` that is not a string.
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

pub(crate) use scan::value_key;

use scan::{Facts, List, Shape, Text, scan};

use crate::scope::{COMPLETE, Completes, DIRECTORY_READ, Operation, SKILL_GET};

/// Why the operations of a request could not be determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperationError {
    /// `Mcp-Method`/`Mcp-Name` contradict the body, or are malformed.
    HeaderMismatch,
}

/// Which rule an unreadable body broke: what the JSON-RPC error of the
/// refusal says (each message is fixed ASCII, without quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Not UTF-8 (a compressed body, UTF-16).
    NotUtf8,
    /// JSON, but a bare value (a string, a number, `true`...), neither an
    /// object nor an array.
    NotAMessage,
    /// Its first character (after JSON whitespace) starts no JSON value (a
    /// byte order mark, plain text), or it is empty.
    NotJson,
    /// Not JSON (a syntax error, a lone surrogate, nesting too deep).
    Syntax,
    /// Ends before its JSON value does.
    Truncated,
    /// Something after the JSON value.
    Trailing,
    /// An object, at some depth, repeats a member name.
    RepeatedName,
    /// A number out of range.
    OutOfRange,
    /// A message is not an object, or its `method` is not a string.
    NotARequest,
    /// A request's target (`params.name`, `params.uri`,
    /// `resourceSubscriptions`, a completion's `params.ref`, a task's
    /// `params.taskId`) is missing or not a string.
    BadTarget,
    /// A `subscriptions/listen` names more than [`MAX_LISTENED_URIS`]
    /// resource URIs, or more than [`MAX_LISTENED_URI_BYTES`] bytes of them.
    TooManyUris,
    /// More JSON values than the reader's cap (the layer's
    /// `max_json_values`, [`DEFAULT_MAX_JSON_VALUES`]): answered 413, not as
    /// a JSON-RPC error.
    TooManyValues,
}

/// The most JSON values a body may hold by default (every element, member
/// value and the top-level value count one, an object five). rmcp parses a body into
/// `serde_json` values (through serde's buffered `Content`), about 200
/// bytes of memory a value at its peak: a 4 MiB body of two million `0`s
/// took a server from 25 MB to 450 MB for one call, and four such calls at
/// once to about 1 GB (found from outside). A hundred thousand values is
/// about 20 MB, and more than a tool's arguments hold (a vector of 1,536
/// floats, nine thousand rows of ten numbers, six thousand objects of ten
/// fields).
pub(crate) const DEFAULT_MAX_JSON_VALUES: usize = 100_000;

/// The most resource URIs one `subscriptions/listen` may name. rmcp 3.11
/// intersects the requested URIs with those the service accepts in time
/// quadratic in their number, on a runtime worker, before the answer's
/// first event (found from outside: 150,000 URIs in a 3.6 MB body cost 30 s
/// of CPU, and three such requests stalled every other request, the
/// unauthenticated metadata included, for over 30 s). A thousand costs
/// rmcp about a millisecond and is far beyond what a client subscribes to
/// at once.
pub(crate) const MAX_LISTENED_URIS: usize = 1_000;

/// The most bytes of resource URIs one `subscriptions/listen` may name,
/// all together: rmcp keeps them for as long as the stream is open (found
/// from outside: 1,000 URIs of 4,000 bytes held 20 MB per open listen).
/// 128 bytes a URI on average at the URI limit.
pub(crate) const MAX_LISTENED_URI_BYTES: usize = 128 * 1024;

impl Unreadable {
    /// The JSON-RPC 2.0 error code: parse error (-32700) for a body that is
    /// not strict JSON, invalid request (-32600) for one that is JSON but
    /// not a request, invalid params (-32602) for a missing target.
    pub(crate) fn jsonrpc_code(self) -> i32 {
        match self {
            Self::NotARequest | Self::NotAMessage => -32600,
            Self::BadTarget | Self::TooManyUris => -32602,
            Self::TooManyValues => -32600,
            _ => -32700,
        }
    }

    /// The JSON-RPC error message.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::NotUtf8 => {
                "Parse error: the request body is not UTF-8 (compressed and UTF-16 bodies are not accepted)"
            }
            Self::NotAMessage => {
                "Invalid Request: the request body is a bare JSON value, not a JSON object or array"
            }
            Self::NotJson => {
                "Parse error: the request body is not JSON (empty, or text before its value: nothing may come before it, a byte order mark included)"
            }
            Self::Syntax => {
                "Parse error: the request body is not valid JSON (a syntax error, a lone surrogate escape, or nesting too deep)"
            }
            Self::Truncated => "Parse error: the request body ends before its JSON value does",
            Self::Trailing => "Parse error: the request body has more after its JSON value",
            Self::RepeatedName => {
                "Parse error: an object in the request body repeats a member name (refused: readers disagree on which copy counts)"
            }
            Self::OutOfRange => "Parse error: the request body holds a number out of range",
            Self::NotARequest => {
                "Invalid Request: a message is not a JSON object, or its method is not a string"
            }
            Self::BadTarget => {
                "Invalid params: the target of a request (params.name, params.uri, resourceSubscriptions, a completion's params.ref or params.taskId) is missing or not a string"
            }
            Self::TooManyUris => {
                "Invalid params: a subscriptions/listen names more than 1000 resource URIs, or more than 131072 bytes of them, in resourceSubscriptions"
            }
            Self::TooManyValues => {
                "Invalid Request: the request body holds more JSON values than this server reads"
            }
        }
    }
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
fn required(params: Shape, target: Text<'_>) -> Result<String, Unreadable> {
    match (params, target) {
        (Shape::Object, Text::Str(s)) => Ok(s.into_owned()),
        _ => Err(Unreadable::BadTarget),
    }
}

/// The resource URIs a `subscriptions/listen` request subscribes to
/// (`params.notifications.resourceSubscriptions`, MCP 2026-07-28).
fn listened_uris(
    params: Shape,
    notifications: Shape,
    subscriptions: List<'_>,
) -> Result<Vec<String>, Unreadable> {
    match (params, notifications, subscriptions) {
        (Shape::Absent, ..) | (Shape::Object, Shape::Absent, _) => Ok(Vec::new()),
        (Shape::Object, Shape::Object, List::Absent | List::Null) => Ok(Vec::new()),
        (Shape::Object, Shape::Object, List::Strs(uris))
            if uris.len() > MAX_LISTENED_URIS
                || uris.iter().map(|u| u.len()).sum::<usize>() > MAX_LISTENED_URI_BYTES =>
        {
            Err(Unreadable::TooManyUris)
        }
        (Shape::Object, Shape::Object, List::Strs(uris)) => {
            Ok(uris.into_iter().map(Cow::into_owned).collect())
        }
        _ => Err(Unreadable::BadTarget),
    }
}

/// What a `completion/complete` completes (`params.ref`: `ref/prompt` with
/// a string `name`, or `ref/resource` with a string `uri`). Anything else
/// is unreadable: rmcp would not dispatch it, and we do not guess.
fn completed(
    params: Shape,
    reference: Shape,
    kind: Text<'_>,
    name: Text<'_>,
    uri: Text<'_>,
) -> Result<(Completes, String), Unreadable> {
    if params != Shape::Object || reference != Shape::Object {
        return Err(Unreadable::BadTarget);
    }
    let Text::Str(kind) = kind else {
        return Err(Unreadable::BadTarget);
    };
    match kind.as_ref() {
        "ref/prompt" => Ok((Completes::Prompt, required(Shape::Object, name)?)),
        "ref/resource" => Ok((Completes::Resource, required(Shape::Object, uri)?)),
        _ => Err(Unreadable::BadTarget),
    }
}

/// The operation of one message; `None` for a message without `method`.
fn operation_of(facts: Facts<'_>) -> Result<Option<Operation>, Unreadable> {
    let Facts {
        object,
        id: _,
        method,
        params,
        name,
        uri,
        notifications,
        subscriptions,
        reference,
        ref_type,
        ref_name,
        ref_uri,
        task_id,
        declares_tasks: _,
        declares_tasks_for_session: _,
    } = facts;
    if !object {
        return Err(Unreadable::NotARequest);
    }
    let method = match method {
        Text::Absent => return Ok(None),
        Text::Other => return Err(Unreadable::NotARequest),
        Text::Str(method) => method.into_owned(),
    };
    let targets = match method.as_str() {
        "tools/call" | "prompts/get" => vec![required(params, name)?],
        "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | DIRECTORY_READ
        | SKILL_GET => vec![required(params, uri)?],
        "subscriptions/listen" => listened_uris(params, notifications, subscriptions)?,
        // SEP-2663 (rmcp 3.11): the task a request acts on. No scope rule
        // names tasks; it is what `Mcp-Name` mirrors for these methods.
        "tasks/get" | "tasks/update" | "tasks/cancel" => vec![required(params, task_id)?],
        COMPLETE => {
            let (completes, target) = completed(params, reference, ref_type, ref_name, ref_uri)?;
            return Ok(Some(Operation::completion(completes, target)));
        }
        _ => Vec::new(),
    };
    Ok(Some(Operation::new(method, targets)))
}

/// The operations in a JSON-RPC body (one message or a batch), read
/// strictly. See the module documentation for what is [`Unreadable`].
///
/// One pass ([`scan`]) checks the whole body as strictly as
/// [`crate::json::is_clean`] and keeps only the members that name each
/// message's operation: no tree of values is built.
#[cfg(test)]
pub(crate) fn read_operations(body: &[u8]) -> Result<Vec<Operation>, Unreadable> {
    read_requests(body, false, DEFAULT_MAX_JSON_VALUES).map(|read| read.ops)
}

/// `why` a body is no JSON, or [`Unreadable::NotUtf8`] when it holds a NUL
/// byte: JSON text never does (RFC 8259: a control character is escaped in
/// a string and is no token outside one), UTF-16 text of ASCII does in
/// every other byte. Such a body is told it is not UTF-8, as a UTF-16 body
/// with a byte-order mark is (found from outside: without the mark it was
/// told of a syntax error). Looked at only for a refused body.
fn utf16_told(why: Unreadable, body: &[u8]) -> Unreadable {
    let syntax = matches!(
        why,
        Unreadable::NotJson | Unreadable::Syntax | Unreadable::Truncated | Unreadable::Trailing
    );
    if syntax && memchr::memchr(0, body).is_some() {
        Unreadable::NotUtf8
    } else {
        why
    }
}

/// What [`read_requests`] reads of a body, in one pass.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    /// The operations of its requests, in the body's order.
    pub(crate) ops: Vec<Operation>,
    /// When asked for, the ids of its requests (its messages with a
    /// `method`), each spelled as rmcp compares the ids of a session's
    /// requests (`s:` and a string's value, `n:` and a number's integer
    /// value when it has one), in the body's order.
    pub(crate) ids: Vec<Box<str>>,
    /// Whether a message declares the tasks extension (SEP-2663) in the
    /// client capabilities of its `params._meta` (MCP 2026-07-28): without
    /// that declaration rmcp lets no handler answer a stateless `tools/call`
    /// with a task.
    pub(crate) declares_tasks: bool,
    /// Whether an `initialize` declares the tasks extension in its
    /// `params.capabilities.extensions`: what rmcp reads, for a legacy
    /// session, for each later call whose `_meta` declares no client
    /// capabilities.
    pub(crate) session_declares_tasks: bool,
}

/// [`read_operations`], and with `ids` the ids of the body's requests (see
/// [`Requests`]); read in the same pass, at most `max_values` JSON values
/// ([`Unreadable::TooManyValues`] past them).
pub(crate) fn read_requests(
    body: &[u8],
    ids: bool,
    max_values: usize,
) -> Result<Requests, Unreadable> {
    let text = std::str::from_utf8(body).map_err(|_| Unreadable::NotUtf8)?;
    // JSON whitespace (RFC 8259 section 2) before the value; the strict
    // check looks at the value's first byte.
    let text = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !matches!(text.as_bytes().first(), Some(b'{' | b'[')) {
        // JSON-RPC 2.0 section 5.1: a body that is no JSON at all is a
        // parse error (-32700), one that is JSON but no message an invalid
        // request (-32600). Found from outside: every body not opening with
        // `{` or `[` got -32600, an empty one and plain text too.
        return Err(
            if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
                Unreadable::NotAMessage
            } else {
                utf16_told(Unreadable::NotJson, body)
            },
        );
    }
    let messages = scan(text, max_values).map_err(|why| utf16_told(why, body))?;
    let mut ops = Vec::with_capacity(messages.len());
    let mut keys = Vec::new();
    let mut declares_tasks = false;
    let mut session_declares_tasks = false;
    for facts in messages {
        declares_tasks |= facts.declares_tasks;
        session_declares_tasks |= facts.declares_tasks_for_session
            && matches!(&facts.method, Text::Str(m) if m == "initialize");
        // A request is a message with a `method` (a string, or the body is
        // refused below).
        let key = (ids && matches!(facts.method, Text::Str(_)))
            .then(|| facts.id.key())
            .flatten();
        if let Some(op) = operation_of(facts)? {
            ops.push(op);
        }
        keys.extend(key);
    }
    Ok(Requests {
        ops,
        ids: keys,
        declares_tasks,
        session_declares_tasks,
    })
}

/// The value `Mcp-Name` mirrors for `op` (the tool or prompt name, the
/// resource URI, the task id), where its method has one: the `Mcp-Name`
/// of such a request is required (MCP 2026-07-28 names
/// tools/call, resources/read and prompts/get; rmcp 3.11 also requires it
/// for resources/subscribe and resources/unsubscribe, and the task id of
/// tasks/get, tasks/update and tasks/cancel, SEP-2663).
pub(crate) fn header_name(op: &Operation) -> Option<&str> {
    match op.method() {
        // rmcp reads none for the SEP-2640 methods, a listen or a completion.
        "subscriptions/listen" | COMPLETE | DIRECTORY_READ | SKILL_GET => None,
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
    // A method that names nothing (a list, a listen, a ping) has no
    // `Mcp-Name` to check: the header is ignored there, as rmcp ignores it
    // (found from outside: the layer refused a client that mirrors
    // `params.uri` on every method holding one with -32020, and only when
    // per-operation rules made the layer read the body). The layer reads
    // no rule from it.
    if let (Some(raw), Some(expected)) = (name, header_name(op)) {
        let decoded = decode_header_value(raw).ok_or(OperationError::HeaderMismatch)?;
        if expected != decoded.as_str() {
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

    /// The ids of a body's requests as the layer read them before they came
    /// from the strict scan: a `serde_json::Value` of the whole body, then
    /// each message with a string `method` and a string or number `id`.
    /// The oracle of `request_ids_are_read_as_a_parsed_value_reads_them`.
    fn ids_from_a_value(body: &[u8]) -> Vec<Box<str>> {
        fn id_of(message: &serde_json::Value) -> Option<Box<str>> {
            let object = message.as_object()?;
            object.get("method")?.as_str()?;
            match object.get("id")? {
                serde_json::Value::String(s) => Some(format!("s:{s}").into()),
                // The spelling of a number is `number_key`'s (its rule is
                // `request_ids_as_rmcp_compares_them`'s); what is compared
                // here is the number each reading hands it.
                serde_json::Value::Number(n) => Some(scan::number_key(n)),
                _ => None,
            }
        }
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Array(messages)) => messages.iter().filter_map(id_of).collect(),
            Ok(message) => id_of(&message).into_iter().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The oracle of `a_declaration_of_tasks_is_read_where_rmcp_reads_it`:
    /// a `serde_json::Value` of the whole body, then each message's
    /// `params._meta`, its client capabilities and their `extensions`
    /// looked up as rmcp does (`ClientCapabilities::supports_tasks`).
    fn declares_tasks_in_a_value(body: &[u8]) -> bool {
        fn declares(message: &serde_json::Value) -> bool {
            message
                .pointer("/params/_meta")
                .and_then(|meta| meta.get("io.modelcontextprotocol/clientCapabilities"))
                .and_then(|caps| caps.get("extensions"))
                .and_then(serde_json::Value::as_object)
                .is_some_and(|e| e.contains_key("io.modelcontextprotocol/tasks"))
        }
        any_message(body, declares)
    }

    /// Whether `test` holds for a message of `body` (one, or an element of
    /// a batch), read as a `serde_json::Value`.
    fn any_message(body: &[u8], test: fn(&serde_json::Value) -> bool) -> bool {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Array(messages)) => messages.iter().any(test),
            Ok(message) => test(&message),
            Err(_) => false,
        }
    }

    /// The oracle for a session's declaration: an `initialize` message
    /// whose `params.capabilities` (the client capabilities rmcp keeps as
    /// its peer's) hold the tasks extension among their `extensions`.
    fn session_declares_tasks_in_a_value(body: &[u8]) -> bool {
        fn declares(message: &serde_json::Value) -> bool {
            message.get("method").and_then(serde_json::Value::as_str) == Some("initialize")
                && message
                    .pointer("/params/capabilities/extensions")
                    .and_then(serde_json::Value::as_object)
                    .is_some_and(|e| e.contains_key("io.modelcontextprotocol/tasks"))
        }
        any_message(body, declares)
    }

    #[test]
    fn a_declaration_of_tasks_for_a_session_is_read_from_initialize_only() {
        let read =
            |body: &str| read_requests(body.as_bytes(), false, DEFAULT_MAX_JSON_VALUES).unwrap();
        let message = |method: &str, params: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
        };
        let declaring = r#"{"capabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}"#;
        let init = read(&message("initialize", declaring));
        assert!(init.session_declares_tasks && !init.declares_tasks);
        assert!(
            read(&message(
                "initialize",
                &declaring.replace("extensions", "ext\\u0065nsions")
            ))
            .session_declares_tasks
        );
        // Another method's `capabilities`, or another place: nothing.
        let call = declaring.replacen('{', r#"{"name":"a","#, 1);
        assert!(!read(&message("tools/call", &call)).session_declares_tasks);
        assert!(
            !read(&message(
                "initialize",
                r#"{"capabilities":{"experimental":{"io.modelcontextprotocol/tasks":{}}}}"#
            ))
            .session_declares_tasks
        );
        assert!(
            !read(&message(
                "initialize",
                r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}"#
            ))
            .session_declares_tasks
        );
        assert!(
            read(&format!(
                "[{},{}]",
                message("tools/call", r#"{"name":"a"}"#),
                message("initialize", declaring)
            ))
            .session_declares_tasks
        );
    }

    #[test]
    fn a_declaration_of_tasks_is_read_from_params_meta_only() {
        let declares = |body: &str| {
            read_requests(body.as_bytes(), false, DEFAULT_MAX_JSON_VALUES)
                .unwrap()
                .declares_tasks
        };
        let caps = r#"{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}"#;
        let call = |meta: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","_meta":{meta}}}}}"#
            )
        };
        assert!(declares(&call(caps)));
        // rmcp decodes escapes in member names as any JSON reader does.
        assert!(declares(&call(&caps.replace("tasks", "t\\u0061sks"))));
        assert!(declares(&format!("[{},{}]", call("{}"), call(caps))));
        assert!(!declares(&call("{}")));
        assert!(!declares(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#
        ));
        // Anywhere else it declares nothing to rmcp.
        assert!(!declares(&call(&caps.replace("tasks", "tasks2"))));
        assert!(!declares(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","_meta":{caps},"params":{{"name":"a","arguments":{{"_meta":{caps}}}}}}}"#
        )));
        assert!(!declares(&call(
            r#"{"extensions":{"io.modelcontextprotocol/tasks":{}}}"#
        )));
    }

    fn ids(body: &str) -> Vec<Box<str>> {
        read_requests(body.as_bytes(), true, DEFAULT_MAX_JSON_VALUES)
            .unwrap()
            .ids
    }

    #[test]
    fn request_ids_as_rmcp_compares_them() {
        assert_eq!(ids(r#"{"id":5,"method":"x"}"#), vec![Box::from("n:5")]);
        assert_eq!(ids(r#"{"id":5.0,"method":"x"}"#), vec![Box::from("n:5")]);
        assert_eq!(ids(r#"{"id":"5","method":"x"}"#), vec![Box::from("s:5")]);
        // Numbers: by their integer value when they have one (below 9e15 for
        // a float), else as `serde_json` writes them.
        for (id, key) in [
            ("-5", "n:-5"),
            ("0.5e1", "n:5"),
            ("1e2", "n:100"),
            ("-0.0", "n:0"),
            ("5.5", "n:5.5"),
            ("1e15", "n:1000000000000000"),
            ("1e16", "n:1e+16"),
            ("18446744073709551615", "n:18446744073709551615"),
            ("-9223372036854775808", "n:-9223372036854775808"),
        ] {
            let body = format!(r#"{{"id":{id},"method":"x"}}"#);
            assert_eq!(ids(&body), vec![Box::from(key)], "{body}");
        }
        assert!(ids(r#"{"id":5,"result":{}}"#).is_empty());
        assert!(ids(r#"{"method":"notifications/x"}"#).is_empty());
        assert_eq!(
            ids(r#"[{"id":1,"method":"x"},{"id":"a","method":"y"},{"method":"z"}]"#),
            vec![Box::from("n:1"), Box::from("s:a")]
        );
        // Asked for nothing, nothing is spelled.
        let body = br#"{"id":5,"method":"x"}"#;
        assert!(
            read_requests(body, false, DEFAULT_MAX_JSON_VALUES)
                .unwrap()
                .ids
                .is_empty()
        );
    }

    /// Every id shape, in every place of a message and of a batch, is read
    /// by the one-pass scan exactly as a parsed `serde_json::Value` reads it
    /// (the ids a legacy session claims must be the ones rmcp routes
    /// answers by).
    #[test]
    fn request_ids_are_read_as_a_parsed_value_reads_them() {
        let ids_shapes = [
            "5",
            "0",
            "-0",
            "-5",
            "5.0",
            "5.5",
            "-5.0",
            "0.0",
            "-0.0",
            "1e2",
            "1E2",
            "1e-2",
            "2.5e0",
            "9007199254740993",
            "9007199254740993.0",
            "8999999999999999.0",
            "9000000000000000.0",
            "1e15",
            "9e15",
            "1e16",
            "1e300",
            "-1e300",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.1",
            "123456789.123456789",
            "\"5\"",
            "\"\"",
            "\"\\u0041\"",
            "\"\\\"\"",
            "\"\\ud83d\\ude00\"",
            "\"n:5\"",
            "\"s:5\"",
            "null",
            "true",
            "false",
            "{}",
            "[]",
            "{\"a\":1}",
            "[1]",
        ];
        let methods = [r#""method":"tools/list""#, r#""method":7"#, ""];
        for id in ids_shapes {
            for method in methods {
                for body in [
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{id}{}{method}}}"#,
                        if method.is_empty() { "" } else { "," }
                    ),
                    format!(
                        r#"{{{method}{}"id":{id}}}"#,
                        if method.is_empty() { "" } else { "," }
                    ),
                    format!(
                        r#"[{{"id":{id},"method":"a"}},{{"jsonrpc":"2.0"{}{method},"id":{id}}},{{"id":"x","method":"b"}}]"#,
                        if method.is_empty() { "" } else { "," }
                    ),
                ] {
                    let expected = ids_from_a_value(body.as_bytes());
                    match read_requests(body.as_bytes(), true, DEFAULT_MAX_JSON_VALUES) {
                        Ok(read) => assert_eq!(read.ids, expected, "{body}"),
                        // Refused bodies (a `method` that is not a string)
                        // are never claimed.
                        Err(_) => assert!(method == r#""method":7"#, "{body}"),
                    }
                }
            }
        }
    }
    use http::HeaderValue;

    fn op(m: &str, t: Option<&str>) -> Operation {
        Operation::new(m, t)
    }

    fn unreadable(body: &[u8]) {
        assert!(
            read_operations(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    // Each refusal names the rule the body broke, with the JSON-RPC code
    // that fits it.
    #[test]
    fn refusals_say_which_rule_the_body_broke() {
        let too_many = listen(MAX_LISTENED_URIS + 1);
        let cases: [(&[u8], Unreadable, i32); 25] = [
            (b"\x1f\x8b\x08\x00\xff", Unreadable::NotUtf8, -32700),
            (b"{\x00\"\x00", Unreadable::NotUtf8, -32700),
            (b"{\"method\":\"a\x00\"}", Unreadable::NotUtf8, -32700),
            (b"{\"a\":1}\x00", Unreadable::NotUtf8, -32700),
            ("\u{feff}{}".as_bytes(), Unreadable::NotJson, -32700),
            (b"", Unreadable::NotJson, -32700),
            (b" \r\n\t", Unreadable::NotJson, -32700),
            (b"hello", Unreadable::NotJson, -32700),
            (b"tru", Unreadable::NotJson, -32700),
            (b"\x00", Unreadable::NotUtf8, -32700),
            (b"1 2", Unreadable::NotJson, -32700),
            (b"\"tools/call\"", Unreadable::NotAMessage, -32600),
            (b" true ", Unreadable::NotAMessage, -32600),
            (b"-1.5e3", Unreadable::NotAMessage, -32600),
            (b"{\"method\":\"tools/list\"", Unreadable::Truncated, -32700),
            (
                b"{\"method\":\"tools/list\"} {}",
                Unreadable::Trailing,
                -32700,
            ),
            (b"{\"method\":tools/list}", Unreadable::Syntax, -32700),
            (
                br#"{"method":"a","method":"b"}"#,
                Unreadable::RepeatedName,
                -32700,
            ),
            (
                br#"{"params":{"n":1,"\u006e":2}}"#,
                Unreadable::RepeatedName,
                -32700,
            ),
            (br#"{"method":"a\ud800"}"#, Unreadable::Syntax, -32700),
            (br#"{"id":1e400}"#, Unreadable::OutOfRange, -32700),
            (
                br#"[{"method":"tools/list"},7]"#,
                Unreadable::NotARequest,
                -32600,
            ),
            (br#"{"method":7}"#, Unreadable::NotARequest, -32600),
            (
                br#"{"method":"tools/call","params":{}}"#,
                Unreadable::BadTarget,
                -32602,
            ),
            (too_many.as_bytes(), Unreadable::TooManyUris, -32602),
        ];
        for (body, why, code) in cases {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(read_operations(body), Err(why), "{shown}");
            assert_eq!(why.jsonrpc_code(), code, "{shown}");
            let message = why.message();
            assert!(
                message.is_ascii() && !message.contains(['"', '\\']),
                "{message}"
            );
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(read_operations(deep.as_bytes()), Err(Unreadable::Syntax));
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
        // SEP-2640 (rmcp 3.11): a directory read and a skill name a
        // resource by `params.uri`, which they must carry.
        for method in ["resources/directory/read", "skills/get"] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"uri":"x://d","cursor":"c"}}}}"#
            );
            assert_eq!(
                read_operations(body.as_bytes()).unwrap(),
                [op(method, Some("x://d"))]
            );
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{}}}}"#);
            assert_eq!(read_operations(body.as_bytes()), Err(Unreadable::BadTarget));
        }
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

    /// A `subscriptions/listen` naming `n` distinct resource URIs.
    fn listen(n: usize) -> String {
        let uris: Vec<String> = (0..n).map(|i| format!("\"notes://shared/{i}\"")).collect();
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{{"notifications":{{"resourceSubscriptions":[{}]}}}}}}"#,
            uris.join(",")
        )
    }

    // At most `MAX_LISTENED_URIS` URIs in one listen (found from outside:
    // rmcp's intersection of 150,000 took 30 s of CPU); the limit itself
    // is read.
    #[test]
    fn a_listen_names_at_most_the_limit_of_uris() {
        let ops = read_operations(listen(MAX_LISTENED_URIS).as_bytes()).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(
            read_operations(listen(MAX_LISTENED_URIS + 1).as_bytes()),
            Err(Unreadable::TooManyUris)
        );
        assert_eq!(
            read_operations(listen(50_000).as_bytes()),
            Err(Unreadable::TooManyUris)
        );
        // 150,000 (the finding's count) passes the value cap first.
        assert_eq!(
            read_operations(listen(150_000).as_bytes()),
            Err(Unreadable::TooManyValues)
        );
        // And at most `MAX_LISTENED_URI_BYTES` of them (found from outside:
        // 1,000 URIs of 4,000 bytes held 20 MB per open listen).
        let long = |n: usize, len: usize| {
            let uris: Vec<String> = (0..n)
                .map(|i| format!("\"{i:05}{}\"", "u".repeat(len - 5)))
                .collect();
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{{"notifications":{{"resourceSubscriptions":[{}]}}}}}}"#,
                uris.join(",")
            )
        };
        let at_limit = long(32, MAX_LISTENED_URI_BYTES / 32);
        assert_eq!(read_operations(at_limit.as_bytes()).unwrap().len(), 1);
        let over = long(32, MAX_LISTENED_URI_BYTES / 32 + 1);
        assert_eq!(
            read_operations(over.as_bytes()),
            Err(Unreadable::TooManyUris)
        );
        assert_eq!(
            read_operations(long(1, MAX_LISTENED_URI_BYTES + 1).as_bytes()),
            Err(Unreadable::TooManyUris)
        );
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
        // `Mcp-Name` names one thing; a listen request has none to mirror,
        // and one sent anyway is ignored (as rmcp ignores it), not refused.
        let mut h = http::HeaderMap::new();
        h.insert(
            "mcp-method",
            HeaderValue::from_static("subscriptions/listen"),
        );
        assert!(check_headers(&h, &ops).is_ok());
        h.insert("mcp-name", HeaderValue::from_static("notes://shared/1"));
        assert!(check_headers(&h, &ops).is_ok());
        h.insert(
            "mcp-name",
            HeaderValue::from_static("=?base64?not base64?="),
        );
        assert!(check_headers(&h, &ops).is_ok());
        // Still one value only: two are a mismatch wherever they are.
        h.append("mcp-name", HeaderValue::from_static("notes://shared/1"));
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
        // SEP-2663: `Mcp-Name` of a task request is its `taskId`.
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t-1"}}"#;
        let task = read_operations(body).unwrap();
        assert_eq!(task, [op("tasks/get", Some("t-1"))]);
        let mut t = http::HeaderMap::new();
        t.insert("mcp-method", HeaderValue::from_static("tasks/get"));
        t.insert("mcp-name", HeaderValue::from_static("t-1"));
        assert!(check_headers(&t, &task).is_ok());
        t.insert("mcp-name", HeaderValue::from_static("t-2"));
        assert_eq!(
            check_headers(&t, &task),
            Err(OperationError::HeaderMismatch)
        );
        assert_eq!(
            read_operations(br#"{"jsonrpc":"2.0","id":1,"method":"tasks/cancel","params":{}}"#),
            Err(Unreadable::BadTarget)
        );
        // Headers with a batch.
        let two = [op("tools/list", None), op("tools/list", None)];
        assert_eq!(check_headers(&h, &two), Err(OperationError::HeaderMismatch));
    }

    /// The reader before issue 13's single pass, kept as the reference the
    /// single pass must agree with: the strict check, then a tree of values.
    fn tree_reader(body: &[u8]) -> Result<Vec<Operation>, ()> {
        use serde_json::Value;
        let bad = ();
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
                "resources/read"
                | "resources/subscribe"
                | "resources/unsubscribe"
                | "resources/directory/read"
                | "skills/get" => vec![required(params, "uri")?],
                "tasks/get" | "tasks/update" | "tasks/cancel" => {
                    vec![required(params, "taskId")?]
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
            "\"initialize\"",
            "\"initi\\u0061lize\"",
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
        // `_meta`, spelled plainly or with an escape, declaring the tasks
        // extension or shaped nearly so.
        let meta = (
            pick(&["\"_meta\"", "\"\\u005fmeta\""]),
            prop_oneof![
                3 => pick(&[
                    r#"{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}"#,
                    r#"{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"a":{},"io.modelcontextprotocol\/tasks":null}}}"#,
                    r#"{"io.modelcontextprotocol\u002fclientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":[]}},"x":1}"#,
                    r#"{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{},"io.modelcontextprotocol/tasks":{}}}}"#,
                    r#"{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/task":{}}}}"#,
                    r#"{"io.modelcontextprotocol/clientCapabilities":{"extensions":["io.modelcontextprotocol/tasks"]}}"#,
                    r#"{"io.modelcontextprotocol/clientCapabilities":{"io.modelcontextprotocol/tasks":{}}}"#,
                    r#"{"extensions":{"io.modelcontextprotocol/tasks":{}}}"#,
                    r#"{"io.modelcontextprotocol/clientCapabilities":null}"#,
                    r#"{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}},"io.modelcontextprotocol/clientCapabilities":{}}"#,
                ]),
                1 => json_like(),
            ],
        )
            .prop_map(|(name, value)| format!("{name}:{value}"));
        // An `initialize`'s `capabilities`, declaring the tasks extension
        // for its session or shaped nearly so.
        let capabilities = pick(&[
            r#"{"extensions":{"io.modelcontextprotocol/tasks":{}}}"#,
            r#"{"extensions":{"a":{},"io.modelcontextprotocol\/tasks":null}}"#,
            r#"{"ext\u0065nsions":{"io.modelcontextprotocol/tasks":[]},"x":1}"#,
            r#"{"extensions":{"io.modelcontextprotocol/task":{}}}"#,
            r#"{"extensions":["io.modelcontextprotocol/tasks"]}"#,
            r#"{"io.modelcontextprotocol/tasks":{}}"#,
            r#"{"experimental":{"io.modelcontextprotocol/tasks":{}}}"#,
            r#"{"extensions":null}"#,
            "null",
        ]);
        let params = prop_oneof![
            4 => (member("name", target.clone().boxed()), member("uri", target.boxed()), member("notifications", notifications.boxed()), member("arguments", json_like().boxed()), prop::option::of(meta), member("capabilities", capabilities.boxed()))
                .prop_map(|(a, b, c, d, e, f)| format!("{{{}}}", [d, a, e, f, b, c].into_iter().flatten().collect::<Vec<_>>().join(","))),
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

    /// `scan` against the reader it replaced (`serde_json`'s deserializer
    /// walked by the same roles): the same facts, or the same refusal.
    fn scans_alike(text: &str) -> Result<(), String> {
        let text = text.trim_start_matches([' ', '\t', '\n', '\r']);
        if !matches!(text.as_bytes().first(), Some(b'{' | b'[')) {
            return Ok(());
        }
        let ours = scan::scan(text, usize::MAX);
        let reference = scan::oracle::scan(text);
        if ours == reference {
            Ok(())
        } else {
            Err(format!("{text:?}: {ours:?} but {reference:?}"))
        }
    }

    /// Tokens as a hostile client writes them: numbers at every edge of
    /// their grammar and range, escapes valid and not, surrogates paired
    /// and lone, control characters, every kind of whitespace, literals cut
    /// short.
    const TOKENS: &[&str] = &[
        "0",
        "-0",
        "01",
        "-01",
        "1.",
        "1.e5",
        "1e",
        "1e+",
        "1E-2",
        "-",
        "-x",
        "1.5",
        "-2.5e-3",
        "12345678901234567890",
        "1234567890123456789",
        "9999999999999999999",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "1e308",
        "1.7976931348623157e308",
        "1.8e308",
        "1e400",
        "-1e400",
        "1e-400",
        "0e99999999999999999999",
        "1e99999999999999999999",
        "4.9e-324",
        "\"\"",
        "\"a\"",
        "\"\\\"\"",
        "\"\\\\\"",
        "\"\\/\"",
        "\"\\b\\f\\n\\r\\t\"",
        "\"\\x\"",
        "\"\\u\"",
        "\"\\u12\"",
        "\"\\u00e9\"",
        "\"\\u00E9\"",
        "\"\\uD83D\\uDE00\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800x\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800\\\"",
        "\"a\u{1}b\"",
        "\"\\n\u{1f}\"",
        "\"\u{7f}\"",
        "\"é\"",
        "\"\\é\"",
        "\"\\",
        "\"ab",
        "\"\\u00",
        "true",
        "false",
        "null",
        "tru",
        "nul",
        "truex",
        "nulL",
        "t",
        "x",
        "+1",
        ".5",
        "[]",
        "{}",
        "[ ]",
        "{ }",
        "[,]",
        "[1,]",
        "{\"a\":1,}",
        "{,}",
        "{\"a\"}",
        "{\"a\" 1}",
        "{1:2}",
        "{\"a\":}",
        "[1 2]",
        "{\"a\":1 \"b\":2}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "]",
        "}",
        ":",
        ",",
    ];

    /// Bodies built from [`TOKENS`], member names the reader looks for, and
    /// JSON whitespace, nested.
    fn token_soup() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let ws = prop::sample::select(vec!["", "", " ", "\t", "\n", "\r\n ", "\u{b}", "\u{a0}"]);
        let leaf = (prop::sample::select(TOKENS.to_vec()), ws.clone())
            .prop_map(|(t, w)| format!("{w}{t}"));
        let name = prop::sample::select(vec![
            "\"method\"",
            "\"params\"",
            "\"name\"",
            "\"id\"",
            "\"_meta\"",
            "\"meth\\u006fd\"",
            "\"uri\"",
            "\"\\u\"",
            "\"a\u{0}\"",
            "\"notifications\"",
            "\"resourceSubscriptions\"",
        ]);
        leaf.prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                (prop::collection::vec(inner.clone(), 0..4), ws.clone())
                    .prop_map(|(v, w)| format!("[{w}{}{w}]", v.join(","))),
                (
                    prop::collection::vec((name.clone(), inner), 0..5),
                    ws.clone()
                )
                    .prop_map(|(members, w)| {
                        let members: Vec<String> =
                            members.iter().map(|(n, v)| format!("{n}{w}:{v}")).collect();
                        format!("{{{}{w}}}", members.join(","))
                    }),
            ]
        })
    }

    #[test]
    fn the_reader_refuses_as_serde_json_does_token_by_token() {
        let mut failures = Vec::new();
        for token in TOKENS {
            for body in [
                format!("[{token}]"),
                format!("[{token}"),
                format!("[{token} ,1]"),
                format!("{{\"id\":{token}}}"),
                format!("{{\"id\":{token},\"method\":\"tools/list\"}}"),
                format!("{{\"method\":\"tools/call\",\"params\":{{\"name\":{token}}}}}"),
                format!("{{{token}:1}}"),
                (*token).to_owned(),
                format!("[1]{token}"),
                format!("[1] {token}"),
                format!("{{\"a\":[1,{token}]}} "),
            ] {
                if let Err(e) = scans_alike(&body) {
                    failures.push(e);
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn the_reader_stops_nesting_where_serde_json_does() {
        for depth in 120..=132 {
            for (open, close) in [("[", "]"), ("{\"a\":", "}"), ("[{\"params\":", "}]")] {
                let body = format!("{}{}{}", open.repeat(depth), "1", close.repeat(depth));
                scans_alike(&body).unwrap();
                let cut = format!("{}{}", open.repeat(depth), "1");
                scans_alike(&cut).unwrap();
            }
        }
        // Both ways of the limit are met: the limit is not just agreed on.
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert!(scan::scan(&nested(127), usize::MAX).is_ok());
        assert_eq!(
            scan::scan(&nested(128), usize::MAX),
            Err(Unreadable::Syntax)
        );
    }

    // The value cap counts every value once, an object five times (its
    // map): the top level, each member's value, each element, at any depth
    // and across a batch's messages; a member's name once, and once more
    // per 16 bytes of it. At the cap a body is read, one past it is
    // `TooManyValues` (a -32600 if it ever reaches a JSON-RPC answer; the
    // layer answers 413).
    #[test]
    fn the_value_cap_counts_every_value_once() {
        for (body, values) in [
            ("{}", 5),
            ("[]", 1),
            (r#"{"a":1}"#, 7),
            (r#"{"a":[1,2,[3]],"b":{"c":null}}"#, 19),
            (
                r#"[{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","method":"ping"}]"#,
                19,
            ),
            (r#"{"a":"x","b":true,"c":false,"d":-1.5e3}"#, 13),
            ("[[],[],[{}]]", 9),
            // Names of 15, 16 and 40 bytes: one, two and three.
            (r#"{"aaaaaaaaaaaaaaa":0}"#, 7),
            (r#"{"aaaaaaaaaaaaaaaa":0}"#, 8),
            (r#"{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":0}"#, 9),
        ] {
            assert!(scan::scan(body, values).is_ok(), "{body}");
            assert_eq!(
                scan::scan(body, values - 1).err(),
                Some(Unreadable::TooManyValues),
                "{body}"
            );
        }
        assert_eq!(Unreadable::TooManyValues.jsonrpc_code(), -32600);
        let many = format!("[{}0]", "0,".repeat(DEFAULT_MAX_JSON_VALUES));
        assert_eq!(
            read_requests(many.as_bytes(), false, DEFAULT_MAX_JSON_VALUES).err(),
            Some(Unreadable::TooManyValues)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// Issue 13: the single pass reads every body exactly as the strict
        /// tree reader did (same operations, same refusals).
        #[test]
        fn single_pass_agrees_with_the_tree_reader(body in proptest::prop_oneof![json_like(), message_like()]) {
            proptest::prop_assert_eq!(read_operations(body.as_bytes()).map_err(drop), tree_reader(body.as_bytes()), "{}", body);
        }

        /// The tasks extension is seen declared exactly where rmcp looks
        /// for it (`params._meta`, its client capabilities, their
        /// `extensions`; for the session, an `initialize`'s
        /// `params.capabilities.extensions`), in any message of a batch,
        /// whatever its value.
        #[test]
        fn a_declaration_of_tasks_is_read_where_rmcp_reads_it(body in message_like()) {
            if let Ok(read) = read_requests(body.as_bytes(), false, DEFAULT_MAX_JSON_VALUES) {
                proptest::prop_assert_eq!(read.declares_tasks, declares_tasks_in_a_value(body.as_bytes()), "{}", body);
                proptest::prop_assert_eq!(read.session_declares_tasks, session_declares_tasks_in_a_value(body.as_bytes()), "{}", body);
            }
        }

        /// The same on bodies cut or with one byte changed.
        #[test]
        fn single_pass_agrees_on_damaged_bodies(body in proptest::prop_oneof![json_like(), message_like()], at in 0usize..400, byte in proptest::prelude::any::<u8>(), cut in proptest::prelude::any::<bool>()) {
            let mut bytes = body.into_bytes();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                if cut { bytes.truncate(at) } else { bytes[at] = byte }
            }
            proptest::prop_assert_eq!(read_operations(&bytes).map_err(drop), tree_reader(&bytes));
        }

        /// Issue 13, the hand-written reader: every body of every generator,
        /// whole, cut or with one byte changed, is read as the reader it
        /// replaced read it (the same facts, or the same refusal).
        #[test]
        fn the_reader_agrees_with_serde_json_s_walk(body in proptest::prop_oneof![json_like(), message_like(), token_soup()], at in 0usize..400, byte in proptest::prelude::any::<u8>(), damage in 0u8..3) {
            let mut bytes = body.into_bytes();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                match damage {
                    0 => {}
                    1 => bytes.truncate(at),
                    _ => bytes[at] = byte,
                }
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let agreed = scans_alike(text);
                proptest::prop_assert!(agreed.is_ok(), "{}", agreed.unwrap_err());
            }
        }
    }
}
