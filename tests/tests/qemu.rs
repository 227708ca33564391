//! Boots the real SP image (`make sp`: `out/sp.bin` in `out/virtio-msg-sp.pkg`) on QEMU and
//! reads its UART.
//!
//! There is no SPMC here; the point is that the image comes up the way Hafnium starts it and
//! then notices that nobody answers FF-A. The machine is `-M virt,secure=on -cpu max`: its
//! secure RAM holds the SP window at 0x0e300000, and with no firmware the CPU starts at EL3.
//! A 22-instruction EL3 stand-in (below, hand-assembled) plays the loader and the monitor:
//!
//! 1. copies the package (with a boot-info page written over its header, as Hafnium writes
//!    one) from normal RAM to 0x0e300000 (QEMU's loader can only write the non-secure address
//!    space, and secure RAM is not in it);
//! 2. enters the image at 0x0e304000 in secure EL1h, MMU and caches off, interrupts masked,
//!    x0 = 0x0e300000 (the boot-info address, `gp-register-num = <0>`);
//! 3. answers every SMC with SMCCC NOT_SUPPORTED (x0 = -1), as EL3 firmware without an SPMD
//!    does. In the second scenario SCR_EL3.SMD is set instead, so SMC is undefined at EL1 (as
//!    with no EL3 at all) and the image's exception vector must cope.
//!
//! Each boot must print, in order, the MMU, heap, boot-info, runtime-tables and self-test lines,
//! then `no SPMC answered FFA_VERSION` and `stopped`, within [`TIMEOUT`]; QEMU is killed after.
//! The test is skipped (with a message) only when `qemu-system-aarch64` is not installed.
//!
//! Two budgets of issue 8 hold: the image's size, and the instructions to its first
//! `FFA_MSG_WAIT`. A last test boots the image against the benchmark's EL3 stand-in (`host-tools/el3-standin`),
//! which answers FF-A like an SPMC: the image takes its SPMC path to its first `FFA_MSG_WAIT`,
//! and the instruction count the benchmark reports equals a trace's.
//!
//! The image and the simulated world start the partition through the same function
//! (`sp::startup::start`): each scenario also runs it on the host, on the simulated world's
//! platform (`vmsg_host::sim::partition::HostPartition`) with the same manifest and a conduit
//! that answers NOT_SUPPORTED, and the start-up lines must be the image's, in the same order.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use std::sync::Mutex;

use ffa::bus::BusConfig;
use sp::{
    scripted::{NoMapper, Scripted},
    startup::StartError,
};
use vmsg_host::{
    bench::boot,
    sim::partition::{HostPartition, PackageHead},
    spkg,
};
use vmsg_tests::{qemu, startup_log};

/// Longest a boot may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Where the stand-in runs (normal RAM; QEMU keeps its DTB at 0x40000000).
const SHIM_ADDR: u64 = 0x4020_0000;
/// Where the package is put for the stand-in to copy (normal RAM).
const STAGING_ADDR: u64 = 0x4030_0000;
/// The SP package's load address (`sp/qemu/src/layout.rs`, the manifests).
const LOAD_ADDR: u64 = 0x0e30_0000;

/// The EL3 stand-in. Every word is one instruction, assembled from the listing beside it.
const SHIM: [u32; 20] = [
    0xd2a8_0601, // 0x00 movz x1, #0x4030, lsl #16      x1 = STAGING_ADDR
    0xd2a1_c602, // 0x04 movz x2, #0x0e30, lsl #16      x2 = LOAD_ADDR
    0x1800_0243, // 0x08 ldr  w3, 0x50                  package length (patched)
    0xf840_8424, // 0x0c ldr  x4, [x1], #8
    0xf800_8444, // 0x10 str  x4, [x2], #8
    0xf100_2063, // 0x14 subs x3, x3, #8
    0x54ff_ffa8, // 0x18 b.hi 0x0c
    0xd503_3f9f, // 0x1c dsb  sy
    0x1000_3f01, // 0x20 adr  x1, 0x800                 vector table
    0xd51e_c001, // 0x24 msr  vbar_el3, x1
    SCR_PLAIN,   // 0x28 mov  x1, #SCR                  (patched per scenario)
    0xd51e_1101, // 0x2c msr  scr_el3, x1
    0xd280_78a1, // 0x30 mov  x1, #0x3c5                SPSR: EL1h, D A I F masked
    0xd51e_4001, // 0x34 msr  spsr_el3, x1
    0xd2a1_c601, // 0x38 movz x1, #0x0e30, lsl #16
    0xf288_0001, // 0x3c movk x1, #0x4000               ELR = 0x0e304000, the image
    0xd51e_4021, // 0x40 msr  elr_el3, x1
    0xd2a1_c600, // 0x44 movz x0, #0x0e30, lsl #16      x0 = boot info
    0xd503_3fdf, // 0x48 isb
    0xd69f_03e0, // 0x4c eret
];
/// Offset of the package-length literal.
const SHIM_LEN_OFFSET: usize = 0x50;
/// Index of the `mov x1, #SCR` instruction.
const SHIM_SCR_INDEX: usize = 10;
/// `mov x1, #0x400`: SCR_EL3.RW (EL1 is AArch64), NS = 0 (secure), SMD = 0.
const SCR_PLAIN: u32 = 0xd280_8001;
/// `mov x1, #0x480`: as above with SMD (bit 7): SMC is undefined below EL3.
const SCR_SMC_DISABLED: u32 = 0xd280_9001;
/// The handler for synchronous exceptions from a lower EL (vector base + 0x400).
const SHIM_SMC_HANDLER_OFFSET: usize = 0xc00;
const SHIM_SMC_HANDLER: [u32; 2] = [
    0x9280_0000, // mov x0, #-1    SMCCC NOT_SUPPORTED
    0xd69f_03e0, // eret           back after the SMC
];

/// Runs `make sp` once per test binary (it is incremental: a no-op when `make test` already
/// ran it) and returns the output directory.
fn build_sp() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| qemu::make("sp"))
}

/// How a scenario sets the machine up.
struct Scenario {
    name: &'static str,
    scr: u32,
    /// Corrupt the boot-info signature.
    bad_boot_info: bool,
}

/// Boots `scenario`; returns the UART lines (up to `stopped`, or all of them on a timeout).
fn boot(qemu: &Path, scenario: &Scenario) -> Vec<String> {
    let out = build_sp();
    let pkg_bytes = std::fs::read(out.join("virtio-msg-sp.pkg")).expect("read the package");
    let image = std::fs::read(out.join("sp.bin")).expect("read sp.bin");
    let dtb = std::fs::read(out.join("virtio-msg-sp.dtb")).expect("read the manifest DTB");
    let pkg = spkg::parse(&pkg_bytes).expect("make sp wrote a valid package");
    assert_eq!(pkg.image, &image[..], "the package holds out/sp.bin");
    assert_eq!(pkg.manifest, &dtb[..], "the package holds the manifest DTB");

    // What Hafnium leaves at the load address: the package with boot info over its header.
    let mut loaded = spkg::loaded(&pkg_bytes, LOAD_ADDR).expect("the package loads");
    if scenario.bad_boot_info {
        loaded[0] ^= 0xff;
    }

    let mut shim = vec![0u8; 0x1000];
    for (i, word) in SHIM.iter().enumerate() {
        let word = if i == SHIM_SCR_INDEX {
            scenario.scr
        } else {
            *word
        };
        shim[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    let len = u32::try_from(loaded.len()).unwrap();
    shim[SHIM_LEN_OFFSET..SHIM_LEN_OFFSET + 4].copy_from_slice(&len.to_le_bytes());
    for (i, word) in SHIM_SMC_HANDLER.iter().enumerate() {
        let at = SHIM_SMC_HANDLER_OFFSET + i * 4;
        shim[at..at + 4].copy_from_slice(&word.to_le_bytes());
    }

    let dir = std::env::temp_dir().join(format!(
        "vmsg-qemu-{}-{}",
        std::process::id(),
        scenario.name
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let loaded_path = dir.join("loaded.bin");
    let shim_path = dir.join("shim.bin");
    std::fs::write(&loaded_path, &loaded).unwrap();
    std::fs::write(&shim_path, &shim).unwrap();

    let mut cmd = Command::new(qemu);
    cmd.args(["-M", "virt,secure=on", "-cpu", "max", "-m", "256"])
        .args(["-nodefaults", "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio"])
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={STAGING_ADDR:#x},force-raw=on",
            loaded_path.display()
        ))
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={SHIM_ADDR:#x},cpu-num=0,force-raw=on",
            shim_path.display()
        ));
    let qemu::Run { lines, stderr, .. } = qemu::run(cmd, TIMEOUT, |line| line.ends_with("stopped"));
    let _ = std::fs::remove_dir_all(&dir);
    if lines.is_empty() {
        panic!(
            "{}: no UART output in {TIMEOUT:?}; qemu stderr:\n{}",
            scenario.name, stderr
        );
    }
    lines
}

/// Asserts that `lines` contain lines starting with `expected`, in this order (other lines may
/// come between), and that nothing reports a panic or an unexpected error.
fn assert_lines(name: &str, lines: &[String], expected: &[&str]) {
    let transcript = lines.join("\n");
    let mut at = 0;
    for want in expected {
        match lines[at..].iter().position(|l| l.starts_with(want)) {
            Some(i) => at += i + 1,
            None => panic!("{name}: no line starting with {want:?} (in order) in:\n{transcript}"),
        }
    }
    for line in lines {
        assert!(
            !line.contains("panic") && !line.contains("exception"),
            "{name}: {line}\n{transcript}"
        );
        assert!(
            !line.starts_with("ERROR") || line.starts_with("ERROR no SPMC answered FFA_VERSION"),
            "{name}: unexpected error line {line:?} in:\n{transcript}"
        );
    }
    assert_eq!(
        lines.last().map(String::as_str),
        Some("INFO  stopped"),
        "{name}: last line"
    );
}

/// The lines every boot prints up to the self-test.
fn boot_lines(boot_info: &'static str) -> Vec<&'static str> {
    vec![
        "INFO  mmu: on (initial table, caches on); image 0xe304000..",
        boot_info,
        "INFO  mmu: runtime tables active (text RX, rodata RO, data/stack/heap RW XN",
        "INFO  selftest: ok (heap ",
    ]
}

#[test]
fn sp_boots_and_reports_no_spmc_when_el3_answers_not_supported() {
    let Some(qemu) =
        qemu::find_or_skip("sp_boots_and_reports_no_spmc_when_el3_answers_not_supported")
    else {
        return;
    };
    let s = Scenario {
        name: "smc-not-supported",
        scr: SCR_PLAIN,
        bad_boot_info: false,
    };
    let lines = boot(&qemu, &s);
    let mut expected = boot_lines("INFO  boot info: v1.2, manifest ");
    expected.push("ERROR no SPMC answered FFA_VERSION (SMCCC NOT_SUPPORTED");
    expected.push("INFO  stopped");
    assert_lines(s.name, &lines, &expected);
    assert_same_startup(s.name, &lines, &host_startup(false));
    let info = lines
        .iter()
        .find(|l| l.starts_with("INFO  boot info"))
        .unwrap();
    assert!(
        info.ends_with("ffa-version 0x10002, rx_tx-info yes"),
        "manifest read through the boot info: {info}"
    );
}

#[test]
fn sp_boots_and_reports_no_spmc_when_smc_is_undefined() {
    let Some(qemu) = qemu::find_or_skip("sp_boots_and_reports_no_spmc_when_smc_is_undefined")
    else {
        return;
    };
    let s = Scenario {
        name: "smc-undefined",
        scr: SCR_SMC_DISABLED,
        bad_boot_info: false,
    };
    let lines = boot(&qemu, &s);
    let mut expected = boot_lines("INFO  boot info: v1.2, manifest ");
    expected.push("ERROR no SPMC answered FFA_VERSION (SMC is undefined: no EL3");
    expected.push("INFO  stopped");
    assert_lines(s.name, &lines, &expected);
}

#[test]
fn sp_without_valid_boot_info_falls_back_to_its_own_buffers() {
    let Some(qemu) = qemu::find_or_skip("sp_without_valid_boot_info_falls_back_to_its_own_buffers")
    else {
        return;
    };
    let s = Scenario {
        name: "bad-boot-info",
        scr: SCR_PLAIN,
        bad_boot_info: true,
    };
    let lines = boot(&qemu, &s);
    let mut expected = boot_lines(
        "WARN  boot info: no boot-info signature at 0xe300000; using built-in RX/TX buffers",
    );
    expected.push("ERROR no SPMC answered FFA_VERSION (SMCCC NOT_SUPPORTED");
    expected.push("INFO  stopped");
    assert_lines(s.name, &lines, &expected);
    assert_same_startup(s.name, &lines, &host_startup(true));
}

/// Most instructions the image may execute from its entry to its first `FFA_MSG_WAIT` (issue
/// 8: the boot cut to what proves something).
const BOOT_BUDGET: u64 = 200_000;
/// Largest SP image (`out/sp.bin`, all four devices) issue 8 allows.
const IMAGE_BUDGET: u64 = 128 * 1024;

/// The image (`make sp`) fits [`IMAGE_BUDGET`]. (`vmsg bench` prints its size.)
#[test]
fn the_image_fits_its_budget() {
    let bytes = std::fs::metadata(build_sp().join("sp.bin"))
        .expect("out/sp.bin")
        .len();
    assert!(
        bytes <= IMAGE_BUDGET,
        "out/sp.bin is {bytes} bytes, over the budget of {IMAGE_BUDGET}"
    );
}

/// The benchmark's boot count (`vmsg bench`, `vmsg_host::bench::boot`): against the EL3
/// stand-in the image takes the path it takes under an SPMC (FF-A 1.2, the console over
/// `FFA_CONSOLE_LOG`, its id, the message loop) and reaches its first `FFA_MSG_WAIT` within
/// [`BOOT_BUDGET`]; and the count is exact: a trace of every instruction QEMU executes finds
/// as many in the partition.
#[test]
fn the_boot_count_is_exact_and_within_budget() {
    let Some(qemu) = qemu::find_or_skip("the_boot_count_is_exact_and_within_budget") else {
        return;
    };
    let out = build_sp();
    qemu::make("standin");
    let package = std::fs::read(out.join("virtio-msg-sp.pkg")).expect("read the package");
    let standin = std::fs::read(out.join("el3-standin.bin")).expect("read the stand-in");
    let count = boot::count(&qemu, &package, &standin).expect("a boot count");
    let transcript = count.lines.join("\n");
    let mut at = 0;
    for want in [
        "INFO  boot info: v1.2, manifest ",
        "INFO  ffa: SPMC speaks FF-A 1.2, using 1.2",
        "INFO  ffa: RX/TX from the manifest (rx 0xe500000, tx 0xe501000, 4096 bytes)",
        "INFO  partition 0x8001 initialised; entropy: RNDR",
        "INFO  entering the message loop (FFA_MSG_WAIT)",
        boot::REPORT,
    ] {
        match count.lines[at..].iter().position(|l| l.starts_with(want)) {
            Some(i) => at += i + 1,
            None => panic!("no line starting with {want:?} (in order) in:\n{transcript}"),
        }
    }
    assert!(
        !transcript.contains("ERROR") && !transcript.contains("WARN"),
        "{transcript}"
    );
    let log = std::env::temp_dir().join(format!("vmsg-boot-trace-{}.log", std::process::id()));
    let traced = boot::traced(&qemu, &package, &standin, &log);
    let _ = std::fs::remove_file(&log);
    assert_eq!(
        traced,
        Ok(count.instructions),
        "the traced boot counts differently"
    );
    assert!(
        count.instructions <= BOOT_BUDGET,
        "{} instructions to the first FFA_MSG_WAIT, over the budget of {BOOT_BUDGET}",
        count.instructions
    );
}

/// Runs the start-up on the host as the simulated world does, with the image's manifest and
/// no SPMC behind the conduit; returns its log lines.
fn host_startup(bad_boot_info: bool) -> Vec<String> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    startup_log::install();
    let dtb = std::fs::read(build_sp().join("virtio-msg-sp.dtb")).expect("read the manifest DTB");
    let mut head = PackageHead::new(&dtb).expect("the manifest fits the package head");
    if bad_boot_info {
        head.bytes_mut()[0] ^= 0xff;
    }
    let conduit = Scripted::not_supported();
    let mut platform = HostPartition::new(conduit.clone(), NoMapper, head);
    let _ = startup_log::take();
    assert_eq!(
        sp::startup::start(&mut platform, BusConfig::default()),
        StartError::NoSpmc
    );
    assert_eq!(
        conduit.function_ids(),
        [0x8400_0063],
        "FFA_VERSION, and nothing else"
    );
    startup_log::take()
}

/// The image's start-up lines (its own platform's lines left out: MMU, heap, self-test, the
/// final `stopped`) must be the host's, in the same order, addresses aside.
fn assert_same_startup(name: &str, image: &[String], host: &[String]) {
    const PLATFORM_OWN: [&str; 3] = ["INFO  mmu: ", "INFO  selftest: ", "INFO  stopped"];
    let image_startup: Vec<String> = image
        .iter()
        .filter(|l| !PLATFORM_OWN.iter().any(|p| l.starts_with(p)))
        .map(|l| startup_log::without_addresses(l))
        .collect();
    let host: Vec<String> = host
        .iter()
        .map(|l| startup_log::without_addresses(l))
        .collect();
    assert!(host.len() >= 2, "{name}: host start-up logged {host:?}");
    assert_eq!(
        image_startup, host,
        "{name}: the image's start-up lines differ from the simulated world's"
    );
}
