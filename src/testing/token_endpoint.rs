//! The token endpoint, `POST /token` (RFC 6749 section 3.2): the
//! authorization code grant with PKCE (RFC 7636 section 4.6), the client
//! credentials grant, and refresh tokens with rotation (OAuth 2.1 section
//! 4.3.1), and token exchange (RFC 8693 and the on-behalf-of form, in
//! `exchange`). Access tokens are RFC 9068 JWTs signed with the current key,
//! whose `aud` is the resource asked for (RFC 8707): none asked, no `aud`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::TokenBuilder;
use super::authorize::{
    CodeRejection, is_code_verifier, is_resource_indicator, parse_scope, verifier_matches,
};
use super::clients::{MAX_BODY, authenticate, confidential_client};
use super::exchange::{JWT_BEARER, TOKEN_EXCHANGE, on_behalf_of, token_exchange};
use super::issuer::{Shared, TOKEN_PATH};
use super::oauth_error::{OAuthError, method_not_allowed, no_store};
use super::params::{Params, has_content_type};
use super::plumbing::{lock, random_b64};

/// What a refresh token stands for.
#[derive(Debug, Clone)]
pub(super) struct RefreshGrant {
    client_id: String,
    subject: String,
    scopes: Vec<String>,
    resources: Vec<String>,
}

/// Refresh tokens issued and not yet used.
#[derive(Debug, Default)]
pub(super) struct RefreshTokens {
    grants: HashMap<String, RefreshGrant>,
}

/// `POST /token`.
pub(super) async fn serve_token(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    shared.token_hits.fetch_add(1, Ordering::SeqCst);
    if method != Method::POST {
        return method_not_allowed("POST");
    }
    match token(&shared, &headers, body).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(issuer = %shared.issuer, error = error.code, "test issuer refused a token request");
            error.into_response()
        }
    }
}

async fn token(shared: &Shared, headers: &HeaderMap, body: Body) -> Result<Response, OAuthError> {
    // RFC 6749 section 3.2.
    if !has_content_type(headers, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the token request must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| OAuthError::invalid_request("the token request is unreadable or too large"))?;
    let params = Params::parse(&bytes)
        .map_err(|_| OAuthError::invalid_request("a parameter is repeated"))?;
    let dpop = dpop_key(shared, headers)?;
    let dpop = dpop.as_deref();
    match params.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is required")),
        Some("authorization_code") => authorization_code(shared, dpop, headers, &params),
        Some("client_credentials") => client_credentials(shared, dpop, headers, &params),
        Some("refresh_token") => refresh_token(shared, dpop, headers, &params),
        Some(TOKEN_EXCHANGE) => token_exchange(shared, headers, &params),
        Some(JWT_BEARER) => on_behalf_of(shared, headers, &params),
        Some(_) => Err(OAuthError::bad_request(
            "unsupported_grant_type",
            "the grant types are authorization_code, client_credentials, refresh_token, token exchange (RFC 8693) and the on-behalf-of JWT bearer grant",
        )),
    }
}

/// RFC 6749 section 4.1.3, OAuth 2.1 section 4.1.3, RFC 7636 section 4.6.
fn authorization_code(
    shared: &Shared,
    dpop: Option<&str>,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let code = params
        .get("code")
        .ok_or(OAuthError::invalid_request("code is required"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or(OAuthError::invalid_request("redirect_uri is required"))?;
    let verifier = params
        .get("code_verifier")
        .ok_or(OAuthError::invalid_request(
            "code_verifier is required (PKCE)",
        ))?;
    if !is_code_verifier(verifier) {
        return Err(OAuthError::invalid_request("code_verifier is malformed"));
    }
    let client = authenticate(shared, headers, params)?
        .ok_or(OAuthError::invalid_request("client_id is required"))?;

    // Taken out whatever happens next: a code is good for one attempt.
    let pending = lock(&shared.codes)
        .take(code, shared.code_lifetime)
        .map_err(|rejection| match rejection {
            CodeRejection::Unknown => {
                OAuthError::invalid_grant("the code is unknown or was already used")
            }
            CodeRejection::Expired => OAuthError::invalid_grant("the code has expired"),
        })?;
    if pending.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if pending.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    if !verifier_matches(verifier, &pending.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let resources = narrow_resources(params.resources(), &pending.resources)?;
    let grant = RefreshGrant {
        client_id: pending.client_id,
        subject: pending.subject,
        scopes: pending.scopes,
        resources: pending.resources,
    };
    let refresh = new_refresh_token(shared, &grant)?;
    respond(
        shared,
        dpop,
        &grant,
        &grant.scopes,
        &resources,
        Some(refresh),
    )
}

/// RFC 6749 section 4.4: confidential clients only; `sub` is the client.
fn client_credentials(
    shared: &Shared,
    dpop: Option<&str>,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let client_id = confidential_client(
        shared,
        headers,
        params,
        "the client_credentials grant is for clients with a secret",
    )?;
    let resources = params.resources().to_vec();
    if !resources
        .iter()
        .all(|resource| is_resource_indicator(resource))
    {
        return Err(OAuthError::invalid_target(
            "resource must be an absolute URI without a fragment",
        ));
    }
    let scopes = parse_scope(params.get("scope").unwrap_or_default()).ok_or(
        OAuthError::bad_request("invalid_scope", "scope is malformed"),
    )?;
    let grant = RefreshGrant {
        subject: client_id.clone(),
        client_id,
        scopes,
        resources,
    };
    // RFC 6749 section 4.4.3: no refresh token.
    respond(shared, dpop, &grant, &grant.scopes, &grant.resources, None)
}

/// RFC 6749 section 6, with rotation (OAuth 2.1 section 4.3.1): the refresh
/// token is replaced by a new one at each use.
fn refresh_token(
    shared: &Shared,
    dpop: Option<&str>,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, OAuthError> {
    let presented = params
        .get("refresh_token")
        .ok_or(OAuthError::invalid_request("refresh_token is required"))?;
    let client = authenticate(shared, headers, params)?
        .ok_or(OAuthError::invalid_request("client_id is required"))?;
    let grant = lock(&shared.refresh_tokens)
        .grants
        .remove(presented)
        .ok_or(OAuthError::invalid_grant(
            "the refresh token is unknown or was already used",
        ))?;
    if grant.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let scopes = match params.get("scope") {
        None => grant.scopes.clone(),
        Some(scope) => {
            let scopes = parse_scope(scope).ok_or(OAuthError::bad_request(
                "invalid_scope",
                "scope is malformed",
            ))?;
            if !scopes.iter().all(|scope| grant.scopes.contains(scope)) {
                return Err(OAuthError::bad_request(
                    "invalid_scope",
                    "scope exceeds the original grant",
                ));
            }
            scopes
        }
    };
    let resources = narrow_resources(params.resources(), &grant.resources)?;
    let refresh = new_refresh_token(shared, &grant)?;
    respond(shared, dpop, &grant, &scopes, &resources, Some(refresh))
}

/// RFC 9449 section 5: a token request with one `DPoP` proof (for `POST`
/// on this token endpoint, within 300 s, signed by its `jwk`) gets a token
/// bound to the proof key; the thumbprint is returned. Several proofs, or
/// an invalid one: 400 `invalid_dpop_proof`.
fn dpop_key(shared: &Shared, headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let invalid = OAuthError::bad_request("invalid_dpop_proof", "the DPoP proof is invalid");
    let mut proofs = headers.get_all("dpop").iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    if proofs.next().is_some() {
        return Err(invalid);
    }
    let proof = proof.to_str().map_err(|_| invalid)?;
    let htu = url::Url::parse(&format!("{}{TOKEN_PATH}", shared.issuer))
        .map_err(|_| OAuthError::server_error("the token endpoint is not a URL"))?;
    let expected = crate::dpop::proof::Expected {
        method: "POST",
        htu: &htu,
        access_token: None,
        now: crate::clock::now_unix(),
        max_age: 300,
        nonces: None,
    };
    let algs = crate::DpopPolicy::default().algorithms;
    crate::dpop::proof::check(proof, &algs, 8 * 1024, &expected)
        .map(|verified| Some(verified.jkt))
        .map_err(|_| invalid)
}

/// The audience of a token: the `resource`s of the token request, each of
/// which must have been granted (RFC 8707 section 2.2), or all granted ones.
fn narrow_resources(requested: &[String], granted: &[String]) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    if !requested.iter().all(|resource| granted.contains(resource)) {
        return Err(OAuthError::invalid_target(
            "resource was not requested at the authorization endpoint",
        ));
    }
    let mut narrowed: Vec<String> = Vec::new();
    for resource in requested {
        if !narrowed.contains(resource) {
            narrowed.push(resource.clone());
        }
    }
    Ok(narrowed)
}

fn new_refresh_token(shared: &Shared, grant: &RefreshGrant) -> Result<String, OAuthError> {
    let token = random_b64(32).map_err(|_| OAuthError::server_error("random generation failed"))?;
    lock(&shared.refresh_tokens)
        .grants
        .insert(token.clone(), grant.clone());
    Ok(token)
}

/// A successful token response (RFC 6749 section 5.1).
fn respond(
    shared: &Shared,
    dpop: Option<&str>,
    grant: &RefreshGrant,
    scopes: &[String],
    resources: &[String],
    refresh_token: Option<String>,
) -> Result<Response, OAuthError> {
    let lifetime = shared.access_token_lifetime;
    let mut builder = TokenBuilder::new(shared)
        .subject(grant.subject.as_str())
        .client_id(grant.client_id.as_str())
        .expires_in(lifetime);
    if !scopes.is_empty() {
        builder = builder.scopes(scopes.iter().map(String::as_str));
    }
    if let Some(jkt) = dpop {
        builder = builder.dpop_bound_to(jkt);
    }
    builder = match resources {
        [] => builder,
        [one] => builder.audience(one.as_str()),
        many => builder.audiences(many.iter().map(String::as_str)),
    };
    let access_token = builder
        .try_sign()
        .map_err(|_| OAuthError::server_error("signing failed"))?;

    let mut body = json!({
        "access_token": access_token,
        // RFC 9449 section 5: a bound token is of type DPoP.
        "token_type": if dpop.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": lifetime.as_secs(),
    });
    if let Value::Object(members) = &mut body {
        if !scopes.is_empty() {
            members.insert("scope".to_owned(), Value::from(scopes.join(" ")));
        }
        if let Some(refresh_token) = refresh_token {
            members.insert("refresh_token".to_owned(), Value::from(refresh_token));
        }
    }
    tracing::debug!(
        issuer = %shared.issuer,
        client_id = %grant.client_id,
        subject = %grant.subject,
        "test issuer issued an access token"
    );
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, no_store());
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}
