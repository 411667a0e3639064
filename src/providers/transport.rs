//! How an OpenAI-wire request reaches its upstream: hyper's pooled client directly for a
//! plain-HTTP upstream that no proxy setting covers, reqwest for everything else.
//!
//! Why two: the gateway's own cost per request matters only for upstreams close by (vLLM or
//! another OpenAI-compatible server on the local network, over plain HTTP); a cloud API behind
//! TLS is hundreds of milliseconds away. For those nearby upstreams reqwest's layers (redirect
//! policy, which parses the URL again on every request, retry and timeout wrappers, header
//! merging) were about a tenth of the gateway's CPU per request in the benchmark. hyper's
//! client, which reqwest itself is built on, does the exchange without them. reqwest keeps
//! what it does best: TLS, proxies (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), HTTP/2.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::ProviderError;
use crate::error::append_causes;
use crate::secret::scrub;

/// One upstream URL, parsed once when the deployment is built.
#[derive(Debug, Clone)]
pub struct UpstreamUrl {
    url: reqwest::Url,
    /// Set when the request may go over hyper's client directly (plain HTTP, no proxy).
    direct: Option<hyper::Uri>,
}

impl UpstreamUrl {
    /// Parses a URL; `None` when it is not one. Proxies are those of the environment, as
    /// reqwest reads them.
    pub fn parse(text: &str) -> Option<Self> {
        static PROXIES: LazyLock<Matcher> = LazyLock::new(Matcher::from_system);
        Self::parse_with(text, &PROXIES)
    }

    /// [`UpstreamUrl::parse`] under the given proxy settings.
    pub fn parse_with(text: &str, proxies: &Matcher) -> Option<Self> {
        let url = reqwest::Url::parse(text).ok()?;
        let direct = (url.scheme() == "http")
            .then(|| text.parse::<hyper::Uri>().ok())
            .flatten()
            .filter(|uri| proxies.intercept(uri).is_none());
        Some(UpstreamUrl { url, direct })
    }

    /// Whether requests to this URL bypass reqwest (tests and diagnostics).
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }
}

type DirectClient = Client<HttpConnector, Full<Bytes>>;

/// The clients upstream calls go through: reqwest's and hyper's pooled clients, built once
/// and passed down with every request (`UpstreamRequest::upstream`), never held by a provider.
///
/// Each server thread has one of its own (`server::threads`), so an upstream connection is
/// driven by the thread whose requests use it instead of waking another thread for every
/// request; work off the server threads (background probes, `check`) uses the gateway's
/// shared one. Cloning is one reference count.
#[derive(Clone)]
pub struct Upstream {
    clients: Arc<Clients>,
}

struct Clients {
    reqwest: reqwest::Client,
    direct: DirectClient,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upstream")
    }
}

impl Upstream {
    /// A new pair of connection pools (256 idle connections per host, kept 90 s, no Nagle,
    /// 10 s to connect), the same settings for both clients.
    pub fn new() -> Result<Self, reqwest::Error> {
        let reqwest = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Upstream {
            clients: Arc::new(Clients {
                reqwest,
                direct: direct_client(),
            }),
        })
    }

    /// reqwest's client, for the exchanges that need TLS, proxies or HTTP/2.
    pub fn http(&self) -> &reqwest::Client {
        &self.clients.reqwest
    }
}

fn direct_client() -> DirectClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// An upstream's answer: its status and headers, the body still to be read.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: ResponseBody,
}

enum ResponseBody {
    Direct(hyper::body::Incoming),
    Reqwest(reqwest::Response),
}

/// POSTs `payload` to `url` and waits for the response headers, at most `timeout`.
pub async fn post(
    upstream: &Upstream,
    url: &UpstreamUrl,
    headers: &HeaderMap,
    payload: Bytes,
    timeout: Duration,
    secret: Option<&str>,
) -> Result<UpstreamResponse, ProviderError> {
    let no_answer =
        || ProviderError::Timeout(format!("no answer within {}s", timeout.as_secs_f64()));
    let Some(uri) = &url.direct else {
        let pending = upstream
            .http()
            .post(url.url.clone())
            .headers(headers.clone())
            .body(payload)
            .send();
        let response = tokio::time::timeout(timeout, pending)
            .await
            .map_err(|_| no_answer())?
            .map_err(|e| classify(&e, secret))?;
        return Ok(UpstreamResponse {
            status: response.status(),
            headers: response.headers().clone(),
            body: ResponseBody::Reqwest(response),
        });
    };
    let mut request = hyper::Request::new(Full::new(payload));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    let pending = upstream.clients.direct.request(request);
    let response = tokio::time::timeout(timeout, pending)
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| classify_direct(&e, secret))?;
    let (parts, body) = response.into_parts();
    Ok(UpstreamResponse {
        status: parts.status,
        headers: parts.headers,
        body: ResponseBody::Direct(body),
    })
}

impl UpstreamResponse {
    /// The whole body, at most `timeout`.
    pub async fn bytes(
        self,
        timeout: Duration,
        secret: Option<&str>,
    ) -> Result<Bytes, ProviderError> {
        let late = || ProviderError::Timeout("the answer did not complete in time".into());
        match self.body {
            ResponseBody::Direct(body) => tokio::time::timeout(timeout, body.collect())
                .await
                .map_err(|_| late())?
                .map(|collected| collected.to_bytes())
                .map_err(|e| ProviderError::Connect(error_text(&e, secret))),
            ResponseBody::Reqwest(response) => tokio::time::timeout(timeout, response.bytes())
                .await
                .map_err(|_| late())?
                .map_err(|e| classify(&e, secret)),
        }
    }

    /// The body as it arrives; dropping the stream closes the upstream connection.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes, String>> {
        match self.body {
            ResponseBody::Direct(body) => body
                .into_data_stream()
                .map_err(|e| error_text(&e, None))
                .boxed(),
            ResponseBody::Reqwest(response) => response
                .bytes_stream()
                .map_err(|e| reqwest_text(&e))
                .boxed(),
        }
    }
}

/// A reqwest failure as a provider error, with the URL and key kept out of the text.
pub fn classify(e: &reqwest::Error, secret: Option<&str>) -> ProviderError {
    let text = scrub(&reqwest_text(e), &secret.into_iter().collect::<Vec<_>>());
    if e.is_timeout() {
        ProviderError::Timeout(text)
    } else {
        ProviderError::Connect(text)
    }
}

fn classify_direct(e: &hyper_util::client::legacy::Error, secret: Option<&str>) -> ProviderError {
    let text = error_text(e, secret);
    let timed_out = std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|source| {
        source
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    if timed_out {
        ProviderError::Timeout(text)
    } else {
        ProviderError::Connect(text)
    }
}

/// An error with its causes, secrets removed. hyper's errors do not carry the URL.
fn error_text(e: &(dyn std::error::Error + 'static), secret: Option<&str>) -> String {
    let mut text = e.to_string();
    append_causes(&mut text, e);
    scrub(&text, &secret.into_iter().collect::<Vec<_>>())
}

/// A reqwest error with its causes; reqwest's messages embed the URL, which is dropped so
/// query-string keys never leak.
fn reqwest_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<upstream>");
    }
    append_causes(&mut text, e);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(http: &str, no_proxy: &str) -> Matcher {
        Matcher::builder().http(http).no(no_proxy).build()
    }

    #[test]
    fn plain_http_without_a_proxy_goes_direct() {
        let url =
            UpstreamUrl::parse_with("http://10.0.0.5:8000/v1/chat/completions", &proxies("", ""));
        assert!(url.is_some_and(|u| u.is_direct()));
    }

    #[test]
    fn tls_and_proxied_upstreams_go_through_reqwest() {
        let none = proxies("", "");
        let tls = UpstreamUrl::parse_with("https://api.openai.com/v1/chat/completions", &none);
        assert!(tls.is_some_and(|u| !u.is_direct()));
        let proxied = proxies("http://proxy.internal:3128", "");
        let url = UpstreamUrl::parse_with("http://10.0.0.5:8000/v1/chat/completions", &proxied);
        assert!(url.is_some_and(|u| !u.is_direct()));
        // NO_PROXY exempts a host from the proxy, so it goes direct again.
        let exempt = proxies("http://proxy.internal:3128", "vllm.internal");
        let url = UpstreamUrl::parse_with("http://vllm.internal:8000/v1/completions", &exempt);
        assert!(url.is_some_and(|u| u.is_direct()));
    }

    #[test]
    fn text_that_is_no_url_is_refused() {
        assert!(UpstreamUrl::parse_with("not a url", &proxies("", "")).is_none());
    }
}
