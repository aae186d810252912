//! The quickstart: one command, nothing but Rust.
//!
//! ```sh
//! cargo run --example quickstart            # walk-through, then keeps serving
//! cargo run --example quickstart -- --once  # walk-through, then exits 0
//! ```
//!
//! It starts an in-process development issuer (the `testing` feature's
//! [`TestIssuer`]: never use it in production) and the notes server behind
//! mcp-oauth2 on loopback, then walks through what an MCP client does:
//! 1. calls the MCP endpoint without a token and reads the 401 challenge;
//! 2. fetches the RFC 9728 metadata named by `resource_metadata`;
//! 3. discovers the authorization server (RFC 8414) and its keys;
//! 4. gets a token the way clients do: registration, authorization code
//!    with PKCE and a `resource` indicator (RFC 8707), token exchange;
//! 5. connects a real rmcp client with the token (MCP 2026-07-28: no
//!    session, each call authorized on its own), lists tools, calls `whoami`;
//! 6. step-up: `add_note` with a `notes:read` token gets HTTP 403 and an
//!    `insufficient_scope` challenge; a token with the union of scopes works;
//! 7. late step-up: `export_notes` learns mid-call that it needs
//!    `notes:export`; the handler's check becomes an HTTP 403 naming
//!    `notes:read notes:export`, and the re-authorized client succeeds;
//! 8. shows a token for another resource being refused with 401.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

#[path = "common/notes.rs"]
mod notes;

use std::time::Duration;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, McpServer};
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::ClientLifecycleMode;
use rmcp::service::ClientServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `println!` that ends the walk-through quietly, status 0, once its reader
/// has gone (`quickstart --once | head -1`): `println!` panics on a closed
/// pipe (found from outside: exit 101 and a panic message). Any other
/// failure to write (a full disk) ends it with status 1 and says so: a
/// walk-through nobody could read has not run (found from outside: `--once`
/// exited 0 with `> /dev/full`, and a CI smoke run would have passed).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("quickstart: cannot write the walk-through: {e}");
            std::process::exit(1);
        }
    }};
}

/// What the quickstart takes: `--once`, or `--help`.
const USAGE: &str = "usage: quickstart [--once]\n  \
    --once  run the walk-through, then exit (0 when every step held)\n  \
    (none)  run the walk-through, then keep serving for curl until Ctrl-C";

fn step(n: u32, title: &str) {
    say!("\n== {n}. {title}");
}

#[tokio::main]
async fn main() {
    // A failure is told in words, its causes below it, never as a Rust
    // `Debug` dump (found from outside: with loopback down the newcomer
    // saw `Error: reqwest::Error { kind: Request, ... }`).
    if let Err(e) = walk_through().await {
        eprintln!("quickstart failed: {e}");
        let mut source = e.source();
        while let Some(cause) = source {
            eprintln!("  because: {cause}");
            source = cause.source();
        }
        std::process::exit(1);
    }
}

/// The walk-through (and, without `--once`, the server kept for curl).
async fn walk_through() -> Result<(), BoxError> {
    // Only what it knows: an unknown argument (`--help` included) ran the
    // whole walk-through and kept serving (found from outside).
    let mut once = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--once" => once = true,
            "--help" | "-h" => {
                say!("{USAGE}");
                return Ok(());
            }
            other => {
                eprintln!("quickstart: unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    // The server's log on standard error, each line marked as the
    // server's: its audit lines for the refusals the walk-through shows
    // read as errors of the walk-through in its middle (found from
    // outside). Colours only on a terminal: a piped run (a CI log) gets
    // plain text.
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| ServerLogLine(Vec::new()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rmcp=error".into()),
        )
        .init();

    // The development issuer and the protected server, both on loopback.
    let issuer = TestIssuer::start().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let resource = format!("http://{addr}/mcp");
    let config = notes::declare_scopes(AuthConfig::builder())
        .issuer(issuer.issuer())
        .resource(&resource)
        .scopes_supported([notes::NOTES_READ])
        .resource_name("mcp-oauth2 quickstart notes")
        // Loopback http:// is for local development only; production is https://.
        .allow_insecure_http_for_loopback(true)
        .build()?;
    let server = McpServer::builder()
        .auth(config)
        .service({
            let store = notes::NoteStore::default();
            move || Ok(notes::NotesServer::new(store.clone()))
        })
        .build()?;
    let stop = server.cancellation_token();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    say!("Development issuer: {}", issuer.issuer());
    say!("Protected MCP server: {resource}");

    // Everything here is on loopback: never through a proxy of the
    // environment (`HTTP_PROXY` on a company machine or a CI runner).
    let http = direct_client()?;

    step(1, "Call the MCP endpoint without a token");
    let response = http
        .post(&resource)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await?;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    say!("HTTP {}", response.status());
    // Every challenge the server sends (Bearer, and DPoP, which it
    // accepts too: RFC 9449 section 7.1), as a client reads them.
    for value in response.headers().get_all("www-authenticate") {
        say!("WWW-Authenticate: {}", value.to_str().unwrap_or_default());
    }
    let metadata_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .ok_or("the challenge has no resource_metadata")?
        .to_owned();

    step(2, "Fetch the protected resource metadata (RFC 9728)");
    let metadata: serde_json::Value = http.get(&metadata_url).send().await?.json().await?;
    say!(
        "GET {metadata_url}\n{}",
        serde_json::to_string_pretty(&metadata)?
    );
    let authorization_server = metadata["authorization_servers"][0]
        .as_str()
        .ok_or("no authorization server")?
        .to_owned();

    step(3, "Discover the authorization server (RFC 8414)");
    let as_metadata_url = format!("{authorization_server}/.well-known/oauth-authorization-server");
    let as_metadata: serde_json::Value = http.get(&as_metadata_url).send().await?.json().await?;
    say!("GET {as_metadata_url}");
    say!("issuer:   {}", as_metadata["issuer"]);
    say!("jwks_uri: {}", as_metadata["jwks_uri"]);

    step(
        4,
        "Get a token for alice: authorization code + PKCE, bound to this resource (RFC 8707)",
    );
    // What an MCP client does: register (RFC 7591), send the user to the
    // authorization endpoint with a PKCE challenge and `resource`, exchange
    // the code. The development issuer approves at once (no login page).
    issuer.set_next_subject("alice");
    let read_token = authorize(&http, &as_metadata, &resource, &[notes::NOTES_READ]).await?;
    say!(
        "token (scope notes:read): {}...",
        &read_token[..24.min(read_token.len())]
    );

    step(
        5,
        "Connect an rmcp client (MCP 2026-07-28, stateless) with the token; list tools; call whoami",
    );
    let client = connect(&resource, &read_token).await?;
    let tools = client.list_all_tools().await?;
    say!(
        "tools: {}",
        tools
            .iter()
            .map(|t| t.name.as_ref())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let whoami = call_text(&client, "whoami", None).await?;
    say!("whoami -> {whoami}");
    let who: serde_json::Value = serde_json::from_str(&whoami)?;
    if who["subject"] != "alice" {
        return Err("whoami did not return the token's subject".into());
    }

    step(6, "Step-up: add_note needs notes:write");
    let refused = client
        .call_tool(
            CallToolRequestParams::new("add_note").with_arguments(args(r#"{"text":"hello"}"#)),
        )
        .await;
    let challenge = challenge_of(&refused, "add_note")?;
    say!("with notes:read only -> HTTP 403");
    say!("WWW-Authenticate: {challenge}");
    client.cancel().await?;
    // The client re-authorizes with the union of what it had and what the
    // challenge names (MCP "Step-Up Authorization Flow").
    let mut scopes = vec![notes::NOTES_READ.to_owned()];
    add_challenged_scopes(&mut scopes, &challenge);
    say!("re-authorizing with scope \"{}\"", scopes.join(" "));
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let write_token = authorize(&http, &as_metadata, &resource, &scope_refs).await?;
    let client = connect(&resource, &write_token).await?;
    say!(
        "with notes:write -> add_note: {}",
        call_text(
            &client,
            "add_note",
            Some(r#"{"text":"hello from the quickstart"}"#)
        )
        .await?
    );
    // The notes' text is guarded by notes:private, which this token lacks:
    // the list names them by URI.
    say!(
        "list_notes (no notes:private: the notes by URI) -> {}",
        call_text(&client, "list_notes", None).await?
    );

    step(
        7,
        "Late step-up: export_notes discovers mid-call that it needs notes:export",
    );
    let refused = client
        .call_tool(CallToolRequestParams::new("export_notes"))
        .await;
    let challenge = challenge_of(&refused, "export_notes")?;
    say!("the handler asked for notes:export -> HTTP 403");
    say!("WWW-Authenticate: {challenge}");
    client.cancel().await?;
    add_challenged_scopes(&mut scopes, &challenge);
    say!("re-authorizing with scope \"{}\"", scopes.join(" "));
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let export_token = authorize(&http, &as_metadata, &resource, &scope_refs).await?;
    let client = connect(&resource, &export_token).await?;
    say!(
        "export_notes -> {}",
        call_text(&client, "export_notes", None).await?
    );
    client.cancel().await?;

    step(8, "A token issued for another resource is refused");
    let foreign = issuer
        .token()
        .subject("alice")
        .audience("https://other.example.com/mcp")
        .scopes([notes::NOTES_READ])
        .sign();
    let response = http
        .post(&resource)
        .bearer_auth(&foreign)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await?;
    say!("HTTP {}", response.status());
    say!(
        "WWW-Authenticate: {}",
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    );
    if response.status() != 401 {
        return Err("a token for another resource was not refused".into());
    }

    if once {
        say!("\nWalk-through complete.");
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
        return Ok(());
    }

    let token = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes([notes::NOTES_READ, notes::NOTES_WRITE])
        .expires_in(Duration::from_secs(3600))
        .sign();
    say!("\nStill serving. Try it with curl (token valid for one hour):\n");
    say!("curl -i {metadata_url}");
    say!(
        "curl -i -X POST {resource} -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'"
    );
    say!(
        "curl -i -X POST {resource} -H 'authorization: Bearer {token}' -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2026-07-28' -H 'mcp-method: tools/call' -H 'mcp-name: whoami' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"whoami\",\"arguments\":{{}},\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{{}}}}}}}}'"
    );
    say!("\nPress Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
    Ok(())
}

/// The OAuth 2.1 authorization code flow with PKCE (RFC 7636, S256) and a
/// resource indicator (RFC 8707), as an MCP client runs it.
async fn authorize(
    http: &reqwest::Client,
    as_metadata: &serde_json::Value,
    resource: &str,
    scopes: &[&str],
) -> Result<String, BoxError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let redirect_uri = "http://127.0.0.1:1/callback";
    let endpoint = |name: &str| {
        as_metadata[name]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("no {name}"))
    };
    let registered: serde_json::Value = http
        .post(endpoint("registration_endpoint")?)
        .json(&serde_json::json!({
            "client_name": "quickstart",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await?
        .json()
        .await?;
    let client_id = registered["client_id"]
        .as_str()
        .ok_or("no client_id")?
        .to_owned();
    let mut verifier_bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut verifier_bytes).map_err(|_| "no randomness")?;
    let verifier = b64.encode(verifier_bytes);
    let challenge = b64.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?;
    let scope = scopes.join(" ");
    let mut authorize_url = url::Url::parse(&endpoint("authorization_endpoint")?)?;
    authorize_url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", scope.as_str()),
        ("state", "quickstart"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("resource", resource),
    ]);
    let authorization = no_redirects.get(authorize_url).send().await?;
    let location = authorization
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("the authorization endpoint did not redirect")?;
    let code = url::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or("no code in the redirect")?;
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id.as_str()),
            ("code_verifier", verifier.as_str()),
            ("resource", resource),
        ])
        .finish();
    let token: serde_json::Value = http
        .post(endpoint("token_endpoint")?)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?
        .json()
        .await?;
    Ok(token["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned())
}

/// The `WWW-Authenticate` challenge of a call that must have been refused
/// with HTTP 403 (a step-up), or why not. The status is read from the
/// client's error (rmcp's client reports a 403 with a challenge as
/// `InsufficientScopeError`, a 401 as `AuthRequiredError`), not assumed.
fn challenge_of<T>(
    refused: &Result<T, rmcp::ServiceError>,
    tool: &str,
) -> Result<String, BoxError> {
    use rmcp::transport::streamable_http_client::{AuthRequiredError, InsufficientScopeError};
    let error = match refused {
        Err(e) => e,
        Ok(_) => return Err(format!("{tool} succeeded without the scope it needs").into()),
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(forbidden) = current.downcast_ref::<InsufficientScopeError>() {
            return Ok(forbidden.www_authenticate_header.clone());
        }
        if let Some(unauthorized) = current.downcast_ref::<AuthRequiredError>() {
            return Err(format!(
                "{tool} was refused with HTTP 401, not 403: {}",
                unauthorized.www_authenticate_header
            )
            .into());
        }
        source = current.source();
    }
    Err(format!("{tool} was refused without an HTTP challenge: {error}").into())
}

/// Adds the scopes a challenge's `scope` parameter names to `scopes`
/// (the union the client re-authorizes with).
fn add_challenged_scopes(scopes: &mut Vec<String>, challenge: &str) {
    let needed = challenge
        .split("scope=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default();
    for scope in needed.split(' ').filter(|s| !s.is_empty()) {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
}

fn args(json: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(json).unwrap_or_default()
}

async fn connect(
    resource: &str,
    token: &str,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ()>, BoxError> {
    let transport = StreamableHttpClientTransport::with_client(
        direct_client()?,
        StreamableHttpClientTransportConfig::with_uri(resource.to_owned())
            .auth_header(token.to_owned()),
    );
    // The current protocol revision (2026-07-28): stateless, each call
    // authorized on its own, no session to open or end (found from outside:
    // a legacy session's client, ending, sometimes sent one more request in
    // the session it had just deleted, a `session_unknown` line in the
    // walk-through's log that it never explained).
    Ok(()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await?)
}

/// An HTTP client that ignores the environment's proxies: the walk-through
/// talks to loopback only.
fn direct_client() -> Result<reqwest::Client, BoxError> {
    Ok(reqwest::Client::builder().no_proxy().build()?)
}

async fn call_text(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    arguments: Option<&str>,
) -> Result<String, BoxError> {
    let mut params = CallToolRequestParams::new(tool);
    if let Some(a) = arguments {
        params = params.with_arguments(args(a));
    }
    let result = client.call_tool(params).await?;
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("");
    if result.is_error == Some(true) {
        return Err(format!("{tool} failed: {text}").into());
    }
    Ok(text)
}

/// One line of the server's log, written to standard error with a mark
/// when the logger is done with it (one writer per event).
struct ServerLogLine(Vec<u8>);

impl std::io::Write for ServerLogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ServerLogLine {
    fn drop(&mut self) {
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        for line in self.0.split_inclusive(|b| *b == b'\n') {
            // A log line lost to a closed standard error is not an error
            // of the walk-through.
            let _ = err.write_all(b"    [server log] ");
            let _ = err.write_all(line);
        }
    }
}
