//! `vmsg`: drive the virtio-msg secure partition from the normal world.

use std::{
    io::Write,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand, ValueEnum};
use ffa::bus::Dialect;
use vmsg_host::{SimConnection, SimSystem};

/// Drives the virtio-msg FF-A secure partition: lists its devices, pings its bus, reads its
/// entropy device. The default backend is the simulated FF-A world with the partition core
/// running in this process.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Driver dialect to speak: g3 (Arm PoC v2 / ALP2 bus, 2026 layouts) or g2 (the
    /// single-file Linux driver, Dec-2025 layouts); `conformance` also takes both (its
    /// default). Other commands default to g3.
    #[arg(long, value_enum, global = true)]
    dialect: Option<DialectArg>,
    /// Poll for events instead of asking for an FF-A notification (G3).
    #[arg(long, global = true)]
    poll: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DialectArg {
    G3,
    G2,
    Both,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Lists the devices the partition offers.
    Devices,
    /// Sends a bus PING and checks the echo.
    Ping {
        /// Value to send.
        #[arg(default_value_t = 0x5a5a_1234)]
        value: u32,
    },
    /// Reads random bytes from the virtio-rng device.
    Rng {
        /// Number of bytes.
        #[arg(long, default_value_t = 32)]
        bytes: usize,
        /// Writes raw bytes to stdout instead of hex.
        #[arg(long)]
        raw: bool,
    },
    /// A short demonstration: devices, ping, random bytes, throughput.
    Demo,
    /// Runs the conformance suite (every check in each dialect, a fresh endpoint per check)
    /// and prints a table ending in `N passed, N failed`; fails if a check failed.
    Conformance {
        /// Prints the results as a JSON array instead.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmsg: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    if let Command::Conformance { json } = cli.command {
        return conformance(cli.dialect.unwrap_or(DialectArg::Both), json);
    }
    let dialect = match cli.dialect.unwrap_or(DialectArg::G3) {
        DialectArg::G3 => Dialect::G3,
        DialectArg::G2 => Dialect::G2,
        DialectArg::Both => return Err("--dialect both is for `conformance` only".into()),
    };
    let system = SimSystem::start()?;
    let mut conn = system.connect(1, dialect, !cli.poll)?;
    match &cli.command {
        Command::Devices => print_devices(&mut conn)?,
        Command::Ping { value } => {
            let echoed = conn.session().ping(*value)?;
            if echoed != *value {
                return Err(format!("PING echoed {echoed:#x}, sent {value:#x}").into());
            }
            println!("ping {value:#010x}: echoed");
        }
        Command::Rng { bytes, raw } => {
            if *bytes > MAX_RNG_BYTES {
                return Err(format!(
                    "--bytes {bytes}: at most 1 GiB ({MAX_RNG_BYTES} bytes) per run"
                )
                .into());
            }
            let mut rng = conn.rng()?;
            let mut out = std::io::stdout().lock();
            // Streamed one request at a time: memory use does not grow with --bytes.
            let mut failed = None;
            rng.read_with(*bytes, |chunk| {
                let written = if *raw {
                    out.write_all(chunk)
                } else {
                    chunk
                        .chunks(32)
                        .try_for_each(|line| writeln!(out, "{}", hex(line)))
                };
                written.map_err(|e| {
                    failed = Some(e);
                    vmsg_host::HostError::Device("stdout closed")
                })
            })
            .map_err(|e| {
                failed
                    .take()
                    .map_or_else(|| e.to_string(), |io| io.to_string())
            })?;
        }
        Command::Demo => {
            println!(
                "simulated FF-A world: partition {:#06x} serving UUID {}",
                system.sp_id(),
                ffa::VIRTIO_MSG_DEVICE_UUID
            );
            let info = conn.session().info();
            println!(
                "bus negotiated: dialect {:?}, bus features {:#x}, max areas {}, events by {}",
                info.dialect,
                info.bus_features,
                info.max_areas,
                if info.notified {
                    "notification"
                } else {
                    "polling"
                }
            );
            print_devices(&mut conn)?;
            let echoed = conn.session().ping(0xC0FF_EE00)?;
            println!("ping 0xc0ffee00 -> {echoed:#x}");
            let mut rng = conn.rng()?;
            let sample = rng.read(32)?;
            println!("rng: {}", hex(&sample));
            let total = 1 << 20;
            let start = Instant::now();
            let data = rng.read(total)?;
            let elapsed = start.elapsed().max(Duration::from_micros(1));
            println!(
                "rng: read {} KiB in {:.1} ms ({:.1} MiB/s through the simulator)",
                data.len() / 1024,
                elapsed.as_secs_f64() * 1e3,
                mib(data.len()) / elapsed.as_secs_f64()
            );
            let faults = system.faults();
            println!(
                "simulator faults (accesses outside shared memory): {}",
                faults.len()
            );
            if !faults.is_empty() {
                return Err(format!("partition faulted: {faults:?}").into());
            }
        }
        Command::Conformance { .. } => {}
    }
    Ok(())
}

/// `vmsg conformance`: the suite against the simulated world.
fn conformance(dialect: DialectArg, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    use vmsg_host::conformance::{self, Counts, sim::SimBackend};
    let dialects: &[Dialect] = match dialect {
        DialectArg::G3 => &[Dialect::G3],
        DialectArg::G2 => &[Dialect::G2],
        DialectArg::Both => &[Dialect::G3, Dialect::G2],
    };
    let system = SimSystem::start()?;
    let results = conformance::run(&mut SimBackend::new(&system), dialects);
    if json {
        print!("{}", conformance::json(&results));
    } else {
        print!("{}", conformance::table(&results));
    }
    let faults = system.faults();
    if !faults.is_empty() {
        return Err(format!("partition faulted: {faults:?}").into());
    }
    let counts = Counts::of(&results);
    if counts.failed > 0 {
        return Err(format!("{} check(s) failed", counts.failed).into());
    }
    Ok(())
}

fn print_devices(conn: &mut SimConnection) -> Result<(), Box<dyn std::error::Error>> {
    let devices = conn.list_devices()?;
    println!("{} device(s):", devices.len());
    for d in devices {
        println!(
            "  dev {:>3}: virtio id {:>2} ({}), vendor {:#x}, {} queue(s), config {} bytes",
            d.dev_num,
            d.info.device_id,
            vmsg_host::device_name(d.info.device_id),
            d.info.vendor_id,
            d.info.max_virtqueues,
            d.info.config_size
        );
    }
    Ok(())
}

/// Most bytes `vmsg rng` reads in one run (1 GiB).
const MAX_RNG_BYTES: usize = 1 << 30;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` in MiB, for display.
fn mib(bytes: usize) -> f64 {
    // Display only: sizes here are far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    b / f64::from(1u32 << 20)
}
