//! `spkg`: writes (or checks) an SP package, "SPKG" version 2, as TF-A's BL2 loads and Hafnium
//! unpacks it: header, manifest DTB at +0x1000, image at +0x4000.
//!
//!     spkg --manifest sp.dtb --image sp.bin --output sp.pkg
//!     spkg --check sp.pkg

use std::{fs, path::PathBuf, process::ExitCode};

use clap::Parser;
use vmsg_host::spkg;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Write or check an SP package (SPKG v2) for Hafnium")]
struct Args {
    /// The partition manifest, compiled to a DTB (at most 0x3000 bytes).
    #[arg(short, long, required_unless_present = "check")]
    manifest: Option<PathBuf>,
    /// The partition image (raw binary).
    #[arg(short, long, required_unless_present = "check")]
    image: Option<PathBuf>,
    /// Where to write the package.
    #[arg(short, long, required_unless_present = "check")]
    output: Option<PathBuf>,
    /// Read a package and print its header instead.
    #[arg(long, conflicts_with_all = ["manifest", "image", "output"])]
    check: Option<PathBuf>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn run(args: Args) -> Result<(), String> {
    if let Some(path) = args.check {
        let bytes = read(&path)?;
        let pkg = spkg::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let h = pkg.header;
        println!(
            "{}: SPKG v{}, manifest {:#x}+{:#x}, image {:#x}+{:#x}, {} bytes",
            path.display(),
            h.version,
            h.pm_offset,
            h.pm_size,
            h.img_offset,
            h.img_size,
            bytes.len()
        );
        return Ok(());
    }
    let (Some(manifest), Some(image), Some(output)) = (args.manifest, args.image, args.output)
    else {
        return Err("--manifest, --image and --output are required".into());
    };
    let dtb = read(&manifest)?;
    let bin = read(&image)?;
    let pkg = spkg::build(&dtb, &bin).map_err(|e| e.to_string())?;
    fs::write(&output, &pkg).map_err(|e| format!("{}: {e}", output.display()))?;
    println!(
        "{}: image {} bytes ({:.1} KiB), manifest {} bytes, package {} bytes ({:.1} KiB)",
        output.display(),
        bin.len(),
        kib(bin.len()),
        dtb.len(),
        pkg.len(),
        kib(pkg.len())
    );
    Ok(())
}

/// `n` bytes in KiB, for display.
fn kib(n: usize) -> f64 {
    // Display only: sizes here are far below 2^52.
    u32::try_from(n).map_or(f64::INFINITY, f64::from) / 1024.0
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spkg: {e}");
            ExitCode::FAILURE
        }
    }
}
