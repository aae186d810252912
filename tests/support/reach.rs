//! What reaches the service behind the layer, judged independently of the
//! layer: shared by the property test `properties::no_forbidden_call_reaches_the_service`
//! and the fuzz target `fuzz/fuzz_targets/layer_body.rs` (included there by
//! path), so it uses only axum, tower, http, serde and serde_json.
//!
//! The app: an `AuthLayer` with per-operation rules (the tool `secret`, the
//! resource `secret://x`, the prompt `secret` and the method
//! `logging/setLevel` need `admin`, and so does completing that prompt or
//! resource) in front of a router whose every path
//! records the body it is handed; [`MOUNTS`] places it under the builder's
//! other settings (a root, a deep or a trailing-slash resource, a nested
//! router, a route layer). The verifier admits any token with the
//! scope `user` only. The property: a body that reaches the service, and
//! that rmcp would read (its `Content-Type` is `application/json`), holds
//! none of those calls, read with either copy of a repeated member winning.
#![allow(dead_code)]

use std::fmt;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use mcp_oauth2::{AuthConfig, AuthContext, AuthLayer, BearerToken, TokenVerifier, VerifyFuture};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The resource of the app.
pub(crate) const RESOURCE: &str = "https://mcp.example.com/mcp";

/// Admits every token, with the scope `user` only.
struct UserOnly;

impl TokenVerifier for UserOnly {
    fn verify<'a>(&'a self, _token: BearerToken<'a>) -> VerifyFuture<'a> {
        Box::pin(async {
            Ok(AuthContext::builder("https://as.example", "mallory")
                .scopes(["user"])
                .build())
        })
    }
}

/// The app, and where it records the last body its service was handed:
/// the first of [`MOUNTS`] (the layer on the whole router, resource
/// `/mcp`).
pub(crate) fn app() -> (axum::Router, Arc<Mutex<Option<Bytes>>>) {
    app_at(&MOUNTS[0])
}

/// Where the protected service sits: the resource the layer is configured
/// for and how the app places the layer.
#[derive(Debug)]
pub(crate) struct Mount {
    /// The configured resource.
    pub(crate) resource: &'static str,
    /// How the layer is placed.
    pub(crate) placement: Placement,
    /// The spellings of its own endpoint a request is sent to most often.
    pub(crate) own: &'static [&'static str],
}

/// How an app places the layer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Placement {
    /// `Router::layer` on the whole router (every path is the service's).
    Outer,
    /// The service and its layer in `Router::nest(prefix, ..)`.
    Nested(&'static str),
    /// `Router::route_layer` over the routes `/mcp` and `/mcp/{*rest}`.
    RouteLayer,
}

/// The builder settings the property is checked under: the resource at
/// `/mcp`, at the root, deep and with a trailing slash, and the layer
/// nested or on the matched routes only.
pub(crate) const MOUNTS: [Mount; 6] = [
    Mount {
        resource: RESOURCE,
        placement: Placement::Outer,
        own: &["/mcp", "/mcp/", "/mcp/x", "/MCP"],
    },
    Mount {
        resource: "https://mcp.example.com/",
        placement: Placement::Outer,
        own: &["/", "/mcp", "/x/y", "/%2F"],
    },
    Mount {
        resource: "https://mcp.example.com/api/v1/mcp",
        placement: Placement::Outer,
        own: &[
            "/api/v1/mcp",
            "/api/v1/mcp/",
            "/api/v1/mcp/x",
            "/api/v1/MCP",
        ],
    },
    Mount {
        resource: "https://mcp.example.com/mcp/",
        placement: Placement::Outer,
        own: &["/mcp/", "/mcp", "/mcp//", "/mcp/x"],
    },
    Mount {
        resource: "https://mcp.example.com/api/v1/mcp",
        placement: Placement::Nested("/api/v1"),
        own: &["/api/v1/mcp", "/api/v1/mcp/", "/api/v1/x", "/api/v1/"],
    },
    Mount {
        resource: RESOURCE,
        placement: Placement::RouteLayer,
        own: &["/mcp", "/mcp/", "/mcp/x", "/mcp/x/y"],
    },
];

/// The paths a request is sent to: every mount's own spellings and others.
pub(crate) const PATHS: [&str; 16] = [
    "/mcp",
    "/mcp/",
    "/mcp/x",
    "/other",
    "/",
    "/MCP",
    "/api/v1/mcp",
    "/api/v1/mcp/",
    "/api/v1/mcp/x",
    "/api/v1",
    "/api/v1/",
    "/api/v1/other",
    "/mcp%2F",
    "/%6Dcp",
    "/mcp;x",
    "/mcp/..",
];

/// The app for `mount`, and where it records the last body its service
/// was handed.
pub(crate) fn app_at(mount: &Mount) -> (axum::Router, Arc<Mutex<Option<Bytes>>>) {
    let config = AuthConfig::builder()
        .issuer("https://as.example")
        .resource(mount.resource)
        .tool_scopes("secret", ["admin"])
        .resource_scopes("secret://x", ["admin"])
        .prompt_scopes("secret", ["admin"])
        .method_scopes("logging/setLevel", ["admin"])
        .build()
        .expect("the app's configuration");
    let reached = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&reached);
    let record = move |body: Bytes| {
        let seen = Arc::clone(&seen);
        async move {
            *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
            "reached"
        }
    };
    let layer = AuthLayer::with_verifier(config, UserOnly);
    let router = match mount.placement {
        Placement::Outer => axum::Router::new().fallback(record).layer(layer),
        Placement::Nested(prefix) => {
            axum::Router::new().nest(prefix, axum::Router::new().fallback(record).layer(layer))
        }
        Placement::RouteLayer => axum::Router::new()
            .route("/mcp", axum::routing::any(record.clone()))
            .route("/mcp/{*rest}", axum::routing::any(record))
            .route_layer(layer),
    };
    (router, reached)
}

/// A POST to `path` with these headers and body, as a client sends it.
pub(crate) fn request(
    path: &str,
    headers: &[(&str, &[u8])],
    body: Vec<u8>,
) -> Option<http::Request<Body>> {
    let mut builder = http::Request::post(path)
        .header("host", "mcp.example.com")
        .header("authorization", "Bearer any-token")
        .header("accept", "application/json, text/event-stream");
    for (name, value) in headers {
        let value = http::HeaderValue::from_bytes(value).ok()?;
        builder = builder.header(*name, value);
    }
    builder.body(Body::from(body)).ok()
}

/// Whether rmcp would read this request's body as JSON: its first
/// `Content-Type` has the essence `application/json` (rmcp 3.11,
/// `StreamableHttpService::handle_post`).
pub(crate) fn rmcp_reads(req_headers: &http::HeaderMap) -> bool {
    req_headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
}

/// The forbidden call `body` holds, read with the last copy of a repeated
/// member winning (serde_json's `Value`) and with the first winning.
pub(crate) fn forbidden_call(body: &[u8]) -> Option<String> {
    let last: Option<Value> = serde_json::from_slice(body).ok();
    let first: Option<Value> = serde_json::from_slice::<FirstWins>(body).ok().map(|f| f.0);
    [last, first]
        .into_iter()
        .flatten()
        .find_map(|message| forbidden_in(&message))
}

fn forbidden_in(value: &Value) -> Option<String> {
    let messages: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    messages.into_iter().find_map(|m| {
        let method = m.get("method")?.as_str()?;
        let params = m.get("params");
        let param = |name: &str| params.and_then(|p| p.get(name)).and_then(Value::as_str);
        let forbidden = match method {
            "tools/call" | "prompts/get" => param("name") == Some("secret"),
            "resources/read" => param("uri") == Some("secret://x"),
            "completion/complete" => {
                let reference = params.and_then(|p| p.get("ref"));
                let field =
                    |name: &str| reference.and_then(|r| r.get(name)).and_then(Value::as_str);
                match field("type") {
                    Some("ref/prompt") => field("name") == Some("secret"),
                    Some("ref/resource") => field("uri") == Some("secret://x"),
                    _ => false,
                }
            }
            "logging/setLevel" => true,
            _ => false,
        };
        forbidden.then(|| m.to_string())
    })
}

/// A JSON value read with the first copy of a repeated member winning.
struct FirstWins(Value);

impl<'de> Deserialize<'de> for FirstWins {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FirstWinsVisitor).map(FirstWins)
    }
}

struct FirstWinsVisitor;

impl<'de> Visitor<'de> for FirstWinsVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(FirstWins(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some((k, FirstWins(v))) = map.next_entry::<String, FirstWins>()? {
            members.entry(k).or_insert(v);
        }
        Ok(Value::Object(members))
    }
}
