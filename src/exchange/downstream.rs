//! [`DownstreamClient`]: calls a downstream API with an exchanged token,
//! within a deadline, never following a redirect to another origin.

use std::time::Duration;

use url::Url;

use super::error::{ExchangeError, ExchangeErrorKind};
use super::token::ExchangedToken;
use crate::error::ConfigError;

/// Most redirects followed within one origin.
const MAX_REDIRECTS: usize = 5;

/// A small wrapper over [`reqwest::Client`] for downstream calls made with
/// an [`ExchangedToken`]:
///
/// - the token goes out as `Authorization: Bearer`, marked sensitive;
/// - every request has a deadline (connect and total);
/// - a redirect is followed only within the origin (scheme, host, port) of
///   the URL asked for, at most five times; a redirect elsewhere is not
///   followed and its 3xx response is returned as it is, so the token never
///   reaches another origin;
/// - the URL must be `https://` (`http://` on loopback hosts with
///   [`allow_insecure_http_for_loopback`](Self::allow_insecure_http_for_loopback)).
#[derive(Debug, Clone)]
pub struct DownstreamClient {
    client: crate::fetch::HttpClient,
    allow_insecure_loopback: bool,
}

impl DownstreamClient {
    /// A client whose requests must finish within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, ConfigError> {
        let policy = || {
            reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if !same_origin {
                    attempt.stop()
                } else if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            })
        };
        // A loopback URL (`http://` with the opt-in) is reached directly,
        // never through a proxy of the environment (see `HttpClient`).
        let client = crate::fetch::client_with(timeout, policy)?;
        Ok(Self {
            client,
            allow_insecure_loopback: false,
        })
    }

    /// **Development only**: allow `http://` URLs on loopback hosts.
    #[must_use]
    pub fn allow_insecure_http_for_loopback(mut self, on: bool) -> Self {
        self.allow_insecure_loopback = on;
        self
    }

    /// A request to `url` carrying `token` as Bearer, to complete and send.
    pub fn request(
        &self,
        method: http::Method,
        url: &str,
        token: &ExchangedToken,
    ) -> Result<reqwest::RequestBuilder, ExchangeError> {
        let url = Url::parse(url).map_err(|e| {
            ExchangeError::new(ExchangeErrorKind::Downstream, format!("not a URL: {e}"))
        })?;
        crate::config::check_https(&url, self.allow_insecure_loopback, "downstream_url")
            .map_err(|e| ExchangeError::new(ExchangeErrorKind::Downstream, e.message()))?;
        let mut bearer = http::HeaderValue::try_from(format!("Bearer {}", token.secret()))
            .map_err(|_| {
                ExchangeError::new(
                    ExchangeErrorKind::MalformedResponse,
                    "the exchanged token is not a valid header value",
                )
            })?;
        bearer.set_sensitive(true);
        Ok(self
            .client
            .request(method, &url)
            .header(http::header::AUTHORIZATION, bearer))
    }

    /// GETs `url` with `token` as Bearer. Any status is returned as it is.
    pub async fn get(
        &self,
        url: &str,
        token: &ExchangedToken,
    ) -> Result<reqwest::Response, ExchangeError> {
        self.request(http::Method::GET, url, token)?
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    crate::fetch::request_error(e)
                };
                ExchangeError::new(ExchangeErrorKind::Downstream, what)
            })
    }
}
