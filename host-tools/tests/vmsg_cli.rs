//! `vmsg rng` runs in bounded memory: it streams what it reads and refuses absurd sizes with
//! a clear error instead of aborting in an allocation. `vmsg console` runs shell lines.

use std::{
    io::Read,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

const VMSG: &str = env!("CARGO_BIN_EXE_vmsg");

/// Runs `script` under `sh` and returns (success, stdout length, stderr), killing it after
/// `limit`.
fn run(script: &str, limit: Duration) -> (bool, u64, String) {
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let mut stdout = child.stdout.take().unwrap();
    let counter = thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n as u64,
            }
        }
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("`{script}` still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.success(), counter.join().unwrap(), stderr)
}

#[test]
fn rng_refuses_an_absurd_size_with_a_clear_error() {
    let (ok, out, err) = run(
        &format!("exec {VMSG} rng --raw --bytes 99999999999"),
        Duration::from_secs(60),
    );
    assert!(!ok, "vmsg accepted 99999999999 bytes");
    assert_eq!(out, 0);
    assert!(
        err.contains("1 GiB") && err.contains("99999999999"),
        "stderr: {err}"
    );
}

/// 100 MiB (and an odd tail) read with a 64 MiB address-space limit: only streaming fits.
#[test]
fn rng_streams_more_than_its_memory_limit() {
    let n: u64 = 100 * 1024 * 1024 + 7;
    let (ok, out, err) = run(
        &format!("ulimit -v 65536 && exec {VMSG} rng --raw --bytes {n}"),
        Duration::from_secs(120),
    );
    assert!(ok, "vmsg failed: {err}");
    assert_eq!(out, n);
}

#[test]
fn rng_hex_lines_cover_every_byte() {
    let (ok, out, err) = run(
        &format!("exec {VMSG} rng --bytes 70000"),
        Duration::from_secs(60),
    );
    assert!(ok, "vmsg failed: {err}");
    // 2187 full lines of 32 bytes (65 characters with the newline) and one of 16 bytes.
    assert_eq!(out, 2187 * 65 + 33);
}

#[test]
fn console_runs_shell_lines() {
    let out = Command::new(VMSG)
        .args(["console", "help", "bogus"])
        .output()
        .expect("vmsg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "> help\ncommands: help, version, devices\n> bogus\nunknown command\n"
    );
}
