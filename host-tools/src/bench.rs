//! `vmsg bench`: what a request costs, counted exactly.
//!
//! Scenarios: virtio-rng 4 KiB requests at queue depth 1 and 32, virtio-blk 4 KiB reads and
//! writes at depth 1, each in G3 with polling, G3 with a notification, and G2, the drivers
//! accepting no ring feature; then a few (names ending in `-ring`) with VIRTIO_F_INDIRECT_DESC
//! and VIRTIO_F_EVENT_IDX accepted (virtio-blk requests one indirect table each).
//!
//! Each scenario runs the partition in the inline simulated world
//! ([`InlineSystem`](crate::sim::inline::InlineSystem): one thread, the message loop's own
//! per-message function) and drives its devices with the host driver library, then reports
//! per completed request:
//! - the FF-A calls of each side by function id (the simulator counts every call through its
//!   SPMC; the partition's direct responses are its calls too) — exact, repeatable;
//! - the partition's instructions, when run under callgrind (`make bench` does): everything
//!   inside `sp::partition::handle_message`, and the partition's decoding of each request and
//!   encoding of each answer (`sim::inline`'s `partition_decode`/`partition_encode`, the
//!   functions of the loop's `Ffa::call`), minus what the simulated SPMC and the simulated
//!   mapper cost inside them (`ffa::sim::*`), from callgrind's own inclusive call costs;
//! - wall-clock throughput in the simulator (printed for orientation; never asserted).

pub mod boot;

use std::{collections::BTreeMap, time::Instant};

use ffa::bus::{BusConfig, Dialect};
use serde::Serialize;
use virtio_msg::device::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC};

use crate::{
    connection::HostError,
    session::{Events, Messaging, Modes},
    sim::SP_ID,
    sim::inline::InlineSystem,
};

/// One measured configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    /// Stable name (used with `--only`).
    pub name: String,
    /// Device and operation driven: "rng", "blk-read", "blk-write".
    pub device: &'static str,
    /// Driver dialect.
    pub dialect: &'static str,
    /// How requests go and completions are found: "poll" (EVENT_POLL), "notify" (FF-A
    /// notification, then EVENT_POLL), "pushed" (direct requests, EVENT_USED pushed by
    /// FFA_MSG_SEND2), "indirect" (requests by FFA_MSG_SEND2 and FFA_RUN, answers and events
    /// pushed) or "used-ring" (G2 where the partition offers no indirect messaging: the used
    /// ring only; G2 "pushed" is what the partition offers by default where the SPMC has
    /// FFA_MSG_SEND2).
    pub events: &'static str,
    /// Requests in flight at once.
    pub depth: u16,
    /// The ring features the drivers accept (`Connection::set_ring_features`): 0, or
    /// VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX.
    pub ring_features: u64,
    /// Bytes per request.
    pub request_bytes: usize,
    /// Requests measured.
    pub requests: usize,
}

/// FF-A calls of one function by one side, per completed request.
#[derive(Clone, Debug, Serialize)]
pub struct CallCount {
    /// "driver" or "partition".
    pub side: &'static str,
    /// FF-A function name.
    pub function: String,
    /// Calls in the run.
    pub calls: u64,
    /// Calls per completed request.
    pub per_request: f64,
}

/// What one scenario measured.
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    /// The configuration.
    pub scenario: Scenario,
    /// Calls by side and function.
    pub calls: Vec<CallCount>,
    /// All FF-A calls (both sides) per completed request.
    pub calls_per_request: f64,
    /// Driver-side calls per completed request (world switches the driver causes).
    pub driver_calls_per_request: f64,
    /// Bytes per second through the simulator (wall clock; orientation only).
    pub bytes_per_second: f64,
    /// Partition instructions per request (callgrind only).
    pub partition_instructions_per_request: Option<f64>,
}

/// The whole report (`out/bench.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Every scenario measured.
    pub scenarios: Vec<Measured>,
    /// Size of the SP image (`out/sp.bin`), if given.
    pub image_bytes: Option<u64>,
    /// Instructions the SP image executes from its first to its first `FFA_MSG_WAIT`
    /// ([`boot`]), if counted.
    pub boot_instructions: Option<u64>,
    /// The `SMC`s it makes before that one, if counted.
    pub boot_smcs: Option<u64>,
}

/// The scenarios `vmsg bench` runs, with `requests` requests each (rounded up to whole
/// batches).
pub fn scenarios(requests: usize) -> Vec<Scenario> {
    let mut out = Vec::new();
    let modes = [
        (Dialect::G3, "poll"),
        (Dialect::G3, "notify"),
        (Dialect::G3, "pushed"),
        (Dialect::G3, "indirect"),
        (Dialect::G2, "used-ring"),
        (Dialect::G2, "pushed"),
    ];
    for (dialect, events) in modes {
        let d = dialect_name(dialect);
        for depth in [1u16, 32] {
            out.push(Scenario {
                name: format!("rng-4k-qd{depth}-{d}-{events}"),
                device: "rng",
                dialect: d,
                events,
                depth,
                ring_features: 0,
                request_bytes: 4096,
                requests: requests.div_ceil(usize::from(depth)) * usize::from(depth),
            });
        }
    }
    for device in ["blk-read", "blk-write"] {
        for (dialect, events) in modes {
            let d = dialect_name(dialect);
            out.push(Scenario {
                name: format!("{device}-4k-qd1-{d}-{events}"),
                device,
                dialect: d,
                events,
                depth: 1,
                ring_features: 0,
                request_bytes: 4096,
                requests,
            });
        }
    }
    // The ring features, G3 polling and notified.
    let ring = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
    for (device, events, depth) in [
        ("rng", "poll", 1u16),
        ("rng", "notify", 32),
        ("blk-read", "poll", 1),
        ("blk-write", "notify", 1),
    ] {
        let qd = if device == "rng" {
            format!("qd{depth}")
        } else {
            "qd1".into()
        };
        out.push(Scenario {
            name: format!("{device}-4k-{qd}-g3-{events}-ring"),
            device,
            dialect: "g3",
            events,
            depth,
            ring_features: ring,
            request_bytes: 4096,
            requests: requests.div_ceil(usize::from(depth)) * usize::from(depth),
        });
    }
    out
}

fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::G3 => "g3",
        Dialect::G2 => "g2",
    }
}

/// The FF-A name of function id `fid`.
pub fn function_name(fid: u32) -> String {
    let name = match fid {
        0x8400_0063 => "FFA_VERSION",
        0x8400_0061 => "FFA_ERROR",
        0x8400_0062 | 0xC400_0062 => "FFA_SUCCESS",
        0x8400_0069 => "FFA_ID_GET",
        0xC400_0066 => "FFA_RXTX_MAP",
        0x8400_0065 => "FFA_RX_RELEASE",
        0x8400_0064 => "FFA_FEATURES",
        0x8400_006D => "FFA_RUN",
        0x8400_0086 => "FFA_MSG_SEND2",
        0x8400_006B => "FFA_MSG_WAIT",
        0x8400_006F | 0xC400_006F => "FFA_MSG_SEND_DIRECT_REQ",
        0x8400_0070 | 0xC400_0070 => "FFA_MSG_SEND_DIRECT_RESP",
        0xC400_008D => "FFA_MSG_SEND_DIRECT_REQ2",
        0xC400_008E => "FFA_MSG_SEND_DIRECT_RESP2",
        0x8400_0073 | 0xC400_0073 => "FFA_MEM_SHARE",
        0x8400_0074 | 0xC400_0074 => "FFA_MEM_RETRIEVE_REQ",
        0x8400_0076 => "FFA_MEM_RELINQUISH",
        0x8400_0077 => "FFA_MEM_RECLAIM",
        0x8400_007D => "FFA_NOTIFICATION_BITMAP_CREATE",
        0x8400_007F => "FFA_NOTIFICATION_BIND",
        0x8400_0081 => "FFA_NOTIFICATION_SET",
        0x8400_0082 => "FFA_NOTIFICATION_GET",
        _ => return format!("{fid:#010x}"),
    };
    name.into()
}

/// Runs `scenario` once.
pub fn run(scenario: &Scenario) -> Result<Measured, HostError> {
    let dialect = match scenario.dialect {
        "g2" => Dialect::G2,
        _ => Dialect::G3,
    };
    let modes = match scenario.events {
        "notify" => Modes::direct(true),
        "pushed" => Modes {
            messaging: Messaging::Direct,
            events: Events::Indirect,
        },
        "indirect" => Modes {
            messaging: Messaging::Indirect,
            events: Events::Indirect,
        },
        _ => Modes::direct(false),
    };
    // G2 is offered pushed events where the partition offers indirect messaging and
    // `BusConfig::g2_pushed_events` is on (the default): "used-ring" turns both off.
    let config = BusConfig {
        indirect: scenario.events != "used-ring",
        g2_pushed_events: dialect == Dialect::G2 && scenario.events == "pushed",
        ..BusConfig::default()
    };
    let system = InlineSystem::start_with(config)?;
    let mut conn = system.connect_modes(1, dialect, modes)?;
    conn.set_ring_features(scenario.ring_features);
    let request = scenario.request_bytes;
    let (seconds, counted) = match scenario.device {
        "rng" => {
            let mut rng = conn.rng()?;
            rng.set_depth(scenario.depth);
            let batch = request * usize::from(scenario.depth);
            // One batch first, so that setup and the first fill do not count.
            rng.read_in_requests(batch, request, |_| Ok(()))?;
            system.world().reset_calls();
            let total = request * scenario.requests;
            let start = Instant::now();
            rng.read_in_requests(total, request, |_| Ok(()))?;
            (start.elapsed(), system.world().calls())
        }
        device => {
            let mut blk = conn.blk()?;
            let sectors = u64::try_from(request / 512).unwrap_or(1);
            let span = (blk.capacity() / sectors).max(1);
            let data = alloc::vec![0x5a_u8; request];
            let one = |blk: &mut crate::blk::BlkDriver<'_, _, _>, i: u64| match device {
                "blk-write" => blk.write((i % span) * sectors, &data),
                _ => blk.read((i % span) * sectors, request).map(|_| ()),
            };
            one(&mut blk, 0)?;
            system.world().reset_calls();
            let start = Instant::now();
            for i in 0..scenario.requests {
                one(&mut blk, u64::try_from(i).unwrap_or(0))?;
            }
            (start.elapsed(), system.world().calls())
        }
    };
    let seconds = seconds.as_secs_f64().max(1e-9);
    let faults = system.faults();
    if !faults.is_empty() {
        return Err(HostError::Device(
            "the partition faulted during the benchmark",
        ));
    }
    Ok(summarise(scenario, &counted, seconds))
}

fn summarise(scenario: &Scenario, counted: &BTreeMap<(u16, u32), u64>, seconds: f64) -> Measured {
    let requests = as_f64(scenario.requests);
    let mut calls = Vec::new();
    let (mut all, mut driver) = (0u64, 0u64);
    for (&(id, fid), &n) in counted {
        let side = if id == SP_ID { "partition" } else { "driver" };
        all += n;
        if side == "driver" {
            driver += n;
        }
        calls.push(CallCount {
            side,
            function: function_name(fid),
            calls: n,
            per_request: as_f64(n) / requests,
        });
    }
    Measured {
        scenario: scenario.clone(),
        calls,
        calls_per_request: as_f64(all) / requests,
        driver_calls_per_request: as_f64(driver) / requests,
        bytes_per_second: as_f64(scenario.requests * scenario.request_bytes) / seconds,
        partition_instructions_per_request: None,
    }
}

/// `n` as a float, for ratios in the report.
fn as_f64<N: TryInto<u32>>(n: N) -> f64 {
    // Counts in a benchmark run stay far below 2^32.
    n.try_into().map_or(f64::MAX, f64::from)
}

/// The partition's instructions in a callgrind output file written with
/// `--toggle-collect=*handle_message*` and the partition's decode and encode (so only what
/// runs inside the partition's per-message work is counted): the total minus the inclusive cost of the calls that partition code
/// makes into the simulator (`ffa::sim::`: the simulated SPMC and mapper, which stand in for
/// an SMC and for plain loads and stores). `None` if the file has no totals.
pub fn partition_instructions(callgrind_out: &str) -> Option<u64> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    // Resolves callgrind's name compression: "(id) name" defines, "(id)" refers.
    let mut resolve = |spec: &str| -> String {
        let spec = spec.trim();
        if let Some(rest) = spec.strip_prefix('(')
            && let Some((id, name)) = rest.split_once(')')
        {
            let name = name.trim();
            if name.is_empty() {
                return names.get(id).cloned().unwrap_or_default();
            }
            names.insert(id.to_string(), name.to_string());
            return name.to_string();
        }
        spec.to_string()
    };
    let is_sim = |name: &str| name.contains("ffa::sim::");
    let mut total: Option<u64> = None;
    let mut sim: u64 = 0;
    let mut caller = String::new();
    let mut callee = String::new();
    let mut call_cost_next = false;
    for line in callgrind_out.lines() {
        if let Some(rest) = line.strip_prefix("fn=") {
            caller = resolve(rest);
        } else if let Some(rest) = line.strip_prefix("cfn=") {
            callee = resolve(rest);
        } else if line.starts_with("calls=") {
            call_cost_next = true;
        } else if let Some(rest) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
        {
            total = rest.split_whitespace().next().and_then(|t| t.parse().ok());
        } else if call_cost_next {
            call_cost_next = false;
            if is_sim(&callee) && !is_sim(&caller) {
                let cost: u64 = line
                    .split_whitespace()
                    .last()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                sim += cost;
            }
        }
    }
    total.map(|t| t.saturating_sub(sim))
}

/// The report as a table.
pub fn table(results: &[Measured]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<28} {:>6} {:>7} {:>9} {:>10} {:>10}  calls per request",
        "scenario", "depth", "FF-A/rq", "driver/rq", "instr/rq", "MiB/s sim"
    );
    for m in results {
        let breakdown: Vec<String> = m
            .calls
            .iter()
            .map(|c| {
                format!(
                    "{} {} {:.3}",
                    c.side,
                    c.function.trim_start_matches("FFA_"),
                    c.per_request
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "{:<28} {:>6} {:>7.3} {:>9.3} {:>10} {:>10.1}  {}",
            m.scenario.name,
            m.scenario.depth,
            m.calls_per_request,
            m.driver_calls_per_request,
            m.partition_instructions_per_request
                .map_or_else(|| "-".to_string(), |i| format!("{i:.0}")),
            m.bytes_per_second / f64::from(1u32 << 20),
            breakdown.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_costs_inside_the_simulator_are_taken_out() {
        let out = "\
events: Ir
fn=(1) sp::partition::handle_message
10 100
cfn=(2) <ffa::sim::conduit::SimConduit as ffa::conduit::Conduit>::call
calls=1 0
11 400
cfn=(3) ffa::bus::instance::BusInstance::handle
calls=1 0
12 300
fn=(3)
20 300
cfn=(2)
calls=2 0
21 50
totals: 1200
";
        // 1200 collected, of which 400 + 50 inside the simulator.
        assert_eq!(partition_instructions(out), Some(750));
        assert_eq!(partition_instructions("events: Ir\n"), None);
    }
}
