//! DPoP: sender-constrained access tokens (RFC 9449; the MCP DPoP profile).
//!
//! A request `Authorization: DPoP <token>` carries exactly one `DPoP` header
//! with a proof JWT. The layer verifies the token as any other (through the
//! verified-token cache), then [`Dpop::check_proof`] checks the proof for
//! this request (see [`proof`] for the checks, cheapest first) and
//! [`Dpop::bind`] that the token's `cnf.jkt` is the proof key's RFC 7638
//! thumbprint and that the proof was not used before ([`replay`]). Server
//! nonces, when demanded, are stateless ([`nonce`]).
//!
//! The `htu` a proof must name is the configured resource's scheme and
//! authority with the request's path (the public one, when a proxy maps
//! the resource's path to a local MCP path), never a `Host` header the client
//! chose; both sides are compared after RFC 3986 normalisation (case of
//! the scheme and host, default port, dot segments, percent-encoding case,
//! unreserved characters decoded), without query and fragment.

pub(crate) mod nonce;
pub(crate) mod proof;
pub(crate) mod replay;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod sign;

use std::sync::Arc;

use crate::config::{Algorithm, AuthConfig, DpopMode};
use crate::error::{AuthError, AuthErrorKind};
use nonce::NonceKeys;
use proof::{Expected, ProofError, Verified};
use replay::{MemoryReplayStore, ReplayStore};

/// The compiled DPoP settings of a layer.
#[derive(Debug)]
pub(crate) struct Dpop {
    mode: DpopMode,
    algorithms: Box<[Algorithm]>,
    /// `ES256 ES384 ...`, for challenges.
    algs: Box<str>,
    max_age: u64,
    max_proof_bytes: usize,
    /// The resource URI without path, query and fragment.
    origin: url::Url,
    nonces: Option<NonceKeys>,
    replay: Option<Arc<dyn ReplayStore>>,
    /// The replay memory shared by replicas (replaces `replay` when set).
    shared: Option<Arc<dyn crate::store::SharedStore>>,
    /// How much longer than the window a first use is kept in the shared
    /// store (the clock leeway, in seconds): replicas whose clocks differ
    /// by up to it all still find the record while the proof is fresh to
    /// them.
    skew: u64,
}

impl Dpop {
    /// The DPoP settings of `config`.
    pub(crate) fn new(config: &AuthConfig) -> Self {
        let policy = &config.dpop;
        let mut origin = config.resource_url.clone();
        origin.set_path("");
        origin.set_query(None);
        origin.set_fragment(None);
        let max_age = policy.max_age.as_secs().max(1);
        Self {
            mode: policy.mode,
            algorithms: policy.algorithms.clone().into_boxed_slice(),
            algs: policy
                .algorithms
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(" ")
                .into_boxed_str(),
            max_age,
            max_proof_bytes: proof::DEFAULT_MAX_PROOF_BYTES,
            origin,
            nonces: policy.nonce.then(|| {
                NonceKeys::new(
                    policy.nonce_secret.as_deref(),
                    max_age,
                    config.leeway.as_secs(),
                )
            }),
            // In memory even with a shared store: a Redis restarted empty
            // (or failed over) forgets the proofs it held, and a proof this
            // replica refused as a replay was then taken once more (found
            // from outside). Another replica's proofs it cannot know.
            replay: (policy.replay_capacity > 0).then(|| {
                Arc::new(MemoryReplayStore::new(policy.replay_capacity)) as Arc<dyn ReplayStore>
            }),
            shared: config
                .shared_store
                .clone()
                .filter(|_| policy.replay_capacity > 0),
            skew: config.leeway.as_secs(),
        }
    }

    /// Whether DPoP is accepted, required or off.
    /// Whether first uses are checked in the shared store (a wait: never
    /// on the fast path).
    pub(crate) fn replay_is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// RFC 9449 section 11.1 across replicas: records the proof in the
    /// shared store (`SET NX`) until its `iat` window closes, plus the clock
    /// leeway (a replica whose clock runs behind takes the proof as fresh
    /// for that much longer, and must still find it). A second use,
    /// on any replica, is `dpop_replay`; a store that cannot answer refuses
    /// the proof (503 `store_unavailable`: fail closed, a replay could not
    /// be ruled out). Call after [`bind`](Self::bind) accepted the proof.
    pub(crate) async fn first_use_shared(
        &self,
        verified: &Verified,
        now: u64,
    ) -> Result<(), AuthError> {
        let Some(store) = &self.shared else {
            return Ok(());
        };
        let digest = replay::proof_key(&verified.jkt, &verified.jti);
        let key = crate::store::hashed_key("mcp_oauth2:dpop:", &digest);
        let expires = verified.iat.saturating_add(self.max_age).saturating_add(1);
        let ttl = std::time::Duration::from_secs(
            expires.saturating_sub(now).max(1).saturating_add(self.skew),
        );
        match store.put_if_absent(&key, b"1", ttl).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthErrorKind::DpopReplay.into()),
            Err(e) => {
                crate::store::log_store_error!(
                    &e,
                    error = %e,
                    reason = "store_unavailable",
                    "refused a DPoP proof: the shared replay store did not answer (fail closed)"
                );
                Err(AuthErrorKind::StoreUnavailable.into())
            }
        }
    }

    pub(crate) fn mode(&self) -> DpopMode {
        self.mode
    }

    /// The accepted proof algorithms, space-separated (the challenge's `algs`).
    pub(crate) fn algs(&self) -> &str {
        &self.algs
    }

    /// A fresh server nonce, when nonces are demanded.
    pub(crate) fn fresh_nonce(&self) -> Option<String> {
        self.nonces
            .as_ref()
            .and_then(|n| n.issue(crate::clock::now_unix()))
    }

    /// Checks `proof` for a request `method path` presenting `token`
    /// (everything but the binding to the token's key).
    pub(crate) fn check_proof(
        &self,
        proof: &str,
        method: &str,
        path: &str,
        token: &str,
        now: u64,
    ) -> Result<Verified, AuthError> {
        let mut htu = self.origin.clone();
        htu.set_path(path);
        let expected = Expected {
            method,
            htu: &htu,
            access_token: Some(token),
            now,
            max_age: self.max_age,
            nonces: self.nonces.as_ref(),
        };
        proof::check(proof, &self.algorithms, self.max_proof_bytes, &expected)
            .map_err(|e| AuthError::new(proof_error_kind(e)))
    }

    /// The token bound to `token_jkt` (its `cnf.jkt`, `None` when unbound)
    /// is presented with the proof `verified`: the keys must match, and the
    /// proof must be new.
    pub(crate) fn bind(
        &self,
        verified: &Verified,
        token_jkt: Option<&str>,
        now: u64,
    ) -> Result<(), AuthError> {
        match token_jkt {
            None => return Err(AuthErrorKind::DpopTokenNotBound.into()),
            Some(jkt) if jkt != verified.jkt => return Err(AuthErrorKind::DpopKeyMismatch.into()),
            Some(_) => {}
        }
        if let Some(store) = &self.replay {
            let expires = verified.iat.saturating_add(self.max_age).saturating_add(1);
            if !store.first_use(&verified.jkt, &verified.jti, expires, now) {
                return Err(AuthErrorKind::DpopReplay.into());
            }
        }
        Ok(())
    }
}

fn proof_error_kind(e: ProofError) -> AuthErrorKind {
    use AuthErrorKind as K;
    match e {
        ProofError::TooLarge => K::DpopProofTooLarge,
        ProofError::Malformed => K::DpopProofMalformed,
        ProofError::Header => K::DpopUnsupportedHeader,
        ProofError::Type => K::DpopInvalidType,
        ProofError::Algorithm => K::DpopDisallowedAlgorithm,
        ProofError::Key => K::DpopInvalidKey,
        ProofError::PrivateKey => K::DpopPrivateKey,
        ProofError::Method => K::DpopMethodMismatch,
        ProofError::Uri => K::DpopUriMismatch,
        ProofError::Expired => K::DpopProofExpired,
        ProofError::Future => K::DpopProofNotYetValid,
        ProofError::Claims => K::DpopInvalidClaims,
        ProofError::Ath => K::DpopAthMismatch,
        ProofError::Signature => K::DpopInvalidSignature,
        ProofError::NonceMissing => K::DpopNonceRequired,
        ProofError::NonceInvalid => K::DpopNonceInvalid,
    }
}

/// Whether `token` is a JWT whose claims carry `cnf`: a token bound to a
/// key, sent as Bearer, is refused before it is verified (a verification
/// may fetch keys; RFC 9449 section 7.2 condemns it on its claims alone).
/// Reads the claims only; anything that is not a JWT is `false`.
pub(crate) fn jwt_binds_a_key(token: &str) -> bool {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (Some(_), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims) else {
        return false;
    };
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| crate::json::Members::parse(text).ok())
        .is_some_and(|m| m.contains("cnf"))
}

/// Whether the proof's `htu` names `expected` (see the module
/// documentation): query and fragment of `htu` ignored, user information
/// refused.
///
/// `htu` must be an RFC 3986 URI (RFC 9449 section 4.2), checked before the
/// WHATWG reading of `url` normalises it: that reading drops tabs and line
/// breaks, takes a backslash for a slash and an empty user information
/// (`https://@host/`) for none, so such texts named the resource although
/// no RFC 3986 reader takes them for it (found from outside).
///
/// The host is compared as RFC 3986 text too (case and percent-encodings
/// of unreserved characters normalised): the WHATWG reading takes `127.1`,
/// `0x7f.1`, `2130706433`, `0177.0.0.1` and `127.0.0.1.` for `127.0.0.1`,
/// which RFC 3986 reads as other names (found from outside). Only an IP
/// literal (`[...]`) is compared as the address it names.
pub(crate) fn htu_matches(htu: &str, expected: &url::Url) -> bool {
    let Ok(uri) = iri_string::types::UriStr::new(htu) else {
        return false;
    };
    let Some(authority) = uri.authority_components() else {
        return false;
    };
    if authority.userinfo().is_some() {
        return false;
    }
    let raw_host = authority.host();
    let Ok(htu) = url::Url::parse(htu) else {
        return false;
    };
    if !htu.username().is_empty() || htu.password().is_some() {
        return false;
    }
    let host_matches = if raw_host.starts_with('[') {
        htu.host_str() == expected.host_str()
    } else {
        expected
            .host_str()
            .is_some_and(|want| normalize_path(raw_host).eq_ignore_ascii_case(want))
    };
    htu.scheme() == expected.scheme()
        && host_matches
        && htu.port_or_known_default() == expected.port_or_known_default()
        && normalize_path(htu.path()) == normalize_path(expected.path())
}

/// RFC 3986 section 6.2.2: percent-encodings of unreserved characters
/// decoded, the others' hex digits in upper case.
fn normalize_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(hv), Some(lv)) = (hex(*h), hex(*l))
        {
            let c = hv * 16 + lv;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(c));
            } else {
                out.push('%');
                out.push(char::from(h.to_ascii_uppercase()));
                out.push(char::from(l.to_ascii_uppercase()));
            }
            i += 3;
            continue;
        }
        out.push(char::from(b));
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests;
