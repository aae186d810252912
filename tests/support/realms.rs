//! One key server for several tenants, shaped like Keycloak (one realm per
//! tenant): `GET /realms/{realm}/protocol/openid-connect/certs` serves the
//! current JWK Set of that realm's own [`TestIssuer`] (its own keys), and
//! `GET /realms/{realm}/.well-known/openid-configuration` its discovery
//! document (as Keycloak does: `issuer` and `jwks_uri` under the realm);
//! 404 for any other realm. Every request is counted, per realm and in
//! total, so tests can prove that a refused tenant never caused a fetch.
//! A realm's key set can be moved ([`Realms::relocate_keys`]): it is then
//! served at `GET /realms/{realm}/keys` only, and the discovery document
//! names that URL.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mcp_oauth2::testing::{TestIssuer, TokenBuilder};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Hits {
    per_realm: HashMap<String, usize>,
    total: usize,
    /// Discovery documents served (or refused), per realm.
    discovery: HashMap<String, usize>,
    /// Realms whose key set moved to `/realms/{realm}/keys`.
    relocated: std::collections::HashSet<String>,
}

/// Realms on one loopback server.
pub struct Realms {
    /// `http://127.0.0.1:PORT` (the Keycloak server URL).
    pub base: String,
    realms: Arc<HashMap<String, TestIssuer>>,
    hits: Arc<Mutex<Hits>>,
    ct: CancellationToken,
}

impl Drop for Realms {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

type Shared = (Arc<HashMap<String, TestIssuer>>, Arc<Mutex<Hits>>);

async fn certs(state: State<Shared>, realm: Path<String>) -> Response {
    keys_at(state, realm, false)
}

async fn moved_certs(state: State<Shared>, realm: Path<String>) -> Response {
    keys_at(state, realm, true)
}

/// The realm's key set, if it is served at the original URL (`moved`
/// false) or the new one (`moved` true) now.
fn keys_at(
    State((realms, hits)): State<Shared>,
    Path(realm): Path<String>,
    moved: bool,
) -> Response {
    let here = {
        let mut hits = hits.lock().unwrap();
        hits.total += 1;
        *hits.per_realm.entry(realm.clone()).or_default() += 1;
        hits.relocated.contains(&realm) == moved
    };
    match realms.get(&realm) {
        Some(issuer) if here => axum::Json(issuer.jwks()).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn discovery(
    State((realms, hits)): State<Shared>,
    Path(realm): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let moved = {
        let mut hits = hits.lock().unwrap();
        *hits.discovery.entry(realm.clone()).or_default() += 1;
        hits.relocated.contains(&realm)
    };
    if !realms.contains_key(&realm) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let issuer = format!("http://{host}/realms/{realm}");
    axum::Json(serde_json::json!({
        "issuer": issuer,
        "jwks_uri": if moved {
            format!("{issuer}/keys")
        } else {
            format!("{issuer}/protocol/openid-connect/certs")
        },
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

impl Realms {
    /// Starts one `TestIssuer` per realm and the key server in front.
    pub async fn start(names: &[&str]) -> Self {
        let mut realms = HashMap::new();
        for name in names {
            realms.insert((*name).to_owned(), TestIssuer::start().await.unwrap());
        }
        let realms = Arc::new(realms);
        let hits = Arc::new(Mutex::new(Hits::default()));
        let app = Router::new()
            .route("/realms/{realm}/protocol/openid-connect/certs", get(certs))
            .route("/realms/{realm}/keys", get(moved_certs))
            .route(
                "/realms/{realm}/.well-known/openid-configuration",
                get(discovery),
            )
            .with_state((Arc::clone(&realms), Arc::clone(&hits)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let ct = CancellationToken::new();
        let stop = ct.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        Self {
            base,
            realms,
            hits,
            ct,
        }
    }

    /// The issuer of `realm`: `{base}/realms/{realm}`.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base)
    }

    /// A token of `realm`, signed with that realm's key, `iss` its issuer.
    pub fn token(&self, realm: &str) -> TokenBuilder<'_> {
        self.signer(realm)
            .token()
            .claim("iss", serde_json::json!(self.issuer(realm)))
    }

    /// The realm's own issuer (its keys).
    pub fn signer(&self, realm: &str) -> &TestIssuer {
        &self.realms[realm]
    }

    /// Key-set requests for `realm` (known or not).
    pub fn hits(&self, realm: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .per_realm
            .get(realm)
            .copied()
            .unwrap_or(0)
    }

    /// Discovery-document requests for `realm` (known or not).
    pub fn discovery_hits(&self, realm: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .discovery
            .get(realm)
            .copied()
            .unwrap_or(0)
    }

    /// Moves `realm`'s key set: from now on the old URL answers 404, the
    /// key set is served at `/realms/{realm}/keys`, and the discovery
    /// document names the new URL.
    pub fn relocate_keys(&self, realm: &str) {
        self.hits.lock().unwrap().relocated.insert(realm.to_owned());
    }

    /// Key-set requests for any realm.
    pub fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().total
    }
}
