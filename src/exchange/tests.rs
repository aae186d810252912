//! Unit tests of the exchange's small parts: error codes, reuse time, cache
//! keys, redaction.

use std::time::Duration;

use super::cache::{key, reuse_for};
use super::error::is_error_code;
use super::*;
use crate::context::SubjectToken;

// RFC 6749 section 5.2: the error codes mapped to kinds; anything else is
// `Refused` with its code kept.
#[test]
fn refusals_map_to_kinds() {
    for (code, kind) in [
        ("invalid_grant", ExchangeErrorKind::InvalidGrant),
        ("unauthorized_client", ExchangeErrorKind::UnauthorizedClient),
        ("invalid_client", ExchangeErrorKind::InvalidClient),
        ("invalid_target", ExchangeErrorKind::InvalidTarget),
        ("invalid_scope", ExchangeErrorKind::InvalidScope),
        ("consent_required", ExchangeErrorKind::Refused),
    ] {
        let err = ExchangeError::refused(code);
        assert_eq!(err.kind(), kind);
        assert_eq!(err.code(), code);
        assert!(err.to_string().contains(code));
        assert!(format!("{err:?}").contains(code));
    }
    let err = ExchangeError::new(ExchangeErrorKind::Transport, "down");
    assert_eq!(err.code(), "transport");
    assert_eq!(err.to_string(), "token exchange failed: transport: down");
    assert!(is_error_code("invalid_grant"));
    for bad in ["", "a\"b", "a\\b", "é", &"x".repeat(65), "a\nb"] {
        assert!(!is_error_code(bad), "{bad:?}");
    }
}

// Never past `expires_in` minus the margin; nothing kept without it.
#[test]
fn reuse_time() {
    let margin = Duration::from_secs(30);
    assert_eq!(reuse_for(Some(300), margin), Some(Duration::from_secs(270)));
    assert_eq!(reuse_for(Some(30), margin), None);
    assert_eq!(reuse_for(Some(10), margin), None);
    assert_eq!(reuse_for(None, margin), None);
    assert_eq!(
        reuse_for(Some(u64::MAX), Duration::ZERO),
        Some(Duration::from_secs(u64::MAX))
    );
}

// Every element of the tuple changes the key; fields cannot be shifted
// into one another; the caller's scopes count in any order.
#[test]
fn cache_keys_separate_principals_and_requests() {
    let ctx = |iss: &str, sub: &str, client: &str, scopes: &[&str]| {
        crate::AuthContext::builder(iss, sub)
            .client_id(client)
            .scopes(scopes.iter().copied())
            .build()
    };
    let base = ctx("https://as", "alice", "app", &["a", "b"]);
    let k = |c: &crate::AuthContext, me: &str, grant: &str, aud: &str, scopes: &[&str]| {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        key(c, me, grant, aud, &scopes)
    };
    let reference = k(&base, "rs", "g", "https://api", &["read"]);
    assert_eq!(
        reference,
        k(
            &ctx("https://as", "alice", "app", &["b", "a", "a"]),
            "rs",
            "g",
            "https://api",
            &["read"]
        )
    );
    let other_tenant = crate::AuthContext::builder("https://as", "alice")
        .client_id("app")
        .scopes(["a", "b"])
        .tenant("org_other")
        .build();
    let others = [
        k(&other_tenant, "rs", "g", "https://api", &["read"]),
        k(
            &ctx("https://as2", "alice", "app", &["a", "b"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
        k(
            &ctx("https://as", "bob", "app", &["a", "b"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
        k(
            &ctx("https://as", "alice", "app2", &["a", "b"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
        k(
            &ctx("https://as", "alice", "app", &["a"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
        k(&base, "rs2", "g", "https://api", &["read"]),
        k(&base, "rs", "g2", "https://api", &["read"]),
        k(&base, "rs", "g", "https://api2", &["read"]),
        k(&base, "rs", "g", "https://api", &["write"]),
        k(&base, "rs", "g", "https://api", &[]),
        // Shifting text between fields.
        k(
            &ctx("https://a", "salice", "app", &["a", "b"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
    ];
    for other in others {
        assert_ne!(reference, other);
    }
}

// Nothing secret in Debug output; the subject token reads after its scheme.
#[test]
fn redacted_debug_and_subject_token() {
    let token = ExchangedToken {
        token: "secret-token-value".into(),
        expires_at: None,
        scope: Some("read".into()),
    };
    assert_eq!(token.secret(), "secret-token-value");
    assert_eq!(token.scope(), Some("read"));
    assert!(token.expires_at().is_none());
    assert!(!format!("{token:?}").contains("secret-token-value"));
    let stored = StoredToken::new(
        "secret-token-value".into(),
        std::time::SystemTime::now(),
        None,
    );
    assert!(!format!("{stored:?}").contains("secret-token-value"));
    for (header, expected) in [
        ("Bearer abc.def", Some("abc.def")),
        ("DPoP   abc", Some("abc")),
        ("Bearer ", None),
        ("Bearer", None),
    ] {
        let t = SubjectToken::new(http::HeaderValue::from_static(header));
        assert_eq!(t.expose(), expected, "{header}");
        assert_eq!(format!("{t:?}"), "SubjectToken([redacted])");
    }
    let ctx = crate::AuthContext::builder("i", "s")
        .build()
        .with_subject_token(SubjectToken::new(http::HeaderValue::from_static(
            "Bearer very-secret",
        )));
    assert!(!format!("{ctx:?}").contains("very-secret"));
    let request = ExchangeRequest::audience("https://api").scopes(["b", "a", "b"]);
    assert!(format!("{request:?}").contains("[\"a\", \"b\"]"));
}
