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
pub(crate) struct ScopePolicy {
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

    /// Whether a granted `prefix:*` grants every scope starting with `prefix:`
    /// (the prefix ends in `:`, `.` or `/`; a bare `*` grants nothing).
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

/// Appends each of `scopes` to `out` unless it is there already: the
/// ordered, duplicate-free union every scope requirement and challenge is
/// built with.
pub(crate) fn extend_unique<S>(out: &mut Vec<String>, scopes: impl IntoIterator<Item = S>)
where
    S: AsRef<str> + Into<String>,
{
    for s in scopes {
        if !out.iter().any(|o| o == s.as_ref()) {
            out.push(s.into());
        }
    }
}

/// `notes:*` matches `notes:read` and `notes:a:b`. A bare `*` matches
/// nothing: a scope that grants every other one, this server's included,
/// would be a surprise no setting announced (fail closed; declare it with
/// `scope_implies` if an issuer really grants it).
fn wildcard_matches(granted: &str, needed: &str) -> bool {
    match granted.strip_suffix('*') {
        Some(prefix) if prefix.ends_with(':') || prefix.ends_with('.') || prefix.ends_with('/') => {
            needed.starts_with(prefix) && needed.len() > prefix.len()
        }
        _ => false,
    }
}

/// A resource URI or template a requirement applies to.
///
/// Three forms:
/// - an exact URI (no `{`, not ending in `*`): matches only itself;
/// - a template (RFC 6570 level 1 and 2 placeholders): a `{name}` placeholder
///   matches any run of characters without `/` (the empty run included, as
///   the expansion of an empty value would be); `{+name}` and `{#name}`
///   (reserved expansion) match any run, `/` included. A `{` without a
///   closing `}` is literal text;
/// - a prefix ending in `*` (with or without placeholders before it): the
///   rest of the URI is anything.
///
/// Matching errs on the side of matching: a requirement attached to a
/// template applies to every URI the template could expand to, so a wider
/// match can only ask for more scopes, never fewer. Matching works on bytes
/// (a `/` byte never occurs inside a multi-byte UTF-8 character), cannot
/// panic on any input, and takes time proportional to the URI's length
/// times the pattern's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UriPattern {
    text: String,
    atoms: Vec<Atom>,
    /// The pattern's RFC 3986 normal form (scheme and host in lower case,
    /// ...), when it differs: `Notes://Private/{id}` is matched as
    /// `notes://private/{id}` too, since the URIs compared with it are
    /// tried in their normal form.
    normal: Option<Vec<Atom>>,
}

/// One step of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atom {
    /// Exactly this byte.
    Byte(u8),
    /// Zero or more bytes other than `/` (a `{name}` placeholder).
    Segment,
    /// Zero or more bytes of any kind (`{+name}`, `{#name}`, a final `*`).
    Any,
}

impl UriPattern {
    /// A pattern from its text.
    pub(crate) fn new(pattern: impl Into<String>) -> Self {
        let text = pattern.into();
        let atoms = compile(&text);
        let (body, any) = match text.strip_suffix('*') {
            Some(body) => (body, "*"),
            None => (text.as_str(), ""),
        };
        let normal = normal_form(body)
            .map(|n| n + any)
            .filter(|n| *n != text)
            .map(|n| compile(&n));
        Self {
            text,
            atoms,
            normal,
        }
    }

    /// Whether `uri` matches, as the client spelled it or in a spelling
    /// RFC 3986 (section 6.2.2) says names the same resource: a handler
    /// that reads the URI with a URI library (or a file system) serves
    /// `NOTES://Private/./1` or `notes://%70rivate/1` as
    /// `notes://private/1`, so a rule on the latter covers the former
    /// (fail closed: every spelling can only add requirements). See
    /// [`equivalent_spellings`].
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn matches(&self, uri: &str) -> bool {
        self.matches_spelled(&Spellings::new(uri))
    }

    /// [`matches`](Self::matches) for a URI whose other spellings are
    /// worked out once for every pattern it is matched against.
    pub(crate) fn matches_spelled(&self, uri: &Spellings<'_>) -> bool {
        self.matches_as_written(uri.raw)
            || uri
                .others()
                .iter()
                .any(|spelling| self.matches_as_written(spelling))
    }

    /// Whether some expansion of the URI template `template` (a completion's
    /// `ref/resource`) could match, in any spelling [`matches`](Self::matches)
    /// tries: each of its `{...}` expressions read as any text. A
    /// completion names a template, and one written otherwise than the
    /// rule (`notes://private{/id}`, `notes://{kind}/{id}`) completes the
    /// same resources (found from outside: no scope was asked). Fail
    /// closed: a template too long to compare is taken to match.
    pub(crate) fn may_match_an_expansion(&self, template: &Spellings<'_>) -> bool {
        std::iter::once(template.raw)
            .chain(template.others().iter().map(String::as_str))
            .filter(|t| t.contains('{'))
            .any(|t| {
                let tokens = template_tokens(t);
                tokens.len() > MAX_TEMPLATE_TOKENS
                    || self.compiled().any(|atoms| overlaps(atoms, &tokens))
            })
    }

    /// Whether some direct child of the directory `uri` (`uri`, a `/`
    /// unless it ends with one, then a run of bytes without `/`) matches,
    /// in any spelling of `uri` that [`matches`](Self::matches) tries.
    pub(crate) fn matches_a_child(&self, uri: &Spellings<'_>) -> bool {
        let child_prefix = |dir: &str| {
            let mut prefix = dir.to_owned();
            if !prefix.ends_with('/') {
                prefix.push('/');
            }
            prefix
        };
        self.may_match_a_segment_after(&child_prefix(uri.raw))
            || uri
                .others()
                .iter()
                .any(|dir| self.may_match_a_segment_after(&child_prefix(dir)))
    }

    /// Whether `prefix` followed by some run of bytes without `/` matches:
    /// after reading `prefix`, some live state reaches the end through
    /// atoms that can each take such bytes (anything but a literal `/`).
    fn may_match_a_segment_after(&self, prefix: &str) -> bool {
        self.compiled().any(|atoms| {
            live_states(atoms, prefix.as_bytes()).is_some_and(|live| {
                live.iter().enumerate().any(|(k, on)| {
                    *on && atoms
                        .get(k..)
                        .is_some_and(|rest| rest.iter().all(|a| *a != Atom::Byte(b'/')))
                })
            })
        })
    }

    /// Whether `uri`, byte for byte, matches the pattern as written or its
    /// normal form.
    fn matches_as_written(&self, uri: &str) -> bool {
        self.compiled().any(|atoms| atoms_match(atoms, uri))
    }

    /// The pattern as written, then its normal form if that differs.
    fn compiled(&self) -> impl Iterator<Item = &[Atom]> {
        std::iter::once(self.atoms.as_slice()).chain(self.normal.as_deref())
    }
}

/// The longest template [`UriPattern::may_match_an_expansion`] compares
/// (a longer one is taken to match: the comparison costs its length times
/// the pattern's).
const MAX_TEMPLATE_TOKENS: usize = 4_096;

/// One piece of a URI template as a completion names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A literal byte.
    Byte(u8),
    /// A `{...}` expression: any text.
    Wild,
}

/// `template` as literal bytes and expressions (a `{` without its `}` is
/// literal).
fn template_tokens(template: &str) -> Vec<Token> {
    let bytes = template.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'{'
            && let Some(len) = bytes
                .get(i + 1..)
                .and_then(|rest| memchr::memchr(b'}', rest))
        {
            out.push(Token::Wild);
            i += len + 2;
            continue;
        }
        out.push(Token::Byte(b));
        i += 1;
    }
    out
}

/// Whether some text matches both the pattern's `atoms` and the template's
/// `tokens` (each `Wild` any text): a search over pairs of positions, each
/// side's placeholders taking the other side's bytes or nothing.
fn overlaps(atoms: &[Atom], tokens: &[Token]) -> bool {
    let width = tokens.len() + 1;
    let mut seen = vec![false; (atoms.len() + 1) * width];
    let mut todo = vec![(0usize, 0usize)];
    while let Some((i, j)) = todo.pop() {
        let Some(slot) = seen.get_mut(i * width + j) else {
            continue;
        };
        if *slot {
            continue;
        }
        *slot = true;
        if i == atoms.len() && j == tokens.len() {
            return true;
        }
        let atom = atoms.get(i).copied();
        let token = tokens.get(j).copied();
        match (atom, token) {
            (Some(Atom::Byte(a)), Some(Token::Byte(b))) if a == b => todo.push((i + 1, j + 1)),
            _ => {}
        }
        if let Some(Atom::Segment | Atom::Any) = atom {
            todo.push((i + 1, j));
            match token {
                Some(Token::Byte(b)) if atom == Some(Atom::Any) || b != b'/' => {
                    todo.push((i, j + 1));
                }
                Some(Token::Wild) => todo.push((i, j + 1)),
                _ => {}
            }
        }
        if token == Some(Token::Wild) {
            todo.push((i, j + 1));
            if matches!(atom, Some(Atom::Byte(_))) {
                todo.push((i + 1, j));
            }
        }
    }
    false
}

/// Whether `uri`, byte for byte, matches the compiled `atoms`.
fn atoms_match(atoms: &[Atom], uri: &str) -> bool {
    if atoms.iter().all(|a| matches!(a, Atom::Byte(_))) {
        // An exact URI: only itself.
        return atoms.len() == uri.len()
            && atoms
                .iter()
                .zip(uri.bytes())
                .all(|(a, b)| *a == Atom::Byte(b));
    }
    run(atoms, uri.as_bytes())
}

/// The RFC 3986 normal form of a URI or URI template (section 6.2.2), the
/// braces of a template escaped while it is read; `None` when it is not one.
fn normal_form(uri: &str) -> Option<String> {
    use iri_string::types::IriStr;
    if let Ok(iri) = IriStr::new(uri) {
        return Some(iri.normalize().to_string());
    }
    let escaped = uri.replace('{', "%7B").replace('}', "%7D");
    let iri = IriStr::new(&escaped).ok()?;
    Some(
        iri.normalize()
            .to_string()
            .replace("%7B", "{")
            .replace("%7D", "}"),
    )
}

/// A resource URI as the client wrote it, and its other spellings
/// ([`equivalent_spellings`]), worked out on first use and then shared by
/// every pattern it is matched against (a `subscriptions/listen` may name
/// many URIs, and a server may declare many patterns).
#[derive(Debug)]
pub(crate) struct Spellings<'a> {
    raw: &'a str,
    others: std::cell::OnceCell<Vec<String>>,
}

impl<'a> Spellings<'a> {
    /// `raw`, its other spellings not worked out yet.
    pub(crate) fn new(raw: &'a str) -> Self {
        Self {
            raw,
            others: std::cell::OnceCell::new(),
        }
    }

    /// The URI as the client wrote it.
    pub(crate) fn raw(&self) -> &'a str {
        self.raw
    }

    fn others(&self) -> &[String] {
        self.others.get_or_init(|| equivalent_spellings(self.raw))
    }
}

/// The spellings of `uri` other than its own that name, or that a handler
/// reading `uri` with a URI library takes for, the same resource: its
/// RFC 3986 syntax-based normalization (section 6.2.2: scheme and host in
/// lower case, percent-encoded unreserved characters decoded and the other
/// escapes in upper case, dot segments removed), then that form without its
/// fragment (section 3.5: never part of the resource), and without its
/// userinfo, port, query and fragment (what a handler that looks at the
/// host and the path serves); then the WHATWG readings
/// ([`whatwg_spellings`]) and their RFC 3986 spellings. A URI template (the target of
/// a completion's `ref/resource`) is read with its braces escaped, and
/// spelled with them again. Empty when `uri` is not a URI (or IRI, or
/// template) at all, or already has none of these.
fn equivalent_spellings(uri: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    spell(uri, uri, &mut out);
    // A port that neither reading takes for one (`private:abc`,
    // `private:%31`, `private:1:2`, a full-width digit) makes the text no
    // URL to either, yet a handler reading the host as many libraries do
    // (Python's `urlsplit`: after the last `@`, before the first `:`)
    // serves `private` (found from outside): the text without its
    // userinfo and port is read too.
    if let Some(loose) = without_userinfo_and_port(uri) {
        spell(&loose, uri, &mut out);
    }
    out
}

/// `uri` with its authority cut to its host: no userinfo (up to the last
/// `@`), no port (from the first `:` of a host that is not an IP literal
/// in brackets); `None` when it has no `://` or nothing to cut.
fn without_userinfo_and_port(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    let tail = rest.get(end..)?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if host_port.starts_with('[') {
        host_port.find(']').and_then(|at| host_port.get(..=at))?
    } else {
        host_port.split(':').next()?
    };
    (host.len() < authority.len()).then(|| format!("{scheme}://{host}{tail}"))
}

/// Adds to `out` `text` and its spellings (see [`equivalent_spellings`]),
/// other than `uri`, the text the client sent.
fn spell(text: &str, uri: &str, out: &mut Vec<String>) {
    let template = uri.contains(['{', '}']);
    let add = |spelling: String, out: &mut Vec<String>| {
        // A template's braces, escaped while it was read, are spelled
        // again.
        let spelling = if template {
            spelling.replace("%7B", "{").replace("%7D", "}")
        } else {
            spelling
        };
        if spelling != uri && !out.contains(&spelling) {
            out.push(spelling);
        }
    };
    if text != uri && !out.iter().any(|s| s == text) {
        out.push(text.to_owned());
    }
    for spelling in rfc3986_spellings(text) {
        add(spelling, out);
    }
    // The WHATWG reading, and the RFC 3986 reading of what it gives: a
    // tab, a line break or a space at either end (which the WHATWG reading
    // drops) makes a text no URI, and hid the case of its host and its
    // escapes from the RFC 3986 reading (found from outside:
    // `NOTES://PRIVATE/1\n` and `notes://Pri\tvate/1` needed no scope, each
    // trick alone did).
    for whatwg in whatwg_spellings(text) {
        for spelling in rfc3986_spellings(&whatwg) {
            add(spelling, out);
        }
        add(whatwg, out);
    }
}

/// The RFC 3986 spellings of [`equivalent_spellings`]: the normal form,
/// without the fragment, and bare (host and path, with and without the
/// port); none when `uri` is not
/// a URI, IRI or template.
fn rfc3986_spellings(uri: &str) -> Vec<String> {
    use iri_string::types::IriStr;
    let escaped;
    let iri = match IriStr::new(uri) {
        Ok(iri) => iri,
        Err(_) if uri.contains(['{', '}']) => {
            escaped = uri.replace('{', "%7B").replace('}', "%7D");
            match IriStr::new(&escaped) {
                Ok(iri) => iri,
                Err(_) => return Vec::new(),
            }
        }
        Err(_) => return Vec::new(),
    };
    let normal = iri.normalize().to_string();
    let absolute = iri.to_absolute().normalize().to_string();
    let mut bare = None;
    let mut with_port = None;
    if let Ok(normal) = IriStr::new(&absolute) {
        let mut head = format!("{}:", normal.scheme_str());
        if let Some(authority) = normal.authority_components() {
            head.push_str("//");
            head.push_str(authority.host());
            // Bare with its port (a pattern may name one) and without it:
            // a handler that looks at the host and the path ignores the
            // port as it ignores the userinfo (found from outside:
            // `notes://private:1/1` matched no rule).
            if let Some(port) = authority.port().filter(|p| !p.is_empty()) {
                with_port = Some(format!("{head}:{port}{}", normal.path_str()));
            }
        }
        head.push_str(normal.path_str());
        bare = Some(head);
    }
    [Some(normal), Some(absolute), bare, with_port]
        .into_iter()
        .flatten()
        .collect()
}

/// The spellings of `uri` as the WHATWG URL standard reads it (the `url`
/// crate, browsers and most URL libraries), whole, bare (without
/// userinfo, query and fragment) and bare without its port. It reads more than RFC 3986 admits: in
/// a special scheme (`file`, `http`, `https`, `ws`, `wss`, `ftp`) a
/// backslash is a path separator, tabs and line breaks are dropped
/// anywhere, `%2e` is a dot in a dot segment, and leading and trailing
/// spaces are trimmed; so a handler that reads
/// `file:///srv/public\..\private/1` with `url::Url` serves
/// `file:///srv/private/1`, and the rules of that URI must cover it.
fn whatwg_spellings(uri: &str) -> Vec<String> {
    let Ok(mut url) = url::Url::parse(uri) else {
        return Vec::new();
    };
    let whole = url.as_str().to_owned();
    // Cannot-be-a-base URLs have no userinfo: nothing to remove then.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    let bare = url.as_str().to_owned();
    // And without the port (see `rfc3986_spellings`); a URL without a host
    // keeps none.
    let portless =
        (url.port().is_some() && url.set_port(None).is_ok()).then(|| url.as_str().to_owned());
    [Some(whole), Some(bare), portless]
        .into_iter()
        .flatten()
        .collect()
}

/// Compiles a pattern's text into atoms.
fn compile(text: &str) -> Vec<Atom> {
    let (body, trailing_any) = match text.strip_suffix('*') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let bytes = body.as_bytes();
    let mut atoms = Vec::with_capacity(bytes.len() + 1);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'{'
            && let Some(len) = bytes
                .get(i + 1..)
                .and_then(|rest| memchr::memchr(b'}', rest))
        {
            let operator = bytes.get(i + 1).copied();
            atoms.push(if matches!(operator, Some(b'+' | b'#')) {
                Atom::Any
            } else {
                Atom::Segment
            });
            // Skip `{`, the expression and `}`.
            i += len + 2;
            continue;
        }
        atoms.push(Atom::Byte(b));
        i += 1;
    }
    if trailing_any {
        atoms.push(Atom::Any);
    }
    atoms
}

/// Runs the pattern's automaton over `uri`: `live[k]` says whether the first
/// `k` atoms can have consumed the bytes read so far. Placeholders consume
/// zero or more bytes, so a live state before one makes the state after it
/// live too (one forward pass).
fn run(atoms: &[Atom], uri: &[u8]) -> bool {
    live_states(atoms, uri).is_some_and(|live| live.last().copied().unwrap_or(false))
}

/// The states live after reading `uri` (`None` when none is).
fn live_states(atoms: &[Atom], uri: &[u8]) -> Option<Vec<bool>> {
    let mut live = vec![false; atoms.len() + 1];
    let mut next = vec![false; atoms.len() + 1];
    if let Some(first) = live.first_mut() {
        *first = true;
    }
    close(atoms, &mut live);
    for &byte in uri {
        next.iter_mut().for_each(|s| *s = false);
        let mut any = false;
        for (k, atom) in atoms.iter().enumerate() {
            if !live.get(k).copied().unwrap_or(false) {
                continue;
            }
            let target = match atom {
                Atom::Byte(b) if *b == byte => k + 1,
                Atom::Byte(_) => continue,
                Atom::Segment if byte == b'/' => continue,
                Atom::Segment | Atom::Any => k,
            };
            if let Some(slot) = next.get_mut(target) {
                *slot = true;
                any = true;
            }
        }
        if !any {
            return None;
        }
        close(atoms, &mut next);
        std::mem::swap(&mut live, &mut next);
    }
    Some(live)
}

/// Follows the empty transitions: past a live placeholder is live too.
fn close(atoms: &[Atom], states: &mut [bool]) {
    for (k, atom) in atoms.iter().enumerate() {
        if matches!(atom, Atom::Segment | Atom::Any)
            && states.get(k).copied().unwrap_or(false)
            && let Some(after) = states.get_mut(k + 1)
        {
            *after = true;
        }
    }
}

/// One JSON-RPC call as far as authorization is concerned: its method and
/// the names it acts on (a tool or prompt name, or resource URIs).
///
/// Most calls name one target; `subscriptions/listen` (MCP 2026-07-28) names
/// every resource URI it subscribes to, and a per-resource requirement then
/// applies to each of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct Operation {
    method: String,
    targets: Vec<String>,
    /// What a `completion/complete` completes (its target is that prompt's
    /// name or that template's URI).
    completes: Option<Completes>,
}

/// What a `completion/complete` request completes an argument of (MCP
/// "Completion", `params.ref`): the answer may reveal what the prompt or
/// the resources hold, so the request needs their scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completes {
    /// `ref/prompt`: a prompt, by name (`prompt_scopes`).
    Prompt,
    /// `ref/resource`: a resource template, by its URI template as written
    /// (`resource_scopes`, matched as a URI is).
    Resource,
}

impl Operation {
    /// An operation on `targets` (empty when the method names nothing).
    pub(crate) fn new<I, S>(method: impl Into<String>, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            method: method.into(),
            targets: targets.into_iter().map(Into::into).collect(),
            completes: None,
        }
    }

    /// A `completion/complete` of an argument of `target`, a prompt or a
    /// resource template.
    pub(crate) fn completion(completes: Completes, target: String) -> Self {
        Self {
            method: COMPLETE.to_owned(),
            targets: vec![target],
            completes: Some(completes),
        }
    }

    /// The JSON-RPC method, e.g. `tools/call`.
    pub(crate) fn method(&self) -> &str {
        &self.method
    }

    /// Every name the call acts on.
    pub(crate) fn targets(&self) -> &[String] {
        &self.targets
    }

    /// The single name the call carries (what `Mcp-Name` mirrors): `None`
    /// when it names nothing or several things.
    pub(crate) fn name(&self) -> Option<&str> {
        match self.targets.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// The method of argument completion (MCP "Completion").
pub(crate) const COMPLETE: &str = "completion/complete";

/// SEP-2640 (rmcp 3.11): the direct children of a directory resource,
/// named by `params.uri`.
pub(crate) const DIRECTORY_READ: &str = "resources/directory/read";

/// SEP-2640 (rmcp 3.11): one skill's manifest, named by the resource URI
/// of its `SKILL.md` (`params.uri`).
pub(crate) const SKILL_GET: &str = "skills/get";

/// The methods whose targets are resource URIs.
pub(crate) fn is_resource_method(method: &str) -> bool {
    matches!(
        method,
        "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "subscriptions/listen"
            | DIRECTORY_READ
            | SKILL_GET
    )
}

/// Whether the rule of `pattern` applies to `method` on `target`: a
/// resource method on a URI it matches, and a directory read
/// ([`DIRECTORY_READ`]) also when the pattern matches one of the
/// directory's direct children, whose URIs, names and descriptions the
/// answer lists.
pub(crate) fn resource_rule_applies(
    pattern: &UriPattern,
    method: &str,
    target: &Spellings<'_>,
) -> bool {
    is_resource_method(method)
        && (pattern.matches_spelled(target)
            || (method == DIRECTORY_READ && pattern.matches_a_child(target)))
}

impl ScopePolicy {
    /// Whether any per-operation requirement is declared (if not, requests
    /// are never parsed).
    pub(crate) fn has_operation_rules(&self) -> bool {
        !(self.methods.is_empty()
            && self.tools.is_empty()
            && self.prompts.is_empty()
            && self.resources.is_empty())
    }

    /// Every scope `op` needs: the global requirement, then the method's,
    /// then, for each target in turn, the tool's, prompt's or resources'.
    /// Deduplicated, in that order: the union over all targets.
    pub(crate) fn required_for(&self, op: &Operation) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |scopes: &[String]| extend_unique(&mut out, scopes);
        push(&self.global);
        if let Some(s) = self.methods.get(&op.method) {
            push(s);
        }
        // `subscriptions/listen` replaced `resources/subscribe` (MCP
        // 2026-07-28): a listen that subscribes to resources subscribes,
        // so a rule on subscribing applies to it too.
        if op.method == "subscriptions/listen"
            && !op.targets.is_empty()
            && let Some(s) = self.methods.get("resources/subscribe")
        {
            push(s);
        }
        for target in &op.targets {
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
                method if is_resource_method(method) => {
                    let target = Spellings::new(target);
                    for (pattern, s) in &self.resources {
                        if resource_rule_applies(pattern, method, &target) {
                            push(s);
                        }
                    }
                }
                // A completion needs what the prompt or template it
                // completes needs (their declared scopes).
                COMPLETE => match op.completes {
                    Some(Completes::Prompt) => {
                        if let Some(s) = self.prompts.get(target) {
                            push(s);
                        }
                    }
                    Some(Completes::Resource) => {
                        let target = Spellings::new(target);
                        for (pattern, s) in &self.resources {
                            if pattern.matches_spelled(&target)
                                || pattern.may_match_an_expansion(&target)
                            {
                                push(s);
                            }
                        }
                    }
                    None => {}
                },
                _ => {}
            }
        }
        out
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
        // A bare `*` (or a lone separator before it) grants nothing.
        for bare in ["*", ":*", "**"] {
            assert!(!h.grants(&[bare], "anything"), "{bare}");
            assert!(!h.grants(&[bare], "notes:read"), "{bare}");
        }
    }

    #[test]
    fn uri_patterns() {
        assert!(UriPattern::new("notes://all").matches("notes://all"));
        assert!(!UriPattern::new("notes://all").matches("notes://all/x"));
        assert!(!UriPattern::new("notes://all").matches("notes://al"));
        assert!(UriPattern::new("notes://{id}").matches("notes://42"));
        assert!(!UriPattern::new("notes://{id}").matches("notes://42/x"));
        assert!(UriPattern::new("notes://{id}/body").matches("notes://42/body"));
        assert!(!UriPattern::new("notes://{id}/body").matches("notes://4/2/body"));
        assert!(UriPattern::new("file:///{a}/{b}.txt").matches("file:///x/y.txt"));
        assert!(!UriPattern::new("file:///{a}/{b}.txt").matches("file:///x/y.md"));
        assert!(UriPattern::new("file:///home/*").matches("file:///home/a/b"));
        assert!(!UriPattern::new("file:///home/*").matches("file:///etc/passwd"));
        // Templates with a trailing `*`, reserved expansion.
        assert!(UriPattern::new("db://{name}/*").matches("db://x/t/1"));
        assert!(!UriPattern::new("db://{name}/*").matches("db://x"));
        assert!(UriPattern::new("file:///{+path}").matches("file:///a/b/c"));
        assert!(UriPattern::new("file:///{#path}.md").matches("file:///a/b.md"));
        // An unclosed brace is literal text.
        assert!(UriPattern::new("odd://{x").matches("odd://{x"));
        assert!(!UriPattern::new("odd://{x").matches("odd://y"));
    }

    // RFC 6570: an empty value expands to nothing, so `notes://` is what
    // `notes://{id}` gives for `id = ""`; the requirement covers it.
    #[test]
    fn placeholder_matches_the_expansion_of_an_empty_value() {
        assert!(UriPattern::new("notes://{id}").matches("notes://"));
        assert!(UriPattern::new("notes://private/{id}").matches("notes://private/"));
    }

    // Issue 12: a greedy placeholder that never backtracks missed URIs its
    // template expands to, so their requirement was skipped (fail open).
    #[test]
    fn every_expansion_of_a_template_matches() {
        let p = UriPattern::new("x://{a}-{b}-c");
        assert!(p.matches("x://x-y-c-c"));
        assert!(p.matches("x://x-y-c"));
        assert!(!p.matches("x://x-y/-c"));
        let p = UriPattern::new("x://{a}.{b}.{c}");
        assert!(p.matches("x://a.b.c.d.e"));
        assert!(p.matches("x://..."));
    }

    // Issue 12: `{var}` followed by literal text sliced the URI inside a
    // multi-byte character and panicked.
    #[test]
    fn multibyte_uris_never_panic() {
        let patterns = [
            "notes://{id}x",
            "notes://{id}é",
            "notes://{id}/body",
            "notes://{a}{b}",
            "notes://é{id}é",
            "notes://{id}€*",
            "{",
            "}",
            "{}",
            "{{}}}",
            "*",
            "é*",
            "{+x}é",
        ];
        let uris = [
            "notes://é",
            "notes://éx",
            "notes://aé",
            "notes://€€€x",
            "notes://😀/body",
            "notes://é😀é",
            "notes://\u{0}é",
            "é",
            "",
            "{",
            "notes://é€",
        ];
        for p in patterns {
            for u in uris {
                let _ = UriPattern::new(p).matches(u);
            }
        }
        assert!(UriPattern::new("notes://{id}x").matches("notes://éx"));
        assert!(UriPattern::new("notes://{id}é").matches("notes://aé"));
        assert!(!UriPattern::new("notes://{id}x").matches("notes://é"));
        assert!(UriPattern::new("notes://é{id}é").matches("notes://é😀é"));
    }

    // The WHATWG URL standard (the `url` crate) reads more than RFC 3986
    // admits: backslashes as slashes in special schemes, tabs and line
    // breaks dropped, `%2e` dot segments, spaces trimmed. A handler reading
    // the URI with it serves the private file: the rule must cover it.
    #[test]
    fn whatwg_spellings_of_a_uri_match() {
        let file = UriPattern::new("file:///srv/private/*");
        for uri in [
            "file:///srv/public\\..\\private/1",
            "file:///srv\\private\\1",
            "file:///srv/pri\tvate/1",
            "file:///srv/pri\r\nvate/1",
            " file:///srv/private/1",
            "file:///srv/public/%2e%2E/private/1",
        ] {
            assert!(file.matches(uri), "{uri:?}");
        }
        let web = UriPattern::new("https://files.example/private/{id}");
        for uri in [
            "https://files.example\\private\\1",
            "HTTPS://FILES.example/x/..\\private/1",
            "https://files.example/private/1?a=/b#/c",
            "https://u:p@files.example/private/1",
        ] {
            assert!(web.matches(uri), "{uri:?}");
        }
        assert!(!file.matches("file:///srv/public/1"));
        assert!(!web.matches("https://files.example/public/1"));
    }

    // RFC 3986 section 6.2.2: a URI spelled with another case of scheme or
    // host, percent-encoded unreserved characters, dot segments or a
    // fragment names the same resource; a handler reading it with a URI
    // library serves the same note, so the rule must cover it.
    #[test]
    fn equivalent_spellings_of_a_uri_match() {
        let private = UriPattern::new("notes://private/{id}");
        for uri in [
            "notes://private/1",
            "NOTES://private/1",
            "notes://PRIVATE/1",
            "Notes://Private/1",
            "notes://%70rivate/1",
            "notes://%70%72%69%76%61%74%65/1",
            "notes://private/x/../1",
            "notes://private/./1",
            "notes://private/a/b/../../1",
            "notes://private/1#top",
            "notes://private/1#/x",
            "notes://private/1?a=/b",
            "notes://alice@private/1",
            "notes://private:/1",
            // A port, which a handler looking at the host and the path
            // ignores as it ignores the userinfo (found from outside).
            "notes://private:1/1",
            "notes://private:443/1",
            "notes://a:b@private:9/1?q#f",
            "NOTES://Private:1/1",
            // Characters the WHATWG reading drops, beside what the RFC 3986
            // reading folds (found from outside: each trick alone was
            // covered, together they were not).
            "NOTES://PRIVATE/1\n",
            "notes://Pri\tvate/1",
            "notes://Private/1\r",
            " Notes://Private/1",
            "\u{1}notes://Private/1",
            "notes://Private/\t1",
            "notes://%70ri\tvate/1",
            "notes://al\tice@Private/1",
            "notes://Private:1/\t1",
            // A port neither reading takes for one, which Python's
            // `urlsplit` cuts off (found from outside).
            "notes://private:abc/1",
            "notes://private: 1/1",
            "notes://private:1:2/1",
            "notes://private:%31/1",
            "notes://private:\u{ff11}/1",
            "notes://a@b@Private:x/1",
            " notes://private:abc/\t1",
        ] {
            assert!(private.matches(uri), "{uri:?}");
        }
        assert!(!private.matches("notes://shared:abc/1"));
        // A pattern naming a port is matched with it; a rule without one
        // covers every port.
        let ported = UriPattern::new("https://files.example:8443/private/{id}");
        assert!(ported.matches("https://FILES.example:8443/private/1"));
        assert!(!ported.matches("https://files.example/private/1"));
        let web = UriPattern::new("https://files.example/private/{id}");
        for uri in [
            "https://files.example:8443/private/1",
            "https://files.example:443/private/1",
            "HTTPS://Files.Example:8443/private/\t1",
        ] {
            assert!(web.matches(uri), "{uri:?}");
        }
        assert!(!web.matches("https://files.example:8443/public/1"));
        // A template too (a completion's `ref/resource`).
        assert!(private.matches("Notes://Private/{id}\t"));
        assert!(private.matches("notes://private:7/{id}"));
        // A template written otherwise than the rule may expand to what the
        // rule covers (found from outside: no scope asked).
        let expands = |p: &UriPattern, t: &str| p.may_match_an_expansion(&Spellings::new(t));
        for template in [
            "notes://private{/id}",
            "notes://{kind}/{id}",
            "notes://{+path}",
            "{uri}",
            "NOTES://{kind}/1",
            "notes://pri{x}ate/{id}",
        ] {
            assert!(expands(&private, template), "{template}");
        }
        for template in [
            "notes://shared/{id}",
            "notes://shared{/id}",
            "notes://{kind}x/1/2",
            "notes://private/1",
        ] {
            assert!(!expands(&private, template), "{template}");
        }
        // Too long to compare: taken to match.
        assert!(expands(
            &private,
            &format!("notes://{{x}}/{}", "a".repeat(5_000))
        ));
        let exact = UriPattern::new("config://secrets");
        for uri in [
            "config://secrets",
            "CONFIG://SECRETS",
            "config://secrets#x",
            "config://%73ecrets",
        ] {
            assert!(exact.matches(uri), "{uri}");
        }
        let home = UriPattern::new("file:///home/*");
        for uri in [
            "file:///etc/../home/alice/notes",
            "FILE:///home/alice",
            "file:///%68ome/alice",
        ] {
            assert!(home.matches(uri), "{uri}");
        }
        // Not equivalent: other paths, other hosts, an escaped `/`
        // (a reserved character keeps its escape).
        // A completion names a template: its other spellings match too.
        for template in [
            "notes://private/{id}",
            "NOTES://private/{id}",
            "notes://%70rivate/{id}",
            "notes://private/x/../{id}",
        ] {
            assert!(private.matches(template), "{template}");
        }
        assert!(!private.matches("notes://shared/{id}"));
        // A pattern not written in normal form is matched in it too.
        let odd = UriPattern::new("Notes://Private/{id}");
        for uri in [
            "Notes://Private/1",
            "notes://private/1",
            "NOTES://PRIVATE/1",
        ] {
            assert!(odd.matches(uri), "{uri}");
        }
        assert!(UriPattern::new("FILE:///home/*").matches("file:///home/a"));
        assert!(!private.matches("notes://private%2F1"));
        assert!(!home.matches("file:///etc/passwd"));
        assert!(!exact.matches("config://secrets/x"));
    }

    // SEP-2640: a directory read lists the directory's direct children, so
    // it needs the rules of the directory and of each child; a skill is
    // the resource of its `SKILL.md`.
    #[test]
    fn directory_reads_need_the_rules_of_their_children() {
        let mut p = ScopePolicy::default();
        p.resources.push((
            UriPattern::new("notes://private/{id}"),
            vec!["notes:private".into()],
        ));
        p.resources
            .push((UriPattern::new("file:///home/*"), vec!["home".into()]));
        p.resources
            .push((UriPattern::new("cfg://secrets"), vec!["admin".into()]));
        let dir = |uri: &str| p.required_for(&Operation::new(DIRECTORY_READ, [uri]));
        for uri in [
            "notes://private",
            "notes://private/",
            "NOTES://private",
            "notes://private/x/..",
        ] {
            assert_eq!(dir(uri), ["notes:private"], "{uri}");
        }
        assert_eq!(dir("file:///home"), ["home"]);
        assert_eq!(dir("file:///home/alice"), ["home"]);
        // The child of `cfg://` is `cfg://secrets`.
        assert_eq!(dir("cfg://"), ["admin"]);
        // Neither the directory nor a direct child matches.
        assert!(dir("notes://shared").is_empty());
        assert!(dir("notes://").is_empty());
        assert!(dir("file:///").is_empty());
        assert!(dir("cfg://secrets/x").is_empty());
        // Only a directory read looks at the children.
        let read = Operation::new("resources/read", ["notes://private"]);
        assert!(p.required_for(&read).is_empty());
        let skill = Operation::new(SKILL_GET, ["file:///home/a/SKILL.md"]);
        assert_eq!(p.required_for(&skill), ["home"]);
    }

    // Linear time: a hostile URI against a template with many placeholders.
    #[test]
    fn hostile_uri_is_linear() {
        let p = UriPattern::new("x://{a}a{b}a{c}a{d}a{e}a{f}a{g}a{h}b");
        let uri = format!("x://{}", "a".repeat(100_000));
        assert!(!p.matches(&uri));
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
        let op = |m: &str, t: Option<&str>| Operation::new(m, t);
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

    // MCP 2026-07-28: `subscriptions/listen` names several resources; the
    // requirement is the union over all of them, and the legacy
    // `resources/subscribe` / `resources/unsubscribe` keep theirs.
    #[test]
    fn subscriptions_listen_needs_every_named_resource_scope() {
        let mut p = ScopePolicy::default();
        p.resources.push((
            UriPattern::new("notes://shared/{id}"),
            vec!["notes:read".into()],
        ));
        p.resources.push((
            UriPattern::new("notes://private/{id}"),
            vec!["notes:private".into()],
        ));
        let listen = Operation::new(
            "subscriptions/listen",
            ["notes://shared/1", "notes://private/2"],
        );
        assert_eq!(p.required_for(&listen), ["notes:read", "notes:private"]);
        assert_eq!(listen.name(), None);
        for method in [
            "resources/subscribe",
            "resources/unsubscribe",
            "resources/read",
        ] {
            let op = Operation::new(method, ["notes://private/2"]);
            assert_eq!(p.required_for(&op), ["notes:private"], "{method}");
            assert_eq!(op.name(), Some("notes://private/2"));
        }
        // Only resource methods look at resource rules.
        let tool = Operation::new("tools/call", ["notes://private/2"]);
        assert!(p.required_for(&tool).is_empty());
    }
}
