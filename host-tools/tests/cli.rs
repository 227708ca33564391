//! The `vmsg` binary: `rng` streams what it reads and refuses absurd sizes instead of
//! aborting in an allocation; `blk` reports the disk, verifies what it writes and refuses
//! reads larger than a request.

use std::process::Command;

fn vmsg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmsg"))
        .args(args)
        .output()
        .expect("run vmsg")
}

#[test]
fn rng_streams_exactly_the_bytes_asked_for() {
    for dialect in ["g3", "g2"] {
        let out = vmsg(&["--dialect", dialect, "rng", "--bytes", "300001", "--raw"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), 300_001, "{dialect}");
    }
    let out = vmsg(&["rng", "--bytes", "100"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "32 bytes of hex per line");
    assert_eq!(lines.iter().map(|l| l.len()).sum::<usize>(), 200);
}

#[test]
fn rng_refuses_absurd_sizes_with_a_clear_error() {
    let out = vmsg(&["rng", "--bytes", "99999999999"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn blk_info_verify_and_limits() {
    for dialect in ["g3", "g2"] {
        let out = vmsg(&["--dialect", dialect, "blk", "info", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["capacity_bytes"], 64 * 1024, "{dialect}");
        assert_eq!(
            info["capacity_bytes"].as_u64(),
            info["capacity_sectors"].as_u64().map(|s| s * 512)
        );
        let out = vmsg(&["--dialect", dialect, "blk", "verify", "--mib", "2"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("2 MiB written and read back") && text.contains(" 0 mismatched"),
            "{text}"
        );
    }
    let out = vmsg(&["blk", "write", "--text", "hello"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "wrote 512 bytes at sector 0"
    );
    // More than one request can carry is refused with a message, not attempted.
    let out = vmsg(&["blk", "read", "--bytes", "1000000"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most"));
}
