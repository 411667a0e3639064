//! The budget hold a request takes before its upstream call: its estimated maximum cost,
//! held against the key's and its team's budgets (see `spend::BudgetReservations`), so
//! concurrent requests cannot together pass a budget.

use serde_json::{Map, Value};

use crate::api::Endpoint;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::gateway::AppState;
use crate::keys::KeyError;
use crate::router::Router;
use crate::spend::BudgetHold;

/// Completion tokens assumed when neither the request (`max_tokens`,
/// `max_completion_tokens`) nor the deployment (`model_info.max_tokens`) bounds the answer.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 4096;

/// Holds the request's estimated maximum cost, or refuses it with 400 `budget_exceeded` when
/// that does not fit in what is left of a budget. Callers without a budget hold nothing (and
/// no estimate is computed for them).
pub async fn hold<'a>(
    state: &AppState,
    caller: &Caller,
    router: &Router,
    endpoint: Endpoint,
    models: impl Iterator<Item = &'a str>,
    body: &Map<String, Value>,
) -> Result<BudgetHold, ApiError> {
    let Caller::Key(key) = caller else {
        return Ok(BudgetHold::none());
    };
    if key.unverified {
        return Ok(BudgetHold::none());
    }
    let claims = key.budget_claims();
    if claims.is_empty() {
        return Ok(BudgetHold::none());
    }
    let cost = estimated_max_cost(router, endpoint, models, body);
    state
        .budgets
        .reserve(claims, cost)
        .await
        .map_err(|denied| ApiError::from(KeyError::from(denied)))
}

/// The most the request can cost on any deployment of the groups it may reach: the prompt's
/// estimated tokens at the input price plus the output bound at the output price.
pub fn estimated_max_cost<'a>(
    router: &Router,
    endpoint: Endpoint,
    models: impl Iterator<Item = &'a str>,
    body: &Map<String, Value>,
) -> f64 {
    let prompt = crate::tokens::estimate_prompt_tokens(body);
    let asked = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64));
    let mut max: f64 = 0.0;
    for model in models {
        let Some(group) = router.group(model) else {
            continue;
        };
        for member in &group.members {
            let deployment = &member.deployment;
            let output = match endpoint {
                Endpoint::Embedding => 0,
                // A `mock_response` deployment's answer is known in advance.
                Endpoint::Chat
                | Endpoint::Completion
                | Endpoint::Messages
                | Endpoint::Responses => match &deployment.mock_response {
                    Some(text) => crate::tokens::rough_tokens(text),
                    None => asked
                        .or(deployment.max_tokens)
                        .unwrap_or(DEFAULT_OUTPUT_TOKENS),
                },
            };
            max = max.max(crate::prices::cost_at(&deployment.prices, prompt, output));
        }
    }
    max
}
