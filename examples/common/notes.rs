//! The notes server shared by the examples: three tools that show who is
//! calling and what their token allows, and two resource templates whose
//! per-resource scopes are visible from outside:
//! `notes://shared/{id}` (scope `notes:read`) and `notes://private/{id}`
//! (scope `notes:private`), readable with `resources/read` and subscribable
//! (`resources/subscribe` before 2026-07-28, `subscriptions/listen` in it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcp_oauth2::RequestContextExt;
use mcp_oauth2::{AuthConfigBuilder, AuthContext};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Implementation, ListResourceTemplatesResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, ResourceContents, ResourceTemplate,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;

/// Scope that reads notes.
pub(crate) const NOTES_READ: &str = "notes:read";
/// Scope that writes notes; it implies [`NOTES_READ`].
pub(crate) const NOTES_WRITE: &str = "notes:write";
/// Scope that reads the caller's private note resources.
pub(crate) const NOTES_PRIVATE: &str = "notes:private";

/// Scope that exports all of the caller's notes, their text included: it
/// implies [`NOTES_PRIVATE`] (declared with `scope_implies`, so that every
/// route that shows a note's text agrees: found from outside, the export
/// alone gave the text that `list_notes`, `read_note` and the resources
/// withheld from the same token); `export_notes` discovers mid-call that
/// it needs it (late step-up).
pub(crate) const NOTES_EXPORT: &str = "notes:export";

/// Template of the shared notes every `notes:read` token may read.
pub(crate) const SHARED_TEMPLATE: &str = "notes://shared/{id}";
/// Template of the caller's own notes (`notes:private`).
pub(crate) const PRIVATE_TEMPLATE: &str = "notes://private/{id}";

/// The shared notes: `notes://shared/<id>`.
const SHARED_NOTES: [(&str, &str); 2] = [
    ("welcome", "Welcome to the notes server."),
    ("rules", "Be kind; keep secrets in notes://private/."),
];

/// Notes per subject, shared by every session of the process.
/// Whose notes: the issuer, the tenant and the subject together (`alice`
/// of one tenant or issuer never reads `alice`'s notes of another).
fn owner(auth: &AuthContext) -> String {
    serde_json::json!([auth.issuer(), auth.tenant(), auth.subject()]).to_string()
}

pub(crate) type NoteStore = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// The MCP server.
#[derive(Clone)]
pub(crate) struct NotesServer {
    notes: NoteStore,
    downstream: Arc<Downstream>,
    /// Built once per process and shared: a stateless server builds a
    /// `NotesServer` for every request, and building a `ToolRouter` runs
    /// rmcp's tool-name check for every tool (a `HashSet` of the allowed
    /// characters built per name): about half the instructions of a whole
    /// stateless call when it was built per request (BENCHMARKS.md).
    tool_router: Arc<ToolRouter<Self>>,
}

/// The tool router, shared by every `NotesServer` of the process.
static TOOL_ROUTER: std::sync::OnceLock<Arc<ToolRouter<NotesServer>>> = std::sync::OnceLock::new();

/// The most bytes of the downstream's answer `downstream_whoami` reads
/// (and returns).
const MAX_DOWNSTREAM_BYTES: usize = 64 * 1024;

/// The environment variables `downstream_whoami` needs (besides the
/// optional `MCP_OAUTH2_TOKEN_ENDPOINT`).
pub(crate) const DOWNSTREAM_VARS: [&str; 4] = [
    "MCP_OAUTH2_DOWNSTREAM_AUDIENCE",
    "MCP_OAUTH2_DOWNSTREAM_URL",
    "MCP_OAUTH2_CLIENT_ID",
    "MCP_OAUTH2_CLIENT_SECRET",
];

/// The issuers whose callers `downstream_whoami` exchanges, from
/// `MCP_OAUTH2_ISSUER` and `MCP_OAUTH2_TENANTS`: `None` for every caller
/// (one plain issuer). The client is registered at one authorization
/// server: with several issuers, the first; when that first is an issuer
/// template, its tenants listed in `MCP_OAUTH2_TENANTS` (the client's
/// secret goes to each one's token endpoint), none with `*` (found from
/// outside: a template alone sent the secret to the token endpoint of any
/// tenant a token named, made-up ones included). The template itself is
/// kept in the list: it names no caller, so a list without tenants
/// exchanges nobody.
pub(crate) fn exchange_issuers(issuers: &str, tenants: &str) -> Option<Vec<String>> {
    let mut issuers = issuers.split(',').map(str::trim).filter(|i| !i.is_empty());
    let first = issuers.next()?;
    if first.contains("{tenant}") {
        let listed = tenants
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "*")
            .map(|t| first.replace("{tenant}", t));
        return Some(std::iter::once(first.to_owned()).chain(listed).collect());
    }
    issuers.next().map(|_| vec![first.to_owned()])
}

/// What `downstream_whoami` calls, and how it gets a token for it.
#[derive(Debug)]
pub(crate) enum Downstream {
    /// Not configured: the variables that are missing.
    Unavailable(String),
    /// The exchanger, the HTTP client, the audience and the URL, and the
    /// scopes to name when the user must consent (step-up).
    Ready {
        exchanger: mcp_oauth2::TokenExchanger,
        http: mcp_oauth2::DownstreamClient,
        audience: String,
        url: String,
        step_up_scopes: Vec<String>,
    },
}

impl Downstream {
    /// From the variables read through `get`: `MCP_OAUTH2_DOWNSTREAM_AUDIENCE`,
    /// `MCP_OAUTH2_DOWNSTREAM_URL`, `MCP_OAUTH2_CLIENT_ID`,
    /// `MCP_OAUTH2_CLIENT_SECRET` (all required), `MCP_OAUTH2_TOKEN_ENDPOINT`
    /// (default: discovered from the caller's issuer),
    /// `MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK` (`1`: `http://` on loopback),
    /// `MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES` (space-separated scopes of
    /// this server the step-up challenge names when the user must consent)
    /// and `MCP_OAUTH2_EXCHANGE_CACHE_KEY` (base64 of 32 bytes or more: with
    /// `shared`, the replicas' store, exchanged tokens are shared sealed
    /// under this key).
    ///
    /// [`Downstream::Unavailable`] when a required variable is missing (the
    /// tool says which); an error naming the variable when one that is set
    /// is unusable (the token endpoint or the downstream URL is not an
    /// `https://` URL, or `http://` on loopback with the opt-in; the cache
    /// key is not base64 of 32 bytes or more): the server refuses to start
    /// rather than tell every caller of the tool.
    #[allow(dead_code)] // the reference server's; other examples share this file
    pub(crate) fn from_vars(
        get: impl Fn(&str) -> Option<String>,
        shared: Option<Arc<dyn mcp_oauth2::store::SharedStore>>,
    ) -> Result<Self, String> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let loopback = value("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK").as_deref() == Some("1");
        // The variables that are set are checked first, whatever is missing.
        let endpoint = value("MCP_OAUTH2_TOKEN_ENDPOINT")
            .map(|v| https_url("MCP_OAUTH2_TOKEN_ENDPOINT", &v, loopback))
            .transpose()?;
        if let Some(url) = value(DOWNSTREAM_VARS[1]) {
            https_url(DOWNSTREAM_VARS[1], &url, loopback)?;
        }
        let cache_key = value("MCP_OAUTH2_EXCHANGE_CACHE_KEY")
            .map(|secret| {
                use base64::Engine as _;
                use base64::engine::general_purpose::{
                    STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
                };
                // Either alphabet, padded or not (found from outside: only
                // padded standard base64 was read, and the message said the
                // key was not base64); never a guessable key (one byte or a
                // short pattern repeated: the library refuses it).
                // Line breaks and blanks anywhere are dropped: `base64`
                // wraps its output at 76 characters (found from outside: a
                // 64-byte key so made was told it was not base64).
                let secret: String = secret
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect();
                let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                    .iter()
                    .find_map(|engine| engine.decode(secret.as_bytes()).ok())
                    .ok_or_else(|| {
                        "MCP_OAUTH2_EXCHANGE_CACHE_KEY is not base64 (standard or URL-safe, \
                         padded or not)"
                            .to_owned()
                    })?;
                mcp_oauth2::HandleKey::from_secret(&bytes).map_err(|e| match e {
                    mcp_oauth2::HandleError::WeakKey => {
                        "MCP_OAUTH2_EXCHANGE_CACHE_KEY is guessable (one byte or a short \
                         pattern repeated, or fewer than six distinct bytes): use 32 random \
                         bytes (head -c 32 /dev/urandom | base64)"
                            .to_owned()
                    }
                    mcp_oauth2::HandleError::ShortSecret => format!(
                        "MCP_OAUTH2_EXCHANGE_CACHE_KEY is base64 of {} bytes: at least 32 are needed",
                        bytes.len()
                    ),
                    other => format!("MCP_OAUTH2_EXCHANGE_CACHE_KEY: {other}"),
                })
            })
            .transpose()?;
        if cache_key.is_some() && shared.is_none() {
            return Err(
                "MCP_OAUTH2_EXCHANGE_CACHE_KEY is set without MCP_OAUTH2_REDIS_URL: there is no \
                 shared store to keep exchanged tokens in"
                    .to_owned(),
            );
        }
        // The step-up challenge names these scopes: scope tokens (RFC 6749
        // section 3.3), never `offline_access` (MCP scope selection).
        // Spaces separate, as in `MCP_OAUTH2_REQUIRED_SCOPES`: a tab or a
        // line break is refused below as no scope token's (found from
        // outside: taken as a separator here, refused there).
        let step_up_scopes: Vec<String> = value("MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES")
            .map(|v| {
                v.trim()
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        // A comma is refused as in `MCP_OAUTH2_REQUIRED_SCOPES` (every
        // other list variable is comma-separated: `a,b` would be one scope;
        // found from outside).
        if let Some(bad) = step_up_scopes.iter().find(|s| s.contains(',')) {
            return Err(format!(
                "MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES: must separate scopes with spaces, not \
                 commas ({bad:?} would be one scope)"
            ));
        }
        if let Some(bad) = step_up_scopes.iter().find(|s| {
            *s == "offline_access"
                || !s
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        }) {
            return Err(format!(
                "MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES: {bad:?} cannot be named in a challenge \
                 (a scope token, RFC 6749 section 3.3, and not offline_access)"
            ));
        }
        let missing: Vec<&str> = DOWNSTREAM_VARS
            .iter()
            .copied()
            .filter(|name| value(name).is_none())
            .collect();
        let (Some(audience), Some(url), Some(id), Some(secret)) = (
            value(DOWNSTREAM_VARS[0]),
            value(DOWNSTREAM_VARS[1]),
            value(DOWNSTREAM_VARS[2]),
            get(DOWNSTREAM_VARS[3]).filter(|v| !v.is_empty()),
        ) else {
            return Ok(Self::Unavailable(format!(
                "downstream_whoami is not configured: set {}",
                missing.join(", ")
            )));
        };
        let mut settings = mcp_oauth2::ExchangeSettings::new(id, secret)
            .allow_insecure_http_for_loopback(loopback);
        if let Some(endpoint) = endpoint {
            settings = settings.endpoint(endpoint);
        }
        // Without a token endpoint it is discovered from the caller's
        // issuer, and the client authenticates there with its secret. The
        // client is registered at one authorization server: with several
        // issuers trusted, the first (as introspection uses it) is the only
        // one the exchange serves, so the secret never goes to the others,
        // and, with a token endpoint given, another issuer's callers' tokens
        // never go to it (found from outside: issuer B's users' tokens,
        // good at this server, were sent to A's endpoint).
        let issuers = value("MCP_OAUTH2_ISSUER").unwrap_or_default();
        let tenants = value("MCP_OAUTH2_TENANTS").unwrap_or_default();
        if let Some(allowed) = exchange_issuers(&issuers, &tenants) {
            for issuer in allowed {
                settings = settings.issuer(issuer);
            }
        }
        let sealing = match (cache_key, shared) {
            (Some(key), Some(store)) => Some(mcp_oauth2::SealedExchangeStore::new(store, key)),
            _ => None,
        };
        let exchanger = mcp_oauth2::TokenExchanger::new(settings)
            .map_err(|e| format!("downstream_whoami: the token exchange: {e}"))?;
        let http = mcp_oauth2::DownstreamClient::new(std::time::Duration::from_secs(10))
            .map_err(|e| format!("downstream_whoami: the HTTP client: {e}"))?
            .allow_insecure_http_for_loopback(loopback);
        Ok(Self::Ready {
            exchanger: match sealing {
                Some(store) => exchanger.with_store(store),
                None => exchanger,
            },
            http,
            audience,
            url,
            step_up_scopes,
        })
    }
}

/// `value` of variable `name` as a URL the server may call: `https://`, or
/// `http://` on a loopback host when `loopback` (the opt-in) is set; no
/// user information (a password there would be sent as Basic credentials
/// instead of the configured client's and written wherever the URL is,
/// logs and error results included; found from outside) and no fragment
/// (never sent). The error names the variable, never the value.
fn https_url(name: &str, value: &str, loopback: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| format!("{name} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{name} must not contain user information (user@ or user:password@ before the host)"
        ));
    }
    if url.fragment().is_some() {
        return Err(format!(
            "{name} must not have a fragment (it is never sent)"
        ));
    }
    let on_loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback && on_loopback => Ok(url),
        "http" => Err(format!(
            "{name} uses http://: use https:// (http:// only on a loopback host, with \
             MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK=1)"
        )),
        other => Err(format!("{name}: unsupported URL scheme {other:?}")),
    }
}

/// The longest note `add_note` keeps, in bytes of UTF-8.
pub(crate) const MAX_NOTE_BYTES: usize = 16 * 1024;

/// The most notes one user keeps: the store lives in memory, and a token
/// with `notes:write` must not be able to grow it without end.
pub(crate) const MAX_NOTES_PER_USER: usize = 1000;

/// The most note text one answer of `list_notes` or `export_notes` holds,
/// in bytes of UTF-8 (at least one note): a page, the rest named by `next`.
/// Found from outside: one user's 16 MB of notes, escaped twice on the way
/// out (a control character is six bytes in the tool's JSON, seven in the
/// JSON-RPC answer around it), made every listing a 115 MB answer, and ten
/// at once took the reference server to 1.6 GB.
pub(crate) const PAGE_BYTES: usize = 64 * 1024;

/// Arguments of `list_notes` and `export_notes`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(crate) struct Page {
    /// The first note's number, from 1 (default 1): the `next` of the
    /// answer before.
    #[serde(default)]
    pub(crate) from: Option<u64>,
}

/// `answer` (an object) with `"next": next` when some notes are left.
fn with_next(mut answer: serde_json::Value, next: Option<usize>) -> serde_json::Value {
    if let (Some(next), Some(object)) = (next, answer.as_object_mut()) {
        object.insert("next".into(), next.into());
    }
    answer
}

/// The notes of one page: those from `from` (1-based) while their text
/// stays within [`PAGE_BYTES`] (at least one), and the number of the next
/// note when some are left.
fn page(notes: &[String], from: Option<u64>) -> (std::ops::Range<usize>, Option<usize>) {
    let start = from
        .and_then(|n| usize::try_from(n).ok())
        .map_or(0, |n| n.saturating_sub(1))
        .min(notes.len());
    let mut end = start;
    let mut bytes = 0;
    for note in notes.iter().skip(start) {
        if end > start && bytes + note.len() > PAGE_BYTES {
            break;
        }
        bytes += note.len();
        end += 1;
    }
    let next = (end < notes.len()).then_some(end + 1);
    (start..end, next)
}

/// Arguments of `add_note`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct AddNote {
    /// The note's text.
    pub(crate) text: String,
}

/// Arguments of `read_note`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ReadNote {
    /// The note's number, from 1: in `shared`, 1 is the welcome note and 2
    /// the rules; in `private`, your n-th note.
    pub(crate) id: i64,
    /// Where to read from: `shared` (scope `notes:read`) or `private` (also
    /// `notes:private`).
    pub(crate) folder: Folder,
}

/// The folder `read_note` reads from.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Folder {
    /// The shared notes.
    Shared,
    /// The caller's own notes.
    Private,
}

/// The computed requirement of `read_note`: reading from anything but the
/// `shared` folder also needs `notes:private`. Fail closed: a value the
/// handler would refuse anyway (another case, another type) needs the
/// scope too, so no spelling reaches the handler without it.
pub(crate) fn read_note_requirement(
    call: &mcp_oauth2::OperationRequest<'_>,
    _auth: &AuthContext,
) -> Result<Vec<String>, mcp_oauth2::Refusal> {
    Ok(match call.argument_str("folder") {
        Some("shared") => Vec::new(),
        _ => vec![NOTES_PRIVATE.to_owned()],
    })
}

/// The notes server's scope rules: `list_notes` needs `notes:read` (and
/// shows the notes' text only with `notes:private`, naming them by URI
/// without it),
/// `add_note` needs `notes:write`, and `notes:write` implies `notes:read`;
/// `read_note` needs `notes:read`, and from the `private` folder also
/// `notes:private` (computed from its arguments before dispatch);
/// `export_notes` needs `notes:read` and finds out mid-call that it needs
/// `notes:export` (late step-up, a real HTTP 403 as well);
/// the resources `notes://shared/{id}` need `notes:read` and
/// `notes://private/{id}` need `notes:private` (reading, subscribing, and
/// `subscriptions/listen` alike). The layer enforces them with a real HTTP
/// 403 before rmcp dispatches.
pub(crate) fn declare_scopes(config: AuthConfigBuilder) -> AuthConfigBuilder {
    config
        .tool_scopes("list_notes", [NOTES_READ])
        .tool_scopes("add_note", [NOTES_WRITE])
        .tool_scopes("read_note", [NOTES_READ])
        .tool_scopes_with("read_note", read_note_requirement)
        .tool_scopes("export_notes", [NOTES_READ])
        .resource_scopes(SHARED_TEMPLATE, [NOTES_READ])
        .resource_scopes(PRIVATE_TEMPLATE, [NOTES_PRIVATE])
        .scope_implies(NOTES_WRITE, [NOTES_READ])
        .scope_implies(NOTES_EXPORT, [NOTES_PRIVATE])
}

/// A notes resource URI, read strictly: exactly `notes://shared/<id>` or
/// `notes://private/<id>` with a non-empty id of ASCII letters, digits, `-`
/// and `_` (no dot segments, no escapes: nothing a scope rule could read
/// differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoteUri<'a> {
    /// `notes://shared/<id>`.
    Shared(&'a str),
    /// `notes://private/<id>`.
    Private(&'a str),
}

impl<'a> NoteUri<'a> {
    /// Parses `uri`; `None` for anything else.
    pub(crate) fn parse(uri: &'a str) -> Option<Self> {
        let valid = |id: &str| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if let Some(id) = uri.strip_prefix("notes://shared/") {
            return valid(id).then_some(Self::Shared(id));
        }
        if let Some(id) = uri.strip_prefix("notes://private/") {
            return valid(id).then_some(Self::Private(id));
        }
        None
    }

    /// The scope reading this resource needs.
    pub(crate) fn scope(self) -> &'static str {
        match self {
            Self::Shared(_) => NOTES_READ,
            Self::Private(_) => NOTES_PRIVATE,
        }
    }
}

#[tool_router]
impl NotesServer {
    /// A server over `notes`, without a downstream (`downstream_whoami`
    /// answers that it is not configured).
    #[allow(dead_code)] // the tests' notes fixture and other examples use it
    pub(crate) fn new(notes: NoteStore) -> Self {
        Self::with_downstream(
            notes,
            Arc::new(Downstream::Unavailable(format!(
                "downstream_whoami is not configured: set {}",
                DOWNSTREAM_VARS.join(", ")
            ))),
        )
    }

    /// A server over `notes` whose `downstream_whoami` uses `downstream`.
    pub(crate) fn with_downstream(notes: NoteStore, downstream: Arc<Downstream>) -> Self {
        Self {
            notes,
            downstream,
            tool_router: Arc::clone(TOOL_ROUTER.get_or_init(|| Arc::new(Self::tool_router()))),
        }
    }

    #[tool(
        description = "The names of the HTTP headers this tool's handler can read from the request, sorted, as a JSON array (the caller's Authorization header is not among them: no token passthrough)"
    )]
    async fn seen_headers(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<String, rmcp::ErrorData> {
        let mut names: Vec<&str> = ctx
            .extensions
            .get::<http::request::Parts>()
            .map(|parts| parts.headers.keys().map(http::HeaderName::as_str).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names.dedup();
        Ok(serde_json::json!(names).to_string())
    }

    #[tool(
        description = "Calls the downstream API (MCP_OAUTH2_DOWNSTREAM_URL) as you, with a token obtained by RFC 8693 token exchange for MCP_OAUTH2_DOWNSTREAM_AUDIENCE (never your own token), and returns its answer"
    )]
    async fn downstream_whoami(
        &self,
        auth: AuthContext,
    ) -> Result<rmcp::model::CallToolResult, rmcp::ErrorData> {
        use rmcp::model::{CallToolResult, ContentBlock};
        let (exchanger, http, audience, url, step_up) = match &*self.downstream {
            Downstream::Ready {
                exchanger,
                http,
                audience,
                url,
                step_up_scopes,
            } => (exchanger, http, audience, url, step_up_scopes),
            Downstream::Unavailable(why) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(why.clone())]));
            }
        };
        // The three lines: a token for the downstream, then the call.
        let request =
            mcp_oauth2::ExchangeRequest::audience(audience.as_str()).step_up_scopes(step_up);
        let answer = match exchanger.exchange_for(&auth, request).await {
            Ok(token) => http.get(url, &token).await,
            Err(e) => Err(e),
        };
        let response = match answer {
            Ok(response) => response,
            // The user must consent or sign in again: the step-up
            // challenge (HTTP 403) sends the client back to authorize.
            Err(e) if e.needs_user_interaction() => return Err(e.into()),
            // The code, not the detail: the endpoint's URL and the HTTP
            // client's error text are the operator's (the log has them;
            // found from outside: they reached any caller).
            // Which step failed is said (found from outside: a failed
            // downstream call after a good exchange read "the token
            // exchange failed").
            Err(e) => {
                let what = if e.kind() == mcp_oauth2::ExchangeErrorKind::Downstream {
                    "the call to the downstream API failed"
                } else {
                    "the token exchange failed"
                };
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "{}: {what}",
                    e.code()
                ))]));
            }
        };
        let status = response.status();
        // At most 64 KiB of the downstream's answer: it goes whole into
        // the tool result (found from outside: a 30 MB answer was passed
        // back whole).
        let mut response = response;
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_DOWNSTREAM_BYTES => {
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(_)) => {
                    return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                        "the downstream's answer is larger than {} KiB",
                        MAX_DOWNSTREAM_BYTES / 1024
                    ))]));
                }
                Ok(None) => break,
                Err(_) => {
                    return Ok(CallToolResult::error(vec![ContentBlock::text(
                        "the downstream's answer broke off",
                    )]));
                }
            }
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            Ok(CallToolResult::success(vec![ContentBlock::text(body)]))
        } else {
            Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "the downstream answered HTTP {}",
                status.as_u16()
            ))]))
        }
    }

    #[tool(
        description = "Who is calling: subject, client_id and scopes of the access token, as JSON"
    )]
    async fn whoami(&self, auth: AuthContext) -> Result<String, rmcp::ErrorData> {
        let mut who = serde_json::json!({
            "subject": auth.subject(),
            "client_id": auth.client_id(),
            "scopes": auth.scopes(),
            "issuer": auth.issuer(),
            // RFC 7638 thumbprint of the proof key when the token is DPoP-bound.
            "dpop_jkt": auth.dpop_thumbprint(),
        });
        // A tenant issuer's tokens name their tenant.
        if let (Some(tenant), Some(who)) = (auth.tenant(), who.as_object_mut()) {
            who.insert("tenant".into(), tenant.into());
        }
        Ok(who.to_string())
    }

    #[tool(
        description = "List your notes (scope notes:read): their text with notes:private, else their notes://private/{n} URIs; at most 64 KiB of text an answer, `next` naming the `from` of the next page"
    )]
    async fn list_notes(
        &self,
        auth: AuthContext,
        Parameters(Page { from }): Parameters<Page>,
    ) -> Result<String, rmcp::ErrorData> {
        // Already enforced by the layer; checked again here (hierarchy-aware)
        // as defense in depth.
        auth.require_scopes([NOTES_READ])?;
        let (notes, next, count) = self.page_of(&auth, from)?;
        // A note's text is what `notes://private/{n}` and `read_note` from
        // the private folder guard with `notes:private` (which `notes:export`
        // implies): without that scope the list names each note by its URI
        // (found from outside: a `notes:read` token read every private note
        // here).
        let answer = if auth.has_scope(NOTES_PRIVATE) {
            with_next(serde_json::json!({ "notes": notes }), next)
        } else {
            let uris: Vec<String> = (1..=count)
                .map(|n| format!("notes://private/{n}"))
                .collect();
            serde_json::json!({ "notes": uris, "text_needs": NOTES_PRIVATE })
        };
        Ok(answer.to_string())
    }

    #[tool(description = "Add a note (scope notes:write)")]
    async fn add_note(
        &self,
        auth: AuthContext,
        Parameters(AddNote { text }): Parameters<AddNote>,
    ) -> Result<String, rmcp::ErrorData> {
        auth.require_scopes([NOTES_WRITE])?;
        if text.len() > MAX_NOTE_BYTES {
            return Err(rmcp::ErrorData::invalid_params(
                format!("a note holds at most {MAX_NOTE_BYTES} bytes"),
                None,
            ));
        }
        let mut notes = self
            .notes
            .lock()
            .map_err(|_| rmcp::ErrorData::internal_error("store poisoned", None))?;
        let mine = notes.entry(owner(&auth)).or_default();
        if mine.len() >= MAX_NOTES_PER_USER {
            return Err(rmcp::ErrorData::invalid_params(
                format!("a user keeps at most {MAX_NOTES_PER_USER} notes"),
                None,
            ));
        }
        mine.push(text);
        Ok(serde_json::json!({ "added": true, "count": mine.len() }).to_string())
    }

    #[tool(
        description = "Read one note by number from the shared folder (scope notes:read) or your private one (also notes:private). A missing note is a result, not an error."
    )]
    async fn read_note(
        &self,
        auth: AuthContext,
        Parameters(ReadNote { id, folder }): Parameters<ReadNote>,
    ) -> Result<String, rmcp::ErrorData> {
        // The layer enforced both scopes before dispatch; checked again here
        // as defense in depth.
        let index = usize::try_from(id).ok().and_then(|n| n.checked_sub(1));
        let (name, text) = match folder {
            Folder::Shared => {
                auth.require_scopes([NOTES_READ])?;
                let note = index.and_then(|i| SHARED_NOTES.get(i));
                ("shared", note.map(|(_, text)| (*text).to_owned()))
            }
            Folder::Private => {
                auth.require_scopes([NOTES_READ, NOTES_PRIVATE])?;
                let notes = self
                    .notes
                    .lock()
                    .map_err(|_| rmcp::ErrorData::internal_error("store poisoned", None))?;
                let note = index.and_then(|i| notes.get(&owner(&auth))?.get(i).cloned());
                ("private", note)
            }
        };
        Ok(match text {
            Some(text) => {
                serde_json::json!({ "found": true, "id": id, "folder": name, "text": text })
            }
            None => serde_json::json!({ "found": false, "id": id, "folder": name }),
        }
        .to_string())
    }

    #[tool(
        description = "Export your notes (scope notes:read; the export itself asks for notes:export when it runs); at most 64 KiB of text an answer, `next` naming the `from` of the next page"
    )]
    async fn export_notes(
        &self,
        auth: AuthContext,
        Parameters(Page { from }): Parameters<Page>,
    ) -> Result<String, rmcp::ErrorData> {
        let (notes, next, _) = self.page_of(&auth, from)?;
        // Only now, with the notes in hand, does the server learn that an
        // export is what happens: the handler asks for the scope mid-call.
        // Without it the caller gets a real HTTP 403 `insufficient_scope`
        // challenge naming `notes:read notes:export` (late step-up).
        auth.require_scopes([NOTES_EXPORT])?;
        let answer = serde_json::json!({ "format": "mcp-oauth2-notes/1", "notes": notes });
        Ok(with_next(answer, next).to_string())
    }
}

impl NotesServer {
    /// One page of the caller's notes (see [`page`]): their text, the
    /// `from` of the next page, and how many notes the caller has.
    fn page_of(
        &self,
        auth: &AuthContext,
        from: Option<u64>,
    ) -> Result<(Vec<String>, Option<usize>, usize), rmcp::ErrorData> {
        let store = self
            .notes
            .lock()
            .map_err(|_| rmcp::ErrorData::internal_error("store poisoned", None))?;
        let mine = store.get(&owner(auth)).map_or(&[][..], Vec::as_slice);
        let (range, next) = page(mine, from);
        Ok((
            mine.get(range).unwrap_or_default().to_vec(),
            next,
            mine.len(),
        ))
    }

    /// The text of a note resource, for the caller `auth`.
    fn note_text(&self, auth: &AuthContext, uri: NoteUri<'_>) -> Result<String, rmcp::ErrorData> {
        let not_found = || rmcp::ErrorData::resource_not_found("no such note", None);
        match uri {
            NoteUri::Shared(id) => SHARED_NOTES
                .iter()
                .find(|(name, _)| *name == id)
                .map(|(_, text)| (*text).to_owned())
                .ok_or_else(not_found),
            NoteUri::Private(id) => {
                // `notes://private/<n>`: the caller's n-th note, from 1.
                let index = id.parse::<usize>().ok().and_then(|n| n.checked_sub(1));
                let notes = self
                    .notes
                    .lock()
                    .map_err(|_| rmcp::ErrorData::internal_error("store poisoned", None))?;
                index
                    .and_then(|i| notes.get(&owner(auth))?.get(i).cloned())
                    .ok_or_else(not_found)
            }
        }
    }

    /// Checks that `uri` is a notes resource the caller may use (defense in
    /// depth: the layer has already answered 403 without the scope).
    fn authorize_uri<'u>(auth: &AuthContext, uri: &'u str) -> Result<NoteUri<'u>, rmcp::ErrorData> {
        let parsed = NoteUri::parse(uri)
            .ok_or_else(|| rmcp::ErrorData::resource_not_found("no such note", None))?;
        auth.require_scopes([parsed.scope()])?;
        Ok(parsed)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NotesServer {
    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, rmcp::ErrorData> {
        let mut shared = ResourceTemplate::new(SHARED_TEMPLATE, "shared_note");
        shared.description = Some("A shared note (scope notes:read)".into());
        shared.mime_type = Some("text/plain".into());
        let mut private = ResourceTemplate::new(PRIVATE_TEMPLATE, "private_note");
        private.description = Some("Your n-th note, from 1 (scope notes:private)".into());
        private.mime_type = Some("text/plain".into());
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            shared, private,
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, rmcp::ErrorData> {
        let auth = context.auth()?;
        let uri = Self::authorize_uri(auth, &request.uri)?;
        let text = self.note_text(auth, uri)?;
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]).into())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Every well-formed notes URI may be listened to (the layer has
        // checked the caller's scopes for each one); list changes are not
        // offered.
        let uris: Vec<String> = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| NoteUri::parse(uri).is_some())
            .cloned()
            .collect();
        Some(
            SubscriptionFilter::builder()
                .resource_subscriptions(uris)
                .build(),
        )
    }

    #[allow(deprecated)] // resources/subscribe serves revisions before 2026-07-28.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), rmcp::ErrorData> {
        Self::authorize_uri(context.auth()?, &request.uri).map(|_| ())
    }

    #[allow(deprecated)] // resources/unsubscribe serves revisions before 2026-07-28.
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), rmcp::ErrorData> {
        Self::authorize_uri(context.auth()?, &request.uri).map(|_| ())
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-oauth2-notes",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions("A notes server protected by OAuth 2.1. whoami tells you who you are.")
    }
}
