//! The embedded backend: Qdrant's own engine (`qdrant-edge`) in-process, one shard per
//! collection under `<HX_DATA_DIR>/qdrant/<collection>`.
//!
//! The engine's sharp edges and how they are handled here:
//!
//! - **Blocking API.** Every engine call runs on tokio's blocking pool (reads) or on the
//!   collection's writer thread (writes), never on an async worker.
//! - **One writer.** `EdgeShard::flush` panics when another thread holds the WAL lock (or the
//!   segment holder's write lock) at that moment. So every write, every flush and every
//!   optimisation of a collection goes through one dedicated writer thread per collection,
//!   fed by a channel; reads go straight to the shard, which supports concurrent readers.
//! - **No automatic indexing.** The engine builds no HNSW index on its own. The writer thread
//!   runs `optimize` off the request path: once the collection has been idle for
//!   [`EmbeddedStoreOptions::optimize_when_idle`] after writes, or after
//!   [`EmbeddedStoreOptions::optimize_after_points`] written points under continuous load.
//!   Writes that arrive while an optimisation runs wait for it (searches do not).
//! - **No WAL replay.** `EdgeShard::load` does not replay the write-ahead log, so a write
//!   is durable only once the segments are flushed: the writer flushes after every group of
//!   writes before acknowledging them (a group is every write queued at that moment).
//! - **Directory must exist.** `EdgeShard::new` fails on a missing directory: it is created
//!   first.
//! - **One handle per directory.** Two processes on one shard would corrupt it. The store takes
//!   an exclusive OS lock on `<root>/.lock` when it first opens (lazily, on first use, so a
//!   gateway that never serves RAG does not pay for it); a second process fails with
//!   [`VectorStoreError::Unavailable`] and a message naming the directory.
//! - **Metadata.** The collection's vector size and distance live in the engine's own
//!   `edge_config.json`, so they survive restarts.
//!
//! # Disk growth
//!
//! The engine's write-ahead log (`<collection>/wal`, in 32 MiB segment files) is never
//! truncated by `qdrant-edge` 0.7: every upsert and delete ever applied stays in it, so the
//! collection's directory grows with the total volume of writes, not with the number of points
//! kept. Re-ingesting the same documents over and over grows it too. Watch the size of
//! `HX_DATA_DIR/qdrant`; to reclaim the space, re-ingest into a fresh collection (or data
//! directory) and remove the old one while the gateway is stopped, or use a Qdrant server
//! (`QDRANT_URL`), which truncates its WAL itself.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    CountRequest, CreateIndex, DEFAULT_VECTOR_NAME, Distance, EdgeConfig, EdgeShard,
    EdgeVectorParams, FieldIndexOperations, NamedQuery, Payload, PayloadFieldSchema,
    PayloadSchemaType, PointInsertOperations, PointOperations, PointStructPersisted, QueryEnum,
    QueryRequest, ScoringQuery, UpdateOperation, VectorInternal, VectorStructInternal,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use tokio::sync::{Mutex, OnceCell, oneshot};

use super::{
    CollectionInfo, DeleteSelector, Point, PointId, ScoredPoint, ScrollPage, ScrollQuery,
    SearchQuery, StoredRecord, VectorStoreError, check_dimensions, valid_collection_name,
};

/// The engine's config file, whose presence marks a directory as a collection.
const EDGE_CONFIG_FILE: &str = "edge_config.json";
/// The lock file that keeps a second process out of the data directory.
const LOCK_FILE: &str = ".lock";

/// When the writer thread optimises (builds indexes, merges segments).
#[derive(Debug, Clone)]
pub struct EmbeddedStoreOptions {
    /// Optimise once the collection has seen no write for this long after some writes.
    pub optimize_when_idle: Duration,
    /// Optimise after this many written points even if writes keep coming.
    pub optimize_after_points: usize,
}

impl Default for EmbeddedStoreOptions {
    fn default() -> Self {
        EmbeddedStoreOptions {
            optimize_when_idle: Duration::from_secs(5),
            optimize_after_points: 50_000,
        }
    }
}

/// Qdrant's engine in-process. Cheap to construct: nothing touches the disk until first use.
pub struct EmbeddedStore {
    root: PathBuf,
    options: EmbeddedStoreOptions,
    opened: OnceCell<Opened>,
    closed: AtomicBool,
}

/// The store once its directory is locked.
struct Opened {
    // Field order matters: collections (and their writer threads, which flush on the way out)
    // are dropped before the lock is released.
    collections: Mutex<HashMap<String, Arc<Collection>>>,
    _lock: File,
}

/// One open collection: the shard for reads, the channel to its writer thread for writes.
struct Collection {
    name: String,
    shard: Arc<EdgeShard>,
    vector_size: usize,
    writer: parking_lot::Mutex<Option<mpsc::Sender<WriterCommand>>>,
    thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

enum WriterCommand {
    Update {
        operation: Box<UpdateOperation>,
        points: usize,
        reply: oneshot::Sender<Result<(), VectorStoreError>>,
    },
    Optimize {
        reply: oneshot::Sender<Result<(), VectorStoreError>>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
}

impl EmbeddedStore {
    /// A store rooted at `root` (normally `HX_DATA_DIR/qdrant`). Does no I/O.
    pub fn new(root: impl Into<PathBuf>, options: EmbeddedStoreOptions) -> Self {
        EmbeddedStore {
            root: root.into(),
            options,
            opened: OnceCell::new(),
            closed: AtomicBool::new(false),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory and takes the exclusive lock, once.
    async fn opened(&self) -> Result<&Opened, VectorStoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(VectorStoreError::Unavailable(
                "the embedded vector store is shut down".to_string(),
            ));
        }
        self.opened
            .get_or_try_init(|| {
                let root = self.root.clone();
                async move {
                    let lock = blocking(move || lock_directory(&root)).await??;
                    Ok(Opened {
                        collections: Mutex::new(HashMap::new()),
                        _lock: lock,
                    })
                }
            })
            .await
    }

    /// The open collection, loading it from disk on first use; `None` if it does not exist.
    async fn collection(&self, name: &str) -> Result<Option<Arc<Collection>>, VectorStoreError> {
        if !valid_collection_name(name) {
            return Ok(None);
        }
        let opened = self.opened().await?;
        let mut collections = opened.collections.lock().await;
        if let Some(c) = collections.get(name) {
            return Ok(Some(c.clone()));
        }
        let path = self.root.join(name);
        let name_owned = name.to_string();
        let options = self.options.clone();
        let loaded = blocking(move || -> Result<Option<Collection>, VectorStoreError> {
            if !path.join(EDGE_CONFIG_FILE).is_file() {
                return Ok(None);
            }
            let shard = EdgeShard::load(&path, None).map_err(|e| {
                VectorStoreError::Unavailable(format!(
                    "cannot open collection '{name_owned}' at {}: {e}",
                    path.display()
                ))
            })?;
            Collection::start(name_owned, shard, options).map(Some)
        })
        .await??;
        Ok(loaded.map(|c| {
            let c = Arc::new(c);
            collections.insert(name.to_string(), c.clone());
            c
        }))
    }

    async fn existing(&self, name: &str) -> Result<Arc<Collection>, VectorStoreError> {
        self.collection(name)
            .await?
            .ok_or_else(|| VectorStoreError::CollectionNotFound(name.to_string()))
    }

    pub async fn collection_info(
        &self,
        name: &str,
    ) -> Result<Option<CollectionInfo>, VectorStoreError> {
        let Some(c) = self.collection(name).await? else {
            return Ok(None);
        };
        let shard = c.shard.clone();
        let points = blocking(move || {
            shard.count(CountRequest {
                filter: None,
                exact: true,
            })
        })
        .await?
        .map_err(engine_error)?;
        Ok(Some(CollectionInfo {
            vector_size: c.vector_size,
            points_count: points as u64,
        }))
    }

    pub async fn create_collection(
        &self,
        name: &str,
        vector_size: usize,
    ) -> Result<(), VectorStoreError> {
        if !valid_collection_name(name) {
            return Err(VectorStoreError::BadRequest(format!(
                "invalid collection name '{name}'"
            )));
        }
        if vector_size == 0 {
            return Err(VectorStoreError::BadRequest(
                "vector size must be at least 1".to_string(),
            ));
        }
        if self.collection(name).await?.is_some() {
            return Ok(());
        }
        let opened = self.opened().await?;
        let mut collections = opened.collections.lock().await;
        if collections.contains_key(name) {
            return Ok(());
        }
        let path = self.root.join(name);
        let name_owned = name.to_string();
        let options = self.options.clone();
        let created = blocking(move || -> Result<Collection, VectorStoreError> {
            std::fs::create_dir_all(&path).map_err(|e| {
                VectorStoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
            })?;
            let config = EdgeConfig::builder()
                .vector(
                    DEFAULT_VECTOR_NAME,
                    EdgeVectorParams::builder(vector_size, Distance::Cosine).build(),
                )
                .build();
            let shard = EdgeShard::new(&path, config).map_err(engine_error)?;
            // The writer thread does not exist yet: this thread is the only writer.
            shard
                .update(UpdateOperation::FieldIndexOperation(
                    FieldIndexOperations::CreateIndex(CreateIndex {
                        field_name: "namespace".try_into().map_err(|_| {
                            VectorStoreError::Internal("bad payload index path".to_string())
                        })?,
                        field_schema: Some(PayloadFieldSchema::FieldType(
                            PayloadSchemaType::Keyword,
                        )),
                    }),
                ))
                .map_err(engine_error)?;
            shard.flush();
            Collection::start(name_owned, shard, options)
        })
        .await??;
        collections.insert(name.to_string(), Arc::new(created));
        Ok(())
    }

    pub async fn upsert(&self, name: &str, points: Vec<Point>) -> Result<(), VectorStoreError> {
        let c = self.existing(name).await?;
        check_dimensions(c.vector_size, points.iter().map(|p| p.vector.as_slice()))?;
        if points.is_empty() {
            return Ok(());
        }
        let count = points.len();
        let points = points
            .into_iter()
            .map(|p| PointStructPersisted {
                id: engine_id(p.id),
                vector: VectorStructPersisted::Single(p.vector),
                payload: Some(Payload(p.payload)),
            })
            .collect();
        let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        ));
        c.write(operation, count).await
    }

    pub async fn search(
        &self,
        name: &str,
        query: SearchQuery,
    ) -> Result<Vec<ScoredPoint>, VectorStoreError> {
        let c = self.existing(name).await?;
        check_dimensions(c.vector_size, [query.vector.as_slice()])?;
        let filter = query
            .filter
            .map(|f| engine_filter(f.as_json()))
            .transpose()?;
        let with_payload: WithPayloadInterface =
            serde_json::from_value(query.with_payload.to_json())
                .map_err(|e| VectorStoreError::BadRequest(format!("with_payload: {e}")))?;
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(
                NamedQuery::default_dense(query.vector),
            ))),
            filter,
            score_threshold: query.score_threshold.map(OrderedFloat),
            limit: query.limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(query.with_vector),
            with_payload,
        };
        let shard = c.shard.clone();
        let found = blocking(move || shard.query(request))
            .await?
            .map_err(engine_error)?;
        Ok(found
            .into_iter()
            .map(|p| ScoredPoint {
                id: store_id(p.id),
                version: p.version,
                score: p.score,
                payload: p.payload.map(|p| p.0),
                vector: p.vector.and_then(dense_vector),
            })
            .collect())
    }

    pub async fn delete(
        &self,
        name: &str,
        selector: DeleteSelector,
    ) -> Result<(), VectorStoreError> {
        let c = self.existing(name).await?;
        let operation = match selector {
            DeleteSelector::Ids(ids) => PointOperations::DeletePoints {
                ids: ids.into_iter().map(engine_id).collect(),
            },
            DeleteSelector::Filter(f) => {
                PointOperations::DeletePointsByFilter(engine_filter(f.as_json())?)
            }
        };
        c.write(UpdateOperation::PointOperation(operation), 0).await
    }

    pub async fn scroll(
        &self,
        name: &str,
        query: ScrollQuery,
    ) -> Result<ScrollPage, VectorStoreError> {
        let c = self.existing(name).await?;
        let filter = query
            .filter
            .map(|f| engine_filter(f.as_json()))
            .transpose()?;
        let with_payload: WithPayloadInterface =
            serde_json::from_value(query.with_payload.to_json())
                .map_err(|e| VectorStoreError::BadRequest(format!("with_payload: {e}")))?;
        let request = qdrant_edge::ScrollRequest {
            offset: query.offset.map(engine_id),
            limit: Some(query.limit.max(1)),
            filter,
            with_payload: Some(with_payload),
            with_vector: WithVector::Bool(false),
            order_by: None,
        };
        let shard = c.shard.clone();
        let (records, next) = blocking(move || shard.scroll(request))
            .await?
            .map_err(engine_error)?;
        Ok(ScrollPage {
            points: records
                .into_iter()
                .map(|r| StoredRecord {
                    id: store_id(r.id),
                    payload: r.payload.map(|p| p.0),
                })
                .collect(),
            next_offset: next.map(store_id),
        })
    }

    pub async fn count(
        &self,
        name: &str,
        filter: Option<super::Filter>,
    ) -> Result<u64, VectorStoreError> {
        let c = self.existing(name).await?;
        let filter = filter.map(|f| engine_filter(f.as_json())).transpose()?;
        let shard = c.shard.clone();
        let n = blocking(move || {
            shard.count(CountRequest {
                filter,
                exact: true,
            })
        })
        .await?
        .map_err(engine_error)?;
        Ok(n as u64)
    }

    /// Runs the optimisers of a collection now (through its writer) and waits for them: for
    /// benchmarks and for operators who want the index built before traffic arrives.
    pub async fn optimize(&self, name: &str) -> Result<(), VectorStoreError> {
        let c = self.existing(name).await?;
        let (reply, done) = oneshot::channel();
        c.send(WriterCommand::Optimize { reply })?;
        done.await.map_err(|_| writer_gone(&c.name))?
    }

    pub async fn health(&self) -> Result<(), VectorStoreError> {
        self.opened().await.map(|_| ())
    }

    /// The collections on disk: directories under the root holding a shard's config file.
    pub async fn collection_count(&self) -> Result<usize, VectorStoreError> {
        self.opened().await?;
        let root = self.root.clone();
        blocking(move || -> Result<usize, VectorStoreError> {
            let entries = std::fs::read_dir(&root).map_err(|e| {
                VectorStoreError::Unavailable(format!("cannot list {}: {e}", root.display()))
            })?;
            Ok(entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join(EDGE_CONFIG_FILE).is_file())
                .count())
        })
        .await?
    }

    /// Flushes every open collection and stops its writer thread. Later calls fail with
    /// `Unavailable`; the directory lock is released when the store is dropped.
    pub async fn close(&self) -> Result<(), VectorStoreError> {
        self.closed.store(true, Ordering::Release);
        let Some(opened) = self.opened.get() else {
            return Ok(());
        };
        let collections: Vec<Arc<Collection>> = {
            let mut map = opened.collections.lock().await;
            map.drain().map(|(_, c)| c).collect()
        };
        for c in collections {
            let (reply, done) = oneshot::channel();
            if c.send(WriterCommand::Flush { reply }).is_ok() {
                let _ = done.await;
            }
            blocking(move || c.stop()).await?;
        }
        Ok(())
    }
}

impl Collection {
    /// Wraps an open shard and starts its writer thread.
    fn start(
        name: String,
        shard: EdgeShard,
        options: EmbeddedStoreOptions,
    ) -> Result<Collection, VectorStoreError> {
        let vector_size = shard
            .config()
            .vectors
            .get(DEFAULT_VECTOR_NAME)
            .map(|v| v.size)
            .ok_or_else(|| {
                VectorStoreError::Internal(format!(
                    "collection '{name}' has no default dense vector"
                ))
            })?;
        let shard = Arc::new(shard);
        let (tx, rx) = mpsc::channel();
        let writer_shard = shard.clone();
        let thread = std::thread::Builder::new()
            .name(format!("qdrant-writer-{name}"))
            .spawn(move || writer_loop(&writer_shard, &rx, &options))
            .map_err(|e| VectorStoreError::Internal(format!("cannot start writer thread: {e}")))?;
        Ok(Collection {
            name,
            shard,
            vector_size,
            writer: parking_lot::Mutex::new(Some(tx)),
            thread: parking_lot::Mutex::new(Some(thread)),
        })
    }

    fn send(&self, command: WriterCommand) -> Result<(), VectorStoreError> {
        let guard = self.writer.lock();
        let sender = guard.as_ref().ok_or_else(|| writer_gone(&self.name))?;
        sender.send(command).map_err(|_| writer_gone(&self.name))
    }

    async fn write(
        &self,
        operation: UpdateOperation,
        points: usize,
    ) -> Result<(), VectorStoreError> {
        let (reply, done) = oneshot::channel();
        self.send(WriterCommand::Update {
            operation: Box::new(operation),
            points,
            reply,
        })?;
        done.await.map_err(|_| writer_gone(&self.name))?
    }

    /// Closes the channel and waits for the writer thread, which flushes on its way out.
    fn stop(&self) {
        self.writer.lock().take();
        let handle = self.thread.lock().take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!(collection = %self.name, "qdrant writer thread panicked");
        }
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        // Join the writer so the shard is flushed and released before the directory lock is:
        // a store reopened right after sees every write.
        self.stop();
    }
}

/// The only place that writes to, flushes or optimises a shard.
fn writer_loop(
    shard: &EdgeShard,
    commands: &mpsc::Receiver<WriterCommand>,
    options: &EmbeddedStoreOptions,
) {
    let mut points_since_optimize = 0usize;
    let mut written_since_optimize = false;
    // A command taken off the channel while collecting a group of writes, handled next.
    let mut carried: Option<WriterCommand> = None;
    loop {
        let next = if let Some(command) = carried.take() {
            Ok(command)
        } else if written_since_optimize {
            commands.recv_timeout(options.optimize_when_idle)
        } else {
            commands
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        match next {
            Ok(WriterCommand::Update {
                operation,
                points,
                reply,
            }) => {
                // Group commit: apply this write and every write already queued behind it,
                // flush once, then acknowledge them all. The flush is what makes a write
                // durable: `EdgeShard::load` (0.7) does not replay the WAL, so a write
                // acknowledged before a flush would be lost if the process died (kill -9,
                // OOM, abort) before the next one.
                let mut group = vec![(operation, points, reply)];
                loop {
                    match commands.try_recv() {
                        Ok(WriterCommand::Update {
                            operation,
                            points,
                            reply,
                        }) => group.push((operation, points, reply)),
                        Ok(other) => {
                            carried = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let mut replies = Vec::with_capacity(group.len());
                for (operation, points, reply) in group {
                    let result = shard.update(*operation).map_err(engine_error);
                    if result.is_ok() {
                        written_since_optimize = true;
                        points_since_optimize += points;
                    }
                    replies.push((reply, result));
                }
                shard.flush();
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
                if points_since_optimize >= options.optimize_after_points {
                    optimize(shard);
                    points_since_optimize = 0;
                    written_since_optimize = false;
                }
            }
            Ok(WriterCommand::Optimize { reply }) => {
                let result = shard.optimize().map(|_| ()).map_err(engine_error);
                shard.flush();
                points_since_optimize = 0;
                written_since_optimize = false;
                let _ = reply.send(result);
            }
            Ok(WriterCommand::Flush { reply }) => {
                shard.flush();
                let _ = reply.send(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if written_since_optimize {
                    optimize(shard);
                    points_since_optimize = 0;
                    written_since_optimize = false;
                } else {
                    shard.flush();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                shard.flush();
                return;
            }
        }
    }
}

/// Background optimisation: errors are logged, the data stays searchable unindexed.
fn optimize(shard: &EdgeShard) {
    if let Err(e) = shard.optimize() {
        tracing::warn!(error = %e, "embedded qdrant optimisation failed");
    }
    shard.flush();
}

/// Creates the root directory and takes the exclusive lock on it.
fn lock_directory(root: &Path) -> Result<File, VectorStoreError> {
    std::fs::create_dir_all(root).map_err(|e| {
        VectorStoreError::Unavailable(format!(
            "cannot create the embedded vector store directory {}: {e}",
            root.display()
        ))
    })?;
    let lock_path = root.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            VectorStoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(VectorStoreError::Unavailable(format!(
            "the embedded vector store in {} is already in use by another process (lock {}); \
             stop it, give this process another HX_DATA_DIR, or set QDRANT_URL to share a Qdrant server",
            root.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(VectorStoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

/// Runs engine work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, VectorStoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| VectorStoreError::Internal(format!("embedded store task failed: {e}")))
}

fn writer_gone(collection: &str) -> VectorStoreError {
    VectorStoreError::Unavailable(format!(
        "the writer of collection '{collection}' has stopped (store shut down)"
    ))
}

fn engine_error(e: qdrant_edge::OperationError) -> VectorStoreError {
    match e {
        qdrant_edge::OperationError::WrongVectorDimension {
            expected_dim,
            received_dim,
        } => VectorStoreError::WrongDimension {
            expected: expected_dim,
            got: received_dim,
        },
        qdrant_edge::OperationError::ValidationError { description } => {
            VectorStoreError::BadRequest(description)
        }
        qdrant_edge::OperationError::TypeError { .. } => {
            VectorStoreError::BadRequest(e.to_string())
        }
        other => VectorStoreError::Internal(other.to_string()),
    }
}

fn engine_filter(json: &serde_json::Value) -> Result<qdrant_edge::Filter, VectorStoreError> {
    serde_json::from_value(json.clone()).map_err(|e| VectorStoreError::BadFilter(e.to_string()))
}

fn engine_id(id: PointId) -> qdrant_edge::PointId {
    match id {
        PointId::Num(n) => qdrant_edge::PointId::NumId(n),
        PointId::Uuid(u) => qdrant_edge::PointId::Uuid(u),
    }
}

fn store_id(id: qdrant_edge::PointId) -> PointId {
    match id {
        qdrant_edge::PointId::NumId(n) => PointId::Num(n),
        qdrant_edge::PointId::Uuid(u) => PointId::Uuid(u),
    }
}

fn dense_vector(v: VectorStructInternal) -> Option<Vec<f32>> {
    match v {
        VectorStructInternal::Single(v) => Some(v),
        VectorStructInternal::Named(mut named) => match named.remove(DEFAULT_VECTOR_NAME) {
            Some(VectorInternal::Dense(v)) => Some(v),
            _ => None,
        },
        VectorStructInternal::MultiDense(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rag::store::{Filter, WithPayload};
    use serde_json::json;

    fn point(id: u64, vector: Vec<f32>, payload: serde_json::Value) -> Point {
        Point {
            id: PointId::Num(id),
            vector,
            payload: payload.as_object().cloned().unwrap_or_default(),
        }
    }

    fn query(vector: Vec<f32>) -> SearchQuery {
        SearchQuery {
            vector,
            filter: None,
            score_threshold: None,
            limit: 10,
            with_payload: WithPayload::All(true),
            with_vector: false,
        }
    }

    #[tokio::test]
    async fn survives_reopen_with_its_metadata() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::new(dir.path(), EmbeddedStoreOptions::default());
            assert_eq!(store.collection_info("c").await.unwrap(), None);
            store.create_collection("c", 3).await.unwrap();
            store
                .upsert(
                    "c",
                    vec![
                        point(1, vec![1.0, 0.0, 0.0], json!({"text": "a"})),
                        point(2, vec![0.0, 1.0, 0.0], json!({"text": "b"})),
                    ],
                )
                .await
                .unwrap();
            store.close().await.unwrap();
        }
        let store = EmbeddedStore::new(dir.path(), EmbeddedStoreOptions::default());
        let info = store.collection_info("c").await.unwrap().unwrap();
        assert_eq!(info.vector_size, 3);
        assert_eq!(info.points_count, 2);
        let hits = store.search("c", query(vec![0.0, 1.0, 0.1])).await.unwrap();
        assert_eq!(hits[0].id, PointId::Num(2));
        assert_eq!(hits[0].payload.as_ref().unwrap()["text"], "b");
    }

    #[tokio::test]
    async fn a_second_handle_on_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = EmbeddedStore::new(dir.path(), EmbeddedStoreOptions::default());
        first.health().await.unwrap();
        let second = EmbeddedStore::new(dir.path(), EmbeddedStoreOptions::default());
        let err = second.health().await.unwrap_err();
        assert!(
            matches!(err, VectorStoreError::Unavailable(ref m) if m.contains("already in use")),
            "{err}"
        );
        drop(first);
        second.health().await.unwrap();
    }

    #[tokio::test]
    async fn optimize_under_writes_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::new(
            dir.path(),
            EmbeddedStoreOptions {
                optimize_when_idle: Duration::from_millis(20),
                optimize_after_points: 50,
            },
        ));
        store.create_collection("c", 4).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..30u64 {
                    let id = t * 1000 + i;
                    let v = vec![1.0 + i as f32, t as f32, 0.5, 1.0];
                    store
                        .upsert("c", vec![point(id, v.clone(), json!({"t": t}))])
                        .await
                        .unwrap();
                    store.search("c", query(v)).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        store.optimize("c").await.unwrap();
        let info = store.collection_info("c").await.unwrap().unwrap();
        assert_eq!(info.points_count, 120);
        let filter = Filter::parse(json!({"must": [{"key": "t", "match": {"value": 2}}]})).unwrap();
        let hits = store
            .search(
                "c",
                SearchQuery {
                    filter: Some(filter),
                    limit: 100,
                    ..query(vec![1.0, 2.0, 0.5, 1.0])
                },
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), 30);
        assert!(hits.iter().all(|h| h.payload.as_ref().unwrap()["t"] == 2));
    }

    #[tokio::test]
    async fn wrong_dimension_and_missing_collection() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::new(dir.path(), EmbeddedStoreOptions::default());
        assert!(matches!(
            store.search("nope", query(vec![1.0])).await,
            Err(VectorStoreError::CollectionNotFound(_))
        ));
        store.create_collection("c", 5).await.unwrap();
        assert_eq!(
            store.search("c", query(vec![1.0, 2.0])).await.unwrap_err(),
            VectorStoreError::WrongDimension {
                expected: 5,
                got: 2
            }
        );
        assert_eq!(
            store
                .upsert("c", vec![point(1, vec![1.0; 6], json!({}))])
                .await
                .unwrap_err(),
            VectorStoreError::WrongDimension {
                expected: 5,
                got: 6
            }
        );
    }
}
