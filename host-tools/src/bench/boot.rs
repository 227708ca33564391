//! The boot count: how many instructions the SP image executes from its first instruction to
//! its first `FFA_MSG_WAIT`, on QEMU `virt` with `-icount shift=0`, against the EL3 stand-in
//! (`host-tools/el3-standin`, built by `make bench` as `out/el3-standin.bin`).
//!
//! The stand-in loads the package as Hafnium leaves it (the boot-info blob over its header,
//! [`spkg::loaded`]) at the manifest's `load-address`, enters it at `entrypoint-offset` in
//! secure EL1, answers the FF-A calls of the start-up as an SPMC would (so the partition takes
//! its real path: `FFA_VERSION`, the console over `FFA_CONSOLE_LOG`, `FFA_ID_GET`, the entropy
//! source, the message loop) and reports at the first `FFA_MSG_WAIT`. What is counted: every
//! instruction executed at S-EL1 by the partition, its first and the `SMC` of that
//! `FFA_MSG_WAIT` included, the stand-in's own instructions (loading, answering, printing the
//! console lines) taken out exactly (see the stand-in's docs). Exact and repeatable for one
//! image (QEMU does not model caches or timing); [`traced`] counts the same boot from a QEMU
//! trace of every instruction, and `tests/tests/qemu.rs` requires the two to agree.

use std::{
    path::Path,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use dtoolkit::{Node, Property, fdt::Fdt};
pub use el3_standin::REPORT;
use el3_standin::{FAILURE, MAX_PACKAGE, PARAMS_ADDR, STAGING_ADDR, STANDIN_ADDR};

use crate::{qemu, spkg};

/// Longest a boot may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The rate of the generic counter at which it counts instructions one for one.
const COUNTER_HZ: u64 = 1_000_000_000;

/// What one boot counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootCount {
    /// Instructions the partition executed, its first to the `SMC` of its first
    /// `FFA_MSG_WAIT`.
    pub instructions: u64,
    /// `SMC`s it made before that one (FFA_VERSION, FFA_ID_GET, console lines, ...).
    pub smcs: u64,
    /// Everything the UART showed: the partition's console lines, then the stand-in's report.
    pub lines: Vec<String>,
}

/// Boots `package` (an SPKG file's bytes) on `qemu` against `standin` (the raw stand-in) and
/// counts; `Err` says why there is no count.
pub fn count(qemu: &Path, package: &[u8], standin: &[u8]) -> Result<BootCount, String> {
    let run = boot(qemu, package, standin, &["-icount", "shift=0"])?;
    let Some(report) = run.lines.iter().find(|l| l.starts_with(REPORT)) else {
        let tail = run.lines.iter().rev().take(5).rev().cloned();
        return Err(format!(
            "no report from the stand-in within {TIMEOUT:?}; last lines: {:?}; qemu: {}",
            tail.collect::<Vec<_>>(),
            run.stderr.trim()
        ));
    };
    let (instructions, smcs, hz) = parse_report(report).ok_or(format!("report: {report}"))?;
    if hz != COUNTER_HZ {
        return Err(format!(
            "the counter runs at {hz} Hz, not {COUNTER_HZ}: it does not count instructions"
        ));
    }
    Ok(BootCount {
        instructions,
        smcs,
        lines: run.lines,
    })
}

/// The cross-check of [`count`]: the same boot without `-icount`, QEMU tracing every
/// instruction it executes (`-accel tcg,one-insn-per-tb=on -d exec,nochain`) into `log`; the
/// number of traced instructions outside the stand-in's page, up to its report. (With
/// `-icount` QEMU executes an instruction that reads a timer or `RNDR` twice when it is not
/// the last of its block, and traces both; without it, every instruction once.)
pub fn traced(qemu: &Path, package: &[u8], standin: &[u8], log: &Path) -> Result<u64, String> {
    let log_arg = log.display().to_string();
    let args = [
        "-accel",
        "tcg,one-insn-per-tb=on",
        "-d",
        "exec,nochain",
        "-D",
        log_arg.as_str(),
    ];
    let run = boot(qemu, package, standin, &args)?;
    if !run.powered_off || !run.lines.iter().any(|l| l.starts_with(REPORT)) {
        return Err(format!(
            "the traced boot did not end in a report: {:?}",
            run.lines
        ));
    }
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let standin_page = STANDIN_ADDR..STANDIN_ADDR + 0x1000;
    // `Trace 0: 0x7f.. [0030000c/000000000e304000/00000471/ff020201] `: the PC is the second
    // field in brackets.
    let partition = text
        .lines()
        .filter_map(|l| l.strip_prefix("Trace "))
        .filter_map(|l| l.split_once('[')?.1.split('/').nth(1))
        .filter_map(|pc| u64::from_str_radix(pc, 16).ok())
        .filter(|pc| !standin_page.contains(pc))
        .count();
    Ok(u64::try_from(partition).unwrap_or(u64::MAX))
}

/// Boots `package` against `standin` with `args` added to QEMU's command line; the UART lines
/// until QEMU ends (the stand-in ends it) or [`TIMEOUT`].
fn boot(qemu: &Path, package: &[u8], standin: &[u8], args: &[&str]) -> Result<qemu::Run, String> {
    let pkg = spkg::parse(package).map_err(|e| format!("package: {e}"))?;
    let fdt = Fdt::new(pkg.manifest).map_err(|e| format!("manifest: {e}"))?;
    let cell = |name: &str| -> Result<u64, String> {
        let value = fdt
            .root()
            .property(name)
            .ok_or_else(|| format!("manifest: no {name}"))?;
        let value = value.value();
        match value.len() {
            4 => value.try_into().ok().map(u32::from_be_bytes).map(u64::from),
            8 => value.try_into().ok().map(u64::from_be_bytes),
            _ => None,
        }
        .ok_or_else(|| format!("manifest: {name} is not a 1- or 2-cell integer"))
    };
    let load = cell("load-address")?;
    let entry = load
        .checked_add(cell("entrypoint-offset")?)
        .ok_or("manifest: entry point overflows")?;
    let loaded = spkg::loaded(package, load).map_err(|e| format!("package: {e}"))?;
    let len = u64::try_from(loaded.len()).unwrap_or(u64::MAX);
    if len > MAX_PACKAGE {
        return Err(format!(
            "package of {len} bytes: the stand-in copies at most {MAX_PACKAGE}"
        ));
    }

    static BOOTS: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vmsg-boot-count-{}-{}",
        std::process::id(),
        BOOTS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (loaded_path, standin_path) = (dir.join("loaded.bin"), dir.join("standin.bin"));
    let written =
        std::fs::write(&loaded_path, &loaded).and_then(|()| std::fs::write(&standin_path, standin));
    let run = written.and_then(|()| {
        let mut cmd = Command::new(qemu);
        cmd.args(["-M", "virt,secure=on", "-cpu", "max", "-m", "256"])
            .args(["-nodefaults", "-display", "none", "-monitor", "none"])
            .args(["-serial", "stdio"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(args)
            .arg("-device")
            .arg(format!(
                "loader,file={},addr={STAGING_ADDR:#x},force-raw=on",
                loaded_path.display()
            ));
        for (i, word) in [len, load, entry].into_iter().enumerate() {
            let at = PARAMS_ADDR + 8 * u64::try_from(i).unwrap_or(0);
            cmd.arg("-device")
                .arg(format!("loader,addr={at:#x},data={word:#x},data-len=8"));
        }
        cmd.arg("-device").arg(format!(
            "loader,file={},addr={STANDIN_ADDR:#x},cpu-num=0,force-raw=on",
            standin_path.display()
        ));
        qemu::run(cmd, TIMEOUT, |line| line.starts_with(FAILURE))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let run = run.map_err(|e| format!("{}: {e}", qemu.display()))?;
    if let Some(failure) = run.lines.iter().find(|l| l.starts_with(FAILURE)) {
        return Err(failure.clone());
    }
    Ok(run)
}

/// (instructions, SMCs, counter rate) from the stand-in's report line.
pub fn parse_report(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.strip_prefix(REPORT)?;
    let (instructions, rest) = rest.split_once(" instructions, ")?;
    let (smcs, rest) = rest.split_once(" SMCs, counter ")?;
    let hz = rest.strip_suffix(" Hz")?;
    Some((
        instructions.parse().ok()?,
        smcs.parse().ok()?,
        hz.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_line_parses() {
        let line = format!("{REPORT}312135 instructions, 15 SMCs, counter 1000000000 Hz");
        assert_eq!(parse_report(&line), Some((312_135, 15, 1_000_000_000)));
        assert_eq!(
            parse_report("el3-standin: FFA_MSG_WAIT after x instructions"),
            None
        );
        assert_eq!(parse_report(&line.replace(" Hz", "")), None);
    }
}
