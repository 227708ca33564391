//! The simulated partition's log: what the image's logger does on its console, done in this
//! process. Every record of the partition's crates (`sp`, `ffa`, `virtio_msg`) becomes one line
//! `{level:<5} {message}`, kept in the partition's recent lines (`sp::console::RECENT`, what its
//! shell's `log` answers) and, when asked for (`vmsg -v`), written to stderr as `[sp] line`.
//! The recent lines are the process's: every simulated partition in it logs into them.

use std::{
    io::Write as _,
    sync::atomic::{AtomicBool, Ordering},
};

use log::{LevelFilter, Log, Metadata, Record};

/// Targets (module path prefixes) that are the partition's.
const PARTITION: [&str; 3] = ["sp", "ffa", "virtio_msg"];

static PRINT: AtomicBool = AtomicBool::new(false);
/// This logger is the process's.
static OURS: AtomicBool = AtomicBool::new(false);
static LOGGER: PartitionLog = PartitionLog;

struct PartitionLog;

impl Log for PartitionLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        let target = metadata.target();
        PARTITION.iter().any(|p| {
            target
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // The line the image would print (`sp::console::Line`: one line, cut at its length).
        let mut line = sp::console::Line::new();
        line.write_record(record.level(), *record.args());
        let line = line.bytes();
        sp::console::record(line);
        if PRINT.load(Ordering::Relaxed) {
            let mut err = std::io::stderr().lock();
            let _ = err
                .write_all(b"[sp] ")
                .and_then(|()| err.write_all(line))
                .and_then(|()| err.write_all(b"\n"));
        }
    }

    fn flush(&self) {}
}

/// Installs the partition's logger at `level`, unless the process has another logger; `print`:
/// its lines go to stderr too. Returns whether this logger is the process's (a second call
/// changes only the level and `print`).
pub fn install(level: LevelFilter, print: bool) -> bool {
    PRINT.store(print, Ordering::Relaxed);
    if log::set_logger(&LOGGER).is_ok() {
        OURS.store(true, Ordering::Relaxed);
    }
    let ours = OURS.load(Ordering::Relaxed);
    if ours {
        log::set_max_level(level);
    }
    ours
}
