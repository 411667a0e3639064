//! Spend: the cost of each request, added to the key's in-memory spend at once (so the next
//! budget check sees it) and written to `"LiteLLM_SpendLogs"` and the key, team and user rows
//! in batches, off the request path. A database outage delays the writes; nothing is dropped.

mod reserve;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

pub use reserve::{BudgetClaim, BudgetDenied, BudgetHold, BudgetReservations};

pub use crate::db::SpendRecord;
use crate::db::{DbError, KeyStore};

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
    /// Looked up for every request: foldhash rather than SipHash (the ids are key hashes and
    /// team ids an administrator created, not client text).
    cells: Mutex<foldhash::HashMap<String, Arc<SpendCell>>>,
    /// Whether any key has per-model cells (a `model_max_budget`): until one does, recording
    /// a request costs no per-model lookup.
    model_cells: std::sync::atomic::AtomicBool,
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

    /// The cell of a user (by `user_id`).
    pub fn user_cell(&self, user_id: &str) -> Arc<SpendCell> {
        self.cell(&format!("user:{user_id}"))
    }

    /// The cell of a user's membership in a team (`"LiteLLM_TeamMembership"`).
    pub fn member_cell(&self, team_id: &str, user_id: &str) -> Arc<SpendCell> {
        self.cell(&format!("member:{team_id}\u{0}{user_id}"))
    }

    /// The cell of a key's spend on one model group (for its `model_max_budget`).
    pub fn key_model_cell(&self, token: &str, model_group: &str) -> Arc<SpendCell> {
        self.model_cells
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.cell(&format!("model:{token}\u{0}{model_group}"))
    }

    /// The cell of an end user (the request's `user` field; `"LiteLLM_EndUserTable"`).
    pub fn end_user_cell(&self, end_user: &str) -> Arc<SpendCell> {
        self.cell(&format!("end_user:{end_user}"))
    }

    /// A cell only if some key already asked for it: per-model cells exist only for keys
    /// with a `model_max_budget`, so other requests do not grow the map.
    fn existing_model_cell(&self, record: &SpendRecord) -> Option<Arc<SpendCell>> {
        if !self.model_cells.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let id = format!("model:{}\u{0}{}", record.api_key, record.model_group);
        self.cells.lock().get(&id).cloned()
    }

    fn cell(&self, id: &str) -> Arc<SpendCell> {
        let mut cells = self.cells.lock();
        // Looked up by `&str` first: the id is allocated once per key, not per request.
        if let Some(cell) = cells.get(id) {
            return cell.clone();
        }
        cells.entry(id.to_string()).or_default().clone()
    }

    fn add_recorded(&self, record: &SpendRecord) {
        self.key_cell(&record.api_key).recorded.add(record.spend);
        if let Some(cell) = self.existing_model_cell(record) {
            cell.recorded.add(record.spend);
        }
        if let Some(team) = &record.team_id {
            self.team_cell(team).recorded.add(record.spend);
        }
        if let Some(user) = &record.user_id {
            self.user_cell(user).recorded.add(record.spend);
            if let Some(team) = &record.team_id {
                self.member_cell(team, user).recorded.add(record.spend);
            }
        }
        if let Some(end_user) = &record.end_user {
            self.end_user_cell(end_user).recorded.add(record.spend);
        }
    }

    fn add_flushed(&self, records: &[SpendRecord]) {
        for record in records {
            self.key_cell(&record.api_key).flushed.add(record.spend);
            if let Some(cell) = self.existing_model_cell(record) {
                cell.flushed.add(record.spend);
            }
            if let Some(team) = &record.team_id {
                self.team_cell(team).flushed.add(record.spend);
            }
            if let Some(user) = &record.user_id {
                self.user_cell(user).flushed.add(record.spend);
                if let Some(team) = &record.team_id {
                    self.member_cell(team, user).flushed.add(record.spend);
                }
            }
            if let Some(end_user) = &record.end_user {
                self.end_user_cell(end_user).flushed.add(record.spend);
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

/// Records spend without blocking and writes it in batches from a background task.
///
/// Records are handed over through a locked queue rather than a channel: a channel wakes the
/// writer for every record (a cross-thread wake-up per request, which the profile showed
/// costing more than the database write itself). The writer is woken only when the queue
/// starts filling (to start its interval), when a batch is full, and on a flush or shutdown.
#[derive(Debug, Clone)]
pub struct SpendWriter {
    shared: Arc<Shared>,
    ledger: Arc<SpendLedger>,
    /// Dropped with the last clone: tells the writer to finish what it has and stop.
    _open: Arc<OpenWhileHeld>,
}

/// The queue between requests and the writer, and how many records wait for the database.
#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer (see [`SpendWriter`]).
    wake: tokio::sync::Notify,
    /// Recorded and not yet written (queued or in the writer's hands).
    pending: AtomicUsize,
    max_pending: usize,
    batch_size: usize,
    /// The last write failed: the database is down, and waiting for it would stop the
    /// gateway, so requests go on and records stay in memory until it is back.
    failing: AtomicBool,
    /// The writer task has ended (its runtime stopped): nothing will make room any more.
    stopped: AtomicBool,
    room: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Queue {
    records: Vec<SpendRecord>,
    flushes: Vec<oneshot::Sender<()>>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Queue> {
        self.queue.lock()
    }

    fn written(&self, n: usize) {
        let before = self.pending.fetch_sub(n, Ordering::AcqRel);
        if before.saturating_sub(n) < self.max_pending {
            self.room.notify_waiters();
        }
    }

    fn full(&self) -> bool {
        self.pending.load(Ordering::Acquire) >= self.max_pending
            && !self.failing.load(Ordering::Acquire)
            && !self.stopped.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct OpenWhileHeld(Arc<Shared>);

impl Drop for OpenWhileHeld {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

/// Marks the writer stopped however its task ends (finished, or dropped with its runtime).
struct StoppedOnDrop(Arc<Shared>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Release);
        self.0.room.notify_waiters();
        // Flushes still waiting learn that nothing more will be written.
        self.0.lock().flushes.clear();
    }
}

impl SpendWriter {
    /// Starts the background writer on the current tokio runtime.
    pub fn start(store: KeyStore, ledger: Arc<SpendLedger>, options: SpendWriterOptions) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: tokio::sync::Notify::new(),
            pending: AtomicUsize::new(0),
            max_pending: options.max_pending.max(1),
            batch_size: options.batch_size.max(1),
            failing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            room: tokio::sync::Notify::new(),
        });
        tokio::spawn(run_writer(store, ledger.clone(), options, shared.clone()));
        SpendWriter {
            _open: Arc::new(OpenWhileHeld(shared.clone())),
            shared,
            ledger,
        }
    }

    /// Records recorded and not yet written.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Waits while `max_pending` records wait for a database that is taking them, so a
    /// gateway producing records faster than the database stores them slows down instead of
    /// growing without bound. Returns at once while the database is failing (requests must
    /// go on during an outage; the records then wait in memory).
    pub async fn wait_for_room(&self) {
        while self.shared.full() {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if !self.shared.full() {
                return;
            }
            // Woken when a batch is written, a write fails or the writer stops; the timeout
            // re-checks in case a wake-up was missed.
            let _ = tokio::time::timeout(Duration::from_secs(1), room).await;
        }
    }

    /// The ledger the writer reports to (shared with the key cache).
    pub fn ledger(&self) -> &Arc<SpendLedger> {
        &self.ledger
    }

    /// Records one request's spend: counted in memory at once, written later. Never blocks
    /// and never fails the request (the queue is unbounded, so a long database outage costs
    /// memory, not records).
    pub fn record(&self, mut record: SpendRecord) {
        if record.request_id.is_empty() {
            // Time-ordered (v7): each batch appends to the end of the primary-key index instead
            // of touching a random page per row, which made every commit rewrite hundreds of
            // index pages (SQLite's WAL and Postgres' alike).
            record.request_id = uuid::Uuid::now_v7().to_string();
        }
        if !record.spend.is_finite() || record.spend < 0.0 {
            record.spend = 0.0;
        }
        if self.shared.stopped.load(Ordering::Acquire) {
            tracing::error!("spend writer stopped; spend record not persisted");
            return;
        }
        self.ledger.add_recorded(&record);
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        let queued = {
            let mut queue = self.shared.lock();
            queue.records.push(record);
            queue.records.len()
        };
        // The first record starts the writer's interval; a full batch is written at once.
        if queued == 1 || queued == self.shared.batch_size {
            self.shared.wake.notify_one();
        }
    }

    /// Waits until every record recorded before this call is committed. During a database
    /// outage this waits for the database; wrap it in a timeout on shutdown.
    pub async fn flush(&self) -> Result<(), DbError> {
        let stopped = || DbError::Unavailable("spend writer stopped".to_string());
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(stopped());
        }
        let (done, wait) = oneshot::channel();
        self.shared.lock().flushes.push(done);
        self.shared.wake.notify_one();
        wait.await.map_err(|_| stopped())
    }
}

/// A flush waiting for the records queued before it: answered once `target` records have
/// been written in all.
struct FlushWaiter {
    target: u64,
    done: oneshot::Sender<()>,
}

async fn run_writer(
    store: KeyStore,
    ledger: Arc<SpendLedger>,
    options: SpendWriterOptions,
    shared: Arc<Shared>,
) {
    let _stopped = StoppedOnDrop(shared.clone());
    let batch_size = shared.batch_size;
    let mut pending: Vec<SpendRecord> = Vec::new();
    let mut waiters: Vec<FlushWaiter> = Vec::new();
    let mut written_total: u64 = 0;
    let mut backoff: Option<Duration> = None;
    loop {
        // Sleep until there is something to do.
        loop {
            let (queued, asked, closed) = {
                let queue = shared.lock();
                (queue.records.len(), !queue.flushes.is_empty(), queue.closed)
            };
            if queued > 0 || asked || !pending.is_empty() || !waiters.is_empty() {
                break;
            }
            if closed {
                return;
            }
            shared.wake.notified().await;
        }
        // Gather more until the batch is full, the interval passes, someone asks for a flush
        // or, after a failure, the back-off delay passes.
        let deadline = tokio::time::Instant::now() + backoff.unwrap_or(options.flush_interval);
        loop {
            let ready = {
                let queue = shared.lock();
                // After a failure only the back-off delay ends the wait, even at shutdown,
                // so a database that is down is not retried in a tight loop.
                backoff.is_none()
                    && (queue.closed
                        || pending.len() + queue.records.len() >= batch_size
                        || !queue.flushes.is_empty())
            };
            if ready {
                break;
            }
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        {
            let mut queue = shared.lock();
            pending.append(&mut queue.records);
            let target = written_total + pending.len() as u64;
            waiters.extend(
                queue
                    .flushes
                    .drain(..)
                    .map(|done| FlushWaiter { target, done }),
            );
        }
        while !pending.is_empty() {
            let n = pending.len().min(batch_size);
            match store.write_spend(&pending[..n]).await {
                Ok(_) => {
                    ledger.add_flushed(&pending[..n]);
                    pending.drain(..n);
                    written_total += n as u64;
                    backoff = None;
                    shared.failing.store(false, Ordering::Release);
                    shared.written(n);
                }
                Err(error) => {
                    shared.failing.store(true, Ordering::Release);
                    // Whoever waits for room goes on: the database is not taking records.
                    shared.room.notify_waiters();
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
        let (answered, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut waiters)
            .into_iter()
            .partition(|w| w.target <= written_total);
        waiters = waiting;
        for waiter in answered {
            let _ = waiter.done.send(());
        }
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
