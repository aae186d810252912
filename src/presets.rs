//! Configuration presets for common identity providers.
//!
//! Each returns an [`AuthConfigBuilder`] with the provider's issuer and
//! token conventions; add `.resource(...)` (the canonical URI of your MCP
//! endpoint) and anything else, then `.build()`. The token shapes each preset
//! expects are described, with their sources, in
//! `spec-fixtures/providers/`; the tests verify tokens of those shapes.
//!
//! None of these providers issues RFC 9068 (`typ: at+jwt`) access tokens by
//! default, so every preset accepts `typ: JWT` ([`TypPolicy::AllowJwt`]).
//! That is why the audience matters even more: configure the provider so
//! that tokens for this server carry an audience no other service accepts.
//!
//! Domains and URLs are read as pasted from the provider's console:
//! surrounding spaces, trailing slashes and an `https://` are dropped. Any
//! other scheme (`http://`) makes an issuer that [`build`](AuthConfigBuilder::build)
//! refuses.

use crate::config::{
    AudienceRule, AuthConfig, AuthConfigBuilder, ENTRA_FRONT_DOORS, TenantIssuer, TypPolicy,
};
use crate::error::ConfigError;

/// A URL or domain as pasted from a provider's console: surrounding
/// spaces and trailing slashes dropped.
fn trim(s: &str) -> &str {
    s.trim().trim_end_matches('/')
}

/// A domain as pasted from a provider's console, with or without its
/// `https://` (surrounding spaces and trailing slashes dropped first or
/// last). Another scheme is kept, so the issuer built from it is refused
/// at build rather than naming a host called `http`.
fn bare_domain(s: &str) -> &str {
    let s = trim(s);
    s.strip_prefix("https://").unwrap_or(s)
}

/// Keycloak: issuer `{server_url}/realms/{realm}` (no trailing slash; spaces
/// and slashes around `realm` are dropped). Put the
/// resource URI in `aud` with an *Audience* mapper (or "Included Custom
/// Audience") on the client scope that MCP clients request; without it,
/// Keycloak's `aud` is `account` or absent and every token is refused.
/// Scopes come from `scope`. Tokens naming no client (`azp`, which every
/// Keycloak access token carries) are refused: an ID token has its client
/// as audience and nothing else
/// ([`require_client_id`](AuthConfigBuilder::require_client_id)).
pub fn keycloak(server_url: &str, realm: &str) -> AuthConfigBuilder {
    AuthConfig::builder()
        .issuer(format!(
            "{}/realms/{}",
            trim(server_url),
            realm.trim().trim_matches('/')
        ))
        .typ_policy(TypPolicy::AllowJwt)
        .require_client_id(true)
}

/// Auth0: issuer `https://{domain}/` (the trailing slash is part of it).
/// Create an API whose *Identifier* is the resource URI: it becomes `aud`.
/// Scopes come from `scope` and, with RBAC's "Add Permissions in the Access
/// Token", from `permissions` (merged). Tokens naming no client (`azp`,
/// which Auth0 access tokens carry) are refused: an ID token has its client
/// as audience and nothing else, so accepting a client's id with
/// [`accept_audience`](AuthConfigBuilder::accept_audience) does not let ID
/// tokens through ([`require_client_id`](AuthConfigBuilder::require_client_id)).
pub fn auth0(domain: &str) -> AuthConfigBuilder {
    let domain = bare_domain(domain);
    AuthConfig::builder()
        .issuer(format!("https://{domain}/"))
        .typ_policy(TypPolicy::AllowJwt)
        .scope_claims(["scope", "permissions"])
        .require_client_id(true)
}

/// An Entra ID directory (tenant) ID, trimmed.
fn entra_tenant(tenant_id: &str) -> String {
    tenant_id.trim().to_owned()
}

/// A single-tenant Entra ID preset for `tenant`: refused at build when it
/// is a front door, not a tenant.
fn entra_single(builder: AuthConfigBuilder, tenant: &str) -> AuthConfigBuilder {
    if ENTRA_FRONT_DOORS
        .iter()
        .any(|door| door.eq_ignore_ascii_case(tenant))
    {
        return builder.refuse(ConfigError::new(
            "tenant_id",
            format!(
                "{tenant:?} is a sign-in front door, not a tenant: Entra ID tokens name their \
                 user's own directory (tenant) ID as issuer, so every token would be refused; \
                 give the directory ID, or use presets::entra_id_multi_tenant with the tenants \
                 to accept"
            ),
        ));
    }
    builder
}

/// Microsoft Entra ID, v2.0 tokens: issuer
/// `https://login.microsoftonline.com/{tenant_id}/v2.0`. Entra puts the API
/// app registration's application (client) ID in `aud`, never a URL, so that
/// ID is accepted as this server's audience: give the MCP server its own app
/// registration. An ID token issued to a client of that same registration
/// carries that ID as its audience too; it names no client (`azp`,
/// `appid`), which every Entra access token does, so tokens without one
/// are refused ([`require_client_id`](AuthConfigBuilder::require_client_id)).
/// Delegated scopes come from `scp` (space-separated);
/// app-only permissions arrive in `roles` (add `"roles"` to
/// [`scope_claims`](AuthConfigBuilder::scope_claims) to use them).
/// Single tenant: `tenant_id` is the directory ID. `common`,
/// `organizations` and `consumers` (any case) are sign-in front doors that
/// no token names as its issuer: [`build`](AuthConfigBuilder::build) refuses
/// them (`tenant_id`); for a multi-tenant app see [`entra_id_multi_tenant`].
pub fn entra_id(tenant_id: &str, application_id: &str) -> AuthConfigBuilder {
    let tenant = entra_tenant(tenant_id);
    let builder = AuthConfig::builder()
        .issuer(format!("https://login.microsoftonline.com/{tenant}/v2.0"))
        .typ_policy(TypPolicy::AllowJwt)
        .accept_audience(application_id.trim())
        .require_client_id(true)
        .scope_claims(["scp"]);
    entra_single(builder, &tenant)
}

/// Microsoft Entra ID, v1.0 tokens: issuer `https://sts.windows.net/{tenant_id}/`,
/// `aud` the application ID URI (`api://...`) or the application ID, as
/// the client asked (its `resource` parameter): this preset accepts the
/// URI it is given; add the application ID with
/// [`accept_audience`](AuthConfigBuilder::accept_audience) when clients ask
/// by ID.
/// Discovery from that issuer is not documented by Microsoft: set the key-set
/// URL (`https://login.microsoftonline.com/{tenant_id}/discovery/keys`) with
/// [`jwks_uri`](AuthConfigBuilder::jwks_uri). Tokens without `appid` (or
/// another client claim: ID tokens) are refused, and `common`,
/// `organizations` and `consumers` are refused as tenants, as in [`entra_id`].
pub fn entra_id_v1(tenant_id: &str, application_id_uri: &str) -> AuthConfigBuilder {
    let tenant = entra_tenant(tenant_id);
    let builder = AuthConfig::builder()
        .issuer(format!("https://sts.windows.net/{tenant}/"))
        .typ_policy(TypPolicy::AllowJwt)
        .accept_audience(application_id_uri.trim())
        .require_client_id(true)
        .scope_claims(["scp"]);
    entra_single(builder, &tenant)
}

/// Okta, custom authorization server: issuer
/// `https://{domain}/oauth2/{authorization_server_id}` (`default` for the
/// default server). Set the server's audience to the resource URI. Scopes
/// come from `scp` (an array); the client id from `cid`. Tokens of the Org
/// authorization server (`https://{domain}`) are for Okta itself and are
/// refused by the issuer check. Tokens naming no client (`cid`) are
/// refused, as ID tokens
/// ([`require_client_id`](AuthConfigBuilder::require_client_id)).
pub fn okta(domain: &str, authorization_server_id: &str) -> AuthConfigBuilder {
    let domain = bare_domain(domain);
    AuthConfig::builder()
        .issuer(format!(
            "https://{domain}/oauth2/{}",
            authorization_server_id.trim()
        ))
        .typ_policy(TypPolicy::AllowJwt)
        .require_client_id(true)
}

/// AWS Cognito user pools: issuer
/// `https://cognito-idp.{region}.amazonaws.com/{user_pool_id}`.
///
/// **Audience binding is weaker here.** Cognito access tokens carry no `aud`
/// (unless resource binding is configured), so the token cannot say it was
/// issued for this server. The preset instead requires `token_use: access`
/// (ID tokens are refused) and a `client_id` from `client_ids`: any access
/// token of the pool for one of those app clients is accepted, whatever API
/// it was meant for. Use app clients dedicated to this MCP server, and
/// custom scopes of a Cognito resource server (`{identifier}/{scope}`).
pub fn cognito<I, S>(region: &str, user_pool_id: &str, client_ids: I) -> AuthConfigBuilder
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    AuthConfig::builder()
        .issuer(format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            region.trim(),
            user_pool_id.trim()
        ))
        .typ_policy(TypPolicy::AllowJwt)
        .audience_rule(AudienceRule::CognitoClientIds(
            client_ids.into_iter().map(Into::into).collect(),
        ))
        .require_client_id(true)
}

/// Microsoft Entra ID multi-tenant app, v2.0 tokens: the issuer template
/// `https://login.microsoftonline.com/{tenant}/v2.0` with `tid` equal to the
/// tenant, tenants from `tenants` (directory GUIDs), and the common key set
/// `https://login.microsoftonline.com/common/discovery/v2.0/keys` shared by
/// every tenant. `aud` is the API's application ID and tokens naming no
/// client are refused, as in [`entra_id`]. The
/// metadata advertises `https://login.microsoftonline.com/organizations/v2.0`
/// (clients sign users in there; the token names their own tenant).
///
/// To admit every organisation instead of a list, build the
/// [`TenantIssuer`] yourself with
/// [`allow_any_tenant_unrestricted`](TenantIssuer::allow_any_tenant_unrestricted).
pub fn entra_id_multi_tenant<I, S>(application_id: &str, tenants: I) -> AuthConfigBuilder
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    AuthConfig::builder()
        .tenant_issuer(
            TenantIssuer::new("https://login.microsoftonline.com/{tenant}/v2.0")
                .tenants(tenants.into_iter().map(|t| entra_tenant(&t.into())))
                .tenant_claim("tid")
                .jwks_uri("https://login.microsoftonline.com/common/discovery/v2.0/keys")
                .advertise("https://login.microsoftonline.com/organizations/v2.0"),
        )
        .typ_policy(TypPolicy::AllowJwt)
        .accept_audience(application_id.trim())
        .require_client_id(true)
        .scope_claims(["scp"])
}

/// Keycloak, one realm per tenant: the issuer template
/// `{server_url}/realms/{tenant}`, realms from `realms`, each with its own
/// key set at `{server_url}/realms/{tenant}/protocol/openid-connect/certs`
/// (fetched on the realm's first token). The realm is the tenant; Keycloak
/// tokens carry no tenant claim. Audience, scopes and the client claim as
/// in [`keycloak`].
pub fn keycloak_realms<I, S>(server_url: &str, realms: I) -> AuthConfigBuilder
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let base = trim(server_url);
    AuthConfig::builder()
        .tenant_issuer(
            TenantIssuer::new(format!("{base}/realms/{{tenant}}"))
                .tenants(realms.into_iter().map(|t| t.into().trim().to_owned()))
                .jwks_uri(format!(
                    "{base}/realms/{{tenant}}/protocol/openid-connect/certs"
                )),
        )
        .typ_policy(TypPolicy::AllowJwt)
        .require_client_id(true)
}

/// Auth0 Organizations: one issuer `https://{domain}/`, the organization in
/// `org_id` (the tenant), organizations from `organizations` (`org_...`
/// ids); one key set for all. Audience, scopes and the client claim as in
/// [`auth0`].
pub fn auth0_organizations<I, S>(domain: &str, organizations: I) -> AuthConfigBuilder
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let domain = bare_domain(domain);
    AuthConfig::builder()
        .tenant_issuer(
            TenantIssuer::new(format!("https://{domain}/"))
                .tenants(
                    organizations
                        .into_iter()
                        .map(|t| t.into().trim().to_owned()),
                )
                .tenant_claim("org_id"),
        )
        .typ_policy(TypPolicy::AllowJwt)
        .scope_claims(["scope", "permissions"])
        .require_client_id(true)
}
