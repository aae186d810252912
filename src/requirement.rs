//! Requirements computed per request: scopes that depend on a call's
//! arguments (a `folder` argument, a resource URI under a sensitive prefix)
//! and on the caller, decided by the layer before rmcp dispatches.
//!
//! A computed requirement is a user function attached to a tool, a prompt
//! or a resource pattern (see
//! [`AuthConfigBuilder::tool_scopes_with`](crate::AuthConfigBuilder::tool_scopes_with)).
//! The layer calls it for every operation of a request that targets it
//! (batches included), with the parsed call and the caller's
//! [`AuthContext`]; the scopes it returns are added to the declared ones,
//! and one `insufficient_scope` challenge names them all.
//!
//! Failing closed: a function that returns `Err` refuses the call (403
//! `access_denied`, reason `requirement_refused`); one that panics or
//! returns a scope that is not a valid scope token (RFC 6749 section 3.3)
//! or is `offline_access` makes the layer answer 500 (`server_error`,
//! reason `requirement_failed`). In no case is the call dispatched.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::context::AuthContext;
use crate::error::AuthErrorKind;
use crate::scope::{Operation, Spellings, UriPattern, extend_unique, resource_rule_applies};

/// One JSON-RPC call as a computed requirement sees it: the method, the
/// name it targets (a tool or prompt name, or one resource URI) and its
/// parameters.
///
/// The body it comes from has been read strictly (no repeated member names,
/// no invalid escapes), so what the function sees is exactly what rmcp
/// dispatches.
#[derive(Debug, Clone, Copy)]
pub struct OperationRequest<'a> {
    method: &'a str,
    target: &'a str,
    params: Option<&'a Value>,
}

impl<'a> OperationRequest<'a> {
    /// A request view, for testing a requirement function directly.
    pub fn new(method: &'a str, target: &'a str, params: Option<&'a Value>) -> Self {
        Self {
            method,
            target,
            params,
        }
    }

    /// The JSON-RPC method: `tools/call`, `prompts/get`, `resources/read`,
    /// `resources/subscribe`, `resources/unsubscribe` or
    /// `subscriptions/listen`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The tool or prompt name, or the resource URI (for
    /// `subscriptions/listen`, the function is called once per URI).
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The call's `params` object, if any.
    pub fn params(&self) -> Option<&'a Value> {
        self.params
    }

    /// `params.arguments` of a tool call or prompt request, when it is an
    /// object.
    pub fn arguments(&self) -> Option<&'a Map<String, Value>> {
        self.params?.get("arguments")?.as_object()
    }

    /// One argument by name.
    pub fn argument(&self, name: &str) -> Option<&'a Value> {
        self.arguments()?.get(name)
    }

    /// One argument by name, when it is a JSON string.
    pub fn argument_str(&self, name: &str) -> Option<&'a str> {
        self.argument(name)?.as_str()
    }
}

/// Why a computed requirement refused a call; the reason is logged, never
/// sent to the client (the client sees reason `requirement_refused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(String);

impl Refusal {
    /// A refusal with a reason for the server's logs.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// The signature of a computed requirement: the scopes `request` needs for
/// this caller, on top of the declared ones.
///
/// **Contract:** synchronous and cheap (it runs on the request path for
/// every call it applies to, before the call is dispatched): no I/O, no
/// blocking, no locks held for long. Decide from the arguments and the
/// caller only; whatever needs a lookup belongs in the handler, which can
/// ask for more scopes mid-call with
/// [`AuthContext::require_scopes`](crate::AuthContext::require_scopes)
/// (late step-up).
pub type ScopeFn =
    dyn Fn(&OperationRequest<'_>, &AuthContext) -> Result<Vec<String>, Refusal> + Send + Sync;

/// What a computed requirement is attached to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Tool(String),
    Prompt(String),
    Resource(UriPattern),
}

impl Target {
    fn applies(&self, method: &str, target: &Spellings<'_>) -> bool {
        match self {
            Self::Tool(name) => method == "tools/call" && name == target.raw(),
            Self::Prompt(name) => method == "prompts/get" && name == target.raw(),
            Self::Resource(pattern) => resource_rule_applies(pattern, method, target),
        }
    }
}

/// The computed requirements of a configuration, in declaration order.
#[derive(Clone, Default)]
pub(crate) struct ComputedScopes {
    rules: Vec<(Target, Arc<ScopeFn>)>,
}

impl fmt::Debug for ComputedScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|(target, _)| target))
            .finish()
    }
}

/// Why the computed requirements of a request could not be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undecided {
    /// A function refused the call (403 `requirement_refused`).
    Refused,
    /// A function panicked or returned an invalid scope (500
    /// `requirement_failed`).
    Failed,
}

impl Undecided {
    pub(crate) fn kind(&self) -> AuthErrorKind {
        match self {
            Self::Refused => AuthErrorKind::RequirementRefused,
            Self::Failed => AuthErrorKind::RequirementFailed,
        }
    }
}

impl ComputedScopes {
    pub(crate) fn push(&mut self, target: Target, f: Arc<ScopeFn>) {
        self.rules.push((target, f));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The tool names the rules are for.
    pub(crate) fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|(target, _)| match target {
            Target::Tool(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether some rule applies to one of `ops` (then the body is parsed
    /// for the functions; otherwise nothing is computed).
    pub(crate) fn applies_to(&self, ops: &[Operation]) -> bool {
        !self.rules.is_empty()
            && ops.iter().any(|op| {
                op.targets()
                    .iter()
                    .map(|t| Spellings::new(t))
                    .any(|t| self.rules.iter().any(|(r, _)| r.applies(op.method(), &t)))
            })
    }

    /// Adds to `required` the scopes the rules compute for the operations
    /// of `body` (whose operations, read strictly, are `ops`).
    pub(crate) fn extend(
        &self,
        body: &[u8],
        ops: &[Operation],
        ctx: &AuthContext,
        required: &mut Vec<String>,
    ) -> Result<(), Undecided> {
        // The body was read strictly already; this second read only gives
        // the functions a tree of the arguments.
        let parsed: Value = serde_json::from_slice(body).map_err(|_| Undecided::Failed)?;
        let messages: Vec<&Value> = match &parsed {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        // The operations are the messages with a `method`, in order.
        let calls: Vec<&Value> = messages
            .into_iter()
            .filter(|m| m.get("method").is_some())
            .collect();
        if calls.len() != ops.len() {
            return Err(Undecided::Failed);
        }
        for (op, message) in ops.iter().zip(calls) {
            if message.get("method").and_then(Value::as_str) != Some(op.method()) {
                return Err(Undecided::Failed);
            }
            let params = message.get("params");
            for target in op.targets() {
                let spelled = Spellings::new(target);
                for (rule, f) in &self.rules {
                    if !rule.applies(op.method(), &spelled) {
                        continue;
                    }
                    let request = OperationRequest::new(op.method(), target, params);
                    extend_unique(required, run(f, &request, ctx)?);
                }
            }
        }
        Ok(())
    }
}

/// Runs one function, failing closed on a panic, a refusal or an invalid
/// scope.
fn run(
    f: &Arc<ScopeFn>,
    request: &OperationRequest<'_>,
    ctx: &AuthContext,
) -> Result<Vec<String>, Undecided> {
    let outcome = catch_unwind(AssertUnwindSafe(|| f(request, ctx)));
    let scopes = match outcome {
        Ok(Ok(scopes)) => scopes,
        Ok(Err(refusal)) => {
            tracing::info!(
                method = request.method(),
                target = request.target(),
                reason = refusal.reason(),
                "a computed scope requirement refused the call"
            );
            return Err(Undecided::Refused);
        }
        Err(_) => {
            tracing::error!(
                method = request.method(),
                target = request.target(),
                "a computed scope requirement panicked; refusing the call"
            );
            return Err(Undecided::Failed);
        }
    };
    if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
        tracing::error!(
            method = request.method(),
            target = request.target(),
            scope = bad.escape_debug().to_string(),
            "a computed scope requirement returned an invalid scope; refusing the call"
        );
        return Err(Undecided::Failed);
    }
    Ok(scopes)
}

/// RFC 6749 section 3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`,
/// and not `offline_access` (MCP keeps it out of challenges).
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s != "offline_access"
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> AuthContext {
        AuthContext::builder("https://iss", "alice")
            .scopes(["notes:read"])
            .build()
    }

    fn folder_rule() -> Arc<ScopeFn> {
        Arc::new(|req: &OperationRequest<'_>, _: &AuthContext| {
            Ok(match req.argument_str("folder") {
                Some("shared") => vec![],
                _ => vec!["notes:private".to_owned()],
            })
        })
    }

    fn computed() -> ComputedScopes {
        let mut c = ComputedScopes::default();
        c.push(Target::Tool("read_note".into()), folder_rule());
        c.push(
            Target::Resource(UriPattern::new("vault://{id}")),
            Arc::new(|req: &OperationRequest<'_>, ctx: &AuthContext| {
                Ok(vec![
                    format!("vault:{}", ctx.subject()),
                    req.target().len().to_string(),
                ])
            }),
        );
        c
    }

    fn required(body: &str) -> Result<Vec<String>, Undecided> {
        let ops = crate::operation::read_operations(body.as_bytes()).unwrap();
        let mut out = vec!["base".to_owned()];
        computed().extend(body.as_bytes(), &ops, &alice(), &mut out)?;
        Ok(out)
    }

    #[test]
    fn arguments_decide_the_scopes() {
        let call = |folder: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"read_note","arguments":{{"id":1,"folder":{folder}}}}}}}"#
            )
        };
        assert_eq!(required(&call(r#""shared""#)).unwrap(), ["base"]);
        assert_eq!(
            required(&call(r#""private""#)).unwrap(),
            ["base", "notes:private"]
        );
        // Escapes are decoded as rmcp decodes them; anything but "shared"
        // (another type, another case) needs the scope: fail closed.
        assert_eq!(required(&call(r#""\u0073hared""#)).unwrap(), ["base"]);
        for other in [r#""PRIVATE""#, "null", r#"["shared"]"#, "1"] {
            assert_eq!(
                required(&call(other)).unwrap(),
                ["base", "notes:private"],
                "{other}"
            );
        }
    }

    #[test]
    fn batches_union_every_message() {
        let body = r#"[
            {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":{"folder":"private"}}},
            {"jsonrpc":"2.0","id":2,"result":{}},
            {"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"vault://abc"}},
            {"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"other","arguments":{"folder":"private"}}}
        ]"#;
        assert_eq!(
            required(body).unwrap(),
            ["base", "notes:private", "vault:alice", "11"]
        );
        let ops = crate::operation::read_operations(body.as_bytes()).unwrap();
        assert!(computed().applies_to(&ops));
        let unrelated = crate::operation::read_operations(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
        )
        .unwrap();
        assert!(!computed().applies_to(&unrelated));
        assert!(!ComputedScopes::default().applies_to(&ops));
    }

    #[test]
    fn refusals_panics_and_bad_scopes_fail_closed() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#;
        let ops = crate::operation::read_operations(body).unwrap();
        let cases: Vec<(Arc<ScopeFn>, Undecided)> = vec![
            (
                Arc::new(|_: &OperationRequest<'_>, _: &AuthContext| Err(Refusal::new("no"))),
                Undecided::Refused,
            ),
            (
                Arc::new(|_: &OperationRequest<'_>, _: &AuthContext| panic!("bug in a rule")),
                Undecided::Failed,
            ),
            (
                Arc::new(|_: &OperationRequest<'_>, _: &AuthContext| Ok(vec!["a b".into()])),
                Undecided::Failed,
            ),
            (
                Arc::new(|_: &OperationRequest<'_>, _: &AuthContext| Ok(vec![String::new()])),
                Undecided::Failed,
            ),
            (
                Arc::new(|_: &OperationRequest<'_>, _: &AuthContext| {
                    Ok(vec!["offline_access".into()])
                }),
                Undecided::Failed,
            ),
            (
                Arc::new(|_: &OperationRequest<'_>, _: &AuthContext| Ok(vec!["x\"y".into()])),
                Undecided::Failed,
            ),
        ];
        for (f, expected) in cases {
            let mut c = ComputedScopes::default();
            c.push(Target::Prompt("p".into()), f);
            let mut out = Vec::new();
            assert_eq!(
                c.extend(body, &ops, &alice(), &mut out),
                Err(expected.clone())
            );
            assert_eq!(
                expected.kind().status().as_u16(),
                match expected {
                    Undecided::Refused => 403,
                    Undecided::Failed => 500,
                }
            );
        }
    }

    #[test]
    fn request_view() {
        let params = serde_json::json!({"name": "t", "arguments": {"a": "x", "n": 2}});
        let r = OperationRequest::new("tools/call", "t", Some(&params));
        assert_eq!(r.method(), "tools/call");
        assert_eq!(r.target(), "t");
        assert_eq!(r.argument_str("a"), Some("x"));
        assert_eq!(r.argument_str("n"), None);
        assert_eq!(r.argument("n"), Some(&serde_json::json!(2)));
        assert_eq!(r.params(), Some(&params));
        let bare = OperationRequest::new("resources/read", "x://1", None);
        assert!(bare.arguments().is_none());
        assert_eq!(Refusal::new("why").to_string(), "why");
        // Debug names the targets, never the functions.
        let debug = format!("{:?}", computed());
        assert!(
            debug.starts_with(r#"[Tool("read_note"), Resource("#),
            "{debug}"
        );
    }
}
