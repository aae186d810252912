//! Handles and request state (`AuthContext::open_handle`,
//! `open_request_state`): any text is refused without a panic in both
//! sealing modes (nothing but a sealed string opens), and any payload seals
//! into a string that opens to the same payload for its principal and
//! request only.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mcp_oauth2::{AuthContext, HandleKey, HandleKeys, Sealing};

struct Fixture {
    rings: [HandleKeys; 2],
    alice: AuthContext,
    bob: AuthContext,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ring = |sealing| {
            HandleKeys::new(HandleKey::from_secret_with_id("k1", &[1; 32]).unwrap())
                .with_previous(HandleKey::from_secret_with_id("k2", &[2; 32]).unwrap())
                .unwrap()
                .with_sealing(sealing)
        };
        Fixture {
            rings: [ring(Sealing::Signed), ring(Sealing::Encrypted)],
            alice: AuthContext::builder("https://iss", "alice")
                .client_id("app")
                .build(),
            bob: AuthContext::builder("https://iss", "bob")
                .client_id("app")
                .build(),
        }
    })
}

const MINUTE: Duration = Duration::from_secs(60);

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let text = String::from_utf8_lossy(data);
    for keys in &f.rings {
        // Arbitrary text never opens.
        assert!(f.alice.open_handle(keys, &text).is_err());
        assert!(
            f.alice
                .open_request_state(keys, "tools/call", "export", &text)
                .is_err()
        );
        // Arbitrary payloads round-trip, for their principal and request only.
        let Ok(handle) = f.alice.mint_handle(keys, &text) else {
            assert!(text.len() > HandleKeys::MAX_PAYLOAD_BYTES);
            continue;
        };
        assert_eq!(f.alice.open_handle(keys, &handle).as_deref(), Ok(&*text));
        assert!(f.bob.open_handle(keys, &handle).is_err());
        let state = f
            .alice
            .seal_request_state(keys, "tools/call", "export", &text, MINUTE)
            .unwrap();
        assert_eq!(
            f.alice
                .open_request_state(keys, "tools/call", "export", &state)
                .as_deref(),
            Ok(&*text)
        );
        assert!(
            f.alice
                .open_request_state(keys, "tools/call", "import", &state)
                .is_err()
        );
        assert!(f.alice.open_handle(keys, &state).is_err());
    }
});
