//! `/v1/responses`: OpenAI's Responses API through the gateway. The store of responses kept
//! for `previous_response_id` (HX's own table), as a contract run on both backends.

use std::path::Path;

use hx_gateway::db::KeyStore;
use hx_gateway::db::responses::StoredResponse;

use crate::common::*;

fn row(id: &str, previous: Option<&str>, created_at: i64) -> StoredResponse {
    StoredResponse {
        id: id.into(),
        api_key: "hash-of-key".into(),
        model: "gpt".into(),
        previous_response_id: previous.map(Into::into),
        created_at,
        input: format!(r#"[{{"type":"message","role":"user","content":"{id}"}}]"#),
        response: format!(r#"{{"id":"{id}","object":"response","output":[]}}"#),
    }
}

async fn stored_responses_contract(store: KeyStore) {
    store
        .store_response(&row("resp_a", None, 100))
        .await
        .unwrap();
    store
        .store_response(&row("resp_b", Some("resp_a"), 200))
        .await
        .unwrap();
    store
        .store_response(&row("resp_c", Some("resp_b"), 300))
        .await
        .unwrap();
    assert_eq!(
        store.response("resp_b").await.unwrap(),
        Some(row("resp_b", Some("resp_a"), 200))
    );
    assert_eq!(store.response("resp_x").await.unwrap(), None);
    // A conversation reads back oldest first, from any point of it.
    let ids = |chain: Vec<StoredResponse>| chain.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.response_chain("resp_c").await.unwrap()),
        ["resp_a", "resp_b", "resp_c"]
    );
    assert_eq!(
        ids(store.response_chain("resp_b").await.unwrap()),
        ["resp_a", "resp_b"]
    );
    assert!(store.response_chain("resp_x").await.unwrap().is_empty());
    // Storing an id again replaces it.
    let mut changed = row("resp_c", Some("resp_b"), 300);
    changed.response = r#"{"id":"resp_c","status":"completed"}"#.into();
    store.store_response(&changed).await.unwrap();
    assert_eq!(store.response("resp_c").await.unwrap(), Some(changed));
    // Pruning takes what is older than the cut; a chain then ends where its past was pruned.
    assert_eq!(store.prune_responses(150).await.unwrap(), 1);
    assert_eq!(
        ids(store.response_chain("resp_c").await.unwrap()),
        ["resp_b", "resp_c"]
    );
    assert!(store.delete_response("resp_b").await.unwrap());
    assert!(!store.delete_response("resp_b").await.unwrap());
    assert_eq!(
        ids(store.response_chain("resp_c").await.unwrap()),
        ["resp_c"]
    );
}

#[tokio::test]
async fn stored_responses_chain_replace_prune_and_delete_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::connect(None, dir.path(), true).await.unwrap();
    stored_responses_contract(store).await;
}

#[tokio::test]
async fn stored_responses_chain_replace_prune_and_delete_in_postgres() {
    let db = ScratchDb::create().await;
    let store = KeyStore::connect(Some(&db.url()), Path::new("/nonexistent"), true)
        .await
        .unwrap();
    stored_responses_contract(store).await;
}
