//! Rules checked against the examples in `spec-fixtures/`, each with its source.

use serde_json::Value;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

// RFC 9728 section 3.1 and the MCP spec's "Protected Resource Metadata
// Discovery Requirements": where the metadata of a resource lives.
#[test]
fn protected_resource_metadata_locations() {
    let rfc = fixture(include_str!(
        "../spec-fixtures/rfc9728-metadata-example.json"
    ));
    let mcp = fixture(include_str!("../spec-fixtures/mcp-challenges.json"));
    let mut checked = 0;
    for ex in rfc["well_known_examples"].as_array().unwrap() {
        let config = crate::AuthConfig::builder()
            .issuer("https://as.example.com")
            .resource(ex["resource"].as_str().unwrap())
            .build()
            .unwrap();
        assert_eq!(
            config.resource_metadata_url(),
            ex["metadata_url"].as_str().unwrap()
        );
        assert_eq!(config.resource(), ex["resource"].as_str().unwrap());
        checked += 1;
    }
    for ex in mcp["protected_resource_metadata_urls"].as_array().unwrap() {
        let config = crate::AuthConfig::builder()
            .issuer("https://as.example.com")
            .resource(ex["resource"].as_str().unwrap())
            .build()
            .unwrap();
        let urls = ex["metadata_urls"].as_array().unwrap();
        // Path-inserted first (the challenge points there), root as fallback:
        // the layer serves both.
        assert_eq!(config.resource_metadata_url(), urls[0].as_str().unwrap());
        let endpoint = crate::metadata::MetadataEndpoint::new(&config);
        for url in urls {
            let path = url::Url::parse(url.as_str().unwrap())
                .unwrap()
                .path()
                .to_owned();
            assert!(endpoint.serves(&path), "{path}");
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
}

// RFC 8414 section 3.1 and the MCP spec's "Authorization Server Metadata
// Discovery": the order in which issuer metadata is looked for.
#[test]
fn authorization_server_metadata_locations() {
    let rfc = fixture(include_str!(
        "../spec-fixtures/rfc8414-metadata-example.json"
    ));
    for ex in rfc["well_known_examples"].as_array().unwrap() {
        let urls = crate::fetch::discovery_urls(ex["issuer"].as_str().unwrap()).unwrap();
        assert_eq!(urls[0].as_str(), ex["metadata_url"].as_str().unwrap());
    }
    let mcp = fixture(include_str!("../spec-fixtures/mcp-challenges.json"));
    for ex in mcp["authorization_server_metadata_urls"]
        .as_array()
        .unwrap()
    {
        let urls: Vec<String> = crate::fetch::discovery_urls(ex["issuer"].as_str().unwrap())
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        let expected: Vec<&str> = ex["metadata_urls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap())
            .collect();
        assert_eq!(urls, expected);
    }
}

// RFC 6750 section 3.1: the error codes and their statuses.
#[test]
fn rfc6750_error_codes_and_statuses() {
    use crate::error::{AuthErrorKind, ErrorCode};
    let rfc = fixture(include_str!("../spec-fixtures/rfc6750-challenges.json"));
    let kinds = [
        AuthErrorKind::MalformedAuthorizationHeader,
        AuthErrorKind::Expired,
        AuthErrorKind::InsufficientScope,
    ];
    for (ex, kind) in rfc["error_codes"].as_array().unwrap().iter().zip(kinds) {
        assert_eq!(
            kind.error_code().map(ErrorCode::as_str),
            ex["error"].as_str()
        );
        assert_eq!(
            u64::from(kind.status().as_u16()),
            ex["status"].as_u64().unwrap()
        );
    }
    // The challenge examples parse with our parser.
    for ex in rfc["examples"].as_array().unwrap() {
        let params =
            crate::challenge::parse_bearer_challenge(ex["www_authenticate"].as_str().unwrap())
                .unwrap();
        assert_eq!(params[0], ("realm".to_owned(), "example".to_owned()));
    }
}

// RFC 6750 section 2.1: the example Authorization header is a valid b64token.
#[test]
fn rfc6750_authorization_header_example() {
    let rfc = fixture(include_str!("../spec-fixtures/rfc6750-challenges.json"));
    let line = rfc["authorization_header_example"].as_str().unwrap();
    let value = line.strip_prefix("Authorization: ").unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
    match crate::bearer::read_bearer(&headers, 8192) {
        Ok(crate::bearer::Credentials::Bearer(t)) => assert_eq!(t.as_str(), "mF_9.B5f-4.1JqM"),
        other => panic!("{other:?}"),
    }
}
