//! Azure OpenAI: the deployment URL with `api-version`, the key in an `api-key` header; the
//! wire format is OpenAI's.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::http::extra_headers;
use super::openai::{endpoint_url, endpoint_urls, exchange};
use super::transport::UpstreamUrl;
use super::{ProviderError, ProviderResponse, ProviderUnavailable, UpstreamRequest};
use crate::api::Endpoint;
use crate::config::Deployment;

/// The `api-version` LiteLLM uses when a deployment names none.
const DEFAULT_API_VERSION: &str = "2024-10-21";

/// The first `api-version` with the Responses API, and the one used for it when a
/// deployment's own is older.
const MIN_RESPONSES_API_VERSION: &str = "2025-03-01";
const RESPONSES_API_VERSION: &str = "2025-04-01-preview";

#[derive(Debug, Clone)]
pub struct Azure {
    /// `{api_base}/openai/deployments/{deployment}`.
    deployment_url: String,
    api_version: String,
    /// Each endpoint's URL with `api-version`, parsed once; `None` when they do not parse.
    urls: Option<Box<[UpstreamUrl; 4]>>,
    headers: HeaderMap,
    secret: Option<String>,
}

impl Azure {
    /// The resource's model listing (`GET {api_base}/openai/models`), for `check`.
    pub fn listing(&self) -> super::Listing<'_> {
        let resource = self
            .deployment_url
            .rsplit_once("/deployments/")
            .map_or(self.deployment_url.as_str(), |(r, _)| r);
        super::Listing {
            url: format!("{resource}/models?api-version={}", self.api_version),
            headers: &self.headers,
            secret: self.secret.as_deref(),
        }
    }

    pub fn new(d: &Deployment) -> Result<Self, ProviderUnavailable> {
        let base = d
            .api_base
            .clone()
            .ok_or_else(|| ProviderUnavailable("azure deployments need api_base".into()))?;
        let mut headers = extra_headers(d)?;
        if let Some(key) = &d.api_key {
            let value = HeaderValue::from_str(key.expose()).map_err(|_| {
                ProviderUnavailable("api_key contains characters not allowed in a header".into())
            })?;
            headers.insert(HeaderName::from_static("api-key"), value);
        }
        let deployment_url = format!(
            "{}/openai/deployments/{}",
            base.trim_end_matches('/'),
            d.model
        );
        let api_version = d.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        // Azure serves the Responses API per resource (the deployment named in the body's
        // `model`), from api-version 2025-03-01-preview on.
        let responses_version = if api_version >= MIN_RESPONSES_API_VERSION {
            api_version
        } else {
            RESPONSES_API_VERSION
        };
        let urls = endpoint_urls(|endpoint| match endpoint {
            Endpoint::Responses => format!(
                "{}/openai/responses?api-version={responses_version}",
                base.trim_end_matches('/')
            ),
            _ => format!(
                "{deployment_url}{}?api-version={api_version}",
                endpoint.openai_path()
            ),
        });
        Ok(Azure {
            api_version: api_version.to_string(),
            deployment_url,
            urls,
            headers,
            secret: d.api_key.as_ref().map(|k| k.expose().to_string()),
        })
    }

    pub async fn call(
        &self,
        request: UpstreamRequest<'_>,
    ) -> Result<ProviderResponse, ProviderError> {
        let Some(urls) = self.urls.as_deref() else {
            return Err(ProviderError::Connect(format!(
                "'{}' is not a valid URL",
                crate::secret::redact_url(&self.deployment_url)
            )));
        };
        exchange(
            endpoint_url(urls, request.endpoint),
            &self.headers,
            request,
            self.secret.as_deref(),
        )
        .await
    }
}
