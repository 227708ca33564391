//! The partition shell: a tiny line-based command interpreter that the virtio-console device
//! ([`Console`](super::console::Console)) and a vsock connection
//! ([`vsock::StandardServices`](super::vsock::StandardServices)) both drive, through
//! [`Output`].
//!
//! Commands: `help`, `version`, `devices`, `stats` (the endpoint's counters: its bus messages,
//! the ERROR answers, the areas it has shared, and per device its messages, notifications,
//! chains, bytes and failures; [`Shell::with_stats`]), `log` (the partition's most recent log
//! lines, [`crate::console::RECENT`]); anything else is an `unknown command`. A line ends
//! at `\n` or `\r` (`\r\n` counts once); it is answered, then the prompt follows. No echo: the
//! peer sees only answers and prompts. A line longer than [`LINE_MAX`] is refused whole at its
//! end.

use alloc::sync::Arc;
use virtio_msg::device::{EndpointStats, stats::COUNTED_DEVICES};

use super::stream::Output;
use crate::console::RECENT;

/// Longest command line the [`Shell`] keeps; a longer line is refused whole.
pub const LINE_MAX: usize = 128;
/// The shell's prompt.
pub const PROMPT: &[u8] = b"> ";

/// The answer to `help`.
const HELP: &[u8] = b"commands: help, version, devices, stats, log\n";
/// The answer to `stats` where nothing is counted.
const NO_STATS: &[u8] = b"no counters here\n";
/// The longest answer to `stats` or `log` (`log` keeps the newest whole lines that fit;
/// `stats` never needs more, see [`REPORTED_DEVICES`]). It fits a vsock connection's send
/// buffer with the prompt.
pub const REPORT_MAX: usize = 768;
/// Devices `stats` reports (the standard set has four): with every counter at its largest,
/// their lines and the endpoint's stay within [`REPORT_MAX`] (tested).
pub const REPORTED_DEVICES: usize = 4;
/// The answer to an overlong line.
const TOO_LONG: &[u8] = b"line too long\n";
/// The answer to anything else.
const UNKNOWN: &[u8] = b"unknown command\n";
/// What `version` prints before the version and a newline.
const VERSION_PREFIX: &[u8] = b"vmsg-sp ";
/// The crate version `version` prints.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The larger of two lengths, in a const context.
const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The longest answer to a line other than `devices` (without the prompt after it).
const FIXED_ANSWER_MAX: usize = max(
    max(HELP.len(), TOO_LONG.len()),
    max(
        max(UNKNOWN.len(), VERSION_PREFIX.len() + VERSION.len() + 1),
        REPORT_MAX,
    ),
);

/// A tiny line-based shell (see the [module docs](self)).
pub struct Shell {
    devices: &'static str,
    line: [u8; LINE_MAX],
    len: usize,
    /// The line outgrew [`LINE_MAX`]: it is refused at its end.
    overlong: bool,
    /// The last byte was `\r` (a `\n` right after it ends nothing).
    after_cr: bool,
    /// What `stats` reports: the counters of the endpoint the shell serves.
    stats: Option<Arc<EndpointStats>>,
}

impl Shell {
    /// A shell whose `devices` command prints `devices` (one line or more, no final newline
    /// needed).
    pub const fn new(devices: &'static str) -> Self {
        Self {
            devices,
            line: [0; LINE_MAX],
            len: 0,
            overlong: false,
            after_cr: false,
            stats: None,
        }
    }

    /// The same shell, whose `stats` reports `stats` (the counters of the endpoint it serves;
    /// no other endpoint's).
    #[must_use]
    pub fn with_stats(mut self, stats: Arc<EndpointStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The most bytes one line's answer and the prompt after it take.
    pub fn answer_max(&self) -> usize {
        max(FIXED_ANSWER_MAX, self.devices.len().saturating_add(1)).saturating_add(PROMPT.len())
    }

    /// Takes the bytes of `input` in order, answering each line into `out`, and returns how
    /// many it took: it stops before a line's end while `out` holds output and has less room
    /// than [`answer_max`](Self::answer_max), so that no answer is cut (the caller offers the
    /// rest again once `out` has drained). With `out` empty a line is always answered, cut to
    /// what fits if `out` is that small.
    pub fn feed(&mut self, input: &[u8], out: &mut dyn Output) -> usize {
        self.take(input, out, true)
    }

    /// Takes every byte of `input`, answering each line into `out` whatever its room: what
    /// does not fit is `out`'s to drop (the console's outbox counts it).
    pub fn feed_all(&mut self, input: &[u8], out: &mut dyn Output) {
        self.take(input, out, false);
    }

    /// The greeting of a new session: the prompt.
    pub fn open(&mut self, out: &mut dyn Output) {
        out.push(PROMPT);
    }

    /// Forgets any half-received line.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overlong = false;
        self.after_cr = false;
    }

    fn take(&mut self, input: &[u8], out: &mut dyn Output, hold_back: bool) -> usize {
        for (taken, &byte) in input.iter().enumerate() {
            let ends_line = byte == b'\r' || (byte == b'\n' && !self.after_cr);
            if ends_line && hold_back && !out.is_empty() && out.room() < self.answer_max() {
                return taken;
            }
            let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => self.run(out),
                _ => match self.line.get_mut(self.len) {
                    Some(slot) => {
                        *slot = byte;
                        self.len = self.len.saturating_add(1);
                    }
                    None => self.overlong = true,
                },
            }
        }
        input.len()
    }

    /// Answers the line held, then prompts.
    fn run(&mut self, out: &mut dyn Output) {
        let line = self.line.get(..self.len).unwrap_or(&[]).trim_ascii();
        if self.overlong {
            out.push(TOO_LONG);
        } else {
            match line {
                b"" => {}
                b"help" => {
                    out.push(HELP);
                }
                b"version" => {
                    out.push(VERSION_PREFIX);
                    out.push(VERSION.as_bytes());
                    out.push(b"\n");
                }
                b"stats" => self.report_stats(out),
                b"log" => {
                    out.push(RECENT.lock().tail(REPORT_MAX));
                }
                b"devices" => {
                    out.push(self.devices.as_bytes());
                    if !self.devices.ends_with('\n') {
                        out.push(b"\n");
                    }
                }
                _ => {
                    out.push(UNKNOWN);
                }
            }
        }
        self.len = 0;
        self.overlong = false;
        out.push(PROMPT);
    }
}

impl Shell {
    /// Answers `stats` (out of line: `take` stays small): one line for the endpoint, one per
    /// device it has (as many as `devices` lists, at most [`REPORTED_DEVICES`]). Written in
    /// pieces: the caller left [`answer_max`](Self::answer_max) of room, and the longest
    /// answer (every counter at its maximum) is under [`REPORT_MAX`].
    #[inline(never)]
    fn report_stats(&self, out: &mut dyn Output) {
        let Some(stats) = &self.stats else {
            out.push(NO_STATS);
            return;
        };
        let s = stats.endpoint();
        out.push(b"endpoint:");
        field(out, b" ", s.messages, b" messages");
        field(out, b", ", s.errors, b" errors");
        field(out, b", ", s.areas, b" areas held\n");
        let listed = self.devices.bytes().filter(|&b| b == b'\n').count();
        let present = listed
            .saturating_add(1)
            .min(COUNTED_DEVICES)
            .min(REPORTED_DEVICES);
        for dev in 0..present {
            let Some(d) = stats.device(dev) else { break };
            field(out, b"dev ", u64::try_from(dev).unwrap_or(0), b":");
            field(out, b" ", d.messages, b" messages");
            field(out, b", ", d.kicks, b" kicks");
            field(out, b", ", d.chains, b" chains");
            field(out, b", ", d.bytes, b" bytes");
            field(out, b", ", d.failures, b" failures\n");
        }
    }
}

/// Writes `before`, `value` in decimal, then `after`.
fn field(out: &mut dyn Output, before: &[u8], value: u64, after: &[u8]) {
    out.push(before);
    decimal(out, value);
    out.push(after);
}

/// Writes `value` in decimal.
fn decimal(out: &mut dyn Output, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while let Some(next) = at.checked_sub(1) {
        at = next;
        if let Some(d) = digits.get_mut(at) {
            // `value % 10` is a single digit.
            *d = b'0'.saturating_add(u8::try_from(value % 10).unwrap_or(0));
        }
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.push(digits.get(at..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::stream::ByteRing;

    fn text<const N: usize>(ring: &mut ByteRing<N>) -> String {
        let mut out = vec![0u8; ring.len()];
        ring.pop(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn feed_holds_a_line_end_back_until_the_answer_fits() {
        let mut shell = Shell::new("0 dev");
        let need = shell.answer_max();
        // The bound is the longest answer, `stats` or `log`'s.
        assert_eq!(need, REPORT_MAX + PROMPT.len());
        let mut out = ByteRing::<1024>::new();
        shell.open(&mut out);
        // The prompt and 260 more bytes held, 762 of room: "help\n" stops before its end.
        out.push(&[b'x'; 260]);
        assert!(out.room() < need);
        assert_eq!(shell.feed(b"help\nversion\n", &mut out), 4);
        out.consume(262);
        // Room again: the line end goes through; its answer then leaves too little room for
        // the next one, which waits again.
        out.push(&[b'x'; 210]);
        assert_eq!(shell.feed(b"\nversion\n", &mut out), 8);
        out.consume(210);
        assert_eq!(
            text(&mut out),
            "commands: help, version, devices, stats, log\n> "
        );
        assert_eq!(shell.feed(b"\n", &mut out), 1);
        assert_eq!(
            text(&mut out),
            format!("vmsg-sp {}\n> ", env!("CARGO_PKG_VERSION"))
        );
        // Empty output: a line is answered even when its answer cannot fit whole.
        let mut tiny = ByteRing::<4>::new();
        assert_eq!(shell.feed(b"help\n", &mut tiny), 5);
        assert_eq!(text(&mut tiny), "comm");
        // feed_all never holds back.
        let mut small = ByteRing::<8>::new();
        small.push(b"1234567");
        shell.feed_all(b"nope\n", &mut small);
        assert_eq!(text(&mut small), "1234567u");
    }

    #[test]
    fn a_long_device_list_raises_the_bound() {
        const DEVICES: &str =
            "0 a very long device description line that is longer than help\n1 another one";
        let shell = Shell::new(DEVICES);
        assert_eq!(shell.answer_max(), REPORT_MAX + PROMPT.len());
        let longer = DEVICES.repeat(12).leak();
        assert_eq!(
            Shell::new(longer).answer_max(),
            longer.len() + 1 + PROMPT.len()
        );
    }

    /// Runs `line` through a fresh shell and returns the answer without the prompt.
    fn answer(shell: &mut Shell, line: &[u8]) -> String {
        let mut out = ByteRing::<1024>::new();
        shell.feed(line, &mut out);
        let got = text(&mut out);
        got.strip_suffix("> ")
            .expect("a prompt after the answer")
            .to_owned()
    }

    #[test]
    fn stats_reports_the_endpoint_and_each_listed_device() {
        let stats = Arc::new(EndpointStats::new());
        let mut shell = Shell::new("0 virtio-rng (id 4)\n1 virtio-console (id 3)")
            .with_stats(Arc::clone(&stats));
        stats.message(false, 1);
        stats.message(true, 2);
        stats.device_message(1);
        stats.device_work(0, 2, 8192, false);
        stats.device_work(1, 1, 5, true);
        stats.device_work(2, 9, 9, false);
        assert_eq!(
            answer(&mut shell, b"stats\n"),
            "endpoint: 2 messages, 1 errors, 2 areas held\n\
             dev 0: 0 messages, 1 kicks, 2 chains, 8192 bytes, 0 failures\n\
             dev 1: 1 messages, 1 kicks, 1 chains, 5 bytes, 1 failures\n"
        );
        // The counters are read at each `stats`.
        stats.message(false, 0);
        assert!(
            answer(&mut shell, b" stats \r").starts_with("endpoint: 3 messages, 1 errors, 0 areas")
        );
        assert_eq!(
            answer(&mut Shell::new("d"), b"stats\n"),
            "no counters here\n"
        );
    }

    #[test]
    fn the_largest_stats_answer_fits_its_bound_whole() {
        let stats = Arc::new(EndpointStats::new());
        for dev in 0..COUNTED_DEVICES {
            stats.device_work(dev, u64::MAX, u64::MAX, true);
        }
        for _ in 0..3 {
            stats.message(true, usize::MAX);
        }
        // More devices listed than are reported: only the first REPORTED_DEVICES.
        let devices = "0 a\n1 b\n2 c\n3 d\n4 e\n5 f";
        let got = answer(&mut Shell::new(devices).with_stats(stats), b"stats\n");
        assert!(got.len() <= REPORT_MAX);
        assert_eq!(got.lines().count(), 5);
        assert!(
            got.lines()
                .skip(1)
                .all(|l| l.contains("18446744073709551615 bytes"))
        );
    }

    #[test]
    fn log_answers_the_most_recent_lines() {
        for i in 0..100 {
            crate::console::record(format!("INFO  shell test line {i}").as_bytes());
        }
        let got = answer(&mut Shell::new("d"), b"log\n");
        assert!(
            got.len() <= REPORT_MAX && got.len() > REPORT_MAX - 40,
            "{}",
            got.len()
        );
        // Whole lines, the newest last (other tests may log between these).
        assert!(got.ends_with("INFO  shell test line 99\n"), "{got}");
        assert!(
            got.lines().all(|l| l.starts_with("INFO  ")
                || l.starts_with("WARN")
                || l.starts_with("DEBUG")
                || l.starts_with("ERROR")),
            "{got}"
        );
    }
}
