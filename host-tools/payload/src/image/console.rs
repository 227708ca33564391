//! The console: UART0 (PL011 at 0x0900_0000), shared with TF-A, which leaves it configured.
//! [`Console`] writes text (`\n` becomes `\r\n`); `log` records go out as `log <level>: …`
//! lines.

use core::{
    fmt::{self, Write},
    ptr::NonNull,
};

use arm_pl011_uart::{PL011Registers, Uart};
use log::{LevelFilter, Log, Metadata, Record};
use safe_mmio::UniqueMmioPointer;
use spin::Mutex;

static UART: Mutex<Option<Uart<'static>>> = Mutex::new(None);
static LOGGER: Logger = Logger;

/// Creates the UART driver and installs the logger (warnings and errors only: the driver
/// library logs its details at debug level).
pub fn init() {
    let mut uart = UART.lock();
    if uart.is_none() {
        let base = usize::try_from(nwd_payload::UART0_BASE).unwrap_or(0);
        if let Some(regs) = NonNull::new(core::ptr::with_exposed_provenance_mut::<PL011Registers>(
            base,
        )) {
            // SAFETY: UART0 is a PL011 at this address on QEMU `virt`, mapped as device memory
            // by the page table; this is the only pointer made to it.
            *uart = Some(Uart::new(unsafe { UniqueMmioPointer::new(regs) }));
        }
    }
    drop(uart);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Warn);
    }
}

fn put(uart: &mut Uart<'static>, s: &str) {
    for &byte in s.as_bytes() {
        if byte == b'\n' {
            while uart.is_tx_fifo_full() {}
            uart.write_word(b'\r');
        }
        while uart.is_tx_fifo_full() {}
        uart.write_word(byte);
    }
}

/// Text output on UART0.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(uart) = UART.lock().as_mut() {
            put(uart, s);
        }
        Ok(())
    }
}

/// Writes one line from a context that may have interrupted the console (panic, exception):
/// takes the UART even if its lock is held.
pub fn emergency(args: fmt::Arguments) {
    // SAFETY: only reached from a context that will not return to whatever holds the lock
    // (panic handler, fatal exception, the end of the run); the interrupted holder never writes
    // again.
    unsafe { UART.force_unlock() };
    let _ = writeln!(Console, "{args}");
}

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(Console, "log {}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}
