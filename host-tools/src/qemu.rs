//! Running `qemu-system-aarch64` and reading the UART of the machine it boots (`-serial
//! stdio`): the benchmark's boot count ([`crate::bench::boot`]) and the QEMU tests use it.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// `qemu-system-aarch64` on `PATH`, if installed.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("qemu-system-aarch64"))
        .find(|p| p.is_file())
}

/// What a boot printed and how QEMU ended.
pub struct Run {
    /// UART lines (carriage returns removed).
    pub lines: Vec<String>,
    /// QEMU closed its output and exited with success before the deadline (the guest
    /// powered off).
    pub powered_off: bool,
    /// QEMU's standard error.
    pub stderr: String,
}

/// Starts `cmd` (a QEMU command line whose first serial port is stdio), collects UART
/// lines until `last(line)` says a line is the last one, QEMU exits, or `timeout` passes;
/// then kills QEMU. `Err` if QEMU cannot be started.
pub fn run(
    mut cmd: Command,
    timeout: Duration,
    last: impl Fn(&str) -> bool,
) -> std::io::Result<Run> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (tx, rx) = mpsc::channel();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
        // Dropping `tx` tells the reader that QEMU closed its stdout (it is exiting).
    });
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    let mut eof = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                let stop = last(&line);
                lines.push(line);
                if stop {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                eof = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    let mut powered_off = false;
    while eof && Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            powered_off = status.success();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let output = child.wait_with_output()?;
    Ok(Run {
        lines,
        powered_off,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
