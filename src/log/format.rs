//! How a plain-text log line is written: its timestamp and its `name=value` fields, the same
//! text tracing-subscriber's defaults write when colours are off, with less work per line.
//!
//! tracing-subscriber's `DefaultFields` paints every field name and `=` through nu-ansi-term
//! even when colours are off: two styled writes per field, about 4% of the gateway's
//! instructions per request in the benchmark (the access line has sixteen fields), and its
//! timestamp is formatted field by field for every line (another 1.5%). Here the fields are
//! written directly and the timestamp's date and time are formatted once per second. Messages
//! keep tracing-subscriber's escaping of terminal control characters (`\x1b` and friends), so a
//! client-chosen text in a message cannot drive the operator's terminal. With colours on, the
//! default formatter is used unchanged.

use std::cell::RefCell;
use std::error::Error;
use std::fmt::{self, Debug, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// Line timestamps in UTC with microseconds (`2026-11-27T02:35:10.123456Z`), as
/// tracing-subscriber's `SystemTime` writes them.
#[derive(Debug, Default, Clone, Copy)]
pub struct UtcTime;

impl FormatTime for UtcTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write_timestamp(w, std::time::SystemTime::now())
    }
}

thread_local! {
    /// The second last formatted on this thread and its text up to the seconds.
    static LAST_SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

fn write_timestamp(w: &mut dyn Write, time: std::time::SystemTime) -> fmt::Result {
    let time = chrono::DateTime::<chrono::Utc>::from(time);
    let micros = time.timestamp_subsec_micros();
    if micros >= 1_000_000 {
        // A leap second (chrono's way of showing one), never seen from the system clock.
        return write!(w, "{}", time.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    }
    let second = time.timestamp();
    // Without the cache (a line logged while the thread is being torn down, or from inside
    // this function) the text is formatted in full.
    let cached = LAST_SECOND.try_with(|last| {
        let mut last = last.try_borrow_mut().ok()?;
        if last.0 != second {
            last.1.clear();
            write!(last.1, "{}", time.format("%Y-%m-%dT%H:%M:%S")).ok()?;
            last.0 = second;
        }
        Some(w.write_str(&last.1))
    });
    match cached {
        Ok(Some(written)) => written?,
        _ => write!(w, "{}", time.format("%Y-%m-%dT%H:%M:%S"))?,
    }
    let mut fraction = *b".000000Z";
    let mut rest = micros;
    for digit in fraction[1..7].iter_mut().rev() {
        // `rest % 10` is a decimal digit: the conversion cannot fail.
        *digit = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    w.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

/// The field formatter for plain (colourless) text lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        PlainVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields.
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    fn write_field(&mut self, field: &Field, value: &dyn Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Records bridged from the `log` crate carry their metadata as `log.*` fields, which
        // the line's prefix already shows.
        if name.starts_with("log.") {
            return;
        }
        self.result = self.write_separated(name, value);
    }

    fn write_separated(&mut self, name: &str, value: &dyn Debug) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        if name == "message" {
            let sanitize = self.writer.sanitizes_ansi_escapes();
            return write!(self.writer, "{:?}", Escaped { value, sanitize });
        }
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')?;
        write!(self.writer, "{value:?}")
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            // A message is written as its text, not as a quoted string.
            self.write_field(field, &format_args!("{value}"));
        } else {
            self.write_field(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        let sanitize = self.writer.sanitizes_ansi_escapes();
        let text = Escaped {
            value: &format_args!("{value}"),
            sanitize,
        };
        match value.source() {
            None => self.write_field(field, &text),
            Some(source) => {
                let sources = Sources { source, sanitize };
                let name = field.name();
                self.write_field(field, &format_args!("{text:?} {name}.sources={sources:?}"));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.write_field(field, value);
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn Write {
        &mut self.writer
    }
}

/// A value written with terminal control characters spelled out (as tracing-subscriber does).
struct Escaped<'v> {
    value: &'v dyn Debug,
    sanitize: bool,
}

impl Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sanitize {
            write!(EscapingWriter(f), "{:?}", self.value)
        } else {
            write!(f, "{:?}", self.value)
        }
    }
}

/// An error's causes as a list: `[cause, its cause, ...]`.
struct Sources<'e> {
    source: &'e (dyn Error + 'static),
    sanitize: bool,
}

impl Debug for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut next = Some(self.source);
        while let Some(error) = next {
            list.entry(&Escaped {
                value: &format_args!("{error}"),
                sanitize: self.sanitize,
            });
            next = error.source();
        }
        list.finish()
    }
}

/// Passes text through, spelling out the characters a terminal would act on.
struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Most text has nothing to escape: one write for the whole of it.
        let mut plain_from = 0;
        for (i, ch) in text.char_indices() {
            let escaped = match ch {
                '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}' => ch,
                _ => continue,
            };
            self.0.write_str(&text[plain_from..i])?;
            match escaped {
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", u32::from(escaped))?,
                _ => write!(self.0, "\\x{:02x}", u32::from(escaped))?,
            }
            plain_from = i + ch.len_utf8();
        }
        self.0.write_str(&text[plain_from..])
    }
}

/// For tests of what gets logged: a writer that keeps everything a subscriber writes.
#[cfg(test)]
pub(crate) mod capture {
    use std::sync::Arc;

    use parking_lot::Mutex;

    /// Clones share one buffer: give a clone to the subscriber, read the original.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capture::Captured;
    use super::*;

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Failure {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    /// Emits the same events through a subscriber with the given field formatter.
    fn lines(plain: bool) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone());
        let emit = || {
            let error = Failure("upstream down", Some(Box::new(Failure("refused", None))));
            let single = Failure("timed \x1b[31mout", None);
            let r#type = "raw";
            tracing::info!(
                request_id = %"req-1",
                route = "/v1/chat/completions",
                status = 200u16,
                duration_ms = 1.25f64,
                upstream_ms = Option::<f64>::None,
                overhead_ms = Some(0.5f64),
                streamed = false,
                count = -3i64,
                key_alias = Some("team \"a\""),
                r#type,
                "request"
            );
            tracing::warn!(error = &error as &(dyn Error + 'static), "call failed");
            tracing::warn!(error = &single as &(dyn Error + 'static), "one cause");
            tracing::error!("client sent \x1b[2J and \u{9b} in {}", "a model name");
            let span = tracing::info_span!("serve", port = 4000u16, host = "127.0.0.1");
            let _entered = span.enter();
            tracing::debug!("inside");
            tracing::info!("inside a span");
        };
        if plain {
            let subscriber = builder.fmt_fields(PlainFields).finish();
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        String::from_utf8(captured.0.lock().clone()).unwrap()
    }

    #[test]
    fn lines_are_the_same_text_as_tracing_subscribers_default_fields() {
        let plain = lines(true);
        let default = lines(false);
        assert_eq!(plain, default);
        // The comparison covers what the gateway's lines use.
        assert!(plain.contains("request request_id=req-1 route=\"/v1/chat/completions\" status=200 duration_ms=1.25"),
            "{plain}");
        // Optional fields: the value when set, nothing when not.
        assert!(plain.contains("overhead_ms=0.5 streamed=false"), "{plain}");
        assert!(!plain.contains("upstream_ms"), "{plain}");
        assert!(plain.contains(" type=\"raw\""), "{plain}");
        assert!(plain.contains("error.sources=[refused]"), "{plain}");
        assert!(
            plain.contains("serve{port=4000 host=\"127.0.0.1\"}"),
            "{plain}"
        );
    }

    #[test]
    fn timestamps_are_tracing_subscribers_text_also_within_one_second() {
        use std::time::{Duration, UNIX_EPOCH};
        let reference = |t: std::time::SystemTime| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        };
        let base = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        for offset_micros in [0u64, 7, 999_999, 1_000_000, 1_000_042, 86_400_000_001, 5] {
            let t = base + Duration::from_micros(offset_micros);
            let mut text = String::new();
            write_timestamp(&mut text, t).unwrap();
            assert_eq!(text, reference(t));
        }
        // The same layout as tracing-subscriber's own timer, read off a real line.
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!("x"));
        let line = String::from_utf8(captured.0.lock().clone()).unwrap();
        let theirs = line.split_whitespace().next().unwrap();
        let mut ours = String::new();
        write_timestamp(&mut ours, std::time::SystemTime::now()).unwrap();
        assert_eq!(theirs.len(), ours.len(), "{theirs} vs {ours}");
        assert_eq!(theirs.as_bytes()[10], b'T');
        assert!(theirs.ends_with('Z') && ours.ends_with('Z'));
    }

    #[test]
    fn terminal_control_characters_in_messages_are_spelled_out() {
        let plain = lines(true);
        assert!(
            plain.contains("client sent \\x1b[2J and \\u{9b} in a model name"),
            "{plain}"
        );
        assert!(plain.contains("timed \\x1b[31mout"), "{plain}");
        assert!(!plain.contains('\x1b'), "{plain}");
    }
}
