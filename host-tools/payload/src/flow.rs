//! The checks the payload runs, in order:
//!
//! 1. `FFA_VERSION(1.2)`: no answer means no SPMD/SPMC (the run stops with `no FF-A: …` and
//!    `no virtio-msg partition answered`);
//! 2. `FFA_ID_GET`, `FFA_RXTX_MAP` (64-bit, the machine's own two pages);
//! 3. `FFA_PARTITION_INFO_GET` for the virtio-msg device UUID (none: `no virtio-msg partition
//!    answered`, and the run stops);
//! 4. for each dialect, G3 (polling) then G2, with the driver library of the `vmsg` tool:
//!    VERSION negotiation, PING, one page shared and unshared (`FFA_MEM_SHARE` + AREA_SHARE,
//!    AREA_UNSHARE + `FFA_MEM_RECLAIM`), GET_DEVICES and GET_DEVICE_INFO, then every device
//!    initialised: the rng read (64 KiB, [`crate::quality`] check, a second read that must
//!    differ) and closed (reset, areas reclaimed); devices the payload has no driver for are
//!    initialised (features negotiated) and reset. G3 ends with a bus RESET, so that the
//!    partition starts the G2 driver on a clean instance;
//! 5. the rng over G3's further modes (notifications, pushed events, indirect messages);
//! 6. the concurrent test ([`crate::concurrent`]): every CPU (up to four) sends its own PING
//!    and GET_DEVICES requests at once; `INFO n/a` with one CPU;
//! 7. the conformance suite ([`crate::conformance`]), every check in G3 then G2, one line each.
//!
//! Every check prints one `PASS`/`FAIL` line; the last line is `N passed, M failed`.

use alloc::{format, string::String, vec::Vec};
use core::fmt::Write;

use ffa::{
    Conduit, FFA_VERSION, Ffa, VIRTIO_MSG_DEVICE_UUID,
    arm_ffa::{
        Version,
        partition_info::{PartitionIdType, PartitionInfo},
    },
    bus::{Dialect, msg},
};
use virtio_msg::{
    device::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
};
use vmsg_host::{
    Connection, DeviceSummary, HostError, Platform, device_name,
    rng::RngDriver,
    session::{BusSession, Events, Messaging, Modes},
    virtio_ids,
};

pub use crate::machine::Machine;
use crate::{
    concurrent::{self, CpuCounts, CpuFailure, Job},
    machine::CpuStart,
    quality,
    report::{Report, Summary},
};

/// Bytes of entropy read from each rng device (one request of the driver's buffer).
pub const RNG_READ_BYTES: usize = 64 * 1024;
/// Bytes of the second read, which must differ from the first.
pub const RNG_SECOND_READ_BYTES: usize = 4096;
/// Line printed when FF-A answers but no partition offers the virtio-msg UUID (or when FF-A
/// itself is missing).
pub const NO_PARTITION: &str = "no virtio-msg partition answered";
/// Start of the line printed when `FFA_VERSION` gets no answer.
pub const NO_FFA: &str = "no FF-A";

/// Short name of a dialect in result lines.
fn tag(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::G3 => "g3",
        Dialect::G2 => "g2",
    }
}

/// The partition found by `FFA_PARTITION_INFO_GET`.
#[derive(Clone, Copy, Debug)]
struct Partition {
    id: u16,
    /// Execution contexts it reports (`None`: not a PE endpoint).
    contexts: Option<u16>,
}

/// Runs every check on `machine`, writing lines to `out`; returns the counts (also printed).
pub fn run<M: Machine, W: Write>(machine: &mut M, out: W) -> Summary {
    let mut r = Report::new(out);
    r.line(format_args!("{}", crate::BANNER));
    let Some((own_id, partition)) = discover(machine, &mut r) else {
        return r.finish();
    };
    for dialect in [Dialect::G3, Dialect::G2] {
        exercise(machine, &mut r, own_id, partition, dialect);
    }
    exercise_modes(machine, &mut r, own_id, partition);
    exercise_concurrent(machine, &mut r, own_id, partition);
    crate::conformance::run(machine, &mut r, own_id, partition.id);
    r.finish()
}

/// Steps 1 to 3: FF-A, buffers, the partition. `None` stops the run.
fn discover<M: Machine, W: Write>(machine: &mut M, r: &mut Report<W>) -> Option<(u16, Partition)> {
    let Some(conduit) = machine.conduit() else {
        r.fail(format_args!("ffa: no RX/TX buffers for the conduit"));
        return None;
    };
    let mut ffa = Ffa::new(conduit);
    match ffa.version(FFA_VERSION) {
        Ok(callee) if ffa.negotiated() >= Version(1, 2) => r.pass(format_args!(
            "ffa: FFA_VERSION (callee {callee}, using {})",
            ffa.negotiated()
        )),
        Ok(callee) => {
            r.fail(format_args!(
                "ffa: FFA_VERSION: callee speaks {callee}, the bus needs 1.2"
            ));
            r.line(format_args!("{NO_PARTITION}"));
            return None;
        }
        Err(e) => {
            r.line(format_args!("{NO_FFA}: {} ({e})", machine.no_ffa_reason()));
            r.fail(format_args!("ffa: FFA_VERSION not answered: {e}"));
            r.line(format_args!("{NO_PARTITION}"));
            return None;
        }
    }
    let own_id = match ffa.id_get() {
        Ok(id) => {
            r.pass(format_args!("ffa: FFA_ID_GET (endpoint {id:#06x})"));
            id
        }
        Err(e) => {
            r.fail(format_args!("ffa: FFA_ID_GET: {e}"));
            return None;
        }
    };
    let (tx, rx, pages) = machine.rxtx();
    match ffa.rxtx_map(tx, rx, pages) {
        Ok(()) => r.pass(format_args!(
            "ffa: FFA_RXTX_MAP (tx {tx:#x}, rx {rx:#x}, {pages} page(s) each)"
        )),
        Err(e) => {
            r.fail(format_args!("ffa: FFA_RXTX_MAP: {e}"));
            return None;
        }
    }
    // Without a hypervisor the endpoint creates its own notification bitmap (as Linux does):
    // notifications and the RX-full framework notification of pushed events need it.
    match ffa.notification_bitmap_create(own_id, 1) {
        Ok(()) => r.pass(format_args!(
            "ffa: FFA_NOTIFICATION_BITMAP_CREATE (endpoint {own_id:#06x}, 1 vCPU)"
        )),
        Err(e) => r.fail(format_args!("ffa: FFA_NOTIFICATION_BITMAP_CREATE: {e}")),
    }
    let found = match ffa.partition_info_get(VIRTIO_MSG_DEVICE_UUID) {
        Ok(infos) => infos,
        Err(e) => {
            r.fail(format_args!(
                "ffa: FFA_PARTITION_INFO_GET({VIRTIO_MSG_DEVICE_UUID}): {e}"
            ));
            r.line(format_args!("{NO_PARTITION}"));
            return None;
        }
    };
    let Some(info) = found.first() else {
        r.fail(format_args!(
            "ffa: FFA_PARTITION_INFO_GET({VIRTIO_MSG_DEVICE_UUID}): no partition"
        ));
        r.line(format_args!("{NO_PARTITION}"));
        return None;
    };
    r.pass(format_args!(
        "ffa: FFA_PARTITION_INFO_GET (partition {:#06x} of {} offers {VIRTIO_MSG_DEVICE_UUID})",
        info.partition_id,
        found.len()
    ));
    check_properties(r, info);
    let contexts = match info.partition_id_type {
        PartitionIdType::PeEndpoint {
            execution_ctx_count,
        } => Some(execution_ctx_count),
        _ => None,
    };
    Some((
        own_id,
        Partition {
            id: info.partition_id,
            contexts,
        },
    ))
}

/// The partition must take DIRECT_REQ2 and run in AArch64 (the G3 driver's conditions).
fn check_properties<W: Write>(r: &mut Report<W>, info: &PartitionInfo) {
    let p = &info.props;
    if p.support_direct_req2_rec == Some(true) && p.is_aarch64 {
        r.pass(format_args!(
            "ffa: partition properties (DIRECT_REQ2 receipt, AArch64)"
        ));
    } else {
        r.fail(format_args!(
            "ffa: partition properties: DIRECT_REQ2 receipt {:?}, AArch64 {}",
            p.support_direct_req2_rec, p.is_aarch64
        ));
    }
}

/// Step 4 for one dialect.
fn exercise<M: Machine, W: Write>(
    machine: &mut M,
    r: &mut Report<W>,
    own_id: u16,
    partition: Partition,
    dialect: Dialect,
) {
    let t = tag(dialect);
    let Some(conduit) = machine.conduit() else {
        r.fail(format_args!(
            "{t}: no conduit (the previous session kept it)"
        ));
        return;
    };
    // FFA_VERSION was negotiated at 1.2 already: a new `Ffa` encodes at 1.2 from the start.
    let session = match BusSession::connect(Ffa::new(conduit), own_id, partition.id, dialect, false)
    {
        Ok(s) => s,
        Err(e) => {
            r.fail(format_args!("{t}: version negotiated: {e}"));
            return;
        }
    };
    let info = session.info();
    match dialect {
        Dialect::G3 => r.pass(format_args!(
            "{t}: version negotiated (probe and echo; bus features {:#x}, max areas {}, \
             partition FF-A {:#x}, events {})",
            info.bus_features,
            info.max_areas,
            info.ffa_version,
            if info.notified { "notified" } else { "polled" }
        )),
        Dialect::G2 => r.pass(format_args!(
            "{t}: version negotiated (bus features {:#x}, max areas {})",
            info.bus_features, info.max_areas
        )),
    }
    let mut conn = Connection::new(session, machine.platform());

    let value = 0x5a5a_0000 | u32::from(own_id);
    match conn.session().ping(value) {
        Ok(v) if v == value => r.pass(format_args!("{t}: ping ({value:#x} echoed)")),
        Ok(v) => r.fail(format_args!("{t}: ping: sent {value:#x}, got {v:#x}")),
        Err(e) => r.fail(format_args!("{t}: ping: {e}")),
    }

    match share_one_page(&mut conn) {
        Ok(d) => r.pass(format_args!(
            "{t}: FFA_MEM_SHARE + AREA_SHARE, AREA_UNSHARE + FFA_MEM_RECLAIM ({d})"
        )),
        Err(e) => r.fail(format_args!("{t}: memory share: {e}")),
    }

    match conn.list_devices() {
        Ok(devices) if !devices.is_empty() => {
            r.pass(format_args!(
                "{t}: GET_DEVICES ({} device(s): {})",
                devices.len(),
                describe(&devices)
            ));
            for dev in &devices {
                match dev.info.device_id {
                    virtio_ids::ENTROPY => exercise_rng(&mut conn, r, t, dev.dev_num),
                    virtio_ids::BLOCK => exercise_blk(&mut conn, r, t),
                    virtio_ids::CONSOLE => exercise_console(&mut conn, r, t),
                    virtio_ids::VSOCK => exercise_vsock(&mut conn, r, t),
                    _ => initialise_other(&mut conn, r, t, dev),
                }
            }
        }
        Ok(_) => r.fail(format_args!(
            "{t}: GET_DEVICES: the partition offers no device"
        )),
        Err(e) => r.fail(format_args!("{t}: GET_DEVICES: {e}")),
    }

    if dialect == Dialect::G2 && info.modes.events == Events::Indirect {
        // Offered indirect messages, the G2 session waited for pushed EVENT_USED as Linux's
        // driver does; a kick was needed only if one never came (a refused push the
        // partition's retry timer did not send again).
        match conn.session().kicks_for_pushed() {
            0 => r.pass(format_args!(
                "{t}: every pushed EVENT_USED came without a kick (refused ones by the \
                 partition's retry timer)"
            )),
            k => r.fail(format_args!(
                "{t}: {k} kick(s) sent for pushed events that never came"
            )),
        }
    }
    if dialect == Dialect::G3 {
        match conn.session().reset() {
            Ok(()) => r.pass(format_args!("{t}: bus RESET")),
            Err(e) => r.fail(format_args!("{t}: bus RESET: {e}")),
        }
    }
}

fn describe(devices: &[DeviceSummary]) -> String {
    let mut s = String::new();
    for (i, d) in devices.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}{} {}", d.dev_num, device_name(d.info.device_id));
    }
    s
}

/// Bytes the rng is read in each further mode, in 4 KiB requests.
const MODE_READ_BYTES: usize = 16 * 1024;

/// Step 5: the rng over the further modes G3 defines — direct requests with a notification
/// (rung once the first EVENT_USED is queued, then drained), direct requests with events
/// pushed by FFA_MSG_SEND2, and requests by FFA_MSG_SEND2 + FFA_RUN with answers and events
/// pushed back. (The G2 run above took pushed EVENT_USED where indirect messages are offered,
/// else watched its used rings.)
fn exercise_modes<M: Machine, W: Write>(
    machine: &mut M,
    r: &mut Report<W>,
    own_id: u16,
    partition: Partition,
) {
    let indirect = msg::features::INDIRECT_RX | msg::features::INDIRECT_TX;
    let mut offers_indirect = true;
    for (t, messaging, events) in [
        ("g3 direct+notify", Messaging::Direct, Events::Notify),
        ("g3 direct+pushed", Messaging::Direct, Events::Indirect),
        ("g3 indirect", Messaging::Indirect, Events::Indirect),
    ] {
        if events == Events::Indirect && !offers_indirect {
            // The manifest leaves indirect messages off (the shipped one does: kernels without
            // FF-A framework notifications fail G2's probe with them).
            r.line(format_args!(
                "INFO n/a {t}: the partition offers no indirect messages (messaging-method bit 2)"
            ));
            continue;
        }
        let Some(conduit) = machine.conduit() else {
            r.fail(format_args!(
                "{t}: no conduit (the previous session kept it)"
            ));
            return;
        };
        let modes = Modes { messaging, events };
        let session = match BusSession::connect_modes(
            Ffa::new(conduit),
            own_id,
            partition.id,
            Dialect::G3,
            modes,
        ) {
            Ok(s) => s,
            Err(e) => {
                r.fail(format_args!("{t}: session: {e}"));
                continue;
            }
        };
        offers_indirect = session.info().bus_features & indirect == indirect;
        let mut conn = Connection::new(session, machine.platform());
        let rng = conn.list_devices().ok().and_then(|devices| {
            devices
                .iter()
                .find(|d| d.info.device_id == virtio_ids::ENTROPY)
                .map(|d| d.dev_num)
        });
        let Some(dev) = rng else {
            r.fail(format_args!("{t}: no rng device listed"));
            continue;
        };
        let read = RngDriver::open(&mut conn, dev).and_then(|mut rng| {
            let mut bytes = Vec::new();
            let got = rng.read_in_requests(MODE_READ_BYTES, 4096, |chunk| {
                bytes.extend_from_slice(chunk);
                Ok(())
            });
            let closed = rng.close();
            got.and(closed).map(|()| (bytes, rng.completed()))
        });
        match read {
            Ok((bytes, requests)) => match quality::check(&bytes) {
                Ok(stats) => r.pass(format_args!(
                    "{t}: rng {dev}: read {} bytes in {requests} requests ({stats}), closed",
                    bytes.len()
                )),
                Err(e) => r.fail(format_args!("{t}: rng {dev}: entropy check: {e}")),
            },
            Err(e) => r.fail(format_args!("{t}: rng {dev}: {e}")),
        }
        if events == Events::Notify {
            // The first completion queued an EVENT_USED and rang the bound notification (the
            // driver found the buffer in the used ring at once and did not wait for it).
            let rung = conn.session().ffa().notification_get(own_id);
            let polled = conn.session().drain_events();
            match (rung, polled) {
                (Ok(bits), Ok(events)) if bits & 1 != 0 && !events.is_empty() => {
                    r.pass(format_args!(
                        "{t}: notification 0 rung by the partition and drained \
                         (FFA_NOTIFICATION_GET {bits:#x}), {} event(s) polled",
                        events.len()
                    ))
                }
                (Ok(bits), Ok(events)) => r.fail(format_args!(
                    "{t}: notification bitmap {bits:#x}, {} event(s) polled",
                    events.len()
                )),
                (Err(e), _) => r.fail(format_args!("{t}: FFA_NOTIFICATION_GET: {e}")),
                (_, Err(e)) => r.fail(format_args!("{t}: EVENT_POLL: {e}")),
            }
        }
        let stray = conn.session().stray_messages();
        match conn.session().reset() {
            Ok(()) if stray == 0 => r.pass(format_args!("{t}: bus RESET, no stray message")),
            Ok(()) => r.fail(format_args!("{t}: {stray} stray indirect message(s)")),
            Err(e) => r.fail(format_args!("{t}: bus RESET: {e}")),
        }
    }
}

/// How many execution contexts, in words.
fn contexts_text(contexts: Option<u16>) -> String {
    match contexts {
        Some(1) => String::from("1 execution context"),
        Some(n) => format!("{n} execution contexts"),
        None => String::from("no execution-context count (not a PE endpoint)"),
    }
}

/// Step 6: the concurrent test ([`crate::concurrent`]) from every CPU (at most
/// [`concurrent::MAX_CPUS`]) against the partition, on a clean G3 bus instance.
fn exercise_concurrent<M: Machine, W: Write>(
    machine: &mut M,
    r: &mut Report<W>,
    own_id: u16,
    partition: Partition,
) {
    let (sp_id, contexts) = (partition.id, partition.contexts);
    r.info(format_args!(
        "concurrent: the partition reports {}",
        contexts_text(contexts)
    ));
    // A clean G3 bus instance (VERSION negotiated) whose devices the CPUs then list.
    let Some(conduit) = machine.conduit() else {
        r.fail(format_args!(
            "concurrent: no conduit (the previous session kept it)"
        ));
        return;
    };
    let mut ffa = Ffa::new(conduit);
    if let Err(e) = crate::conformance::reset(&mut ffa, own_id, sp_id) {
        r.fail(format_args!("concurrent: bus RESET: {e}"));
        return;
    }
    let mut session = match BusSession::connect(ffa, own_id, sp_id, Dialect::G3, false) {
        Ok(s) => s,
        Err(e) => {
            r.fail(format_args!("concurrent: session: {e}"));
            return;
        }
    };
    let devices = match session.devices() {
        Ok(d) => d,
        Err(e) => {
            r.fail(format_args!("concurrent: GET_DEVICES: {e}"));
            return;
        }
    };
    let job = Job::new(own_id, sp_id, concurrent::REQUESTS_PER_CPU, &devices);
    match machine.start_cpus(concurrent::MAX_CPUS) {
        CpuStart::One(why) => r.info(format_args!("n/a concurrent: {why}")),
        CpuStart::Failed(why) => r.fail(format_args!("concurrent: starting the CPUs: {why}")),
        CpuStart::Ready(cpus) => {
            let results = machine.run_on_cpus(&job);
            concurrent_lines(r, &job, cpus, contexts, &results);
        }
    }
    match session.ping(0x5a5a_c0c0) {
        Ok(0x5a5a_c0c0) => {}
        Ok(v) => r.fail(format_args!("concurrent: PING afterwards echoed {v:#x}")),
        Err(e) => r.fail(format_args!("concurrent: PING afterwards: {e}")),
    }
    if let Err(e) = session.reset() {
        r.fail(format_args!("concurrent: bus RESET afterwards: {e}"));
    }
}

/// The concurrent test's lines: one `INFO` per CPU, then the verdict.
fn concurrent_lines<W: Write>(
    r: &mut Report<W>,
    job: &Job,
    cpus: usize,
    contexts: Option<u16>,
    results: &[Result<CpuCounts, CpuFailure>],
) {
    for (cpu, result) in results.iter().enumerate() {
        match result {
            Ok(c) => r.info(format_args!(
                "concurrent: cpu {cpu}: {} done, busy {} (FFA_ERROR BUSY {}, bus sentinel {}), \
                 errors {}",
                c.done,
                c.busy(),
                c.ffa_busy,
                c.bus_busy,
                c.errors
            )),
            Err(f) => r.info(format_args!("concurrent: cpu {cpu}: {f}")),
        }
    }
    let (t, failed) = concurrent::judge(job.requests, contexts, results);
    let n = results.len();
    let mp = contexts.is_some_and(|c| usize::from(c) >= n);
    let rule = if mp {
        "none allowed"
    } else {
        "allowed, fewer contexts than CPUs"
    };
    let mut what = format!(
        "concurrent: {n} CPUs x {} requests: {} done, busy {}, errors {} \
         (PING and GET_DEVICES; {}: busy {rule})",
        job.requests,
        t.done,
        t.busy(),
        t.errors,
        contexts_text(contexts)
    );
    if n != cpus {
        let _ = write!(what, " [{cpus} CPUs started, {n} results]");
    }
    match failed {
        None => r.pass(format_args!("{what}")),
        Some(why) => r.fail(format_args!("{what}: {why}")),
    }
}

/// Shares one page with known contents and takes it back; returns a description.
fn share_one_page<C: Conduit, P: Platform>(
    conn: &mut Connection<C, P>,
) -> Result<String, HostError> {
    let pa = conn
        .platform()
        .alloc_pages(1)
        .ok_or(HostError::Device("out of driver memory"))?;
    let result = (|| {
        let pattern: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        conn.platform().write(pa, &pattern)?;
        let area = conn.session().share(pa, 1)?;
        let unshared = conn.session().unshare(&area);
        unshared?;
        // The partition must not have changed the page (it was shared for reading back only).
        let mut back = alloc::vec![0u8; 4096];
        conn.platform().read(pa, &mut back)?;
        if back != pattern {
            return Err(HostError::Device("the shared page changed"));
        }
        Ok(format!("handle {:#x}, area {}", area.handle, area.id))
    })();
    conn.platform().free_pages(pa, 1);
    result
}

fn exercise_rng<C: Conduit, P: Platform, W: Write>(
    conn: &mut Connection<C, P>,
    r: &mut Report<W>,
    t: &str,
    dev: u16,
) {
    let mut rng = match RngDriver::open(conn, dev) {
        Ok(rng) => {
            r.pass(format_args!(
                "{t}: rng {dev}: initialised (VERSION_1 | ACCESS_PLATFORM, queue and buffer shared, DRIVER_OK)"
            ));
            rng
        }
        Err(e) => {
            r.fail(format_args!("{t}: rng {dev}: initialise: {e}"));
            return;
        }
    };
    let first = match rng.read(RNG_READ_BYTES) {
        Ok(bytes) if bytes.len() == RNG_READ_BYTES => {
            match quality::check(&bytes) {
                Ok(stats) => r.pass(format_args!(
                    "{t}: rng {dev}: read {} bytes ({stats})",
                    bytes.len()
                )),
                Err(e) => r.fail(format_args!("{t}: rng {dev}: entropy check: {e}")),
            }
            Some(bytes)
        }
        Ok(bytes) => {
            r.fail(format_args!(
                "{t}: rng {dev}: read: {} bytes instead of {RNG_READ_BYTES}",
                bytes.len()
            ));
            None
        }
        Err(e) => {
            r.fail(format_args!("{t}: rng {dev}: read: {e}"));
            None
        }
    };
    match rng.read(RNG_SECOND_READ_BYTES) {
        Ok(second) => {
            let repeated = first
                .as_deref()
                .and_then(|f| f.get(..second.len()))
                .is_some_and(|f| f == second.as_slice());
            if repeated {
                r.fail(format_args!(
                    "{t}: rng {dev}: second read repeats the first"
                ));
            } else {
                r.pass(format_args!(
                    "{t}: rng {dev}: second read ({} bytes, differs from the first)",
                    second.len()
                ));
            }
        }
        Err(e) => r.fail(format_args!("{t}: rng {dev}: second read: {e}")),
    }
    match rng.close() {
        Ok(()) => r.pass(format_args!(
            "{t}: rng {dev}: closed (device reset, areas unshared and reclaimed)"
        )),
        Err(e) => r.fail(format_args!("{t}: rng {dev}: close: {e}")),
    }
}

/// Bytes the block check writes and reads back.
const BLK_CHECK_BYTES: usize = 32 * 1024;

/// virtio-blk: a pattern written across the disk's first sectors, read back and compared,
/// then the device reset and its memory taken back.
fn exercise_blk<C: Conduit, P: Platform, W: Write>(
    conn: &mut Connection<C, P>,
    r: &mut Report<W>,
    t: &str,
) {
    let result = conn.blk().and_then(|mut disk| {
        let capacity = disk.capacity();
        let pattern: Vec<u8> = (0..BLK_CHECK_BYTES)
            .map(|i| i.to_le_bytes()[0].wrapping_mul(31).wrapping_add(7))
            .collect();
        let checked = disk
            .write(0, &pattern)
            .and_then(|()| disk.read(0, pattern.len()))
            .and_then(|back| {
                if back == pattern {
                    Ok(())
                } else {
                    Err(HostError::Device("read back differs"))
                }
            });
        let closed = disk.close();
        checked.and(closed).map(|()| capacity)
    });
    match result {
        Ok(sectors) => r.pass(format_args!(
            "{t}: blk: {BLK_CHECK_BYTES} bytes written, read back equal ({sectors}-sector disk), closed"
        )),
        Err(e) => r.fail(format_args!("{t}: blk: {e}")),
    }
}

/// virtio-console: the partition shell answers `version`.
fn exercise_console<C: Conduit, P: Platform, W: Write>(
    conn: &mut Connection<C, P>,
    r: &mut Report<W>,
    t: &str,
) {
    let result = conn.console().and_then(|mut console| {
        let answer = console
            .read_until(vmsg_host::console::PROMPT)
            .and_then(|_| console.command("version"));
        let closed = console.close();
        answer.and_then(|a| closed.map(|()| a))
    });
    match result {
        Ok(answer) if answer.contains("vmsg-sp") => r.pass(format_args!(
            "{t}: console: the shell answered `version`: {}",
            answer.trim()
        )),
        Ok(answer) => r.fail(format_args!("{t}: console: `version` answered {answer:?}")),
        Err(e) => r.fail(format_args!("{t}: console: {e}")),
    }
}

/// virtio-vsock: a stream to the echo service (port 7), a message there and back, shut down.
fn exercise_vsock<C: Conduit, P: Platform, W: Write>(
    conn: &mut Connection<C, P>,
    r: &mut Report<W>,
    t: &str,
) {
    const MESSAGE: &[u8] = b"hello from the normal world over virtio-vsock\n";
    let result = conn.vsock().and_then(|mut vsock| {
        let echoed = vsock.connect(7).and_then(|local| {
            vsock.send(local, MESSAGE)?;
            let back = vsock.read_exact(local, MESSAGE.len())?;
            vsock.shutdown(local)?;
            Ok(back)
        });
        let closed = vsock.close();
        echoed.and_then(|b| closed.map(|()| b))
    });
    match result {
        Ok(back) if back == MESSAGE => r.pass(format_args!(
            "{t}: vsock: {} bytes to the echo service (port 7) and back, shut down",
            MESSAGE.len()
        )),
        Ok(back) => r.fail(format_args!(
            "{t}: vsock: echo returned {} bytes that differ",
            back.len()
        )),
        Err(e) => r.fail(format_args!("{t}: vsock: {e}")),
    }
}

/// A device the payload has no driver for: feature negotiation, then reset.
fn initialise_other<C: Conduit, P: Platform, W: Write>(
    conn: &mut Connection<C, P>,
    r: &mut Report<W>,
    t: &str,
    dev: &DeviceSummary,
) {
    let name = device_name(dev.info.device_id);
    let n = dev.dev_num;
    let layout = conn.session().info().dialect.layout();
    let result = (|| -> Result<u64, HostError> {
        conn.share_dma_pool()?;
        let mut client = DeviceClient::new(conn.session(), n, layout)?;
        let features = client.initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM)?;
        client.reset()?;
        Ok(features)
    })();
    match result {
        Ok(features) => r.pass(format_args!(
            "{t}: {name} {n}: initialised (features {features:#x}) and reset (no driver in the payload)"
        )),
        Err(e) => r.fail(format_args!("{t}: {name} {n}: initialise: {e}")),
    }
}
