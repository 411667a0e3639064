//! OpenAI-compatible upstreams (`openai/`, `hosted_vllm/`, any server at `api_base`): the
//! request passes through with the model renamed; unknown fields are kept.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::transport::{self, UpstreamUrl};
use super::{
    Endpoint, ProviderError, ProviderResponse, ProviderUnavailable, UpstreamRequest,
    parse_retry_after, prepare_body, sse, usage_of,
};
use crate::config::Deployment;
use crate::secret::scrub;

/// LiteLLM's default `request_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    base_url: String,
    /// The three endpoint URLs parsed once (chat, completions, embeddings): parsing a URL per
    /// request showed in the profile. `None` when `api_base` does not parse; every request
    /// then fails as an unreachable upstream (502) naming the redacted `api_base`.
    urls: Option<Box<[UpstreamUrl; 3]>>,
    headers: HeaderMap,
    http: reqwest::Client,
    /// Upstream key, to scrub from any error text an upstream echoes back.
    secret: Option<String>,
}

impl OpenAiCompatible {
    pub fn new(d: &Deployment, http: reqwest::Client) -> Result<Self, ProviderUnavailable> {
        let base_url = d
            .api_base
            .clone()
            .unwrap_or_else(|| "https://api.openai.com/v1".to_string());
        let mut headers = extra_headers(d)?;
        if let Some(key) = &d.api_key {
            let value =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    ProviderUnavailable(
                        "api_key contains characters not allowed in a header".into(),
                    )
                })?;
            headers.insert(AUTHORIZATION, value);
        }
        if let Some(org) = &d.organization {
            let value = HeaderValue::from_str(org).map_err(|_| {
                ProviderUnavailable("organization is not a valid header value".into())
            })?;
            headers.insert(HeaderName::from_static("openai-organization"), value);
        }
        let urls = endpoint_urls(|endpoint| format!("{base_url}{}", endpoint.openai_path()));
        Ok(OpenAiCompatible {
            base_url,
            urls,
            headers,
            http,
            secret: d.api_key.as_ref().map(|k| k.expose().to_string()),
        })
    }

    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        let http = super::client_for_thread(&self.http);
        let secret = self.secret.as_deref();
        let Some(urls) = self.urls.as_deref() else {
            return Err(ProviderError::Connect(format!(
                "api_base '{}' is not a valid URL",
                crate::secret::redact_url(&self.base_url)
            )));
        };
        exchange(
            &http,
            endpoint_url(urls, request.endpoint),
            &self.headers,
            request,
            secret,
        )
        .await
    }
}

/// The URL of each endpoint, parsed once; `None` when any does not parse.
pub fn endpoint_urls(url_of: impl Fn(Endpoint) -> String) -> Option<Box<[UpstreamUrl; 3]>> {
    let parse = |endpoint| UpstreamUrl::parse(&url_of(endpoint));
    match (
        parse(Endpoint::Chat),
        parse(Endpoint::Completion),
        parse(Endpoint::Embedding),
    ) {
        (Some(chat), Some(completion), Some(embedding)) => {
            Some(Box::new([chat, completion, embedding]))
        }
        _ => None,
    }
}

/// The URL for an endpoint out of [`endpoint_urls`].
pub fn endpoint_url(urls: &[UpstreamUrl; 3], endpoint: Endpoint) -> &UpstreamUrl {
    match endpoint {
        Endpoint::Chat => &urls[0],
        Endpoint::Completion => &urls[1],
        Endpoint::Embedding => &urls[2],
    }
}

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

/// One OpenAI-wire exchange, shared by every OpenAI-shaped provider (OpenAI, vLLM, Azure).
pub async fn exchange(
    http: &reqwest::Client,
    url: &UpstreamUrl,
    headers: &HeaderMap,
    mut request: UpstreamRequest<'_>,
    secret: Option<&str>,
) -> Result<ProviderResponse, ProviderError> {
    let mut body = prepare_body(&mut request);
    let asked_usage = request.stream && request.want_stream_usage && wants_usage_added(&body);
    if request.stream {
        body.insert("stream".into(), Value::Bool(true));
        if asked_usage {
            add_include_usage(&mut body);
        }
    }
    let result = send(http, url, headers, &body, &request, secret).await;
    match result {
        // An upstream that does not know `stream_options` is asked again without it; usage
        // is then estimated by the caller.
        Err(ProviderError::Status {
            status: 400 | 422,
            body: ref answer,
            ..
        }) if asked_usage && String::from_utf8_lossy(answer).contains("stream_options") => {
            body.remove("stream_options");
            send(http, url, headers, &body, &request, secret).await
        }
        other => other,
    }
}

fn wants_usage_added(body: &Map<String, Value>) -> bool {
    !matches!(
        body.get("stream_options")
            .and_then(|o| o.get("include_usage")),
        Some(Value::Bool(true))
    )
}

fn add_include_usage(body: &mut Map<String, Value>) {
    match body.get_mut("stream_options") {
        Some(Value::Object(options)) => {
            options.insert("include_usage".into(), Value::Bool(true));
        }
        _ => {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
}

async fn send(
    http: &reqwest::Client,
    url: &UpstreamUrl,
    headers: &HeaderMap,
    body: &Map<String, Value>,
    request: &UpstreamRequest<'_>,
    secret: Option<&str>,
) -> Result<ProviderResponse, ProviderError> {
    let payload = serde_json::to_vec(body).map_err(|e| ProviderError::Connect(e.to_string()))?;
    let timeout = request.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let response = transport::post(http, url, headers, payload.into(), timeout, secret).await?;
    let status = response.status;
    if !status.is_success() {
        let retry_after = parse_retry_after(&response.headers);
        let body = response.bytes(timeout, secret).await.unwrap_or_default();
        return Err(ProviderError::Status {
            status: status.as_u16(),
            body: Bytes::from(scrub(
                &String::from_utf8_lossy(&body),
                &secret.into_iter().collect::<Vec<_>>(),
            )),
            retry_after,
        });
    }
    if request.stream {
        return Ok(ProviderResponse::Stream(sse::openai_chunks(
            response.into_stream(),
        )));
    }
    let body = response.bytes(timeout, secret).await?;
    let usage = usage_of(&body);
    Ok(ProviderResponse::Complete { body, usage })
}
