//! Verifiers beyond the paved path: [`ChainVerifier`] and [`from_fn`] to
//! compose them, [`IntrospectionVerifier`] and its settings for opaque tokens
//! (RFC 7662). The [`TokenVerifier`] trait, its [`VerifyFuture`] and the
//! [`JwtVerifier`] are exported at the crate root.

pub(crate) mod chain;
pub(crate) mod introspection;
pub(crate) mod jwt;
pub(crate) mod token;
pub(crate) mod token_cache;
#[cfg(test)]
mod vectors;

pub use chain::{ChainVerifier, FnVerifier, from_fn};
pub use introspection::{
    ClientAuthMethod, ClientSecret, IntrospectionSettings, IntrospectionVerifier,
};
pub(crate) use jwt::JwtVerifier;
pub(crate) use token::{TokenVerifier, VerifyFuture};

/// What [`from_config`] builds: the verifier, its JWT verifier, and its
/// introspection verifier when there is one.
pub(crate) type Built = (
    std::sync::Arc<dyn TokenVerifier>,
    JwtVerifier,
    Option<IntrospectionVerifier>,
);

/// The verifier a configuration describes: a [`JwtVerifier`], chained with
/// an [`IntrospectionVerifier`] for opaque tokens when
/// [`AuthConfigBuilder::introspection`](crate::AuthConfigBuilder::introspection)
/// or [`AuthConfigBuilder::issuer_introspection`](crate::AuthConfigBuilder::issuer_introspection)
/// is set. Also returns the JWT verifier and the introspection one, for
/// fetching keys and discovering endpoints when a server starts.
pub(crate) fn from_config(config: &crate::AuthConfig) -> Result<Built, crate::ConfigError> {
    let jwt = JwtVerifier::new(config)?;
    // One policy for both: the introspection verifier shares the JWT one's.
    if IntrospectionVerifier::configured(config) {
        let introspection =
            IntrospectionVerifier::with_policy(config, std::sync::Arc::clone(jwt.policy()))?;
        let chain = ChainVerifier::new()
            .pass_on_unknown_issuer(false)
            .then(jwt.clone())
            .then(introspection.clone());
        Ok((std::sync::Arc::new(chain), jwt, Some(introspection)))
    } else {
        Ok((std::sync::Arc::new(jwt.clone()), jwt, None))
    }
}
