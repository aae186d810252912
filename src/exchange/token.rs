//! [`ExchangedToken`]: a token obtained for a downstream API.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// An access token for a downstream API, obtained by a
/// [`TokenExchanger`](crate::TokenExchanger). Cheap to clone; its `Debug`
/// output is redacted.
#[derive(Clone)]
pub struct ExchangedToken {
    pub(crate) token: Arc<str>,
    /// When the authorization server says it expires (`expires_in`).
    pub(crate) expires_at: Option<Instant>,
    pub(crate) scope: Option<Arc<str>>,
}

impl ExchangedToken {
    /// The token text, to send as `Authorization: Bearer`. Never log it.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// When the token expires, as the authorization server announced it
    /// (`expires_in`); `None` when it did not, or announced a lifetime
    /// past what [`Instant`] can represent on this platform.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// The scopes granted, when the answer named them (`scope`).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
}

impl fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangedToken")
            .field(
                "token",
                &format_args!("[redacted; {} bytes]", self.token.len()),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}
