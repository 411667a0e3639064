//! Model prices and the cost of a request from its token usage: the model's configured prices
//! (`model_info.input_cost_per_token` / `output_cost_per_token`), else a built-in table of
//! public list prices for common models, else 0. Below config, which resolves each
//! deployment's prices once at load, and spend, which charges them.

/// Per-token prices from a deployment's `model_info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Deserialize)]
pub struct ModelPrices {
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
}

/// USD per million tokens (input, output), by model name prefix. Dated and suffixed variants
/// ("gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022") match the longest listed prefix.
const PRICES_PER_MILLION: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4-turbo", 10.00, 30.00),
    ("gpt-4", 30.00, 60.00),
    ("gpt-3.5-turbo", 0.50, 1.50),
    ("o1", 15.00, 60.00),
    ("o1-mini", 1.10, 4.40),
    ("o3", 2.00, 8.00),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    ("text-embedding-3-small", 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.0),
    ("text-embedding-ada-002", 0.10, 0.0),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-opus", 15.00, 75.00),
    ("claude-opus-4", 15.00, 75.00),
    ("gemini-1.5-pro", 1.25, 5.00),
    ("gemini-1.5-flash", 0.075, 0.30),
    ("gemini-1.5-flash-8b", 0.0375, 0.15),
    ("gemini-2.0-flash", 0.10, 0.40),
    ("gemini-2.0-flash-lite", 0.075, 0.30),
    ("gemini-2.5-pro", 1.25, 10.00),
    ("gemini-2.5-flash", 0.30, 2.50),
];

/// Built-in (input, output) USD per token for a model, if it is in the table. A provider
/// prefix ("openai/", "azure/gpt-4o", "vertex_ai/gemini-1.5-pro") is ignored.
pub fn builtin_prices(model: &str) -> Option<ModelPrices> {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    PRICES_PER_MILLION
        .iter()
        .filter(|(prefix, _, _)| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '@', ':']))
        })
        .max_by_key(|(prefix, _, _)| prefix.len())
        .map(|(_, input, output)| ModelPrices {
            input_cost_per_token: Some(input / 1_000_000.0),
            output_cost_per_token: Some(output / 1_000_000.0),
        })
}

/// The prices a model is charged at: configured prices when either is set, else the built-in
/// table's for `model`, else none.
pub fn prices_for(model: &str, configured: Option<&ModelPrices>) -> ModelPrices {
    configured
        .filter(|p| p.input_cost_per_token.is_some() || p.output_cost_per_token.is_some())
        .copied()
        .or_else(|| builtin_prices(model))
        .unwrap_or_default()
}

/// The cost in USD of a request: configured prices when either is set, else the built-in
/// table for `model`, else 0.
pub fn cost(
    model: &str,
    configured: Option<&ModelPrices>,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> f64 {
    cost_at(
        &prices_for(model, configured),
        prompt_tokens,
        completion_tokens,
    )
}

/// The cost in USD of a request at known prices (see [`prices_for`]).
pub fn cost_at(prices: &ModelPrices, prompt_tokens: u64, completion_tokens: u64) -> f64 {
    // Token counts fit f64 exactly far beyond any real request.
    let (prompt, completion) = (prompt_tokens as f64, completion_tokens as f64);
    let total = prompt * prices.input_cost_per_token.unwrap_or(0.0)
        + completion * prices.output_cost_per_token.unwrap_or(0.0);
    if total.is_finite() && total > 0.0 {
        total
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    #[test]
    fn configured_prices_win() {
        let p = ModelPrices {
            input_cost_per_token: Some(0.001),
            output_cost_per_token: Some(0.002),
        };
        assert!(close(cost("gpt-4o", Some(&p), 10, 5), 0.02));
        let only_input = ModelPrices {
            input_cost_per_token: Some(0.5),
            output_cost_per_token: None,
        };
        assert!(close(cost("whatever", Some(&only_input), 2, 100), 1.0));
    }

    #[test]
    fn builtin_table_matches_longest_prefix() {
        assert!(close(
            cost("gpt-4o-mini-2024-07-18", None, 1_000_000, 0),
            0.15
        ));
        assert!(close(cost("openai/gpt-4o", None, 0, 1_000_000), 10.0));
        assert!(close(cost("gpt-4.1-nano", None, 1_000_000, 1_000_000), 0.5));
        assert!(close(
            cost("claude-3-5-sonnet-20241022", None, 1_000_000, 0),
            3.0
        ));
        assert!(close(
            cost("text-embedding-3-small", None, 1_000_000, 0),
            0.02
        ));
        assert!(close(
            cost("vertex_ai/gemini-1.5-flash", None, 1_000_000, 0),
            0.075
        ));
        // "gpt-4o" must not be priced as "gpt-4", nor "o1x" as "o1".
        assert!(close(cost("gpt-4o", None, 1_000_000, 0), 2.5));
        assert_eq!(cost("o1x", None, 1_000_000, 0), 0.0);
    }

    #[test]
    fn unknown_models_cost_nothing() {
        assert_eq!(cost("my-local-llama", None, 1000, 1000), 0.0);
        assert_eq!(
            cost("my-local-llama", Some(&ModelPrices::default()), 1000, 1000),
            0.0
        );
    }
}
