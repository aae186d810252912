//! Errors: [`ConfigError`] at build time, [`AuthError`] at request time.
//!
//! Every request-time rejection has a stable [`AuthErrorKind`] with a reason
//! code ([`AuthErrorKind::code`]) that is used in logs, in the JSON error body
//! and in the response extensions, and a fixed description that never contains
//! token material or attacker-controlled text.

use std::fmt;

use http::StatusCode;

/// A configuration mistake found when a configuration is built, never at the
/// first request. [`ConfigError::field`] names the offending setting (the
/// builder method or the environment variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The setting that is wrong, for example `resource` or `MCP_OAUTH2_ISSUER`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The OAuth error code of a rejection (RFC 6750 section 3.1), or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`: the request is malformed (HTTP 400).
    InvalidRequest,
    /// `invalid_token`: the token is expired, revoked, malformed or not for us (HTTP 401).
    InvalidToken,
    /// `insufficient_scope`: the token lacks a scope the request needs (HTTP 403).
    InsufficientScope,
    /// `temporarily_unavailable`: the keys needed to verify tokens cannot be
    /// obtained right now (HTTP 503). Not an RFC 6750 code; used in the JSON body only.
    TemporarilyUnavailable,
    /// `access_denied`: the server refuses this operation to this caller
    /// whatever its scopes (HTTP 403; a computed requirement refused it).
    /// Not an RFC 6750 code: JSON body only, no challenge, so clients do not
    /// start a step-up that cannot succeed.
    AccessDenied,
    /// `server_error`: the server could not decide (HTTP 500; a computed
    /// requirement failed). JSON body only, no challenge.
    ServerError,
    /// `invalid_dpop_proof`: the DPoP proof is missing, malformed, invalid
    /// for this request, or made with another key than the token is bound to
    /// (HTTP 401, RFC 9449 section 7.1).
    InvalidDpopProof,
    /// `use_dpop_nonce`: the DPoP proof must carry the server nonce sent in
    /// the `DPoP-Nonce` header (HTTP 401, RFC 9449 section 9).
    UseDpopNonce,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

macro_rules! auth_error_kinds {
    ($( $(#[$doc:meta])* $variant:ident => ($code:literal, $error:ident, $desc:literal), )*) => {
        /// Why a request was not authorized. Each kind maps to one HTTP status,
        /// one OAuth error code and one fixed description.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum AuthErrorKind {
            /// No `Authorization: Bearer` credentials (HTTP 401 without an error code,
            /// RFC 6750 section 3.1).
            MissingToken,
            $( $(#[$doc])* $variant, )*
        }

        impl AuthErrorKind {
            /// The stable reason code, used in logs and the JSON body (`reason`).
            pub fn code(self) -> &'static str {
                match self {
                    Self::MissingToken => "missing_token",
                    $( Self::$variant => $code, )*
                }
            }

            /// The OAuth error code, `None` for [`AuthErrorKind::MissingToken`].
            pub fn error_code(self) -> Option<ErrorCode> {
                match self {
                    Self::MissingToken => None,
                    $( Self::$variant => Some(ErrorCode::$error), )*
                }
            }

            /// The fixed, human-readable `error_description`.
            pub fn description(self) -> &'static str {
                match self {
                    // Neutral on the scheme: with DPoP required, Bearer is refused.
                    Self::MissingToken => "Authorization with an access token is required",
                    $( Self::$variant => $desc, )*
                }
            }

            /// Every kind, for the tests that check the whole table.
            #[cfg(test)]
            pub(crate) const ALL: &'static [Self] = &[Self::MissingToken, $( Self::$variant, )*];

            /// How many kinds there are (`kind as usize` is below it).
            pub(crate) const COUNT: usize = 1 + [$( stringify!($variant), )*].len();
        }
    };
}

auth_error_kinds! {
    /// More than one `Authorization` header.
    MultipleAuthorizationHeaders => ("multiple_authorization_headers", InvalidRequest,
        "Send exactly one Authorization header"),
    /// The `Authorization` header is not valid `Bearer <b64token>` syntax
    /// (RFC 6750 section 2.1), nor `DPoP <b64token>` (RFC 9449 section 7.1)
    /// when DPoP is on.
    MalformedAuthorizationHeader => ("malformed_authorization_header", InvalidRequest,
        "The Authorization header is malformed: send the scheme, then spaces (no tab), then the token"),
    /// The URI query names an `access_token` parameter (RFC 6750 section
    /// 2.3, which this server never supports: OAuth 2.1 section 5.2), with
    /// or without a token in the header (RFC 6750 section 2: one method
    /// only).
    TokenInQuery => ("token_in_query", InvalidRequest,
        "Access tokens are accepted only in the Authorization header, never in the URI query"),
    /// The token is longer than the configured maximum.
    TokenTooLarge => ("token_too_large", InvalidToken, "The access token is too large"),
    /// The token is not a compact JWS (three base64url parts).
    MalformedToken => ("malformed_token", InvalidToken, "The access token is malformed"),
    /// The token is encrypted (JWE); only signed access tokens are accepted.
    EncryptedToken => ("encrypted_token", InvalidToken, "Encrypted tokens are not accepted"),
    /// The JOSE header violates policy (`crit`, `b64`, `cty`, ...).
    UnsupportedHeader => ("unsupported_header", InvalidToken,
        "The token header uses an unsupported or forbidden parameter"),
    /// The `typ` header is not an accepted access-token type (RFC 9068 section 2.1).
    InvalidType => ("invalid_type", InvalidToken, "The token's typ header does not mark an access token this server accepts"),
    /// The claims say the token is a refresh token or an ID token
    /// (`token_use`, `token_type` or Keycloak's `typ` claim), never an
    /// access token, whatever its audience (RFC 6749 section 1.5, RFC 7662
    /// section 2.2, OpenID Connect Core section 2).
    NotAnAccessToken => ("not_an_access_token", InvalidToken,
        "The token is not an access token"),
    /// `alg` is not on the configured allowlist (RFC 8725 section 3.1).
    DisallowedAlgorithm => ("disallowed_algorithm", InvalidToken,
        "The token's signing algorithm is not accepted"),
    /// No key in the issuer's key set matches `kid` and the algorithm.
    UnknownKey => ("unknown_key", InvalidToken, "No matching verification key for this token"),
    /// The signature does not verify.
    InvalidSignature => ("invalid_signature", InvalidToken, "The token signature is invalid"),
    /// `iss` is missing, not a string, or not a configured issuer.
    InvalidIssuer => ("invalid_issuer", InvalidToken, "The token issuer is not accepted"),
    /// The issuer fits a tenant template but the tenant is not a tenant id
    /// (1 to 64 of `[A-Za-z0-9_-]`: no `/`, `.`, `%` or other escape), or a
    /// tenant issuer without a placeholder got no valid tenant claim.
    TenantInvalid => ("tenant_invalid", InvalidToken,
        "The token does not name a valid tenant"),
    /// A well-formed tenant of a tenant template that is not on the
    /// allowlist: a cross-tenant attempt, refused before any network call.
    TenantNotAllowed => ("tenant_not_allowed", InvalidToken,
        "The token's tenant is not accepted"),
    /// The tenant claim (`tid`, `org_id`, ...) is missing or disagrees with
    /// the tenant of the issuer: a cross-tenant attempt.
    TenantMismatch => ("tenant_mismatch", InvalidToken,
        "The token's tenant claim is missing or does not match its issuer"),
    /// `aud` is missing or does not contain this resource (RFC 8707).
    InvalidAudience => ("invalid_audience", InvalidToken,
        "The token was not issued for this resource"),
    /// `exp` is in the past (beyond the leeway).
    Expired => ("token_expired", InvalidToken, "The access token expired"),
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid => ("token_not_yet_valid", InvalidToken, "The access token is not valid yet"),
    /// A required claim is missing or has the wrong type.
    InvalidClaims => ("invalid_claims", InvalidToken,
        "The access token is missing a required claim or a claim has the wrong type"),
    /// The JOSE header or the claims set repeats a member name (RFC 7515
    /// section 4, RFC 7519 section 4): refused rather than letting one copy win.
    DuplicateMember => ("duplicate_member", InvalidToken,
        "The token repeats a header parameter or a claim"),
    /// `exp` lies further ahead than the configured maximum token lifetime.
    LifetimeTooLong => ("token_lifetime_too_long", InvalidToken,
        "The access token's lifetime exceeds the accepted maximum"),
    /// The token is bound to a key (`cnf`, RFC 7800 / RFC 9449) that the
    /// request does not prove: a DPoP-bound token presented as a plain
    /// Bearer token, or a binding this server cannot check (`cnf` with
    /// anything but a `jkt` string: RFC 8705 `x5t#S256`, alone or beside
    /// `jkt`).
    SenderConstrainedToken => ("sender_constrained_token", InvalidToken,
        "The access token is bound to a key that this request does not prove: send it with the DPoP scheme and a proof of its key where the server accepts DPoP (its metadata lists dpop_signing_alg_values_supported); where it does not, or for a token bound another way (a certificate), get an unbound token for this resource"),
    /// `Authorization: DPoP` without a `DPoP` proof header (RFC 9449 section 7.1).
    DpopProofMissing => ("dpop_proof_missing", InvalidDpopProof,
        "A DPoP proof header is required with the DPoP authorization scheme"),
    /// More than one `DPoP` header (RFC 9449 section 4.3).
    MultipleDpopProofs => ("multiple_dpop_proofs", InvalidDpopProof,
        "Send exactly one DPoP header"),
    /// The DPoP proof is longer than the cap.
    DpopProofTooLarge => ("dpop_proof_too_large", InvalidDpopProof,
        "The DPoP proof is too large"),
    /// The DPoP proof is not a compact JWS of JSON objects, or repeats a member.
    DpopProofMalformed => ("dpop_proof_malformed", InvalidDpopProof,
        "The DPoP proof is not a well-formed JWT"),
    /// The DPoP proof's header holds a member this server does not honour
    /// (`crit`, `b64`, `cty`, `enc`, `zip`), as an access token's may not.
    DpopUnsupportedHeader => ("dpop_unsupported_header", InvalidDpopProof,
        "The DPoP proof's header uses a member this server does not support (crit, b64, cty, enc, zip)"),
    /// The DPoP proof's `typ` is not `dpop+jwt`.
    DpopInvalidType => ("dpop_invalid_type", InvalidDpopProof,
        "The DPoP proof is not of type dpop+jwt"),
    /// The DPoP proof's `alg` is not an accepted asymmetric algorithm.
    DpopDisallowedAlgorithm => ("dpop_disallowed_algorithm", InvalidDpopProof,
        "The DPoP proof's signing algorithm is not accepted"),
    /// The DPoP proof's `jwk` is missing, malformed or does not fit its `alg`.
    DpopInvalidKey => ("dpop_invalid_key", InvalidDpopProof,
        "The DPoP proof's key is missing, malformed or does not fit its algorithm"),
    /// The DPoP proof's `jwk` contains private key material.
    DpopPrivateKey => ("dpop_private_key", InvalidDpopProof,
        "The DPoP proof's key contains private key material"),
    /// The DPoP proof's signature does not verify with its `jwk`.
    DpopInvalidSignature => ("dpop_invalid_signature", InvalidDpopProof,
        "The DPoP proof signature is invalid"),
    /// `htm` is not the request method.
    DpopMethodMismatch => ("dpop_method_mismatch", InvalidDpopProof,
        "The DPoP proof was made for another HTTP method"),
    /// `htu` is not the request URI.
    DpopUriMismatch => ("dpop_uri_mismatch", InvalidDpopProof,
        "The DPoP proof was made for another URI"),
    /// `iat` is older than the window.
    DpopProofExpired => ("dpop_proof_expired", InvalidDpopProof,
        "The DPoP proof is too old"),
    /// `iat` is further ahead than the window.
    DpopProofNotYetValid => ("dpop_proof_not_yet_valid", InvalidDpopProof,
        "The DPoP proof was issued in the future"),
    /// `jti` or `iat` is missing or has the wrong type.
    DpopInvalidClaims => ("dpop_invalid_claims", InvalidDpopProof,
        "The DPoP proof is missing a required claim or a claim has the wrong type"),
    /// `ath` is missing or is not the hash of the presented access token.
    DpopAthMismatch => ("dpop_ath_mismatch", InvalidDpopProof,
        "The DPoP proof is not bound to this access token"),
    /// The proof key is not the key the token is bound to (`cnf.jkt`).
    DpopKeyMismatch => ("dpop_key_mismatch", InvalidDpopProof,
        "The DPoP proof key is not the key the access token is bound to"),
    /// The proof (`jti`) was already used within its window.
    DpopReplay => ("dpop_replay", InvalidDpopProof, "The DPoP proof was already used"),
    /// The proof carries no server nonce, and this server demands one.
    DpopNonceRequired => ("dpop_nonce_required", UseDpopNonce,
        "The DPoP proof must carry the server nonce"),
    /// The proof's nonce is not one this server issued, or it expired.
    DpopNonceInvalid => ("dpop_nonce_invalid", UseDpopNonce,
        "The DPoP nonce is invalid or expired"),
    /// A token not bound to a key was presented with `Authorization: DPoP`.
    DpopTokenNotBound => ("dpop_token_not_bound", InvalidToken,
        "The access token is not bound to a key"),
    /// A Bearer token was presented where only DPoP-bound tokens are accepted.
    DpopRequired => ("dpop_required", InvalidToken,
        "This resource accepts DPoP-bound access tokens only"),
    /// The token was rejected by a custom verifier.
    Rejected => ("token_rejected", InvalidToken, "The access token was rejected"),
    /// The token lacks a required scope.
    InsufficientScope => ("insufficient_scope", InsufficientScope,
        "The access token lacks a required scope"),
    /// The issuer's keys or metadata could not be fetched and no usable copy is cached.
    KeysUnavailable => ("keys_unavailable", TemporarilyUnavailable,
        "Token verification keys are temporarily unavailable"),
    /// The request reached a handler that needs an [`AuthContext`](crate::AuthContext)
    /// but no authentication layer ran (a server configuration error): 500,
    /// no challenge (a new token would not help; found from outside: a 401
    /// `invalid_token` sent clients to sign in again, and blamed their token).
    NotAuthenticated => ("not_authenticated", ServerError,
        "The request reached a handler that needs the caller, but no authentication ran for it (a server configuration error)"),
    /// The 2026-07-28 `Mcp-Method` / `Mcp-Name` headers contradict the JSON-RPC body.
    McpHeaderMismatch => ("mcp_header_mismatch", InvalidRequest,
        "The Mcp-Method or Mcp-Name header does not match the request body"),
    /// Introspection says the token is not active (RFC 7662 section 2.2).
    TokenInactive => ("token_inactive", InvalidToken, "The access token is not active"),
    /// The introspection endpoint could not be reached or answered badly.
    IntrospectionUnavailable => ("introspection_unavailable", TemporarilyUnavailable,
        "Token introspection is temporarily unavailable"),
    /// The token is not a JWT, and introspection, the only way left to
    /// verify it, is configured without an endpoint and the issuer's
    /// metadata names none (`introspection_endpoint`): an answer of the
    /// issuer, not an outage. Read again every five minutes.
    IntrospectionNotOffered => ("introspection_not_offered", InvalidToken,
        "The access token is not a JWT, and its authorization server offers no introspection"),
    /// The token verifier did not decide within the verification deadline
    /// ([`AuthConfigBuilder::verify_timeout`](crate::AuthConfigBuilder::verify_timeout)):
    /// the request is refused (fail closed) and may be retried.
    VerificationTimeout => ("verification_timeout", TemporarilyUnavailable,
        "The access token could not be verified in time"),
    /// The token verifier panicked (a defect of a custom
    /// [`TokenVerifier`](crate::TokenVerifier)): HTTP 500 `server_error`,
    /// the request is refused and the server keeps serving.
    VerifierFailed => ("verifier_failed", ServerError,
        "The server could not verify the access token"),
    /// The shared store (Redis) that decides this request could not be
    /// reached in time: a DPoP proof's first use cannot be checked, so it
    /// is refused (fail closed).
    StoreUnavailable => ("store_unavailable", TemporarilyUnavailable,
        "Shared server state is temporarily unavailable"),
    /// A computed scope requirement
    /// ([`AuthConfigBuilder::tool_scopes_with`](crate::AuthConfigBuilder::tool_scopes_with))
    /// refused the call: HTTP 403 `access_denied`, without a challenge.
    RequirementRefused => ("requirement_refused", AccessDenied,
        "The server does not allow this operation with these arguments"),
    /// A computed scope requirement panicked or returned an invalid scope:
    /// HTTP 500 `server_error`, the call is not dispatched.
    RequirementFailed => ("requirement_failed", ServerError,
        "The server could not decide which scopes this operation needs"),
    /// A legacy session request reuses the JSON-RPC id of a request of the
    /// session still in flight (MCP: an id is never reused in a session;
    /// rmcp would route one's answer to the other).
    RequestIdInUse => ("request_id_in_use", InvalidRequest,
        "The request id is in use by another request of this session"),
    /// Two requests of one legacy session POST (a batch) carry the same
    /// JSON-RPC id.
    RequestIdRepeated => ("request_id_repeated", InvalidRequest,
        "Two requests of this body carry the same id"),
    /// A legacy session holds too many requests in flight (or ids whose
    /// answers were never read to their end).
    TooManyRequestsInFlight => ("too_many_requests_in_flight", InvalidRequest,
        "This session has too many requests in flight"),
    /// The request body could not be read (a broken or aborted body; one
    /// over the size limit is a 413 `body_too_large` instead).
    BodyUnreadable => ("body_unreadable", InvalidRequest,
        "The request body could not be read"),
}

impl AuthErrorKind {
    /// The HTTP status this rejection is answered with.
    pub fn status(self) -> StatusCode {
        match self.error_code() {
            None => StatusCode::UNAUTHORIZED,
            Some(ErrorCode::InvalidRequest) => StatusCode::BAD_REQUEST,
            Some(ErrorCode::InvalidToken) => StatusCode::UNAUTHORIZED,
            Some(ErrorCode::InsufficientScope) => StatusCode::FORBIDDEN,
            Some(ErrorCode::TemporarilyUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
            Some(ErrorCode::AccessDenied) => StatusCode::FORBIDDEN,
            Some(ErrorCode::ServerError) => StatusCode::INTERNAL_SERVER_ERROR,
            Some(ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce) => StatusCode::UNAUTHORIZED,
        }
    }
}

/// A request-time rejection: cheap to move (one pointer), with a typed
/// [`kind`](AuthError::kind) and an optional underlying cause.
///
/// Neither `Display` nor `Debug` ever shows token material.
pub struct AuthError(Box<Inner>);

struct Inner {
    kind: AuthErrorKind,
    required_scopes: Vec<String>,
    /// The challenge parameters of the layer that returned this error
    /// ([`AuthLayer::authenticate`](crate::AuthLayer::authenticate)).
    challenge: Option<ChallengeParams>,
    /// What the token claimed, for the operator's audit event.
    diagnosis: Option<Box<Diagnosis>>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// The refused request used the `DPoP` scheme: the challenge names the
    /// error on the `DPoP` challenge (RFC 9449 section 7.1).
    dpop_scheme: bool,
    /// The refusal judged an answer about the token (an introspection
    /// endpoint's), not the token's own bytes: the same token may be
    /// answered otherwise later, so the layer does not remember it.
    judged_an_answer: bool,
}

/// What replaces a value that looks like token material.
pub(crate) const REDACTED: &str = "[redacted]";

/// The longest run of base64url characters copied from a request's text
/// into an event: a JWT's signature alone (342 characters for RS256, 86
/// for ES256) or an opaque token has no dots to give it away (found from
/// outside: a signature sent as `Mcp-Name` was written, cut to 128).
pub(crate) const MAX_BASE64URL_RUN: usize = 63;

/// Whether `bytes` hold more than [`MAX_BASE64URL_RUN`] base64url
/// characters in a row.
pub(crate) fn holds_a_long_base64url_run(bytes: &[u8]) -> bool {
    let mut run = 0;
    for &b in bytes {
        if is_base64url(b) {
            run += 1;
            if run > MAX_BASE64URL_RUN {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// The shortest run of base64url characters that [`holds_a_random_run`]
/// judges: 32, the length of 24 random bytes in base64url and of a Stripe
/// key (`sk_live_` and 24).
pub(crate) const RANDOM_RUN: usize = 32;

/// Whether `bytes` hold a run of at least [`RANDOM_RUN`] base64url
/// characters that looks like random bytes: a digit in it, and its letters
/// switching case at least four times (found from outside: Ory's opaque
/// tokens, `ory_at_` and runs of 43, an HS256 signature, 43, a GitHub
/// token, 40, passed the longer rule). Ids of one case with a prefix of
/// another (`request_` and a ULID, `req-` and an uppercase UUID, Twilio's
/// `RQ` and 32 hex digits), hex digests and words in camel case without a
/// digit are not such runs. A heuristic, like the longer rule: a random
/// token shorter than 32 characters, or of one case (hex), is not caught.
pub(crate) fn holds_a_random_run(bytes: &[u8]) -> bool {
    bytes
        .split(|b| !is_base64url(*b))
        .filter(|run| run.len() >= RANDOM_RUN)
        .any(|run| {
            let mut switches = 0;
            let mut last_upper = None;
            for b in run.iter().filter(|b| b.is_ascii_alphabetic()) {
                let upper = b.is_ascii_uppercase();
                if last_upper.is_some_and(|last| last != upper) {
                    switches += 1;
                }
                last_upper = Some(upper);
            }
            switches >= 4 && run.iter().any(u8::is_ascii_digit)
        })
}

/// The fewest distinct byte values a secret may hold (see
/// [`secret_weakness`]).
const SECRET_MIN_DISTINCT: usize = 6;

/// The longest proper prefix that is also a suffix, of every prefix of
/// `bytes` (the prefix function).
fn borders(bytes: &[u8]) -> Vec<usize> {
    let mut border: Vec<usize> = Vec::with_capacity(bytes.len());
    let mut k = 0;
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            while k > 0 && bytes.get(k) != Some(b) {
                k = border.get(k - 1).copied().unwrap_or(0);
            }
            if bytes.get(k) == Some(b) {
                k += 1;
            }
        }
        border.push(k);
    }
    border
}

/// Whether a prefix of `len` bytes (whose prefix function is `border`)
/// missing at most [`SECRET_TAIL`] bytes repeats its first half or less:
/// `pattern x 3 + "XY"` is as guessable as `pattern x 3` (found from
/// outside: a two-byte tail passed).
fn nearly_periodic(len: usize, border: &[usize]) -> bool {
    border.iter().enumerate().any(|(i, b)| {
        let prefix = i + 1;
        prefix >= 2 && prefix + SECRET_TAIL >= len && (prefix - b) * 2 <= prefix
    })
}

/// The bytes a secret may hold besides a repeated pattern and still be
/// refused as repeating it.
const SECRET_TAIL: usize = 8;

/// Why `secret`, meant to be random bytes, is guessable, or `None`: a short
/// pattern repeated (`aaaa...`, `abab...`, `abcabc...`: the secret, but
/// for up to eight bytes at either end, repeats its first half or less),
/// or fewer than six distinct bytes
/// (`0000...0001`). Found from outside: only one repeated byte was refused,
/// and `abab...` sealed DPoP nonces. A random secret passes, raw or spelled
/// in hex, base64 or digits: 32 hex digits hold fewer than six distinct
/// ones with a probability under 10^-12, 32 decimal digits under 10^-7.
/// No crate judges this (password-strength crates score words and
/// keyboards, not key bytes); the smallest period comes from the prefix
/// function (Knuth-Morris-Pratt), linear in the secret's length.
pub(crate) fn secret_weakness(secret: &[u8]) -> Option<&'static str> {
    let mut seen = [false; 256];
    for b in secret {
        if let Some(slot) = seen.get_mut(usize::from(*b)) {
            *slot = true;
        }
    }
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct == 1 {
        return Some("is one byte repeated");
    }
    let border = borders(secret);
    if nearly_periodic(secret.len(), &border) {
        return Some("repeats a short pattern");
    }
    // The same from the end: a pattern repeated after a few other bytes.
    let reversed: Vec<u8> = secret.iter().rev().copied().collect();
    if nearly_periodic(reversed.len(), &borders(&reversed)) {
        return Some("repeats a short pattern");
    }
    if distinct < SECRET_MIN_DISTINCT {
        return Some("holds fewer than six distinct bytes");
    }
    // A counter (`00 01 02 ...`, `64 65 66 ...`, every other byte): few
    // distinct steps from one byte to the next, where random bytes take
    // nearly as many steps as there are bytes (found from outside: the
    // bytes 0 to 31 were taken as a secret).
    let mut steps = [false; 256];
    for pair in secret.windows(2) {
        if let [a, b] = pair
            && let Some(slot) = steps.get_mut(usize::from(b.wrapping_sub(*a)))
        {
            *slot = true;
        }
    }
    if steps.iter().filter(|s| **s).count() < SECRET_MIN_DISTINCT {
        return Some("counts up or down in a few steps");
    }
    None
}

/// Whether `bytes` hold something that looks like a JWS or JWE anywhere
/// in them: `eyJ` (the base64url of `{"`) starting a run of at least
/// [`JWT_HEADER_MIN`] base64url characters (the shortest JOSE header,
/// `{"a":1}`, is ten), then a dot and another base64url character. Never
/// copied into an event, whatever field carried it, and wherever in it
/// (found from outside: a `sub` of `user:<token>` was written whole,
/// signature included, where a `sub` of `<token>` alone was redacted).
pub(crate) fn looks_like_a_jwt(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"eyJ").any(|at| {
        let rest = bytes.get(at..).unwrap_or_default();
        let head = rest.iter().take_while(|b| is_base64url(**b)).count();
        head >= JWT_HEADER_MIN
            && rest.get(head) == Some(&b'.')
            && rest.get(head + 1).is_some_and(|b| is_base64url(*b))
    })
}

/// Whether `b` is a character of the base64url alphabet without padding
/// (RFC 4648, section 5): `A-Z a-z 0-9 - _`. Token parts, key ids, tenant
/// ids and the log's redaction all read this one alphabet.
pub(crate) fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
}

/// The fewest base64url characters of a JOSE header that
/// [`looks_like_a_jwt`] takes for one.
const JWT_HEADER_MIN: usize = 10;

/// What a refused token claimed, for the operator (audit events only, never
/// the client): its unverified `iss` when that issuer is not trusted, its
/// unverified `aud` when it does not name this server. Values are cut to
/// [`Diagnosis::MAX_LEN`] characters of printable ASCII, at most
/// [`Diagnosis::MAX_VALUES`] audiences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Diagnosis {
    /// A digest of the `iss` of a token from an issuer this server does
    /// not trust (`sha256:` and 16 hex digits): the claim is the sender's
    /// text, so only its digest is logged, enough to group attempts and to
    /// check a suspected issuer against it.
    pub(crate) untrusted_issuer: Option<String>,
    /// That issuer equals a trusted one but for a trailing `/` (a setting
    /// spelled otherwise than the issuer names itself, found from
    /// outside: every token refused, and the digest alone did not show
    /// why).
    pub(crate) issuer_slash: bool,
    /// The `aud` values of a token refused for its audience.
    pub(crate) audience: Vec<String>,
    /// That token names no client (`client_id`, `azp`, `cid`, `appid`):
    /// it may be an OpenID Connect ID token, whose audience is its client's
    /// id (found from outside: the audience hint led an operator to accept
    /// that id, and ID tokens passed).
    pub(crate) names_no_client: bool,
    /// For `invalid_claims`: which claim, and what is wrong with it (the
    /// audit event's `hint`; found from outside: a refused scope claim
    /// named nothing, so an operator could not tell which claim failed).
    pub(crate) claim_hint: Option<&'static str>,
}

impl Diagnosis {
    /// Longest value kept.
    pub(crate) const MAX_LEN: usize = 200;
    /// Most audience values kept.
    pub(crate) const MAX_VALUES: usize = 8;

    /// `value` cut to [`MAX_LEN`](Self::MAX_LEN) characters, anything but
    /// printable ASCII replaced by `?`.
    /// The digest of a claimed issuer (see `untrusted_issuer`).
    pub(crate) fn digest(value: &str) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
        let mut out = String::from("sha256:");
        for b in digest.as_ref().iter().take(8) {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    pub(crate) fn clean(value: &str) -> String {
        if looks_like_a_jwt(value.as_bytes()) {
            return REDACTED.to_owned();
        }
        value
            .chars()
            .take(Self::MAX_LEN)
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    }
}

impl AuthError {
    /// A rejection of the given kind.
    pub fn new(kind: AuthErrorKind) -> Self {
        Self(Box::new(Inner {
            kind,
            required_scopes: Vec::new(),
            challenge: None,
            diagnosis: None,
            source: None,
            dpop_scheme: false,
            judged_an_answer: false,
        }))
    }

    /// This refusal judged an answer about the token (an introspection
    /// endpoint's), which can change, rather than the token's bytes.
    pub(crate) fn judging_an_answer(mut self) -> Self {
        self.0.judged_an_answer = true;
        self
    }

    /// Whether this refusal judged an answer about the token rather than
    /// the token's bytes (see [`judging_an_answer`](Self::judging_an_answer)).
    pub(crate) fn judged_an_answer(&self) -> bool {
        self.0.judged_an_answer
    }

    /// A rejection with an underlying cause (kept as a boxed `source`). The
    /// cause must not contain token material.
    pub fn with_source(
        kind: AuthErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let mut err = Self::new(kind);
        err.0.source = Some(source.into());
        err
    }

    /// An `insufficient_scope` rejection naming every scope the operation needs.
    pub fn insufficient_scope<I, S>(required: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut err = Self::new(AuthErrorKind::InsufficientScope);
        err.0.required_scopes = required.into_iter().map(Into::into).collect();
        err
    }

    /// What went wrong.
    pub fn kind(&self) -> AuthErrorKind {
        self.0.kind
    }

    /// For `insufficient_scope`: every scope the operation needs.
    pub fn required_scopes(&self) -> &[String] {
        &self.0.required_scopes
    }

    /// The same error carrying a layer's challenge parameters, rendered by
    /// its `IntoResponse` (in `challenge.rs`).
    pub(crate) fn with_challenge(mut self, params: &ChallengeParams) -> Self {
        self.0.challenge = Some(params.clone());
        self
    }

    /// The same error with what the token claimed, for the audit event.
    pub(crate) fn with_diagnosis(mut self, diagnosis: Diagnosis) -> Self {
        self.0.diagnosis = Some(Box::new(diagnosis));
        self
    }

    /// The same error without what the token claimed.
    pub(crate) fn without_diagnosis(mut self) -> Self {
        self.0.diagnosis = None;
        self
    }

    /// What the token claimed, when the refusal recorded it.
    pub(crate) fn diagnosis(&self) -> Option<&Diagnosis> {
        self.0.diagnosis.as_deref()
    }

    /// The challenge parameters of the layer that returned this error, if any.
    pub(crate) fn challenge(&self) -> Option<&ChallengeParams> {
        self.0.challenge.as_ref()
    }

    /// The same error, marked as the refusal of a request made with the
    /// `DPoP` scheme when `dpop` (RFC 9449 section 7.1: its error goes on
    /// the `DPoP` challenge).
    pub(crate) fn on_dpop_scheme(mut self, dpop: bool) -> Self {
        self.0.dpop_scheme |= dpop;
        self
    }

    /// Whether the refused request used the `DPoP` scheme.
    pub(crate) fn is_dpop_scheme(&self) -> bool {
        self.0.dpop_scheme
    }
}

/// What a rejection response needs to know about the protected resource
/// (rendered in `challenge.rs`). [`AuthLayer::authenticate`](crate::AuthLayer::authenticate)
/// attaches its layer's parameters to the errors it returns, so that the
/// error's `IntoResponse` renders the same challenge as the layer.
#[derive(Debug, Clone)]
pub(crate) struct ChallengeParams {
    /// The RFC 9728 metadata URL.
    pub(crate) resource_metadata: String,
    /// Space-separated scopes that requests need by default.
    pub(crate) scope: String,
    /// The `algs` of the `DPoP` challenge (RFC 9449 section 7.1), `None`
    /// when DPoP is off.
    pub(crate) dpop_algs: Option<Box<str>>,
    /// DPoP is required: the `DPoP` challenge alone, no `Bearer` one.
    pub(crate) dpop_required: bool,
    /// The `WWW-Authenticate` values of each kind under these parameters,
    /// rendered on first use (a flood of bad tokens answers the same
    /// challenge each time; building it was an eighth of a refusal's work).
    pub(crate) rendered: std::sync::Arc<RenderedChallenges>,
}

/// One slot per [`AuthErrorKind`], by its position in the enum, for a
/// request without the `DPoP` scheme; then one per kind for a request with
/// it (its error is on the `DPoP` challenge).
#[derive(Debug)]
pub(crate) struct RenderedChallenges(
    [std::sync::OnceLock<Box<[http::HeaderValue]>>; 2 * AuthErrorKind::COUNT],
);

impl Default for RenderedChallenges {
    fn default() -> Self {
        Self(std::array::from_fn(|_| std::sync::OnceLock::new()))
    }
}

impl RenderedChallenges {
    /// Whether `kind`'s values were rendered (for the tests).
    #[cfg(test)]
    pub(crate) fn is_rendered(&self, kind: AuthErrorKind, dpop_scheme: bool) -> bool {
        self.0
            .get(Self::slot(kind, dpop_scheme))
            .is_some_and(|s| s.get().is_some())
    }

    fn slot(kind: AuthErrorKind, dpop_scheme: bool) -> usize {
        kind as usize + if dpop_scheme { AuthErrorKind::COUNT } else { 0 }
    }

    /// The values of `kind` for a request with or without the `DPoP`
    /// scheme, made by `render` the first time.
    pub(crate) fn get_or_render(
        &self,
        kind: AuthErrorKind,
        dpop_scheme: bool,
        render: impl FnOnce() -> Option<Box<[http::HeaderValue]>>,
    ) -> Option<std::borrow::Cow<'_, [http::HeaderValue]>> {
        use std::borrow::Cow;
        // Always a slot: there are `2 * COUNT` of them, two per kind.
        let Some(slot) = self.0.get(Self::slot(kind, dpop_scheme)) else {
            return render().map(|v| Cow::Owned(v.into_vec()));
        };
        if let Some(values) = slot.get() {
            return Some(Cow::Borrowed(values));
        }
        let values = render()?;
        Some(Cow::Borrowed(slot.get_or_init(|| values)))
    }
}

impl ChallengeParams {
    /// The parameters of one protected resource.
    pub(crate) fn new(
        resource_metadata: String,
        scope: String,
        dpop_algs: Option<Box<str>>,
        dpop_required: bool,
    ) -> Self {
        Self {
            resource_metadata,
            scope,
            dpop_algs,
            dpop_required,
            rendered: std::sync::Arc::default(),
        }
    }
}

impl From<AuthErrorKind> for AuthError {
    fn from(kind: AuthErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AuthError");
        d.field("kind", &self.0.kind);
        if !self.0.required_scopes.is_empty() {
            d.field("required_scopes", &self.0.required_scopes);
        }
        if let Some(source) = &self.0.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0.kind.description(), self.0.kind.code())
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An error of a runtime operation of the crate (serving, prefetching keys).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Binding or serving failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The issuer's metadata or key set could not be fetched.
    #[error("verification keys unavailable: {0}")]
    KeysUnavailable(String),
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::error::Error as _;

    use super::*;

    // RFC 6750 section 3.1: each error code has its status; the reason codes
    // are stable and distinct (they key the metrics and the logs).
    #[test]
    fn every_kind_has_one_status_one_code_and_a_distinct_reason() {
        let mut reasons = HashSet::new();
        for &kind in AuthErrorKind::ALL {
            assert!(reasons.insert(kind.code()), "{kind:?}: reason reused");
            assert!(
                kind.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{kind:?}"
            );
            let expected = match kind.error_code() {
                None => StatusCode::UNAUTHORIZED,
                Some(ErrorCode::InvalidRequest) => StatusCode::BAD_REQUEST,
                Some(ErrorCode::InvalidToken) => StatusCode::UNAUTHORIZED,
                Some(ErrorCode::InsufficientScope) => StatusCode::FORBIDDEN,
                Some(ErrorCode::TemporarilyUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
                Some(ErrorCode::AccessDenied) => StatusCode::FORBIDDEN,
                Some(ErrorCode::ServerError) => StatusCode::INTERNAL_SERVER_ERROR,
                Some(ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce) => {
                    StatusCode::UNAUTHORIZED
                }
            };
            assert_eq!(kind.status(), expected, "{kind:?}");
            assert_eq!(AuthError::from(kind).kind(), kind);
        }
        assert_eq!(AuthErrorKind::MissingToken.error_code(), None);
        assert_eq!(
            AuthErrorKind::McpHeaderMismatch
                .error_code()
                .map(ErrorCode::as_str),
            Some("invalid_request")
        );
        assert_eq!(
            AuthErrorKind::IntrospectionUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    // "Every bad input gets a precise, documented error": the security
    // model's table lists every kind with its status, error code and
    // description, exactly as the code answers.
    #[test]
    fn the_security_model_documents_every_reason() {
        let doc = include_str!("../docs/security-model.md");
        for &kind in AuthErrorKind::ALL {
            let error = kind
                .error_code()
                .map_or_else(|| "(none)".to_owned(), |c| format!("`{}`", c.as_str()));
            let row = format!(
                "| `{}` | {} | {} | {} |",
                kind.code(),
                kind.status().as_u16(),
                error,
                kind.description()
            );
            assert!(doc.contains(&row), "docs/security-model.md lacks: {row}");
        }
    }

    // The descriptions go into a quoted-string header parameter and a JSON
    // string without escaping (challenge.rs): printable ASCII, no `"` or `\`.
    #[test]
    fn every_description_is_safe_unescaped() {
        for &kind in AuthErrorKind::ALL {
            let d = kind.description();
            assert!(!d.is_empty(), "{kind:?}");
            assert!(
                d.bytes()
                    .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'),
                "{kind:?}: {d}"
            );
        }
    }

    // A cause is kept as the standard `source`, shown by `Debug`, never by
    // `Display` (which is the fixed description and the reason code).
    #[test]
    fn source_is_kept_and_display_is_fixed() {
        let io = std::io::Error::other("connection refused by 127.0.0.1:9");
        let err = AuthError::with_source(AuthErrorKind::KeysUnavailable, io);
        assert_eq!(
            err.to_string(),
            "Token verification keys are temporarily unavailable (keys_unavailable)"
        );
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("connection refused by 127.0.0.1:9")
        );
        assert!(format!("{err:?}").contains("connection refused"), "{err:?}");
        assert!(AuthError::new(AuthErrorKind::Expired).source().is_none());

        let scoped = AuthError::insufficient_scope(["notes:write", "admin"]);
        assert_eq!(scoped.required_scopes(), ["notes:write", "admin"]);
        let dbg = format!("{scoped:?}");
        assert!(
            dbg.contains("InsufficientScope") && dbg.contains("notes:write"),
            "{dbg}"
        );
        assert!(
            !format!("{:?}", AuthError::new(AuthErrorKind::Expired)).contains("required_scopes")
        );
    }

    #[test]
    fn runtime_errors_say_what_failed() {
        let config = ConfigError::new("resource", "must be an absolute URI");
        let err = Error::from(config.clone());
        assert_eq!(
            err.to_string(),
            "invalid `resource`: must be an absolute URI"
        );
        assert_eq!(
            config.clone().for_env().to_string(),
            "invalid `MCP_OAUTH2_RESOURCE`: must be an absolute URI"
        );
        let _: &dyn std::error::Error = &config;
        assert_eq!(
            Error::KeysUnavailable("https://as.example/jwks: timed out".into()).to_string(),
            "verification keys unavailable: https://as.example/jwks: timed out"
        );
    }

    // Guessable secrets are named; random ones, raw or spelled in hex,
    // base64 or digits, pass (found from outside: `abab...` was taken).
    #[test]
    fn a_guessable_secret_is_named() {
        let cases: [(&[u8], Option<&str>); 14] = [
            (&[b'a'; 32], Some("is one byte repeated")),
            (
                b"abababababababababababababababab",
                Some("repeats a short pattern"),
            ),
            (
                b"0123456789abcdef0123456789abcdef",
                Some("repeats a short pattern"),
            ),
            (
                b"abcabcabcabcabcabcabcabcabcabcabcab",
                Some("repeats a short pattern"),
            ),
            (
                b"00000000000000000000000000000001",
                Some("repeats a short pattern"),
            ),
            // Two bytes, in no repeated pattern (the Thue-Morse word).
            (
                b"01101001100101101001011001101001",
                Some("holds fewer than six distinct bytes"),
            ),
            (b"correct horse battery staple, and then some", None),
            (b"3f2a9c0b7e41d58816c2e07fa9b3d45e", None),
            (b"q5Vh2N1x7KpR0aZ-wE_mU3yT8jLcB6sD9fGiOo4", None),
            (b"78643456197118342256967811086436", None),
            // A pattern repeated with a few bytes before or after it (found
            // from outside: a two-byte tail passed).
            (
                b"password1234password1234password1234XY",
                Some("repeats a short pattern"),
            ),
            (
                b"XYpassword1234password1234password1234",
                Some("repeats a short pattern"),
            ),
            (
                b"changemechangemechangeme-1234567",
                Some("repeats a short pattern"),
            ),
            (
                b"84017263950481726395048172639504",
                Some("repeats a short pattern"),
            ),
        ];
        for (secret, expected) in cases {
            assert_eq!(
                secret_weakness(secret),
                expected,
                "{}",
                String::from_utf8_lossy(secret)
            );
        }
        // Counters (found from outside: the bytes 0 to 31 passed), and a
        // step of 97 that wraps around.
        let counters: [Vec<u8>; 4] = [
            (0..32u8).collect(),
            (100..132u8).collect(),
            (0..32u8).map(|i| i * 2).collect(),
            (0..32u8)
                .map(|i| i.wrapping_mul(97).wrapping_add(13))
                .collect(),
        ];
        for counter in counters {
            assert_eq!(
                secret_weakness(&counter),
                Some("counts up or down in a few steps"),
                "{counter:?}"
            );
        }
        let random = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"a random secret");
        assert_eq!(secret_weakness(random.as_ref()), None);
        // Random bytes are never flagged.
        for i in 0..2_000u32 {
            let mut secret = [0u8; 32];
            aws_lc_rs::rand::fill(&mut secret).unwrap();
            assert_eq!(secret_weakness(&secret), None, "{i}: {secret:?}");
        }
    }
}
