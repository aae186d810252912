//! The JOSE test vectors of `spec-fixtures/` run through our key loading and
//! signature path: RFC 7515 appendix A.2 (RS256) and A.3 (ES256), RFC 8037
//! appendix A.4 (Ed25519). Each must verify, and fail once tampered with.

use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::jwks::key::{verify_signature, verify_with_provider};
use crate::jwks::keyset::KeySet;

fn check(fixture: &str, alg: Algorithm) {
    let v: Value = serde_json::from_str(fixture).unwrap();
    let jwks = serde_json::json!({ "keys": [v["jwk"]] }).to_string();
    let (set, dropped) = KeySet::parse(jwks.as_bytes()).unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");
    let keys = set.candidates(None, alg);
    assert_eq!(keys.len(), 1, "{}", v["source"]);
    let jws = v["jws"].as_str().unwrap();
    let (input, sig) = jws.rsplit_once('.').unwrap();
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    assert!(
        verify_signature(alg, keys[0], input.as_bytes(), &sig),
        "{}",
        v["source"]
    );
    // The prepared key (aws-lc-rs) and jsonwebtoken's provider agree.
    assert!(verify_with_provider(
        alg,
        &keys[0].key,
        input.as_bytes(),
        &sig
    ));
    // One flipped bit in the signing input or the signature breaks it.
    let mut tampered = input.as_bytes().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(!verify_signature(alg, keys[0], &tampered, &sig));
    let mut bad_sig = sig.clone();
    bad_sig[0] ^= 0x80;
    assert!(!verify_signature(alg, keys[0], input.as_bytes(), &bad_sig));
    // And the key refuses every algorithm of another family (RFC 8725
    // section 3.1); a JWK without `alg` may serve every algorithm of its own.
    for other in [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        if other.family() != alg.family() {
            assert!(set.candidates(None, other).is_empty(), "{other:?}");
        }
    }
}

#[test]
fn rfc7515_appendix_a2_rs256() {
    check(
        include_str!("../../spec-fixtures/rfc7515-a2-rs256.json"),
        Algorithm::RS256,
    );
}

#[test]
fn rfc7515_appendix_a3_es256() {
    check(
        include_str!("../../spec-fixtures/rfc7515-a3-es256.json"),
        Algorithm::ES256,
    );
}

#[test]
fn rfc8037_appendix_a4_ed25519() {
    check(
        include_str!("../../spec-fixtures/rfc8037-a4-ed25519.json"),
        Algorithm::EdDSA,
    );
}

/// RFC 9728 section 3.2: our metadata type reads the RFC's example document
/// (unknown members ignored), and writes the members it knows by the same names.
#[test]
fn rfc9728_example_document_round_trips() {
    let v: Value = serde_json::from_str(include_str!(
        "../../spec-fixtures/rfc9728-metadata-example.json"
    ))
    .unwrap();
    let doc: crate::ProtectedResourceMetadata =
        serde_json::from_value(v["document"].clone()).unwrap();
    assert_eq!(doc.resource, v["document"]["resource"].as_str().unwrap());
    assert_eq!(doc.bearer_methods_supported, ["header", "body"]);
    let out = serde_json::to_value(&doc).unwrap();
    for (k, val) in out.as_object().unwrap() {
        assert_eq!(&v["document"][k], val, "member {k}");
    }
}
