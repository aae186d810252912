//! The token-exchange grants of the token endpoint: RFC 8693
//! (`urn:ietf:params:oauth:grant-type:token-exchange`) and the Entra ID
//! on-behalf-of form of the JWT bearer grant (RFC 7523,
//! `requested_token_use=on_behalf_of`). The subject token must be one of this
//! issuer's (its signature with a published key, its `iss`, its `exp`); the
//! client must authenticate with its secret; the new token has the
//! subject's `sub`, the requested audience as `aud`, and `act: {"sub":
//! <client_id>}` (RFC 8693 section 4.1), nesting the subject token's own
//! `act`. A subject token with `may_act` (section 4.4) may be exchanged only
//! by the client it names. Refusal policies: audiences refused with
//! `invalid_target`, and a switch that answers `invalid_grant` to every
//! exchange.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::TokenBuilder;
use super::authorize::{is_resource_indicator, parse_scope};
use super::clients::confidential_client;
use super::issuer::Shared;
use super::oauth_error::{OAuthError, no_store};
use super::params::Params;
use super::plumbing::{lock, unix_now};

/// RFC 8693 section 2.1.
pub(super) const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 section 2.1.
pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 section 3.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 section 3.
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The refusal policies of the exchange grants.
#[derive(Debug, Default)]
pub(super) struct ExchangePolicy {
    /// Audiences (or resources) refused with `invalid_target`.
    pub(super) refused_audiences: HashSet<String>,
    /// Answer `invalid_grant` to every exchange.
    pub(super) refuse_all: bool,
    /// Audiences the user must consent to: (audience, the scope of the
    /// subject token that stands for that consent).
    pub(super) consent: Vec<(String, String)>,
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
pub(super) fn token_exchange(
    shared: &Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let client = exchange_client(shared, headers, params)?;
    let subject_token = params
        .get("subject_token")
        .ok_or(OAuthError::invalid_request("subject_token is required"))?;
    match params.get("subject_token_type") {
        Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "subject_token_type must be an access token or a JWT",
            ));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "subject_token_type is required",
            ));
        }
    }
    if params.get("actor_token").is_some() {
        return Err(OAuthError::invalid_request(
            "actor tokens are not supported by the test issuer",
        ));
    }
    let mut audiences: Vec<String> = params
        .get("audience")
        .map(str::to_owned)
        .into_iter()
        .collect();
    for resource in params.resources() {
        if !is_resource_indicator(resource) {
            return Err(OAuthError::invalid_target(
                "resource must be an absolute URI without a fragment",
            ));
        }
        if !audiences.contains(resource) {
            audiences.push(resource.clone());
        }
    }
    let scopes = parse_scope(params.get("scope").unwrap_or_default()).ok_or(
        OAuthError::bad_request("invalid_scope", "scope is malformed"),
    )?;
    issue(shared, &client, subject_token, &audiences, &scopes, true)
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with
/// `requested_token_use=on_behalf_of` (Entra ID): each scope
/// `<resource>/<name>` asks for `<resource>` as audience and `<name>` as
/// scope (`.default`: no scope).
pub(super) fn on_behalf_of(
    shared: &Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let client = exchange_client(shared, headers, params)?;
    if params.get("requested_token_use") != Some("on_behalf_of") {
        return Err(OAuthError::invalid_request(
            "requested_token_use must be on_behalf_of",
        ));
    }
    let assertion = params
        .get("assertion")
        .ok_or(OAuthError::invalid_request("assertion is required"))?;
    let requested = parse_scope(params.get("scope").unwrap_or_default()).ok_or(
        OAuthError::bad_request("invalid_scope", "scope is malformed"),
    )?;
    let mut audiences = Vec::new();
    let mut scopes = Vec::new();
    for scope in requested {
        let (resource, name) = scope.rsplit_once('/').ok_or(OAuthError::bad_request(
            "invalid_scope",
            "each scope must name its resource",
        ))?;
        if !audiences.iter().any(|a| a == resource) {
            audiences.push(resource.to_owned());
        }
        if name != ".default" {
            scopes.push(name.to_owned());
        }
    }
    if audiences.is_empty() {
        return Err(OAuthError::bad_request(
            "invalid_scope",
            "scope is required",
        ));
    }
    issue(shared, &client, assertion, &audiences, &scopes, false)
}

/// Counts an exchange request (`exchange_hits`) and authenticates its
/// client, which must be confidential: the start of both exchange grants.
fn exchange_client(
    shared: &Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<String, OAuthError> {
    shared.exchange_hits.fetch_add(1, Ordering::SeqCst);
    confidential_client(
        shared,
        headers,
        params,
        "token exchange is for clients with a secret",
    )
}

/// Checks the subject token and the policies, then issues the new token.
fn issue(
    shared: &Shared,
    client_id: &str,
    subject_token: &str,
    audiences: &[String],
    scopes: &[String],
    rfc8693: bool,
) -> Result<Response, OAuthError> {
    let claims = verify_subject_token(shared, subject_token)?;
    {
        let policy = lock(&shared.exchange_policy);
        let granted = claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if policy.consent.iter().any(|(audience, scope)| {
            audiences.contains(audience) && !granted.split(' ').any(|g| g == scope)
        }) {
            // The RFC 8693 grant says so with the OpenID Connect code;
            // Entra ID's on-behalf-of with `invalid_grant` and a suberror.
            return Err(if rfc8693 {
                OAuthError::bad_request(
                    "consent_required",
                    "the user has not consented to the downstream API",
                )
            } else {
                OAuthError::invalid_grant("the user has not consented to the downstream API")
                    .with_suberror("consent_required")
            });
        }
        if policy.refuse_all {
            return Err(OAuthError::invalid_grant(
                "the test issuer refuses every exchange",
            ));
        }
        if audiences
            .iter()
            .any(|a| policy.refused_audiences.contains(a))
        {
            return Err(OAuthError::invalid_target(
                "the requested audience is refused",
            ));
        }
    }
    // RFC 8693 section 4.4: `may_act` names who may act for the subject.
    if let Some(may_act) = claims.get("may_act")
        && may_act.get("sub").and_then(Value::as_str) != Some(client_id)
    {
        return Err(OAuthError::invalid_grant(
            "the subject token's may_act does not name this client",
        ));
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(OAuthError::invalid_grant("the subject token has no sub"))?;
    // RFC 8693 section 4.1: the current actor first, earlier ones nested.
    let mut act = Map::new();
    act.insert("sub".to_owned(), Value::from(client_id));
    if let Some(previous) = claims.get("act") {
        act.insert("act".to_owned(), previous.clone());
    }
    let lifetime = shared.access_token_lifetime;
    let mut builder = TokenBuilder::new(shared)
        .subject(subject)
        .client_id(client_id)
        .expires_in(lifetime)
        .claim("act", Value::Object(act));
    if !scopes.is_empty() {
        builder = builder.scopes(scopes.iter().map(String::as_str));
    }
    builder = match audiences {
        [] => builder,
        [one] => builder.audience(one.as_str()),
        many => builder.audiences(many.iter().map(String::as_str)),
    };
    let access_token = builder
        .try_sign()
        .map_err(|_| OAuthError::server_error("signing failed"))?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
    });
    if let Value::Object(members) = &mut body {
        if rfc8693 {
            members.insert(
                "issued_token_type".to_owned(),
                Value::from(ACCESS_TOKEN_TYPE),
            );
        }
        if !scopes.is_empty() {
            members.insert("scope".to_owned(), Value::from(scopes.join(" ")));
        }
    }
    tracing::debug!(issuer = %shared.issuer, client_id, subject, "test issuer exchanged a token");
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, no_store());
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// A token this issuer signed with a key it still publishes, with its
/// `iss`, not expired. Anything else is `invalid_grant`.
fn verify_subject_token(shared: &Shared, token: &str) -> Result<Map<String, Value>, OAuthError> {
    let invalid = OAuthError::invalid_grant("the subject token is not valid");
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| invalid);
    let header: Map<String, Value> =
        serde_json::from_slice(&decode(header)?).map_err(|_| invalid)?;
    let kid = header.get("kid").and_then(Value::as_str).ok_or(invalid)?;
    let key = shared
        .keys()
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .cloned()
        .ok_or(invalid)?;
    let signed_len = token.len().saturating_sub(signature.len() + 1);
    let signed = token.as_bytes().get(..signed_len).ok_or(invalid)?;
    if header.get("alg").and_then(Value::as_str) != Some(key.alg.as_str())
        || !key.verify(signed, &decode(signature)?)
    {
        return Err(invalid);
    }
    let claims: Map<String, Value> =
        serde_json::from_slice(&decode(payload)?).map_err(|_| invalid)?;
    if claims.get("iss").and_then(Value::as_str) != Some(shared.issuer.as_str()) {
        return Err(invalid);
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > unix_now() => Ok(claims),
        _ => Err(OAuthError::invalid_grant("the subject token has expired")),
    }
}
