//! Console lines: how a log record becomes one line, where lines wait before a console is
//! chosen, and how a line goes out over `FFA_CONSOLE_LOG`.
//!
//! With an SPMC, lines go out through `FFA_CONSOLE_LOG` (64-bit form, up to 128 characters per
//! call, the last call ending in `\n`; Hafnium prints a line per newline, prefixed with the
//! partition id); without one, the image writes them to its PL011 (`runtime::console`). Lines
//! logged before `FFA_VERSION` answered (which must be the first FF-A call) wait in an
//! [`EarlyLog`]. The most recent lines are kept as well ([`RecentLog`], [`RECENT`]) for the
//! partition shell's `log` command.

use core::fmt;

use zerocopy::IntoBytes;

use ffa::{
    Conduit,
    arm_ffa::{
        Interface,
        interface_args::{ConsoleLogChars, ConsoleLogChars64},
    },
};

/// Longest line kept; longer ones are cut and end in `...`. A line and its newline must fit
/// Hafnium's per-vCPU log buffer, which prints what it holds at 255 characters: a longer line
/// would come out split in two on the console.
pub const LINE_MAX: usize = 254;
/// Bytes of log kept before the console is chosen.
pub const EARLY_MAX: usize = 4096;

/// One line being formatted: embedded newlines become spaces (a record is one line on the
/// SPMC's console), and a line longer than [`LINE_MAX`] is cut and ends in `...`.
pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
    truncated: bool,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
            truncated: false,
        }
    }

    /// Writes a log record: its level padded as `{:<5} ` writes it, then its message. The
    /// image's logger and the simulated partition's (`vmsg_host::sim::partition_log`) both
    /// make their lines with it.
    pub fn write_record(&mut self, level: log::Level, args: fmt::Arguments<'_>) {
        let _ = fmt::Write::write_str(self, level_prefix(level));
        let _ = fmt::Write::write_fmt(self, args);
    }

    /// The line, with `...` in place of its end if it was cut.
    pub fn bytes(&mut self) -> &[u8] {
        if self.truncated
            && let Some(tail) = self.buf.last_chunk_mut()
        {
            *tail = *b"...";
            self.len = LINE_MAX;
        }
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            let byte = if byte == b'\n' || byte == b'\r' {
                b' '
            } else {
                byte
            };
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = byte;
                    // `self.len` indexed `buf`, so it is below `LINE_MAX`.
                    self.len = self.len.saturating_add(1);
                }
                None => {
                    self.truncated = true;
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Each level's name padded to five characters and a space, as `{:<5} ` writes it.
const LEVEL_PREFIXES: &str = "ERROR WARN  INFO  DEBUG TRACE ";

/// The start of a line of `level`: what `write!(line, "{:<5} ", level)` writes, without the
/// `log` crate's table of level names (96 bytes of .rodata) and `Level`'s `Display`.
fn level_prefix(level: log::Level) -> &'static str {
    // `Level` counts from 1 (Error) to 5 (Trace).
    let at = (level as usize).saturating_sub(1).saturating_mul(6);
    LEVEL_PREFIXES
        .get(at..at.saturating_add(6))
        .unwrap_or("TRACE ")
}

/// Lines logged before the console is known, newline-separated, up to [`EARLY_MAX`] bytes;
/// lines that do not fit are counted, not kept.
pub struct EarlyLog {
    buf: [u8; EARLY_MAX],
    len: usize,
    dropped: usize,
}

impl Default for EarlyLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EarlyLog {
    /// An empty log.
    pub const fn new() -> Self {
        Self {
            buf: [0; EARLY_MAX],
            len: 0,
            dropped: 0,
        }
    }

    /// Keeps `line` (without its newline), or counts it as dropped if it does not fit.
    pub fn push(&mut self, line: &[u8]) {
        let end = self.len.saturating_add(line.len()).saturating_add(1);
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                if let Some((last, body)) = dst.split_last_mut() {
                    // Never refused: `dst` is `line.len() + 1` bytes (`end` did not saturate,
                    // or `get_mut` would have failed).
                    let _ = line.write_to(body);
                    *last = b'\n';
                }
                self.len = end;
            }
            None => self.dropped = self.dropped.saturating_add(1),
        }
    }

    /// Hands every kept line to `emit` in order, then a line saying how many were dropped (if
    /// any), and empties the log.
    pub fn drain(&mut self, mut emit: impl FnMut(&[u8])) {
        let (len, dropped) = (self.len, self.dropped);
        self.len = 0;
        self.dropped = 0;
        for line in self
            .buf
            .get(..len)
            .unwrap_or_default()
            .split(|&b| b == b'\n')
        {
            if !line.is_empty() {
                emit(line);
            }
        }
        if dropped > 0 {
            let mut line = Line::new();
            let _ = fmt::write(
                &mut line,
                format_args!("WARN  {dropped} early log lines dropped"),
            );
            emit(line.bytes());
        }
    }
}

/// Bytes of recent log lines kept for the shell's `log` (newline-separated, oldest first).
pub const RECENT_BYTES: usize = 2048;

/// The most recent log lines, up to [`RECENT_BYTES`]: a new line pushes out the oldest whole
/// lines it needs room for.
pub struct RecentLog {
    buf: [u8; RECENT_BYTES],
    len: usize,
}

impl Default for RecentLog {
    fn default() -> Self {
        Self::new()
    }
}

impl RecentLog {
    /// No lines.
    pub const fn new() -> Self {
        Self {
            buf: [0; RECENT_BYTES],
            len: 0,
        }
    }

    /// Keeps `line` (without its newline; cut to [`LINE_MAX`]), dropping the oldest lines
    /// until it fits.
    pub fn push(&mut self, line: &[u8]) {
        let line = line.get(..LINE_MAX).unwrap_or(line);
        let need = line.len().saturating_add(1);
        let mut start = 0;
        while self.len.saturating_sub(start) > RECENT_BYTES.saturating_sub(need) {
            // Past the oldest remaining line and its newline (every kept line ends in one).
            let held = self.buf.get(start..self.len).unwrap_or_default();
            start = match held.iter().position(|&b| b == b'\n') {
                Some(at) => start.saturating_add(at).saturating_add(1),
                None => self.len,
            };
        }
        self.buf.copy_within(start..self.len, 0);
        self.len = self.len.saturating_sub(start);
        let end = self.len.saturating_add(need);
        if let Some((last, body)) = self
            .buf
            .get_mut(self.len..end)
            .and_then(<[u8]>::split_last_mut)
        {
            // `body` is `line.len()` bytes: `end` is `self.len + line.len() + 1`.
            body.copy_from_slice(line);
            *last = b'\n';
            self.len = end;
        }
    }

    /// The most recent whole lines that fit in `max` bytes, each ending in a newline.
    pub fn tail(&self, max: usize) -> &[u8] {
        let held = self.buf.get(..self.len).unwrap_or_default();
        let mut from = self.len.saturating_sub(max);
        // Start at a line's beginning: after the newline before `from` (none: the first line).
        if from > 0 {
            from = held
                .get(from.saturating_sub(1)..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
                .map_or(self.len, |at| from.saturating_add(at));
        }
        held.get(from..).unwrap_or_default()
    }
}

/// The partition's recent log lines (what the logger keeps with [`record`]).
pub static RECENT: spin::Mutex<RecentLog> = spin::Mutex::new(RecentLog::new());

/// Keeps `line` in [`RECENT`], unless another context holds it this instant (a logger never
/// waits: the line still goes to the console).
pub fn record(line: &[u8]) {
    if let Some(mut recent) = RECENT.try_lock() {
        recent.push(line);
    }
}

/// Writes `line` with `FFA_CONSOLE_LOG` (64-bit form) through `conduit`: as many calls as the
/// line needs, each as full as it can be, the last one ending in `\n` (a call of its own if
/// the line filled the previous one). Returns the number of calls. The answers (FFA_SUCCESS or
/// an error) change nothing: there is nowhere else to log.
pub fn write_ffa<C: Conduit + ?Sized>(conduit: &mut C, line: &[u8]) -> usize {
    let mut rest = line;
    let mut calls = 0usize;
    loop {
        let mut chars = ConsoleLogChars64::default();
        let taken = chars.push(rest);
        rest = rest.get(taken..).unwrap_or_default();
        let done = rest.is_empty() && chars.push(b"\n") == 1;
        let mut regs = [0u64; 18];
        Interface::ConsoleLog {
            chars: ConsoleLogChars::Chars64(chars),
        }
        .to_regs(ffa::FFA_VERSION, &mut regs);
        let _ = conduit.call(regs);
        calls = calls.saturating_add(1);
        if done {
            return calls;
        }
    }
}

#[cfg(test)]
mod tests;
