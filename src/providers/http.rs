//! The HTTP side every upstream call shares: LiteLLM's default timeout, a deployment's
//! `extra_headers`, `retry-after`, and the JSON exchange of the translating providers (one
//! POST with errors in OpenAI's shape, reading the answer), so no provider borrows these from
//! another.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::native::{ErrorTranslator, openai_error_body};
use super::transport::classify;
use super::{ProviderError, ProviderUnavailable};
use crate::config::Deployment;
use crate::error::ApiError;
use crate::secret::scrub;

/// LiteLLM's default `request_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// `litellm_params.extra_headers` as a header map.
pub fn extra_headers(d: &Deployment) -> Result<HeaderMap, ProviderUnavailable> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &d.extra_headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ProviderUnavailable(format!("extra_headers: '{name}' is not a header name"))
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            ProviderUnavailable(format!("extra_headers: value of '{name}' is not valid"))
        })?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// Parses `retry-after` (seconds or an HTTP date; only seconds are honoured).
pub fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// One POST to a provider. A non-success status becomes [`ProviderError::Status`] with the
/// body in OpenAI's shape (secrets removed); the router decides on retries from the status.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    body: &impl Serialize,
    timeout: Option<Duration>,
    secret: Option<&str>,
    errors: ErrorTranslator,
) -> Result<reqwest::Response, ProviderError> {
    let payload = serde_json::to_vec(body)
        .map_err(|e| ProviderError::Rejected(ApiError::internal(e.to_string())))?;
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let pending = http.post(url).headers(headers.clone()).body(payload).send();
    let response = match tokio::time::timeout(timeout, pending).await {
        Err(_) => {
            return Err(ProviderError::Timeout(format!(
                "no answer within {}s",
                timeout.as_secs_f64()
            )));
        }
        Ok(Err(e)) => return Err(classify(&e, secret)),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = parse_retry_after(response.headers());
    let raw = read_bytes(response, timeout, secret)
        .await
        .unwrap_or_default();
    let text = scrub(
        &String::from_utf8_lossy(&raw),
        &secret.into_iter().collect::<Vec<_>>(),
    );
    Err(ProviderError::Status {
        status: status.as_u16(),
        body: errors(status.as_u16(), text.trim()),
        retry_after,
    })
}

/// The whole body of an answer, at most `timeout`.
pub async fn read_bytes(
    response: reqwest::Response,
    timeout: Duration,
    secret: Option<&str>,
) -> Result<Bytes, ProviderError> {
    match tokio::time::timeout(timeout, response.bytes()).await {
        Err(_) => Err(ProviderError::Timeout(
            "the answer did not complete in time".into(),
        )),
        Ok(Err(e)) => Err(classify(&e, secret)),
        Ok(Ok(b)) => Ok(b),
    }
}

/// Reads a successful answer as JSON. An unreadable answer is a 502 (retryable: another
/// deployment may do better).
pub async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    timeout: Option<Duration>,
    secret: Option<&str>,
    provider: &str,
) -> Result<T, ProviderError> {
    let raw = read_bytes(response, timeout.unwrap_or(DEFAULT_TIMEOUT), secret).await?;
    serde_json::from_slice(&raw).map_err(|e| ProviderError::Status {
        status: 502,
        body: openai_error_body(
            provider,
            502,
            None,
            &format!("the upstream answer could not be read: {e}"),
        ),
        retry_after: None,
    })
}
