//! [`DpopPolicy`] and [`DpopMode`]: sender-constrained tokens (RFC 9449
//! DPoP; the MCP DPoP profile), set with [`AuthConfigBuilder::dpop`].

use std::sync::Arc;
use std::time::Duration;

use super::{Algorithm, AuthConfigBuilder};
use crate::error::ConfigError;

/// Whether DPoP-bound tokens (`Authorization: DPoP <token>` with a `DPoP`
/// proof header, RFC 9449) are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopMode {
    /// Bearer and DPoP both accepted (the default). A token bound to a key
    /// (`cnf.jkt`) is accepted only with a valid proof, never as Bearer
    /// (RFC 9449 section 7.2).
    #[default]
    Allowed,
    /// DPoP only: a Bearer token is refused, and the metadata says
    /// `dpop_bound_access_tokens_required: true`.
    Required,
    /// DPoP is not offered: the `DPoP` scheme is not read (a request using
    /// it has no credentials) and bound tokens are refused.
    Off,
}

impl std::str::FromStr for DpopMode {
    type Err = ConfigError;

    /// `allowed`, `required` or `off` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allowed" => Ok(Self::Allowed),
            "required" => Ok(Self::Required),
            "off" => Ok(Self::Off),
            _ => Err(ConfigError::new(
                "dpop",
                format!("{s:?} is not one of allowed, required, off"),
            )),
        }
    }
}

/// The proof algorithms accepted by default: ES256, ES384, EdDSA, PS256,
/// RS256.
pub(crate) const DEFAULT_DPOP_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::RS256,
];

/// Default number of proofs remembered for replay detection.
pub(crate) const DEFAULT_DPOP_REPLAY_CAPACITY: usize = 100_000;

/// The longest `iat` window the MCP profile allows (plus or minus 5 minutes).
pub(crate) const MAX_DPOP_MAX_AGE: Duration = Duration::from_secs(300);

/// How DPoP proofs are checked. Set with [`AuthConfigBuilder::dpop`].
///
/// | knob | default | meaning |
/// |---|---|---|
/// | [`mode`](Self::mode) | [`DpopMode::Allowed`] | Bearer and DPoP, DPoP only, or no DPoP |
/// | [`algorithms`](Self::algorithms) | ES256, ES384, EdDSA, PS256, RS256 | the proof `alg`s accepted (asymmetric only) |
/// | [`max_age`](Self::max_age) | 300 s | a proof's `iat` may be this far from now, either side (at most 300 s) |
/// | [`nonce`](Self::nonce) | off | demand a server nonce (`DPoP-Nonce`, `use_dpop_nonce`) |
/// | [`nonce_secret`](Self::nonce_secret) | random per process | the secret nonces are sealed with; share it between replicas |
/// | [`replay_detection`](Self::replay_detection) | on, 100,000 proofs | refuse a proof (`jti`) used twice within its window |
///
/// ```
/// use std::time::Duration;
/// use mcp_oauth2::{AuthConfig, DpopMode, DpopPolicy};
///
/// let config = AuthConfig::builder()
///     .issuer("https://auth.example.com")
///     .resource("https://mcp.example.com/mcp")
///     .dpop(
///         DpopPolicy::default()
///             .mode(DpopMode::Required)
///             .max_age(Duration::from_secs(120))
///             .nonce(true),
///     )
///     .build()?;
/// # Ok::<(), mcp_oauth2::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DpopPolicy {
    pub(crate) mode: DpopMode,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) max_age: Duration,
    pub(crate) nonce: bool,
    pub(crate) nonce_secret: Option<Arc<[u8]>>,
    pub(crate) replay_capacity: usize,
}

impl std::fmt::Debug for DpopPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopPolicy")
            .field("mode", &self.mode)
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("nonce", &self.nonce)
            .field(
                "nonce_secret",
                &self.nonce_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("replay_capacity", &self.replay_capacity)
            .finish()
    }
}

impl Default for DpopPolicy {
    fn default() -> Self {
        Self {
            mode: DpopMode::default(),
            algorithms: DEFAULT_DPOP_ALGORITHMS.to_vec(),
            max_age: MAX_DPOP_MAX_AGE,
            nonce: false,
            nonce_secret: None,
            replay_capacity: DEFAULT_DPOP_REPLAY_CAPACITY,
        }
    }
}

impl DpopPolicy {
    /// Whether DPoP is accepted, required or off (default
    /// [`DpopMode::Allowed`]).
    pub fn mode(mut self, mode: DpopMode) -> Self {
        self.mode = mode;
        self
    }

    /// The proof algorithms accepted (default ES256, ES384, EdDSA, PS256,
    /// RS256; at least one). Advertised as
    /// `dpop_signing_alg_values_supported` and in the `DPoP` challenge's `algs`.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How far a proof's `iat` may be from now, either side (default and
    /// maximum 300 s, the MCP profile's window; at least 1 s). Server
    /// nonces are good for as long.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Demand a server nonce in every proof (default off): a proof without
    /// a valid one gets 401 `use_dpop_nonce` with a fresh `DPoP-Nonce`
    /// header (RFC 9449 section 9). Nonces are stateless: the issue time
    /// sealed with AES-256-GCM under a key that rotates every
    /// [`max_age`](Self::max_age).
    pub fn nonce(mut self, on: bool) -> Self {
        self.nonce = on;
        self
    }

    /// The secret nonces are sealed with (default: random, per process).
    /// Give every replica the same secret (at least 32 random bytes: a
    /// short pattern repeated, such as `abab...`, or fewer than six
    /// distinct bytes is refused) so that a nonce from one is good at the
    /// others.
    pub fn nonce_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.nonce_secret = Some(Arc::from(secret.as_ref()));
        self
    }

    /// Remember up to `capacity` proofs and refuse one used twice within its
    /// `iat` window (RFC 9449 section 11.1; default 100,000; 0 turns replay
    /// detection off, leaving the window alone to bound a replay). The
    /// store is in memory, per process; with a
    /// [`shared_store`](AuthConfigBuilder::shared_store) proofs are
    /// remembered there too, for the window plus the clock
    /// [`leeway`](AuthConfigBuilder::leeway), so that replicas whose clocks
    /// differ by up to it all refuse a replay (the memory keeps a store
    /// restarted empty from making a proof this replica saw usable again).
    ///
    /// A full memory forgets expired proofs first, then a proof of the key
    /// (`jkt`) holding the most, the inserting key's own when it holds as
    /// many as any: a client flooding fresh proofs with its own key forgets
    /// only its own, never another client's. No client is refused for its
    /// rate; a key sending more than `capacity` proofs within one window
    /// (about 330 a second at the default, proofs living about 301 s)
    /// forgets its own oldest. About 200 bytes per proof remembered.
    pub fn replay_detection(mut self, capacity: usize) -> Self {
        self.replay_capacity = capacity;
        self
    }

    /// Checks the policy (called by [`AuthConfigBuilder::build`]).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "dpop_algorithms",
                "at least one algorithm is required",
            ));
        }
        if let Some(alg) = super::builder::first_repeated(&self.algorithms) {
            return Err(ConfigError::new(
                "dpop_algorithms",
                format!("{alg} is listed twice"),
            ));
        }
        if self.max_age < Duration::from_secs(1) || self.max_age > MAX_DPOP_MAX_AGE {
            return Err(ConfigError::new(
                "dpop_max_age",
                "must be between 1 and 300 seconds",
            ));
        }
        if self.mode == DpopMode::Off && self.nonce {
            return Err(ConfigError::new(
                "dpop_nonce",
                "demands nonces in DPoP proofs, but DPoP is off (proofs are not read)",
            ));
        }
        if self.nonce_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError::new(
                "dpop_nonce_secret",
                "must be at least 32 bytes",
            ));
        }
        // A placeholder (`aaaa...`, forty spaces, `abab...`) is no secret:
        // anyone who guesses it seals nonces the server accepts. Refused as
        // the handle keys' are (found from outside: accepted here).
        if let Some(weakness) = self
            .nonce_secret
            .as_ref()
            .and_then(|s| crate::error::secret_weakness(s))
        {
            return Err(ConfigError::new(
                "dpop_nonce_secret",
                format!(
                    "{weakness}: use 32 random bytes or more (head -c 32 /dev/urandom | base64)"
                ),
            ));
        }
        Ok(())
    }
}

impl AuthConfigBuilder {
    /// How DPoP proofs and DPoP-bound tokens are handled (default
    /// [`DpopPolicy::default`]: accepted beside Bearer, ±300 s window,
    /// replay detection on, no server nonce).
    pub fn dpop(mut self, policy: DpopPolicy) -> Self {
        self.dpop = policy;
        self
    }
}
