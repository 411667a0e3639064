//! The response cache, local (moka) and in the machine's Redis (a unique prefix per test).

use std::time::Duration;

use bytes::Bytes;
use hx_gateway::api::Endpoint;
use hx_gateway::cache::{
    CacheBackendKind, CacheMode, CacheSettings, ResponseCache, SSE_DONE, canonical_json,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::limits::{REDIS, ThrowawayRedis, unique_prefix};

fn local() -> ResponseCache {
    ResponseCache::new(CacheSettings::default(), None).unwrap()
}

fn redis_cache(prefix: &str) -> ResponseCache {
    let settings = CacheSettings {
        backend: CacheBackendKind::Redis,
        key_prefix: prefix.to_string(),
        redis_timeout: Duration::from_secs(5),
        ..CacheSettings::default()
    };
    ResponseCache::new(settings, Some(REDIS)).unwrap()
}

fn both() -> Vec<(&'static str, ResponseCache)> {
    vec![
        ("local", local()),
        ("redis", redis_cache(&unique_prefix("cache"))),
    ]
}

fn chat(content: &str) -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
}

fn chat_with_cache(content: &str, cache: Value) -> Value {
    let mut body = chat(content);
    body["cache"] = cache;
    body
}

fn completion_body(text: &str) -> Bytes {
    Bytes::from(
        json!({"id": "chatcmpl-9", "object": "chat.completion", "created": 7, "model": "gpt-4o",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}})
        .to_string(),
    )
}

#[tokio::test]
async fn chat_hit_and_miss() {
    for (name, cache) in both() {
        let plan = cache
            .plan(Endpoint::Chat, "gpt-4o", &chat("hi"))
            .unwrap()
            .unwrap();
        assert!(
            cache.lookup(&plan).await.is_none(),
            "{name}: empty cache hit"
        );
        cache.store(&plan, completion_body("hello")).await;
        // The same question, fields reordered and with non-semantic extras: a hit.
        let again = json!({"messages": [{"content": "hi", "role": "user"}], "model": "gpt-4o",
                           "stream": true, "user": "someone", "metadata": {"a": 1}});
        let plan2 = cache
            .plan(Endpoint::Chat, "gpt-4o", &again)
            .unwrap()
            .unwrap();
        assert_eq!(plan.key, plan2.key);
        let hit = cache
            .lookup(&plan2)
            .await
            .unwrap_or_else(|| panic!("{name}: no hit"));
        assert_eq!(hit.body, completion_body("hello"));
        assert!(hit.age < Duration::from_secs(60));
        // A different question or model group: a miss.
        let other = cache
            .plan(Endpoint::Chat, "gpt-4o", &chat("bye"))
            .unwrap()
            .unwrap();
        assert!(cache.lookup(&other).await.is_none(), "{name}");
        let other_group = cache
            .plan(Endpoint::Chat, "gpt-4o-mini", &chat("hi"))
            .unwrap()
            .unwrap();
        assert!(cache.lookup(&other_group).await.is_none(), "{name}");
    }
}

#[tokio::test]
async fn embedding_hit_and_miss() {
    for (name, cache) in both() {
        let body = json!({"model": "emb", "input": ["a", "b"]});
        let plan = cache
            .plan(Endpoint::Embedding, "emb", &body)
            .unwrap()
            .unwrap();
        assert!(cache.lookup(&plan).await.is_none());
        let answer = Bytes::from(
            json!({"object": "list", "data": [{"object": "embedding", "index": 0,
                   "embedding": [0.1, 0.2]}], "model": "emb"})
            .to_string(),
        );
        cache.store(&plan, answer.clone()).await;
        assert_eq!(cache.lookup(&plan).await.unwrap().body, answer, "{name}");
        let other = json!({"model": "emb", "input": ["a", "c"]});
        let plan = cache
            .plan(Endpoint::Embedding, "emb", &other)
            .unwrap()
            .unwrap();
        assert!(cache.lookup(&plan).await.is_none(), "{name}");
    }
}

#[tokio::test]
async fn redis_cache_is_shared_between_instances() {
    let prefix = unique_prefix("shared");
    let (a, b) = (redis_cache(&prefix), redis_cache(&prefix));
    let plan = a
        .plan(Endpoint::Chat, "gpt-4o", &chat("q"))
        .unwrap()
        .unwrap();
    a.store(&plan, completion_body("x")).await;
    let plan_b = b
        .plan(Endpoint::Chat, "gpt-4o", &chat("q"))
        .unwrap()
        .unwrap();
    assert_eq!(b.lookup(&plan_b).await.unwrap().body, completion_body("x"));
}

#[tokio::test]
async fn no_cache_and_no_store() {
    for (name, cache) in both() {
        // no-store: answered fresh, not kept.
        let body = chat_with_cache("q1", json!({"no-store": true}));
        let plan = cache.plan(Endpoint::Chat, "m", &body).unwrap().unwrap();
        assert!(plan.read && !plan.write);
        cache.store(&plan, completion_body("a")).await;
        let plain = cache
            .plan(Endpoint::Chat, "m", &chat("q1"))
            .unwrap()
            .unwrap();
        assert_eq!(plain.key, plan.key);
        assert!(
            cache.lookup(&plain).await.is_none(),
            "{name}: no-store stored"
        );

        // no-cache: the cached answer is not read, but the fresh one replaces it.
        cache.store(&plain, completion_body("old")).await;
        let body = chat_with_cache("q1", json!({"no-cache": true}));
        let plan = cache.plan(Endpoint::Chat, "m", &body).unwrap().unwrap();
        assert!(cache.lookup(&plan).await.is_none(), "{name}: no-cache read");
        cache.store(&plan, completion_body("new")).await;
        assert_eq!(
            cache.lookup(&plain).await.unwrap().body,
            completion_body("new")
        );

        // Both: the cache stays out entirely.
        let body = chat_with_cache("q1", json!({"no-cache": true, "no-store": true}));
        assert!(cache.plan(Endpoint::Chat, "m", &body).unwrap().is_none());
        // Malformed controls are a 400 naming `cache`.
        let bad = chat_with_cache("q1", json!({"ttl": "soon"}));
        let e =
            hx_gateway::error::ApiError::from(cache.plan(Endpoint::Chat, "m", &bad).unwrap_err());
        assert_eq!(
            (e.status().as_u16(), e.param.as_deref()),
            (400, Some("cache"))
        );
    }
}

#[tokio::test]
async fn ttl_expiry_and_s_maxage() {
    for (name, cache) in both() {
        let body = chat_with_cache("short", json!({"ttl": 1}));
        let plan = cache.plan(Endpoint::Chat, "m", &body).unwrap().unwrap();
        assert_eq!(plan.ttl, Duration::from_secs(1));
        cache.store(&plan, completion_body("a")).await;
        let long = cache
            .plan(Endpoint::Chat, "m", &chat("long"))
            .unwrap()
            .unwrap();
        cache.store(&long, completion_body("b")).await;
        assert!(cache.lookup(&plan).await.is_some(), "{name}");
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        assert!(
            cache.lookup(&plan).await.is_none(),
            "{name}: ttl did not expire"
        );
        // The entry stored with the default TTL is still there, but more than 1 s old:
        // s-maxage 1 refuses it, s-maxage 60 accepts it.
        let strict = chat_with_cache("long", json!({"s-maxage": 1}));
        let strict = cache.plan(Endpoint::Chat, "m", &strict).unwrap().unwrap();
        assert_eq!(strict.key, long.key);
        assert!(
            cache.lookup(&strict).await.is_none(),
            "{name}: stale hit accepted"
        );
        let lenient = chat_with_cache("long", json!({"s-maxage": 60}));
        let lenient = cache.plan(Endpoint::Chat, "m", &lenient).unwrap().unwrap();
        assert!(cache.lookup(&lenient).await.unwrap().age >= Duration::from_secs(1));
    }
}

#[tokio::test]
async fn configured_ttl_expires_entries() {
    let settings = CacheSettings {
        ttl: Duration::from_millis(500),
        ..CacheSettings::default()
    };
    let cache = ResponseCache::new(settings, None).unwrap();
    let plan = cache
        .plan(Endpoint::Chat, "m", &chat("x"))
        .unwrap()
        .unwrap();
    cache.store(&plan, completion_body("a")).await;
    assert!(cache.lookup(&plan).await.is_some());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(cache.lookup(&plan).await.is_none());
}

#[tokio::test]
async fn namespaces_separate_entries() {
    for (name, cache) in both() {
        let in_a = chat_with_cache("q", json!({"namespace": "a"}));
        let in_b = chat_with_cache("q", json!({"namespace": "b"}));
        let plan_a = cache.plan(Endpoint::Chat, "m", &in_a).unwrap().unwrap();
        let plan_b = cache.plan(Endpoint::Chat, "m", &in_b).unwrap().unwrap();
        // Same question, same key for the header; different storage.
        assert_eq!(plan_a.key, plan_b.key);
        assert_ne!(plan_a.storage_key, plan_b.storage_key);
        cache.store(&plan_a, completion_body("in a")).await;
        assert!(cache.lookup(&plan_b).await.is_none(), "{name}");
        assert_eq!(
            cache.lookup(&plan_a).await.unwrap().body,
            completion_body("in a")
        );
    }
    // A configured namespace applies when the request names none.
    let settings = CacheSettings {
        namespace: Some("team-x".into()),
        ..CacheSettings::default()
    };
    let cache = ResponseCache::new(settings, None).unwrap();
    let plan = cache
        .plan(Endpoint::Chat, "m", &chat("q"))
        .unwrap()
        .unwrap();
    assert!(plan.storage_key.contains(":team-x:"));
}

#[tokio::test]
async fn default_off_mode_and_call_types() {
    let settings = CacheSettings {
        mode: CacheMode::DefaultOff,
        supported_call_types: vec![Endpoint::Chat],
        ..CacheSettings::default()
    };
    let cache = ResponseCache::new(settings, None).unwrap();
    assert!(
        cache
            .plan(Endpoint::Chat, "m", &chat("q"))
            .unwrap()
            .is_none()
    );
    let opted_in = chat_with_cache("q", json!({"use-cache": true}));
    assert!(
        cache
            .plan(Endpoint::Chat, "m", &opted_in)
            .unwrap()
            .is_some()
    );
    let emb = json!({"input": "x", "cache": {"use-cache": true}});
    assert!(
        cache
            .plan(Endpoint::Embedding, "m", &emb)
            .unwrap()
            .is_none()
    );
    // In the default mode a request may still opt out.
    let cache = local();
    let opted_out = chat_with_cache("q", json!({"use-cache": false}));
    assert!(
        cache
            .plan(Endpoint::Chat, "m", &opted_out)
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn cached_chat_replays_as_a_valid_stream() {
    let cache = local();
    let mut body = chat("stream me");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let plan = cache
        .plan(Endpoint::Chat, "gpt-4o", &body)
        .unwrap()
        .unwrap();
    cache.store(&plan, completion_body("streamed answer")).await;
    let hit = cache.lookup(&plan).await.unwrap();
    let events = hit.sse_events(true).unwrap();
    assert_eq!(events.last().unwrap(), SSE_DONE);
    let mut content = String::new();
    let mut finish = None;
    let mut usage = None;
    for event in &events[..events.len() - 1] {
        let data = event.strip_prefix("data: ").unwrap();
        assert!(data.ends_with("\n\n") && !data.trim_end().contains('\n'));
        let chunk: Value = serde_json::from_str(data.trim_end()).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "chatcmpl-9");
        if let Some(choice) = chunk["choices"].as_array().unwrap().first() {
            content.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if !choice["finish_reason"].is_null() {
                finish = Some(choice["finish_reason"].clone());
            }
        }
        if !chunk["usage"].is_null() {
            usage = Some(chunk["usage"].clone());
        }
    }
    assert_eq!(content, "streamed answer");
    assert_eq!(finish, Some(json!("stop")));
    assert_eq!(usage.unwrap()["total_tokens"], 7);
}

/// The key is a pure function of the request (instances, versions and processes agree): it
/// equals SHA-256 over the documented canonical form, computed here independently.
#[test]
fn cache_key_is_stable() {
    let body = json!({"temperature": 0, "messages": [{"role": "user", "content": "é \"q\""}],
                      "model": "alias", "user": "u", "stream": false});
    let cache = local();
    let plan = cache
        .plan(Endpoint::Chat, "gpt-4o", &body)
        .unwrap()
        .unwrap();
    let request = json!({"messages": [{"role": "user", "content": "é \"q\""}], "temperature": 0});
    let canonical = format!(
        "{{\"call\":\"acompletion\",\"model\":\"gpt-4o\",\"request\":{}}}",
        canonical_json(&request)
    );
    assert_eq!(plan.key, hex::encode(Sha256::digest(canonical.as_bytes())));
    let other_instance = local();
    let plan2 = other_instance
        .plan(Endpoint::Chat, "gpt-4o", &body)
        .unwrap()
        .unwrap();
    assert_eq!(plan.key, plan2.key);
}

#[tokio::test]
async fn local_cache_memory_is_bounded() {
    let settings = CacheSettings {
        max_bytes: 64 * 1024,
        ..CacheSettings::default()
    };
    let cache = ResponseCache::new(settings, None).unwrap();
    let big = Bytes::from(vec![b'x'; 4 * 1024]);
    for i in 0..100 {
        let plan = cache
            .plan(Endpoint::Chat, "m", &chat(&format!("q{i}")))
            .unwrap()
            .unwrap();
        cache.store(&plan, big.clone()).await;
    }
    let size = cache.local_weighted_size().await.unwrap();
    assert!(size <= 64 * 1024, "local cache holds {size} bytes");
    assert!(size > 0);
}

#[tokio::test]
async fn redis_cache_outage_is_a_miss_not_an_error() {
    let mut server = ThrowawayRedis::start(None).await;
    let settings = CacheSettings {
        backend: CacheBackendKind::Redis,
        key_prefix: unique_prefix("cache-outage"),
        ..CacheSettings::default()
    };
    let cache = ResponseCache::new(settings, Some(&server.url())).unwrap();
    let plan = cache
        .plan(Endpoint::Chat, "m", &chat("q"))
        .unwrap()
        .unwrap();
    cache.store(&plan, completion_body("a")).await;
    assert!(cache.lookup(&plan).await.is_some());
    server.stop();
    assert!(cache.lookup(&plan).await.is_none());
    cache.store(&plan, completion_body("b")).await;
    let server = ThrowawayRedis::start(Some(server.port)).await;
    let mut stored = false;
    for _ in 0..50 {
        cache.store(&plan, completion_body("c")).await;
        if cache.lookup(&plan).await.is_some() {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stored,
        "cache did not use redis again on port {}",
        server.port
    );
}
