//! What an attacker varies (proptest strategies) and the raw HTTP/1.1 bytes
//! built from one generated request.

use super::*;

// ---------------------------------------------------------------------------
// What an attacker varies
// ---------------------------------------------------------------------------

/// Spellings of the mount path `m` (shown for `/mcp`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathSpelling {
    /// `/mcp`
    Exact,
    /// `/mcp/`
    TrailingSlash,
    /// `/mcp/x`
    Sub,
    /// `/mcp//`
    DoubleSlashEnd,
    /// `//mcp`
    DoubleSlashStart,
    /// `/MCP`
    Upper,
    /// `/mcp%2F`
    EncodedSlash,
    /// `/%6Dcp`
    EncodedChar,
    /// `/mcp?x=1`
    Query,
    /// `/mcp;x`
    Semicolon,
    /// `/./mcp`
    DotSegment,
    /// `/mcp/..`
    DotDot,
    /// `/mcp/../mcp`
    DotDotBack,
}

impl PathSpelling {
    pub(crate) fn spell(self, m: &str) -> String {
        let (parent, last) = m.rsplit_once('/').unwrap_or(("", m));
        match self {
            PathSpelling::Exact => m.to_owned(),
            PathSpelling::TrailingSlash => format!("{m}/"),
            PathSpelling::Sub => format!("{m}/x"),
            PathSpelling::DoubleSlashEnd => format!("{m}//"),
            PathSpelling::DoubleSlashStart => format!("/{m}"),
            PathSpelling::Upper => m.to_ascii_uppercase(),
            PathSpelling::EncodedSlash => format!("{m}%2F"),
            PathSpelling::EncodedChar => {
                let mut chars = last.chars();
                let first = chars.next().map(|c| c as u32).unwrap_or(0x6d);
                format!("{parent}/%{first:02X}{}", chars.as_str())
            }
            PathSpelling::Query => format!("{m}?x=1"),
            PathSpelling::Semicolon => format!("{m};x"),
            PathSpelling::DotSegment => format!("/.{m}"),
            PathSpelling::DotDot => format!("{m}/.."),
            PathSpelling::DotDotBack => format!("{m}/../{last}"),
        }
    }
}

/// How the `Authorization` field is spelled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scheme {
    Bearer,
    Lower,
    Upper,
    ExtraSpaces,
    TrailingSpaces,
    Tab,
}

impl Scheme {
    pub(crate) fn spell(self, token: &str) -> String {
        match self {
            Scheme::Bearer => format!("Bearer {token}"),
            Scheme::Lower => format!("bearer {token}"),
            Scheme::Upper => format!("BEARER {token}"),
            Scheme::ExtraSpaces => format!("Bearer    {token}"),
            Scheme::TrailingSpaces => format!("Bearer {token}   "),
            Scheme::Tab => format!("Bearer\t{token}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth {
    None,
    One(Scheme, TokenKind),
    /// Two `Authorization` fields.
    Two(TokenKind, TokenKind),
}

impl Auth {
    /// What the request may be granted: only a single field with a good token.
    pub(crate) fn grant(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Auth::One(_, kind) => kind.grant(),
            Auth::None | Auth::Two(..) => None,
        }
    }
}

/// Whose session id a `Mcp-Session-Id` field carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionRef {
    /// alice's own legacy session.
    Own,
    /// bob's legacy session.
    Victim,
    Garbage,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum SessionName {
    Canonical,
    Lower,
    Upper,
}

impl SessionName {
    pub(crate) fn spell(self) -> &'static str {
        match self {
            SessionName::Canonical => "Mcp-Session-Id",
            SessionName::Lower => "mcp-session-id",
            SessionName::Upper => "MCP-SESSION-ID",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Call(&'static str),
    /// `"\u0077rite_tool"`.
    UnicodeEscapedWrite,
    ToolsList,
    ReadPrivate,
    /// Legacy `resources/subscribe` to the protected resource.
    SubscribePrivate,
    Initialize,
    /// `"method":"tools/list","method":"tools/call"` calling write_tool.
    DuplicateMethod,
    /// `"name":"read_tool","name":"write_tool"`.
    DuplicateName,
    /// A JSON-RPC batch: read_tool then write_tool.
    Batch,
    /// write_tool with arguments nested deeper than any parser's limit.
    DeepNesting,
    Notification,
    Empty,
}

impl BodyKind {
    /// (method, name) an honest client would put in `Mcp-Method`/`Mcp-Name`
    /// (for ambiguous bodies: the reading an attacker hopes for).
    pub(crate) fn honest_headers(self) -> Option<(&'static str, Option<&'static str>)> {
        Some(match self {
            BodyKind::Call(t) => ("tools/call", Some(t)),
            BodyKind::UnicodeEscapedWrite | BodyKind::DeepNesting => {
                ("tools/call", Some("write_tool"))
            }
            BodyKind::ToolsList | BodyKind::DuplicateMethod => ("tools/list", None),
            BodyKind::ReadPrivate => ("resources/read", Some(PRIVATE_URI)),
            BodyKind::SubscribePrivate => ("resources/subscribe", None),
            BodyKind::Initialize => ("initialize", None),
            BodyKind::DuplicateName | BodyKind::Batch => ("tools/call", Some("read_tool")),
            BodyKind::Notification => ("notifications/initialized", None),
            BodyKind::Empty => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum McpHeaders {
    Absent,
    Honest,
    /// `Mcp-Method: tools/call`, `Mcp-Name: read_tool` whatever the body says.
    LieName,
    /// `Mcp-Method: tools/list` whatever the body says.
    LieMethod,
    /// The honest `Mcp-Name` in the `=?base64?...?=` sentinel form.
    HonestBase64,
    /// `Mcp-Name: =?base64?(read_tool)?=` whatever the body says.
    LieBase64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Hosts {
    One,
    SameTwice,
    OwnThenEvil,
    EvilThenOwn,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    None,
    Foreign,
    Own,
}

/// One generated request.
#[derive(Debug, Clone)]
pub(crate) struct Attack {
    pub(crate) method: &'static str,
    pub(crate) path: PathSpelling,
    pub(crate) auth: Auth,
    pub(crate) sessions: Vec<(SessionName, SessionRef)>,
    pub(crate) protocol: Option<&'static str>,
    pub(crate) body: BodyKind,
    pub(crate) modern_meta: bool,
    pub(crate) bom: bool,
    pub(crate) trailing_garbage: bool,
    pub(crate) mcp_headers: McpHeaders,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) gzip: bool,
    pub(crate) hosts: Hosts,
    pub(crate) origin: Origin,
}

pub(crate) fn token_kind() -> impl Strategy<Value = TokenKind> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            TokenKind::AliceRead,
            TokenKind::AliceWrite,
            TokenKind::AliceAll,
            TokenKind::AliceNone,
            TokenKind::Bob,
        ]),
        1 => proptest::sample::select(vec![
            TokenKind::Expired,
            TokenKind::WrongAudience,
            TokenKind::ForeignIssuer,
            TokenKind::Garbage,
        ]),
    ]
}

pub(crate) fn auth() -> impl Strategy<Value = Auth> {
    let scheme = prop_oneof![
        4 => Just(Scheme::Bearer),
        1 => proptest::sample::select(vec![
        Scheme::Bearer,
        Scheme::Lower,
        Scheme::Upper,
        Scheme::ExtraSpaces,
        Scheme::TrailingSpaces,
        Scheme::Tab,
    ]),
    ];
    prop_oneof![
        1 => Just(Auth::None),
        8 => (scheme, token_kind()).prop_map(|(s, k)| Auth::One(s, k)),
        1 => (token_kind(), token_kind()).prop_map(|(a, b)| Auth::Two(a, b)),
    ]
}

pub(crate) fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        24 => Just("POST"),
        2 => Just("GET"),
        2 => Just("DELETE"),
        1 => Just("PUT"),
        1 => Just("PATCH"),
        1 => Just("OPTIONS"),
        1 => Just("HEAD"),
    ]
}

pub(crate) fn path() -> impl Strategy<Value = PathSpelling> {
    use PathSpelling::*;
    prop_oneof![
        6 => Just(Exact),
        2 => Just(TrailingSlash),
        2 => Just(Sub),
        1 => proptest::sample::select(vec![
            DoubleSlashEnd,
            DoubleSlashStart,
            Upper,
            EncodedSlash,
            EncodedChar,
            Query,
            Semicolon,
            DotSegment,
            DotDot,
            DotDotBack,
        ]),
    ]
}

pub(crate) fn sessions() -> impl Strategy<Value = Vec<(SessionName, SessionRef)>> {
    let one = (
        proptest::sample::select(vec![
            SessionName::Canonical,
            SessionName::Lower,
            SessionName::Upper,
        ]),
        proptest::sample::select(vec![
            SessionRef::Victim,
            SessionRef::Own,
            SessionRef::Garbage,
        ]),
    );
    proptest::collection::vec(one, 0..=2)
}

pub(crate) fn body() -> impl Strategy<Value = BodyKind> {
    use BodyKind::*;
    prop_oneof![
        10 => proptest::sample::select(vec![
            Call("write_tool"),
            Call("read_tool"),
            Call("open_tool"),
        ]),
        1 => Just(UnicodeEscapedWrite),
        1 => Just(ToolsList),
        1 => Just(ReadPrivate),
        1 => Just(SubscribePrivate),
        1 => Just(Initialize),
        1 => Just(DuplicateMethod),
        1 => Just(DuplicateName),
        1 => Just(Batch),
        1 => Just(DeepNesting),
        1 => Just(Notification),
        1 => Just(Empty),
    ]
}

/// `Some(x)`: the attacker overrides what an honest client of the chosen
/// generation would send; `None`: the honest value. Mostly honest, so that
/// requests get far enough to run something.
pub(crate) fn deviation<T: Clone + std::fmt::Debug + 'static>(
    weight: u32,
    alternatives: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![
        weight => Just(None),
        1 => alternatives.prop_map(Some),
    ]
    .boxed()
}

pub(crate) fn attack() -> impl Strategy<Value = Attack> {
    // The generation an honest client would speak: 2026-07-28 stateless, or
    // a legacy session (alice's own).
    let modern = any::<bool>();
    let protocol = deviation(
        8,
        proptest::sample::select(vec![
            Some("2026-07-28"),
            Some("2025-11-25"),
            Some("2025-06-18"),
            None,
            Some("garbage"),
        ]),
    );
    let meta = deviation(10, any::<bool>());
    let mcp_headers = deviation(
        5,
        proptest::sample::select(vec![
            McpHeaders::Absent,
            McpHeaders::Honest,
            McpHeaders::LieName,
            McpHeaders::LieMethod,
            McpHeaders::HonestBase64,
            McpHeaders::LieBase64,
        ]),
    );
    let session_fields = deviation(2, sessions());
    let content_type = prop_oneof![
        16 => Just(Some("application/json")),
        1 => Just(Some("Application/JSON; charset=utf-8")),
        1 => Just(Some("text/plain")),
        1 => Just(None),
    ];
    let hosts = prop_oneof![
        20 => Just(Hosts::One),
        1 => proptest::sample::select(vec![Hosts::SameTwice, Hosts::OwnThenEvil, Hosts::EvilThenOwn]),
    ];
    let origin = prop_oneof![
        20 => Just(Origin::None),
        1 => Just(Origin::Foreign),
        1 => Just(Origin::Own),
    ];
    let rare = || prop_oneof![25 => Just(false), 1 => Just(true)];
    (
        (method(), path(), auth(), body(), modern),
        (protocol, meta, mcp_headers, session_fields),
        (rare(), rare(), rare(), content_type, hosts, origin),
    )
        .prop_map(
            |(
                (method, path, auth, body, modern),
                (protocol, meta, mcp_headers, session_fields),
                (bom, trailing_garbage, gzip, content_type, hosts, origin),
            )| {
                let (honest_protocol, honest_headers, honest_sessions) = if modern {
                    (Some("2026-07-28"), McpHeaders::Honest, Vec::new())
                } else {
                    (
                        Some("2025-11-25"),
                        McpHeaders::Absent,
                        vec![(SessionName::Canonical, SessionRef::Own)],
                    )
                };
                Attack {
                    method,
                    path,
                    auth,
                    sessions: session_fields.unwrap_or(honest_sessions),
                    protocol: protocol.unwrap_or(honest_protocol),
                    body,
                    modern_meta: meta.unwrap_or(modern),
                    bom,
                    trailing_garbage,
                    mcp_headers: mcp_headers.unwrap_or(honest_headers),
                    content_type,
                    gzip,
                    hosts,
                    origin,
                }
            },
        )
}

// ---------------------------------------------------------------------------
// Building the bytes
// ---------------------------------------------------------------------------

pub(crate) fn body_bytes(a: &Attack, id: u64) -> Vec<u8> {
    let meta = if a.modern_meta { MODERN_META } else { "" };
    let params = |fields: &[&str]| {
        let mut all: Vec<&str> = fields.to_vec();
        if !meta.is_empty() {
            all.push(meta);
        }
        format!("{{{}}}", all.join(","))
    };
    let request = |method: &str, params: String, id: u64| {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
    };
    let call = |name: &str, id: u64| {
        request(
            "tools/call",
            params(&[&format!(r#""name":{name}"#), r#""arguments":{}"#]),
            id,
        )
    };
    let text = match a.body {
        BodyKind::Call(tool) => call(&format!("\"{tool}\""), id),
        BodyKind::UnicodeEscapedWrite => call(r#""\u0077rite_tool""#, id),
        BodyKind::ToolsList => request("tools/list", params(&[]), id),
        BodyKind::ReadPrivate => request(
            "resources/read",
            params(&[&format!(r#""uri":"{PRIVATE_URI}""#)]),
            id,
        ),
        BodyKind::SubscribePrivate => request(
            "resources/subscribe",
            params(&[&format!(r#""uri":"{PRIVATE_URI}""#)]),
            id,
        ),
        BodyKind::Initialize => initialize_body(id),
        BodyKind::DuplicateMethod => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","method":"tools/call","params":{}}}"#,
            params(&[r#""name":"write_tool""#, r#""arguments":{}"#])
        ),
        BodyKind::DuplicateName => request(
            "tools/call",
            params(&[
                r#""name":"read_tool""#,
                r#""name":"write_tool""#,
                r#""arguments":{}"#,
            ]),
            id,
        ),
        BodyKind::Batch => format!(
            "[{},{}]",
            call("\"read_tool\"", id),
            call("\"write_tool\"", id + 1)
        ),
        BodyKind::DeepNesting => {
            let depth = 300;
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            request(
                "tools/call",
                params(&[
                    r#""name":"write_tool""#,
                    &format!(r#""arguments":{{"x":{nested}}}"#),
                ]),
                id,
            )
        }
        BodyKind::Notification => INITIALIZED.to_owned(),
        BodyKind::Empty => String::new(),
    };
    let mut bytes = Vec::new();
    if a.bom {
        bytes.extend_from_slice("\u{feff}".as_bytes());
    }
    bytes.extend_from_slice(text.as_bytes());
    if a.trailing_garbage {
        bytes.extend_from_slice(b" }{\"method\":\"tools/call\"} garbage");
    }
    bytes
}

/// The legacy sessions the run keeps open: alice's and bob's.
pub(crate) struct Sessions {
    pub(crate) own: String,
    pub(crate) victim: String,
}

pub(crate) fn session_value(r: SessionRef, s: &Sessions) -> String {
    match r {
        SessionRef::Own => s.own.clone(),
        SessionRef::Victim => s.victim.clone(),
        SessionRef::Garbage => "0123-garbage-session".to_owned(),
    }
}

pub(crate) fn build(t: &Target, a: &Attack, s: &Sessions) -> Raw {
    let own_host = t.addr.to_string();
    let mut raw = t.request(a.method, &a.path.spell(t.path()));
    match a.hosts {
        Hosts::One => {}
        Hosts::SameTwice => raw = raw.header("Host", &own_host).header("Host", &own_host),
        Hosts::OwnThenEvil => raw = raw.header("Host", &own_host).header("Host", "evil.example"),
        Hosts::EvilThenOwn => raw = raw.header("Host", "evil.example").header("Host", &own_host),
    }
    match a.auth {
        Auth::None => {}
        Auth::One(scheme, kind) => raw = raw.header("Authorization", &scheme.spell(t.token(kind))),
        Auth::Two(x, y) => {
            raw = raw
                .header("Authorization", &t.bearer(x))
                .header("Authorization", &t.bearer(y))
        }
    }
    raw = raw.header("Accept", "application/json, text/event-stream");
    if let Some(ct) = a.content_type {
        raw = raw.header("Content-Type", ct);
    }
    if let Some(v) = a.protocol {
        raw = raw.header("MCP-Protocol-Version", v);
    }
    for (name, r) in &a.sessions {
        raw = raw.header(name.spell(), &session_value(*r, s));
    }
    let headers = match a.mcp_headers {
        McpHeaders::Absent => None,
        McpHeaders::Honest | McpHeaders::HonestBase64 => a.body.honest_headers(),
        McpHeaders::LieName | McpHeaders::LieBase64 => Some(("tools/call", Some("read_tool"))),
        McpHeaders::LieMethod => Some(("tools/list", None)),
    };
    let base64 = matches!(
        a.mcp_headers,
        McpHeaders::HonestBase64 | McpHeaders::LieBase64
    );
    if let Some((method, name)) = headers {
        raw = raw.header("Mcp-Method", method);
        if let Some(name) = name {
            let value = if base64 {
                format!("=?base64?{}?=", BASE64.encode(name))
            } else {
                name.to_owned()
            };
            raw = raw.header("Mcp-Name", &value);
        }
    }
    if a.gzip {
        raw = raw.header("Content-Encoding", "gzip");
    }
    match a.origin {
        Origin::None => {}
        Origin::Foreign => raw = raw.header("Origin", "https://evil.example"),
        Origin::Own => raw = raw.header("Origin", &t.origin()),
    }
    if !matches!(a.method, "GET" | "HEAD" | "DELETE") || a.body != BodyKind::Empty {
        raw = raw.body(body_bytes(a, 11));
    }
    raw
}
