//! Helpers shared by the cross-crate integration tests in `tests/`.
//!
//! [`qemu`]: finding QEMU, building the aarch64 images with `make`, and booting one while
//! reading its UART with a deadline. [`startup_log`]: the partition's start-up lines as the
//! image's console prints them, from the host. [`module_tree`]: the check that a crate's files
//! import each other as a tree. [`drive`]: driving the partition by hand in the simulated
//! world.

pub mod drive;
pub mod module_tree;

pub mod qemu {
    //! Boots the project's aarch64 images on `qemu-system-aarch64` and reads their UART.

    use std::{path::PathBuf, process::Command, time::Duration};

    pub use vmsg_host::qemu::{Run, find};

    /// The repository root.
    pub fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .canonicalize()
            .expect("repository root")
    }

    /// Skips (returns `None`, saying so) only when QEMU is not installed.
    pub fn find_or_skip(test: &str) -> Option<PathBuf> {
        let qemu = find();
        if qemu.is_none() {
            eprintln!(
                "SKIPPED {test}: qemu-system-aarch64 is not installed (Debian: qemu-system-arm; \
                 .ci/run installs it)"
            );
        }
        qemu
    }

    /// Runs `make <target>` at the repository root with its output in `out/` (incremental: a
    /// no-op when `make test` already built it); returns the output directory.
    pub fn make(target: &str) -> PathBuf {
        let root = root();
        let out = root.join("out");
        // `CARGO=cargo`: the rustup proxy on PATH (it honours rust-toolchain.toml), not the
        // `CARGO` path cargo exports to tests.
        let status = Command::new("make")
            .arg("-C")
            .arg(&root)
            .arg(target)
            .arg(format!("OUT={}", out.display()))
            .arg("CARGO=cargo")
            .status()
            .expect("run make (is it installed?)");
        assert!(status.success(), "`make {target}` failed: {status}");
        out
    }

    /// Starts `cmd` (a QEMU command line whose first serial port is stdio), collects UART
    /// lines until `last(line)` says a line is the last one, QEMU exits, or `timeout` passes;
    /// then kills QEMU ([`vmsg_host::qemu::run`], which must be able to start it).
    pub fn run(cmd: Command, timeout: Duration, last: impl Fn(&str) -> bool) -> Run {
        vmsg_host::qemu::run(cmd, timeout, last).expect("start qemu-system-aarch64")
    }
}

pub mod startup_log {
    //! Captures the log lines of `sp::startup` (from any thread), formatted as the image's
    //! console formats a record (`{level:<5} {message}`), so that a host run of the start-up
    //! can be compared line by line with what the image printed.

    use std::sync::{Mutex, Once, PoisonError};

    use log::{LevelFilter, Log, Metadata, Record};

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static INSTALL: Once = Once::new();

    struct Capture;

    impl Log for Capture {
        fn enabled(&self, metadata: &Metadata) -> bool {
            metadata.target() == "sp::startup" && metadata.level() <= log::Level::Info
        }

        fn log(&self, record: &Record) {
            if self.enabled(record.metadata()) {
                let line = format!("{:<5} {}", record.level(), record.args());
                LINES
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line.replace(['\n', '\r'], " "));
            }
        }

        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;

    /// Installs the capturing logger (once per test binary; it must be the binary's logger).
    pub fn install() {
        INSTALL.call_once(|| {
            log::set_logger(&CAPTURE).expect("no other logger in this test binary");
            log::set_max_level(LevelFilter::Info);
        });
    }

    /// Takes the lines captured so far.
    pub fn take() -> Vec<String> {
        std::mem::take(&mut *LINES.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `line` with every hexadecimal number (`0x…`) replaced by `0x_`: addresses differ
    /// between the image and a host run, the words around them must not.
    pub fn without_addresses(line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(at) = rest.find("0x") {
            out.push_str(&rest[..at]);
            out.push_str("0x_");
            let digits = rest[at + 2..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(rest.len() - at - 2);
            rest = &rest[at + 2 + digits..];
        }
        out.push_str(rest);
        out
    }
}
