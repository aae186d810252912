//! rmcp's own OAuth client (feature `auth`) against the protected server.
//!
//! ```sh
//! rig-rmcp-client dcr|cimd|step-up|step-up-computed-late MCP_URL
//! ```
//!
//! Starts from nothing but the MCP URL: connects without a token, takes the
//! `WWW-Authenticate` challenge from the 401, lets rmcp discover the protected
//! resource metadata and the authorization server from it, register
//! dynamically (`cimd`: use the Client ID Metadata Document at
//! `$RIG_CIMD_URL` as its client_id) and build the authorization URL. The "browser" is
//! `$RIG_BROWSER`, launched with that URL; the redirect arrives on this
//! process's own loopback listener. Then lists tools and calls `whoami`
//! (`step-up`: also `add_note`, expecting a 403 `insufficient_scope` that it
//! answers with rmcp's scope upgrade; `step-up-computed-late`: the same for
//! `read_note` on the private folder, whose scope the server computes from
//! the arguments, and `export_notes`, whose handler asks for `notes:export`
//! mid-call).
//!
//! Prints one line `RIG-RESULT {json}` on success; exits non-zero otherwise.

use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, Implementation};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationCallback, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn client_info() -> ClientConfig {
    ClientConfig::new(
        Default::default(),
        Implementation::new("rig-rmcp-client", env!("CARGO_PKG_VERSION")),
    )
}

/// Receives one authorization redirect on the loopback listener and returns
/// its full URL.
async fn receive_redirect(listener: &TcpListener, port: u16) -> Result<String, Error> {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .map_err(|_| "no authorization redirect within 30s")??;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed redirect request")?
        .to_owned();
    let body = "You can close this window.";
    let mut stream = reader.into_inner();
    stream
        .write_all(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    Ok(format!("http://127.0.0.1:{port}{target}"))
}

/// Launches the rig's browser with the authorization URL, then waits for the
/// redirect it delivers to our listener.
async fn authorize_in_browser(
    url: &str,
    listener: &TcpListener,
    port: u16,
) -> Result<AuthorizationCallback, Error> {
    let browser = std::env::var("RIG_BROWSER").map_err(|_| "RIG_BROWSER is not set")?;
    let mut child = tokio::process::Command::new(browser)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let redirect = receive_redirect(listener, port).await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    Ok(AuthorizationCallback::from_redirect_url(&redirect)?)
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `scope` parameter of a `WWW-Authenticate` challenge.
fn challenge_scope(header: &str) -> Option<String> {
    let start = header.find("scope=\"")? + "scope=\"".len();
    let end = header[start..].find('"')?;
    Some(header[start..start + end].to_owned())
}

fn tool_text(result: &CallToolResult) -> Result<String, Error> {
    if result.is_error == Some(true) {
        return Err(format!("tool error: {:?}", result.content).into());
    }
    Ok(result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect())
}

async fn call(
    client: &RunningService<RoleClient, ClientConfig>,
    name: &'static str,
    args: Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    let mut params = CallToolRequestParams::new(name);
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    client.call_tool(params).await
}

/// The `scope`, `resource` and `client_id` of an authorization URL.
fn authorization_request(url: &str) -> Value {
    json!({
        "scope": query_param(url, "scope"),
        "resource": query_param(url, "resource"),
        "clientId": query_param(url, "client_id"),
    })
}

/// Calls a tool; on a 403 `insufficient_scope`, asks rmcp for the scope
/// upgrade the challenge names, authorizes in the browser, and calls again
/// with the new token. Returns the result, and the step as the rig records
/// it: the challenges met and the authorizations made.
async fn call_with_step_up(
    client: &RunningService<RoleClient, ClientConfig>,
    auth_client: &AuthClient<reqwest::Client>,
    listener: &TcpListener,
    port: u16,
    authorization_requests: &mut Vec<Value>,
    name: &'static str,
    args: Value,
) -> Result<(CallToolResult, Value), Error> {
    let mut step =
        json!({ "tool": name, "arguments": args.clone(), "challenges": [], "authorizations": [] });
    let result = match call(client, name, args.clone()).await {
        Ok(result) => result,
        Err(e) => {
            let header = e
                .auth_challenge()
                .map(str::to_owned)
                .ok_or_else(|| format!("{name} failed without an HTTP challenge: {e}"))?;
            step["challenges"] = json!([header]);
            let scope = challenge_scope(&header)
                .ok_or_else(|| format!("the 403 challenge names no scope: {header}"))?;
            let url = auth_client
                .auth_manager
                .lock()
                .await
                .request_scope_upgrade(&scope)
                .await?;
            authorization_requests.push(authorization_request(&url));
            step["authorizations"] = json!([authorization_request(&url)]);
            let callback = authorize_in_browser(&url, listener, port).await?;
            auth_client
                .auth_manager
                .lock()
                .await
                .exchange_code_for_token_with_issuer(
                    &callback.code,
                    &callback.csrf_token,
                    callback.issuer.as_deref(),
                )
                .await?;
            call(client, name, args).await?
        }
    };
    Ok((result, step))
}

async fn run(mode: &str, mcp_url: &str) -> Result<Value, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let mut authorization_requests = Vec::new();

    // 1. No token: the server's 401 challenge is where discovery starts.
    let challenge = match client_info()
        .serve(StreamableHttpClientTransport::from_uri(mcp_url))
        .await
    {
        Ok(_) => return Err("the server accepted a connection without a token".into()),
        Err(e) => e
            .auth_challenge()
            .ok_or_else(|| format!("connecting without a token failed without a challenge: {e}"))?
            .to_owned(),
    };

    // 2. rmcp discovers, registers and builds the authorization URL.
    let mut state = OAuthState::new(mcp_url, None).await?;
    let mut request = AuthorizationRequest::new(&redirect_uri)
        .with_client_name(format!("rig rmcp-client {mode}"))
        .with_challenge(&challenge);
    if mode == "cimd" {
        let url = std::env::var("RIG_CIMD_URL").map_err(|_| "RIG_CIMD_URL is not set")?;
        request = request.with_client_metadata_url(url);
    }
    state.start_authorization(request).await?;
    let auth_url = state.get_authorization_url().await?;
    authorization_requests.push(authorization_request(&auth_url));
    let client_id = query_param(&auth_url, "client_id");
    let callback = authorize_in_browser(&auth_url, &listener, port).await?;
    state
        .handle_callback_with_issuer(&callback.code, &callback.csrf_token, callback.issuer.as_deref())
        .await?;
    let manager = match state {
        OAuthState::Authorized(manager) => manager,
        _ => return Err("rmcp did not reach the authorized state".into()),
    };

    // 3. Connect with the token.
    let auth_client = AuthClient::new(reqwest::Client::default(), manager);
    let transport = StreamableHttpClientTransport::with_client(
        auth_client.clone(),
        StreamableHttpClientTransportConfig::with_uri(mcp_url),
    );
    let client = client_info().serve(transport).await?;
    let protocol_version = client
        .peer_info()
        .map(|info| info.protocol_version.to_string());
    let tools = client.list_all_tools().await?;
    let whoami: Value = serde_json::from_str(&tool_text(&call(&client, "whoami", json!({})).await?)?)?;

    let mut out = json!({
        "mode": mode,
        "tools": tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>(),
        "whoami": whoami,
        "clientId": client_id,
        "protocolVersion": protocol_version,
    });

    if mode == "step-up" {
        let (added, step) = call_with_step_up(
            &client,
            &auth_client,
            &listener,
            port,
            &mut authorization_requests,
            "add_note",
            json!({ "text": "from the rig" }),
        )
        .await?;
        out["addNote"] = json!(tool_text(&added)?);
        out["challenge403"] = step["challenges"][0].clone();
    }
    if mode == "step-up-computed-late" {
        // read_note's scope is computed from its arguments (the private
        // folder adds notes:private); export_notes asks for notes:export
        // from inside its handler (late step-up). Both are a real 403.
        let mut steps = Vec::new();
        for (name, args) in [
            ("read_note", json!({ "id": 1, "folder": "private" })),
            ("export_notes", json!({})),
        ] {
            let (result, mut step) = call_with_step_up(
                &client,
                &auth_client,
                &listener,
                port,
                &mut authorization_requests,
                name,
                args,
            )
            .await?;
            step["result"] = serde_json::from_str(&tool_text(&result)?)?;
            steps.push(step);
        }
        out["steps"] = json!(steps);
    }
    if mode.starts_with("step-up") {
        out["notes"] =
            serde_json::from_str(&tool_text(&call(&client, "list_notes", json!({})).await?)?)?;
        out["whoamiAfter"] =
            serde_json::from_str(&tool_text(&call(&client, "whoami", json!({})).await?)?)?;
    }
    out["authorizationRequests"] = json!(authorization_requests);
    let _ = client.cancel().await;
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(url)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: rig-rmcp-client dcr|cimd|step-up|step-up-computed-late MCP_URL");
        std::process::exit(2);
    };
    if !["dcr", "cimd", "step-up", "step-up-computed-late"].contains(&mode.as_str()) {
        eprintln!("unknown mode {mode}");
        std::process::exit(2);
    }
    match run(mode, url).await {
        Ok(out) => println!("RIG-RESULT {out}"),
        Err(e) => {
            eprintln!("rmcp-client {mode}: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            std::process::exit(1);
        }
    }
}
