//! Logging: every `log` record becomes one whole line on the console.
//!
//! The console is chosen by the answer to `FFA_VERSION` (the first FF-A call, which must come
//! before any other, `FFA_CONSOLE_LOG` included): with an SPMC, lines go out through
//! `FFA_CONSOLE_LOG` (64-bit form, up to 128 characters per call, the last call ending in `\n`;
//! Hafnium prints a line per newline, prefixed with the partition id); with no SPMC, to the
//! PL011. Lines logged before that are kept in a small buffer and flushed once the console is
//! known.

use core::{
    fmt::{self, Write as _},
    ptr::NonNull,
    sync::atomic::{AtomicU8, AtomicUsize, Ordering},
};

use arm_pl011_uart::{PL011Registers, Uart};
use ffa::arm_ffa::{
    Interface, Version,
    interface_args::{ConsoleLogChars, ConsoleLogChars64},
};
use log::{LevelFilter, Log, Metadata, Record};
use safe_mmio::UniqueMmioPointer;
use spin::Mutex;

use super::conduit::smc;

/// Longest line kept; longer ones are cut and end in `...`.
const LINE_MAX: usize = 256;
/// Bytes of log kept before the console is chosen.
const EARLY_MAX: usize = 4096;

const MODE_UNDECIDED: u8 = 0;
const MODE_FFA: u8 = 1;
const MODE_UART: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_UNDECIDED);
static UART_BASE: AtomicUsize = AtomicUsize::new(0);
static UART: Mutex<Option<Uart<'static>>> = Mutex::new(None);
static EARLY: Mutex<EarlyLog> = Mutex::new(EarlyLog {
    buf: [0; EARLY_MAX],
    len: 0,
    dropped: 0,
});
static LOGGER: Logger = Logger;

/// One line being formatted.
struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
    truncated: bool,
}

impl Line {
    const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
            truncated: false,
        }
    }

    /// The line, with `...` in place of its end if it was cut.
    fn bytes(&mut self) -> &[u8] {
        if self.truncated
            && let Some(tail) = self.buf.get_mut(LINE_MAX - 3..)
        {
            tail.copy_from_slice(b"...");
            self.len = LINE_MAX;
        }
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            // One line per record: embedded newlines would split it on the SPMC's console.
            let byte = if byte == b'\n' || byte == b'\r' {
                b' '
            } else {
                byte
            };
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = byte;
                    self.len += 1;
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

/// Lines logged before the console is known.
struct EarlyLog {
    buf: [u8; EARLY_MAX],
    len: usize,
    dropped: usize,
}

impl EarlyLog {
    fn push(&mut self, line: &[u8]) {
        let end = self.len.saturating_add(line.len()).saturating_add(1);
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                if let Some((last, body)) = dst.split_last_mut() {
                    body.copy_from_slice(line);
                    *last = b'\n';
                }
                self.len = end;
            }
            None => self.dropped = self.dropped.saturating_add(1),
        }
    }
}

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = Line::new();
        let _ = write!(line, "{:<5} {}", record.level(), record.args());
        emit(line.bytes(), false);
    }

    fn flush(&self) {}
}

/// Installs the logger; `uart_base` is the PL011 used when no SPMC answers (it must be mapped
/// as device memory by the time the console switches to it).
pub fn init(uart_base: usize) {
    UART_BASE.store(uart_base, Ordering::Relaxed);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

/// Sends lines to `FFA_CONSOLE_LOG` from now on (an SPMC answered `FFA_VERSION`), starting with
/// those logged so far.
pub fn use_ffa() {
    MODE.store(MODE_FFA, Ordering::Release);
    flush_early(false);
}

/// Sends lines to the PL011 from now on (no SPMC), starting with those logged so far.
pub fn use_uart() {
    MODE.store(MODE_UART, Ordering::Release);
    flush_early(false);
}

/// Whether lines currently go to `FFA_CONSOLE_LOG`.
pub fn is_ffa() -> bool {
    MODE.load(Ordering::Acquire) == MODE_FFA
}

/// Writes one line from a context that may have interrupted the console (panic handler,
/// exception vector): takes no lock that could be held, and picks a console first if none is
/// chosen yet (by asking `FFA_VERSION` itself).
pub fn emergency(args: fmt::Arguments) {
    if MODE.load(Ordering::Acquire) == MODE_UNDECIDED {
        let answer = probe_ffa_version();
        super::note_spmc(answer.is_some());
        MODE.store(
            if answer.is_some() {
                MODE_FFA
            } else {
                MODE_UART
            },
            Ordering::Release,
        );
        flush_early(true);
    }
    let mut line = Line::new();
    let _ = line.write_fmt(args);
    emit(line.bytes(), true);
}

/// `FFA_VERSION(1.2)` issued directly: the callee's version, or `None` if nothing answered
/// with one (SMCCC NOT_SUPPORTED, or the SMC was undefined).
pub(crate) fn probe_ffa_version() -> Option<Version> {
    let mut regs = [0u64; 18];
    Interface::Version {
        input_version: ffa::FFA_VERSION,
        flags: ffa::arm_ffa::interface_args::VersionFlags {
            query_type: ffa::arm_ffa::interface_args::VersionQueryType::Negotiate,
        },
    }
    .to_regs(ffa::FFA_VERSION, &mut regs);
    let answer = super::conduit::low32(smc(regs)[0]);
    match ffa::arm_ffa::VersionOut::try_from(answer) {
        Ok(ffa::arm_ffa::VersionOut::Version(v)) => Some(v),
        _ => None,
    }
}

fn flush_early(force: bool) {
    let mut early = if force {
        // SAFETY: only reached from a context that will not return to whatever holds the lock
        // (panic handler, fatal exception); the interrupted holder never touches it again.
        unsafe { EARLY.force_unlock() };
        EARLY.lock()
    } else {
        EARLY.lock()
    };
    let len = early.len;
    let dropped = early.dropped;
    early.len = 0;
    early.dropped = 0;
    for line in early
        .buf
        .get(..len)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
    {
        if !line.is_empty() {
            emit(line, force);
        }
    }
    if dropped > 0 {
        let mut line = Line::new();
        let _ = write!(line, "WARN  {dropped} early log lines dropped");
        emit(line.bytes(), force);
    }
}

fn emit(line: &[u8], force: bool) {
    match MODE.load(Ordering::Acquire) {
        MODE_FFA => ffa_console_log(line),
        MODE_UART => uart_write(line, force),
        _ => {
            if let Some(mut early) = EARLY.try_lock() {
                early.push(line);
            }
        }
    }
}

/// `FFA_CONSOLE_LOG` (64-bit): the line in as many calls as needed, the last ending in `\n`.
fn ffa_console_log(line: &[u8]) {
    let mut rest = line;
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
        // The answer (FFA_SUCCESS or an error) changes nothing: there is nowhere else to log.
        let _ = smc(regs);
        if done {
            break;
        }
    }
}

fn uart_write(line: &[u8], force: bool) {
    if force {
        // SAFETY: as in `flush_early`: the interrupted holder never runs again.
        unsafe { UART.force_unlock() };
    }
    let mut uart = UART.lock();
    if uart.is_none() {
        let base = UART_BASE.load(Ordering::Relaxed);
        let Some(regs) = NonNull::new(core::ptr::with_exposed_provenance_mut::<PL011Registers>(
            base,
        )) else {
            return;
        };
        // SAFETY: `init`'s caller gave the base of a PL011 that the runtime maps as device
        // memory and that nothing else drives; this is the only pointer made to it.
        *uart = Some(Uart::new(unsafe { UniqueMmioPointer::new(regs) }));
    }
    if let Some(uart) = uart.as_mut() {
        for &byte in line.iter().chain(b"\r\n") {
            while uart.is_tx_fifo_full() {}
            uart.write_word(byte);
        }
    }
}
