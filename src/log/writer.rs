//! Where log lines go: stderr, written in batches by a background thread.
//!
//! At full load the access log is one line per request. Writing each line with its own
//! `write(2)` (tracing's default), or handing each to a writer thread that is woken per line
//! (`tracing-appender`'s non-blocking writer), cost ~10% of the gateway's CPU in the benchmark:
//! a syscall or a futex wake-up per request. Here a line is appended to a shared buffer under a
//! short lock, and a thread writes the buffer out every few milliseconds, so the cost per line
//! is a copy. Nothing is dropped: when the buffer is full (stderr slower than the logging),
//! the thread that logs writes the buffer out itself. No crate does this batching by time,
//! which is why it is written here.

use std::io::{self, Write};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Above this many buffered bytes, the logging thread writes them out itself.
const MAX_BUFFERED: usize = 1 << 20;

struct Shared<W> {
    state: Mutex<State>,
    /// Locked while the buffer is written, taken before the state lock is released, so
    /// batches reach stderr in order while new lines already go into the next buffer.
    out: Mutex<W>,
    wake: Condvar,
}

struct State {
    buffer: Vec<u8>,
    closed: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock()
}

impl<W: Write> Shared<W> {
    /// Takes the buffer (leaving an empty one of the same capacity) and writes it out.
    fn write_out(&self, mut state: MutexGuard<'_, State>) {
        if state.buffer.is_empty() {
            return;
        }
        let capacity = state.buffer.capacity();
        let batch = std::mem::replace(&mut state.buffer, Vec::with_capacity(capacity));
        let mut out = lock(&self.out);
        drop(state);
        // A broken stderr cannot be reported anywhere; the lines are dropped rather than kept.
        let _ = out.write_all(&batch);
        let _ = out.flush();
    }
}

/// The `MakeWriter` given to the tracing subscriber.
pub struct BatchedWriter<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
}

impl<W: Write + Send + 'static> Clone for BatchedWriter<W> {
    fn clone(&self) -> Self {
        BatchedWriter {
            shared: self.shared.clone(),
        }
    }
}

/// Writes what is buffered and stops the thread when dropped (keep it until exit).
pub struct FlushGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
}

impl<W: Write + Send + 'static> BatchedWriter<W> {
    /// A writer to `out`, with the thread that empties it.
    pub fn new(out: W) -> (Self, FlushGuard<W>) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: Vec::with_capacity(64 * 1024),
                closed: false,
            }),
            out: Mutex::new(out),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hx-log-writer".into())
            .spawn(move || {
                loop {
                    let mut state = lock(&worker.state);
                    if state.closed {
                        return;
                    }
                    worker.wake.wait_for(&mut state, FLUSH_EVERY);
                    worker.write_out(state);
                }
            })
            .ok();
        if thread.is_none() {
            // No thread to empty the buffer: every line is written at once.
            lock(&shared.state).closed = true;
        }
        let guard = FlushGuard {
            shared: shared.clone(),
            thread,
        };
        (BatchedWriter { shared }, guard)
    }
}

impl<W: Write + Send + 'static> Drop for FlushGuard<W> {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.write_out(lock(&self.shared.state));
    }
}

/// One event's writer: tracing formats the whole line, then writes it once.
pub struct LineWriter<'a, W: Write + Send + 'static> {
    shared: &'a Shared<W>,
}

impl<W: Write + Send + 'static> Write for LineWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = lock(&self.shared.state);
        state.buffer.extend_from_slice(buf);
        // After the guard is gone, or when the buffer is full, the caller writes.
        if state.closed || state.buffer.len() >= MAX_BUFFERED {
            self.shared.write_out(state);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for BatchedWriter<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what reaches "stderr".
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_within_the_flush_interval_and_on_drop() {
        let sink = Sink::default();
        let (writer, guard) = BatchedWriter::new(sink.clone());
        writer.make_writer().write_all(b"first\n").unwrap();
        writer.make_writer().write_all(b"second\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().len() < 13 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*sink.0.lock(), b"first\nsecond\n");
        writer.make_writer().write_all(b"last\n").unwrap();
        drop(guard);
        assert_eq!(&*sink.0.lock(), b"first\nsecond\nlast\n");
        // After the guard, lines are written at once.
        writer.make_writer().write_all(b"late\n").unwrap();
        assert!(sink.0.lock().ends_with(b"late\n"));
    }

    #[test]
    fn a_full_buffer_is_written_by_the_caller() {
        let sink = Sink::default();
        let (writer, _guard) = BatchedWriter::new(sink.clone());
        let big = vec![b'x'; MAX_BUFFERED];
        writer.make_writer().write_all(&big).unwrap();
        assert_eq!(sink.0.lock().len(), MAX_BUFFERED);
    }
}
