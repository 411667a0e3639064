//! The Responses API's stored responses, for deployments the gateway bridges (a deployment
//! that serves the API keeps its own, and gets `previous_response_id` as sent): with `store`
//! true (OpenAI's default) each answer and its request's input items are kept
//! (`db::responses`), so `previous_response_id` continues the conversation on any provider,
//! the stored items taking the place of the id before the request is routed; and
//! `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` read them back.
//! A stored response is the caller's who created it: any other key gets a 404, as for an id
//! that never existed (the master key reads all). Rows older than
//! `general_settings.responses_retention_days` are pruned by [`prune`].
//!
//! A streamed answer is stored when its closing event (`response.completed` or
//! `response.incomplete`) passes, before the client gets it, so a client that continues at
//! once finds it. A store that fails (database down, disk full) costs the continuation, not
//! the answer: it is logged and the answer still goes out.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::{LlmRequest, MODEL_ID, Reply, ReplyBody};
use crate::caller::Caller;
use crate::db::KeyStore;
use crate::db::responses::StoredResponse;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::providers::Upstream;

/// Runs one `/v1/responses` request: a stored conversation in place of its
/// `previous_response_id`, then the pipeline, then the answer stored.
pub async fn handle(
    state: &AppState,
    upstream: &Upstream,
    caller: &Caller,
    mut request: LlmRequest,
    started: Instant,
) -> Result<Reply, ApiError> {
    let store = state.keys().map(|k| k.store().clone());
    let owner = owner(state, caller);
    let keep = request.body.get("store") != Some(&Value::Bool(false));
    let previous = request
        .body
        .get("previous_response_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    // Only a request that is stored or continues one needs its items (skipped otherwise:
    // ~7k instructions a request).
    let input = if keep || previous.is_some() {
        input_items(request.body.get("input"))
    } else {
        Vec::new()
    };
    if let (Some(id), Some(store)) = (&previous, &store) {
        let chain = store.response_chain(id).await?;
        if let Some(last) = chain.last() {
            if !may_read(caller, owner.as_deref(), last) {
                return Err(previous_not_found(id));
            }
            let mut items = Vec::new();
            for row in &chain {
                items.extend(parse_items(&row.input));
                items.extend(output_items(&row.response));
            }
            items.extend(input.iter().cloned());
            request.body.insert("input".into(), Value::Array(items));
            request.body.remove("previous_response_id");
        }
    }
    let model = request.model.clone();
    let reply = super::handle(state, upstream, caller, request, started).await?;
    let (Some(store), Some(owner), true) = (store, owner, keep) else {
        return Ok(reply);
    };
    if !bridged(state, &reply) {
        return Ok(reply);
    }
    let keeper = Arc::new(Keeper {
        store,
        owner,
        model,
        previous,
        input: Value::Array(input).to_string(),
    });
    Ok(match reply.body {
        ReplyBody::Json(body) => {
            keeper.keep(&body).await;
            Reply {
                headers: reply.headers,
                body: ReplyBody::Json(body),
            }
        }
        ReplyBody::Sse(events) => Reply {
            headers: reply.headers,
            body: ReplyBody::Frames(Box::pin(events.then(move |event| {
                let keeper = keeper.clone();
                async move {
                    if let Ok(frame) = &event
                        && let Some(response) = closing_response(frame)
                    {
                        keeper.keep(response.as_bytes()).await;
                    }
                    event
                }
            }))),
        },
        frames @ ReplyBody::Frames(_) => Reply {
            headers: reply.headers,
            body: frames,
        },
    })
}

/// What a stored response is filed under: the key's hash, the master key's, or `anonymous`
/// on a gateway without auth. An unverified key (database down) has none and stores nothing.
fn owner(state: &AppState, caller: &Caller) -> Option<String> {
    match caller {
        Caller::Key(key) if key.unverified => None,
        Caller::Key(key) => Some(key.token.clone()),
        Caller::Master => Some(
            state
                .runtime()
                .master_key_hash
                .clone()
                .unwrap_or_else(|| "master".into()),
        ),
        Caller::Anonymous => Some("anonymous".into()),
    }
}

fn may_read(caller: &Caller, owner: Option<&str>, row: &StoredResponse) -> bool {
    matches!(caller, Caller::Master) || owner == Some(row.api_key.as_str())
}

fn previous_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Previous response with id '{id}' not found."))
        .with_param("previous_response_id")
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Response with id '{id}' not found."))
}

/// Whether the deployment that answered is one the gateway bridges (its responses are ours
/// to keep; one that serves the API keeps its own).
fn bridged(state: &AppState, reply: &Reply) -> bool {
    let Some((_, id)) = reply.headers.iter().find(|(name, _)| *name == MODEL_ID) else {
        return false;
    };
    let runtime = state.runtime();
    runtime
        .router
        .members()
        .find(|m| m.deployment.id.as_bytes() == id.as_bytes())
        .is_some_and(|m| !m.provider.serves_responses())
}

/// A request's input as the items OpenAI lists for it: a string is one user message; each
/// message's string content becomes one `input_text` part; every item gets an id.
fn input_items(input: Option<&Value>) -> Vec<Value> {
    let items = match input {
        Some(Value::String(text)) => {
            vec![json!({"type": "message", "role": "user", "content": text})]
        }
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .map(|mut item| {
            if let Value::Object(map) = &mut item {
                let is_message = map.get("type").is_none_or(|t| t == "message");
                if is_message {
                    map.insert("type".into(), json!("message"));
                    if let Some(Value::String(text)) = map.get("content") {
                        let kind = if map.get("role").is_some_and(|r| r == "assistant") {
                            "output_text"
                        } else {
                            "input_text"
                        };
                        let parts = json!([{"type": kind, "text": text}]);
                        map.insert("content".into(), parts);
                    }
                }
                if !map.contains_key("id") {
                    let prefix = if is_message { "msg_" } else { "item_" };
                    map.insert(
                        "id".into(),
                        json!(format!("{prefix}{}", uuid::Uuid::new_v4().simple())),
                    );
                }
            }
            item
        })
        .collect()
}

fn parse_items(json: &str) -> Vec<Value> {
    match serde_json::from_str(json) {
        Ok(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// A stored response's output items, which are valid input items of the next turn.
fn output_items(response: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(response) {
        Ok(Value::Object(mut map)) => match map.remove("output") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The Response object of a stream's closing event (`response.completed`, or
/// `response.incomplete`), as JSON text.
fn closing_response(frame: &[u8]) -> Option<String> {
    if !(frame.starts_with(b"event: response.completed\n")
        || frame.starts_with(b"event: response.incomplete\n"))
    {
        return None;
    }
    let text = std::str::from_utf8(frame).ok()?;
    let data = text.split_once("\ndata: ")?.1.trim_end();
    let mut event: Map<String, Value> = serde_json::from_str(data).ok()?;
    event.remove("response").map(|r| r.to_string())
}

/// Stores the answers of one request.
struct Keeper {
    store: KeyStore,
    owner: String,
    model: String,
    previous: Option<String>,
    input: String,
}

impl Keeper {
    async fn keep(&self, response: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Head {
            id: String,
            #[serde(default)]
            created_at: Option<i64>,
        }
        let Ok(head) = serde_json::from_slice::<Head>(response) else {
            return;
        };
        let row = StoredResponse {
            id: head.id,
            api_key: self.owner.clone(),
            model: self.model.clone(),
            previous_response_id: self.previous.clone(),
            created_at: head
                .created_at
                .unwrap_or_else(|| chrono::Utc::now().timestamp()),
            input: self.input.clone(),
            response: String::from_utf8_lossy(response).into_owned(),
        };
        if let Err(e) = self.store.store_response(&row).await {
            tracing::error!(error = %e, response_id = %row.id, "could not store a response: previous_response_id will not find it");
        }
    }
}

/// The store and the stored response `id` if the caller may read it; else a 404.
async fn readable(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(KeyStore, StoredResponse), ApiError> {
    let Some(keys) = state.keys() else {
        return Err(not_found(id));
    };
    let store = keys.store().clone();
    let owner = owner(state, caller);
    match store.response(id).await? {
        Some(row) if may_read(caller, owner.as_deref(), &row) => Ok((store, row)),
        _ => Err(not_found(id)),
    }
}

/// `GET /v1/responses/{id}`: the stored Response object.
pub async fn get(state: &AppState, caller: &Caller, id: &str) -> Result<Bytes, ApiError> {
    let (_, row) = readable(state, caller, id).await?;
    Ok(Bytes::from(row.response))
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<Bytes, ApiError> {
    let (store, row) = readable(state, caller, id).await?;
    store.delete_response(&row.id).await?;
    Ok(Bytes::from(
        json!({"id": row.id, "object": "response", "deleted": true}).to_string(),
    ))
}

/// The paging of `GET /v1/responses/{id}/input_items`, as OpenAI takes it.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ItemsQuery {
    pub after: Option<String>,
    pub limit: Option<usize>,
    /// `asc` or `desc` (the default).
    pub order: Option<String>,
}

/// `GET /v1/responses/{id}/input_items`: the request's input items, a list page.
pub async fn input_items_page(
    state: &AppState,
    caller: &Caller,
    id: &str,
    query: &ItemsQuery,
) -> Result<Bytes, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "'limit' must be between 1 and 100.",
            "limit",
        ));
    }
    let mut items = {
        let (_, row) = readable(state, caller, id).await?;
        parse_items(&row.input)
    };
    match query.order.as_deref() {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "'order' must be 'asc' or 'desc'.",
                "order",
            ));
        }
    }
    let start = match &query.after {
        Some(after) => items
            .iter()
            .position(|i| i.get("id").and_then(Value::as_str) == Some(after))
            .map_or(items.len(), |p| p + 1),
        None => 0,
    };
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < items.len();
    let id_of = |item: Option<&Value>| item.and_then(|i| i.get("id")).cloned();
    Ok(Bytes::from(
        json!({
            "object": "list",
            "data": page,
            "first_id": id_of(page.first()),
            "last_id": id_of(page.last()),
            "has_more": has_more,
        })
        .to_string(),
    ))
}

/// Deletes the stored responses older than the retention period; how many.
pub async fn prune(state: &AppState) -> Result<u64, ApiError> {
    let Some(keys) = state.keys() else {
        return Ok(0);
    };
    let retention = state.runtime().config.responses_retention;
    let cut =
        chrono::Utc::now().timestamp() - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX / 2);
    Ok(keys.store().prune_responses(cut).await?)
}
