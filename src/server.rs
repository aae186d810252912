//! [`McpServer`]: rmcp's streamable HTTP service behind [`AuthLayer`], with
//! the metadata routes, a Host allowlist derived from the resource URL, and
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::SessionManager as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod connections;
mod idle;
mod stream_slots;
mod timed_body;

pub use timed_body::{BodyGuard, BodyGuardFuture, BodyGuardLayer};

use crate::config::AuthConfig;
use crate::error::{ConfigError, Error};
use crate::layer::AuthLayer;
use crate::verify::{JwtVerifier, TokenVerifier};

use crate::layer::DEFAULT_MCP_PATH;

type Factory<S> = Arc<dyn Fn() -> Result<S, std::io::Error> + Send + Sync>;

/// Builder for [`McpServer`]. `auth` and `service` are required.
#[must_use]
pub struct McpServerBuilder<S = ()> {
    auth: Option<AuthConfig>,
    verifier: Option<Arc<dyn TokenVerifier>>,
    jwt: Option<JwtVerifier>,
    factory: Option<Factory<S>>,
    /// `None`: the resource's path (see [`McpServerBuilder::path`]).
    path: Option<String>,
    bind: Option<String>,
    rmcp_config: StreamableHttpServerConfig,
    extra_hosts: Vec<String>,
    readiness_path: Option<String>,
    tcp_nodelay: bool,
    header_read_timeout: Option<std::time::Duration>,
    body_read_timeout: Option<std::time::Duration>,
    response_write_timeout: Option<std::time::Duration>,
    max_connections: Option<usize>,
    max_header_bytes: usize,
    max_json_values: usize,
    forward_authorization: bool,
    shared_store: Option<Arc<dyn crate::store::SharedStore>>,
    root_metadata: bool,
}

impl<S> std::fmt::Debug for McpServerBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerBuilder")
            .field("auth", &self.auth)
            .field("path", &self.path)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

/// A protected MCP server, ready to serve or to merge into an axum app.
pub struct McpServer {
    router: Router,
    bind: Option<String>,
    ct: CancellationToken,
    jwt: Option<JwtVerifier>,
    /// Discovers its endpoints at start-up (a missing one is told then).
    introspection: Option<crate::verify::IntrospectionVerifier>,
    /// The replicas' shared store, asked once at start-up (a refused
    /// password or an unreachable store is told then).
    store: Option<Arc<dyn crate::store::SharedStore>>,
    readiness: Readiness,
    metrics: crate::layer::Metrics,
    resource: String,
    /// The path the MCP endpoint is served at (logged at start).
    path: String,
    tcp_nodelay: bool,
    header_read_timeout: Option<std::time::Duration>,
    body_read_timeout: Option<std::time::Duration>,
    response_write_timeout: Option<std::time::Duration>,
    max_connections: Option<usize>,
    max_header_bytes: usize,
}

/// Whether a server can verify tokens yet (its issuers' key sets are loaded).
#[derive(Debug, Clone)]
pub struct Readiness {
    jwt: Option<JwtVerifier>,
    /// Opaque tokens are verified by introspection too.
    introspects: bool,
}

impl Readiness {
    /// `true` once every issuer's key set has been fetched (always with a
    /// custom verifier or `require_keys_before_ready(false)`). With
    /// introspection configured, also once every issuer's key server has
    /// answered with a set that holds no usable key: an issuer of opaque
    /// tokens only may publish an empty set, and its tokens are verified
    /// without keys.
    pub fn is_ready(&self) -> bool {
        self.jwt
            .as_ref()
            .is_none_or(|jwt| jwt.is_ready() || (self.introspects && jwt.has_answered()))
    }

    fn response(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        if self.is_ready() {
            (
                http::StatusCode::OK,
                [(http::header::CONTENT_TYPE, "application/json")],
                "{\"ready\":true}",
            )
                .into_response()
        } else {
            (
                http::StatusCode::SERVICE_UNAVAILABLE,
                [
                    (http::header::CONTENT_TYPE, "application/json"),
                    (http::header::RETRY_AFTER, "5"),
                ],
                "{\"ready\":false}",
            )
                .into_response()
        }
    }
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("resource", &self.resource)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

impl McpServer {
    /// Starts building a protected server.
    pub fn builder() -> McpServerBuilder<()> {
        McpServerBuilder {
            auth: None,
            verifier: None,
            jwt: None,
            factory: None,
            path: None,
            bind: None,
            // JSON for a call answered with one message (rmcp falls back to
            // SSE when the handler sends a notification first, so progress
            // still streams): measured faster at one connection (BENCHMARKS.md).
            rmcp_config: StreamableHttpServerConfig::default().with_json_response(true),
            extra_hosts: Vec::new(),
            readiness_path: None,
            tcp_nodelay: true,
            header_read_timeout: Some(HEADER_READ_TIMEOUT),
            body_read_timeout: Some(BODY_READ_TIMEOUT),
            response_write_timeout: Some(RESPONSE_WRITE_TIMEOUT),
            max_connections: None,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_json_values: crate::operation::DEFAULT_MAX_JSON_VALUES,
            forward_authorization: false,
            shared_store: None,
            root_metadata: true,
        }
    }
}

impl<S> McpServerBuilder<S> {
    /// The authorization configuration (required).
    pub fn auth(mut self, config: AuthConfig) -> Self {
        self.auth = Some(config);
        self
    }

    /// A custom token verifier instead of the built-in [`JwtVerifier`].
    pub fn verifier(mut self, verifier: impl TokenVerifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// The path the MCP endpoint is mounted at, exactly. Default: the
    /// resource's path (`https://host/tools/mcp` is served at `/tools/mcp`,
    /// as [`AuthLayer`](crate::AuthLayer) judges it), `/mcp` for a root
    /// resource. Set it for a proxy that maps the resource's path to
    /// another local one (`/api/mcp` to `/mcp`). It must start with `/` and
    /// not end with `/`, and [`build`](McpServerBuilder::build)
    /// refuses (never panics on) a path axum would read as a pattern or
    /// refuse (a `{` or `}`, a segment starting with `:` or `*`) and one
    /// the metadata routes hold (`/.well-known/oauth-protected-resource`
    /// and the resource's metadata path).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The address [`McpServer::serve`] binds (default `127.0.0.1:8080`).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = Some(addr.into());
        self
    }

    /// Adjusts rmcp's streamable HTTP configuration (sessions, JSON
    /// responses, keep-alive, origins, ...). The starting point is rmcp's
    /// default with `json_response` on: a stateless call answered with one
    /// message gets `application/json`, and one whose handler sends a
    /// notification or request first (progress) gets an SSE stream. The
    /// Host allowlist is the layer's, computed from the resource URL
    /// (extend it with [`allowed_host`](Self::allowed_host)): rmcp's
    /// `allowed_hosts` set here is replaced by an empty list, since the
    /// layer refuses a foreign Host before rmcp sees the request.
    pub fn rmcp_config(
        mut self,
        f: impl FnOnce(StreamableHttpServerConfig) -> StreamableHttpServerConfig,
    ) -> Self {
        self.rmcp_config = f(self.rmcp_config);
        self
    }

    /// Serve a readiness probe at `path` (default none), without
    /// authentication: 200 once every issuer's key set has been fetched (or
    /// at once with `require_keys_before_ready(false)` or a custom
    /// verifier), 503 with `Retry-After` before. A probe fetches a key set
    /// that is missing only when a request would (within the failure
    /// backoff) and never one that is loaded. The path follows the rules
    /// of [`path`](Self::path) (a trailing `/` aside: no query, fragment,
    /// space, dot segment or needless escape, nothing under the metadata's
    /// well-known path) and must differ from it.
    pub fn readiness_path(mut self, path: impl Into<String>) -> Self {
        self.readiness_path = Some(path.into());
        self
    }

    /// State shared by the replicas of this server (default: the
    /// configuration's, see [`AuthConfigBuilder::shared_store`](crate::AuthConfigBuilder::shared_store)):
    /// legacy session owners, DPoP proofs used, introspection results.
    pub fn shared_store(mut self, store: Arc<dyn crate::store::SharedStore>) -> Self {
        self.shared_store = Some(store);
        self
    }

    /// Whether the document is also served at the root well-known
    /// location, `/.well-known/oauth-protected-resource` (default `true`:
    /// MCP clients fall back to it). Several servers of one host merged
    /// into one app ([`McpServer::into_router`]) share that location: keep
    /// it on one of them and turn it off on the others, whose routers
    /// would otherwise both claim the route (axum panics when they are
    /// merged). Each keeps its path-suffixed document (RFC 9728 section
    /// 3.1); a root resource's own location is the root and stays served.
    pub fn root_metadata(mut self, on: bool) -> Self {
        self.root_metadata = on;
        self
    }

    /// Another accepted `Host` (name or `name:port`), for servers reached
    /// under several names. The allowlist (the resource URL's host at any
    /// port, `localhost`, `127.0.0.1`, `::1`, and these) is applied by the
    /// layer before the token is read: a request naming another host (its
    /// `Host`, else its HTTP/2 `:authority`) gets 403 `host_not_allowed`.
    pub fn allowed_host(mut self, host: impl Into<String>) -> Self {
        self.extra_hosts.push(host.into());
        self
    }

    /// The rmcp service factory (required): called for each session (legacy
    /// protocol) or request (stateless 2026-07-28 protocol), and once by
    /// [`build`](McpServerBuilder::build), which reads the handler's
    /// capabilities (`get_info`: whether it serves tasks; a service without
    /// the tasks extension has `tasks/*` requests refused by rmcp itself, so
    /// every handler the factory makes must declare the same capabilities,
    /// as rmcp asks of `get_info`) and checks the tools the scope rules
    /// name ([`AuthConfig::check_tool_names`]). Every handler must know the
    /// same tools as that first one: a handler whose tools differ (a tool
    /// renamed or added later) is not checked, and a rule for a name only
    /// the first one knows protects nothing in the others.
    ///
    /// Because a stateless server calls it for every request, keep it cheap.
    /// In particular, build a `#[tool_router]` router once and share it:
    /// `Self::tool_router()` checks every tool name again each time (rmcp
    /// 3.11, about 29k instructions a name), which was half of every call of
    /// a 7-tool server. Keep an `Arc<ToolRouter<Self>>` field filled from a
    /// `static OnceLock` and leave `#[tool_handler(router = self.tool_router)]`
    /// as it is; `examples/common/notes.rs` does this (BENCHMARKS.md, "fourth
    /// pass").
    pub fn service<T, F>(self, factory: F) -> McpServerBuilder<T>
    where
        T: ServerHandler + Send + 'static,
        F: Fn() -> Result<T, std::io::Error> + Send + Sync + 'static,
    {
        McpServerBuilder {
            auth: self.auth,
            verifier: self.verifier,
            jwt: self.jwt,
            factory: Some(Arc::new(factory)),
            path: self.path,
            bind: self.bind,
            rmcp_config: self.rmcp_config,
            extra_hosts: self.extra_hosts,
            readiness_path: self.readiness_path,
            tcp_nodelay: self.tcp_nodelay,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            response_write_timeout: self.response_write_timeout,
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            max_json_values: self.max_json_values,
            forward_authorization: self.forward_authorization,
            shared_store: self.shared_store,
            root_metadata: self.root_metadata,
        }
    }

    /// Whether [`McpServer::serve`] sets `TCP_NODELAY` on every accepted
    /// connection (default `true`).
    ///
    /// rmcp writes a streamed (SSE) response in more than one segment; with
    /// Nagle's algorithm on, the kernel holds the last segment until the
    /// client's delayed ACK arrives, about 40 ms on Linux, so every call on a
    /// keep-alive connection waits that long (BENCHMARKS.md, "Upstream
    /// report for rmcp"). Turn it off only to measure that stall or behind a
    /// transport where it does not apply; servers that own their accept loop
    /// ([`McpServer::into_router`]) choose for themselves.
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp_nodelay = on;
        self
    }

    /// How long [`McpServer::serve`] lets an HTTP/1 client take to send a
    /// request's headers (default 30 s; `None` switches the guard off).
    ///
    /// The clock starts when the server waits for a request head: on a new
    /// connection (its first byte must arrive within the same limit), and
    /// on a keep-alive connection once the previous response is written. A
    /// client that has not sent a whole head by then (one trickling header
    /// bytes to hold connections open, a silent connection, an idle
    /// keep-alive connection) is disconnected without an answer. hyper
    /// enforces it with a timer armed for every request, which costs a
    /// call about two system calls and a thread wake-up at one connection
    /// (BENCHMARKS.md, "sixth pass"); switch it off only when a proxy in
    /// front already enforces a header timeout. A zero duration, or one
    /// over a day (86,400 s), is refused by [`build`](McpServerBuilder::build).
    ///
    /// HTTP/2 has no header timer in hyper, and its keep-alive pings are
    /// answered by any client library: the same limit applies there to a
    /// connection with no request in progress (a request counts until its
    /// response body is finished, so a long event stream keeps its
    /// connection). Such a connection (idle after its last response, or
    /// one that sent the preface and nothing else) gets a GOAWAY, and is
    /// dropped if it has not closed within the same limit again.
    pub fn header_read_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long [`McpServer::serve`] lets a client take to send a request's
    /// body (default 30 s; `None` switches the guard off). HTTP/1 and
    /// HTTP/2 alike.
    ///
    /// hyper bounds the time a request's head may take, not its body: a
    /// client that sends a head announcing a body and then stalls (or
    /// trickles a byte now and then) would hold its connection and the task
    /// reading the body for as long as it likes. With this limit the whole
    /// body must have arrived within `timeout` of the first moment the
    /// server has to wait for its bytes; a body that came with its head
    /// (most MCP requests) never arms the timer, so the guard costs the
    /// usual call nothing. Past the limit, reading the body fails and the
    /// request is answered HTTP 408 (`request_timeout`, reason
    /// `body_read_timeout`, `Connection: close`), whichever of the auth
    /// layer (per-operation scopes) and rmcp was reading it; an HTTP/1
    /// connection is closed after the answer (its unread bytes cannot be
    /// skipped). Raise it for clients that
    /// upload large bodies over slow links; a zero duration, or one over a
    /// day (86,400 s), is refused by [`build`](McpServerBuilder::build). Routers taken with
    /// [`McpServer::into_router`] keep this limit (see [`BodyGuardLayer`]).
    pub fn body_read_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// How long [`McpServer::serve`] waits for a client to take the next
    /// bytes of a response (default 30 s; `None` switches the guard off).
    /// HTTP/1 and HTTP/2 alike.
    ///
    /// Nothing else bounds how long writing a response may take: a client
    /// that sends a request and then stops reading (its TCP receive window
    /// stays shut) would hold its connection, the connection's task and
    /// the unsent answer for as long as it likes (HTTP/2's keep-alive pings
    /// end such a connection after 60 to 80 s; nothing ends an HTTP/1 one).
    /// With this limit, once a write has to wait for the peer a timer
    /// starts; if no byte goes through before it fires, the connection is
    /// closed (the response cannot be finished, so there is no error
    /// answer to send). Any progress stops the timer: this bounds the time
    /// between two writes, not the time a whole response takes (as nginx's
    /// `send_timeout`), so a quiet event stream or a slow reader that keeps
    /// up are never cut off. A response the socket takes at once (every
    /// usual MCP answer) never arms the timer. A zero duration, or one over
    /// a day (86,400 s), is refused by [`build`](McpServerBuilder::build). Routers taken with
    /// [`McpServer::into_router`] are served by the caller, who sets their
    /// own limits.
    pub fn response_write_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.response_write_timeout = timeout;
        self
    }

    /// How many connections [`McpServer::serve`] holds at once, HTTP/1 and
    /// HTTP/2 alike (default: three quarters of the process's soft
    /// file-descriptor limit, `RLIMIT_NOFILE`, read when serving starts;
    /// 768 where it cannot be read or is unlimited).
    ///
    /// Each connection costs a file descriptor and a task: without a bound,
    /// a client opening connections until the process ran out of
    /// descriptors made every accept fail, for every client, and left none
    /// for the server's own outgoing connections (key sets, introspection,
    /// Redis). At the limit the server stops accepting: new connections
    /// wait in the kernel's listen backlog, and are accepted in order as
    /// open ones close. They are not accepted to be answered 503: that
    /// would spend the descriptor the limit keeps, and the TLS or HTTP/2
    /// exchange that must precede any answer. A client past the backlog
    /// (which the kernel caps, `net.core.somaxconn`) sees its connection
    /// attempts time out or be refused, as from any server at capacity. A
    /// warning is logged when the limit is reached, at most once every
    /// 10 s.
    ///
    /// A request still in progress when its connection closes (a client
    /// that sends a slow call and hangs up; an HTTP/2 stream reset) is run
    /// to its end and keeps its connection's slot until then: rmcp would
    /// run its handler on anyway, and a client cannot have more abandoned
    /// handlers running than the limit. Idle connections do not hold a
    /// slot for ever: a connection that sends nothing, or an idle
    /// keep-alive one, is closed after the
    /// [`header_read_timeout`](Self::header_read_timeout). The limit is
    /// the server's, not a client's: one client that opens the limit's
    /// worth of connections (and keeps each busy) makes the others wait;
    /// bound connections per client address in a proxy in front when that
    /// matters. Zero is refused by [`build`](McpServerBuilder::build), as
    /// is more than `tokio::sync::Semaphore::MAX_PERMITS`. Routers taken
    /// with [`McpServer::into_router`] are served by the caller, who sets
    /// their own limit.
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.max_connections = Some(limit);
        self
    }

    /// The largest request head [`McpServer::serve`] reads (default 16 KiB,
    /// room for a token at the 8 KiB
    /// [`max_token_bytes`](crate::AuthConfigBuilder::max_token_bytes) cap,
    /// a DPoP proof and the usual headers).
    ///
    /// HTTP/1: the request line and header fields together; a longer head
    /// is answered 431 by hyper and its connection closed, before the
    /// layer sees it. HTTP/2: the header list as RFC 9113 counts it (each
    /// field's name and value plus 32 bytes); a longer one is answered 431
    /// on its stream (each of a connection's streams may hold a list this
    /// large while its body is awaited). hyper's own HTTP/1 default is about 400 KiB, buffered
    /// per connection for as long as the head takes: with many
    /// connections held open that is memory a client chooses. The same
    /// bound also caps the HTTP/1 read and write buffers (bodies stream
    /// through them in pieces of at most this size). Between 8 KiB
    /// (hyper's least) and 1 MiB, else refused by
    /// [`build`](McpServerBuilder::build). Routers taken with
    /// [`McpServer::into_router`] are served by the caller, who sets their
    /// own.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// The most JSON values a request body may hold (default 100,000):
    /// more is answered 413 `invalid_request` (reason `body_too_complex`)
    /// before rmcp parses the body. See
    /// [`AuthLayer::max_json_values`](crate::AuthLayer::max_json_values).
    pub fn max_json_values(mut self, values: usize) -> Self {
        self.max_json_values = values;
        self
    }

    /// **Unsafe escape hatch**: leave the caller's `Authorization` header
    /// (and `DPoP` proof) on the requests rmcp and the handlers see
    /// (default `false`: the layer removes them, so no handler can pass
    /// the caller's token on). See
    /// [`AuthLayer::forward_authorization_header_to_handlers_unsafe`].
    pub fn forward_authorization_header_to_handlers_unsafe(mut self, on: bool) -> Self {
        self.forward_authorization = on;
        self
    }
}

impl<S: ServerHandler + Send + 'static> McpServerBuilder<S> {
    /// Validates and assembles the server.
    pub fn build(self) -> Result<McpServer, ConfigError> {
        let mut config = self.auth.ok_or_else(|| {
            ConfigError::new(
                "auth",
                "an AuthConfig is required: a protected server without one would fail open",
            )
        })?;
        if let Some(store) = self.shared_store {
            config.shared_store = Some(store);
        }
        let factory = self
            .factory
            .ok_or_else(|| ConfigError::new("service", "the rmcp service factory is required"))?;
        for (field, timeout) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("response_write_timeout", self.response_write_timeout),
        ] {
            if timeout == Some(std::time::Duration::ZERO) {
                return Err(ConfigError::new(
                    field,
                    "must be longer than zero (None switches the guard off)",
                ));
            }
            // hyper and the write timer add the limit to the clock's
            // `Instant`: past its range every connection's task would
            // panic, so the server would listen and answer nothing.
            if timeout.is_some_and(|t| t > MAX_CONNECTION_TIMEOUT) {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "must be at most {} seconds, a day (None switches the guard off)",
                        MAX_CONNECTION_TIMEOUT.as_secs()
                    ),
                ));
            }
        }
        if let Some(limit) = self.max_connections
            && !(1..=connections::MAX_MAX_CONNECTIONS).contains(&limit)
        {
            return Err(ConfigError::new(
                "max_connections",
                format!(
                    "must be at least 1 (a server that accepts no connection serves nothing) and at most {} (the most a Tokio semaphore counts; the process's file-descriptor limit holds long before)",
                    connections::MAX_MAX_CONNECTIONS
                ),
            ));
        }
        if !(MIN_MAX_HEADER_BYTES..=MAX_MAX_HEADER_BYTES).contains(&self.max_header_bytes) {
            return Err(ConfigError::new(
                "max_header_bytes",
                format!(
                    "must be between {MIN_MAX_HEADER_BYTES} and {MAX_MAX_HEADER_BYTES} bytes (8 KiB, the least hyper reads a head with, and 1 MiB)"
                ),
            ));
        }
        // The resource's path unless set (found from outside: `/mcp`
        // whatever the resource, so `https://host/tools/mcp` answered 404
        // at the URL its metadata and its tokens name, and two resources of
        // one host, `/a/mcp` and `/b/mcp`, panicked when merged). A path
        // taken from the resource is refused naming the resource.
        let (path, field) = match self.path {
            Some(path) => (path, "path"),
            None => match config.resource_path() {
                "" | "/" => (DEFAULT_MCP_PATH.to_owned(), "path"),
                path => (path.to_owned(), "resource"),
            },
        };
        if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') {
            // Names the rule the path breaks (found from outside: "/mcp/"
            // was told it must start with '/').
            let broken = if !path.starts_with('/') {
                "does not start with '/'"
            } else if path.len() < 2 {
                "is the root: the MCP endpoint needs a path of its own"
            } else {
                "ends with '/'"
            };
            let served = if field == "resource" {
                " (the MCP endpoint is served at the resource's path unless `path` names another)"
            } else {
                ""
            };
            return Err(ConfigError::new(
                field,
                format!(
                    "{path:?} {broken}: a path starts with '/' and does not end with '/' (such as \"/mcp\"){served}"
                ),
            ));
        }
        // Every route is checked here, so that axum never panics below: a
        // path it refuses or reads as a pattern, or one two routes share.
        check_route(field, &path)?;
        if let Some(probe) = &self.readiness_path {
            if probe == &path {
                return Err(ConfigError::new(
                    "readiness_path",
                    format!(
                        "{probe:?} is the MCP endpoint's path: the readiness probe must be served at another path"
                    ),
                ));
            }
            check_route("readiness_path", probe)?;
        }
        let (layer, jwt, introspection) = match self.verifier {
            Some(v) => (AuthLayer::with_verifier(config.clone(), v), None, None),
            None => {
                let (verifier, jwt, introspection) = crate::verify::from_config(&config)?;
                (
                    AuthLayer::with_verifier(config.clone(), verifier),
                    Some(jwt),
                    introspection,
                )
            }
        };
        // One source of truth for the MCP path: the layer judges every
        // request routed to rmcp as MCP, whatever the resource URI's path
        // (a root resource, a proxy prefix) and whatever the path spelling.
        let hosts = allowed_hosts(&config, &self.extra_hosts);
        // What the service declares, read once from a handler of the
        // factory: a request naming a task that is not the caller's is
        // answered as rmcp answers it for a task that does not exist,
        // which depends on whether the service serves tasks at all.
        // The same handler answers for the tools the scope rules name: a
        // rule for a tool the service lacks is refused here (found from
        // outside: `tool_scopes("add-note", ..)` left `add_note` open).
        let probe = match factory() {
            Ok(handler) => {
                config.check_tool_names(&handler)?;
                Some(handler)
            }
            // Without a handler the names cannot be checked: fail closed
            // when there are names to check.
            Err(e) if config.tool_names().next().is_some() => {
                return Err(ConfigError::new(
                    "service",
                    format!(
                        "the service factory failed when build called it to check the tools the scope rules name: {e}"
                    ),
                ));
            }
            Err(_) => None,
        };
        let service_tasks = probe.map(|handler| handler.get_info().capabilities.supports_tasks());
        let layer = layer
            .service_tasks(service_tasks, self.rmcp_config.json_response)
            .mcp_path(path.clone())
            .whole_service()
            .allowed_hosts(&hosts)
            .forward_authorization_header_to_handlers_unsafe(self.forward_authorization)
            .max_json_values(self.max_json_values)
            .root_metadata(self.root_metadata);
        let mut rmcp_config = self.rmcp_config;
        let ct = rmcp_config.cancellation_token.clone();
        // The layer enforces `hosts` on every request routed to rmcp (the
        // whole service is MCP), before the token: 403 `host_not_allowed`
        // (tests/routes.rs, `a_foreign_host_never_reaches_rmcp_on_any_route`).
        // rmcp's own copy of the check is off: it parsed each allowed entry
        // again on every call, about 4,500 instructions (2% of a call;
        // BENCHMARKS.md, "thirteenth pass"). rmcp still refuses a Host it
        // cannot read.
        rmcp_config.allowed_hosts = Vec::new();
        let limits = config.sessions;
        if !limits.enabled {
            rmcp_config.legacy_session_mode = false;
        }
        let mut sessions = LocalSessionManager::default();
        // The layer ends idle sessions (`Sessions::sweep_idle`, every
        // quarter of the timeout, through the closer below), rmcp's own
        // keep-alive is off: it counts messages, and ended a session whose
        // client only listened on its event stream, or whose call sent
        // nothing for the timeout (found from outside: the stream cut at
        // the timeout, the next call 404).
        sessions.session_config.keep_alive = None;
        let sessions = Arc::new(sessions);
        let closer_sessions = Arc::clone(&sessions);
        layer.session_closer(Arc::new(move |id: String| {
            let sessions = Arc::clone(&closer_sessions);
            // Called while serving a request, so a runtime is there.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = sessions.close_session(&id.into()).await;
                });
            }
        }));
        let service = SharedRmcp(Arc::new(StreamableHttpService::new(
            move || factory(),
            sessions,
            rmcp_config,
        )));
        // rmcp is mounted at exactly one path, wrapped in the layer, so
        // nothing else reaches rmcp and nothing reaches rmcp around the
        // layer. `/mcp/`, `/mcp/x` are not routed.
        let mut router = Router::new()
            .route_service(&path, tower_layer::Layer::layer(&layer, service))
            .merge(layer.shared_metadata_router());
        let readiness = Readiness {
            jwt: jwt.clone(),
            introspects: introspection.is_some(),
        };
        // Checked above, with the MCP path.
        if let Some(path) = self.readiness_path {
            let probe = readiness.clone();
            router = router.route(
                &path,
                axum::routing::get(move || {
                    let probe = probe.clone();
                    async move {
                        // Not ready yet: fetch the missing key sets now if
                        // their failure backoff allows (single flight), else
                        // answer from what is loaded.
                        // At most a second: a probe answers promptly while
                        // an issuer hangs (found from outside: it waited the
                        // whole fetch deadline); the fetch goes on beside.
                        if !probe.is_ready()
                            && let Some(jwt) = &probe.jwt
                        {
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_secs(1),
                                jwt.load_missing(),
                            )
                            .await;
                        }
                        probe.response()
                    }
                }),
            );
        }
        // Every answer of the server carries its `X-Request-Id` (metadata,
        // readiness, 404s too); the layer finds the id in the extensions.
        let router = router.layer(crate::correlation::CorrelateLayer);
        Ok(McpServer {
            router,
            bind: self.bind,
            ct,
            jwt,
            introspection,
            store: config.shared_store().cloned(),
            readiness,
            metrics: layer.metrics(),
            resource: config.resource().to_owned(),
            path,
            tcp_nodelay: self.tcp_nodelay,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            response_write_timeout: self.response_write_timeout,
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
        })
    }
}

/// Whether a resource URI names an origin with no path (`https://host`,
/// `https://host/`).
fn is_origin_root(resource: &str) -> bool {
    url::Url::parse(resource).is_ok_and(|url| {
        !url.cannot_be_a_base() && matches!(url.path(), "" | "/") && url.query().is_none()
    })
}

/// rmcp's streamable HTTP service behind one `Arc`: a clone per request is
/// a reference count. rmcp's own `Service::call` clones the whole service
/// on every call (its configuration: a `Vec` of allowed hosts and a
/// `CancellationToken`, whose clone and drop take a lock), and the router
/// and the layer clone the service they call too; this calls rmcp's
/// `handle(&self)` on the shared copy instead.
struct SharedRmcp<S>(Arc<StreamableHttpService<S, LocalSessionManager>>);

impl<S> Clone for SharedRmcp<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S> tower_service::Service<axum::extract::Request> for SharedRmcp<S>
where
    S: ServerHandler + Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: axum::extract::Request) -> Self::Future {
        let service = Arc::clone(&self.0);
        // For the rewritten answers below (an `Arc` count): they carry the
        // request id as the layer's own refusals do.
        let request_id = req
            .extensions()
            .get::<crate::correlation::RequestId>()
            .cloned();
        let get = req.method() == http::Method::GET;
        // A request of a stateless revision is served by POST alone: the
        // `Allow` of any 405 to it says so. rmcp names POST alone for such
        // a GET or DELETE but its mode's methods (GET, POST, DELETE with
        // sessions on) for a method it never serves, HEAD or PUT (found
        // from outside: told to use GET, then refused it). Read for
        // methods other than POST only.
        let stateless = req.method() != http::Method::POST
            && crate::layer::is_stateless_revision(
                req.headers().get(crate::layer::PROTOCOL_HEADER),
            );
        // The id of a call rmcp answers in plain text (put there by the
        // layer for those calls alone).
        let call_id = req.extensions_mut().remove::<crate::layer::CallId>();
        Box::pin(async move {
            let response = axum::response::IntoResponse::into_response(service.handle(req).await);
            // Only refusals are ever rewritten: a served call moves no
            // response into a rewriting future (code a call would touch).
            Ok(match response.status() {
                http::StatusCode::BAD_REQUEST => {
                    plain_400_as_jsonrpc(response, request_id, call_id).await
                }
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    undeserializable_as_jsonrpc(response, request_id).await
                }
                http::StatusCode::INTERNAL_SERVER_ERROR => session_gone_as_404(response).await,
                status @ (http::StatusCode::METHOD_NOT_ALLOWED
                | http::StatusCode::NOT_ACCEPTABLE) => {
                    plain_refusal_as_json(response, status, request_id, get, stateless).await
                }
                _ => response,
            })
        })
    }
}

/// The start of rmcp's plain-text answer to an `MCP-Protocol-Version` it
/// does not know, given to a request whose body carries no protocol
/// version of its own (rmcp answers those with the JSON-RPC error).
const UNSUPPORTED_VERSION_TEXT: &str = "Bad Request: Unsupported MCP-Protocol-Version: ";

/// The longest `MCP-Protocol-Version` value a -32022 repeats in
/// `data.requested` (a revision is ten characters).
const MAX_REPEATED_VERSION: usize = 64;

/// rmcp's plain-text answer to an `MCP-Protocol-Version` that is not text.
const UNREADABLE_VERSION_TEXT: &str = "Bad Request: Invalid MCP-Protocol-Version header encoding";

/// rmcp's plain-text answer (400) to a legacy request without the
/// `Mcp-Session-Id` of a session (any but `initialize`, a GET stream, a
/// DELETE).
const SESSION_REQUIRED_TEXT: &str = "Bad Request: Session ID is required";

/// The JSON-RPC error message in its place.
const SESSION_REQUIRED: &str = "Bad Request: Mcp-Session-Id is required (send the id the session's initialize answer gave, or initialize a session)";

/// rmcp answers an unknown `MCP-Protocol-Version` header with a plain-text
/// 400 when the body carries no `_meta` protocol version; MCP 2026-07-28
/// asks for the JSON-RPC `UnsupportedProtocolVersionError` (-32022, with
/// the versions the server knows in `data.supported`), which a client
/// reads to pick a version it shares, while a 400 without a modern
/// JSON-RPC error sends it back to the legacy `initialize` flow. Only a
/// 400 without a content type (rmcp's plain-text answers) is looked at;
/// its body is a few dozen bytes. rmcp's plain-text answer to a legacy
/// request without its session id becomes a JSON-RPC error the same way
/// (-32600, `data.reason` `session_required`; found from outside: the
/// one refusal a client could not read as JSON; the TypeScript SDK answers
/// it with a JSON-RPC error too). Both carry the request's `id` when the
/// layer read one from a single request's body (`null` for a GET, a
/// DELETE, a batch or an id it could not read).
async fn plain_400_as_jsonrpc(
    response: axum::response::Response,
    request_id: Option<crate::correlation::RequestId>,
    call_id: Option<crate::layer::CallId>,
) -> axum::response::Response {
    // The request's id where the layer read one, as it was written
    // (JSON-RPC 2.0, section 5: `null` only when it cannot be told).
    let id = JsonRpcId(
        call_id
            .and_then(|id| serde_json::value::RawValue::from_string(id.0).ok())
            .unwrap_or_else(|| serde_json::value::RawValue::NULL.to_owned()),
    );
    let (parts, bytes) = match rmcp_plain_text(response, http::StatusCode::BAD_REQUEST).await {
        Ok(plain) => plain,
        Err(response) => return jsonrpc_error_completed(response, request_id).await,
    };
    let text = std::str::from_utf8(&bytes).ok();
    // A value rmcp could not read as text (bytes past ASCII): unsupported
    // too, and named by nothing (found from outside: plain text).
    let requested = match text {
        Some(UNREADABLE_VERSION_TEXT) => Some(None),
        text => text
            .and_then(|text| text.strip_prefix(UNSUPPORTED_VERSION_TEXT))
            .map(Some),
    };
    let Some(requested) = requested else {
        if bytes.as_ref() == SESSION_REQUIRED_TEXT.as_bytes() {
            let error = serde_json::json!({
                "code": -32600,
                "message": SESSION_REQUIRED,
                "data": { "reason": "session_required" },
            });
            return jsonrpc_answer(parts, id, error, request_id);
        }
        return axum::response::Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let supported: Vec<&str> = rmcp::model::ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .map(rmcp::model::ProtocolVersion::as_str)
        .collect();
    // A version is ten characters: a longer value is not repeated back
    // (as one that is not text is not).
    let requested = requested.filter(|r| r.len() <= MAX_REPEATED_VERSION);
    let data = match requested {
        Some(requested) => serde_json::json!({
            "reason": UNSUPPORTED_VERSION_REASON,
            "requested": requested,
            "supported": supported,
        }),
        None => serde_json::json!({ "reason": UNSUPPORTED_VERSION_REASON, "supported": supported }),
    };
    let error = serde_json::json!({
        "code": -32022,
        "message": "Unsupported protocol version",
        "data": data,
    });
    jsonrpc_answer(parts, id, error, request_id)
}

/// rmcp answers some messages it does not take with a 400 and a JSON-RPC
/// error of its own: a JSON-RPC response sent to a stateless 2026-07-28
/// server (without `id`, which JSON-RPC 2.0, section 5, requires: `null`
/// when the request's cannot be told), an `MCP-Protocol-Version` that
/// disagrees with the body's `_meta` protocol version (-32020), a
/// 2026-07-28 request without its `_meta` fields (-32602), a revision it
/// does not serve named in `_meta` (-32022). Found from outside: none
/// carried a reason, the request id or the error headers the layer's own
/// JSON-RPC refusals carry. Such an answer (JSON, at most 4 KiB: rmcp's
/// are a few hundred bytes) keeps its code, message and `id` (`null` when
/// it had none) and gets `data.reason` ([`rmcp_reason`]), `data.request_id`
/// and the error headers; any other answer passes unchanged.
async fn jsonrpc_error_completed(
    response: axum::response::Response,
    request_id: Option<crate::correlation::RequestId>,
) -> axum::response::Response {
    let json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let small = http_body::Body::size_hint(response.body())
        .upper()
        .is_some_and(|n| n <= 4096);
    if !json || !small {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 4096).await else {
        return axum::response::Response::from_parts(parts, axum::body::Body::empty());
    };
    match rmcp_error(&bytes) {
        Some((id, error)) => jsonrpc_answer(parts, id, error, request_id),
        None => axum::response::Response::from_parts(parts, axum::body::Body::from(bytes)),
    }
}

/// The `data.reason` given to one of rmcp's JSON-RPC refusals, by its
/// code: the layer's own reason for the same refusal where it has one.
fn rmcp_reason(code: Option<i64>) -> &'static str {
    match code {
        Some(-32020) => crate::error::AuthErrorKind::McpHeaderMismatch.code(),
        Some(-32022) => UNSUPPORTED_VERSION_REASON,
        _ => "invalid_message",
    }
}

/// `data.reason` of the JSON-RPC `UnsupportedProtocolVersionError`.
const UNSUPPORTED_VERSION_REASON: &str = "unsupported_protocol_version";

/// The `id` (`null` when absent) and the `error`, with `data.reason` added
/// (see [`jsonrpc_error_completed`]), of a JSON-RPC error answer without a
/// reason; `None` for anything else.
fn rmcp_error(bytes: &[u8]) -> Option<(serde_json::Value, serde_json::Value)> {
    let serde_json::Value::Object(mut answer) = serde_json::from_slice(bytes).ok()? else {
        return None;
    };
    let serde_json::Value::Object(mut error) = answer.remove("error")? else {
        return None;
    };
    let mut data = match error.remove("data") {
        Some(serde_json::Value::Object(data)) => data,
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(_) => return None,
    };
    if data.contains_key("reason") {
        return None;
    }
    let reason = rmcp_reason(error.get("code").and_then(serde_json::Value::as_i64));
    data.insert("reason".to_owned(), reason.into());
    error.insert("data".to_owned(), serde_json::Value::Object(data));
    let id = answer.remove("id").unwrap_or(serde_json::Value::Null);
    Some((id, serde_json::Value::Object(error)))
}

/// The parts and body of `response` when it is one of rmcp's plain-text
/// answers (no content type) with `status`, its body read (at most 4 KiB:
/// rmcp's are a few dozen bytes); else `Err`, the response to pass on.
async fn rmcp_plain_text(
    response: axum::response::Response,
    status: http::StatusCode,
) -> Result<(http::response::Parts, axum::body::Bytes), axum::response::Response> {
    if response.status() != status || response.headers().contains_key(http::header::CONTENT_TYPE) {
        return Err(response);
    }
    let (parts, body) = response.into_parts();
    // rmcp's plain text repeats a header value (an unsupported
    // `MCP-Protocol-Version`), which may be as long as a head may be
    // (`max_header_bytes`, at most 1 MiB): read whole (found from outside:
    // a value past 4 KiB left an empty 400). The body is in memory already.
    match axum::body::to_bytes(body, 1024 * 1024 + 4096).await {
        Ok(bytes) => Ok((parts, bytes)),
        Err(_) => Err(axum::response::Response::from_parts(
            parts,
            axum::body::Body::empty(),
        )),
    }
}

/// A 400 answering with the JSON-RPC `error` and `id`, in place of the
/// answer whose `parts` it keeps (its other headers); the
/// request id in `error.data.request_id`, as in the layer's JSON-RPC
/// refusals.
fn jsonrpc_answer(
    mut parts: http::response::Parts,
    id: impl Into<JsonRpcId>,
    mut error: serde_json::Value,
    request_id: Option<crate::correlation::RequestId>,
) -> axum::response::Response {
    /// The answer, `id` written as it came.
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        jsonrpc: &'static str,
        id: &'a serde_json::value::RawValue,
        error: &'a serde_json::Value,
    }
    if let (Some(request_id), Some(serde_json::Value::Object(data))) =
        (request_id, error.get_mut("data"))
    {
        data.insert("request_id".to_owned(), request_id.as_str().into());
    }
    let id = id.into().0;
    let body = serde_json::to_string(&Answer {
        jsonrpc: "2.0",
        id: &id,
        error: &error,
    })
    .unwrap_or_default();
    parts.status = http::StatusCode::BAD_REQUEST;
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    crate::challenge::error_headers(&mut parts.headers);
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

/// A JSON-RPC `id` for [`jsonrpc_answer`]: a request's own text, as the
/// layer read it from the body (`1e2` stays `1e2`: found from outside,
/// rewritten as `100.0` while the layer's own refusals echo `1e2`), or a
/// value (`null`, rmcp's id).
struct JsonRpcId(Box<serde_json::value::RawValue>);

impl From<serde_json::Value> for JsonRpcId {
    fn from(value: serde_json::Value) -> Self {
        Self(
            serde_json::value::to_raw_value(&value)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        )
    }
}

/// rmcp's plain-text 500 to a request of a legacy session that ended
/// between the layer's check and rmcp's own lookup (its owner's `DELETE`
/// racing it, the idle sweep): "Encounter an error when get session:
/// Session not found: ..." or "... Session service terminated". The
/// session is gone, which the layer's 404 says of any id it no longer
/// knows (MCP: the client initializes a new one); found from outside: a
/// 500, which clients take for a server fault. Any other 500 passes.
async fn session_gone_as_404(response: axum::response::Response) -> axum::response::Response {
    let status = http::StatusCode::INTERNAL_SERVER_ERROR;
    let (parts, bytes) = match rmcp_plain_text(response, status).await {
        Ok(plain) => plain,
        Err(response) => return response,
    };
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    if text.starts_with(RMCP_INTERNAL_ERROR_TEXT)
        && (text.contains("Session not found") || text.contains("Session service terminated"))
    {
        return crate::layer::session_not_found();
    }
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The start of rmcp's plain-text answer (500) to an internal error.
const RMCP_INTERNAL_ERROR_TEXT: &str = "Encounter an error when ";

/// The start of rmcp's plain-text answer (415) to a JSON body it cannot
/// read as one JSON-RPC message.
const UNDESERIALIZABLE_TEXT: &str = "fail to deserialize request body";

/// The JSON-RPC error for a body that is JSON but not one message rmcp
/// accepts.
const INVALID_MESSAGE: &str = "Invalid Request: the body is not one JSON-RPC message this server accepts (a member missing or of the wrong type, such as an id that is neither a string nor an integer, or a batch: MCP removed JSON-RPC batches in 2025-06-18)";

/// rmcp answers a JSON body that is not one JSON-RPC message it knows (a
/// batch above all: rmcp reads none, and MCP 2025-06-18 removed them) with
/// `415 Unsupported Media Type` and a plain-text serde error, although
/// the media type is right. JSON-RPC 2.0 (section 5.1) answers that with
/// the error -32600 (Invalid Request) and a `null` id, which a client
/// reads; HTTP 400, as MCP 2026-07-28 "Transports" gives every JSON-RPC
/// error of a request that is not served. By the time rmcp sees a body,
/// the layer has read it strictly (valid JSON, no repeated names) and
/// authorized every call in it: this only relabels rmcp's refusal. Only
/// rmcp's own answer is looked at (a 415 whose text says so; a few dozen
/// bytes); its other 415, to a media type that is not JSON, becomes the
/// crate's JSON refusal (`unsupported_media_type`).
async fn undeserializable_as_jsonrpc(
    response: axum::response::Response,
    request_id: Option<crate::correlation::RequestId>,
) -> axum::response::Response {
    let status = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
    let (parts, bytes) = match rmcp_plain_text(response, status).await {
        Ok(plain) => plain,
        Err(response) => return response,
    };
    if !bytes.starts_with(UNDESERIALIZABLE_TEXT.as_bytes()) {
        // rmcp's other 415, to a `Content-Type` that is not JSON (a POST's
        // body is a JSON-RPC message): the crate's JSON refusal too (found
        // from outside: the plain text left after the 405 and 406).
        return json_refusal(
            parts,
            "The request body must be sent as Content-Type: application/json (MCP streamable HTTP)",
            "unsupported_media_type",
            request_id,
        );
    }
    jsonrpc_answer(
        parts,
        serde_json::Value::Null,
        serde_json::json!({
            "code": -32600,
            "message": INVALID_MESSAGE,
            "data": { "reason": "invalid_message" },
        }),
        request_id,
    )
}

/// rmcp's plain-text 405 (a method other than GET, POST and DELETE; its
/// `Allow` kept) and 406 (an `Accept` that does not list both
/// `application/json` and `text/event-stream`, as MCP's transport asks of
/// every POST and GET, `*/*` included) as the crate's other HTTP-level
/// refusals: a JSON body with `error`, `error_description`, `reason`
/// (`method_not_allowed`, `not_acceptable`) and `request_id` (found from
/// outside: the two plain-text refusals left on the MCP route, without a
/// code or the request id). Only rmcp's own answers (no content type, a
/// few dozen bytes) are rewritten.
async fn plain_refusal_as_json(
    response: axum::response::Response,
    status: http::StatusCode,
    request_id: Option<crate::correlation::RequestId>,
    get: bool,
    stateless: bool,
) -> axum::response::Response {
    let (mut parts, _) = match rmcp_plain_text(response, status).await {
        Ok(plain) => plain,
        Err(response) => return response,
    };
    if status == http::StatusCode::METHOD_NOT_ALLOWED && stateless {
        parts
            .headers
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
    }
    let (description, reason) = match (status, get) {
        (http::StatusCode::METHOD_NOT_ALLOWED, _) => (
            "This method is not served here: the MCP endpoint takes the methods its Allow field names",
            "method_not_allowed",
        ),
        // A GET opens an event stream: it asks for that alone (found from
        // outside: told to list both types, which a GET need not).
        (_, true) => (
            "The Accept header must list text/event-stream (MCP streamable HTTP: a GET opens an event stream)",
            "not_acceptable",
        ),
        _ => (
            "The Accept header must list both application/json and text/event-stream (MCP streamable HTTP)",
            "not_acceptable",
        ),
    };
    json_refusal(parts, description, reason, request_id)
}

/// `parts` with the crate's JSON refusal body (`error` `invalid_request`,
/// `error_description`, `reason`, `request_id`) in place of rmcp's text.
fn json_refusal(
    mut parts: http::response::Parts,
    description: &str,
    reason: &str,
    request_id: Option<crate::correlation::RequestId>,
) -> axum::response::Response {
    let body = crate::challenge::json_error_body(
        Some("invalid_request"),
        description,
        reason,
        request_id
            .as_ref()
            .map(crate::correlation::RequestId::as_str),
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    crate::challenge::error_headers(&mut parts.headers);
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

/// A path the server routes: one axum serves literally
/// ([`route_path_problem`](crate::config::route_path_problem)) and that no
/// metadata route holds.
fn check_route(field: &'static str, path: &str) -> Result<(), ConfigError> {
    if let Some(problem) = crate::config::route_path_problem(path) {
        return Err(ConfigError::new(field, format!("{path:?} {problem}")));
    }
    // The metadata routes (the root one and this resource's, both under
    // the well-known path), and the rest of that namespace, where a client
    // of a resource at another path looks for its metadata (RFC 9728
    // section 3.1; found from outside: a readiness probe was served at
    // `/.well-known/oauth-protected-resource/x`).
    if path
        .strip_prefix(crate::metadata::WELL_KNOWN_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    {
        return Err(ConfigError::new(
            field,
            format!(
                "{path:?} is where the protected resource metadata is served (RFC 9728 section 3.1)"
            ),
        ));
    }
    Ok(())
}

/// [`AuthConfig::allowed_hosts`] and the builder's
/// [`allowed_host`](McpServerBuilder::allowed_host) names.
fn allowed_hosts(config: &AuthConfig, extra: &[String]) -> Vec<String> {
    let mut hosts = config.allowed_hosts();
    hosts.extend(extra.iter().cloned());
    hosts
}

impl McpServer {
    /// The axum router: the protected MCP endpoint and the metadata routes.
    /// Merge it into a larger app; the caller then owns serving.
    ///
    /// Its routes carry the request-body guards of [`BodyGuardLayer`] (the
    /// configured [`body_read_timeout`](McpServerBuilder::body_read_timeout),
    /// and keep-alive after answers given before a body was read), so an
    /// app serving it with `axum::serve` keeps them; the guards that need
    /// the accept loop (header read and response write timeouts, the
    /// HTTP/2 idle limit) come only with [`serve`](Self::serve). Routes the
    /// app adds itself are guarded when the app puts a [`BodyGuardLayer`]
    /// around the whole router.
    pub fn into_router(self) -> Router {
        self.router
            .layer(BodyGuardLayer::new().read_timeout(self.body_read_timeout))
    }

    /// A handle on the authentication counters (see [`MetricsSnapshot`](crate::MetricsSnapshot)).
    pub fn metrics(&self) -> crate::layer::Metrics {
        self.metrics.clone()
    }

    /// A handle telling whether the server can verify tokens yet.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// A token that stops rmcp's sessions and [`serve`](Self::serve) when cancelled.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.ct.clone()
    }

    /// Binds the configured address (default `127.0.0.1:8080`) and serves
    /// until Ctrl-C / SIGTERM, then shuts down gracefully (see
    /// [`serve_with_shutdown`](Self::serve_with_shutdown) for the connection
    /// settings).
    pub async fn serve(self) -> Result<(), Error> {
        let addr = self
            .bind
            .clone()
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listener = TcpListener::bind(&addr).await?;
        // The first signal starts the graceful stop; a second one during
        // it drops the connections still open and returns at once (an
        // operator who presses Ctrl-C twice wants out; found from outside:
        // a second signal waited out the whole stop, 35 s with a stalled
        // request).
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let first = async move {
            shutdown_signal().await;
            let _ = first_tx.send(());
        };
        let second = async move {
            match first_rx.await {
                Ok(()) => shutdown_signal().await,
                Err(_) => std::future::pending().await,
            }
        };
        self.serve_with_shutdown_and_force(listener, first, second)
            .await
    }

    /// Serves on `listener` until `shutdown` completes (or the cancellation
    /// token is cancelled), then drains gracefully: no new connections, and
    /// the open ones finish their requests (an HTTP/2 connection with none
    /// in progress that its peer keeps open after the GOAWAY is dropped
    /// after 5 s, or the header read timeout if shorter). The cancellation
    /// token is cancelled once the connections have drained, or 5 s after
    /// `shutdown` completed: the calls in progress are answered first, and
    /// the event streams (which end only with the token) end then. The
    /// connections still open 30 s after that (a client reading an answer
    /// slowly) are dropped, and this returns. Key sets
    /// are fetched as serving starts, beside it: the metadata and the
    /// challenges, which need no key, are answered at once, and a request
    /// that needs a key joins that fetch (within `verify_timeout`). A
    /// failure is logged and retried on demand (requests get 503 until keys
    /// are available; the readiness probe says not ready). A configured
    /// shared store is asked once as serving starts, beside it: a store
    /// that does not answer (down, a password it refuses) is logged then
    /// (`warn`, reason `store_unavailable`), not first at the request that
    /// needs it.
    ///
    /// Connection settings (HTTP/1.1 and HTTP/2 on the same port):
    /// - `TCP_NODELAY` on every accepted socket (see
    ///   [`McpServerBuilder::tcp_nodelay`]): without it each streamed call
    ///   on a keep-alive connection waits about 40 ms for a delayed ACK.
    /// - HTTP/1 request headers must arrive within 30 s (hyper's timer-driven
    ///   default, which `axum::serve` leaves off), so a client trickling
    ///   headers cannot hold a connection open; the connection is closed.
    ///   A new connection's first byte has the same limit (see
    ///   [`McpServerBuilder::header_read_timeout`]).
    /// - A request's body must arrive within 30 s of the first wait for
    ///   its bytes, HTTP/1 and HTTP/2 (see
    ///   [`McpServerBuilder::body_read_timeout`]).
    /// - A response the client stops reading: the connection is closed
    ///   once no byte of it has gone through for 30 s (see
    ///   [`McpServerBuilder::response_write_timeout`]).
    /// - HTTP/1 keep-alive on; HTTP/2 pings the client every 60 s
    ///   and drops a connection whose peer does not answer within 20 s,
    ///   and closes one with no request in progress for the header read
    ///   timeout (GOAWAY).
    /// - HTTP/2: at most 200 streams open at once on a connection
    ///   (SETTINGS_MAX_CONCURRENT_STREAMS), and at most 200 of its requests
    ///   in progress, streams the client reset included: a reset request is
    ///   run to its end in its slot (rmcp's handler would run on without
    ///   it anyway), and a request finding no slot free waits for one, so
    ///   a client resetting its streams in a loop (CVE-2023-44487) cannot
    ///   start more handlers than the stream limit. A handler is then not
    ///   cancelled by a reset of its stream.
    /// - At most [`McpServerBuilder::max_connections`] connections at once
    ///   (default: three quarters of the file-descriptor limit), requests
    ///   still in progress of closed connections included; at the limit,
    ///   new connections wait in the listen backlog.
    /// - Accept errors (out of file descriptors, ...) are retried after a
    ///   pause (5 ms, doubling up to 1 s) instead of ending the server or
    ///   spinning, and logged at most once every 10 s.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        self.serve_with_shutdown_and_force(listener, shutdown, std::future::pending())
            .await
    }

    /// [`serve_with_shutdown`](Self::serve_with_shutdown), and `force`
    /// completing during the graceful stop ends it: the connections still
    /// open are dropped and this returns within a second. [`serve`](Self::serve)
    /// passes a second Ctrl-C / SIGTERM as `force`.
    pub async fn serve_with_shutdown_and_force(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        force: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        // Beside serving, not before it (found from outside: with an
        // issuer that did not answer, nothing was accepted for the whole
        // fetch deadline after the server said it was listening, the
        // metadata and a stop signal included, and `verify_timeout` did not
        // hold in that window). Requests that need keys join the same
        // fetch (the caches' single flight).
        if let Some(jwt) = self.jwt.clone() {
            let ct = self.ct.clone();
            tokio::spawn(async move {
                tokio::select! {
                    fetched = jwt.prefetch() => {
                        if let Err(e) = fetched {
                            tracing::warn!(error = %e, "could not fetch the issuers' keys at start-up; will retry on demand");
                        }
                    }
                    () = ct.cancelled() => {}
                }
            });
        }
        if let Some(introspection) = self.introspection.clone() {
            let ct = self.ct.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = introspection.discover_endpoints() => {}
                    () = ct.cancelled() => {}
                }
            });
        }
        // Asked once as serving starts, beside it (found from outside: a
        // password Redis refuses was told at the first request that needed
        // the store, as a 503, and nowhere before).
        if let Some(store) = self.store.clone() {
            let ct = self.ct.clone();
            tokio::spawn(async move {
                tokio::select! {
                    answer = store.get(STORE_PROBE_KEY) => match answer {
                        Ok(_) => tracing::debug!("the shared store answered"),
                        Err(e) => tracing::warn!(
                            error = %e,
                            reason = "store_unavailable",
                            "the shared store does not answer at start-up: requests that need it are refused (503 store_unavailable) until it does"
                        ),
                    },
                    () = ct.cancelled() => {}
                }
            });
        }
        let local: Option<SocketAddr> = listener.local_addr().ok();
        tracing::info!(
            addr = local.map(tracing::field::display),
            resource = %self.resource,
            path = %self.path,
            "serving the protected MCP endpoint"
        );
        // A root resource is allowed (the README says when), but the
        // endpoint is still the MCP path, which the resource does not name:
        // said once (found from outside: nothing said where the endpoint
        // was, and a client calling the root got a bare 404).
        if is_origin_root(&self.resource) {
            tracing::warn!(
                resource = %self.resource,
                path = %self.path,
                reason = "root_resource",
                "the resource is an origin root: MCP is served at the path, which the resource does not name; a client that holds the metadata's resource to the URL it calls (RFC 9728 section 3.3) refuses it (name the endpoint itself, such as https://host/mcp, unless your clients need the root)"
            );
        }
        // A plain http:// resource is allowed on loopback only (the
        // development opt-in), but nothing stops the listener from taking
        // every interface: said once (found from outside, `BIND=0.0.0.0`).
        if self.resource.starts_with("http://")
            && let Some(addr) = local.filter(|a| !a.ip().to_canonical().is_loopback())
        {
            tracing::warn!(
                %addr,
                resource = %self.resource,
                reason = "plain_http_beyond_loopback",
                "serving a plain http:// resource on an address that is not loopback: tokens would cross the network in clear (the insecure-loopback opt-in is for local development; bind to 127.0.0.1 or serve https://)"
            );
        }
        let ct = self.ct.clone();
        let stop = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = ct.cancelled() => {}
            }
        };
        let options = ConnectionOptions {
            nodelay: self.tcp_nodelay,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            response_write_timeout: self.response_write_timeout,
            max_connections: self
                .max_connections
                .unwrap_or_else(connections::default_max_connections),
            max_header_bytes: self.max_header_bytes,
        };
        tracing::debug!(
            max_connections = options.max_connections,
            "connection limit"
        );
        serve_connections(
            listener,
            self.router,
            options,
            (stop, force),
            self.ct.clone(),
        )
        .await;
        // Stopped: what the refusal log limit left untold is told now, not
        // after a second the process may not live (found from outside).
        self.metrics.flush_audit();
        Ok(())
    }
}

/// The key [`McpServer::serve_with_shutdown`] reads once from the shared
/// store to see that it answers (never written).
const STORE_PROBE_KEY: &str = "mcp_oauth2:probe";

/// The per-connection settings of [`serve_connections`].
#[derive(Clone, Copy)]
struct ConnectionOptions {
    nodelay: bool,
    header_read_timeout: Option<std::time::Duration>,
    body_read_timeout: Option<std::time::Duration>,
    response_write_timeout: Option<std::time::Duration>,
    max_connections: usize,
    max_header_bytes: usize,
}

/// The default of [`McpServerBuilder::max_header_bytes`]: 16 KiB, as hyper
/// caps an HTTP/2 header list by default.
pub(crate) const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// The least [`McpServerBuilder::max_header_bytes`]: hyper refuses (panics
/// on) an HTTP/1 buffer under 8 KiB.
const MIN_MAX_HEADER_BYTES: usize = 8 * 1024;
/// The most [`McpServerBuilder::max_header_bytes`]: 1 MiB.
const MAX_MAX_HEADER_BYTES: usize = 1024 * 1024;

/// The longest header read, body read and response write timeout: a day
/// (each is added to the clock's `Instant`, which a larger value could
/// overflow).
const MAX_CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(86_400);

/// How long a client may take to send a request's body (see
/// [`McpServerBuilder::body_read_timeout`]).
pub(crate) const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a client may leave a response unread (see
/// [`McpServerBuilder::response_write_timeout`]).
const RESPONSE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a client may take to send an HTTP/1 request's headers (hyper's
/// default, enforced only with a timer).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a stop waits for an HTTP/2 connection with no request in
/// progress to close after its GOAWAY before dropping it.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Interval of HTTP/2 keep-alive pings.
const HTTP2_KEEP_ALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long an HTTP/2 peer may take to answer a keep-alive ping.
const HTTP2_KEEP_ALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The accept loop of [`McpServer::serve_with_shutdown`]: hyper-util's
/// HTTP/1 + HTTP/2 connection builder with a Tokio timer (which
/// `axum::serve` does not set, so header timeouts never fire there), each
/// connection in its own task, watched for a graceful drain once `stop`
/// completes. `ct` (rmcp's) is cancelled once the connections have drained,
/// or [`DRAIN_GRACE`] after the stop if some have not: the calls in
/// progress are answered first (cancelling it at once made rmcp drop them
/// with a 500), and the event streams, which only end with it, end then.
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    options: ConnectionOptions,
    (stop, force): (
        impl Future<Output = ()> + Send + 'static,
        impl Future<Output = ()> + Send + 'static,
    ),
    ct: CancellationToken,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .keep_alive(true)
        .max_buf_size(options.max_header_bytes);
    match options.header_read_timeout {
        Some(timeout) => {
            http1.timer(TokioTimer::new()).header_read_timeout(timeout);
        }
        // hyper's own default is 30 s once a timer is set: said explicitly.
        None => {
            http1.header_read_timeout(None);
        }
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT)
        .max_concurrent_streams(stream_slots::HTTP2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    // Failed accepts (EMFILE, ...) are retried after a pause (see
    // `connections::accept`).
    let mut backoff = connections::initial_backoff();
    let mut accept_log = connections::Every::default();
    // The connection limit (see `connections`): a slot is taken before
    // each accept.
    let limit = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    let mut limit_log = connections::Every::default();
    let builder = Arc::new(builder);
    // Every connection's task, so that a stop waits for them to drain.
    let connections = tokio_util::task::TaskTracker::new();
    // Cancelled when the server stops: each connection is shut down
    // gracefully (an HTTP/1 request in progress finishes; HTTP/2 gets a
    // GOAWAY), and connections still waiting for their first byte are
    // dropped instead of holding the drain up.
    let draining = CancellationToken::new();
    // Past the stop limit: the connections still open are dropped.
    let forced = CancellationToken::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = match Arc::clone(&limit).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if let Some(suppressed) = limit_log.due() {
                    tracing::warn!(
                        max_connections = options.max_connections,
                        times_not_logged = suppressed,
                        "connection limit reached: new connections wait in the listen backlog"
                    );
                }
                tokio::select! {
                    slot = Arc::clone(&limit).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        // Never closed.
                        Err(_) => break,
                    },
                    () = &mut stop => break,
                }
            }
        };
        let slot: connections::ConnectionSlot = Arc::new(slot);
        let (io, remote) = tokio::select! {
            accepted = connections::accept(&listener, &mut backoff, &mut accept_log) => accepted,
            () = &mut stop => break,
        };
        if options.nodelay
            && let Err(e) = io.set_nodelay(true)
        {
            tracing::trace!(error = %e, "could not set TCP_NODELAY on an accepted connection");
        }
        // The peer's address, for the throttle and the audit events
        // (`ConnectInfo`, as `into_make_service_with_connect_info` gives).
        let service = tower_layer::Layer::layer(
            &axum::Extension(axum::extract::ConnectInfo(remote)),
            router.clone(),
        );
        // The HTTP/2 idle limit shares the header read timeout: the time a
        // connection may go without a request in progress.
        let idle_limit = options.header_read_timeout;
        // The stall limit of an HTTP/2 response its client takes no more
        // of: the response write timeout (the socket's own write timer
        // cannot see it; see `idle`).
        let stall_limit = options.response_write_timeout;
        let activity = (idle_limit.is_some() || stall_limit.is_some())
            .then(|| Arc::new(idle::Activity::new(stall_limit.is_some())));
        // The handlers of an HTTP/2 connection's requests are bounded by
        // its stream limit, reset streams included (see `stream_slots`).
        // Cancelled when the connection's task ends (the guard moves in).
        let closed = CancellationToken::new();
        let closed_guard = closed.clone().drop_guard();
        let service = stream_slots::StreamSlots {
            inner: service,
            slots: stream_slots::slots(),
            connection: Arc::clone(&slot),
            closed,
        };
        let service = TowerToHyperService::new(timed_body::TimedBodies {
            inner: service,
            limit: options.body_read_timeout,
            activity: activity.clone(),
        });
        let builder = Arc::clone(&builder);
        let draining = draining.clone();
        let forced = forced.clone();
        // The connection's memory of its last token's digest (see
        // `token_cache::per_connection`).
        connections.spawn(crate::verify::token_cache::per_connection(async move {
            // The connection's slot, until its task ends (and requests of
            // it still in progress hold their clones).
            let _slot = slot;
            let _closed = closed_guard;
            // hyper's header timer starts once hyper-util has seen enough
            // bytes to tell HTTP/1 from HTTP/2, and hyper-util waits for
            // them without a limit: a connection that never sends a byte
            // would be held forever. The first byte gets the same limit
            // as a request head (a timer per connection, not per call).
            if let Some(limit) = options.header_read_timeout {
                // `peek`, not `readable`: readiness may be reported before
                // any byte has arrived.
                let mut first = [0u8; 1];
                tokio::select! {
                    peeked = tokio::time::timeout(limit, io.peek(&mut first)) => {
                        if !matches!(peeked, Ok(Ok(n)) if n > 0) {
                            tracing::trace!("connection sent nothing within the header read timeout");
                            return;
                        }
                    }
                    () = draining.cancelled() => return,
                }
            }
            // Writes that wait over the limit for the peer to read fail,
            // which ends the connection.
            let mut io = tokio_io_timeout::TimeoutWriter::new(io);
            io.set_timeout(options.response_write_timeout);
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(Box::pin(io)), service)
                .into_owned();
            let mut conn = std::pin::pin!(conn);
            let idle = async {
                match (&activity, idle_limit) {
                    (Some(activity), Some(limit)) => activity.idle(limit).await,
                    _ => std::future::pending().await,
                }
            };
            let mut stalled = std::pin::pin!(async {
                match (&activity, stall_limit) {
                    (Some(activity), Some(limit)) => {
                        activity.stalled(limit).await;
                        tracing::trace!("HTTP/2 response not taken by its client within the response write timeout: dropping the connection");
                    }
                    _ => std::future::pending().await,
                }
            });
            // Whether the connection was idle (otherwise the server is
            // stopping).
            let idled = tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::trace!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = &mut stalled => return,
                () = draining.cancelled() => false,
                () = idle => {
                    tracing::trace!("HTTP/2 connection idle for the header read timeout: closing it");
                    true
                }
            };
            conn.as_mut().graceful_shutdown();
            // An HTTP/2 peer may keep its connection open after the
            // GOAWAY (hyper then waits for its ping timeout, up to 80 s):
            // one with no request in progress is dropped after a grace,
            // the idle limit for an idle connection and at most
            // `DRAIN_GRACE` on a stop. HTTP/1 connections close by
            // themselves once their request is answered.
            let grace = match (&activity, idle_limit) {
                (Some(activity), Some(limit)) if !activity.is_http1() => {
                    Some((activity, if idled { limit } else { limit.min(DRAIN_GRACE) }))
                }
                _ => None,
            };
            let ended = loop {
                let wait = async {
                    match grace {
                        Some((_, grace)) => tokio::time::sleep(grace).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    ended = conn.as_mut() => break Some(ended),
                    () = &mut stalled => break None,
                    () = forced.cancelled() => break None,
                    // A request that slipped in before the GOAWAY is
                    // finished; only a connection with none is dropped.
                    () = wait => {
                        if grace.is_some_and(|(activity, _)| !activity.is_busy()) {
                            break None;
                        }
                    }
                }
            };
            if let Some(Err(e)) = ended {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        }));
    }
    drop(listener);
    // Said as the stop starts (found from outside: only the second
    // signal's forced stop was logged, so an operator could not tell a
    // draining server from a hung one).
    tracing::info!(
        open = connections.len(),
        "stopping: no new connections; the open ones finish what they are doing (a second stop signal drops them)"
    );
    draining.cancel();
    connections.close();
    let drain = drain(&connections, &ct, &forced);
    tokio::select! {
        () = drain => {}
        () = force => {
            tracing::warn!(
                open = connections.len(),
                "a second stop signal: the connections still open are dropped now"
            );
            ct.cancel();
            forced.cancel();
            let _dropped = tokio::time::timeout(FORCED_GRACE, connections.wait()).await;
        }
    }
}

/// How long a forced stop (a second signal) waits for the dropped
/// connections' tasks to end.
const FORCED_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The graceful stop of [`serve_connections`] once its listener is closed
/// and `draining` cancelled: the calls in progress are answered, then the
/// event streams end, then what is left past [`STOP_LIMIT`] is dropped.
async fn drain(
    connections: &tokio_util::task::TaskTracker,
    ct: &CancellationToken,
    forced: &CancellationToken,
) {
    // The calls in progress finish; a connection still open after the
    // grace holds an event stream (or a call slower than the grace), which
    // rmcp ends when its token is cancelled.
    let _drained = tokio::time::timeout(DRAIN_GRACE, connections.wait()).await;
    ct.cancel();
    // Then a last limit: a client reading an answer slowly but steadily
    // (each piece within `response_write_timeout`) held the stop for as long
    // as it liked (found from outside: a minute at 16 KiB every 3 s, hours
    // for a large answer). Connections still open after it are dropped.
    if tokio::time::timeout(STOP_LIMIT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            limit_s = STOP_LIMIT.as_secs(),
            "stopping with connections still open past the stop limit: they are dropped"
        );
        forced.cancel();
        // What is left (a call abandoned by its client, run to its end in
        // a task of its own) is not waited for again.
        let _dropped = tokio::time::timeout(DRAIN_GRACE, connections.wait()).await;
    }
}

/// How long a stop waits for the connections after [`DRAIN_GRACE`] and
/// the cancellation of the event streams, before it drops those still
/// open.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text_of(response: axum::response::Response) -> (u16, String) {
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn rmcp_500(text: &str) -> axum::response::Response {
        axum::response::Response::builder()
            .status(http::StatusCode::INTERNAL_SERVER_ERROR)
            .body(axum::body::Body::from(text.to_owned()))
            .unwrap_or_default()
    }

    // rmcp's 500 for a session that ended under a request (found from
    // outside: its owner's DELETE racing a call) is the 404 of a session
    // gone; any other 500 passes unchanged.
    #[tokio::test]
    async fn a_session_gone_under_a_request_is_404_not_500() {
        for gone in [
            "Encounter an error when get session: Session not found: 37cf8049-aa",
            "Encounter an error when create standalone stream: Session not found: 8031",
            "Encounter an error when accept message: Session error: Session service terminated",
        ] {
            let (status, text) = text_of(session_gone_as_404(rmcp_500(gone)).await).await;
            assert_eq!(status, 404, "{gone}");
            assert_eq!(text, "Not Found: Session not found", "{gone}");
        }
        for other in [
            "Encounter an error when serialize json response: oops",
            "Session not found",
        ] {
            let (status, text) = text_of(session_gone_as_404(rmcp_500(other)).await).await;
            assert_eq!((status, text.as_str()), (500, other));
        }
    }
}
