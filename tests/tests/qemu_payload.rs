//! Boots the normal-world test payload (`make payload`: `out/nwd-payload.bin`) on QEMU `virt`
//! and reads its UART (`-serial stdio`).
//!
//! There is no TF-A and no SPMC here; the point is that the image comes up the way TF-A starts
//! a BL33 (NS-EL2, MMU and caches off, at 0x60000000), finds that nobody answers FF-A, says so,
//! prints its result line and powers the machine off. Three machines:
//!
//! 1. **bare**: `-M virt,virtualization=on -cpu max -m 1G`, no firmware. The CPU starts at EL2
//!    (there is no EL3); `-device loader,file=…,addr=0x60000000,cpu-num=0` puts the raw image
//!    there and sets the PC to it. With `virtualization=on` and no firmware, QEMU's built-in
//!    PSCI takes every `SMC` (conduit SMC): it answers `FFA_VERSION` with SMCCC NOT_SUPPORTED
//!    (-1) and `SYSTEM_OFF` by exiting.
//! 2. **EL3 stand-in**: `-M virt,secure=on,virtualization=on` with `-bios` = a 20-instruction
//!    EL3 program (below, hand-assembled) that plays TF-A's BL31 without an SPMD: it enters
//!    the image at 0x60000000 in NS-EL2h with `ERET` (MMU off, interrupts masked), answers
//!    every SMC with -1, and PSCI `SYSTEM_OFF` with a semihosting exit. (QEMU's PSCI is off
//!    when firmware is given with `secure=on`, so the SMCs do reach it.)
//! 3. **SMC undefined**: the same with SCR_EL3.SMD set, so `SMC` is undefined at EL2 and the
//!    payload's exception vector must turn it into -1; `SYSTEM_OFF` then cannot work, and the
//!    payload must say so and halt.
//!
//! Each boot must print the banner, `no FF-A: <how>`, `no virtio-msg partition answered` and
//! `0 passed, 1 failed` as its one result line, then power off (or, in 3, report that it could
//! not), within [`TIMEOUT`]; QEMU is killed after. A last test feeds the same checks a broken
//! image and requires them to fail. All are skipped (with a message) only when
//! `qemu-system-aarch64` is not installed. 1 GiB of RAM puts 0x60000000 (and the driver memory
//! window after the image) inside DRAM, which starts at 0x40000000.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use vmsg_tests::qemu;

#[allow(dead_code)]
mod layout {
    include!("../../host-tools/payload/src/layout.rs");
}

/// Longest a boot may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// How long the broken image is given (it can only hang).
const BROKEN_TIMEOUT: Duration = Duration::from_secs(3);

/// Start of the payload's first line (`nwd_payload::BANNER`).
const BANNER_START: &str = "nwd-payload ";
/// End of the payload's first line.
const BANNER_END: &str = ": virtio-msg FF-A normal-world test payload";
/// `nwd_payload::flow::NO_FFA`.
const NO_FFA: &str = "no FF-A: ";
/// `nwd_payload::flow::NO_PARTITION`.
const NO_PARTITION: &str = "no virtio-msg partition answered";
/// What the payload prints when PSCI `SYSTEM_OFF` returns (then it halts).
const OFF_FAILED: &str = "INFO PSCI SYSTEM_OFF failed";

/// The EL3 stand-in, loaded as the flash image (`-bios`) at 0: every word is one instruction,
/// assembled from the listing beside it.
const SHIM: [u32; 10] = [
    0x1000_4001, // 0x00 adr  x1, 0x800                 vector table
    0xd51e_c001, // 0x04 msr  vbar_el3, x1
    SCR_PLAIN,   // 0x08 mov  x1, #SCR                  (per scenario)
    0xd51e_1101, // 0x0c msr  scr_el3, x1
    0xd280_7921, // 0x10 mov  x1, #0x3c9                SPSR: EL2h, D A I F masked
    0xd51e_4001, // 0x14 msr  spsr_el3, x1
    0xd2ac_0001, // 0x18 movz x1, #0x6000, lsl #16      ELR = 0x60000000, the payload
    0xd51e_4021, // 0x1c msr  elr_el3, x1
    0xd503_3fdf, // 0x20 isb
    0xd69f_03e0, // 0x24 eret
];
/// Index of the `mov x1, #SCR` instruction.
const SHIM_SCR_INDEX: usize = 2;
/// `mov x1, #0x501`: SCR_EL3.NS (the payload runs non-secure), HCE, RW (EL2 is AArch64).
const SCR_PLAIN: u32 = 0xd280_a021;
/// `mov x1, #0x581`: as above with SMD (bit 7): SMC is undefined below EL3.
const SCR_SMC_DISABLED: u32 = 0xd280_b021;
/// Semihosting SYS_EXIT parameter block (reason ADP_Stopped_ApplicationExit, code 0).
const SHIM_EXIT_BLOCK_OFFSET: usize = 0x28;
const SHIM_EXIT_BLOCK: [u64; 2] = [0x2_0026, 0];
/// The handler for synchronous exceptions from a lower EL (vector base + 0x400): the SMCs.
const SHIM_SMC_HANDLER_OFFSET: usize = 0xc00;
const SHIM_SMC_HANDLER: [u32; 10] = [
    0x52b0_8009, // 0xc00 mov  w9, #0x84000000
    0x7280_0109, // 0xc04 movk w9, #0x8               w9 = PSCI SYSTEM_OFF
    0x6b09_001f, // 0xc08 cmp  w0, w9
    0x5400_0060, // 0xc0c b.eq 0xc18
    0x9280_0000, // 0xc10 mov  x0, #-1                SMCCC NOT_SUPPORTED
    0xd69f_03e0, // 0xc14 eret                        back after the SMC
    0xd280_0300, // 0xc18 mov  x0, #0x18              semihosting SYS_EXIT
    0x10ff_a061, // 0xc1c adr  x1, 0x28               its parameter block
    0xd45e_0000, // 0xc20 hlt  #0xf000                semihosting call: QEMU exits
    0x1400_0000, // 0xc24 b    .
];
const _: () = assert!(layout::LOAD_ADDRESS == 0x6000_0000, "the stand-in's ELR");

/// How QEMU is set up.
#[derive(Clone, Copy)]
enum Machine {
    /// No firmware: QEMU's PSCI answers SMCs.
    Bare,
    /// The EL3 stand-in, with this SCR_EL3 instruction.
    El3(u32),
}

/// A boot and what it must show.
struct Scenario {
    name: &'static str,
    machine: Machine,
    /// How the `no FF-A` line says the missing firmware showed.
    how: &'static str,
    /// Whether `SYSTEM_OFF` works (else the payload reports that it returned).
    powers_off: bool,
}

/// Runs `make payload` once per test binary (incremental, as `make sp` is for
/// `tests/tests/qemu.rs`) and returns the image.
fn payload() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| qemu::make("payload").join("nwd-payload.bin"))
}

/// The EL3 stand-in's flash image with `scr` as its SCR_EL3 instruction.
fn shim(scr: u32) -> Vec<u8> {
    let mut image = vec![0u8; SHIM_SMC_HANDLER_OFFSET + 4 * SHIM_SMC_HANDLER.len()];
    let mut put = |at: usize, bytes: &[u8]| image[at..at + bytes.len()].copy_from_slice(bytes);
    for (i, word) in SHIM.iter().enumerate() {
        let word = if i == SHIM_SCR_INDEX { scr } else { *word };
        put(i * 4, &word.to_le_bytes());
    }
    for (i, word) in SHIM_EXIT_BLOCK.iter().enumerate() {
        put(SHIM_EXIT_BLOCK_OFFSET + i * 8, &word.to_le_bytes());
    }
    for (i, word) in SHIM_SMC_HANDLER.iter().enumerate() {
        put(SHIM_SMC_HANDLER_OFFSET + i * 4, &word.to_le_bytes());
    }
    image
}

/// What a boot showed.
struct Boot {
    /// UART lines (carriage returns removed).
    lines: Vec<String>,
    /// Whether QEMU exited by itself, successfully, before the deadline.
    powered_off: bool,
    /// QEMU's stderr.
    stderr: String,
}

/// Boots `image` at the payload's load address on `machine`; reads the UART until QEMU exits,
/// the payload reports that it cannot power off, or `timeout`.
fn boot(qemu_bin: &Path, machine: Machine, image: &Path, timeout: Duration) -> Boot {
    let dir = std::env::temp_dir().join(format!(
        "vmsg-qemu-payload-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(qemu_bin);
    cmd.args(["-cpu", "max", "-m", "1G"])
        .args(["-nodefaults", "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio"]);
    let loader = format!(
        "loader,file={},addr={:#x},force-raw=on",
        image.display(),
        layout::LOAD_ADDRESS
    );
    match machine {
        Machine::Bare => {
            cmd.args(["-M", "virt,virtualization=on", "-device"])
                .arg(format!("{loader},cpu-num=0"));
        }
        Machine::El3(scr) => {
            let bios = dir.join("el3.bin");
            std::fs::write(&bios, shim(scr)).unwrap();
            cmd.args(["-M", "virt,secure=on,virtualization=on"])
                .args(["-semihosting-config", "enable=on,target=native"])
                .arg("-bios")
                .arg(&bios)
                .args(["-device", &loader]);
        }
    }
    let run = qemu::run(cmd, timeout, |line| line.starts_with(OFF_FAILED));
    let _ = std::fs::remove_dir_all(&dir);
    Boot {
        lines: run.lines,
        powered_off: run.powered_off,
        stderr: run.stderr,
    }
}

/// The checks on a boot of the payload without FF-A (see the module docs).
fn verdict(boot: &Boot, s: &Scenario) -> Result<(), String> {
    let lines = &boot.lines;
    let first = lines.first().ok_or("no UART output")?;
    if !(first.starts_with(BANNER_START) && first.ends_with(BANNER_END)) {
        return Err(format!("first line is not the banner: {first:?}"));
    }
    let mut at = 0;
    let no_ffa = format!("{NO_FFA}{}", s.how);
    for want in [
        no_ffa.as_str(),
        "FAIL ffa: FFA_VERSION not answered: ",
        NO_PARTITION,
        "0 passed, 1 failed",
    ] {
        match lines[at..].iter().position(|l| l.starts_with(want)) {
            Some(i) => at += i + 1,
            None => return Err(format!("no line starting with {want:?} (in order)")),
        }
    }
    if let Some(bad) = lines
        .iter()
        .find(|l| l.starts_with("PANIC") || l.starts_with("log ") || l.starts_with("PASS"))
    {
        return Err(format!("unexpected line {bad:?}"));
    }
    let results = lines
        .iter()
        .filter(|l| l.contains(" passed, ") && l.ends_with(" failed"))
        .count();
    if results != 1 {
        return Err(format!("{results} result lines instead of one"));
    }
    // After the result line: nothing, or (when SYSTEM_OFF cannot work) the report of that.
    let rest = &lines[at..];
    if s.powers_off {
        if !rest.is_empty() {
            return Err(format!("lines after the result line: {rest:?}"));
        }
        if !boot.powered_off {
            return Err("QEMU did not exit (no PSCI SYSTEM_OFF) in time".into());
        }
    } else if !(rest.len() == 1 && rest[0].starts_with(OFF_FAILED)) {
        return Err(format!(
            "after the result line {rest:?}, not the SYSTEM_OFF failure"
        ));
    }
    Ok(())
}

fn run(test: &str, s: &Scenario) {
    let Some(qemu) = qemu::find_or_skip(test) else {
        return;
    };
    let boot = boot(&qemu, s.machine, payload(), TIMEOUT);
    if let Err(e) = verdict(&boot, s) {
        panic!(
            "{}: {e}; UART:\n{}\nqemu stderr:\n{}",
            s.name,
            boot.lines.join("\n"),
            boot.stderr
        );
    }
}

#[test]
fn payload_on_bare_qemu_reports_no_ffa_and_powers_off() {
    run(
        "payload_on_bare_qemu_reports_no_ffa_and_powers_off",
        &Scenario {
            name: "bare",
            machine: Machine::Bare,
            how: "SMCCC NOT_SUPPORTED",
            powers_off: true,
        },
    );
}

#[test]
fn payload_entered_from_el3_reports_no_ffa_and_powers_off() {
    run(
        "payload_entered_from_el3_reports_no_ffa_and_powers_off",
        &Scenario {
            name: "el3-stand-in",
            machine: Machine::El3(SCR_PLAIN),
            how: "SMCCC NOT_SUPPORTED",
            powers_off: true,
        },
    );
}

#[test]
fn payload_survives_an_undefined_smc() {
    run(
        "payload_survives_an_undefined_smc",
        &Scenario {
            name: "smc-undefined",
            machine: Machine::El3(SCR_SMC_DISABLED),
            how: "SMC is undefined at EL2",
            powers_off: false,
        },
    );
}

#[test]
fn a_broken_payload_fails_the_checks() {
    let Some(qemu) = qemu::find_or_skip("a_broken_payload_fails_the_checks") else {
        return;
    };
    // The image with its first instruction replaced by `udf #0`: it never gets anywhere.
    let mut image = std::fs::read(payload()).expect("read the payload");
    image[..4].copy_from_slice(&0u32.to_le_bytes());
    let path = std::env::temp_dir().join(format!(
        "vmsg-qemu-payload-broken-{}.bin",
        std::process::id()
    ));
    std::fs::write(&path, &image).unwrap();
    let boot = boot(&qemu, Machine::Bare, &path, BROKEN_TIMEOUT);
    let _ = std::fs::remove_file(&path);
    let bare = Scenario {
        name: "broken",
        machine: Machine::Bare,
        how: "SMCCC NOT_SUPPORTED",
        powers_off: true,
    };
    assert!(
        verdict(&boot, &bare).is_err(),
        "a broken image passed: {:?}",
        boot.lines
    );
    assert!(boot.lines.is_empty(), "{:?}", boot.lines);
    assert!(!boot.powered_off);
}
