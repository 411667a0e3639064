//! The RAG API logic of `/v1/rag/search`, `/v1/rag/upsert` and `/v1/rag/delete` (and the
//! unlisted `/v1/rag/points`), without HTTP: the checks that span fields, namespace scoping,
//! embedding in batches, deterministic ids, collection auto-creation, and the exact response
//! shapes.
//!
//! Operations take typed requests ([`super::request`], which reads each field with the spec's
//! message for a wrong value).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::request::{DeleteRequest, PointsRequest, RagRequest, SearchRequest, UpsertRequest};
use super::store::{
    DeleteSelector, EmbeddedStore, EmbeddedStoreOptions, Filter, Point, PointId, QdrantServerStore,
    ScoredPoint, ScrollQuery, SearchQuery, VectorStore, VectorStoreError, WithPayload,
    valid_collection_name,
};
use super::{Embedder, RagConfig, RagScope};
use crate::error::{ApiError, ErrorKind};

/// Texts per embedding call when upserting documents.
pub const DEFAULT_EMBED_BATCH: usize = 64;
const DEFAULT_LIMIT: u64 = 5;
/// Page size of `/v1/rag/points` when the request names none.
const DEFAULT_POINTS_LIMIT: u64 = 100;
const NEITHER_QUERY_NOR_VECTOR: &str = "Provide either 'vector' or 'query'.";

/// Which RAG operation a request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RagOperation {
    Search,
    Upsert,
    Delete,
    /// `/v1/rag/points` (not in the public contract): stored points by filter, for ingest.
    Points,
}

impl RagOperation {
    /// The `operation` label of the RAG metrics.
    pub fn name(self) -> &'static str {
        match self {
            RagOperation::Search => "search",
            RagOperation::Upsert => "upsert",
            RagOperation::Delete => "delete",
            RagOperation::Points => "points",
        }
    }
}

/// The RAG API over one vector store.
pub struct RagService {
    store: VectorStore,
    /// Whether the vector store is open: false after a failed open (another process holds
    /// the embedded store's directory), true again after any operation succeeds. Read by
    /// the dependency health output.
    open: AtomicBool,
    default_collection: String,
    embed_batch: usize,
    /// Upserts never create a collection beyond this many.
    max_collections: usize,
}

impl RagService {
    pub fn new(store: VectorStore, default_collection: impl Into<String>) -> Self {
        RagService {
            store,
            open: AtomicBool::new(true),
            default_collection: default_collection.into(),
            embed_batch: DEFAULT_EMBED_BATCH,
            max_collections: crate::rag::DEFAULT_MAX_COLLECTIONS,
        }
    }

    /// The store the config asks for: a Qdrant server when `qdrant_url` is set, else the
    /// embedded engine under `<data_dir>/qdrant`. The embedded store opens (and locks its
    /// directory) on first use, not here; call [`RagService::health`] to open it eagerly.
    pub fn open(cfg: RagConfig) -> Result<Self, VectorStoreError> {
        if !valid_collection_name(&cfg.collection) {
            return Err(VectorStoreError::BadRequest(format!(
                "QDRANT_COLLECTION '{}' is not a valid collection name (letters, digits, '_', '-', '.')",
                cfg.collection
            )));
        }
        let store = match cfg.qdrant_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => {
                VectorStore::Server(QdrantServerStore::new(url, cfg.qdrant_api_key)?)
            }
            _ => VectorStore::Embedded(EmbeddedStore::new(
                cfg.data_dir.join("qdrant"),
                EmbeddedStoreOptions::default(),
            )),
        };
        Ok(RagService::new(store, cfg.collection))
    }

    /// The most collections upserts may create (`rag_settings.max_collections`).
    pub fn with_max_collections(mut self, max: usize) -> Self {
        self.max_collections = max;
        self
    }

    /// Texts per embedding call for documents (at least 1).
    pub fn with_embed_batch(mut self, batch: usize) -> Self {
        self.embed_batch = batch.max(1);
        self
    }

    pub fn store(&self) -> &VectorStore {
        &self.store
    }

    pub fn default_collection(&self) -> &str {
        &self.default_collection
    }

    /// Health of the store (opens the embedded store if not yet open); a failure marks the
    /// store not open until an operation succeeds.
    pub async fn health(&self) -> Result<(), VectorStoreError> {
        let result = self.store.health().await;
        if result.is_err() {
            self.set_open(false);
        }
        result
    }

    /// Whether the vector store is open (see [`RagService::health`]).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Marks the store open or not (a failed open elsewhere, or tests of the health output).
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// Runs one operation for a caller, counted in the RAG metrics under `operation`.
    /// `request` is the typed request, or the 400 its body was rejected with: a rejected body
    /// counts as a failed operation like any other error. A success shows the vector store
    /// open: the start-up check marks it down while another process holds the embedded store's
    /// directory, and it opens on a later request once that process is gone.
    pub async fn run(
        &self,
        operation: RagOperation,
        scope: &RagScope,
        embedder: &dyn Embedder,
        request: Result<RagRequest, ApiError>,
    ) -> Result<Value, ApiError> {
        let started = Instant::now();
        let result = match request {
            Err(rejected) => Err(rejected),
            Ok(RagRequest::Search(request)) => self.search(scope, embedder, request).await,
            Ok(RagRequest::Upsert(request)) => self.upsert(scope, embedder, request).await,
            Ok(RagRequest::Delete(request)) => self.delete(scope, embedder, request).await,
            Ok(RagRequest::Points(request)) => self.points(scope, request).await,
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        crate::metrics::record_rag_operation(operation.name(), outcome, started.elapsed());
        if result.is_ok() {
            self.set_open(true);
        }
        result
    }

    /// Flushes and stops the store; call at shutdown.
    pub async fn close(&self) -> Result<(), VectorStoreError> {
        self.store.close().await
    }

    /// `POST /v1/rag/search`.
    pub async fn search(
        &self,
        scope: &RagScope,
        embedder: &dyn Embedder,
        request: SearchRequest,
    ) -> Result<Value, ApiError> {
        let SearchRequest {
            collection,
            namespace,
            filter,
            limit,
            score_threshold,
            with_payload,
            with_vector,
            vector,
            query,
        } = request;
        let collection = self.collection(collection);
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        // The spec: a threshold applies when present and > 0.
        let score_threshold = score_threshold.filter(|t| *t > 0.0).map(|t| t as f32);
        let with_payload = with_payload.unwrap_or(WithPayload::All(true));
        if vector.is_none() && query.is_none() {
            return Err(ApiError::invalid(NEITHER_QUERY_NOR_VECTOR, "query"));
        }

        // Scope before any embedding cost is spent.
        let filter_json = scoped_filter(
            scope,
            &self.default_collection,
            &collection,
            namespace.as_deref(),
            filter,
        )?;

        let vector = match vector {
            Some(v) => v,
            None => {
                let text = query.unwrap_or_default();
                let mut vectors = embedder.embed(vec![text]).await?;
                if vectors.len() != 1 {
                    return Err(embedding_count_error(1, vectors.len()));
                }
                vectors.remove(0)
            }
        };

        let started = Instant::now();
        let hits = self
            .store
            .search(
                &collection,
                SearchQuery {
                    vector,
                    filter: filter_json.map(Filter::trusted),
                    score_threshold,
                    limit: limit as usize,
                    with_payload,
                    with_vector,
                },
            )
            .await?;
        let time = started.elapsed().as_secs_f64();
        let result: Vec<Value> = hits.into_iter().map(|h| hit_json(h, with_vector)).collect();
        Ok(json!({
            "status": "ok",
            "result": {"result": result, "status": "ok", "time": time},
        }))
    }

    /// `POST /v1/rag/points`: lists stored points (ids and payloads) matching a filter, in id
    /// order, a page at a time, without a query vector (Qdrant's scroll). Not in the public
    /// contract's three routes; `hx-gateway rag ingest` uses it to see what a source already
    /// has stored. Scoped like search: a scoped key sees only its namespaces.
    ///
    /// Body: `{"collection"?, "namespace"?, "filter"?, "limit"? (1..=1000, default 100),
    /// "offset"? (the previous page's `next_page_offset`), "with_payload"? (default true)}`.
    /// Answer: `{"status": "ok", "result": {"points": [{"id", "payload"}], "next_page_offset"}}`.
    pub async fn points(
        &self,
        scope: &RagScope,
        request: PointsRequest,
    ) -> Result<Value, ApiError> {
        let PointsRequest {
            collection,
            namespace,
            filter,
            limit,
            offset,
            with_payload,
        } = request;
        let collection = self.collection(collection);
        let limit = limit.unwrap_or(DEFAULT_POINTS_LIMIT);
        let with_payload = with_payload.unwrap_or(WithPayload::All(true));
        let filter_json = scoped_filter(
            scope,
            &self.default_collection,
            &collection,
            namespace.as_deref(),
            filter,
        )?;
        let page = self
            .store
            .scroll(
                &collection,
                ScrollQuery {
                    filter: filter_json.map(Filter::trusted),
                    limit: limit as usize,
                    offset,
                    with_payload,
                },
            )
            .await?;
        let points: Vec<Value> = page
            .points
            .into_iter()
            .map(|p| json!({"id": p.id.to_json(), "payload": p.payload}))
            .collect();
        Ok(json!({
            "status": "ok",
            "result": {
                "points": points,
                "next_page_offset": page.next_offset.map(PointId::to_json),
            },
        }))
    }

    /// `POST /v1/rag/upsert`.
    pub async fn upsert(
        &self,
        scope: &RagScope,
        embedder: &dyn Embedder,
        request: UpsertRequest,
    ) -> Result<Value, ApiError> {
        let UpsertRequest {
            collection,
            namespace,
            documents,
            points: raw_points,
        } = request;
        let collection = self.collection(collection);
        if documents.is_empty() && raw_points.is_empty() {
            return Err(ApiError::invalid(
                "Provide 'documents' or 'points' to upsert.",
                "documents",
            ));
        }

        check_scope(
            scope,
            &self.default_collection,
            &collection,
            namespace.as_deref(),
            None,
        )?;
        if let Some(allowed) = &scope.namespaces {
            if namespace.is_none() {
                return Err(namespace_required());
            }
            let named = documents
                .iter()
                .map(|d| (d.metadata.get("namespace"), "documents"))
                .chain(
                    raw_points
                        .iter()
                        .map(|p| (p.payload.get("namespace"), "points")),
                );
            for (ns, param) in named {
                if let Some(ns) = ns
                    && !ns.as_str().is_some_and(|s| allowed.iter().any(|a| a == s))
                {
                    return Err(foreign_namespace(&value_text(ns)).with_param(param));
                }
            }
        }

        // Every document's id, given or derived, before anything is embedded or written.
        let ns_for_id = namespace.clone().unwrap_or_default();
        let doc_ids: Vec<PointId> = documents
            .iter()
            .map(|d| d.id.unwrap_or_else(|| document_id(&ns_for_id, &d.text)))
            .collect();

        // A scoped key must not overwrite, by id (given or derived), a point of a namespace it
        // cannot touch.
        if let Some(allowed) = &scope.namespaces {
            let explicit: Vec<Value> = doc_ids
                .iter()
                .copied()
                .chain(raw_points.iter().map(|p| p.id))
                .map(PointId::to_json)
                .collect();
            if !explicit.is_empty() {
                let foreign = json!({
                    "must": [{"has_id": explicit}],
                    "must_not": [{"key": "namespace", "match": {"any": allowed}}],
                });
                match self
                    .store
                    .count(&collection, Some(Filter::trusted(foreign)))
                    .await
                {
                    Ok(0) | Err(VectorStoreError::CollectionNotFound(_)) => {}
                    Ok(_) => {
                        return Err(ApiError::new(
                            ErrorKind::Permission,
                            "An id of this request belongs to a point outside this key's RAG namespaces.",
                        )
                        .with_param("ids"));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }

        // Embed documents in batches, all before anything is stored.
        let mut points = Vec::with_capacity(documents.len() + raw_points.len());
        let mut ids_left = doc_ids.iter();
        for batch in documents.chunks(self.embed_batch) {
            let texts: Vec<String> = batch.iter().map(|d| d.text.clone()).collect();
            let vectors = embedder.embed(texts).await?;
            if vectors.len() != batch.len() {
                return Err(embedding_count_error(batch.len(), vectors.len()));
            }
            for (doc, vector) in batch.iter().zip(vectors) {
                let mut payload = doc.metadata.clone();
                payload.insert("text".into(), Value::String(doc.text.clone()));
                let id = ids_left
                    .next()
                    .copied()
                    .unwrap_or_else(|| document_id(&ns_for_id, &doc.text));
                points.push(Point {
                    id,
                    vector,
                    payload,
                });
            }
        }
        points.extend(raw_points);
        if let Some(ns) = &namespace {
            for p in &mut points {
                p.payload
                    .insert("namespace".into(), Value::String(ns.clone()));
            }
        }

        // One size for the whole request, and the collection's if it exists.
        let size = points.first().map_or(0, |p| p.vector.len());
        if size == 0 {
            return Err(ApiError::invalid("Vectors must not be empty.", "points"));
        }
        if let Some(p) = points.iter().find(|p| p.vector.len() != size) {
            return Err(ApiError::invalid(
                format!(
                    "All vectors of a request must have the same size: got sizes {size} and {}.",
                    p.vector.len()
                ),
                "points",
            ));
        }
        match self.store.collection_info(&collection).await? {
            Some(info) if info.vector_size != size => {
                return Err(VectorStoreError::WrongDimension {
                    expected: info.vector_size,
                    got: size,
                }
                .into());
            }
            Some(_) => {}
            None => {
                self.may_create(scope, &collection).await?;
                self.store.create_collection(&collection, size).await?;
            }
        }
        let ids: Vec<Value> = points.iter().map(|p| p.id.to_json()).collect();
        let count = points.len();
        self.store.upsert(&collection, points).await?;
        // Documents stored before ids were derived injectively live at their legacy id: the
        // re-upsert of the same text replaces them as it always did. Only a point of the
        // request's own namespace (or, without one, of none) is removed.
        let legacy: Vec<Value> = documents
            .iter()
            .filter(|d| d.id.is_none())
            .map(|d| legacy_document_id(&ns_for_id, &d.text).to_json())
            .collect();
        if !legacy.is_empty() {
            let in_namespace = match &namespace {
                Some(ns) => namespace_is(ns),
                None => json!({"is_empty": {"key": "namespace"}}),
            };
            let selector = DeleteSelector::Filter(Filter::trusted(json!({
                "must": [{"has_id": legacy}, in_namespace],
            })));
            if let Err(e) = self.store.delete(&collection, selector).await {
                tracing::warn!(error = %e, collection = %collection,
                    "documents at their legacy ids were not removed after an upsert");
            }
        }
        Ok(json!({"status": "ok", "result": {"upserted": count, "ids": ids}}))
    }

    /// `POST /v1/rag/delete`.
    pub async fn delete(
        &self,
        scope: &RagScope,
        _embedder: &dyn Embedder,
        request: DeleteRequest,
    ) -> Result<Value, ApiError> {
        let DeleteRequest {
            collection,
            namespace,
            filter,
            ids,
        } = request;
        let collection = self.collection(collection);
        // An empty filter matches every point: it is no criterion.
        let filter = filter.filter(|f| has_conditions(f.as_json()));
        if ids.is_empty() && namespace.is_none() && filter.is_none() {
            return Err(ApiError::invalid(
                "Provide at least one of 'ids', 'namespace' or 'filter': a delete never wipes a whole collection.",
                "ids",
            ));
        }
        check_scope(
            scope,
            &self.default_collection,
            &collection,
            namespace.as_deref(),
            filter.as_ref(),
        )?;
        if scope.namespaces.is_some() && namespace.is_none() {
            return Err(namespace_required());
        }

        let selector = if namespace.is_none() && filter.is_none() {
            DeleteSelector::Ids(ids)
        } else {
            // Every given criterion must hold: ids AND namespace AND filter.
            let mut combined = filter.map(Filter::into_json);
            if let Some(ns) = &namespace {
                combined = Some(add_must(combined, namespace_is(ns)));
            }
            if !ids.is_empty() {
                let ids: Vec<Value> = ids.into_iter().map(PointId::to_json).collect();
                combined = Some(add_must(combined, json!({"has_id": ids})));
            }
            DeleteSelector::Filter(Filter::trusted(combined.unwrap_or_else(|| json!({}))))
        };
        self.store.delete(&collection, selector).await?;
        Ok(json!({"status": "ok", "result": {"status": "completed"}}))
    }

    /// Whether this upsert may create `collection`: the default collection always; others
    /// only for a caller allowed to create collections, and never past `max_collections`.
    async fn may_create(&self, scope: &RagScope, collection: &str) -> Result<(), ApiError> {
        if collection == self.default_collection {
            return Ok(());
        }
        if !scope.create_collections {
            return Err(ApiError::new(
                ErrorKind::Permission,
                format!(
                    "This key may not create the collection '{collection}': only the master key, or a key whose metadata.rag_create_collections is true, creates collections other than the default."
                ),
            )
            .with_param("collection"));
        }
        let existing = self.store.collection_count().await?;
        if existing >= self.max_collections {
            return Err(ApiError::invalid(
                format!(
                    "The vector store already holds {existing} collections, the most allowed (rag_settings.max_collections = {}); collection '{collection}' was not created.",
                    self.max_collections
                ),
                "collection",
            ));
        }
        Ok(())
    }

    /// The request's collection, or the default.
    fn collection(&self, collection: Option<String>) -> String {
        collection.unwrap_or_else(|| self.default_collection.clone())
    }
}

/// The deterministic id of a document without one: UUIDv5(NAMESPACE_URL, "hx2:" + the
/// namespace's length in bytes + ":" + namespace + text). The length prefix makes the
/// derivation injective: no two (namespace, text) pairs share a name, so no document of one
/// namespace can be written over a point of another. Re-upserting the same text replaces it.
pub fn document_id(namespace: &str, text: &str) -> PointId {
    let name = format!("hx2:{}:{namespace}{text}", namespace.len());
    PointId::Uuid(Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes()))
}

/// The id earlier versions derived ("hx:" + namespace + "\n" + text; not injective when a
/// namespace holds a newline). Points stored under it stay addressable by that id, and an
/// upsert of the same document in the same namespace removes them.
pub fn legacy_document_id(namespace: &str, text: &str) -> PointId {
    let name = format!("hx:{namespace}\n{text}");
    PointId::Uuid(Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes()))
}

/// Enforces a key's namespace scope (spec, Auth). Returns the namespaces a search naming none
/// is limited to (`None`: unrestricted).
/// Checks the caller's scope, then narrows the filter to the request's namespace, or else to
/// the namespaces the caller may read (search and listing share this).
fn scoped_filter(
    scope: &RagScope,
    default_collection: &str,
    collection: &str,
    namespace: Option<&str>,
    filter: Option<Filter>,
) -> Result<Option<Value>, ApiError> {
    let allowed = check_scope(
        scope,
        default_collection,
        collection,
        namespace,
        filter.as_ref(),
    )?;
    let filter_json = filter.map(Filter::into_json);
    Ok(match (namespace, allowed) {
        (Some(ns), _) => Some(add_must(filter_json, namespace_is(ns))),
        (None, Some(allowed)) => Some(add_must(
            filter_json,
            json!({"key": "namespace", "match": {"any": allowed}}),
        )),
        (None, None) => filter_json,
    })
}

fn check_scope(
    scope: &RagScope,
    default_collection: &str,
    collection: &str,
    namespace: Option<&str>,
    filter: Option<&Filter>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(allowed) = &scope.namespaces else {
        return Ok(None);
    };
    if allowed.is_empty() {
        return Err(ApiError::new(
            ErrorKind::Permission,
            "This key is not allowed any RAG namespace.",
        ));
    }
    if collection != default_collection {
        return Err(ApiError::new(
            ErrorKind::Permission,
            format!("This key may only use the default collection '{default_collection}'."),
        )
        .with_param("collection"));
    }
    if let Some(ns) = namespace
        && !allowed.iter().any(|a| a == ns)
    {
        return Err(foreign_namespace(ns).with_param("namespace"));
    }
    if let Some(filter) = filter {
        let mut named = Vec::new();
        namespaces_named(filter.as_json(), &mut named);
        if let Some(foreign) = named.iter().find(|n| !allowed.contains(n)) {
            return Err(foreign_namespace(foreign).with_param("filter"));
        }
    }
    Ok(Some(allowed.clone()))
}

/// Collects every namespace value a filter names in a condition on the `namespace` key, at any
/// depth of must / should / must_not / min_should and nested filters.
fn namespaces_named(filter: &Value, out: &mut Vec<String>) {
    let Some(obj) = filter.as_object() else {
        return;
    };
    let mut conditions: Vec<&Value> = Vec::new();
    for clause in ["must", "should", "must_not"] {
        match obj.get(clause) {
            Some(Value::Array(items)) => conditions.extend(items),
            Some(single @ Value::Object(_)) => conditions.push(single),
            _ => {}
        }
    }
    if let Some(Value::Array(items)) = obj.get("min_should").and_then(|m| m.get("conditions")) {
        conditions.extend(items);
    }
    for condition in conditions {
        match condition.get("key").and_then(Value::as_str) {
            Some("namespace") => {
                if let Some(m) = condition.get("match") {
                    for name in ["value", "text", "phrase", "text_any"] {
                        if let Some(v) = m.get(name) {
                            out.push(value_text(v));
                        }
                    }
                    for name in ["any", "except"] {
                        if let Some(Value::Array(vs)) = m.get(name) {
                            out.extend(vs.iter().map(value_text));
                        }
                    }
                }
            }
            Some(_) => {}
            // A condition that is itself a filter.
            None => namespaces_named(condition, out),
        }
    }
}

/// Whether a filter has at least one real condition (an empty filter matches every point).
fn has_conditions(filter: &Value) -> bool {
    let Some(obj) = filter.as_object() else {
        return false;
    };
    let mut found = false;
    for clause in ["must", "should", "must_not"] {
        match obj.get(clause) {
            Some(Value::Array(items)) => found |= items.iter().any(condition_is_real),
            Some(single @ Value::Object(_)) => found |= condition_is_real(single),
            _ => {}
        }
    }
    if let Some(Value::Array(items)) = obj.get("min_should").and_then(|m| m.get("conditions")) {
        found |= items.iter().any(condition_is_real);
    }
    found
}

fn condition_is_real(condition: &Value) -> bool {
    let is_filter = condition.as_object().is_some_and(|o| {
        o.keys()
            .all(|k| matches!(k.as_str(), "must" | "should" | "must_not" | "min_should"))
    });
    if is_filter {
        has_conditions(condition)
    } else {
        true
    }
}

/// `filter` with `condition` appended to its `must` (created if absent).
fn add_must(filter: Option<Value>, condition: Value) -> Value {
    let mut obj = match filter {
        Some(Value::Object(obj)) => obj,
        _ => Map::new(),
    };
    let must = match obj.remove("must") {
        None | Some(Value::Null) => vec![condition],
        Some(Value::Array(mut items)) => {
            items.push(condition);
            items
        }
        Some(single) => vec![single, condition],
    };
    obj.insert("must".into(), Value::Array(must));
    Value::Object(obj)
}

fn namespace_is(ns: &str) -> Value {
    json!({"key": "namespace", "match": {"value": ns}})
}

/// A search hit in Qdrant's own `ScoredPoint` shape.
fn hit_json(hit: ScoredPoint, with_vector: bool) -> Value {
    // Scores are f32: print them as such (0.91, not 0.9100000262260437).
    let score = hit
        .score
        .to_string()
        .parse::<f64>()
        .map_or(Value::Null, Value::from);
    let mut obj = Map::new();
    obj.insert("id".into(), hit.id.to_json());
    obj.insert("version".into(), Value::from(hit.version));
    obj.insert("score".into(), score);
    obj.insert(
        "payload".into(),
        hit.payload.map_or(Value::Null, Value::Object),
    );
    if with_vector {
        obj.insert(
            "vector".into(),
            hit.vector.map_or(Value::Null, |v| json!(v)),
        );
    }
    Value::Object(obj)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn foreign_namespace(ns: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Permission,
        format!("This key is not allowed to use the RAG namespace '{ns}'."),
    )
}

fn namespace_required() -> ApiError {
    ApiError::invalid(
        "'namespace' is required: this key is restricted to RAG namespaces.",
        "namespace",
    )
}

fn embedding_count_error(expected: usize, got: usize) -> ApiError {
    ApiError::new(
        ErrorKind::UpstreamConnection,
        format!("The embedding model returned {got} vectors for {expected} texts."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_follow_the_spec() {
        let expected = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"hx2:4:docshello");
        assert_eq!(document_id("docs", "hello"), PointId::Uuid(expected));
        let legacy = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"hx:docs\nhello");
        assert_eq!(legacy_document_id("docs", "hello"), PointId::Uuid(legacy));
    }

    #[test]
    fn document_ids_do_not_collide_across_namespaces() {
        // Equal under the legacy derivation, distinct now.
        assert_eq!(
            legacy_document_id("a", "secret\ndata"),
            legacy_document_id("a\nsecret", "data")
        );
        assert_ne!(
            document_id("a", "secret\ndata"),
            document_id("a\nsecret", "data")
        );
        assert_ne!(document_id("ab", "c"), document_id("a", "bc"));
        assert_ne!(document_id("", "1:x"), document_id("1:x", ""));
        assert_ne!(document_id("", "hello"), document_id("docs", "hello"));
    }

    #[test]
    fn namespace_conditions_are_found_at_any_depth() {
        let filter = json!({
            "must": {"key": "namespace", "match": {"value": "a"}},
            "should": [{"must_not": [{"key": "namespace", "match": {"any": ["b", "c"]}}]}],
            "min_should": {"conditions": [{"key": "namespace", "match": {"except": ["d"]}}], "min_count": 1},
            "must_not": [{"key": "lang", "match": {"value": "e"}}]
        });
        let mut named = Vec::new();
        namespaces_named(&filter, &mut named);
        named.sort();
        assert_eq!(named, ["a", "b", "c", "d"]);
    }

    #[test]
    fn empty_filters_have_no_conditions() {
        assert!(!has_conditions(&json!({})));
        assert!(!has_conditions(&json!({"must": []})));
        assert!(!has_conditions(
            &json!({"must": [{}], "should": [{"must": []}]})
        ));
        assert!(has_conditions(&json!({"must": [{"has_id": [1]}]})));
        assert!(has_conditions(
            &json!({"must_not": {"key": "a", "match": {"value": 1}}})
        ));
    }

    #[test]
    fn must_is_extended_in_every_shape() {
        assert_eq!(add_must(None, json!(1)), json!({"must": [1]}));
        assert_eq!(
            add_must(Some(json!({"must": {"a": 1}})), json!(2)),
            json!({"must": [{"a": 1}, 2]})
        );
        assert_eq!(
            add_must(Some(json!({"should": [3], "must": [0]})), json!(2)),
            json!({"should": [3], "must": [0, 2]})
        );
    }

    #[test]
    fn scores_print_as_f32() {
        let hit = ScoredPoint {
            id: PointId::Num(1),
            version: 3,
            score: 0.91,
            payload: None,
            vector: None,
        };
        assert_eq!(
            hit_json(hit, false),
            json!({"id": 1, "version": 3, "score": 0.91, "payload": null})
        );
    }
}
