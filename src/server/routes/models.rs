//! `/v1/models` and `/v1/models/{model}`: the model groups the caller's key may use, in
//! OpenAI's list shape.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::gateway::AppState;

/// `created` of every listed model: LiteLLM reports a fixed time too.
const CREATED: i64 = 1_677_610_602;

fn model_object(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": CREATED, "owned_by": "hx-gateway"})
}

pub async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> Json<Value> {
    let runtime = state.runtime();
    let data: Vec<Value> = runtime
        .config
        .model_names()
        .iter()
        .filter(|name| runtime.router.group(name).is_some() && caller.may_see_model(name).is_ok())
        .map(|name| model_object(name))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.may_see_model(&model)?;
    let runtime = state.runtime();
    match runtime.router.group(&model) {
        Some(_) => Ok(Json(model_object(&model))),
        None => Err(runtime.router.missing_model_error(
            &model,
            ApiError::not_found(format!("The model '{model}' does not exist.")).with_param("model"),
        )),
    }
}
