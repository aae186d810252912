//! [`Algorithm`]: the JWS algorithms a token may be signed with, the crate's
//! own type (jsonwebtoken's stays inside the crate).

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// A JWS signing algorithm that the verifier supports (RFC 7518 section 3,
/// RFC 8037 for EdDSA). Only asymmetric algorithms exist here: a resource
/// server must never accept HMAC tokens (RFC 8725 section 3.1).
///
/// [`Display`](fmt::Display) and [`FromStr`] use the RFC 7518 `alg` names,
/// exactly and case-sensitively (`"RS256"`, `"EdDSA"`, ...).
///
/// ```
/// use mcp_oauth2::Algorithm;
///
/// let alg: Algorithm = "ES256".parse().unwrap();
/// assert_eq!(alg, Algorithm::ES256);
/// assert_eq!(alg.to_string(), "ES256");
/// assert!("HS256".parse::<Algorithm>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512.
    PS512,
    /// ECDSA with P-256 and SHA-256.
    ES256,
    /// ECDSA with P-384 and SHA-384.
    ES384,
    /// EdDSA with Ed25519 (RFC 8037).
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm; also the default allowlist.
    pub(crate) const ALL: [Algorithm; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The RFC 7518 `alg` name, for example `"RS256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// jsonwebtoken's name for the same algorithm.
    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Self::RS256 => J::RS256,
            Self::RS384 => J::RS384,
            Self::RS512 => J::RS512,
            Self::PS256 => J::PS256,
            Self::PS384 => J::PS384,
            Self::PS512 => J::PS512,
            Self::ES256 => J::ES256,
            Self::ES384 => J::ES384,
            Self::EdDSA => J::EdDSA,
        }
    }

    /// The algorithm for jsonwebtoken's, or `None` for one not supported
    /// (the HMAC ones).
    #[cfg(test)]
    pub(crate) fn from_jwt(alg: jsonwebtoken::Algorithm) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.to_jwt() == alg)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ConfigError;

    /// Parses an RFC 7518 `alg` name, exactly. The HMAC names (`HS256`,
    /// `HS384`, `HS512`) are refused as symmetric, any other as unknown; the
    /// error names the `algorithms` setting.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(alg) = Self::ALL.into_iter().find(|a| a.as_str() == s) {
            return Ok(alg);
        }
        let message = if matches!(s, "HS256" | "HS384" | "HS512") {
            format!(
                "{s} is symmetric; only asymmetric algorithms verify third-party tokens safely (RFC 8725 section 3.1)"
            )
        } else {
            format!("unknown algorithm {s:?}")
        };
        Err(ConfigError::new("algorithms", message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_jsonwebtoken() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.to_string().parse::<Algorithm>().unwrap(), alg);
            assert_eq!(
                alg.as_str().parse::<jsonwebtoken::Algorithm>().unwrap(),
                alg.to_jwt()
            );
            assert_eq!(Algorithm::from_jwt(alg.to_jwt()), Some(alg));
        }
        assert_eq!(Algorithm::from_jwt(jsonwebtoken::Algorithm::HS256), None);
    }

    #[test]
    fn hmac_and_unknown_names_are_refused() {
        for name in ["HS256", "HS384", "HS512"] {
            let err = name.parse::<Algorithm>().unwrap_err();
            assert_eq!(err.field(), "algorithms");
            assert!(err.message().contains("symmetric"), "{err}");
        }
        for name in ["none", "None", "rs256", "", "ES512"] {
            let err = name.parse::<Algorithm>().unwrap_err();
            assert!(err.message().contains("unknown algorithm"), "{err}");
        }
    }
}
