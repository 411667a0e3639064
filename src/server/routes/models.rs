//! `/v1/models` and `/v1/models/{model}`: the model groups the caller's key may use, in
//! OpenAI's list shape.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::server::extract::Queried;

/// `created` of every listed model: LiteLLM reports a fixed time too.
const CREATED: i64 = 1_677_610_602;

fn model_object(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": CREATED, "owned_by": "hx-gateway"})
}

/// LiteLLM's `/models` switches for model access groups (`model_info.access_groups`).
#[derive(Debug, Default, Deserialize)]
pub struct ListModelsQuery {
    /// List the access groups the caller may use, besides the models.
    #[serde(default, deserialize_with = "crate::api::body::query_bool")]
    include_model_access_groups: Option<bool>,
    /// List only the access groups the caller may use.
    #[serde(default, deserialize_with = "crate::api::body::query_bool")]
    only_model_access_groups: Option<bool>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Queried(query): Queried<ListModelsQuery>,
) -> Json<Value> {
    let runtime = state.runtime();
    let only_groups = query.only_model_access_groups.unwrap_or(false);
    let mut data: Vec<Value> = Vec::new();
    if !only_groups {
        data.extend(
            runtime
                .config
                .model_names()
                .iter()
                .filter(|name| {
                    runtime.router.group(name).is_some()
                        && caller
                            .may_see_model(name, runtime.router.access_groups(name))
                            .is_ok()
                })
                .map(|name| model_object(name)),
        );
    }
    if only_groups || query.include_model_access_groups.unwrap_or(false) {
        // A group is listed when the caller may use it as a whole: its name is in the key's
        // models (or the key may use every model).
        let groups = runtime.router.all_access_groups();
        data.extend(
            groups
                .into_iter()
                .filter(|group| caller.may_see_model(group, &[]).is_ok())
                .map(model_object),
        );
    }
    Json(json!({"object": "list", "data": data}))
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let runtime = state.runtime();
    caller.may_see_model(&model, runtime.router.access_groups(&model))?;
    match runtime.router.group(&model) {
        Some(_) => Ok(Json(model_object(&model))),
        None => Err(runtime.router.missing_model_error(
            &model,
            ApiError::not_found(format!("The model '{model}' does not exist.")).with_param("model"),
        )),
    }
}
