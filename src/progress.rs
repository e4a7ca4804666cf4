//! Progress of long operations (exports, imports, the erasure sweep, copies, verify).
//!
//! Library operations report to the [`Progress`] installed for the current thread with
//! [`with`]; when none is installed (the default, and always inside the admin socket's
//! threads) reporting is a no-op, so the library's signatures carry no progress argument.
//! Reports name a phase and count rows or entries; they never carry a JID or message text.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! struct Count(AtomicU64);
//! impl jidstore::progress::Progress for Count {
//!     fn advance(&self, n: u64) {
//!         self.0.fetch_add(n, Ordering::Relaxed);
//!     }
//! }
//! let store = jidstore::Store::temporary()?;
//! let count = std::rc::Rc::new(Count(AtomicU64::new(0)));
//! jidstore::progress::with(count.clone(), || jidstore::verify(&store))?;
//! assert!(count.0.load(Ordering::Relaxed) > 0); // the meta entries at least
//! # Ok::<(), jidstore::Error>(())
//! ```

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Receives progress reports. Every method has a no-op default.
pub trait Progress {
    /// A phase starts: `what` is a fixed label (`export`, `verify`, ...), `unit` what is
    /// counted (`rows`, `entries`), `total` the count expected when known.
    fn start(&self, what: &'static str, unit: &'static str, total: Option<u64>) {
        let _ = (what, unit, total);
    }
    /// `n` more units done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
    /// The phase ended.
    fn finish(&self) {}
    /// Prints one line of the command's own output (`line`, without a newline) so that it
    /// does not tear the progress line; `false` if this receiver prints nothing, and the
    /// caller prints the line itself.
    fn note(&self, line: &str) -> bool {
        let _ = line;
        false
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Progress>>> = const { RefCell::new(None) };
}

/// Runs `f` with `progress` receiving the reports of the operations it runs on this thread
/// (the previous receiver, if any, is restored afterwards, also on unwinding).
pub fn with<R>(progress: Rc<dyn Progress>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Rc<dyn Progress>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.borrow_mut().replace(progress)));
    f()
}

fn report(f: impl FnOnce(&dyn Progress)) {
    let current = CURRENT.with(|c| c.borrow().clone());
    if let Some(p) = current {
        f(&*p);
    }
}

/// Starts a phase on the current receiver (no-op without one).
pub(crate) fn start(what: &'static str, unit: &'static str, total: Option<u64>) {
    report(|p| p.start(what, unit, total));
}

/// Advances the current phase.
pub(crate) fn advance(n: u64) {
    report(|p| p.advance(n));
}

/// Ends the current phase.
#[allow(
    clippy::redundant_closure_for_method_calls,
    reason = "the method path is not general over the trait object's lifetime"
)]
pub(crate) fn finish() {
    report(|p| p.finish());
}

/// Prints `line` through the current receiver ([`Progress::note`]); `false` when there is
/// none or it does not print, and the caller prints the line itself.
#[cfg(feature = "cli")]
pub(crate) fn note(line: &str) -> bool {
    let mut printed = false;
    report(|p| printed = p.note(line));
    printed
}

/// The no-op [`Progress`].
#[cfg(test)]
struct NoProgress;
#[cfg(test)]
impl Progress for NoProgress {}

/// Whether enough time passed since the last drawing (at most one per `every`).
#[derive(Debug)]
struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// At most one `ready` per `every`.
    fn new(every: Duration) -> Throttle {
        Throttle { every, last: None }
    }
    /// True (and remembers `now`) when nothing was drawn yet or `every` has passed.
    fn ready(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// One progress line: `export: 1234 rows`, with ` of N (P%)` when the total is known.
fn format_line(what: &str, unit: &str, count: u64, total: Option<u64>) -> String {
    match total {
        Some(t) if t > 0 => {
            let pct = count.min(t).saturating_mul(100) / t;
            format!("{what}: {count} of {t} {unit} ({pct}%)")
        }
        _ => format!("{what}: {count} {unit}"),
    }
}

#[derive(Debug)]
struct Bar {
    what: &'static str,
    unit: &'static str,
    total: Option<u64>,
    count: u64,
    throttle: Throttle,
    width: usize,
}

/// A terminal renderer: one line rewritten in place with `\r`, at most 10 times a second,
/// and the final count on its own line when a phase ends. Writes to `W` (stderr in the CLI).
///
/// Not `indicatif` (0.18.6 tried, issue 14 item 8): it draws for a terminal, padding every
/// line with spaces to the terminal's width and leaving the line end to the terminal's
/// wrap. Into a pipe or a log (`JIDSTORE_PROGRESS=always`) 1000 advances and a note gave 1213
/// bytes with no final newline, the note run into the progress line, and 12 drawings in a
/// burst; this renderer writes 97 bytes: the first count, the note on a line of its own, and
/// the final count ending its line.
#[doc(hidden)] // the CLI's renderer; not covered by semver
pub struct Terminal<W: Write> {
    out: Mutex<W>,
    bar: Mutex<Option<Bar>>,
}

impl<W: Write> Terminal<W> {
    /// A renderer writing to `out`.
    pub fn new(out: W) -> Terminal<W> {
        Terminal {
            out: Mutex::new(out),
            bar: Mutex::new(None),
        }
    }

    /// The writer back (for tests).
    pub fn into_inner(self) -> W {
        self.out
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn draw(&self, bar: &mut Bar, end: bool) {
        let line = format_line(bar.what, bar.unit, bar.count, bar.total);
        let pad = bar.width.saturating_sub(line.len());
        bar.width = line.len();
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Progress is a comfort: a failed write to stderr is ignored.
        let _ = write!(out, "\r{line}{:pad$}", "");
        if end {
            let _ = writeln!(out);
        }
        let _ = out.flush();
    }
}

impl<W: Write> Progress for Terminal<W> {
    fn start(&self, what: &'static str, unit: &'static str, total: Option<u64>) {
        let mut bar = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *bar = Some(Bar {
            what,
            unit,
            total,
            count: 0,
            throttle: Throttle::new(Duration::from_millis(100)),
            width: 0,
        });
    }

    fn advance(&self, n: u64) {
        let mut guard = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bar) = guard.as_mut() {
            bar.count = bar.count.saturating_add(n);
            if bar.throttle.ready(Instant::now()) {
                self.draw(bar, false);
            }
        }
    }

    fn finish(&self) {
        let mut guard = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mut bar) = guard.take() {
            self.draw(&mut bar, true);
        }
    }

    fn note(&self, line: &str) -> bool {
        let mut guard = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        {
            let mut out = self
                .out
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Clear the drawn progress line, print the note on its own line.
            if let Some(bar) = guard.as_mut().filter(|b| b.width > 0) {
                let _ = write!(out, "\r{:w$}\r", "", w = bar.width);
                bar.width = 0;
            }
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        // Then the progress line again, below it.
        if let Some(bar) = guard.as_mut().filter(|b| b.count > 0) {
            self.draw(bar, false);
        }
        true
    }
}

/// Reports a phase of `what` counting `unit` for as long as it lives; ends it when dropped
/// (also on an error return).
pub(crate) struct Phase;

impl Phase {
    pub(crate) fn start(what: &'static str, unit: &'static str, total: Option<u64>) -> Phase {
        start(what, unit, total);
        Phase
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        finish();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed expectation is a failed test")]
    use super::*;

    #[test]
    fn a_note_clears_the_progress_line_and_redraws_it_below() {
        let term = Terminal::new(Vec::new());
        term.start("import", "users", Some(3));
        term.advance(1);
        assert!(term.note("jidstore: imported a@h (durable)"));
        term.finish();
        let out = String::from_utf8(term.into_inner()).unwrap();
        let bar = "import: 1 of 3 users (33%)";
        let clear = format!("\r{:w$}\r", "", w = bar.len());
        assert_eq!(
            out,
            format!("\r{bar}{clear}jidstore: imported a@h (durable)\n\r{bar}\r{bar}\n")
        );
        // Without a phase, the note is just a line.
        let term = Terminal::new(Vec::new());
        assert!(term.note("x"));
        assert_eq!(term.into_inner(), b"x\n");
        assert!(!NoProgress.note("x"), "the no-op receiver prints nothing");
    }

    #[test]
    fn throttle_allows_one_drawing_per_period() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_millis(100));
        assert!(t.ready(t0));
        assert!(!t.ready(t0 + Duration::from_millis(50)));
        assert!(!t.ready(t0 + Duration::from_millis(99)));
        assert!(t.ready(t0 + Duration::from_millis(100)));
        assert!(!t.ready(t0 + Duration::from_millis(150)));
        assert!(t.ready(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn lines_count_and_show_percent_when_the_total_is_known() {
        assert_eq!(format_line("export", "rows", 12, None), "export: 12 rows");
        assert_eq!(
            format_line("copy", "entries", 50, Some(200)),
            "copy: 50 of 200 entries (25%)"
        );
        assert_eq!(format_line("x", "rows", 0, Some(0)), "x: 0 rows");
        assert_eq!(
            format_line("x", "rows", 300, Some(200)),
            "x: 300 of 200 rows (100%)"
        );
    }

    #[test]
    fn terminal_draws_throttled_and_ends_with_the_final_count() {
        let term = Rc::new(Terminal::new(Vec::new()));
        let dynamic: Rc<dyn Progress> = term.clone();
        with(dynamic, || {
            let _phase = Phase::start("verify", "entries", None);
            for _ in 0..1000 {
                advance(1);
            }
        });
        // Outside `with` nothing is reported.
        advance(5);
        let out = String::from_utf8(Rc::try_unwrap(term).ok().unwrap().into_inner()).unwrap();
        assert!(out.starts_with("\rverify: 1 entries"), "{out:?}");
        assert!(out.ends_with("\rverify: 1000 entries\n"), "{out:?}");
    }
}
