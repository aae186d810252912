//! Real TLS (issue 4): discovery and the key set served over HTTPS on
//! loopback by a [`TestIssuer`] whose certificate comes from a CA generated
//! in the test (rcgen). The verifier trusts exactly that CA; a wrong CA or a
//! certificate for another host fails closed (503), and the key server never
//! sees a request.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::rig;

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, AuthErrorKind, BearerToken, JwtVerifier, TokenVerifier};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rig::Rig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const HOST: &str = "issuer.test";
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A certificate authority made for one test.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A rustls server configuration for `host`, signed by this CA.
    fn server_config(&self, host: &str) -> Arc<rustls::ServerConfig> {
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params.use_authority_key_identifier_extension = true;
        params
            .extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        Arc::new(config)
    }

    fn certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap()
    }
}

/// An HTTPS issuer for `HOST` whose certificate is signed by `ca` for `cert_host`.
async fn https_issuer(ca: &TestCa, cert_host: &str) -> TestIssuer {
    TestIssuer::builder()
        .tls(ca.server_config(cert_host), HOST)
        .start()
        .await
        .unwrap()
}

/// A client that trusts only `ca` and resolves `HOST` to the issuer.
fn client(issuer: &TestIssuer, ca: &TestCa) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([ca.certificate()])
        .resolve(HOST, issuer.local_addr())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// HTTPS everywhere: no loopback opt-in.
fn config(issuer: &TestIssuer) -> AuthConfig {
    AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .build()
        .unwrap()
}

async fn verify(v: &JwtVerifier, token: &str) -> Result<(), AuthErrorKind> {
    v.verify(BearerToken::new(token))
        .await
        .map(|_| ())
        .map_err(|e| e.kind())
}

// RFC 8414 section 3 and SPEC-NOTES "All authorization server endpoints are
// HTTPS": discovery and the key set over real TLS, with a trusted test CA.
#[tokio::test]
async fn discovery_and_keys_over_https_with_a_test_ca() {
    let ca = TestCa::new("test CA");
    let issuer = https_issuer(&ca, HOST).await;
    assert!(issuer.issuer().starts_with("https://issuer.test:"));
    let v = JwtVerifier::with_http_client(&config(&issuer), client(&issuer, &ca));
    let token = issuer.token().audience(RESOURCE).sign();
    verify(&v, &token).await.unwrap();
    assert!(v.is_ready());
    assert_eq!(issuer.metadata_hits(), 1);
    assert_eq!(issuer.jwks_hits(), 1);
}

// RFC 9110 section 4.3.4 / RFC 6125: a server whose certificate chains to a
// CA we do not trust is not our issuer: fail closed, nothing fetched.
#[tokio::test]
async fn a_certificate_from_another_ca_fails_closed() {
    let ours = TestCa::new("our CA");
    let theirs = TestCa::new("their CA");
    let issuer = https_issuer(&theirs, HOST).await;
    let v = JwtVerifier::with_http_client(&config(&issuer), client(&issuer, &ours));
    let token = issuer.token().audience(RESOURCE).sign();
    assert_eq!(
        verify(&v, &token).await,
        Err(AuthErrorKind::KeysUnavailable)
    );
    assert!(!v.is_ready());
    assert_eq!(issuer.total_hits(), 0);

    // The same through the HTTP layer: 503 with Retry-After, never 200.
    let iss = issuer.issuer().to_owned();
    let rig = Rig::with_verifier(
        issuer,
        |resource| {
            AuthConfig::builder()
                .issuer(iss)
                .resource(resource)
                .allow_insecure_http_for_loopback(true)
                .build()
                .unwrap()
        },
        |_| v.clone(),
    )
    .await;
    let outcome = rig.send(&token).await;
    assert_eq!(outcome.status, 503, "{outcome:?}");
    assert_eq!(outcome.retry_after.as_deref(), Some("5"));
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 6125 section 6 / RFC 9110 section 4.3.4: a certificate from the
// trusted CA but for another host name fails closed too.
#[tokio::test]
async fn a_certificate_for_another_host_fails_closed() {
    let ca = TestCa::new("test CA");
    let issuer = https_issuer(&ca, "other.test").await;
    let v = JwtVerifier::with_http_client(&config(&issuer), client(&issuer, &ca));
    let token = issuer.token().audience(RESOURCE).sign();
    assert_eq!(
        verify(&v, &token).await,
        Err(AuthErrorKind::KeysUnavailable)
    );
    assert_eq!(issuer.total_hits(), 0);
}

// The default client trusts the platform's roots, not a CA made up in a
// test: the same issuer is refused without the explicit trust above.
#[tokio::test]
async fn the_default_client_does_not_trust_a_test_ca() {
    let ca = TestCa::new("test CA");
    let issuer = https_issuer(&ca, HOST).await;
    // Same trust store as the default (platform roots), but resolving HOST.
    let platform = reqwest::Client::builder()
        .resolve(HOST, issuer.local_addr())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let v = JwtVerifier::with_http_client(&config(&issuer), platform);
    let token = issuer.token().audience(RESOURCE).sign();
    assert_eq!(
        verify(&v, &token).await,
        Err(AuthErrorKind::KeysUnavailable)
    );
    assert_eq!(issuer.total_hits(), 0);
}

// SPEC-NOTES / RFC 8414 section 2: `http://` issuers are refused at build
// time unless the loopback escape hatch is explicitly set.
#[tokio::test]
async fn plain_http_needs_the_loopback_opt_in() {
    let issuer = TestIssuer::start().await.unwrap();
    let err = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "issuer");
    let err = AuthConfig::builder()
        .issuer("https://as.example")
        .jwks_uri("http://as.example/jwks")
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "jwks_uri");
}
