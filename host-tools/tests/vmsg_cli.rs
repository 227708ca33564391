//! `vmsg rng` runs in bounded memory: it streams what it reads and refuses absurd sizes with
//! a clear error instead of aborting in an allocation. `vmsg console` runs shell lines;
//! `vmsg vsock connect` talks to the echo and the shell, with `--send`, `--json` and stdin.

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
        "> help\ncommands: help, version, devices, stats, log\n> bogus\nunknown command\n"
    );
}

/// `-v` shows the simulated partition's log lines on stderr (none without it); the shell's
/// `stats` and `log` answer over the console and over vsock.
#[test]
fn verbose_shows_the_partition_log_and_the_shell_reports() {
    let out = Command::new(VMSG)
        .args(["-v", "console", "stats", "log"])
        .output()
        .expect("vmsg runs");
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("[sp] INFO  entering the message loop (FFA_MSG_WAIT)"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("> stats\nendpoint: "), "{stdout}");
    assert!(stdout.contains("\ndev 2: "), "{stdout}");
    assert!(
        stdout.contains("> log\n") && stdout.contains("INFO  endpoint 0x1: new bus instance"),
        "{stdout}"
    );
    let quiet = Command::new(VMSG)
        .args(["console", "version"])
        .output()
        .expect("vmsg runs");
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("[sp]"));
    let vsock = Command::new(VMSG)
        .args(["vsock", "connect", "23", "--send", "stats"])
        .output()
        .expect("vmsg runs");
    let text = String::from_utf8(vsock.stdout).unwrap();
    assert!(text.starts_with("> endpoint: "), "{text}");
    assert!(text.contains("\ndev 3: "), "{text}");
}

#[test]
fn vsock_send_prints_the_shell_answer_and_the_echo() {
    let run = |args: &[&str]| {
        let out = Command::new(VMSG).args(args).output().expect("vmsg runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        run(&["vsock", "connect", "23", "--send", "help", "--send", "nope"]),
        "> commands: help, version, devices, stats, log\n> unknown command\n> "
    );
    assert_eq!(
        run(&["--dialect", "g2", "vsock", "connect", "7", "--send", "ping"]),
        "ping\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["vsock", "connect", "7", "--send", "hi", "--json"])).unwrap();
    assert_eq!(json["port"], 7);
    assert_eq!(json["guest_cid"], 3);
    assert_eq!(json["sent"], "hi\n");
    assert_eq!(json["received"], "hi\n");
    // A port nothing listens on: refused, and said so.
    let out = Command::new(VMSG)
        .args(["vsock", "connect", "99", "--send", "x"])
        .output()
        .expect("vmsg runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn vsock_interactive_sends_stdin_lines() {
    let mut child = Command::new(VMSG)
        .args(["vsock", "connect", "23"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("vmsg runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"version\ndevices\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("> vmsg-sp "), "{text}");
    assert!(text.ends_with("3 virtio-vsock (id 19)\n> "), "{text}");
}
