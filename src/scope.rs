//! Scopes, scope requirements per MCP operation, and the scope hierarchy.
//!
//! The MCP specification requires servers to account for scope hierarchies:
//! a broader scope satisfies narrower ones. [`ScopeHierarchy`] holds explicit
//! implications (`notes:write` implies `notes:read`) and, optionally,
//! wildcards (`notes:*` grants every `notes:…` scope). Every decision the
//! crate makes (required scopes, per-tool requirements,
//! [`AuthContext::require_scopes`](crate::AuthContext::require_scopes)) goes
//! through it.

use std::collections::{BTreeMap, HashSet};

/// What a token must grant for an operation, and how scopes imply each other.
#[derive(Debug, Clone, Default)]
pub struct ScopePolicy {
    pub(crate) global: Vec<String>,
    pub(crate) methods: BTreeMap<String, Vec<String>>,
    pub(crate) tools: BTreeMap<String, Vec<String>>,
    pub(crate) prompts: BTreeMap<String, Vec<String>>,
    pub(crate) resources: Vec<(UriPattern, Vec<String>)>,
    pub(crate) hierarchy: ScopeHierarchy,
    pub(crate) hide_unauthorized: bool,
}

/// Scope implications and wildcards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeHierarchy {
    implies: BTreeMap<String, Vec<String>>,
    wildcards: bool,
}

impl ScopeHierarchy {
    /// `scope` implies each of `implied` (transitively).
    pub fn imply<I, S>(&mut self, scope: impl Into<String>, implied: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.implies
            .entry(scope.into())
            .or_default()
            .extend(implied.into_iter().map(Into::into));
    }

    /// Whether a granted `prefix:*` grants every scope starting with `prefix:`.
    pub fn set_wildcards(&mut self, on: bool) {
        self.wildcards = on;
    }

    /// Whether the hierarchy has any rule.
    pub fn is_flat(&self) -> bool {
        self.implies.is_empty() && !self.wildcards
    }

    /// Whether the `granted` scopes satisfy `needed`.
    pub fn grants<S: AsRef<str>>(&self, granted: &[S], needed: &str) -> bool {
        if granted.iter().any(|g| g.as_ref() == needed) {
            return true;
        }
        if self.is_flat() {
            return false;
        }
        // Expand the granted scopes through the implications (a small graph;
        // cycles are harmless thanks to `seen`).
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = granted.iter().map(|g| g.as_ref()).collect();
        while let Some(scope) = stack.pop() {
            if !seen.insert(scope) {
                continue;
            }
            if scope == needed || (self.wildcards && wildcard_matches(scope, needed)) {
                return true;
            }
            if let Some(implied) = self.implies.get(scope) {
                stack.extend(implied.iter().map(String::as_str));
            }
        }
        false
    }

    /// The scopes of `needed` that `granted` does not satisfy.
    pub fn missing<'a, S: AsRef<str>>(&self, granted: &[S], needed: &'a [String]) -> Vec<&'a str> {
        needed
            .iter()
            .filter(|n| !self.grants(granted, n))
            .map(String::as_str)
            .collect()
    }
}

/// `notes:*` matches `notes:read` and `notes:a:b`; a bare `*` matches everything.
fn wildcard_matches(granted: &str, needed: &str) -> bool {
    match granted.strip_suffix('*') {
        Some(prefix)
            if prefix.is_empty()
                || prefix.ends_with(':')
                || prefix.ends_with('.')
                || prefix.ends_with('/') =>
        {
            needed.starts_with(prefix) && needed.len() > prefix.len()
        }
        _ => false,
    }
}

/// A resource URI or template a requirement applies to: an exact URI, a
/// template whose `{name}` parts match one path segment (no `/`), or a prefix
/// ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriPattern(String);

impl UriPattern {
    /// A pattern from its text.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `uri` matches.
    pub fn matches(&self, uri: &str) -> bool {
        let pattern = self.0.as_str();
        if let Some(prefix) = pattern.strip_suffix('*')
            && !prefix.contains('{')
        {
            return uri.starts_with(prefix);
        }
        if !pattern.contains('{') {
            return pattern == uri;
        }
        template_matches(pattern, uri)
    }
}

fn template_matches(pattern: &str, uri: &str) -> bool {
    // Literal pieces alternate with `{var}` placeholders.
    let mut rest = uri;
    let mut pat = pattern;
    loop {
        match pat.find('{') {
            None => return rest == pat,
            Some(open) => {
                let (literal, after) = pat.split_at(open);
                let Some(tail) = rest.strip_prefix(literal) else {
                    return false;
                };
                let Some(close) = after.find('}') else {
                    return false;
                };
                pat = &after[close + 1..];
                // The placeholder takes the longest run without '/' that
                // still lets the next literal match.
                let seg_end = tail.find('/').unwrap_or(tail.len());
                let next_literal_end = pat.find('{').unwrap_or(pat.len());
                let next_literal = &pat[..next_literal_end];
                let mut matched = false;
                for end in (1..=seg_end).rev() {
                    if tail[end..].starts_with(next_literal) && tail.is_char_boundary(end) {
                        rest = &tail[end..];
                        matched = true;
                        break;
                    }
                }
                if !matched {
                    return false;
                }
            }
        }
    }
}

/// One JSON-RPC call as far as authorization is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    /// The tool or prompt name, or the resource URI, when the method has one.
    pub target: Option<String>,
}

impl ScopePolicy {
    /// Whether any per-operation requirement is declared (if not, requests
    /// are never parsed).
    pub fn has_operation_rules(&self) -> bool {
        !(self.methods.is_empty()
            && self.tools.is_empty()
            && self.prompts.is_empty()
            && self.resources.is_empty())
    }

    /// Every scope `op` needs: the global requirement, then the method's,
    /// then the tool's, prompt's or resource's. Deduplicated, in that order.
    pub fn required_for(&self, op: &Operation) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |scopes: &[String]| {
            for s in scopes {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        };
        push(&self.global);
        if let Some(s) = self.methods.get(&op.method) {
            push(s);
        }
        if let Some(target) = &op.target {
            match op.method.as_str() {
                "tools/call" => {
                    if let Some(s) = self.tools.get(target) {
                        push(s);
                    }
                }
                "prompts/get" => {
                    if let Some(s) = self.prompts.get(target) {
                        push(s);
                    }
                }
                "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                    for (pattern, s) in &self.resources {
                        if pattern.matches(target) {
                            push(s);
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The scope hierarchy.
    pub fn hierarchy(&self) -> &ScopeHierarchy {
        &self.hierarchy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> ScopeHierarchy {
        let mut h = ScopeHierarchy::default();
        h.imply("notes:write", ["notes:read"]);
        h.imply("admin", ["notes:write", "users:read"]);
        h.imply("loop:a", ["loop:b"]);
        h.imply("loop:b", ["loop:a"]);
        h
    }

    #[test]
    fn implications_are_transitive() {
        let h = h();
        assert!(h.grants(&["notes:write"], "notes:read"));
        assert!(h.grants(&["admin"], "notes:read"));
        assert!(!h.grants(&["notes:read"], "notes:write"));
        assert!(!h.grants(&["loop:a"], "notes:read"));
        assert!(h.grants(&["loop:a"], "loop:b"));
        assert_eq!(
            h.missing(
                &["notes:read"],
                &["notes:read".into(), "notes:write".into()]
            ),
            ["notes:write"]
        );
    }

    #[test]
    fn wildcards_only_when_enabled() {
        let mut h = h();
        assert!(!h.grants(&["notes:*"], "notes:read"));
        h.set_wildcards(true);
        assert!(h.grants(&["notes:*"], "notes:read"));
        assert!(h.grants(&["notes:*"], "notes:a:b"));
        assert!(!h.grants(&["notes:*"], "notes:"));
        assert!(!h.grants(&["notes:*"], "notesx"));
        assert!(!h.grants(&["no*"], "notes:read"));
        assert!(h.grants(&["*"], "anything"));
    }

    #[test]
    fn uri_patterns() {
        assert!(UriPattern::new("notes://all").matches("notes://all"));
        assert!(!UriPattern::new("notes://all").matches("notes://all/x"));
        assert!(UriPattern::new("notes://{id}").matches("notes://42"));
        assert!(!UriPattern::new("notes://{id}").matches("notes://42/x"));
        assert!(!UriPattern::new("notes://{id}").matches("notes://"));
        assert!(UriPattern::new("notes://{id}/body").matches("notes://42/body"));
        assert!(UriPattern::new("file:///{a}/{b}.txt").matches("file:///x/y.txt"));
        assert!(!UriPattern::new("file:///{a}/{b}.txt").matches("file:///x/y.md"));
        assert!(UriPattern::new("file:///home/*").matches("file:///home/a/b"));
        assert!(!UriPattern::new("file:///home/*").matches("file:///etc/passwd"));
    }

    #[test]
    fn requirements_union_in_order() {
        let mut p = ScopePolicy {
            global: vec!["mcp".into()],
            ..ScopePolicy::default()
        };
        p.tools
            .insert("add_note".into(), vec!["notes:write".into(), "mcp".into()]);
        p.methods.insert("tools/call".into(), vec!["tools".into()]);
        p.resources
            .push((UriPattern::new("notes://{id}"), vec!["notes:read".into()]));
        let op = |m: &str, t: Option<&str>| Operation {
            method: m.into(),
            target: t.map(Into::into),
        };
        assert_eq!(
            p.required_for(&op("tools/call", Some("add_note"))),
            ["mcp", "tools", "notes:write"]
        );
        assert_eq!(
            p.required_for(&op("tools/call", Some("other"))),
            ["mcp", "tools"]
        );
        assert_eq!(
            p.required_for(&op("resources/read", Some("notes://1"))),
            ["mcp", "notes:read"]
        );
        assert_eq!(p.required_for(&op("tools/list", None)), ["mcp"]);
    }
}
