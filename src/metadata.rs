//! The RFC 9728 protected-resource metadata document and its well-known routes.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::Response;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
};
use http::{Method, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, DpopMode};

/// The well-known path prefix of RFC 9728 section 3.
pub(crate) const WELL_KNOWN_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// An OAuth 2.0 Protected Resource Metadata document (RFC 9728 section 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource identifier; equal to the URL the client built the
    /// metadata URL from (RFC 9728 section 3.3).
    pub resource: String,
    /// Issuers of the authorization servers that issue tokens for this resource.
    pub authorization_servers: Vec<String>,
    /// Scopes needed for basic use of this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens may be presented: only `header`.
    pub bearer_methods_supported: Vec<String>,
    /// Human-readable name of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// URL of documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// The DPoP proof algorithms accepted (RFC 9728 section 2, RFC 9449);
    /// empty (and left out) when DPoP is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether only DPoP-bound tokens are accepted (RFC 9728 section 2);
    /// left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens_required: bool,
}

impl ProtectedResourceMetadata {
    /// The document for `config`.
    pub fn from_config(config: &AuthConfig) -> Self {
        Self {
            resource: config.resource.clone(),
            authorization_servers: config.authorization_servers.clone(),
            scopes_supported: config.scopes_supported.clone(),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: config.resource_name.clone(),
            resource_documentation: config
                .resource_documentation
                .as_ref()
                .map(|u| u.to_string()),
            dpop_signing_alg_values_supported: if config.dpop.mode == DpopMode::Off {
                Vec::new()
            } else {
                config
                    .dpop
                    .algorithms
                    .iter()
                    .map(|a| a.as_str().to_owned())
                    .collect()
            },
            dpop_bound_access_tokens_required: config.dpop.mode == DpopMode::Required,
        }
    }
}

/// The document served at the well-known paths, serialized once.
#[derive(Debug, Clone)]
pub(crate) struct MetadataEndpoint {
    /// The path-suffixed location (RFC 9728 section 3.1).
    pub(crate) path: String,
    /// Whether the root location (`/.well-known/oauth-protected-resource`,
    /// where clients fall back) is served too.
    root: bool,
    body: Bytes,
    /// `Cache-Control: public, max-age=<seconds>`.
    cache_control: http::HeaderValue,
}

impl MetadataEndpoint {
    pub(crate) fn new(config: &AuthConfig) -> Self {
        let doc = ProtectedResourceMetadata::from_config(config);
        // Serializing a struct of strings cannot fail.
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        Self {
            path: config.metadata_path(),
            root: true,
            body: Bytes::from(body),
            cache_control: http::HeaderValue::from(config.metadata_max_age.as_secs())
                .to_str()
                .ok()
                .and_then(|secs| {
                    http::HeaderValue::try_from(format!("public, max-age={secs}")).ok()
                })
                .unwrap_or_else(|| http::HeaderValue::from_static("public, max-age=3600")),
        }
    }

    /// Leaves the root location to another resource of the same host (the
    /// path-suffixed one is still served; for a root resource it is the
    /// root location).
    pub(crate) fn without_root(mut self) -> Self {
        self.root = false;
        self
    }

    /// Whether `path` is one of the well-known locations served.
    pub(crate) fn serves(&self, path: &str) -> bool {
        path == self.path || (self.root && path == WELL_KNOWN_PREFIX)
    }

    /// The response to a request for the document. Public, cacheable, and
    /// readable cross-origin (web clients fetch it).
    pub(crate) fn respond(&self, method: &Method) -> Response {
        let builder = Response::builder()
            .header(ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header(ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS");
        let result = match *method {
            Method::GET | Method::HEAD => {
                let builder = builder
                    .status(StatusCode::OK)
                    .header(CONTENT_TYPE, "application/json")
                    .header(CACHE_CONTROL, self.cache_control.clone());
                if *method == Method::GET {
                    builder.body(Body::from(self.body.clone()))
                } else {
                    // RFC 9110 sections 8.6 and 9.3.2: a HEAD answer sends
                    // the Content-Length the GET would have, not that of its
                    // own (absent) body; hyper keeps an explicit one on a
                    // HEAD answer.
                    builder
                        .header(CONTENT_LENGTH, self.body.len())
                        .body(Body::empty())
                }
            }
            Method::OPTIONS => builder
                .status(StatusCode::NO_CONTENT)
                .header(ACCESS_CONTROL_ALLOW_HEADERS, "*")
                .header(ACCESS_CONTROL_MAX_AGE, "86400")
                .body(Body::empty()),
            _ => builder
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(ALLOW, "GET, HEAD, OPTIONS")
                .body(Body::empty()),
        };
        result.unwrap_or_else(|_| {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }

    /// An axum router serving the document at both well-known paths.
    pub(crate) fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let mut router = Router::new();
        let mut paths = vec![self.path.clone()];
        if self.root && self.path != WELL_KNOWN_PREFIX {
            paths.push(WELL_KNOWN_PREFIX.to_owned());
        }
        for path in paths {
            let this = self.clone();
            router = router.route(
                &path,
                axum::routing::any(move |method: Method| {
                    let this = this.clone();
                    async move { this.respond(&method) }
                }),
            );
        }
        router
    }
}
