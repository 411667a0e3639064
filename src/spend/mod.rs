//! Spend: the cost of each request, added to the key's in-memory spend at once (so the next
//! budget check sees it) and written to `"LiteLLM_SpendLogs"` and the key, team and user rows
//! in batches, off the request path. A database outage delays the writes; nothing is dropped.

mod cost;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use cost::{ModelPrices, builtin_prices, cost};

use crate::keys::{KeyError, KeyStore};

/// One request's spend, as written to `"LiteLLM_SpendLogs"`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRecord {
    /// Unique per request (the primary key of the log). Left empty, a UUID is generated.
    pub request_id: String,
    /// LiteLLM's call type: "acompletion", "aembedding", ...
    pub call_type: String,
    /// The key's token hash (`KeyInfo::token`), or the master key's hash.
    pub api_key: String,
    /// Cost in USD (see [`cost`]).
    pub spend: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// The deployment's model ("gpt-4o-2024-08-06").
    pub model: String,
    /// The public model name the client asked for.
    pub model_group: String,
    pub custom_llm_provider: String,
    pub api_base: String,
    /// The key's `user_id` (LiteLLM's `"user"` column); its user row's spend is increased.
    pub user_id: Option<String>,
    /// The key's `team_id`; its team row's spend is increased.
    pub team_id: Option<String>,
    /// The client's `user` field (LiteLLM's `end_user`).
    pub end_user: Option<String>,
    pub metadata: Value,
    pub cache_hit: bool,
    /// "success" or "failure".
    pub status: String,
}

impl SpendRecord {
    /// A record with the required fields and empty optional ones, timed now.
    pub fn new(api_key: impl Into<String>, model_group: impl Into<String>, spend: f64) -> Self {
        let now = Utc::now();
        let model_group = model_group.into();
        SpendRecord {
            request_id: String::new(),
            call_type: "acompletion".to_string(),
            api_key: api_key.into(),
            spend,
            prompt_tokens: 0,
            completion_tokens: 0,
            start_time: now,
            end_time: now,
            model: model_group.clone(),
            model_group,
            custom_llm_provider: String::new(),
            api_base: String::new(),
            user_id: None,
            team_id: None,
            end_user: None,
            metadata: Value::Object(Default::default()),
            cache_hit: false,
            status: "success".to_string(),
        }
    }
}

/// An f64 updated without locks (bits in an `AtomicU64`).
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Acquire))
    }

    fn add(&self, amount: f64) {
        // fetch_update only fails when the closure returns None, which it never does.
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                Some((f64::from_bits(bits) + amount).to_bits())
            });
    }
}

/// Spend seen by this process for one key or team: everything recorded, and the part of it
/// already committed to the database.
///
/// A `KeyInfo` loaded from the database remembers `db_spend - flushed` at load time; its live
/// spend is that plus `recorded` now. Amounts committed before the load are in the database
/// and in `flushed`, so they count once; amounts still pending count through `recorded`.
#[derive(Debug, Default)]
pub struct SpendCell {
    recorded: AtomicF64,
    flushed: AtomicF64,
}

impl SpendCell {
    /// Everything this process recorded for the entity.
    pub fn recorded(&self) -> f64 {
        self.recorded.load()
    }

    /// The part of [`SpendCell::recorded`] committed to the database.
    pub fn flushed(&self) -> f64 {
        self.flushed.load()
    }
}

/// The cells of every key and team this process has seen.
#[derive(Debug, Default)]
pub struct SpendLedger {
    cells: Mutex<HashMap<String, Arc<SpendCell>>>,
}

impl SpendLedger {
    /// The cell of a key (by token hash).
    pub fn key_cell(&self, token: &str) -> Arc<SpendCell> {
        self.cell(token)
    }

    /// The cell of a team (team ids live in their own name space).
    pub fn team_cell(&self, team_id: &str) -> Arc<SpendCell> {
        self.cell(&format!("team:{team_id}"))
    }

    fn cell(&self, id: &str) -> Arc<SpendCell> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up by `&str` first: the id is allocated once per key, not per request.
        if let Some(cell) = cells.get(id) {
            return cell.clone();
        }
        cells.entry(id.to_string()).or_default().clone()
    }

    fn add_recorded(&self, record: &SpendRecord) {
        self.key_cell(&record.api_key).recorded.add(record.spend);
        if let Some(team) = &record.team_id {
            self.team_cell(team).recorded.add(record.spend);
        }
    }

    fn add_flushed(&self, records: &[SpendRecord]) {
        for record in records {
            self.key_cell(&record.api_key).flushed.add(record.spend);
            if let Some(team) = &record.team_id {
                self.team_cell(team).flushed.add(record.spend);
            }
        }
    }
}

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct SpendWriterOptions {
    /// Most records per database statement.
    pub batch_size: usize,
    /// How long records wait for more to join their batch.
    pub flush_interval: Duration,
    /// First retry delay after a failed write; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Records waiting to be written above which new requests wait for the writer (see
    /// [`SpendWriter::wait_for_room`]).
    pub max_pending: usize,
}

impl Default for SpendWriterOptions {
    fn default() -> Self {
        SpendWriterOptions {
            batch_size: 500,
            flush_interval: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            // A few MB of records, eight full batches: at full load the benchmark produced
            // records faster than SQLite took them, and an unbounded backlog reached 300 MB.
            max_pending: 4_000,
        }
    }
}

enum Message {
    Record(Box<SpendRecord>),
    Flush(oneshot::Sender<()>),
}

/// Records spend without blocking and writes it in batches from a background task.
#[derive(Debug, Clone)]
pub struct SpendWriter {
    sender: mpsc::UnboundedSender<Message>,
    ledger: Arc<SpendLedger>,
    backlog: Arc<Backlog>,
}

/// How many records wait for the database, and whether it is taking them.
#[derive(Debug)]
struct Backlog {
    pending: AtomicUsize,
    max_pending: usize,
    /// The last write failed: the database is down, and waiting for it would stop the
    /// gateway, so requests go on and records stay in memory until it is back.
    failing: AtomicBool,
    room: tokio::sync::Notify,
}

impl Backlog {
    fn written(&self, n: usize) {
        let before = self.pending.fetch_sub(n, Ordering::AcqRel);
        if before.saturating_sub(n) < self.max_pending {
            self.room.notify_waiters();
        }
    }

    fn full(&self) -> bool {
        self.pending.load(Ordering::Acquire) >= self.max_pending
            && !self.failing.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Record(r) => write!(f, "Record({})", r.request_id),
            Message::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl SpendWriter {
    /// Starts the background writer on the current tokio runtime.
    pub fn start(store: KeyStore, ledger: Arc<SpendLedger>, options: SpendWriterOptions) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog {
            pending: AtomicUsize::new(0),
            max_pending: options.max_pending.max(1),
            failing: AtomicBool::new(false),
            room: tokio::sync::Notify::new(),
        });
        tokio::spawn(run_writer(
            store,
            ledger.clone(),
            options,
            receiver,
            backlog.clone(),
        ));
        SpendWriter {
            sender,
            ledger,
            backlog,
        }
    }

    /// Records recorded and not yet written.
    pub fn pending(&self) -> usize {
        self.backlog.pending.load(Ordering::Acquire)
    }

    /// Waits while `max_pending` records wait for a database that is taking them, so a
    /// gateway producing records faster than the database stores them slows down instead of
    /// growing without bound. Returns at once while the database is failing (requests must
    /// go on during an outage; the records then wait in memory).
    pub async fn wait_for_room(&self) {
        // A writer that stopped takes nothing more: waiting for it would hold requests forever.
        while self.backlog.full() && !self.sender.is_closed() {
            let room = self.backlog.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if !self.backlog.full() {
                return;
            }
            // Woken when a batch is written or a write fails; the timeout re-checks in case
            // the writer stopped meanwhile.
            let _ = tokio::time::timeout(Duration::from_secs(1), room).await;
        }
    }

    /// The ledger the writer reports to (shared with the key cache).
    pub fn ledger(&self) -> &Arc<SpendLedger> {
        &self.ledger
    }

    /// Records one request's spend: counted in memory at once, written later. Never blocks
    /// and never fails the request (the channel is unbounded, so a long database outage costs
    /// memory, not records).
    pub fn record(&self, mut record: SpendRecord) {
        if record.request_id.is_empty() {
            record.request_id = uuid::Uuid::new_v4().to_string();
        }
        if !record.spend.is_finite() || record.spend < 0.0 {
            record.spend = 0.0;
        }
        self.ledger.add_recorded(&record);
        self.backlog.pending.fetch_add(1, Ordering::AcqRel);
        if self.sender.send(Message::Record(Box::new(record))).is_err() {
            self.backlog.written(1);
            tracing::error!("spend writer stopped; spend record not persisted");
        }
    }

    /// Waits until every record recorded before this call is committed. During a database
    /// outage this waits for the database; wrap it in a timeout on shutdown.
    pub async fn flush(&self) -> Result<(), KeyError> {
        let (done, wait) = oneshot::channel();
        self.sender
            .send(Message::Flush(done))
            .map_err(|_| KeyError::Unavailable("spend writer stopped".to_string()))?;
        wait.await
            .map_err(|_| KeyError::Unavailable("spend writer stopped".to_string()))
    }
}

async fn run_writer(
    store: KeyStore,
    ledger: Arc<SpendLedger>,
    options: SpendWriterOptions,
    mut receiver: mpsc::UnboundedReceiver<Message>,
    backlog: Arc<Backlog>,
) {
    let batch_size = options.batch_size.max(1);
    let mut pending: Vec<SpendRecord> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut backoff: Option<Duration> = None;
    let mut open = true;
    loop {
        if pending.is_empty() && waiters.is_empty() {
            if !open {
                return;
            }
            match receiver.recv().await {
                Some(message) => accept(message, &mut pending, &mut waiters),
                None => return,
            }
        }
        // Gather more until the batch is full, the interval passes, someone asks for a flush
        // or, after a failure, the back-off delay passes.
        let wait = backoff.unwrap_or(options.flush_interval);
        let deadline = tokio::time::Instant::now() + wait;
        while open && (backoff.is_some() || (pending.len() < batch_size && waiters.is_empty())) {
            tokio::select! {
                message = receiver.recv() => match message {
                    Some(message) => accept(message, &mut pending, &mut waiters),
                    None => open = false,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        while !pending.is_empty() {
            let n = pending.len().min(batch_size);
            match store.write_spend(&pending[..n]).await {
                Ok(_) => {
                    ledger.add_flushed(&pending[..n]);
                    pending.drain(..n);
                    backoff = None;
                    backlog.failing.store(false, Ordering::Release);
                    backlog.written(n);
                }
                Err(error) => {
                    backlog.failing.store(true, Ordering::Release);
                    // Whoever waits for room goes on: the database is not taking records.
                    backlog.room.notify_waiters();
                    let next = backoff.map_or(options.initial_backoff, |b| b * 2);
                    let next = next.min(options.max_backoff);
                    tracing::warn!(
                        %error,
                        pending = pending.len(),
                        retry_in_ms = u64::try_from(next.as_millis()).unwrap_or(u64::MAX),
                        "spend write failed; keeping records and retrying"
                    );
                    backoff = Some(next);
                    break;
                }
            }
        }
        if pending.is_empty() {
            for waiter in waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

fn accept(
    message: Message,
    pending: &mut Vec<SpendRecord>,
    waiters: &mut Vec<oneshot::Sender<()>>,
) {
    match message {
        Message::Record(record) => pending.push(*record),
        // Records sent before the flush are already in `pending` (the channel is FIFO), so
        // answering once `pending` is empty answers exactly what was asked.
        Message::Flush(done) => waiters.push(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_cells_are_shared_and_separate() {
        let ledger = SpendLedger::default();
        let mut r = SpendRecord::new("abc", "gpt-4o", 1.5);
        r.team_id = Some("abc".to_string());
        ledger.add_recorded(&r);
        ledger.add_recorded(&r);
        assert_eq!(ledger.key_cell("abc").recorded(), 3.0);
        assert_eq!(ledger.team_cell("abc").recorded(), 3.0);
        ledger.add_flushed(std::slice::from_ref(&r));
        assert_eq!(ledger.key_cell("abc").flushed(), 1.5);
        assert_eq!(ledger.key_cell("other").recorded(), 0.0);
    }
}
