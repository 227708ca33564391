//! The `vmsg` binary: `rng` streams what it reads and refuses absurd sizes instead of
//! aborting in an allocation; `blk` reports the disk, verifies what it writes and refuses
//! reads larger than a request; `--disk` puts the disk in a host file.

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

/// A file of `len` zero bytes in the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, len: usize) -> Self {
        let path = std::env::temp_dir().join(format!("vmsg-cli-{name}-{}.img", std::process::id()));
        std::fs::write(&path, vec![0u8; len]).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn blk_on_a_host_file_writes_into_the_file_and_keeps_it_across_runs() {
    let file = TempFile::new("disk", 4 << 20);
    let disk = file.path();
    for dialect in ["g3", "g2"] {
        let info: serde_json::Value = serde_json::from_str(&ok(&vmsg(&[
            "--dialect",
            dialect,
            "--disk",
            disk,
            "blk",
            "info",
            "--json",
        ])))
        .unwrap();
        assert_eq!(
            info["capacity_bytes"],
            4 << 20,
            "{dialect}: the file's length"
        );
        assert_eq!(info["id"], "vmsg-file-0001");
        let text = format!("written by vmsg over {dialect}");
        let out = ok(&vmsg(&[
            "--dialect",
            dialect,
            "--disk",
            disk,
            "blk",
            "write",
            "--sector",
            "9",
            "--text",
            &text,
        ]));
        assert_eq!(out.trim(), "wrote 512 bytes at sector 9");
        // In the file, at sector 9, padded with zeroes to the sector's end.
        let bytes = file.bytes();
        assert_eq!(bytes.len(), 4 << 20);
        assert_eq!(&bytes[9 * 512..9 * 512 + text.len()], text.as_bytes());
        assert!(bytes[9 * 512 + text.len()..].iter().all(|&b| b == 0));
        assert!(bytes[..9 * 512].iter().all(|&b| b == 0));
        // And a later run (a new world, a new partition) reads them back from the file.
        let out = vmsg(&[
            "--disk",
            disk,
            "blk",
            "read",
            "--sector",
            "9",
            "--bytes",
            &text.len().to_string(),
            "--raw",
        ]);
        assert_eq!(ok(&out), text);
    }
    let out = ok(&vmsg(&["--disk", disk, "blk", "verify", "--mib", "8"]));
    assert!(
        out.contains("8 MiB written and read back") && out.contains(" 0 mismatched"),
        "{out}"
    );
    assert!(out.contains("MiB/s"), "{out}");
    // Without --disk the run has its RAM disk, and the file is left alone.
    let before = file.bytes();
    ok(&vmsg(&["blk", "write", "--text", "ram"]));
    assert_eq!(file.bytes(), before);
}

#[test]
fn blk_on_a_read_only_host_file_refuses_writes() {
    let file = TempFile::new("ro", 64 * 512);
    let info: serde_json::Value = serde_json::from_str(&ok(&vmsg(&[
        "--disk",
        file.path(),
        "--read-only",
        "blk",
        "info",
        "--json",
    ])))
    .unwrap();
    let features = u64::from_str_radix(
        info["features"].as_str().unwrap().trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_ne!(features & (1 << 5), 0, "VIRTIO_BLK_F_RO offered");
    let out = vmsg(&[
        "--disk",
        file.path(),
        "--read-only",
        "blk",
        "write",
        "--text",
        "no",
    ]);
    assert!(!out.status.success());
    assert!(file.bytes().iter().all(|&b| b == 0));
}

#[test]
fn files_that_cannot_be_disks_are_refused_with_the_reason() {
    let odd = TempFile::new("odd", 1000);
    let out = vmsg(&["--disk", odd.path(), "blk", "info"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1000 bytes is not a positive whole number of 512-byte sectors"),
        "{err}"
    );
    let missing = std::env::temp_dir().join("vmsg-cli-no-such-disk.img");
    let out = vmsg(&["--disk", missing.to_str().unwrap(), "blk", "info"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vmsg-cli-no-such-disk.img"));
    assert!(!missing.exists(), "never created");
    // --read-only means nothing without --disk.
    assert!(!vmsg(&["--read-only", "blk", "info"]).status.success());
}
