//! OpenAI-compatible upstreams (`openai/`, `hosted_vllm/`, any server at `api_base`): the
//! request passes through with the model renamed; unknown fields are kept.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::http::{DEFAULT_TIMEOUT, extra_headers, parse_retry_after};
use super::transport::{self, UpstreamUrl};
use super::{Endpoint, ProviderError, ProviderResponse, ProviderUnavailable, UpstreamRequest, sse};
use crate::api::usage_of;
use crate::config::Deployment;
use crate::secret::scrub;

#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    base_url: String,
    /// The endpoint URLs parsed once (chat, completions, embeddings, responses): parsing a URL
    /// per request showed in the profile. `None` when `api_base` does not parse; every request
    /// then fails as an unreachable upstream (502) naming the redacted `api_base`.
    urls: Option<Box<[UpstreamUrl; 4]>>,
    /// The server serves OpenAI's Responses API itself: OpenAI's own, or one whose
    /// `model_info.supports_responses_api` says so (vLLM, Ollama and LM Studio mostly do not).
    serves_responses: bool,
    headers: HeaderMap,
    /// Upstream key, to scrub from any error text an upstream echoes back.
    secret: Option<String>,
}

impl OpenAiCompatible {
    /// The upstream's model listing (`GET {api_base}/models`), for `check`.
    pub fn listing(&self) -> super::Listing<'_> {
        super::Listing {
            url: format!("{}/models", self.base_url.trim_end_matches('/')),
            headers: &self.headers,
            secret: self.secret.as_deref(),
        }
    }

    pub fn new(d: &Deployment) -> Result<Self, ProviderUnavailable> {
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
        let serves_responses = d.supports_responses_api || is_openais_own(&base_url);
        Ok(OpenAiCompatible {
            serves_responses,
            base_url,
            urls,
            headers,
            secret: d.api_key.as_ref().map(|k| k.expose().to_string()),
        })
    }

    /// Whether `/v1/responses` goes to this server as it is (else it is bridged onto chat).
    pub fn serves_responses(&self) -> bool {
        self.serves_responses
    }

    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        let secret = self.secret.as_deref();
        let Some(urls) = self.urls.as_deref() else {
            return Err(ProviderError::Connect(format!(
                "api_base '{}' is not a valid URL",
                crate::secret::redact_url(&self.base_url)
            )));
        };
        exchange(
            endpoint_url(urls, request.endpoint),
            &self.headers,
            request,
            secret,
        )
        .await
    }
}

/// OpenAI's own API (the default `api_base`, or any base on `api.openai.com`).
fn is_openais_own(base_url: &str) -> bool {
    reqwest::Url::parse(base_url).is_ok_and(|u| u.host_str() == Some("api.openai.com"))
}

/// The URL of each endpoint, parsed once; `None` when any does not parse.
pub fn endpoint_urls(url_of: impl Fn(Endpoint) -> String) -> Option<Box<[UpstreamUrl; 4]>> {
    let parse = |endpoint| UpstreamUrl::parse(&url_of(endpoint));
    match (
        parse(Endpoint::Chat),
        parse(Endpoint::Completion),
        parse(Endpoint::Embedding),
        parse(Endpoint::Responses),
    ) {
        (Some(chat), Some(completion), Some(embedding), Some(responses)) => {
            Some(Box::new([chat, completion, embedding, responses]))
        }
        _ => None,
    }
}

/// The URL for an endpoint out of [`endpoint_urls`].
pub fn endpoint_url(urls: &[UpstreamUrl; 4], endpoint: Endpoint) -> &UpstreamUrl {
    match endpoint {
        // A Messages request reaches an OpenAI-wire provider translated into a chat.
        Endpoint::Chat | Endpoint::Messages => &urls[0],
        Endpoint::Completion => &urls[1],
        Endpoint::Embedding => &urls[2],
        Endpoint::Responses => &urls[3],
    }
}

/// One OpenAI-wire exchange, shared by every OpenAI-shaped provider (OpenAI, vLLM, Azure).
pub async fn exchange(
    url: &UpstreamUrl,
    headers: &HeaderMap,
    request: UpstreamRequest<'_>,
    secret: Option<&str>,
) -> Result<ProviderResponse, ProviderError> {
    if request.endpoint == Endpoint::Responses {
        return responses_exchange(url, headers, request, secret).await;
    }
    let mut body = WireBody::new(&request);
    let result = send(url, headers, &body, &request, secret).await;
    match result {
        // An upstream that does not know `stream_options` is asked again without it; usage
        // is then estimated by the caller.
        Err(ProviderError::Status {
            status: 400 | 422,
            body: ref answer,
            ..
        }) if body.stream_options == StreamOptions::AddIncludeUsage
            && String::from_utf8_lossy(answer).contains("stream_options") =>
        {
            body.stream_options = StreamOptions::Omit;
            send(url, headers, &body, &request, secret).await
        }
        other => other,
    }
}

/// What the upstream body carries as `stream_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamOptions {
    /// The client's (or the deployment's default), unchanged.
    AsSent,
    /// With `include_usage: true`, so the stream ends with the usage spend is charged on.
    AddIncludeUsage,
    /// None (the upstream rejected the field).
    Omit,
}

/// The body sent upstream: the client's fields in their order with `model` renamed, then the
/// deployment's default parameters the client did not set; for a stream `stream: true` and,
/// when the gateway wants usage, `stream_options.include_usage`.
///
/// Written from the client's document in place rather than from an edited copy: copying the
/// document for every attempt (the router keeps the original for retries) cost about as much
/// as writing it out.
struct WireBody<'a> {
    body: &'a Map<String, Value>,
    defaults: &'a Map<String, Value>,
    model: String,
    stream: bool,
    stream_options: StreamOptions,
}

impl<'a> WireBody<'a> {
    fn new(request: &UpstreamRequest<'a>) -> Self {
        let mut wire = WireBody {
            body: request.body,
            defaults: &request.deployment.default_params,
            model: request.deployment.upstream_model(request.requested_model),
            stream: request.stream,
            stream_options: StreamOptions::AsSent,
        };
        let include_usage = wire
            .field("stream_options")
            .and_then(|o| o.get("include_usage"));
        if request.stream
            && request.want_stream_usage
            && !matches!(include_usage, Some(Value::Bool(true)))
        {
            wire.stream_options = StreamOptions::AddIncludeUsage;
        }
        wire
    }

    /// A field as the upstream would see it before the gateway's own changes.
    fn field(&self, name: &str) -> Option<&'a Value> {
        self.body.get(name).or_else(|| self.defaults.get(name))
    }

    fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    fn entry<M: SerializeMap>(
        &self,
        map: &mut M,
        name: &str,
        value: &Value,
    ) -> Result<(), M::Error> {
        match name {
            "model" => map.serialize_entry(name, &self.model),
            "stream" if self.stream => map.serialize_entry(name, &true),
            "stream_options" => match self.stream_options {
                StreamOptions::AsSent => map.serialize_entry(name, value),
                StreamOptions::Omit => Ok(()),
                StreamOptions::AddIncludeUsage => {
                    map.serialize_entry(name, &WithIncludeUsage(value.as_object()))
                }
            },
            _ => map.serialize_entry(name, value),
        }
    }
}

impl Serialize for WireBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.body {
            self.entry(&mut map, name, value)?;
        }
        for (name, value) in self.defaults {
            if !self.body.contains_key(name) {
                self.entry(&mut map, name, value)?;
            }
        }
        if !self.has("model") {
            map.serialize_entry("model", &self.model)?;
        }
        if self.stream && !self.has("stream") {
            map.serialize_entry("stream", &true)?;
        }
        if self.stream_options == StreamOptions::AddIncludeUsage && !self.has("stream_options") {
            map.serialize_entry("stream_options", &WithIncludeUsage(None))?;
        }
        map.end()
    }
}

/// A `stream_options` object with `include_usage: true` (in place when the object has it).
struct WithIncludeUsage<'a>(Option<&'a Map<String, Value>>);

impl Serialize for WithIncludeUsage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let options = self.0.into_iter().flatten();
        for (name, value) in options {
            if name == "include_usage" {
                map.serialize_entry(name, &true)?;
            } else {
                map.serialize_entry(name, value)?;
            }
        }
        if !self.0.is_some_and(|o| o.contains_key("include_usage")) {
            map.serialize_entry("include_usage", &true)?;
        }
        map.end()
    }
}

/// A Responses API request to a server that serves it: the client's body with the model
/// renamed and the deployment's defaults, nothing added (`stream_options` is not the chat
/// one there); the answer, and each stream event as it arrives, passed back as sent, usage
/// read on the way (`response.completed`).
async fn responses_exchange(
    url: &UpstreamUrl,
    headers: &HeaderMap,
    request: UpstreamRequest<'_>,
    secret: Option<&str>,
) -> Result<ProviderResponse, ProviderError> {
    use futures::StreamExt;
    let mut body = super::native::body_with_defaults(&request);
    body.insert(
        "model".into(),
        Value::String(request.deployment.upstream_model(request.requested_model)),
    );
    let payload = serde_json::to_vec(&body).map_err(|e| ProviderError::Connect(e.to_string()))?;
    let timeout = request.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let response = post_checked(url, headers, payload, &request, secret).await?;
    if request.stream {
        let mut usage = crate::api::responses::NativeUsage::default();
        let events = sse::events(response.into_stream()).map(move |event| {
            let (name, data) = event?;
            let seen = usage.on_event(&name, &data);
            let name = if name.is_empty() { "message" } else { &name };
            Ok(crate::api::StreamChunk {
                data: crate::api::messages::frame(name, data.as_bytes()),
                usage: seen,
                usage_only: false,
            })
        });
        return Ok(ProviderResponse::Stream(Box::pin(events)));
    }
    let body = response.bytes(timeout, secret).await?;
    let usage = crate::api::responses::usage_of_response(&body);
    Ok(ProviderResponse::Complete { body, usage })
}

/// One POST; a non-success status is [`ProviderError::Status`] with the upstream's body (secrets
/// removed) and its `retry-after`.
async fn post_checked(
    url: &UpstreamUrl,
    headers: &HeaderMap,
    payload: Vec<u8>,
    request: &UpstreamRequest<'_>,
    secret: Option<&str>,
) -> Result<transport::UpstreamResponse, ProviderError> {
    let timeout = request.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let response = transport::post(
        request.upstream,
        url,
        headers,
        payload.into(),
        timeout,
        secret,
    )
    .await?;
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
    Ok(response)
}

async fn send(
    url: &UpstreamUrl,
    headers: &HeaderMap,
    body: &WireBody<'_>,
    request: &UpstreamRequest<'_>,
    secret: Option<&str>,
) -> Result<ProviderResponse, ProviderError> {
    let payload = serde_json::to_vec(body).map_err(|e| ProviderError::Connect(e.to_string()))?;
    let timeout = request.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let response = post_checked(url, headers, payload, request, secret).await?;
    if request.stream {
        return Ok(ProviderResponse::Stream(sse::openai_chunks(
            response.into_stream(),
        )));
    }
    let body = response.bytes(timeout, secret).await?;
    let usage = usage_of(&body);
    Ok(ProviderResponse::Complete { body, usage })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::config::GatewayConfig;
    use crate::providers::Upstream;

    fn deployment(params: &str) -> Deployment {
        let yaml = format!(
            "model_list:\n  - model_name: group\n    litellm_params: {{model: openai/upstream-name{params}}}\n"
        );
        let config = GatewayConfig::from_yaml_str(&yaml, &HashMap::new()).unwrap();
        Deployment::clone(&config.deployments[0])
    }

    /// The body as an edited copy of the client's, as it was built before `WireBody`.
    fn edited_copy(request: &UpstreamRequest<'_>) -> String {
        let mut body = request.body.clone();
        for (k, v) in &request.deployment.default_params {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        body.insert(
            "model".into(),
            Value::String(request.deployment.upstream_model(request.requested_model)),
        );
        let has_usage = matches!(
            body.get("stream_options")
                .and_then(|o| o.get("include_usage")),
            Some(Value::Bool(true))
        );
        if request.stream {
            body.insert("stream".into(), Value::Bool(true));
            if request.want_stream_usage && !has_usage {
                match body.get_mut("stream_options") {
                    Some(Value::Object(o)) => {
                        o.insert("include_usage".into(), Value::Bool(true));
                    }
                    _ => {
                        body.insert("stream_options".into(), json!({"include_usage": true}));
                    }
                }
            }
        }
        serde_json::to_string(&body).unwrap()
    }

    #[test]
    fn the_wire_body_is_the_clients_with_the_gateways_changes_in_the_same_order() {
        let plain = deployment("");
        let defaults = deployment(", temperature: 0.2, max_tokens: 64");
        let bodies = [
            json!({"model": "group", "messages": [{"role": "user", "content": "hi"}], "x-vendor": {"a": 1}}),
            json!({"messages": [], "model": "group", "temperature": 1.0, "stream": true}),
            json!({"model": "group", "stream": true, "stream_options": {"include_usage": false, "extra": 1}}),
            json!({"model": "group", "stream": true, "stream_options": {"include_usage": true}}),
            json!({"model": "group", "stream": true, "stream_options": null}),
            json!({"model": "group", "stream": false, "stream_options": {"include_usage": false}}),
        ];
        let upstream = Upstream::new().unwrap();
        for deployment in [&plain, &defaults] {
            for body in &bodies {
                let body = body.as_object().unwrap();
                for want_stream_usage in [true, false] {
                    let request = UpstreamRequest {
                        upstream: &upstream,
                        endpoint: Endpoint::Chat,
                        deployment,
                        body,
                        requested_model: "group",
                        stream: body.get("stream") == Some(&Value::Bool(true)),
                        forward_headers: &[],
                        timeout: None,
                        want_stream_usage,
                        drop_params: false,
                    };
                    let wire = serde_json::to_string(&WireBody::new(&request)).unwrap();
                    assert_eq!(wire, edited_copy(&request), "{body:?}");
                }
            }
        }
    }

    #[test]
    fn a_stream_asks_for_usage_unless_told_to_leave_stream_options_out() {
        let deployment = deployment("");
        let body =
            json!({"model": "group", "stream": true, "messages": [], "stream_options": {"x": 1}});
        let upstream = Upstream::new().unwrap();
        let request = UpstreamRequest {
            upstream: &upstream,
            endpoint: Endpoint::Chat,
            deployment: &deployment,
            body: body.as_object().unwrap(),
            requested_model: "group",
            stream: true,
            forward_headers: &[],
            timeout: None,
            want_stream_usage: true,
            drop_params: false,
        };
        let mut wire = WireBody::new(&request);
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            json!({"model": "upstream-name", "stream": true, "messages": [],
                   "stream_options": {"x": 1, "include_usage": true}})
        );
        wire.stream_options = StreamOptions::Omit;
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            json!({"model": "upstream-name", "stream": true, "messages": []})
        );
    }
}
