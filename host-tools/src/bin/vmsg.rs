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
    /// single-file Linux driver, Dec-2025 layouts).
    #[arg(long, value_enum, default_value_t = DialectArg::G3, global = true)]
    dialect: DialectArg,
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
        /// Number of bytes (at most 1 GiB; streamed to stdout as they arrive).
        #[arg(long, default_value_t = 32)]
        bytes: u64,
        /// Writes raw bytes to stdout instead of hex.
        #[arg(long)]
        raw: bool,
    },
    /// A short demonstration: devices, ping, random bytes, throughput.
    Demo,
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
    let dialect = match cli.dialect {
        DialectArg::G3 => Dialect::G3,
        DialectArg::G2 => Dialect::G2,
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
                    "--bytes {bytes} is more than the {MAX_RNG_BYTES}-byte (1 GiB) limit; \
                     run vmsg rng several times for more"
                )
                .into());
            }
            let mut rng = conn.rng()?;
            let out = std::io::stdout().lock();
            stream_rng(&mut rng, *bytes, *raw, out)?;
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
    }
    Ok(())
}

/// Most bytes one `vmsg rng` reads.
const MAX_RNG_BYTES: u64 = 1 << 30;

/// Streams `bytes` random bytes to `out` as the device delivers them: raw, or as hex lines
/// of 32 bytes. Memory use does not grow with `bytes`.
fn stream_rng(
    rng: &mut vmsg_host::rng::RngDriver<
        '_,
        impl ffa::conduit::Conduit,
        impl vmsg_host::platform::Platform,
    >,
    bytes: u64,
    raw: bool,
    mut out: impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut line: Vec<u8> = Vec::with_capacity(32);
    let mut failed: Option<std::io::Error> = None;
    let mut sink = |chunk: &[u8]| {
        let written = if raw {
            out.write_all(chunk)
        } else {
            write_hex_lines(&mut out, &mut line, chunk)
        };
        written.map_err(|e| {
            failed = Some(e);
            vmsg_host::connection::HostError::Device("writing the output failed")
        })
    };
    let result = rng.read_to(bytes, &mut sink);
    if let Some(e) = failed {
        return Err(e.into());
    }
    result?;
    if !line.is_empty() {
        writeln!(out, "{}", hex(&line))?;
    }
    out.flush()?;
    Ok(())
}

/// Writes `chunk` as hex lines of 32 bytes, carrying an incomplete line over in `line`.
fn write_hex_lines(
    out: &mut impl Write,
    line: &mut Vec<u8>,
    mut chunk: &[u8],
) -> std::io::Result<()> {
    while !chunk.is_empty() {
        let take = (32 - line.len()).min(chunk.len());
        let (head, rest) = chunk.split_at(take);
        line.extend_from_slice(head);
        chunk = rest;
        if line.len() == 32 {
            writeln!(out, "{}", hex(line))?;
            line.clear();
        }
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
