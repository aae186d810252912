//! The reference server's startup checks (`examples/protected_server`, run
//! as the README runs it, configured by environment variables only): a
//! configuration it cannot serve stops it before it listens, with exit
//! code 1 (an error, never a panic), no `listening on` line (scripts wait
//! for that line to know the server is up) and a message naming the
//! variable to fix.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::time::Duration;

/// Runs the reference server with a loopback issuer (never contacted: the
/// server must stop before), resource `http://127.0.0.1:1/mcp`, loopback
/// HTTP allowed and an ephemeral port, then `env`; asserts that it exits
/// with code 1 before listening and that its error names `variable`.
/// Returns the error output.
async fn refused(env: &[(&str, &str)], variable: &str) -> String {
    let mut command = support::reference::command();
    command
        .env("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9")
        .env("MCP_OAUTH2_RESOURCE", "http://127.0.0.1:1/mcp")
        .env("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1")
        .env("MCP_OAUTH2_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        // A server that starts after all is stopped when the test gives up.
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .expect("the server did not exit")
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // 1: `main` returned an error; 101 would be a panic.
    assert_eq!(output.status.code(), Some(1), "{env:?}: {stderr}");
    assert!(!stdout.contains("listening on"), "{env:?}: {stdout}");
    assert!(stderr.contains(variable), "{env:?}: {stderr}");
    stderr
}

// The MCP endpoint is mounted at the resource's path: a path the router
// cannot serve as it is written (a trailing slash, axum's capture syntax)
// or that the metadata routes hold is refused before the server listens,
// naming MCP_OAUTH2_RESOURCE.
#[tokio::test]
async fn resource_paths_that_cannot_be_mounted_stop_it_before_listening() {
    for path in [
        "/mcp/",
        "/:x",
        "/*x",
        "/a/:b",
        "/.well-known/oauth-protected-resource",
    ] {
        let resource = format!("http://127.0.0.1:1{path}");
        refused(&[("MCP_OAUTH2_RESOURCE", &resource)], "MCP_OAUTH2_RESOURCE").await;
    }
    let stderr = refused(
        &[("MCP_OAUTH2_RESOURCE", "http://127.0.0.1:1/mcp/")],
        "MCP_OAUTH2_RESOURCE",
    )
    .await;
    assert!(stderr.contains("'/'"), "{stderr}");
}

// A resource path that reads as one path and names another (RFC 3986
// section 6.2.2; found from outside in round 2: `/m%63p` was served only as
// written and advertised so, `/a/../mcp` became `/mcp` silently) stops the
// server, naming the variable and the form to write.
#[tokio::test]
async fn resource_paths_not_in_normal_form_stop_it_before_listening() {
    for (path, says) in [
        ("/m%63p", "the character 'c'"),
        ("/a/../mcp", "names /mcp, write that"),
        ("/a/%2e/mcp", "names /a/mcp, write that"),
        // Found from outside: served at this spelling only, 404 at `%2F`.
        ("/mcp%2fx", "%2f in the path is written %2F"),
    ] {
        let resource = format!("http://127.0.0.1:1{path}");
        let stderr = refused(&[("MCP_OAUTH2_RESOURCE", &resource)], "MCP_OAUTH2_RESOURCE").await;
        assert!(stderr.contains(says), "{path}: {stderr}");
    }
}

// MCP_OAUTH2_BIND is the reference server's own variable: an address it
// cannot listen on names it.
#[tokio::test]
async fn a_bad_bind_address_names_its_variable() {
    for bad in ["garbage", "127.0.0.1", "127.0.0.1:99999"] {
        refused(&[("MCP_OAUTH2_BIND", bad)], "MCP_OAUTH2_BIND").await;
    }
}

// The reference server adjusts the builder `AuthConfigBuilder::from_env`
// filled before building it: the errors of that build name the variables
// too, in the field and in the advice of the message.
#[tokio::test]
async fn configuration_errors_name_the_variables() {
    refused(&[("MCP_OAUTH2_RESOURCE", "garbage")], "MCP_OAUTH2_RESOURCE").await;
    refused(&[("MCP_OAUTH2_LEEWAY", "301")], "MCP_OAUTH2_LEEWAY").await;
    refused(
        &[("MCP_OAUTH2_REQUIRED_SCOPES", "offline_access")],
        "MCP_OAUTH2_REQUIRED_SCOPES",
    )
    .await;
    let stderr = refused(
        &[
            ("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "0"),
            ("MCP_OAUTH2_RESOURCE", "https://127.0.0.1:1/mcp"),
        ],
        "MCP_OAUTH2_ISSUER",
    )
    .await;
    assert!(
        stderr.contains("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK")
            && !stderr.contains("allow_insecure_http_for_loopback"),
        "{stderr}"
    );
}

// RFC 9728 section 7.6: MCP_OAUTH2_AUTHORIZATION_SERVERS sends clients to
// the servers it lists; one that is not a trusted issuer (its tokens would
// all be refused as `invalid_issuer`) stops the server before it listens,
// and the error names the opt-in for a deliberate front door. The opt-in
// names URLs that must be listed.
#[tokio::test]
async fn an_advertised_server_that_is_not_an_issuer_stops_it_before_listening() {
    let stderr = refused(
        &[("MCP_OAUTH2_AUTHORIZATION_SERVERS", "https://other.example")],
        "MCP_OAUTH2_AUTHORIZATION_SERVERS",
    )
    .await;
    assert!(
        stderr.contains("not a trusted issuer")
            && stderr.contains("MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS"),
        "{stderr}"
    );
    // A tenant the allowlist does not hold.
    refused(
        &[
            ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9/{tenant}/v2.0"),
            ("MCP_OAUTH2_TENANTS", "acme"),
            (
                "MCP_OAUTH2_AUTHORIZATION_SERVERS",
                "http://127.0.0.1:9/globex/v2.0",
            ),
        ],
        "MCP_OAUTH2_AUTHORIZATION_SERVERS",
    )
    .await;
    refused(
        &[(
            "MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS",
            "https://other.example",
        )],
        "MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS",
    )
    .await;
}

// The reference server advertises `notes:read` unless
// MCP_OAUTH2_SCOPES_SUPPORTED says otherwise; with
// MCP_OAUTH2_REQUIRED_SCOPES the metadata names the required scopes too,
// since every request needs them.
// An empty MCP_OAUTH2_SCOPES_SUPPORTED (as an env-file template leaves it)
// is unset, as for every other variable (found from outside: it dropped
// the advertised scope).
#[tokio::test]
async fn the_metadata_names_the_required_scopes() {
    for supported in [None, Some(""), Some(" ")] {
        let port = support::reference::free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let mut env = vec![
            ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9"),
            ("MCP_OAUTH2_RESOURCE", resource.as_str()),
            ("MCP_OAUTH2_REQUIRED_SCOPES", "mcp:use"),
        ];
        if let Some(value) = supported {
            env.push(("MCP_OAUTH2_SCOPES_SUPPORTED", value));
        }
        let _server = support::reference::start(port, &env).await;
        let url = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
        let doc: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert_eq!(
            doc["scopes_supported"],
            serde_json::json!(["notes:read", "mcp:use"]),
            "{supported:?}"
        );
    }
}

// `downstream_whoami`'s variables (the top comment of
// examples/protected_server.rs): one that is set but unusable stops the
// server before it listens, naming it, instead of showing up in the tool's
// result, which any caller can read.
#[tokio::test]
async fn downstream_variables_are_checked_before_listening() {
    let downstream = [
        ("MCP_OAUTH2_DOWNSTREAM_AUDIENCE", "https://api.example"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "https://api.example/me"),
        ("MCP_OAUTH2_CLIENT_ID", "notes"),
        ("MCP_OAUTH2_CLIENT_SECRET", "s3cret"),
    ];
    let cases = [
        ("MCP_OAUTH2_TOKEN_ENDPOINT", "garbage"),
        ("MCP_OAUTH2_TOKEN_ENDPOINT", "http://example.com/token"),
        ("MCP_OAUTH2_TOKEN_ENDPOINT", "ftp://127.0.0.1/token"),
        // User information (sent as Basic credentials in place of the
        // client's, and written wherever the URL was; found from outside)
        // and a fragment (never sent).
        (
            "MCP_OAUTH2_TOKEN_ENDPOINT",
            "https://svc:S3cr3tPw@as.example/token",
        ),
        ("MCP_OAUTH2_TOKEN_ENDPOINT", "https://as.example/token#x"),
        (
            "MCP_OAUTH2_DOWNSTREAM_URL",
            "https://u:S3cr3tPw@api.example/me",
        ),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "https://api.example/me#x"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "garbage"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "http://example.com/me"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "javascript:alert(1)"),
        ("MCP_OAUTH2_EXCHANGE_CACHE_KEY", "short"),
        ("MCP_OAUTH2_EXCHANGE_CACHE_KEY", "c2hvcnQ="),
        // A key with nowhere to share the tokens (no MCP_OAUTH2_REDIS_URL).
        (
            "MCP_OAUTH2_EXCHANGE_CACHE_KEY",
            "+//j5RbU51P9odSBOayXXEYELblJWjUk5QDzDLzU73I=",
        ),
        // Scopes a challenge cannot name.
        ("MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES", "offline_access"),
        ("MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES", "notes:export a\"b"),
        ("MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES", "caf\u{e9}"),
        // Spaces separate, as in MCP_OAUTH2_REQUIRED_SCOPES: a tab is no
        // separator (found from outside: taken as one here only).
        (
            "MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES",
            "notes:export\tnotes:read",
        ),
        // Commas, as in MCP_OAUTH2_REQUIRED_SCOPES (found from outside).
        (
            "MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES",
            "notes:export,notes:read",
        ),
    ];
    for (variable, bad) in cases {
        let mut env = downstream.to_vec();
        env.push((variable, bad));
        let said = refused(&env, variable).await;
        assert!(!said.contains("S3cr3tPw"), "{said}");
    }
}

// Braces in the resource's path: written raw they are refused, naming the
// percent-encoded form (no URI holds them, and the audience would be the
// encoded text: found from outside); written encoded, `%7B` / `%7D` reach
// the router as literal text, never as axum's capture or escape syntax:
// the server starts and serves the metadata at the encoded path only.
#[tokio::test]
async fn braces_in_the_resource_path_are_literal() {
    for (path, encoded) in [("/{x}", "/%7Bx%7D"), ("/{{", "/%7B%7B"), ("/a/}", "/a/%7D")] {
        let raw = format!("http://127.0.0.1:1{path}");
        let stderr = refused(&[("MCP_OAUTH2_RESOURCE", &raw)], "MCP_OAUTH2_RESOURCE").await;
        assert!(
            stderr.contains(&format!("percent-encoded it is {encoded}")),
            "{path}: {stderr}"
        );
        let port = support::reference::free_port();
        let _server = support::reference::start(
            port,
            &[
                ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9"),
                (
                    "MCP_OAUTH2_RESOURCE",
                    &format!("http://127.0.0.1:{port}{encoded}"),
                ),
            ],
        )
        .await;
        let base = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource");
        let resp = reqwest::get(format!("{base}{encoded}")).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let doc: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            doc["resource"],
            format!("http://127.0.0.1:{port}{encoded}"),
            "{path}"
        );
        // A capture would have matched any segment.
        let other = reqwest::get(format!("{base}/other")).await.unwrap();
        assert_eq!(other.status(), 404, "{path}");
    }
}

// A misspelled variable (`MCP_OAUTH2_REQUIRED_SCOPE` for
// `MCP_OAUTH2_REQUIRED_SCOPES`, `MCP_OAUTH2_DPOP_MODE` for `MCP_OAUTH2_DPOP`)
// was ignored: the server started without the required scope, or accepting
// Bearer tokens, and said nothing. Every `MCP_OAUTH2_*` variable must now be
// one the server reads; another stops it before it listens, naming the
// variable and the one it resembles.
#[tokio::test]
async fn a_misspelled_variable_stops_it_before_listening() {
    for (typo, meant) in [
        ("MCP_OAUTH2_REQUIRED_SCOPE", "MCP_OAUTH2_REQUIRED_SCOPES"),
        ("MCP_OAUTH2_DPOP_MODE", "MCP_OAUTH2_DPOP"),
        ("MCP_OAUTH2_ALLOWED_ORIGIN", "MCP_OAUTH2_ALLOWED_ORIGINS"),
        (
            "MCP_OAUTH2_HEADER_READ_TIMEOUTS",
            "MCP_OAUTH2_HEADER_READ_TIMEOUT",
        ),
        ("mcp_oauth2_required_scopes", "MCP_OAUTH2_REQUIRED_SCOPES"),
        // The prefix itself misspelled (found from outside: ignored, and
        // calls without the scope served).
        ("MCP_OAUTH_REQUIRED_SCOPES", "MCP_OAUTH2_REQUIRED_SCOPES"),
        ("MCP_OAUTH2REQUIRED_SCOPES", "MCP_OAUTH2_REQUIRED_SCOPES"),
        ("MCP_OAUTH2_SOMETHING_ELSE", ""),
    ] {
        let stderr = refused(&[(typo, "x")], typo).await;
        assert!(stderr.contains(meant), "{typo}: {stderr}");
    }
    // The control: every variable the reference server reads of its own
    // (beside `AuthConfig::from_env`'s) is known, and it starts with them.
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let _server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9"),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_LOG_FORMAT", "text"),
            ("MCP_OAUTH2_HEADER_READ_TIMEOUT", "30"),
            ("MCP_OAUTH2_BODY_READ_TIMEOUT", "30"),
            ("MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT", "30"),
            ("MCP_OAUTH2_MAX_CONNECTIONS", "100"),
            ("MCP_OAUTH2_DOWNSTREAM_AUDIENCE", "https://api.example"),
            ("MCP_OAUTH2_DOWNSTREAM_URL", "https://api.example/me"),
            ("MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES", "notes:export"),
            ("MCP_OAUTH2_TOKEN_ENDPOINT", "https://as.example/token"),
        ],
    )
    .await;
}

// A value that is not UTF-8 read as unset: `MCP_OAUTH2_REQUIRED_SCOPES` with
// one stray byte started the server requiring nothing. It now stops it,
// naming the variable. The server's own variables too: a non-UTF-8
// MCP_OAUTH2_BIND was read as unset and the server listened on the default
// 127.0.0.1:8080; a timeout fell back to its default.
#[tokio::test]
async fn a_value_that_is_not_utf8_stops_it_before_listening() {
    use std::os::unix::ffi::OsStrExt;
    for variable in [
        "MCP_OAUTH2_REQUIRED_SCOPES",
        "MCP_OAUTH2_DPOP",
        "MCP_OAUTH2_BIND",
        "MCP_OAUTH2_LOG_FORMAT",
        "MCP_OAUTH2_BODY_READ_TIMEOUT",
    ] {
        let output = support::reference::command()
            .env("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9")
            .env("MCP_OAUTH2_RESOURCE", "http://127.0.0.1:1/mcp")
            .env("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1")
            .env("MCP_OAUTH2_BIND", "127.0.0.1:0")
            .env(variable, std::ffi::OsStr::from_bytes(b"admin\xff"))
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(20), output)
            .await
            .expect("the server did not exit")
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{variable}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("listening on"),
            "{variable}"
        );
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

// The connection limit is a whole number of connections, 1 or more: zero
// (a server that accepts nothing), a negative, a fraction, a word or a
// limit past Tokio's semaphore stops the server before it listens, naming
// the variable.
#[tokio::test]
async fn a_connection_limit_that_is_not_a_positive_count_stops_it_before_listening() {
    for bad in [
        "0",
        "-1",
        "1.5",
        "many",
        "18446744073709551615",
        "+5",
        "99999999999999999999",
    ] {
        refused(
            &[("MCP_OAUTH2_MAX_CONNECTIONS", bad)],
            "MCP_OAUTH2_MAX_CONNECTIONS",
        )
        .await;
    }
}

// The server's own numbers read as the library's: digits alone (found from
// outside: `+5` was taken, which every library variable refuses), and a
// number past the type's range is told the setting's range, not "must be
// a whole number".
#[tokio::test]
async fn the_server_s_numbers_read_as_the_library_s() {
    for variable in [
        "MCP_OAUTH2_HEADER_READ_TIMEOUT",
        "MCP_OAUTH2_BODY_READ_TIMEOUT",
        "MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT",
    ] {
        refused(&[(variable, "+5")], variable).await;
        let stderr = refused(&[(variable, "99999999999999999999")], variable).await;
        assert!(stderr.contains("86400"), "{variable}: {stderr}");
    }
    let stderr = refused(
        &[("MCP_OAUTH2_MAX_CONNECTIONS", "99999999999999999999")],
        "MCP_OAUTH2_MAX_CONNECTIONS",
    )
    .await;
    assert!(!stderr.contains("whole number"), "{stderr}");
}

// An empty or blank value of the server's own variables is unset, as the
// README says of every variable (found from outside: an env-file template
// leaving `MCP_OAUTH2_HEADER_READ_TIMEOUT=` empty stopped the server): the
// defaults apply and it serves; no readiness probe is added.
#[tokio::test]
async fn the_server_s_blank_variables_are_unset() {
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let bind = format!("127.0.0.1:{port}");
    let mut env = vec![
        ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9"),
        ("MCP_OAUTH2_RESOURCE", resource.as_str()),
        ("MCP_OAUTH2_BIND", bind.as_str()),
    ];
    for (variable, blank) in [
        ("MCP_OAUTH2_HEADER_READ_TIMEOUT", ""),
        ("MCP_OAUTH2_BODY_READ_TIMEOUT", "  "),
        ("MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT", "\t"),
        ("MCP_OAUTH2_MAX_CONNECTIONS", ""),
        ("MCP_OAUTH2_MAX_HEADER_BYTES", " "),
        ("MCP_OAUTH2_READINESS_PATH", ""),
        ("MCP_OAUTH2_LOG_FORMAT", ""),
    ] {
        env.push((variable, blank));
    }
    let _server = support::reference::start(port, &env).await;
    let metadata = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(reqwest::get(metadata).await.unwrap().status(), 200);
    let ready = format!("http://127.0.0.1:{port}/readyz");
    assert_eq!(reqwest::get(ready).await.unwrap().status(), 404);
}

// A session idle timeout past a day was accepted, and with
// MCP_OAUTH2_REDIS_URL every session then failed at run time (Redis refuses
// such an expiry: 503 store_unavailable on each `initialize`). Refused
// before listening, naming the variable.
#[tokio::test]
async fn a_session_idle_timeout_past_a_day_stops_it_before_listening() {
    for bad in ["18446744073709551615", "86401"] {
        refused(
            &[("MCP_OAUTH2_SESSION_IDLE_TIMEOUT", bad)],
            "MCP_OAUTH2_SESSION_IDLE_TIMEOUT",
        )
        .await;
    }
}

// Replicas sharing a Redis that demand DPoP nonces each drew their own
// nonce secret (no variable set one): a nonce one replica handed out was
// refused by the others (`use_dpop_nonce` again), so a client behind a load
// balancer could go round forever. Without MCP_OAUTH2_DPOP_NONCE_SECRET
// that configuration now stops the server before it listens, naming the
// variable; a secret shorter than 32 bytes too, without repeating it.
#[tokio::test]
async fn dpop_nonces_with_redis_and_no_shared_secret_stop_it_before_listening() {
    let nonce = ("MCP_OAUTH2_DPOP_NONCE", "1");
    let redis = ("MCP_OAUTH2_REDIS_URL", "redis://127.0.0.1:9/0");
    refused(&[nonce, redis], "MCP_OAUTH2_DPOP_NONCE_SECRET").await;
    let short = "twenty-byte-secret!!";
    let stderr = refused(
        &[nonce, redis, ("MCP_OAUTH2_DPOP_NONCE_SECRET", short)],
        "MCP_OAUTH2_DPOP_NONCE_SECRET",
    )
    .await;
    assert!(!stderr.contains(short), "{stderr}");
}

// `http://` is allowed to loopback hosts only (`MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK`)
// on the promise that the plain text never leaves the machine. With a proxy
// in the environment (`HTTP_PROXY`, common on company machines and CI
// runners) the key set of a loopback issuer was fetched through that proxy
// in plain text (and the introspection form, client secret and token
// included, would have been posted through it): the proxy, or anyone on the
// way to it, could answer with its own keys. Loopback destinations are now
// reached directly; the proxy sees nothing and the call is served.
#[tokio::test]
async fn loopback_fetches_never_go_through_a_proxy_of_the_environment() {
    use tokio::io::AsyncReadExt as _;
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = std::sync::Arc::clone(&seen);
    let proxy_task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = proxy.accept().await {
            let mut head = vec![0; 512];
            let n = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut head))
                .await
                .map_or(0, |r| r.unwrap_or(0));
            let line = String::from_utf8_lossy(&head[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            record.lock().unwrap().push(line);
            // Dropped: the request fails, as through a proxy that cannot
            // reach the server's loopback.
        }
    });
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let _server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", issuer.issuer()),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("ALL_PROXY", &proxy_url),
            ("all_proxy", &proxy_url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ],
    )
    .await;
    let token = issuer
        .token()
        .audience(&resource)
        .scopes(["notes:read"])
        .sign();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(&resource)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.is_empty(), "the proxy received: {seen:?}");
    assert_eq!(status, 200, "keys fetched directly");
    proxy_task.abort();
}

// Process managers (systemd, Docker, Kubernetes) stop a server with
// SIGTERM, not Ctrl-C. The reference server drains on it as on Ctrl-C: a
// call in progress (its body half sent when the signal arrives) gets its
// whole answer, and the server exits with status 0. It used to wait for
// Ctrl-C only, so SIGTERM killed it at once: the call's connection was
// closed without an answer and the exit was the signal's.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_it_gracefully_like_ctrl_c() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let mut server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", issuer.issuer()),
            ("MCP_OAUTH2_RESOURCE", &resource),
        ],
    )
    .await;
    let token = issuer
        .token()
        .subject("sigterm-caller")
        .audience(resource.as_str())
        .sign();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let request = support::raw_http::Raw::new(addr, "POST", "/mcp")
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "whoami")
        .body(body)
        .to_bytes();
    let (first, rest) = request.split_at(request.len() - 20);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(first).await.unwrap();
    // The server has the request's head and waits for the rest of its body.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A server killed by the signal has closed the connection: this write
    // may fail, and the read below then finds no answer.
    let _ = stream.write_all(rest).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the call in progress got no answer: {answer:?}"
    );
    assert!(answer.contains("sigterm-caller"), "{answer}");
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("the server did not stop after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit: {status:?}");
}

// A second stop signal during the graceful stop ends it at once (found
// from outside: with a request stalled in its body and no body timeout, a
// second SIGTERM or Ctrl-C waited out the whole stop, 35 s). One signal
// alone still waits for the stalled request (the control); the second,
// of either kind, drops it and the server exits 0.
#[tokio::test]
async fn a_second_stop_signal_ends_the_stop_at_once() {
    use tokio::io::AsyncWriteExt;

    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    for second in ["-INT", "-TERM"] {
        // The server's own log filter (INFO), as the README starts it.
        let (server, resource) = support::reference::start_trusting(
            issuer.issuer(),
            &[("MCP_OAUTH2_BODY_READ_TIMEOUT", "off"), ("RUST_LOG", "")],
        )
        .await;
        let token = issuer.token().audience(resource.as_str()).sign();
        let addr: std::net::SocketAddr = resource
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .parse()
            .unwrap();
        let request = support::raw_http::Raw::new(addr, "POST", "/mcp")
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-11-25")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .to_bytes();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&request[..request.len() - 10])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (mut child, lines) = server.gather();
        let pid = child.id().unwrap().to_string();
        let signal = |which: &str| {
            let sent = std::process::Command::new("kill")
                .args([which, &pid])
                .status()
                .unwrap();
            assert!(sent.success());
        };
        signal("-TERM");
        // The stalled request holds the graceful stop.
        let waited = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        assert!(
            waited.is_err(),
            "{second}: stopped with a request in progress"
        );
        signal(second);
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{second}: a second signal did not end the stop"))
            .unwrap();
        assert!(status.success(), "{second}: exit {status:?}");
        drop(stream);
        // Each signal is told: the first starts the stop (found from
        // outside: nothing was logged until the second), the second ends it.
        let lines = lines.await.unwrap();
        let started = lines
            .iter()
            .position(|l| l.contains("stopping: no new connections"));
        let forced = lines.iter().position(|l| l.contains("are dropped now"));
        assert!(
            matches!((started, forced), (Some(a), Some(b)) if a < b),
            "{second}: {lines:#?}"
        );
        assert!(lines[started.unwrap()].contains("open=1"), "{lines:#?}");
    }
}

// A start-up error reads as text in the variables' own spelling (found
// from outside: printed as Rust `Debug`, quotes escaped, with builder calls
// such as `allow_any_tenant_unrestricted` or `None` as the advice).
#[tokio::test]
async fn start_up_errors_speak_in_variables() {
    for (env, variable, says) in [
        (
            &[("MCP_OAUTH2_HEADER_READ_TIMEOUT", "86401")][..],
            "MCP_OAUTH2_HEADER_READ_TIMEOUT",
            "off switches",
        ),
        (
            &[("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9/{tenant}")][..],
            "MCP_OAUTH2_TENANTS",
            "MCP_OAUTH2_TENANTS=*",
        ),
        (
            &[("MCP_OAUTH2_RESOURCE", "http://127.0.0.1:1/m%63p")][..],
            "MCP_OAUTH2_RESOURCE",
            "%63",
        ),
    ] {
        let stderr = refused(env, variable).await;
        assert!(stderr.contains(says), "{env:?}: {stderr}");
        for builder in ["ConfigError {", "\\\"", "None", "allow_any_tenant"] {
            assert!(!stderr.contains(builder), "{env:?}: {stderr}");
        }
    }
}

// `MCP_OAUTH2_BIND` is trimmed like every other variable (found from
// outside: a trailing space was "invalid port value").
#[tokio::test]
async fn the_bind_address_is_trimmed() {
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let bind = format!(" 127.0.0.1:{port} ");
    let _server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9"),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_BIND", &bind),
        ],
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(reqwest::get(url).await.unwrap().status(), 200);
}

// MCP_OAUTH2_READINESS_PATH: an unauthenticated probe, 503 while the
// issuer's keys cannot be fetched (the server answers meanwhile: the
// metadata is 200), 200 once they are.
#[tokio::test]
async fn the_readiness_probe_follows_the_keys() {
    // An issuer that is not there: never ready.
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let _down = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9"),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_READINESS_PATH", " /readyz "),
        ],
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let probe = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(probe.status(), 503);
    assert!(probe.headers().get("retry-after").is_some());
    let metadata = reqwest::get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap();
    assert_eq!(metadata.status(), 200);
    // A real issuer: ready.
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let _up = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", issuer.issuer()),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_READINESS_PATH", "/readyz"),
        ],
    )
    .await;
    let ready = support::fixture::bounded(async {
        loop {
            let probe = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
                .await
                .unwrap();
            if probe.status() == 200 {
                break probe.status();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(ready, 200);
    // A path the router cannot serve stops it, naming the variable.
    refused(
        &[("MCP_OAUTH2_READINESS_PATH", "/mcp")],
        "MCP_OAUTH2_READINESS_PATH",
    )
    .await;
}

// A standard output that cannot take the `listening on` line stops the
// server with an error and exit status 1, not a panic (found from outside:
// `> /dev/full` exited 101, "failed printing to stdout").
#[tokio::test]
async fn an_unwritable_standard_output_is_an_error_not_a_panic() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // not Linux
    };
    let mut command = support::reference::command();
    command
        .env("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9")
        .env("MCP_OAUTH2_RESOURCE", "http://127.0.0.1:1/mcp")
        .env("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1")
        .env("MCP_OAUTH2_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "off")
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // `spawn`, not `output`, which would capture standard output anew.
    let child = command.spawn().expect("run");
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the server did not exit")
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("standard output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// A plain http:// resource (the development opt-in) served on every
// interface is said once in the log (found from outside: `BIND=0.0.0.0`
// started silently); on loopback, nothing is said.
#[tokio::test]
async fn plain_http_beyond_loopback_is_said() {
    // An IPv4-mapped loopback address is loopback (found from outside:
    // warned about).
    for (bind, said) in [
        ("0.0.0.0", true),
        ("127.0.0.1", false),
        ("[::ffff:127.0.0.1]", false),
    ] {
        let port = support::reference::free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let server = support::reference::start(
            port,
            &[
                ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9"),
                ("MCP_OAUTH2_RESOURCE", &resource),
                ("MCP_OAUTH2_BIND", &format!("{bind}:{port}")),
            ],
        )
        .await;
        let (mut child, lines) = server.gather();
        tokio::time::sleep(Duration::from_millis(500)).await;
        child.kill().await.unwrap();
        let lines = lines.await.unwrap();
        let warned = lines
            .iter()
            .filter(|l| l.contains("plain_http_beyond_loopback"))
            .count();
        assert_eq!(warned, usize::from(said), "{bind}: {lines:#?}");
    }
}

// A root resource is said once in the log, with the path MCP is served at
// (found from outside: only the resource was logged, and a client calling
// the root got a bare 404); an endpoint resource is not warned about (the
// INFO start line names the path either way).
#[tokio::test]
async fn a_root_resource_is_said_with_the_path_it_is_served_at() {
    for (path, said) in [("", true), ("/", true), ("/mcp", false)] {
        let port = support::reference::free_port();
        let resource = format!("http://127.0.0.1:{port}{path}");
        let server = support::reference::start(
            port,
            &[
                ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:9"),
                ("MCP_OAUTH2_RESOURCE", &resource),
                ("MCP_OAUTH2_BIND", &format!("127.0.0.1:{port}")),
            ],
        )
        .await;
        let (mut child, lines) = server.gather();
        tokio::time::sleep(Duration::from_millis(500)).await;
        child.kill().await.unwrap();
        let lines = lines.await.unwrap();
        let warned = lines.iter().filter(|l| l.contains("root_resource")).count();
        assert_eq!(warned, usize::from(said), "{resource}: {lines:#?}");
        assert!(
            !said
                || lines
                    .iter()
                    .any(|l| l.contains("root_resource") && l.contains("path=/mcp")),
            "{resource}: {lines:#?}"
        );
    }
}

// A log pipe whose reader is gone (`protected_server 2>&1 | shipper`, the
// shipper dead): the lines are lost, never the requests. Found from
// outside: the subscriber reported the failed write with `eprintln!`, which
// panicked with stderr gone too; every logged request lost its connection
// without an answer, and a line written outside a request ended the
// process. Text (refusals logged) and JSON (every request logged).
#[tokio::test]
async fn a_log_pipe_whose_reader_is_gone_loses_lines_not_requests() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    for format in ["text", "json"] {
        let port = support::reference::free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let mut command = support::reference::command();
        command
            .env("MCP_OAUTH2_ISSUER", issuer.issuer())
            .env("MCP_OAUTH2_RESOURCE", &resource)
            .env("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1")
            .env("MCP_OAUTH2_BIND", format!("127.0.0.1:{port}"))
            .env("MCP_OAUTH2_LOG_FORMAT", format)
            .env_remove("RUST_LOG")
            .stderr(std::process::Stdio::piped());
        let server = support::reference::spawn_listening(&mut command).await;
        let mut child = server.child;
        // Both readers gone: every write to either pipe fails (EPIPE).
        drop(server.lines);
        drop(child.stderr.take());
        let token = issuer
            .token()
            .audience(&resource)
            .scopes(["notes:read"])
            .sign();
        let client = reqwest::Client::new();
        for _ in 0..3 {
            // Refused (an audit line in both formats), then accepted (a
            // line in JSON).
            for bearer in ["not-a-token", token.as_str()] {
                let response = client
                    .post(&resource)
                    .bearer_auth(bearer)
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json, text/event-stream")
                    .header("MCP-Protocol-Version", "2026-07-28")
                    .header("Mcp-Method", "tools/call")
                    .header("Mcp-Name", "whoami")
                    .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{format}: no answer: {e}"));
                let expected = if bearer == token { 200 } else { 401 };
                assert_eq!(response.status().as_u16(), expected, "{format}");
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{format}: the server ended"
        );
    }
}

/// A stateless `tools/call` of `tool` with `token` on the reference server
/// at `resource`: the status and the JSON body (a refusal's or the call's).
async fn call_tool(resource: &str, token: &str, tool: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(resource)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", support::attack::MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .header("authorization", format!("Bearer {token}"))
        .body(support::attack::modern_tool_call_body(1, tool))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

// Providers whose tokens cannot name the resource URL, configured only by
// the environment (found from outside: the reference server had no
// variable for an extra audience, scope claims, the client claim or the
// Cognito rule, so Entra ID and Cognito tokens were all refused and Auth0
// RBAC permissions ignored).
#[tokio::test]
async fn entra_cognito_and_auth0_tokens_are_taken_as_configured_by_the_environment() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let app_id = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    // Entra ID v2.0: `aud` the API's application ID, scopes in `scp`, the
    // client in `azp`; an ID token of a client of that registration has
    // the same audience and no client claim.
    let (_entra, resource) = support::reference::start_trusting(
        issuer.issuer(),
        &[
            ("MCP_OAUTH2_ACCEPT_JWT_TYP", "1"),
            ("MCP_OAUTH2_ACCEPT_AUDIENCES", app_id),
            ("MCP_OAUTH2_REQUIRE_CLIENT_ID", "1"),
            ("MCP_OAUTH2_SCOPE_CLAIMS", "scp"),
        ],
    )
    .await;
    let entra = |client: Option<&str>| {
        issuer
            .token()
            .header("typ", serde_json::json!("JWT"))
            .audience(app_id)
            .claim("client_id", serde_json::Value::Null)
            .claim(
                "azp",
                client.map_or(serde_json::Value::Null, |c| serde_json::json!(c)),
            )
            .claim("scp", serde_json::json!("notes:read"))
            .sign()
    };
    let (status, answer) = call_tool(&resource, &entra(Some("client-app")), "list_notes").await;
    assert_eq!(status, 200, "{answer}");
    let (status, refusal) = call_tool(&resource, &entra(None), "list_notes").await;
    assert_eq!(
        (status, &refusal["reason"]),
        (401, &serde_json::json!("not_an_access_token"))
    );
    // Another audience still is not this server's.
    let other = issuer
        .token()
        .audience("00000000-0000-0000-0000-000000000000")
        .claim("scp", serde_json::json!("notes:read"))
        .sign();
    assert_eq!(call_tool(&resource, &other, "list_notes").await.0, 401);

    // Cognito: no `aud`; `token_use: access` and a listed `client_id`.
    let (_cognito, resource) = support::reference::start_trusting(
        issuer.issuer(),
        &[
            ("MCP_OAUTH2_ACCEPT_JWT_TYP", "1"),
            ("MCP_OAUTH2_COGNITO_CLIENT_IDS", "app-one, app-two"),
        ],
    )
    .await;
    let cognito = |client: &str, token_use: &str| {
        issuer
            .token()
            .header("typ", serde_json::Value::Null)
            .claim("client_id", serde_json::json!(client))
            .claim("token_use", serde_json::json!(token_use))
            .scopes(["notes:read"])
            .sign()
    };
    let (status, answer) = call_tool(&resource, &cognito("app-two", "access"), "list_notes").await;
    assert_eq!(status, 200, "{answer}");
    let (status, refusal) =
        call_tool(&resource, &cognito("app-three", "access"), "list_notes").await;
    assert_eq!(
        (status, &refusal["reason"]),
        (401, &serde_json::json!("invalid_audience"))
    );
    let (status, refusal) = call_tool(&resource, &cognito("app-one", "id"), "list_notes").await;
    assert_eq!(
        (status, &refusal["reason"]),
        (401, &serde_json::json!("not_an_access_token"))
    );

    // Auth0 with RBAC: scopes from `scope` and `permissions`, merged.
    let (_auth0, resource) = support::reference::start_trusting(
        issuer.issuer(),
        &[("MCP_OAUTH2_SCOPE_CLAIMS", "scope,permissions")],
    )
    .await;
    let rbac = issuer
        .token()
        .audience(&resource)
        .scopes(["openid"])
        .claim("permissions", serde_json::json!(["notes:read"]))
        .sign();
    let (status, answer) = call_tool(&resource, &rbac, "list_notes").await;
    assert_eq!(status, 200, "{answer}");
}
