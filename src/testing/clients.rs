//! Clients of the test issuer: registration by the test
//! ([`TestIssuer::register_client`](super::TestIssuer::register_client)) or
//! by the client itself (open dynamic registration, RFC 7591), the redirect
//! URI rules, and client authentication at the token endpoint (RFC 6749
//! section 2.3).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use url::{Host, Url};

use super::issuer::Shared;
use super::oauth_error::{OAuthError, method_not_allowed, no_store};
use super::params::{BasicCredentials, Params, basic_credentials, has_content_type};
use super::plumbing::{lock, random_b64, unix_now};

/// Largest registration or token request body read.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// `token_endpoint_auth_method` values this issuer implements.
pub(super) const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];

/// Grant types this issuer implements.
pub(super) const GRANT_TYPES: [&str; 3] =
    ["authorization_code", "client_credentials", "refresh_token"];

/// A client the [`TestIssuer`](super::TestIssuer) knows, registered by the
/// test with [`TestIssuer::register_client`](super::TestIssuer::register_client).
///
/// - A **public** client ([`ClientRegistration::public`]) has no secret: it
///   sends its `client_id` in the token request and may use the
///   authorization code and refresh token grants.
/// - A **confidential** client ([`ClientRegistration::confidential`])
///   authenticates at the token endpoint with `client_secret_basic` or
///   `client_secret_post` (either is accepted) and may also use the client
///   credentials grant.
///
/// Without any [`redirect_uri`](Self::redirect_uri), the client may use any
/// redirect URI the issuer accepts (`https`, or `http` on a loopback host);
/// with some, the one in an authorization request must be one of them
/// (for `http` loopback URIs, any port, RFC 8252 section 7.3).
///
/// `Debug` output never shows the secret.
#[derive(Clone)]
#[must_use]
pub struct ClientRegistration {
    client_id: String,
    secret: Option<String>,
    redirect_uris: Vec<String>,
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

impl ClientRegistration {
    /// A public client (`token_endpoint_auth_method` `none`).
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            secret: None,
            redirect_uris: Vec::new(),
        }
    }

    /// A confidential client with a client secret.
    pub fn confidential(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            secret: Some(secret.into()),
            redirect_uris: Vec::new(),
        }
    }

    /// Adds a registered redirect URI.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// The client identifier.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// Every registered client, by `client_id`.
#[derive(Debug, Default)]
pub(super) struct Registry {
    clients: HashMap<String, ClientRegistration>,
}

impl Registry {
    /// Adds or replaces a client.
    pub(super) fn insert(&mut self, client: ClientRegistration) {
        self.clients.insert(client.client_id.clone(), client);
    }

    fn get(&self, client_id: &str) -> Option<&ClientRegistration> {
        self.clients.get(client_id)
    }
}

/// Whether `uri` may be a redirect URI at all (OAuth 2.1 section 2.3.1,
/// RFC 8252 sections 7.3 and 8.3): an absolute `https` URI, or `http` on a
/// loopback host; never with a fragment (RFC 6749 section 3.1.2).
pub(super) fn acceptable_redirect_uri(uri: &str) -> Option<Url> {
    let url = Url::parse(uri).ok()?;
    if url.fragment().is_some() {
        return None;
    }
    let acceptable = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback(url.host()),
        _ => false,
    };
    acceptable.then_some(url)
}

fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(addr)) => addr.is_loopback(),
        Some(Host::Ipv6(addr)) => addr.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `given` matches `registered`: the same URI, or, for `http`
/// loopback URIs, the same URI on another port (RFC 8252 section 7.3).
fn redirect_matches(registered: &str, given: &Url) -> bool {
    let Ok(registered) = Url::parse(registered) else {
        return false;
    };
    if &registered == given {
        return true;
    }
    if registered.scheme() != "http" || !is_loopback(registered.host()) {
        return false;
    }
    let (mut registered, mut given) = (registered, given.clone());
    // Ignored errors: an `http` URL with a host always accepts a port.
    let _ = registered.set_port(None);
    let _ = given.set_port(None);
    registered == given
}

/// Checks `redirect_uri` for `client_id` at the authorization endpoint.
/// Unknown clients are treated as public clients without registered URIs.
pub(super) fn check_redirect_uri(
    shared: &Shared,
    client_id: &str,
    redirect_uri: &str,
) -> Result<Url, OAuthError> {
    let url = acceptable_redirect_uri(redirect_uri).ok_or(OAuthError::invalid_request(
        "redirect_uri must be an https URI, or http on a loopback host, without a fragment",
    ))?;
    let clients = lock(&shared.clients);
    if let Some(client) = clients.get(client_id)
        && !client.redirect_uris.is_empty()
        && !client
            .redirect_uris
            .iter()
            .any(|registered| redirect_matches(registered, &url))
    {
        return Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        ));
    }
    Ok(url)
}

/// The client making a token request.
#[derive(Debug)]
pub(super) struct TokenClient {
    pub(super) client_id: String,
    /// Authenticated with its secret (a confidential client).
    pub(super) confidential: bool,
}

/// The client of a grant for confidential clients only (client
/// credentials, token exchange): authenticated with its secret, else
/// `invalid_client` (no authentication) or `unauthorized_client` with
/// `refusal` (a public client). Its client id.
pub(super) fn confidential_client(
    shared: &Shared,
    headers: &HeaderMap,
    params: &Params,
    refusal: &'static str,
) -> Result<String, OAuthError> {
    let client = authenticate(shared, headers, params)?.ok_or(OAuthError::invalid_client(
        "client authentication is required",
    ))?;
    if !client.confidential {
        return Err(OAuthError::bad_request("unauthorized_client", refusal));
    }
    Ok(client.client_id)
}

/// Identifies and authenticates the client of a token request (RFC 6749
/// section 2.3): `client_secret_basic` or `client_secret_post` for clients
/// registered with a secret, `client_id` alone for public (or unknown)
/// clients. `Ok(None)`: the request names no client at all.
pub(super) fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<TokenClient>, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let (client_id, secret) = match basic_credentials(headers) {
        BasicCredentials::Malformed => {
            return Err(OAuthError::invalid_client(
                "the Authorization header is not valid Basic client authentication",
            ));
        }
        BasicCredentials::Present { client_id, secret } => {
            if body_secret.is_some() {
                // RFC 6749 section 2.3: "MUST NOT use more than one authentication method".
                return Err(OAuthError::invalid_request(
                    "more than one client authentication method",
                ));
            }
            if body_id.is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (client_id, Some(secret))
        }
        BasicCredentials::Absent => match body_id {
            Some(id) => (id.to_owned(), body_secret.map(str::to_owned)),
            None if body_secret.is_some() => {
                return Err(OAuthError::invalid_request(
                    "client_secret without client_id",
                ));
            }
            None => return Ok(None),
        },
    };
    let expected = lock(&shared.clients)
        .get(&client_id)
        .and_then(|client| client.secret.clone());
    match (expected, secret) {
        (Some(expected), Some(given))
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                given.as_bytes(),
            )
            .is_ok() =>
        {
            Ok(Some(TokenClient {
                client_id,
                confidential: true,
            }))
        }
        (None, None) => Ok(Some(TokenClient {
            client_id,
            confidential: false,
        })),
        // A wrong or missing secret, or a secret for a public or unknown client.
        _ => Err(OAuthError::invalid_client("client authentication failed")),
    }
}

/// `POST /register`: open dynamic client registration (RFC 7591).
pub(super) async fn serve_register(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    shared.registration_hits.fetch_add(1, Ordering::SeqCst);
    if method != Method::POST {
        return method_not_allowed("POST");
    }
    match register(&shared, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn invalid_metadata(description: &'static str) -> OAuthError {
    OAuthError::bad_request("invalid_client_metadata", description)
}

/// A list of strings from the request, each satisfying `allowed`.
fn string_list(
    value: Option<&Value>,
    default: &[&str],
    allowed: impl Fn(&str) -> bool,
) -> Option<Vec<String>> {
    match value {
        None => Some(default.iter().map(|item| (*item).to_owned()).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|item| allowed(item))
                    .map(str::to_owned)
            })
            .collect(),
        Some(_) => None,
    }
}

async fn register(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    if !has_content_type(headers, "application/json") {
        return Err(invalid_metadata(
            "the registration request must be application/json",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| invalid_metadata("the registration request is unreadable or too large"))?;
    let Ok(Value::Object(mut metadata)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(invalid_metadata(
            "the registration request is not a JSON object",
        ));
    };

    // RFC 7591 section 2 and section 3.2.2.
    let redirect_uris = string_list(metadata.get("redirect_uris"), &[], |uri| {
        acceptable_redirect_uri(uri).is_some()
    })
    .ok_or(OAuthError::bad_request(
        "invalid_redirect_uri",
        "redirect_uris must be https URIs, or http on a loopback host, without a fragment",
    ))?;
    let auth_method = match metadata.get("token_endpoint_auth_method") {
        // RFC 7591 section 2: the default is client_secret_basic.
        None => "client_secret_basic".to_owned(),
        Some(Value::String(method)) if AUTH_METHODS.contains(&method.as_str()) => method.clone(),
        Some(_) => {
            return Err(invalid_metadata(
                "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post",
            ));
        }
    };
    let grant_types = string_list(
        metadata.get("grant_types"),
        &["authorization_code"],
        |grant| GRANT_TYPES.contains(&grant),
    )
    .ok_or(invalid_metadata(
        "grant_types must be among authorization_code, client_credentials, refresh_token",
    ))?;
    let response_types = string_list(metadata.get("response_types"), &["code"], |response| {
        response == "code"
    })
    .ok_or(invalid_metadata("response_types may only contain code"))?;
    let public = auth_method == "none";
    if public
        && grant_types
            .iter()
            .any(|grant| grant == "client_credentials")
    {
        return Err(invalid_metadata(
            "client_credentials needs a client authentication method other than none",
        ));
    }

    let random =
        |bytes| random_b64(bytes).map_err(|_| OAuthError::server_error("random generation failed"));
    let client_id = format!("client-{}", random(16)?);
    let secret = if public { None } else { Some(random(32)?) };
    lock(&shared.clients).insert(ClientRegistration {
        client_id: client_id.clone(),
        secret: secret.clone(),
        redirect_uris: redirect_uris.clone(),
    });

    // RFC 7591 section 3.2.1: the registered metadata, with what the server set.
    let strings = |items: Vec<String>| Value::Array(items.into_iter().map(Value::from).collect());
    let mut set = |name: &str, value: Value| {
        metadata.insert(name.to_owned(), value);
    };
    set("client_id", Value::from(client_id.as_str()));
    set("client_id_issued_at", Value::from(unix_now()));
    set("redirect_uris", strings(redirect_uris));
    set("token_endpoint_auth_method", Value::from(auth_method));
    set("grant_types", strings(grant_types));
    set("response_types", strings(response_types));
    if let Some(secret) = secret {
        set("client_secret", Value::from(secret));
        set("client_secret_expires_at", Value::from(0));
    }
    tracing::debug!(issuer = %shared.issuer, %client_id, "test issuer registered a client");
    let mut response = (StatusCode::CREATED, Json(Value::Object(metadata))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, no_store());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        // OAuth 2.1 section 2.3.1, RFC 8252 sections 7.3 and 8.3, RFC 6749 section 3.1.2.
        for good in [
            "http://127.0.0.1:4000/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb?x=1",
            "https://app.example.com/cb",
        ] {
            assert!(acceptable_redirect_uri(good).is_some(), "{good}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "com.example.app:/cb",
            "/relative",
            "javascript:alert(1)",
        ] {
            assert!(acceptable_redirect_uri(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn loopback_redirect_uris_match_on_any_port() {
        // RFC 8252 section 7.3.
        let given = |uri| Url::parse(uri).expect("url");
        assert!(redirect_matches(
            "http://127.0.0.1/cb",
            &given("http://127.0.0.1:5555/cb")
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            &given("http://127.0.0.1:5555/other")
        ));
        assert!(redirect_matches(
            "https://app.example.com/cb",
            &given("https://app.example.com/cb")
        ));
        assert!(!redirect_matches(
            "https://app.example.com/cb",
            &given("https://app.example.com:8443/cb")
        ));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let client = ClientRegistration::confidential("svc", "hunter2");
        let text = format!("{client:?}");
        assert!(text.contains("svc") && !text.contains("hunter2"), "{text}");
    }
}
