//! `vmsg`: drive the virtio-msg secure partition from the normal world.

use std::{
    io::Write,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand, ValueEnum};
use ffa::bus::{BusConfig, Dialect};
use vmsg_host::{
    SimConnection, SimSystem,
    session::{Events, Messaging, Modes},
    sim::disk::{FileStore, HostDisk},
};

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
    /// Poll for events instead of asking for an FF-A notification (G3; = `--events poll`).
    #[arg(long, global = true, conflicts_with = "events")]
    poll: bool,
    /// How requests reach the partition: direct (FFA_MSG_SEND_DIRECT_REQ2) or indirect
    /// (FFA_MSG_SEND2 and FFA_RUN; G3 only).
    #[arg(long, value_enum, global = true, default_value = "direct")]
    messaging: MessagingArg,
    /// How events come: poll (G3: EVENT_POLL; G2: the used rings), notify (G3: an FF-A
    /// notification, then EVENT_POLL) or indirect (pushed by FFA_MSG_SEND2). Default: notify
    /// for G3 with direct messages, indirect otherwise.
    #[arg(long, value_enum, global = true)]
    events: Option<EventsArg>,
    /// After the command, print the FF-A calls made (driver and partition), by function, and
    /// per completed request where the command counts them.
    #[arg(long, global = true)]
    stats: bool,
    /// A host file as the virtio-blk disk of this run's endpoint instead of its RAM disk: its
    /// length (a positive whole number of 512-byte sectors) is the capacity, and what is
    /// written stays in the file. Only this endpoint, once, ever gets it.
    #[arg(long, global = true, value_name = "PATH")]
    disk: Option<std::path::PathBuf>,
    /// With `--disk`: opens the file read-only (the device offers VIRTIO_BLK_F_RO).
    #[arg(long, global = true, requires = "disk")]
    read_only: bool,
    /// Prints the simulated partition's log lines on stderr (`[sp] INFO  ...`): -v its info,
    /// warnings and errors, -vv its debug lines as well. Its shell's `log` keeps them either way.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MessagingArg {
    Direct,
    Indirect,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EventsArg {
    Poll,
    Notify,
    Indirect,
}

/// The session modes the flags ask for in `dialect`.
fn modes(cli: &Cli, dialect: Dialect) -> Modes {
    let messaging = match cli.messaging {
        MessagingArg::Direct => Messaging::Direct,
        MessagingArg::Indirect => Messaging::Indirect,
    };
    let events = match (cli.events, cli.poll) {
        (Some(EventsArg::Poll), _) | (None, true) => Events::Poll,
        (Some(EventsArg::Notify), _) => Events::Notify,
        (Some(EventsArg::Indirect), _) => Events::Indirect,
        (None, false) if dialect == Dialect::G3 && messaging == Messaging::Direct => Events::Notify,
        // G2 looks at its used rings (the partition offers it no pushed events).
        (None, false) if dialect == Dialect::G2 => Events::Poll,
        (None, false) => Events::Indirect,
    };
    Modes { messaging, events }
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
    /// Runs shell lines on the virtio-console device (`help` by default) and prints the
    /// answers, each after the prompt and the line.
    Console {
        /// Command lines, one per argument.
        #[arg(default_value = "help")]
        lines: Vec<String>,
    },
    /// Uses the virtio-vsock device: stream sockets to the partition's services (the echo on
    /// port 7, the shell on port 23).
    Vsock {
        #[command(subcommand)]
        op: VsockOp,
    },
    /// Uses the virtio-blk device (the endpoint's own RAM disk, or the `--disk` file).
    Blk {
        #[command(subcommand)]
        op: BlkOp,
    },
    /// A short demonstration: devices, ping, random bytes, throughput.
    Demo,
    /// Measures what each request costs (FF-A calls by function, partition instructions
    /// under callgrind, throughput) for each device and mode, prints a table and writes JSON.
    Bench {
        /// Requests per scenario.
        #[arg(long, default_value_t = 256)]
        requests: usize,
        /// Runs only the scenario of this name.
        #[arg(long)]
        only: Option<String>,
        /// Writes the results as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Also counts the partition's instructions per request by running each scenario
        /// under valgrind's callgrind (twice, N and 2N requests: the difference is exact).
        #[arg(long)]
        callgrind: bool,
        /// The SP image whose size to report (`make sp` writes out/sp.bin).
        #[arg(long)]
        image: Option<std::path::PathBuf>,
        /// The SP package to boot on QEMU for the boot count: instructions from its first to
        /// its first FFA_MSG_WAIT (`make sp` writes out/virtio-msg-sp.pkg; needs --standin).
        #[arg(long, requires = "standin")]
        package: Option<std::path::PathBuf>,
        /// The EL3 stand-in the package boots against (`make bench` writes
        /// out/el3-standin.bin).
        #[arg(long, requires = "package")]
        standin: Option<std::path::PathBuf>,
    },
    /// Runs the conformance suite (every check in each dialect, a fresh endpoint per check)
    /// and prints a table ending in `N passed, N failed`; fails if a check failed.
    Conformance {
        /// Prints the results as a JSON array instead.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum VsockOp {
    /// Connects to the partition's PORT (CID 2). Without `--send`, sends each line of stdin
    /// (with its newline) and prints what comes back, until end of input; then shuts the
    /// connection down.
    Connect {
        /// The partition's port: 7 is the echo, 23 the shell.
        port: u32,
        /// Sends TEXT and a newline, prints everything the service sent (a greeting, the
        /// answer), and shuts down; repeat it for more lines.
        #[arg(long, value_name = "TEXT")]
        send: Vec<String>,
        /// With `--send`: prints one JSON object instead (ports, CID, what was sent, what
        /// came back).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BlkOp {
    /// Capacity, features and the device id.
    Info {
        /// Prints JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Reads `--bytes` from `--sector` and prints them as hex (or raw with `--raw`).
    Read {
        #[arg(long, default_value_t = 0)]
        sector: u64,
        #[arg(long, default_value_t = 512)]
        bytes: usize,
        #[arg(long)]
        raw: bool,
    },
    /// Writes the bytes of `--text` (padded with zeroes to whole sectors) at `--sector`.
    Write {
        #[arg(long, default_value_t = 0)]
        sector: u64,
        #[arg(long)]
        text: String,
    },
    /// Writes `--mib` MiB of random data over the disk in 64 KiB requests (wrapping around it),
    /// reads every request back and compares; prints mismatches and throughput.
    Verify {
        #[arg(long, default_value_t = 64)]
        mib: usize,
    },
}

/// The normal-world endpoint id a run's session comes from.
const VM: u16 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.verbose >= 2 {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    vmsg_host::sim::partition_log::install(level, cli.verbose > 0);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmsg: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    if cli.disk.is_some()
        && matches!(
            cli.command,
            Command::Conformance { .. } | Command::Bench { .. }
        )
    {
        return Err(
            "--disk: conformance and bench run endpoints of their own, on RAM disks".into(),
        );
    }
    if let Command::Conformance { json } = cli.command {
        return conformance(cli.dialect.unwrap_or(DialectArg::Both), json);
    }
    if let Command::Bench {
        requests,
        only,
        json,
        callgrind,
        image,
        package,
        standin,
    } = &cli.command
    {
        let boot = package.as_deref().zip(standin.as_deref());
        return bench(
            *requests,
            only.as_deref(),
            json.as_deref(),
            *callgrind,
            image.as_deref(),
            boot,
        );
    }
    let dialect = match cli.dialect.unwrap_or(DialectArg::G3) {
        DialectArg::G3 => Dialect::G3,
        DialectArg::G2 => Dialect::G2,
        DialectArg::Both => return Err("--dialect both is for `conformance` only".into()),
    };
    let system = match &cli.disk {
        Some(path) => {
            let store = FileStore::open(path, cli.read_only)?;
            SimSystem::start_with_disk(BusConfig::default(), HostDisk::new(VM, store))?
        }
        None => SimSystem::start()?,
    };
    let modes = modes(cli, dialect);
    modes
        .check(dialect)
        .map_err(|why| format!("--messaging/--events: {why}"))?;
    let mut conn = system.connect_modes(VM, dialect, modes)?;
    system.world().reset_calls();
    let requests = command(cli, &system, &mut conn)?;
    if cli.stats {
        print_stats(&system, requests);
    }
    Ok(())
}

/// Prints the FF-A calls made since the session was set up, by caller and function, and per
/// completed request when `requests` says how many.
fn print_stats(system: &SimSystem, requests: Option<u64>) {
    let calls = system.world().calls();
    let total: u64 = calls.values().sum();
    eprintln!("FF-A calls after setup: {total}");
    for ((caller, fid), n) in &calls {
        let who = if *caller == system.sp_id() {
            "partition"
        } else {
            "driver"
        };
        let per = requests.filter(|r| *r > 0).map_or(String::new(), |r| {
            format!(" ({:.3} per request)", *n as f64 / r as f64)
        });
        eprintln!(
            "  {who:9} {:32} {n}{per}",
            vmsg_host::bench::function_name(*fid)
        );
    }
    if let Some(r) = requests.filter(|r| *r > 0) {
        eprintln!(
            "completed requests: {r}; FF-A calls per request: {:.3}",
            total as f64 / r as f64
        );
    }
}

/// Runs the command on `conn`; returns the requests it completed, where it counts them.
fn command(
    cli: &Cli,
    system: &SimSystem,
    conn: &mut SimConnection,
) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    let mut requests = None;
    match &cli.command {
        Command::Devices => print_devices(conn)?,
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
            requests = Some(rng.completed());
        }
        Command::Demo => {
            println!(
                "simulated FF-A world: partition {:#06x} serving UUID {}",
                system.sp_id(),
                ffa::VIRTIO_MSG_DEVICE_UUID
            );
            let info = conn.session().info();
            println!(
                "bus negotiated: dialect {:?}, bus features {:#x}, max areas {}, {:?} messages, \
                 events: {:?}",
                info.dialect,
                info.bus_features,
                info.max_areas,
                info.modes.messaging,
                info.modes.events
            );
            print_devices(conn)?;
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
            drop(rng);
            let mut disk = conn.blk()?;
            let request = vmsg_host::blk::DATA_BYTES;
            let start = Instant::now();
            let mut same = true;
            let mut pattern = vec![0u8; request];
            for round in 0..16u8 {
                pattern.fill(round.wrapping_mul(37).wrapping_add(1));
                disk.write(0, &pattern)?;
                same &= disk.read(0, request)? == pattern;
            }
            let elapsed = start.elapsed().max(Duration::from_micros(1));
            println!(
                "blk: {} KiB disk; 1 MiB written and read back in 64 KiB requests in {:.1} ms: {}",
                disk.capacity() * vmsg_host::blk::SECTOR as u64 / 1024,
                elapsed.as_secs_f64() * 1e3,
                if same { "all equal" } else { "MISMATCH" }
            );
            drop(disk);
            if !same {
                return Err("blk read back differs from what was written".into());
            }
            let faults = system.faults();
            println!(
                "simulator faults (accesses outside shared memory): {}",
                faults.len()
            );
            if !faults.is_empty() {
                return Err(format!("partition faulted: {faults:?}").into());
            }
        }
        Command::Console { lines } => {
            let mut console = conn.console()?;
            let prompt = console.read_until(vmsg_host::console::PROMPT)?;
            for line in lines {
                print!("{prompt}{line}\n{}", console.command(line)?);
            }
            console.close()?;
        }
        Command::Blk { op } => blk(conn, op)?,
        Command::Vsock { op } => vsock(conn, op)?,
        Command::Conformance { .. } | Command::Bench { .. } => {}
    }
    Ok(requests)
}

/// `vmsg vsock ...`.
fn vsock(conn: &mut SimConnection, op: &VsockOp) -> Result<(), Box<dyn std::error::Error>> {
    let VsockOp::Connect { port, send, json } = op;
    let mut vsock = conn.vsock()?;
    let local = vsock.connect(*port)?;
    let mut out = std::io::stdout().lock();
    if !send.is_empty() {
        // The greeting (the shell's prompt), then each line's answer.
        let mut received = vsock.recv(local)?;
        let mut sent = String::new();
        for text in send {
            let line = format!("{text}\n");
            vsock.send(local, line.as_bytes())?;
            received.extend(vsock.recv(local)?);
            sent.push_str(&line);
        }
        vsock.shutdown(local)?;
        let received = String::from_utf8_lossy(&received).into_owned();
        if *json {
            let report = serde_json::json!({
                "port": port,
                "local_port": local,
                "guest_cid": vsock.guest_cid(),
                "sent": sent,
                "received": received,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        } else {
            write!(out, "{received}")?;
        }
        vsock.close()?;
        return Ok(());
    }
    if *json {
        return Err("--json needs --send".into());
    }
    out.write_all(&vsock.recv(local)?)?;
    out.flush()?;
    for line in std::io::stdin().lines() {
        let mut line = line?;
        line.push('\n');
        vsock.send(local, line.as_bytes())?;
        out.write_all(&vsock.recv(local)?)?;
        out.flush()?;
        if vsock.state(local) != Some(vmsg_host::vsock::StreamState::Connected) {
            break;
        }
    }
    if vsock.state(local).is_some() {
        vsock.shutdown(local)?;
    }
    vsock.close()?;
    Ok(())
}

/// `vmsg blk ...`.
fn blk(conn: &mut SimConnection, op: &BlkOp) -> Result<(), Box<dyn std::error::Error>> {
    use vmsg_host::blk::{DATA_BYTES, SECTOR};
    let mut disk = conn.blk()?;
    match op {
        BlkOp::Info { json } => {
            let id = disk.id()?;
            let id = String::from_utf8_lossy(&id)
                .trim_end_matches('\0')
                .to_string();
            let capacity = disk.capacity();
            let features = disk.features();
            if *json {
                println!(
                    "{}",
                    serde_json::json!({
                        "capacity_sectors": capacity,
                        "capacity_bytes": capacity * SECTOR as u64,
                        "features": format!("{features:#x}"),
                        "id": id,
                    })
                );
            } else {
                println!(
                    "virtio-blk: {capacity} sectors ({} KiB), features {features:#x}, id {id:?}",
                    capacity * SECTOR as u64 / 1024
                );
            }
        }
        BlkOp::Read { sector, bytes, raw } => {
            let len = bytes.div_ceil(SECTOR) * SECTOR;
            if len > DATA_BYTES {
                return Err(format!("--bytes {bytes}: at most {DATA_BYTES} per read").into());
            }
            let data = disk.read(*sector, len)?;
            let data = data.get(..*bytes).unwrap_or(&data);
            let mut out = std::io::stdout().lock();
            if *raw {
                out.write_all(data)?;
            } else {
                for line in data.chunks(32) {
                    writeln!(out, "{}", hex(line))?;
                }
            }
        }
        BlkOp::Write { sector, text } => {
            let mut data = text.as_bytes().to_vec();
            data.resize(data.len().div_ceil(SECTOR).max(1) * SECTOR, 0);
            if data.len() > DATA_BYTES {
                return Err(format!("--text: at most {DATA_BYTES} bytes").into());
            }
            disk.write(*sector, &data)?;
            disk.flush()?;
            println!("wrote {} bytes at sector {sector}", data.len());
        }
        BlkOp::Verify { mib: size } => {
            let total = size.checked_mul(1 << 20).ok_or("--mib too large")?;
            let request = DATA_BYTES;
            let sectors_per = u64::try_from(request / SECTOR)?;
            let slots = (disk.capacity() / sectors_per).max(1);
            let requests = total.div_ceil(request);
            let bar = indicatif::ProgressBar::new(u64::try_from(requests)?);
            bar.set_style(indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} requests {bytes_per_sec} {eta}",
            )?);
            let mut data = vec![0u8; request];
            let (mut mismatches, mut moved) = (0usize, 0usize);
            let start = Instant::now();
            for i in 0..requests {
                getrandom::fill(&mut data).map_err(|e| format!("getrandom: {e}"))?;
                let sector = (u64::try_from(i)? % slots) * sectors_per;
                disk.write(sector, &data)?;
                let back = disk.read(sector, request)?;
                if back != data {
                    mismatches += 1;
                }
                moved += 2 * request;
                bar.inc(1);
            }
            bar.finish_and_clear();
            let elapsed = start.elapsed().max(Duration::from_micros(1));
            println!(
                "verify: {} MiB written and read back in {:.2} s ({:.1} MiB/s through the simulator), \
                 {mismatches} mismatched requests",
                (requests * request) >> 20,
                elapsed.as_secs_f64(),
                mib(moved) / elapsed.as_secs_f64()
            );
            if mismatches > 0 {
                return Err(format!("{mismatches} requests read back differently").into());
            }
        }
    }
    Ok(())
}

/// `vmsg bench`: every scenario (or `only`), a table on stdout, JSON to `json`; the image's
/// size and the boot count (`boot`: package and stand-in) after the table.
fn bench(
    requests: usize,
    only: Option<&str>,
    json: Option<&std::path::Path>,
    callgrind: bool,
    image: Option<&std::path::Path>,
    boot: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<(), Box<dyn std::error::Error>> {
    use vmsg_host::bench;
    let scenarios: Vec<_> = bench::scenarios(requests)
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == s.name))
        .collect();
    if scenarios.is_empty() {
        return Err("no such scenario".into());
    }
    let mut results = Vec::new();
    for s in &scenarios {
        let mut m = bench::run(s)?;
        if callgrind {
            m.partition_instructions_per_request = Some(instructions_per_request(s)?);
        }
        results.push(m);
    }
    print!("{}", bench::table(&results));
    let image_bytes = match image {
        Some(path) => {
            let bytes = std::fs::metadata(path)?.len();
            println!(
                "image {}: {bytes} bytes ({:.1} KiB)",
                path.display(),
                f64::from(u32::try_from(bytes).unwrap_or(u32::MAX)) / 1024.0
            );
            Some(bytes)
        }
        None => None,
    };
    let boot = match boot {
        Some((package, standin)) => boot_count(package, standin)?,
        None => None,
    };
    if let Some(path) = json {
        let report = bench::Report {
            scenarios: results,
            image_bytes,
            boot_instructions: boot.as_ref().map(|b| b.instructions),
            boot_smcs: boot.as_ref().map(|b| b.smcs),
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("written: {}", path.display());
    }
    Ok(())
}

/// The boot count of `package` against `standin` on QEMU (printed); `None`, saying why, when
/// QEMU is not installed.
fn boot_count(
    package: &std::path::Path,
    standin: &std::path::Path,
) -> Result<Option<vmsg_host::bench::boot::BootCount>, Box<dyn std::error::Error>> {
    let Some(qemu) = vmsg_host::qemu::find() else {
        println!("boot: - (qemu-system-aarch64 is not installed; Debian: qemu-system-arm)");
        return Ok(None);
    };
    let count =
        vmsg_host::bench::boot::count(&qemu, &std::fs::read(package)?, &std::fs::read(standin)?)
            .map_err(|e| format!("boot count: {e}"))?;
    println!(
        "boot {}: {} instructions from entry to the first FFA_MSG_WAIT ({} SMCs before it; \
         QEMU -icount, the EL3 stand-in's instructions excluded)",
        package.display(),
        count.instructions,
        count.smcs
    );
    Ok(Some(count))
}

/// The partition's instructions per request in scenario `s`: callgrind counts what runs inside
/// the partition's per-message function for N and for 2N requests; the difference over N is
/// the cost of N requests, setup excluded.
fn instructions_per_request(
    s: &vmsg_host::bench::Scenario,
) -> Result<f64, Box<dyn std::error::Error>> {
    let me = std::env::current_exe()?;
    let mut counted = Vec::new();
    for n in [s.requests, 2 * s.requests] {
        let out = std::env::temp_dir().join(format!("vmsg-bench-{}-{n}.callgrind", s.name));
        let status = std::process::Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--toggle-collect=*sp::partition::handle_message*")
            .arg("--toggle-collect=*sim::inline::partition_decode*")
            .arg("--toggle-collect=*sim::inline::partition_encode*")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&me)
            .args(["bench", "--only", &s.name, "--requests", &n.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("valgrind: {e} (install valgrind for --callgrind)"))?;
        if !status.success() {
            return Err(format!("valgrind exited with {status}").into());
        }
        let text = std::fs::read_to_string(&out)?;
        let _ = std::fs::remove_file(&out);
        counted.push(
            vmsg_host::bench::partition_instructions(&text)
                .ok_or("callgrind output without totals")?,
        );
    }
    let (one, two) = (counted[0], counted[1]);
    let n = u32::try_from(s.requests).map_err(|_| "too many requests")?;
    let diff = u32::try_from(two.saturating_sub(one)).map_err(|_| "count too large")?;
    Ok(f64::from(diff) / f64::from(n))
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
