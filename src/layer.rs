//! The tower [`Layer`](tower_layer::Layer) that protects any axum (or tower)
//! service: [`AuthLayer`], [`AuthService`] and its future.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use futures_util::future::BoxFuture;
use http::{Method, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::bearer::{Credentials, read_bearer};
use crate::challenge::{ChallengeParams, rejection_response};
use crate::config::{AuthConfig, ExemptRoute};
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::metadata::{MetadataEndpoint, ProtectedResourceMetadata};
use crate::verify::{JwtVerifier, TokenVerifier};

/// Protects a service with OAuth 2.1 bearer tokens and serves the RFC 9728
/// metadata.
///
/// For every request:
/// - the two well-known metadata paths are answered directly, without a token;
/// - exempt routes and CORS preflights (`OPTIONS`, which never carry
///   credentials) pass through;
/// - otherwise the bearer token is read from the `Authorization` header,
///   verified, checked against the required scopes, and the resulting
///   [`AuthContext`] is put in the request extensions; failures get the
///   RFC 6750 challenge.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mcp_oauth2::{AuthConfig, AuthContext, AuthLayer};
///
/// let config = AuthConfig::builder()
///     .issuer("https://auth.example.com")
///     .resource("https://api.example.com/api")
///     .build()?;
/// let app = axum::Router::new()
///     .route("/api", axum::routing::get(|auth: AuthContext| async move {
///         format!("hello {}", auth.subject())
///     }))
///     .layer(AuthLayer::new(config)?);
/// # let _ = app; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

struct Shared {
    verifier: Arc<dyn TokenVerifier>,
    metadata: MetadataEndpoint,
    challenge: ChallengeParams,
    required_scopes: Vec<String>,
    exempt: Vec<ExemptRoute>,
    max_token_bytes: usize,
    document: ProtectedResourceMetadata,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("resource", &self.shared.document.resource)
            .field(
                "resource_metadata",
                &self.shared.challenge.resource_metadata,
            )
            .field("required_scopes", &self.shared.required_scopes)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// A layer verifying JWT access tokens with a [`JwtVerifier`] built from `config`.
    pub fn new(config: AuthConfig) -> Result<Self, ConfigError> {
        let verifier = JwtVerifier::new(&config)?;
        Ok(Self::with_verifier(config, verifier))
    }

    /// A layer using a custom verifier. `config` still provides the
    /// resource, the metadata, the required scopes and the exempt routes.
    pub fn with_verifier(config: AuthConfig, verifier: impl TokenVerifier) -> Self {
        // The challenge names the scopes requests need: the required ones, or
        // else the basic scopes of the metadata (MCP "Scope Selection Strategy").
        let scope = if config.required_scopes.is_empty() {
            config.scopes_supported.join(" ")
        } else {
            config.required_scopes.join(" ")
        };
        Self {
            shared: Arc::new(Shared {
                verifier: Arc::new(verifier),
                metadata: MetadataEndpoint::new(&config),
                challenge: ChallengeParams {
                    resource_metadata: config.resource_metadata_url(),
                    scope,
                },
                required_scopes: config.required_scopes.clone(),
                exempt: config.exempt.clone(),
                max_token_bytes: config.max_token_bytes,
                document: ProtectedResourceMetadata::from_config(&config),
            }),
        }
    }

    /// The metadata document this layer serves.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.shared.document
    }

    /// An axum router serving the metadata at both well-known paths, for
    /// apps that apply the layer to some routes only (`route_layer`).
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        self.shared.metadata.router()
    }

    /// Authenticates a request's headers without a service behind: the
    /// building block of the layer, for custom integrations.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<AuthContext, AuthError> {
        self.shared.authenticate(headers).await
    }
}

impl Shared {
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<AuthContext, AuthError> {
        let token = match read_bearer(headers, self.max_token_bytes)? {
            Credentials::Bearer(token) => token,
            Credentials::None => return Err(AuthErrorKind::MissingToken.into()),
        };
        let ctx = self.verifier.verify(token).await?;
        if !self.required_scopes.iter().all(|s| ctx.has_scope(s)) {
            return Err(AuthError::insufficient_scope(
                self.required_scopes.iter().cloned(),
            ));
        }
        Ok(ctx)
    }

    fn reject(&self, err: &AuthError, method: &Method, path: &str) -> Response {
        let kind = err.kind();
        match kind {
            AuthErrorKind::MissingToken => {
                tracing::debug!(reason = kind.code(), %method, path, "request without a bearer token")
            }
            AuthErrorKind::KeysUnavailable => {
                tracing::warn!(reason = kind.code(), %method, path, "rejected: verification keys unavailable")
            }
            _ => tracing::info!(
                reason = kind.code(),
                status = kind.status().as_u16(),
                %method,
                path,
                "rejected a request"
            ),
        }
        rejection_response(err, &self.challenge)
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let path = req.uri().path();
        if shared.metadata.serves(path) {
            let response = shared.metadata.respond(req.method());
            return Box::pin(async move { Ok(response) });
        }
        if req.method() == Method::OPTIONS || shared.exempt.iter().any(|r| r.matches(path)) {
            return Box::pin(self.inner.call(req));
        }
        // Take the service that was driven to readiness; leave a clone behind
        // (the tower idiom for services called from a boxed future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match shared.authenticate(req.headers()).await {
                Ok(ctx) => {
                    tracing::debug!(
                        subject = ctx.subject(),
                        issuer = ctx.issuer(),
                        "authenticated a request"
                    );
                    // Keep the credential out of Debug output of the request
                    // further down (rmcp logs request parts at trace level).
                    if let Some(v) = req.headers_mut().get_mut(http::header::AUTHORIZATION) {
                        v.set_sensitive(true);
                    }
                    req.extensions_mut().insert(ctx);
                    inner.call(req).await
                }
                Err(err) => Ok(shared.reject(&err, req.method(), req.uri().path())),
            }
        })
    }
}
