//! The layer asks a verifier for a quick answer (`verify_cached`) before it
//! builds a verification future: a known token is admitted without one, an
//! unknown token is verified as before, and the rules (scopes, challenges)
//! are the same on both paths.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use mcp_oauth2::{
    AuthConfig, AuthContext, AuthError, AuthErrorKind, AuthLayer, BearerToken, TokenVerifier,
    VerifyFuture,
};

const ISSUER: &str = "https://issuer.example";

/// Accepts tokens `ok-<subject>-<scope>`; remembers what it verified and
/// counts both kinds of call.
#[derive(Default)]
struct Remembering {
    known: Mutex<HashSet<String>>,
    verified: AtomicUsize,
    quick: AtomicUsize,
}

fn context(token: &str) -> Option<AuthContext> {
    let mut parts = token.strip_prefix("ok-")?.splitn(2, '-');
    let (subject, scope) = (parts.next()?, parts.next()?);
    Some(
        AuthContext::builder(ISSUER, subject)
            .scopes([scope])
            .build(),
    )
}

impl TokenVerifier for Remembering {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        Box::pin(async move {
            self.verified.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            let ctx = context(token.as_str()).ok_or(AuthError::new(AuthErrorKind::Rejected))?;
            self.known.lock().unwrap().insert(token.as_str().to_owned());
            Ok(ctx)
        })
    }

    fn verify_cached(&self, token: BearerToken<'_>) -> Option<AuthContext> {
        self.quick.fetch_add(1, Ordering::SeqCst);
        if self.known.lock().unwrap().contains(token.as_str()) {
            context(token.as_str())
        } else {
            None
        }
    }
}

async fn serve(verifier: Arc<Remembering>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = AuthConfig::builder()
        .issuer(ISSUER)
        .resource(format!("{base}/api"))
        .required_scopes(["read"])
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let app: Router = Router::new()
        .route(
            "/api",
            get(|auth: AuthContext| async move { auth.subject().to_owned() }),
        )
        .layer(AuthLayer::with_verifier(config, verifier));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn get_with(url: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_known_token_skips_verification_with_the_same_rules() {
    let verifier = Arc::new(Remembering::default());
    let base = serve(Arc::clone(&verifier)).await;
    let url = format!("{base}/api");
    let counts = || {
        (
            verifier.quick.load(Ordering::SeqCst),
            verifier.verified.load(Ordering::SeqCst),
        )
    };

    // First sight: asked quickly (no answer), then verified.
    let resp = get_with(&url, Some("Bearer ok-alice-read")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "alice");
    assert_eq!(counts(), (1, 1));

    // Known: admitted on the quick answer alone, the context reaches the handler.
    for _ in 0..3 {
        let resp = get_with(&url, Some("Bearer ok-alice-read")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "alice");
    }
    assert_eq!(counts(), (4, 1));

    // A known token without the required scope: the same 403 step-up
    // challenge as after a full verification (RFC 6750 section 3.1).
    let first = get_with(&url, Some("Bearer ok-bob-write")).await;
    let again = get_with(&url, Some("Bearer ok-bob-write")).await;
    assert_eq!(counts(), (6, 2));
    for resp in [first, again] {
        assert_eq!(resp.status(), 403);
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        assert!(challenge.contains(r#"scope="read""#), "{challenge}");
        assert!(challenge.contains("resource_metadata="), "{challenge}");
    }

    // No credentials or a malformed header: answered at once, the verifier
    // is not asked at all.
    let none = get_with(&url, None).await;
    assert_eq!(none.status(), 401);
    assert!(
        !none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=")
    );
    let malformed = get_with(&url, Some("Bearer a b")).await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(counts(), (6, 2));

    // An unknown, bad token: asked, verified, refused with invalid_token.
    let bad = get_with(&url, Some("Bearer nope")).await;
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    assert_eq!(counts(), (7, 3));
}
