//! The reference protected MCP server, configured only by environment
//! variables: everything [`AuthConfig::from_env`] reads, plus
//! `MCP_OAUTH2_BIND` (default `127.0.0.1:8080`), `MCP_OAUTH2_LOG_FORMAT`
//! (`json`: JSON lines with every audit event, `auth.accepted` included;
//! default text, with the refusal events only, unless `RUST_LOG` says
//! otherwise), `MCP_OAUTH2_HEADER_READ_TIMEOUT` (seconds an HTTP/1
//! client may take to send a request's head, a new connection its first
//! byte, and an HTTP/2 connection to stay without a request in progress;
//! default 30; `off` when a proxy in front enforces its own:
//! [`McpServerBuilder::header_read_timeout`](mcp_oauth2::McpServerBuilder::header_read_timeout)),
//! `MCP_OAUTH2_BODY_READ_TIMEOUT` (seconds a client may take to send a
//! request's body once the server waits for it; default 30; `off`:
//! [`McpServerBuilder::body_read_timeout`](mcp_oauth2::McpServerBuilder::body_read_timeout)),
//! and `MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT` (seconds a response may wait
//! for its client to read the next bytes before the connection is closed;
//! default 30; `off`:
//! [`McpServerBuilder::response_write_timeout`](mcp_oauth2::McpServerBuilder::response_write_timeout)).
//! Each timeout is at most 86400 seconds (a day).
//! `MCP_OAUTH2_MAX_CONNECTIONS` (a whole number, 1 or more) is how many
//! connections the server holds at once, the requests still in progress of
//! closed connections included; at the limit new connections wait in the
//! listen backlog (default three quarters of the process's file-descriptor
//! limit, `ulimit -n`:
//! [`McpServerBuilder::max_connections`](mcp_oauth2::McpServerBuilder::max_connections)).
//! `MCP_OAUTH2_MAX_HEADER_BYTES` (a whole number of bytes, 8192 to
//! 1048576; default 16384) is the largest request head the server reads:
//! a longer HTTP/1 head is answered 431, a longer HTTP/2 header list 431
//! on its stream
//! ([`McpServerBuilder::max_header_bytes`](mcp_oauth2::McpServerBuilder::max_header_bytes)).
//! `MCP_OAUTH2_READINESS_PATH` (a path such as `/readyz`; default none)
//! serves a readiness probe there without authentication: 200 once the
//! issuers' key sets are fetched, 503 with `Retry-After` before (the server
//! answers from the start, the metadata and challenges included, and fetches
//! the keys beside serving:
//! [`McpServerBuilder::readiness_path`](mcp_oauth2::McpServerBuilder::readiness_path)). Any other `MCP_OAUTH2_*`
//! variable (a misspelling such as `MCP_OAUTH2_REQUIRED_SCOPE`) stops the
//! server before it listens, naming it. Ctrl-C (SIGINT) or SIGTERM stops it
//! gracefully: it accepts no new connection, the calls in progress get their
//! answers, and it exits with status 0; a second one during that stop
//! drops what is left at once.
//!
//! Tools: `whoami` (subject, client_id, scopes, issuer, `dpop_jkt` (the key
//! thumbprint of a DPoP-bound token, else `null`), and for a tenant issuer
//! `tenant`, as JSON text; notes
//! are kept per issuer, tenant and subject), `list_notes`
//! (scope `notes:read`; the notes' text with `notes:private`, else their
//! `notes://private/{n}` URIs and `"text_needs": "notes:private"`; pages
//! of at most 64 KiB of text, `"next"` naming the `{"from": n}` of the
//! next), `add_note` (scope `notes:write`, which implies
//! `notes:read`; at most 16 KiB a note and 1,000 notes a user, else the
//! JSON-RPC error `-32602`), `read_note` (`{"id": <integer>, "folder": "shared" |
//! "private"}`: scope `notes:read`, and `notes:private` for the private
//! folder, decided from the arguments before dispatch; a missing note is a
//! result, not an error) and `export_notes` (`{"from": n}` optional, paged as
//! `list_notes`; scope
//! `notes:read`, and the handler asks for `notes:export` mid-call: without
//! it, HTTP 403 with `scope="notes:read notes:export"`, the late step-up;
//! `notes:export` exports the notes' text and implies `notes:private`).
//!
//! `seen_headers` returns the names of the HTTP headers a handler can read,
//! sorted, as a JSON array: `authorization` is never among them (no token
//! passthrough). `downstream_whoami` exchanges the caller's token (RFC 8693,
//! at `MCP_OAUTH2_TOKEN_ENDPOINT` or the token endpoint discovered from the
//! caller's issuer (with several issuers, the first's callers only, whichever
//! endpoint: callers of the others get `issuer_not_allowed`; with an issuer
//! template first, the callers of the tenants `MCP_OAUTH2_TENANTS` lists,
//! none with `*`), authenticating
//! with `MCP_OAUTH2_CLIENT_ID` /
//! `MCP_OAUTH2_CLIENT_SECRET`) for a token for `MCP_OAUTH2_DOWNSTREAM_AUDIENCE`,
//! GETs `MCP_OAUTH2_DOWNSTREAM_URL` with it as Bearer and returns the body;
//! without those variables, or when the exchange is refused, its result has
//! `isError: true` naming the missing variables or the token endpoint's error
//! code (`invalid_grant: ...`). When the token endpoint says the user must
//! interact (`consent_required`, `interaction_required`, ...), the call
//! answers HTTP 403 `insufficient_scope` instead (the step-up challenge),
//! naming `MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES` (optional, space-separated)
//! and the caller's scopes, so the client sends the user back to the
//! authorization server. With `MCP_OAUTH2_REDIS_URL` and
//! `MCP_OAUTH2_EXCHANGE_CACHE_KEY` (base64 of 32 bytes or more, the same on
//! every replica), exchanged tokens are shared by the replicas, sealed with
//! AES-256-GCM. With `MCP_OAUTH2_REDIS_URL` and `MCP_OAUTH2_DPOP_NONCE=1`,
//! `MCP_OAUTH2_DPOP_NONCE_SECRET` (32 bytes or more, the same on every
//! replica) is required, so that a DPoP nonce one replica issued is good at
//! the others. A downstream variable that is set but unusable (the token
//! endpoint or the downstream URL not `https://`, or `http://` on loopback
//! with `MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK=1`; the cache key too short or
//! without `MCP_OAUTH2_REDIS_URL`; a step-up scope that is `offline_access`
//! or not a scope token)
//! stops the server before it listens, naming the variable. Setting `MCP_OAUTH2_CLIENT_ID` also turns introspection of
//! opaque tokens on, and then `MCP_OAUTH2_CLIENT_SECRET` is required (see the
//! configuration table).
//!
//! Resources (listed as templates by `resources/templates/list`):
//! `notes://shared/{id}` (scope `notes:read`; ids `welcome` and `rules`) and
//! `notes://private/{id}` (scope `notes:private`; your n-th note, from 1).
//! Both are readable with `resources/read` and subscribable:
//! `resources/subscribe` / `resources/unsubscribe` before 2026-07-28,
//! `subscriptions/listen` (`notifications.resourceSubscriptions`) in it.
//!
//! A call without the scopes of its tool or of every resource it names
//! gets HTTP 403 with one `insufficient_scope` challenge naming all of them
//! (the step-up flow). The metadata advertises `notes:read` as the basic
//! scope unless `MCP_OAUTH2_SCOPES_SUPPORTED` says otherwise, followed by
//! the `MCP_OAUTH2_REQUIRED_SCOPES` it lacks. Serves the
//! stateless 2026-07-28 protocol and legacy sessions.
//!
//! ```sh
//! MCP_OAUTH2_ISSUER=https://auth.example.com \
//! MCP_OAUTH2_RESOURCE=https://mcp.example.com/mcp \
//! MCP_OAUTH2_BIND=0.0.0.0:8080 \
//! cargo run --release --example protected_server
//! ```
//!
//! `--release`: a debug build serves about 0.6x as many calls a second as
//! rmcp alone built the same way (BENCHMARKS.md, "seventeenth pass").
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

#[path = "common/notes.rs"]
mod notes;

use mcp_oauth2::{AuthConfigBuilder, McpServer};

// mimalloc, not the system allocator: a stateless `tools/call` allocates
// about 225 times (bare rmcp as much), and glibc's malloc and free were a
// quarter of its instructions (BENCHMARKS.md, fifteenth pass). Two lines in
// any binary that serves `McpServer`; the library does not choose for it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the server; a configuration or start-up error is printed as text
/// (`Error: invalid `MCP_OAUTH2_...`: ...`), exit status 1. Returning it
/// from `main` printed its `Debug` form, quotes escaped (found from
/// outside).
fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether the filter `rust_log` has a directive for `krate` or one of its
/// modules (`h2=warn`, `h2::proto=debug`, `h2[span]=trace`), as
/// `tracing_subscriber`'s directives name targets.
fn names_crate(rust_log: &str, krate: &str) -> bool {
    rust_log.split(',').any(|directive| {
        let target = directive
            .split(['=', '['])
            .next()
            .unwrap_or_default()
            .trim();
        target == krate
            || target
                .strip_prefix(krate)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // `json` or `text`, in any case (keywords are, as `MCP_OAUTH2_DPOP`'s).
    let format = std::env::var("MCP_OAUTH2_LOG_FORMAT").map(|f| f.trim().to_ascii_lowercase());
    let json = format.as_deref() == Ok("json");
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().map(|filter| {
        // A `RUST_LOG` that does not name rmcp keeps rmcp's lines of client
        // text out as the default does (found from outside: `RUST_LOG=debug`
        // wrote a JWT sent as a JSON-RPC id whole); name `rmcp` in it
        // (`RUST_LOG=debug,rmcp=debug`) to see them.
        // The same for h2 (below). A crate is named by a directive for it
        // or one of its modules (found from outside: `mcp_oauth2` holds the
        // text "h2", and `RUST_LOG=info,mcp_oauth2::audit=info` let h2's
        // lines through).
        let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
        let mut quiet = Vec::new();
        if !names_crate(&rust_log, "rmcp") {
            quiet.extend(["rmcp=error", "rmcp::service=off"]);
        }
        if !names_crate(&rust_log, "h2") {
            quiet.push("h2=error");
        }
        quiet
            .into_iter()
            .filter_map(|d| d.parse().ok())
            .fold(filter, tracing_subscriber::EnvFilter::add_directive)
    });
    let filter = from_env.unwrap_or_else(|_| {
        // rmcp logs three INFO lines per stateless call (they cost about a
        // fifth of a call), and a WARN per call it answers with a JSON-RPC
        // error, holding the client's id and method as sent, unlimited
        // (found from outside: a JWT sent as the id was written whole, and
        // 1 MB ids wrote 1 MB lines): errors only from it by default, and
        // none from `rmcp::service`, which writes an ERROR for every
        // `subscriptions/listen` stream its client closes (found from
        // outside: 4,000 listens opened and closed wrote 3,983 lines in
        // 0.5 s, with a token of no scope); none below ERROR from h2, which
        // writes a WARN for every HTTP/2 connection that reaches its limit
        // of reset streams (found from outside: 100 connections without a
        // token wrote 100 lines; the connection still gets its GOAWAY).
        // The audit trail: every event in
        // JSON (a log pipeline wants `auth.accepted` too); on a terminal,
        // refusals only (one line per accepted call would cost as much as
        // rmcp's and bury the rest).
        if json {
            "info,rmcp=error,rmcp::service=off,h2=error".into()
        } else {
            "info,rmcp=error,rmcp::service=off,h2=error,mcp_oauth2::audit=warn".into()
        }
    });
    // `MCP_OAUTH2_LOG_FORMAT=json`: one JSON object per line (the audit
    // events on the target `mcp_oauth2::audit` with their fields), for a
    // log pipeline; anything else: human-readable text.
    // Colours only on a terminal: escape codes in a log file are noise,
    // and cost a refusal about a tenth of its log line.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // A log line that cannot be written is lost, never the request: with
    // internal errors on, the subscriber reports a failed write on stderr
    // with `eprintln!`, which panics when stderr is gone too (found from
    // outside: `protected_server 2>&1 | shipper` with the shipper dead cut
    // every logged request off without an answer, and a line outside a
    // request ended the process).
    match format.as_deref() {
        Ok("json") => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .log_internal_errors(false)
            .init(),
        Ok("" | "text") | Err(_) => tracing_subscriber::fmt()
            .with_ansi(ansi)
            .with_env_filter(filter)
            .log_internal_errors(false)
            .init(),
        Ok(other) => {
            return Err(
                format!("MCP_OAUTH2_LOG_FORMAT must be json or text, not {other:?}").into(),
            );
        }
    }

    let mut config = AuthConfigBuilder::from_env()?;
    // Unset or empty (as an env-file template leaves it): the default.
    if std::env::var("MCP_OAUTH2_SCOPES_SUPPORTED").map_or(true, |v| v.trim().is_empty()) {
        config = config.scopes_supported([notes::NOTES_READ]);
    }
    let config = notes::declare_scopes(config).build()?;
    // Trimmed, as every other variable is.
    let bind = set_var("MCP_OAUTH2_BIND").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    // The MCP endpoint is mounted at the resource's path as written: a
    // trailing slash is refused (the endpoint would be `/mcp/` and `/mcp`
    // would not be routed), as is a path the router cannot serve.
    let path = config.resource_path().to_owned();
    let path = if path == "/" || path.is_empty() {
        "/mcp".to_owned()
    } else {
        path
    };

    let store = notes::NoteStore::default();
    let downstream = std::sync::Arc::new(notes::Downstream::from_vars(
        |name| std::env::var(name).ok(),
        config.shared_store().cloned(),
    )?);
    // Unset: the builder's defaults (not repeated here).
    let header_read_timeout = timeout_var("MCP_OAUTH2_HEADER_READ_TIMEOUT")?;
    let body_read_timeout = timeout_var("MCP_OAUTH2_BODY_READ_TIMEOUT")?;
    let response_write_timeout = timeout_var("MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT")?;
    let max_connections = match set_var("MCP_OAUTH2_MAX_CONNECTIONS") {
        Some(value) => match whole_number(&value) {
            Some(limit) if limit > 0 => Some(usize::try_from(limit).unwrap_or(usize::MAX)),
            _ => {
                return Err(format!(
                    "MCP_OAUTH2_MAX_CONNECTIONS must be a whole number (1 or more), not {value:?}"
                )
                .into());
            }
        },
        None => None,
    };
    let max_header_bytes = match set_var("MCP_OAUTH2_MAX_HEADER_BYTES") {
        // Out of range: the builder's own message, under this name.
        Some(value) => match whole_number(&value) {
            Some(bytes) => Some(usize::try_from(bytes).unwrap_or(usize::MAX)),
            None => {
                return Err(format!(
                    "MCP_OAUTH2_MAX_HEADER_BYTES must be a whole number of bytes (8192 to 1048576), not {value:?}"
                )
                .into());
            }
        },
        None => None,
    };
    let mut server = McpServer::builder().auth(config).path(path);
    if let Some(limit) = max_connections {
        server = server.max_connections(limit);
    }
    if let Some(bytes) = max_header_bytes {
        server = server.max_header_bytes(bytes);
    }
    if let Some(timeout) = header_read_timeout {
        server = server.header_read_timeout(timeout);
    }
    if let Some(timeout) = body_read_timeout {
        server = server.body_read_timeout(timeout);
    }
    if let Some(timeout) = response_write_timeout {
        server = server.response_write_timeout(timeout);
    }
    // A readiness probe, unauthenticated: 200 once the issuers' keys are
    // fetched, 503 before (the server answers from the start, fetching the
    // keys beside serving).
    if let Some(path) = set_var("MCP_OAUTH2_READINESS_PATH") {
        server = server.readiness_path(path);
    }
    // Everything is checked before the server listens: scripts wait for
    // the `listening on` line to know it is up.
    let server = server
        .service(move || {
            Ok(notes::NotesServer::with_downstream(
                store.clone(),
                downstream.clone(),
            ))
        })
        .build()
        .map_err(|e| {
            // The builder's advice in this server's spelling: a timeout is
            // switched off with `off`, not `None` (found from outside).
            let message = e.message().replace("(None switches", "(off switches");
            match e.field() {
                // The only path set here is the resource's.
                "path" => format!(
                    "MCP_OAUTH2_RESOURCE: its path is where the MCP endpoint is served: {}",
                    message
                ),
                "header_read_timeout" => format!("MCP_OAUTH2_HEADER_READ_TIMEOUT: {}", message),
                "body_read_timeout" => format!("MCP_OAUTH2_BODY_READ_TIMEOUT: {}", message),
                "response_write_timeout" => {
                    format!("MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT: {}", message)
                }
                "max_connections" => format!("MCP_OAUTH2_MAX_CONNECTIONS: {}", message),
                "max_header_bytes" => format!("MCP_OAUTH2_MAX_HEADER_BYTES: {}", message),
                "readiness_path" => format!("MCP_OAUTH2_READINESS_PATH: {}", message),
                _ => e.to_string(),
            }
        })?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("MCP_OAUTH2_BIND: cannot listen on {bind:?}: {e}"))?;
    // Installed before the `listening on` line: a stop signal sent as soon
    // as a script sees it must start the graceful stop, not kill the
    // process (a signal's default action).
    let (stop, force) = stop_signals()?;
    // Tests and scripts read this line to find the port when binding to :0.
    // Written, not `println!`, which panicked (exit 101) when standard
    // output could not take it (found from outside: `> /dev/full`).
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", listener.local_addr()?)
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to standard output: {e}"))?;
    }
    server
        .serve_with_shutdown_and_force(listener, stop, force)
        .await?;
    Ok(())
}

/// Two futures: the first resolves on Ctrl-C (SIGINT) or, on Unix,
/// SIGTERM, what systemd, Docker and Kubernetes send to stop a service, and
/// starts the graceful stop (the calls in progress get their answers), as
/// `McpServer::serve` does; without SIGTERM here the process was killed at
/// once, cutting them off. The second resolves on the next such signal and
/// ends the stop at once (found from outside: a second Ctrl-C waited out
/// the whole stop). The handlers are installed now, before the server
/// says it listens.
fn stop_signals() -> std::io::Result<(
    impl std::future::Future<Output = ()>,
    impl std::future::Future<Output = ()>,
)> {
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<()>();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            for tx in [first_tx, second_tx] {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                let _ = tx.send(());
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        for tx in [first_tx, second_tx] {
            let _ = tokio::signal::ctrl_c().await;
            let _ = tx.send(());
        }
    });
    let wait = |rx: tokio::sync::oneshot::Receiver<()>| async move {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    Ok((wait(first_rx), wait(second_rx)))
}

/// The server's own variable `name`, trimmed; `None` when unset, empty or
/// blank, as the library reads its variables (the README: "an empty or
/// blank value is read as unset, for every variable"; found from outside:
/// an env-file template leaving `MCP_OAUTH2_HEADER_READ_TIMEOUT=` empty
/// stopped the server).
fn set_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A timeout variable: unset (`None`: the builder's default), a whole
/// number of seconds (1 or more) or `off`. Any other value stops the server
/// before it listens, with a message naming the variable.
fn timeout_var(name: &str) -> Result<Option<Option<std::time::Duration>>, String> {
    let Some(value) = set_var(name) else {
        return Ok(None);
    };
    match value.as_str() {
        off if off.eq_ignore_ascii_case("off") => Ok(Some(None)),
        v => match whole_number(v) {
            Some(secs) if secs > 0 => Ok(Some(Some(std::time::Duration::from_secs(secs)))),
            _ => Err(format!(
                "{name} must be a number of seconds (1 or more) or off, not {value:?}"
            )),
        },
    }
}

/// `value` as a whole number written in digits alone, as the library reads
/// its variables: no sign (Rust's parser took `+5`, the library's variables
/// refuse it; found from outside), and a number too large for the type read
/// as its largest value, so that the builder's range check says what is
/// allowed rather than "must be a whole number".
fn whole_number(value: &str) -> Option<u64> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<u64>().unwrap_or(u64::MAX))
}
