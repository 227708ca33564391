//! The image's logger: every `log` record becomes one whole line ([`crate::console::Line`]) on
//! the console the start-up picked — `FFA_CONSOLE_LOG` with an SPMC, the PL011 without. Lines
//! logged before that are held in an [`EarlyLog`] and flushed once the console is known.

use core::{
    fmt::{self, Write as _},
    ptr::NonNull,
    sync::atomic::{AtomicU8, AtomicUsize, Ordering},
};

use arm_pl011_uart::{PL011Registers, Uart};
use ffa::{Ffa, arch::smc::SmcCalls};
use log::{LevelFilter, Log, Metadata, Record};
use safe_mmio::UniqueMmioPointer;
use spin::Mutex;

use crate::console::{EarlyLog, Line, write_ffa};

const MODE_UNDECIDED: u8 = 0;
const MODE_FFA: u8 = 1;
const MODE_UART: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_UNDECIDED);
static UART_BASE: AtomicUsize = AtomicUsize::new(0);
static UART: Mutex<Option<Uart<'static>>> = Mutex::new(None);
static EARLY: Mutex<EarlyLog> = Mutex::new(EarlyLog::new());
static LOGGER: Logger = Logger;

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
        line.write_record(record.level(), *record.args());
        let bytes = line.bytes();
        crate::console::record(bytes);
        emit(bytes, false);
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

/// Writes one line from a context that may have interrupted the console (panic handler,
/// exception vector): takes no lock that could be held, and picks a console first if none is
/// chosen yet (by asking `FFA_VERSION` itself).
pub fn emergency(args: fmt::Arguments) {
    if MODE.load(Ordering::Acquire) == MODE_UNDECIDED {
        let spmc = Ffa::new(SmcCalls).version(ffa::FFA_VERSION).is_ok();
        super::spmc::note(spmc);
        MODE.store(if spmc { MODE_FFA } else { MODE_UART }, Ordering::Release);
        flush_early(true);
    }
    let mut line = Line::new();
    let _ = line.write_fmt(args);
    emit(line.bytes(), true);
}

fn flush_early(force: bool) {
    if force {
        // SAFETY: only reached from a context that will not return to whatever holds the lock
        // (panic handler, fatal exception); the interrupted holder never touches it again.
        unsafe { EARLY.force_unlock() };
    }
    EARLY.lock().drain(|line| emit(line, force));
}

fn emit(line: &[u8], force: bool) {
    match MODE.load(Ordering::Acquire) {
        MODE_FFA => {
            write_ffa(&mut SmcCalls, line);
        }
        MODE_UART => uart_write(line, force),
        _ => {
            if let Some(mut early) = EARLY.try_lock() {
                early.push(line);
            }
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
