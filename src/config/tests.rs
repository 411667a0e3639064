use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/litellm_configs")
        .join(name)
}

#[test]
fn litellm_docs_quick_start_loads() {
    let e = env(&[("AZURE_API_KEY_EU", "k-eu"), ("AZURE_API_KEY_CA", "k-ca")]);
    let c = GatewayConfig::load(&fixture("docs_quick_start.yaml"), &e, HashMap::new()).unwrap();
    let gpt4o: Vec<_> = c
        .deployments
        .iter()
        .filter(|d| d.model_name == "gpt-4o")
        .collect();
    assert_eq!(gpt4o.len(), 2);
    assert_eq!(gpt4o[0].provider, ProviderKind::Azure);
    assert_eq!(gpt4o[0].api_key.as_ref().unwrap().expose(), "k-eu");
    assert_eq!(gpt4o[0].rpm, Some(6));
    // bedrock is not supported: disabled, not fatal.
    assert_eq!(c.disabled.len(), 2);
    assert!(c.disabled.iter().all(|d| d.reason.contains("bedrock")));
    let vllm = c
        .deployments
        .iter()
        .find(|d| d.model_name == "vllm-models")
        .unwrap();
    assert_eq!(vllm.model, "facebook/opt-125m");
    assert!(
        c.deployments
            .iter()
            .any(|d| d.model_name == "*" && d.is_wildcard())
    );
    assert!(c.routing.drop_params);
    assert_eq!(c.master_key.as_ref().unwrap().expose(), "sk-1234");
    for ignored in [
        "litellm_settings.success_callback",
        "general_settings.alerting",
        "model_list[4].model_info.version",
    ] {
        assert!(
            c.ignored.iter().any(|k| k == ignored),
            "{ignored} in {:?}",
            c.ignored
        );
    }
}

#[test]
fn litellm_docs_complete_schema_loads() {
    let e = env(&[
        ("AZURE_API_KEY", "a"),
        ("OPENAI_API_KEY", "o"),
        ("REDIS_PASSWORD", "pw"),
    ]);
    let c = GatewayConfig::load(&fixture("docs_complete_schema.yaml"), &e, HashMap::new()).unwrap();
    assert_eq!(c.deployments.len(), 2);
    assert!(c.disabled.is_empty());
    assert_eq!(c.routing.strategy, RoutingStrategy::LatencyBased);
    assert_eq!(c.routing.num_retries, 3);
    assert_eq!(c.routing.timeout, Some(Duration::from_secs(30)));
    assert_eq!(c.routing.cooldown_time, Duration::from_secs(60));
    assert_eq!(
        c.routing.fallbacks,
        vec![(
            "gpt-4".to_string(),
            vec!["gpt-3.5-turbo".to_string(), "claude-2".to_string()]
        )]
    );
    assert_eq!(
        c.redis_url.as_ref().unwrap().expose(),
        "redis://:pw@localhost:6379"
    );
    let d = c
        .deployments
        .iter()
        .find(|d| d.id == "deployment-1")
        .unwrap();
    assert_eq!(d.timeout, Some(Duration::from_secs(300)));
    assert_eq!(d.tpm, Some(100_000));
    assert_eq!(d.mode, Some(Mode::Chat));
    assert!(
        c.ignored
            .iter()
            .any(|k| k == "general_settings.key_management_settings")
    );
    assert!(
        c.ignored
            .iter()
            .any(|k| k == "router_settings.routing_strategy_args")
    );
}

#[test]
fn the_shipped_example_loads_without_upstream_variables() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yaml");
    let c = GatewayConfig::load(&path, &env(&[]), HashMap::new()).unwrap();
    assert!(c.deployments.iter().any(|d| d.mock_response.is_some()));
    assert!(c.master_key.is_some());
    // The local embedding model is configured (its files are checked when the router is
    // built, not by the config) and is the RAG embedding model.
    let local = c
        .deployments
        .iter()
        .find(|d| d.model_name == "emb-local")
        .unwrap();
    assert_eq!(local.provider, ProviderKind::Local);
    assert_eq!(local.model, "all-MiniLM-L6-v2");
    assert_eq!(local.mode, Some(Mode::Embedding));
    assert_eq!(
        local.model_path.as_deref(),
        Some(std::path::Path::new("./models/all-MiniLM-L6-v2"))
    );
    assert!(
        c.disabled.iter().all(|d| d.model_name != "emb-local"),
        "{:?}",
        c.disabled
    );
    assert_eq!(c.rag.embedding_model, "emb-local");
}

#[test]
fn env_references_resolve_anywhere_with_precedence() {
    let yaml = r#"
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: os.environ/BASE
      extra_headers: {x-team: os.environ/TEAM}
environment_variables:
  BASE: http://from-config
  TEAM: config-team
general_settings:
  master_key: os.environ/MK
"#;
    let process = env(&[("TEAM", "process-team"), ("MK", "sk-m")]);
    let c = GatewayConfig::from_value(
        parse_yaml(yaml, "t").unwrap(),
        None,
        &process,
        env(&[("BASE", "http://from-file")]),
    )
    .unwrap();
    let d = &c.deployments[0];
    assert_eq!(d.api_base.as_deref(), Some("http://from-file"));
    assert_eq!(
        d.extra_headers,
        vec![("x-team".to_string(), "process-team".to_string())]
    );
    assert_eq!(c.master_key.unwrap().expose(), "sk-m");
}

#[test]
fn the_api_base_kept_for_spend_logs_has_no_password() {
    let yaml = r#"
model_list:
  - model_name: with-password
    litellm_params: {model: openai/m, api_base: "https://user:pw-secret@llm.internal:8443/v1/"}
  - model_name: plain
    litellm_params: {model: openai/m, api_base: "http://vllm.internal/v1"}
  - model_name: none
    litellm_params: {model: openai/m}
"#;
    let c = GatewayConfig::from_yaml_str(yaml, &env(&[])).unwrap();
    let redacted: Vec<&str> = c
        .deployments
        .iter()
        .map(|d| d.api_base_redacted.as_str())
        .collect();
    assert!(!redacted[0].contains("pw-secret"), "{redacted:?}");
    assert!(redacted[0].contains("llm.internal:8443/v1"), "{redacted:?}");
    // The real URL (with its password) is still what requests go to.
    assert_eq!(
        c.deployments[0].api_base.as_deref(),
        Some("https://user:pw-secret@llm.internal:8443/v1")
    );
    assert_eq!(redacted[1], "http://vllm.internal/v1");
    assert_eq!(redacted[2], "");
}

#[test]
fn deployments_are_priced_by_configured_prices_else_by_their_base_model() {
    let yaml = r#"
model_list:
  - model_name: priced
    litellm_params: {model: openai/gpt-4o, input_cost_per_token: 0.5}
  - model_name: by-base-model
    litellm_params: {model: azure/my-deployment}
    model_info: {base_model: azure/gpt-4o-mini}
  - model_name: by-model
    litellm_params: {model: openai/gpt-4o-2024-08-06}
  - model_name: unknown
    litellm_params: {model: openai/house-model}
"#;
    let c = GatewayConfig::from_yaml_str(yaml, &env(&[("AZURE_API_KEY", "k")])).unwrap();
    let prices = |name: &str| {
        c.deployments
            .iter()
            .find(|d| d.model_name == name)
            .unwrap()
            .prices
    };
    assert_eq!(prices("priced").input_cost_per_token, Some(0.5));
    assert_eq!(prices("priced").output_cost_per_token, None);
    assert_eq!(
        prices("by-base-model"),
        crate::prices::builtin_prices("gpt-4o-mini").unwrap()
    );
    assert_eq!(
        prices("by-model"),
        crate::prices::builtin_prices("gpt-4o").unwrap()
    );
    assert_eq!(prices("unknown"), crate::prices::ModelPrices::default());
}

#[test]
fn an_unset_variable_disables_only_its_deployment() {
    let yaml = r#"
model_list:
  - model_name: ok
    litellm_params: {model: openai/ok}
  - model_name: broken
    litellm_params: {model: openai/x, api_key: os.environ/NOT_SET_ANYWHERE}
"#;
    let c = GatewayConfig::from_yaml_str(yaml, &env(&[])).unwrap();
    assert_eq!(c.deployments.len(), 1);
    assert_eq!(c.disabled.len(), 1);
    assert_eq!(c.disabled[0].model_name, "broken");
    assert!(c.disabled[0].reason.contains("NOT_SET_ANYWHERE"));
}

#[test]
fn an_unset_variable_in_a_global_setting_is_an_error() {
    let err = GatewayConfig::from_yaml_str(
        "general_settings:\n  master_key: os.environ/NOPE_MK\n",
        &env(&[]),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("general_settings.master_key") && text.contains("NOPE_MK"),
        "{text}"
    );
}

#[test]
fn wrong_types_and_impossible_values_name_the_key_path() {
    let cases = [
        (
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, rpm: lots}\n",
            "model_list[0].litellm_params.rpm",
        ),
        (
            "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, timeout: -1}\n",
            "model_list[0].litellm_params.timeout",
        ),
        (
            "model_list:\n  - model_name: m\n    litellm_params: {api_base: x}\n",
            "model_list[0].litellm_params",
        ),
        (
            "router_settings:\n  routing_strategy: fastest\n",
            "router_settings.routing_strategy",
        ),
        (
            "router_settings:\n  num_retries: -2\n",
            "router_settings.num_retries",
        ),
        (
            "litellm_settings:\n  drop_params: maybe\n",
            "litellm_settings.drop_params",
        ),
        (
            "general_settings:\n  max_request_size_mb: 0\n",
            "general_settings.max_request_size_mb",
        ),
        (
            "general_settings:\n  stream_keepalive_seconds: -1\n",
            "general_settings.stream_keepalive_seconds",
        ),
        (
            "general_settings:\n  responses_retention_days: 0\n",
            "general_settings.responses_retention_days",
        ),
        ("model_list: {a: 1}\n", "model_list"),
    ];
    for (yaml, path) in cases {
        let err = GatewayConfig::from_yaml_str(yaml, &env(&[]))
            .expect_err(yaml)
            .to_string();
        assert!(
            err.starts_with(path),
            "expected an error at {path}, got: {err}"
        );
    }
}

#[test]
fn strings_are_accepted_for_numbers_and_booleans() {
    let yaml = "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, rpm: \"600\", timeout: \"2.5\"}\nlitellm_settings: {drop_params: \"True\"}\n";
    let c = GatewayConfig::from_yaml_str(yaml, &env(&[])).unwrap();
    assert_eq!(c.deployments[0].rpm, Some(600));
    assert_eq!(c.deployments[0].timeout, Some(Duration::from_millis(2500)));
    assert!(c.routing.drop_params);
}

#[test]
fn includes_merge_model_lists() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.yaml"),
        "model_list:\n  - model_name: b\n    litellm_params: {model: openai/b}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "include: [models.yaml]\nmodel_list:\n  - model_name: a\n    litellm_params: {model: openai/a}\n",
    )
    .unwrap();
    let c =
        GatewayConfig::load(&dir.path().join("config.yaml"), &env(&[]), HashMap::new()).unwrap();
    assert_eq!(c.model_names(), vec!["a", "b"]);
    let err = GatewayConfig::load(&dir.path().join("missing.yaml"), &env(&[]), HashMap::new())
        .unwrap_err();
    assert!(err.to_string().contains("missing.yaml"));
}

#[test]
fn unknown_top_level_and_provider_prefixes() {
    let yaml = "credential_list: []\nmodel_list:\n  - model_name: m\n    litellm_params: {model: huggingface/x}\n  - model_name: plain\n    litellm_params: {model: gpt-4o}\n";
    let c = GatewayConfig::from_yaml_str(yaml, &env(&[])).unwrap();
    assert!(c.ignored.contains(&"credential_list".to_string()));
    assert_eq!(c.disabled[0].model_name, "m");
    assert!(c.disabled[0].reason.contains("huggingface"));
    assert_eq!(
        c.deployments[0].provider,
        ProviderKind::OpenAi,
        "a bare model name means openai/"
    );
}

#[test]
fn environment_overrides_settings_for_services() {
    let yaml = "general_settings: {database_url: postgresql://a:b@yaml/db}\nrag_settings: {collection: from-yaml, embedding_model: emb-yaml}\n";
    let c = GatewayConfig::from_yaml_str(
        yaml,
        &env(&[
            ("DATABASE_URL", "postgresql://x@env/db"),
            ("REDIS_HOST", "r"),
            ("QDRANT_URL", "http://q:6333"),
            ("EMBEDDING_MODEL", "emb-env"),
        ]),
    )
    .unwrap();
    assert_eq!(c.database_url.unwrap().expose(), "postgresql://x@env/db");
    assert_eq!(c.redis_url.unwrap().expose(), "redis://r:6379");
    assert_eq!(c.rag.qdrant_url.unwrap().expose(), "http://q:6333");
    assert_eq!(c.rag.collection, "from-yaml");
    assert_eq!(c.rag.embedding_model, "emb-env");
}
