//! Every refusal of handles and request state, in both modes, at a fixed
//! time (no sleeping).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::seal::{open_at, seal_at};
use super::*;

const ALICE: seal::Principal<'static> = ("https://iss", "alice", Some("app"), None);
const NOW: u64 = 1_800_000_000_000;
const MINUTE: Duration = Duration::from_secs(60);
const MODES: [Sealing; 2] = [Sealing::Signed, Sealing::Encrypted];
const EXPORT: Purpose<'static> = Purpose::RequestState {
    method: "tools/call",
    name: "export_notes",
};

/// 32 secret bytes, one set per `seed`, none of them guessable
/// ([`crate::error::secret_weakness`]).
fn secret(seed: u8) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &[seed]);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    bytes
}

fn key(id: &str, byte: u8) -> HandleKey {
    HandleKey::from_secret_with_id(id, &secret(byte)).unwrap()
}

fn ring(sealing: Sealing) -> HandleKeys {
    HandleKeys::new(key("k1", 1)).with_sealing(sealing)
}

fn mint(keys: &HandleKeys, payload: &str) -> String {
    seal_at(keys, ALICE, Purpose::Handle, payload, MINUTE, NOW).unwrap()
}

fn open(keys: &HandleKeys, sealed: &str) -> Result<String, HandleError> {
    open_at(keys, ALICE, Purpose::Handle, sealed, NOW)
}

/// Applies `f` to the decoded blob of `sealed`.
fn with_blob(sealed: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut parts: Vec<String> = sealed.split('.').map(str::to_owned).collect();
    let mut blob = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    f(&mut blob);
    parts[2] = URL_SAFE_NO_PAD.encode(blob);
    parts.join(".")
}

#[test]
fn opens_for_the_same_principal_in_both_modes() {
    for mode in MODES {
        let keys = ring(mode);
        for payload in ["cart-42", "", "é 🦀 \u{0}"] {
            let h = mint(&keys, payload);
            assert_eq!(open(&keys, &h).as_deref(), Ok(payload), "{mode:?}");
            let prefix = if mode == Sealing::Signed {
                "h2s.k1."
            } else {
                "h2e.k1."
            };
            assert!(h.starts_with(prefix), "{h}");
        }
        // Unique even for the same payload.
        assert_ne!(mint(&keys, "x"), mint(&keys, "x"));
    }
}

#[test]
fn refused_for_another_principal_field_by_field() {
    for mode in MODES {
        let keys = ring(mode);
        let h = mint(&keys, "cart-42");
        for other in [
            ("https://other", "alice", Some("app"), None),
            ("https://iss", "bob", Some("app"), None),
            ("https://iss", "alice", Some("other-app"), None),
            ("https://iss", "alice", None, None),
            // Field boundaries are unambiguous.
            ("https://issa", "lice", Some("app"), None),
            ("https://iss", "aliceapp", Some(""), None),
        ] {
            assert_eq!(
                open_at(&keys, other, Purpose::Handle, &h, NOW),
                Err(HandleError::Invalid),
                "{mode:?} {other:?}"
            );
        }
        // The tenant is part of the principal (issue 19): another tenant,
        // or a tenant where there was none, never opens the handle.
        let tenant_a = ("https://iss", "alice", Some("app"), Some("a"));
        let tenant_b = ("https://iss", "alice", Some("app"), Some("b"));
        assert_eq!(
            open_at(&keys, tenant_a, Purpose::Handle, &h, NOW),
            Err(HandleError::Invalid)
        );
        let ha = seal_at(&keys, tenant_a, Purpose::Handle, "x", MINUTE, NOW).unwrap();
        for other in [
            tenant_b,
            ALICE,
            ("https://iss", "alice", Some("app"), Some("")),
        ] {
            assert_eq!(
                open_at(&keys, other, Purpose::Handle, &ha, NOW),
                Err(HandleError::Invalid),
                "{mode:?} {other:?}"
            );
        }
        assert_eq!(
            open_at(&keys, tenant_a, Purpose::Handle, &ha, NOW).as_deref(),
            Ok("x")
        );
        // No client id and an empty one are two principals.
        let none = ("https://iss", "alice", None, None);
        let empty = ("https://iss", "alice", Some(""), None);
        let h = seal_at(&keys, none, Purpose::Handle, "x", MINUTE, NOW).unwrap();
        assert_eq!(
            open_at(&keys, empty, Purpose::Handle, &h, NOW),
            Err(HandleError::Invalid)
        );
        assert_eq!(
            open_at(&keys, none, Purpose::Handle, &h, NOW).as_deref(),
            Ok("x")
        );
    }
}

#[test]
fn another_key_or_mode_refuses() {
    for mode in MODES {
        let h = mint(&ring(mode), "x");
        // Another ring without that key id.
        let stranger = HandleKeys::new(key("k9", 1)).with_sealing(mode);
        assert_eq!(open(&stranger, &h), Err(HandleError::UnknownKey));
        // The same key id with another secret.
        let impostor = HandleKeys::new(key("k1", 2)).with_sealing(mode);
        assert_eq!(open(&impostor, &h), Err(HandleError::Invalid));
    }
    // A signed handle does not open in an encrypted ring, nor the reverse.
    let signed = mint(&ring(Sealing::Signed), "x");
    let encrypted = mint(&ring(Sealing::Encrypted), "x");
    assert_eq!(
        open(&ring(Sealing::Encrypted), &signed),
        Err(HandleError::Invalid)
    );
    assert_eq!(
        open(&ring(Sealing::Signed), &encrypted),
        Err(HandleError::Invalid)
    );
}

#[test]
fn rotation_keeps_previous_keys_opening_until_removed() {
    for mode in MODES {
        let old = HandleKeys::new(key("k1", 1)).with_sealing(mode);
        let sealed_by_k1 = mint(&old, "kept");
        // Step 1: k2 added as previous; step 2: k2 current, k1 previous.
        let step1 = old.clone().with_previous(key("k2", 2)).unwrap();
        let step2 = HandleKeys::new(key("k2", 2))
            .with_previous(key("k1", 1))
            .unwrap()
            .with_sealing(mode);
        assert_eq!(step1.key_ids().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(step2.current_key_id(), "k2");
        let sealed_by_k2 = mint(&step2, "new");
        assert!(sealed_by_k2.contains(".k2."));
        for keys in [&step1, &step2] {
            assert_eq!(open(keys, &sealed_by_k1).as_deref(), Ok("kept"));
            assert_eq!(open(keys, &sealed_by_k2).as_deref(), Ok("new"));
        }
        // Step 3: k1 removed.
        let step3 = HandleKeys::new(key("k2", 2)).with_sealing(mode);
        assert_eq!(open(&step3, &sealed_by_k1), Err(HandleError::UnknownKey));
        assert_eq!(open(&step3, &sealed_by_k2).as_deref(), Ok("new"));
    }
}

#[test]
fn the_key_id_is_authenticated() {
    for mode in MODES {
        let keys = HandleKeys::new(key("k1", 1))
            .with_previous(key("k2", 1))
            .unwrap()
            .with_sealing(mode);
        let h = mint(&keys, "x");
        // Same secret under another id of the ring: refused.
        let relabelled = h.replacen(".k1.", ".k2.", 1);
        assert_eq!(open(&keys, &relabelled), Err(HandleError::Invalid));
        for bad in ["", "k 1", "k.1", "ké", &"k".repeat(65)] {
            let forged = h.replacen(".k1.", &format!(".{bad}."), 1);
            assert!(open(&keys, &forged).is_err(), "{bad:?}");
        }
    }
}

#[test]
fn keys_are_checked_when_built() {
    assert_eq!(
        HandleKey::from_secret(&secret(1)[..31]).err(),
        Some(HandleError::ShortSecret)
    );
    assert_eq!(
        HandleKey::from_secret_with_id("k1", &secret(1)[..31]).err(),
        Some(HandleError::ShortSecret)
    );
    for bad in ["", "a.b", "a b", "ä", "a/b", &"k".repeat(65)] {
        assert_eq!(
            HandleKey::from_secret_with_id(bad, &secret(1)).err(),
            Some(HandleError::InvalidKeyId),
            "{bad:?}"
        );
    }
    assert!(HandleKey::from_secret_with_id(&"k".repeat(64), &secret(1)).is_ok());
    // A guessable secret, with a derived id or a chosen one (found from
    // outside: only a one-byte placeholder was refused, and only by the
    // reference server).
    for weak in [
        &[1u8; 32][..],
        b"abababababababababababababababab",
        b"0123456789abcdef0123456789abcdef",
        b"00000000000000000000000000000001",
    ] {
        assert_eq!(
            HandleKey::from_secret(weak).err(),
            Some(HandleError::WeakKey)
        );
        assert_eq!(
            HandleKey::from_secret_with_id("k1", weak).err(),
            Some(HandleError::WeakKey)
        );
    }
    // A derived id: stable for one secret, different for another, valid.
    let a = HandleKey::from_secret(&secret(1)).unwrap();
    let b = HandleKey::from_secret(&secret(2)).unwrap();
    assert_eq!(a.id(), HandleKey::from_secret(&secret(1)).unwrap().id());
    assert_ne!(a.id(), b.id());
    assert!(valid_key_id(a.id()) && a.id().len() == 8, "{}", a.id());
    assert_ne!(HandleKey::generate().unwrap().id(), a.id());
    // Two keys with one id in a ring.
    assert_eq!(
        HandleKeys::new(key("k1", 1))
            .with_previous(key("k1", 2))
            .err(),
        Some(HandleError::DuplicateKeyId)
    );
}

#[test]
fn expiry_is_enforced_and_authenticated() {
    for mode in MODES {
        let keys = ring(mode);
        let h = mint(&keys, "x");
        let ttl_ms = 60_000;
        let at = |now| open_at(&keys, ALICE, Purpose::Handle, &h, now);
        assert_eq!(at(NOW + ttl_ms - 1).as_deref(), Ok("x"));
        assert_eq!(at(NOW + ttl_ms), Err(HandleError::Expired));
        assert_eq!(at(u64::MAX), Err(HandleError::Expired));
        // Expired is only said to the principal it was sealed for.
        let bob = ("https://iss", "bob", Some("app"), None);
        assert_eq!(
            open_at(&keys, bob, Purpose::Handle, &h, NOW + ttl_ms),
            Err(HandleError::Invalid)
        );
        // Pushing the expiry forward breaks the tag.
        let extended = with_blob(&h, |b| b[..8].copy_from_slice(&u64::MAX.to_be_bytes()));
        assert_eq!(
            open_at(&keys, ALICE, Purpose::Handle, &extended, NOW + ttl_ms),
            Err(HandleError::Invalid)
        );
        // A part of a millisecond counts whole.
        let short = seal_at(
            &keys,
            ALICE,
            Purpose::Handle,
            "x",
            Duration::from_nanos(1),
            NOW,
        );
        let short = short.unwrap();
        assert_eq!(open(&keys, &short).as_deref(), Ok("x"));
        assert_eq!(
            open_at(&keys, ALICE, Purpose::Handle, &short, NOW + 1),
            Err(HandleError::Expired)
        );
        // Lifetimes out of range.
        for ttl in [
            Duration::ZERO,
            HandleKeys::MAX_TTL + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            assert_eq!(
                seal_at(&keys, ALICE, Purpose::Handle, "x", ttl, NOW),
                Err(HandleError::InvalidTtl)
            );
        }
        let longest = seal_at(
            &keys,
            ALICE,
            Purpose::Handle,
            "x",
            HandleKeys::MAX_TTL,
            u64::MAX,
        );
        // Saturated at the end of time: sealed, and already expired.
        assert_eq!(
            open_at(&keys, ALICE, Purpose::Handle, &longest.unwrap(), u64::MAX),
            Err(HandleError::Expired)
        );
    }
}

#[test]
fn payload_nonce_and_tag_are_tamper_evident() {
    for mode in MODES {
        let keys = ring(mode);
        let h = mint(&keys, "cart-42");
        let len = URL_SAFE_NO_PAD
            .decode(h.split('.').nth(2).unwrap())
            .unwrap()
            .len();
        // Every byte of the blob: expiry, random part or nonce, payload, tag.
        for i in 0..len {
            let flipped = with_blob(&h, |b| b[i] ^= 0x01);
            assert_eq!(
                open(&keys, &flipped),
                Err(HandleError::Invalid),
                "{mode:?} {i}"
            );
        }
        // Truncated or extended blobs.
        for cut in [1, 16, 32, len - 8, len] {
            let short = with_blob(&h, |b| b.truncate(len - cut));
            assert_eq!(open(&keys, &short), Err(HandleError::Invalid), "{cut}");
        }
        let longer = with_blob(&h, |b| b.push(0));
        assert_eq!(open(&keys, &longer), Err(HandleError::Invalid));
        // Every one-character change of the text.
        for (i, c) in h.char_indices() {
            let other = if c == 'A' { 'B' } else { 'A' };
            let mut changed = h.clone();
            changed.replace_range(i..i + 1, &other.to_string());
            assert!(open(&keys, &changed).is_err(), "{mode:?} {i}");
        }
    }
}

#[test]
fn request_state_is_bound_to_the_request() {
    for mode in MODES {
        let keys = ring(mode);
        let state = seal_at(&keys, ALICE, EXPORT, "page=2", MINUTE, NOW).unwrap();
        assert!(state.starts_with("r2"), "{state}");
        assert_eq!(
            open_at(&keys, ALICE, EXPORT, &state, NOW).as_deref(),
            Ok("page=2")
        );
        for (method, name) in [
            ("tools/call", "import_notes"),
            ("prompts/get", "export_notes"),
            ("tools/call", ""),
            // Boundaries are unambiguous.
            ("tools/cal", "lexport_notes"),
        ] {
            let other = Purpose::RequestState { method, name };
            assert_eq!(
                open_at(&keys, ALICE, other, &state, NOW),
                Err(HandleError::Invalid),
                "{mode:?} {method} {name}"
            );
        }
        let bob = ("https://iss", "bob", Some("app"), None);
        assert_eq!(
            open_at(&keys, bob, EXPORT, &state, NOW),
            Err(HandleError::Invalid)
        );
        assert_eq!(
            open_at(&keys, ALICE, EXPORT, &state, NOW + 60_000),
            Err(HandleError::Expired)
        );
        let tampered = with_blob(&state, |b| *b.last_mut().unwrap() ^= 1);
        assert_eq!(
            open_at(&keys, ALICE, EXPORT, &tampered, NOW),
            Err(HandleError::Invalid)
        );
    }
}

#[test]
fn handles_and_request_state_never_cross() {
    for mode in MODES {
        let keys = ring(mode);
        let handle = mint(&keys, "x");
        let state = seal_at(&keys, ALICE, EXPORT, "x", MINUTE, NOW).unwrap();
        assert_eq!(
            open_at(&keys, ALICE, EXPORT, &handle, NOW),
            Err(HandleError::Invalid)
        );
        assert_eq!(open(&keys, &state), Err(HandleError::Invalid));
        // Relabelling the kind does not help: the purpose is authenticated.
        let as_state = handle.replacen('h', "r", 1);
        let as_handle = state.replacen('r', "h", 1);
        assert_eq!(
            open_at(&keys, ALICE, EXPORT, &as_state, NOW),
            Err(HandleError::Invalid)
        );
        assert_eq!(open(&keys, &as_handle), Err(HandleError::Invalid));
    }
}

#[test]
fn only_encrypted_hides_the_payload() {
    let secret = "cart-4242-of-alice";
    let encrypted = mint(&ring(Sealing::Encrypted), secret);
    let signed = mint(&ring(Sealing::Signed), secret);
    let blob = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s.split('.').nth(2).unwrap())
            .unwrap()
    };
    let contains = |hay: &[u8]| hay.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(!encrypted.contains(secret));
    assert!(!contains(&blob(&encrypted)));
    // Signed is readable by whoever holds it, as documented.
    assert!(contains(&blob(&signed)));
}

#[test]
fn junk_and_huge_inputs_are_refused_without_panicking() {
    for mode in MODES {
        let keys = ring(mode);
        for junk in [
            "",
            ".",
            "..",
            "...",
            "h2e",
            "h2e.k1",
            "h2e.k1.",
            "h2s.k1.",
            "h2e..AAAA",
            "h2e.k1.!!",
            "h2e.k1.AAAA.AAAA",
            "h1.AAAA.AAAA",
            "h2x.k1.AAAA",
            "H2E.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "h2e.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "h2s.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "h2e.k1.AB",
            "\u{0}.\u{0}.\u{0}",
            "h2e.🦀.AAAA",
        ] {
            assert!(open(&keys, junk).is_err(), "{junk:?}");
            assert!(
                open_at(&keys, ALICE, EXPORT, junk, NOW).is_err(),
                "{junk:?}"
            );
        }
        // The largest payload under the longest key id fits the cap...
        let long_id = HandleKeys::new(key(&"k".repeat(64), 1)).with_sealing(mode);
        let payload = "p".repeat(HandleKeys::MAX_PAYLOAD_BYTES);
        let h = mint(&long_id, &payload);
        assert!(h.len() <= HandleKeys::MAX_SEALED_BYTES, "{}", h.len());
        assert_eq!(open(&long_id, &h).as_deref(), Ok(payload.as_str()));
        // ... one more byte does not seal, and longer text is not parsed.
        assert_eq!(
            seal_at(
                &keys,
                ALICE,
                Purpose::Handle,
                &format!("{payload}p"),
                MINUTE,
                NOW
            ),
            Err(HandleError::TooLarge)
        );
        let huge = format!("h2e.k1.{}", "A".repeat(HandleKeys::MAX_SEALED_BYTES));
        assert_eq!(open(&keys, &huge), Err(HandleError::TooLarge));
        assert_eq!(
            open(&keys, &"h2e.".repeat(1 << 20)),
            Err(HandleError::TooLarge)
        );
        // Valid structure and a valid tag, but a payload that is not UTF-8
        // cannot be produced by sealing: tampering it breaks the tag first.
        let h = mint(&keys, "é");
        let bad = with_blob(&h, |b| {
            let at = b.len() - if mode == Sealing::Signed { 33 } else { 17 };
            // Always a change (a sealed byte is 0xff one time in 256, and
            // setting it again tampered nothing); never UTF-8 either way.
            b[at] = if b[at] == 0xff { 0xfe } else { 0xff };
        });
        assert_eq!(open(&keys, &bad), Err(HandleError::Invalid));
    }
}

#[test]
fn debug_never_shows_the_secret() {
    let key = HandleKey::from_secret_with_id("k1", b"q5Vh2N1x7KpR0aZ-wE_mU3yT8jLcB6sD").unwrap();
    let shown = format!("{key:?}");
    assert_eq!(shown, r#"HandleKey { id: "k1", secret: [redacted] }"#);
    let keys = HandleKeys::new(key).with_previous(HandleKey::generate().unwrap());
    let shown = format!("{:?}", keys.unwrap());
    assert!(
        shown.contains("[redacted]") && !shown.contains("0123"),
        "{shown}"
    );
}
