//! `hx-gateway smoke --url URL --key KEY`: post-deploy validation of a running gateway, one
//! line per step (`PASS step: ...` / `FAIL step: reason`): liveliness, dependencies (failing
//! only on one that is configured and down), the model list, a RAG search by query, the query's
//! embedding, and a RAG search by that vector. On a fresh install the searches find the default
//! collection missing (nothing ingested yet): that counts as an empty result, not a failure.

use std::time::Duration;

use serde_json::{Value, json};

use crate::secret::scrub;

/// The text every smoke search uses; the vector search uses its embedding.
pub const SMOKE_QUERY: &str = "hello world";

/// One step's outcome.
#[derive(Debug, Clone)]
pub struct SmokeStep {
    pub name: &'static str,
    pub passed: bool,
    /// What was seen (pass) or why it failed.
    pub detail: String,
}

/// Every step, in order.
#[derive(Debug, Clone, Default)]
pub struct SmokeReport {
    pub steps: Vec<SmokeStep>,
}

impl SmokeReport {
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.passed)
    }

    pub fn step(&self, name: &str) -> Option<&SmokeStep> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// One line per step, then a verdict line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let word = if s.passed { "PASS" } else { "FAIL" };
            out.push_str(&format!("{word} {}: {}\n", s.name, s.detail));
        }
        let failed = self.steps.iter().filter(|s| !s.passed).count();
        if failed == 0 {
            out.push_str(&format!("smoke passed: {} step(s)\n", self.steps.len()));
        } else {
            out.push_str(&format!(
                "smoke failed: {failed} of {} step(s)\n",
                self.steps.len()
            ));
        }
        out
    }

    fn push(&mut self, name: &'static str, result: Result<String, String>) {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.steps.push(SmokeStep {
            name,
            passed,
            detail,
        });
    }
}

/// A gateway under test: its base URL and the key to call it with.
struct Target {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// An answer: status and JSON body (`Null` when the body is not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl Target {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.describe(&e))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| self.describe(&e))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    fn describe(&self, e: &reqwest::Error) -> String {
        let what = if e.is_timeout() {
            "no answer in time"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        let mut text = format!("{what} ({})", self.base);
        crate::error::append_causes(&mut text, e);
        self.scrub(&text)
    }

    fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(key) => scrub(text, &[key.as_str()]),
            None => scrub(text, &[]),
        }
    }

    /// The gateway's error message of a non-2xx answer, in one line.
    fn failure(&self, path: &str, answer: &Answer) -> String {
        let message = answer.body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| answer.body.to_string());
        let kind = answer.body["error"]["type"].as_str().unwrap_or("");
        if answer.status == 404 && kind == "not_found_error" && message.starts_with("Route ") {
            return format!("the gateway does not serve {path} (HTTP 404: {message})");
        }
        self.scrub(&format!("HTTP {} from {path}: {message}", answer.status))
    }
}

/// Runs every step against the gateway at `url`. Never panics; a step that cannot run fails.
pub async fn run(url: &str, key: Option<&str>) -> SmokeReport {
    let mut report = SmokeReport::default();
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            report.push(
                "liveliness",
                Err(format!("cannot build an HTTP client: {e}")),
            );
            return report;
        }
    };
    let target = Target {
        http,
        base: url.trim_end_matches('/').to_string(),
        key: key.filter(|k| !k.is_empty()).map(str::to_string),
    };

    report.push("liveliness", liveliness(&target).await);
    let deps = dependencies(&target).await;
    let embedding_model = deps.as_ref().ok().and_then(|(_, m)| m.clone());
    report.push("deps", deps.map(|(d, _)| d));
    report.push("models", models(&target).await);
    report.push(
        "rag_search_query",
        rag_search(&target, json!({"query": SMOKE_QUERY, "limit": 3})).await,
    );
    let vector = match embedding_model {
        Some(model) => embed(&target, &model).await,
        None => Err("no embedding model: /healthz/deps did not name one".to_string()),
    };
    match vector {
        Ok(vector) => {
            report.push(
                "embedding",
                Ok(format!(
                    "'{SMOKE_QUERY}' embedded in {} dimensions",
                    vector.len()
                )),
            );
            report.push(
                "rag_search_vector",
                rag_search(&target, json!({"vector": vector, "limit": 3})).await,
            );
        }
        Err(reason) => {
            report.push("embedding", Err(reason));
            report.push(
                "rag_search_vector",
                Err("not run: no query vector (the embedding step failed)".into()),
            );
        }
    }
    report
}

async fn liveliness(target: &Target) -> Result<String, String> {
    let path = "/health/liveliness";
    let answer = target.call(reqwest::Method::GET, path, None).await?;
    if answer.status == 200 {
        Ok(format!("{path} answered 200"))
    } else {
        Err(target.failure(path, &answer))
    }
}

/// Passes unless a dependency is configured and down; returns the embedding model it names.
async fn dependencies(target: &Target) -> Result<(String, Option<String>), String> {
    let path = "/healthz/deps";
    let answer = target.call(reqwest::Method::GET, path, None).await?;
    if answer.status != 200 {
        return Err(target.failure(path, &answer));
    }
    let body = &answer.body;
    if !body.is_object() {
        return Err(format!("{path} did not answer a JSON object"));
    }
    let mut up = Vec::new();
    let mut not_configured = Vec::new();
    let mut down = Vec::new();
    for dep in ["postgres", "redis", "qdrant"] {
        let is_up = body[dep].as_bool().unwrap_or(false);
        // Without the `configured` key (an older gateway) a `false` cannot be told from "not
        // configured"; only a known configured-and-down dependency fails.
        let configured = body["configured"][dep].as_bool().unwrap_or(false);
        if is_up {
            up.push(dep.to_string());
        } else if configured {
            let why = body["details"][dep]["error"].as_str().unwrap_or("down");
            down.push(format!("{dep} ({why})"));
        } else {
            not_configured.push(dep);
        }
    }
    let model = body["embedding_model"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    if !down.is_empty() {
        return Err(target.scrub(&format!("configured and down: {}", down.join(", "))));
    }
    let mut detail = format!(
        "up: {}",
        if up.is_empty() {
            "none".to_string()
        } else {
            up.join(", ")
        }
    );
    if !not_configured.is_empty() {
        detail.push_str(&format!("; not configured: {}", not_configured.join(", ")));
    }
    Ok((detail, model))
}

async fn models(target: &Target) -> Result<String, String> {
    let path = "/v1/models";
    let answer = target.call(reqwest::Method::GET, path, None).await?;
    if answer.status != 200 {
        return Err(target.failure(path, &answer));
    }
    let Some(data) = answer.body["data"].as_array() else {
        return Err(format!("{path} answered without a 'data' list"));
    };
    let ids: Vec<&str> = data.iter().filter_map(|m| m["id"].as_str()).collect();
    if ids.is_empty() {
        return Err(format!("{path} lists no model (is model_list empty?)"));
    }
    let shown: Vec<&str> = ids.iter().take(5).copied().collect();
    let more = if ids.len() > shown.len() { ", ..." } else { "" };
    Ok(format!(
        "{} model(s): {}{more}",
        ids.len(),
        shown.join(", ")
    ))
}

async fn rag_search(target: &Target, body: Value) -> Result<String, String> {
    let path = "/v1/rag/search";
    let answer = target
        .call(reqwest::Method::POST, path, Some(&body))
        .await?;
    // A fresh install has no collection until the first upsert: the search finds nothing,
    // which is what an empty store should answer, not a failed deployment.
    if answer.status == 404
        && let Some(missing) = missing_collection(&answer.body)
    {
        return Ok(format!(
            "0 hit(s): collection '{missing}' does not exist yet (nothing ingested); empty"
        ));
    }
    if answer.status != 200 {
        return Err(target.failure(path, &answer));
    }
    match answer.body["result"]["result"].as_array() {
        Some(hits) => Ok(format!("{} hit(s)", hits.len())),
        None => Err(format!(
            "{path} answered 200 without a 'result.result' list"
        )),
    }
}

/// The collection named by a RAG 404 that says the collection does not exist (the vector
/// store's own message), as opposed to a 404 for a route this gateway does not serve.
fn missing_collection(body: &Value) -> Option<&str> {
    let message = body["error"]["message"].as_str()?;
    message
        .strip_prefix("collection '")?
        .strip_suffix("' does not exist")
}

/// The embedding of [`SMOKE_QUERY`] by the gateway's embedding model.
async fn embed(target: &Target, model: &str) -> Result<Vec<f64>, String> {
    let path = "/v1/embeddings";
    let body = json!({"model": model, "input": SMOKE_QUERY});
    let answer = target
        .call(reqwest::Method::POST, path, Some(&body))
        .await?;
    if answer.status != 200 {
        return Err(target.failure(path, &answer));
    }
    let vector: Option<Vec<f64>> = answer.body["data"][0]["embedding"]
        .as_array()
        .and_then(|v| v.iter().map(Value::as_f64).collect());
    match vector {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(format!(
            "{path} with model '{model}' answered no embedding vector"
        )),
    }
}
