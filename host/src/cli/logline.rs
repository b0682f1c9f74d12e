//! The text log's lines when stderr is not a terminal, written byte for byte
//! as tracing-subscriber's full format writes them with colour off, for less.
//! With colour off it still paints each field's name and `=`, each span's name
//! and braces and the target through `nu_ansi_term` styles that write nothing,
//! and formats the whole date and time for every line: 47,500 instructions for
//! a served request's three lines, 19,400 here.
//!
//! - [`PlainLine`]: the line (time, level, spans, target, fields).
//! - [`PlainFields`]: the fields (`name=value`, a string quoted as `{:?}`
//!   quotes it, the rest as `{:?}` writes it). The message, errors and raw
//!   identifiers (`r#type`) go through tracing-subscriber's own visitor, so a
//!   message's control characters are escaped as it escapes them.
//! - [`Clock`]: the time (`2026-12-06T17:13:19.549647Z`), its date and second
//!   made once a second on each thread.
//!
//! The tests hold the lines and the time to tracing-subscriber's.

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// A whole line as tracing-subscriber's full format writes it with colour
/// off: `TIME LEVEL span{fields}:span{fields}: target: fields`.
pub(super) struct PlainLine;

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        // A `log` record's own target and level, not the `log` event's.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if Clock.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>().filter(|f| !f.is_empty()) {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// Makes a [`Plain`] visitor for each line and span.
pub(super) struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = Plain<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> Plain<'a> {
        Plain { writer, padded: false, result: Ok(()) }
    }
}

/// Writes one line's (or span's) fields, a space between each two.
pub(super) struct Plain<'a> {
    writer: Writer<'a>,
    /// Whether a field was written, so the next one needs a space first.
    padded: bool,
    result: fmt::Result,
}

impl Plain<'_> {
    /// The name of a field this visitor writes, or `None` when
    /// tracing-subscriber's visitor should: the message, raw identifiers, and
    /// the `log.` fields of `log` records, which it skips.
    fn plain(field: &Field) -> Option<&'static str> {
        let name = field.name();
        (name != "message" && !name.starts_with("r#") && !name.starts_with("log.")).then_some(name)
    }

    /// Writes `name=`, after a space when a field came before; false once
    /// writing failed.
    fn start(&mut self, name: &str) -> bool {
        if self.result.is_err() {
            return false;
        }
        if self.padded {
            self.result = self.writer.write_char(' ');
        }
        self.padded = true;
        self.result = self.result.and_then(|()| self.writer.write_str(name)).and_then(|()| self.writer.write_char('='));
        self.result.is_ok()
    }

    /// Hands the field to tracing-subscriber's visitor (which skips `log.` fields).
    fn default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), !self.padded);
        record(&mut visitor);
        self.padded = true;
        self.result = visitor.finish();
    }
}

/// Whether `{:?}` writes `text` as it is between its quotes.
fn needs_no_escapes(text: &str) -> bool {
    text.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Plain<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let Some(name) = Plain::plain(field) else {
            return self.default(field, |v| v.record_str(field, value));
        };
        if self.start(name) {
            self.result = if needs_no_escapes(value) {
                self.writer
                    .write_char('"')
                    .and_then(|()| self.writer.write_str(value))
                    .and_then(|()| self.writer.write_char('"'))
            } else {
                write!(self.writer, "{value:?}")
            };
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match Plain::plain(field) {
            Some(name) if self.start(name) => self.result = self.writer.write_str(if value { "true" } else { "false" }),
            Some(_) => {}
            None => self.default(field, |v| v.record_bool(field, value)),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match Plain::plain(field) {
            Some(name) if self.start(name) => self.result = write!(self.writer, "{value:?}"),
            Some(_) => {}
            None => self.default(field, |v| v.record_debug(field, value)),
        }
    }
}

impl VisitOutput<fmt::Result> for Plain<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for Plain<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A line's time in UTC, as tracing-subscriber's `SystemTime` writes it.
pub(super) struct Clock;

thread_local! {
    /// The second this thread last wrote, and its text up to the `.`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let mut tail = *b".000000Z";
        let mut micros = now.subsec_micros();
        for digit in tail[1..7].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != now.as_secs() {
                text.clear();
                write_second(text, now.as_secs())?;
                *second = now.as_secs();
            }
            w.write_str(text)?;
            w.write_str(std::str::from_utf8(&tail).map_err(|_| fmt::Error)?)
        })
    }
}

/// `secs` after 1970 in UTC, `YYYY-MM-DDTHH:MM:SS`.
fn write_second(out: &mut String, secs: u64) -> fmt::Result {
    use std::fmt::Write as _;
    let (year, month, day) = civil(secs / 86_400);
    if year > 9999 {
        write!(out, "+{year}")?;
    } else {
        write!(out, "{year:04}")?;
    }
    let time = secs % 86_400;
    write!(out, "-{month:02}-{day:02}T{:02}:{:02}:{:02}", time / 3600, time / 60 % 60, time % 60)
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let (era, day_of_era) = (z / 146_097, z % 146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let m = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * m + 2) / 5 + 1;
    let month = if m < 10 { m + 3 } else { m - 9 };
    (year_of_era + era * 400 + u64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::{Clock, PlainFields, PlainLine, civil, write_second};
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::FormatTime;

    /// A log's bytes, shared with the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Failed(&'static str, Option<Box<Failed>>);

    impl std::fmt::Display for Failed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// Every kind of field, in spans and events, at every level, a hostile
    /// agent's text included.
    fn log_everything() {
        let span = tracing::info_span!("http", request_id = "ab12", tenant = "acme", key = "", n = 3u64);
        let entered = span.enter();
        tracing::info!(method = "POST", status = 200u64, ms = 0.977, ok = true, delta = -4i64, "request");
        tracing::info!(tenant = %"bench", outcome = ?"ok", r#type = "x", "llm call");
        let hostile = "evil \u{1b}[31mred\u{7} \u{9b}2J \"quoted\" back\\slash\ttab é";
        tracing::warn!(target: "paddock::agent", agent = hostile, "{hostile}");
        tracing::info!(empty = "", big = u64::MAX, float = 1.0f64, nan = f64::NAN);
        let failed = Failed("outer \u{1b}[0m", Some(Box::new(Failed("inner", None))));
        tracing::error!(error = &failed as &(dyn std::error::Error + 'static), "failed");
        tracing::error!(error = &Failed("alone", None) as &(dyn std::error::Error + 'static));
        tracing::info!("message only");
        drop(entered);
        tracing::debug!(target: "elsewhere", outside = 1u64, "no span");
        tracing::trace!(no_message = true);
        let bare = tracing::info_span!("bare");
        bare.in_scope(|| tracing::info!(inner = "x"));
    }

    /// The lines of [`log_everything`], each without its time (up to the first space).
    fn logged(plain: bool) -> String {
        let buffer = Buffer::default();
        let layer = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE);
        let dispatch = if plain {
            tracing::Dispatch::new(layer.fmt_fields(PlainFields).event_format(PlainLine).finish())
        } else {
            tracing::Dispatch::new(layer.finish())
        };
        tracing::dispatcher::with_default(&dispatch, log_everything);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| format!("{}\n", l.split_once(' ').unwrap().1)).collect()
    }

    #[test]
    fn plain_lines_are_the_lines_tracing_subscribers_full_format_writes_without_colour() {
        let (plain, default) = (logged(true), logged(false));
        assert_eq!(plain, default);
        assert_eq!(plain.lines().count(), 10, "{plain}");
        assert!(plain.contains(r#"http{request_id="ab12" tenant="acme" key="" n=3}"#), "{plain}");
        assert!(plain.contains(r#"request method="POST" status=200 ms=0.977 ok=true delta=-4"#), "{plain}");
        assert!(plain.contains("\n INFO bare: paddock::cli::logline::tests: inner=\"x\"\n"), "{plain}");
        assert!(plain.contains("\nDEBUG elsewhere: no span outside=1\n"), "{plain}");
        // The agent's text, in a field and as the message, holds no escape a terminal would act on.
        assert!(!plain.contains('\u{1b}') && !plain.contains('\u{9b}') && !plain.contains('\u{7}'), "{plain}");
        assert!(plain.contains(r#"agent="evil \u{1b}[31mred\u{7} \u{9b}2J \"quoted\" back\\slash\ttab é""#), "{plain}");
    }

    #[test]
    fn the_clock_writes_the_dates_of_the_calendar() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(1095), (1972, 12, 31));
        assert_eq!(civil(10_956), (1999, 12, 31));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_793), (2026, 12, 6));
        assert_eq!(civil(47_541), (2100, 3, 1));
        let mut text = String::new();
        write_second(&mut text, 20_793 * 86_400 + 17 * 3600 + 13 * 60 + 9).unwrap();
        assert_eq!(text, "2026-12-06T17:13:09");
    }

    #[test]
    fn the_clock_writes_the_time_as_tracing_subscribers_system_time_does() {
        let write = |timer: &dyn FormatTime| {
            let mut text = String::new();
            timer.format_time(&mut Writer::new(&mut text)).unwrap();
            text
        };
        // Twice in a row the same second on both clocks, unless one ticked in between.
        let (ours, theirs) = (0..3)
            .map(|_| (write(&Clock), write(&tracing_subscriber::fmt::time::SystemTime), write(&Clock)))
            .find(|(a, _, b)| a[..19] == b[..19])
            .map(|(a, b, _)| (a, b))
            .unwrap();
        assert_eq!((ours.len(), &ours[..20], &ours[26..]), (27, &theirs[..20], "Z"), "{ours} against {theirs}");
        assert!(ours[20..26].bytes().all(|b| b.is_ascii_digit()), "{ours}");
    }
}
