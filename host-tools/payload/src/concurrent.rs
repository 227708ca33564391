//! The concurrent test: every CPU of the machine drives the partition at once.
//!
//! FF-A from any CPU of the normal world is the same endpoint (the payload is one VM: id 0
//! under Hafnium without a hypervisor), so every CPU talks to the one bus instance of that
//! endpoint. Only requests that need no per-driver state can be sent from several CPUs at
//! once: each CPU sends [`Job::requests`] requests of its own, PING (a value only that CPU
//! uses) and GET_DEVICES (the first window, which must list the devices the boot CPU found)
//! in turn, by `FFA_MSG_SEND_DIRECT_REQ2`, in registers only (no RX/TX buffer, no virtqueue:
//! the endpoint has one rng queue, which two CPUs could not share safely).
//!
//! Each CPU counts requests completed, busy answers (`FFA_ERROR(BUSY)` from the SPMC while
//! the partition's execution context runs another CPU's request, and the bus busy sentinel,
//! an all-zero answer) and other errors. A busy answer is retried with a short back-off; each
//! CPU retries at most [`MAX_BUSY_PER_CPU`] busy answers in all, after which its current request and
//! every later one count as errors (so a partition that stays busy ends the test, failed, in
//! bounded time).
//!
//! Pass: every request completed; and when `FFA_PARTITION_INFO_GET` reports at least as many
//! execution contexts as CPUs took part, no busy answer at all (an MP partition must serve
//! every CPU at once). A partition with fewer contexts (one: UP) may answer busy; the answers
//! are counted and printed. With one CPU the test is not applicable (`INFO n/a`).
//!
//! This module is what each CPU does and the verdict ([`judge`]); the flow's step that opens
//! the session, has the machine start the CPUs and prints the lines is
//! `flow::exercise_concurrent`.

use alloc::{format, string::String, vec::Vec};
use core::fmt;

use ffa::{
    Conduit, Ffa, VIRTIO_MSG_DEVICE_UUID,
    arm_ffa::FfaError,
    bus::{MAX_MSG_SIZE, frame_to_regs, msg, regs_to_frame},
};
use virtio_msg::{
    Header,
    bus::{BusRequest, BusResponse, GetDevicesOrder},
    ids,
};

/// Requests each CPU sends.
pub const REQUESTS_PER_CPU: u32 = 200;
/// Most CPUs the test uses (the boot CPU included).
pub const MAX_CPUS: usize = 4;
/// Most busy answers one CPU retries over its whole share (about 350 per 200 requests were
/// seen under Hafnium with four CPUs and a UP partition, 2,000 in the simulated world).
pub const MAX_BUSY_PER_CPU: u32 = 200_000;
/// Device numbers the GET_DEVICES window covers (the first window, from 0).
pub const DEVICE_WINDOW: u16 = 256;

/// What every CPU of the concurrent test does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// The endpoint's own id (the same on every CPU).
    pub own_id: u16,
    /// The partition's id.
    pub sp_id: u16,
    /// Requests per CPU.
    pub requests: u32,
    /// Busy answers each CPU retries at most ([`MAX_BUSY_PER_CPU`]).
    pub max_busy: u32,
    /// Devices 0..[`DEVICE_WINDOW`] the partition offers, one bit each (LSB first), as the
    /// GET_DEVICES window from 0 must list them.
    pub devices: [u8; DEVICE_WINDOW as usize / 8],
}

impl Job {
    /// A job for `requests` requests per CPU that expects `devices` (numbers of 256 and above
    /// are outside the window and ignored).
    pub fn new(own_id: u16, sp_id: u16, requests: u32, devices: &[u16]) -> Self {
        let mut bitmap = [0u8; DEVICE_WINDOW as usize / 8];
        for &d in devices {
            if let Some(byte) = bitmap.get_mut(usize::from(d / 8)) {
                *byte |= 1 << (d % 8);
            }
        }
        Self {
            own_id,
            sp_id,
            requests,
            max_busy: MAX_BUSY_PER_CPU,
            devices: bitmap,
        }
    }
}

/// Why one request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The FF-A call failed otherwise than with BUSY.
    Ffa(ffa::Error),
    /// Still busy once the CPU had retried [`Job::max_busy`] busy answers.
    StayedBusy,
    /// The partition answered the bus ERROR frame for the request.
    Refused,
    /// The answer was not the response to the request (what was wrong).
    Answer(&'static str),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ffa(e) => write!(f, "{e}"),
            Self::StayedBusy => write!(f, "still busy when this CPU had retried its most"),
            Self::Refused => write!(f, "answered with the bus ERROR frame"),
            Self::Answer(what) => write!(f, "{what}"),
        }
    }
}

/// What one CPU counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuCounts {
    /// Requests answered correctly.
    pub done: u32,
    /// `FFA_ERROR(BUSY)` answers (each retried).
    pub ffa_busy: u32,
    /// Bus busy sentinels (all-zero answers, each retried).
    pub bus_busy: u32,
    /// Requests that failed.
    pub errors: u32,
    /// The first failure: request number and why.
    pub first_error: Option<(u32, RequestError)>,
}

impl CpuCounts {
    /// Busy answers of both kinds.
    pub fn busy(&self) -> u32 {
        self.ffa_busy.saturating_add(self.bus_busy)
    }
}

/// Why a CPU brought back no counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuFailure {
    /// It did not finish in time.
    TimedOut {
        /// How long the boot CPU waited for it, in milliseconds.
        waited_ms: u64,
    },
    /// It stopped without a result (what the machine knows).
    Lost(String),
}

impl fmt::Display for CpuFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut { waited_ms } => write!(f, "no result after {waited_ms} ms"),
            Self::Lost(why) => write!(f, "{why}"),
        }
    }
}

/// A CPU's share of the test: `job.requests` requests from `cpu` (0 is the boot CPU) over
/// `ffa`, which needs no RX/TX buffers (everything goes in registers).
pub fn drive<C: Conduit>(ffa: &mut Ffa<C>, job: &Job, cpu: usize) -> CpuCounts {
    let mut counts = CpuCounts::default();
    // The tag makes this CPU's PING values and tokens its own.
    let tag = u16::try_from(cpu).unwrap_or(u16::MAX);
    for i in 0..job.requests {
        let [lo, hi, ..] = i.to_le_bytes();
        let number = u16::from_le_bytes([lo, hi]);
        let token = ((tag.wrapping_add(1) << 12) | (number & 0x0fff)).max(1);
        let request = if i % 2 == 0 {
            BusRequest::Ping {
                data: (u32::from(tag) << 24) | i,
            }
        } else {
            BusRequest::GetDevices {
                offset: 0,
                count: DEVICE_WINDOW,
            }
        };
        match one_request(ffa, job, &request, token, &mut counts) {
            Ok(()) => counts.done = counts.done.saturating_add(1),
            Err(e) => {
                counts.errors = counts.errors.saturating_add(1);
                counts.first_error.get_or_insert((i, e));
            }
        }
    }
    counts
}

/// Sends `request` until it is answered other than busy, counting busy answers (while the
/// CPU's total stays within [`Job::max_busy`]), and checks the answer.
fn one_request<C: Conduit>(
    ffa: &mut Ffa<C>,
    job: &Job,
    request: &BusRequest,
    token: u16,
    counts: &mut CpuCounts,
) -> Result<(), RequestError> {
    let mut frame = [0u8; MAX_MSG_SIZE];
    let n = request
        .encode(token, &mut frame)
        .map_err(|_| RequestError::Answer("request does not encode"))?;
    let payload = frame_to_regs(frame.get(..n).unwrap_or_default());
    let mut backoff = 16u32;
    while counts.busy() <= job.max_busy {
        match ffa.direct_req2(job.own_id, job.sp_id, VIRTIO_MSG_DEVICE_UUID, payload) {
            Err(ffa::Error::Ffa(FfaError::Busy)) => {
                counts.ffa_busy = counts.ffa_busy.saturating_add(1);
            }
            Err(e) => return Err(RequestError::Ffa(e)),
            Ok(regs) if regs.iter().all(|r| *r == 0) => {
                counts.bus_busy = counts.bus_busy.saturating_add(1);
            }
            Ok(regs) => return check_answer(&regs_to_frame(&regs), job, request, token),
        }
        for _ in 0..backoff {
            core::hint::spin_loop();
        }
        backoff = backoff.saturating_mul(2).min(1 << 12);
    }
    Err(RequestError::StayedBusy)
}

/// Whether `answer` is the right response to `request` (sent with `token`).
fn check_answer(
    answer: &[u8],
    job: &Job,
    request: &BusRequest,
    token: u16,
) -> Result<(), RequestError> {
    let header = Header::parse(answer).map_err(|_| RequestError::Answer("bad header"))?;
    if header.is_bus() && header.is_response() && header.msg_id == msg::ERROR {
        return Err(RequestError::Refused);
    }
    let id = match request {
        BusRequest::Ping { .. } => ids::bus::PING,
        BusRequest::GetDevices { .. } => ids::bus::GET_DEVICES,
    };
    // G3's field order (the test runs in a G3 session).
    let (header, response) = BusResponse::decode(answer, GetDevicesOrder::NextThenCount, id)
        .map_err(|_| RequestError::Answer("not the response to the request"))?;
    if header.token != token {
        return Err(RequestError::Answer("token differs"));
    }
    match (request, response) {
        (BusRequest::Ping { data }, BusResponse::Ping { data: echoed }) if echoed == *data => {
            Ok(())
        }
        (BusRequest::Ping { .. }, _) => Err(RequestError::Answer("PING echo differs")),
        (
            BusRequest::GetDevices { .. },
            BusResponse::Devices {
                offset: 0,
                count,
                bitmap,
                ..
            },
        ) => {
            // Bits past `count` are outside the answered window (and must be clear).
            let listed = (0..DEVICE_WINDOW).all(|d| {
                let bit = |map: &[u8]| {
                    map.get(usize::from(d / 8))
                        .is_some_and(|b| b & (1 << (d % 8)) != 0)
                };
                let want = bit(&job.devices) && d < count;
                bit(bitmap) == want
            });
            if listed {
                Ok(())
            } else {
                Err(RequestError::Answer(
                    "GET_DEVICES lists other devices than at the start",
                ))
            }
        }
        (BusRequest::GetDevices { .. }, _) => Err(RequestError::Answer("GET_DEVICES window")),
    }
}

/// Totals over the CPUs that brought back counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests answered correctly.
    pub done: u32,
    /// `FFA_ERROR(BUSY)` answers.
    pub ffa_busy: u32,
    /// Bus busy sentinels.
    pub bus_busy: u32,
    /// Failed requests, and requests of CPUs that brought back nothing.
    pub errors: u32,
}

impl Totals {
    /// Busy answers of both kinds.
    pub fn busy(&self) -> u32 {
        self.ffa_busy.saturating_add(self.bus_busy)
    }
}

/// The verdict on the results of `cpus` CPUs of `requests` requests each, against a partition
/// reporting `contexts` execution contexts: the totals and, if it failed, why.
pub fn judge(
    requests: u32,
    contexts: Option<u16>,
    results: &[Result<CpuCounts, CpuFailure>],
) -> (Totals, Option<String>) {
    let mut t = Totals::default();
    let mut why = Vec::new();
    for (cpu, result) in results.iter().enumerate() {
        match result {
            Ok(c) => {
                t.done = t.done.saturating_add(c.done);
                t.ffa_busy = t.ffa_busy.saturating_add(c.ffa_busy);
                t.bus_busy = t.bus_busy.saturating_add(c.bus_busy);
                t.errors = t.errors.saturating_add(c.errors);
                if let Some((i, e)) = c.first_error {
                    why.push(format!("cpu {cpu}: request {i}: {e}"));
                }
            }
            Err(f) => {
                t.errors = t.errors.saturating_add(requests);
                why.push(format!("cpu {cpu}: {f}"));
            }
        }
    }
    let cpus = u32::try_from(results.len()).unwrap_or(u32::MAX);
    let mp = contexts.is_some_and(|n| u32::from(n) >= cpus);
    if mp && t.busy() > 0 {
        why.push(format!(
            "{} busy answer(s) from a partition with {} execution contexts for {cpus} CPUs",
            t.busy(),
            contexts.unwrap_or_default()
        ));
    }
    if why.is_empty() && t.done != cpus.saturating_mul(requests) {
        why.push(String::from("requests went missing"));
    }
    (t, (!why.is_empty()).then(|| why.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(done: u32, ffa_busy: u32) -> Result<CpuCounts, CpuFailure> {
        Ok(CpuCounts {
            done,
            ffa_busy,
            ..CpuCounts::default()
        })
    }

    #[test]
    fn busy_is_allowed_with_fewer_contexts_than_cpus() {
        let (t, why) = judge(
            200,
            Some(1),
            &[ok(200, 3), ok(200, 0), ok(200, 9), ok(200, 1)],
        );
        assert_eq!(why, None);
        assert_eq!((t.done, t.busy(), t.errors), (800, 13, 0));
    }

    #[test]
    fn busy_fails_with_a_context_per_cpu() {
        let (t, why) = judge(
            200,
            Some(4),
            &[ok(200, 0), ok(200, 2), ok(200, 0), ok(200, 0)],
        );
        assert_eq!(t.busy(), 2);
        assert!(why.unwrap().contains("2 busy answer(s)"));
        let (_, why) = judge(
            200,
            Some(4),
            &[ok(200, 0), ok(200, 0), ok(200, 0), ok(200, 0)],
        );
        assert_eq!(why, None);
        // More contexts than CPUs: still no busy answer allowed.
        let (_, why) = judge(200, Some(8), &[ok(200, 0), ok(200, 1)]);
        assert!(why.is_some());
    }

    #[test]
    fn errors_and_missing_cpus_fail() {
        let bad = Ok(CpuCounts {
            done: 199,
            errors: 1,
            first_error: Some((7, RequestError::Refused)),
            ..CpuCounts::default()
        });
        let (t, why) = judge(200, Some(1), &[ok(200, 0), bad]);
        assert_eq!((t.done, t.errors), (399, 1));
        assert_eq!(
            why.as_deref(),
            Some("cpu 1: request 7: answered with the bus ERROR frame")
        );
        let lost = Err(CpuFailure::TimedOut { waited_ms: 5 });
        let (t, why) = judge(200, Some(1), &[ok(200, 0), lost]);
        assert_eq!((t.done, t.errors), (200, 200));
        assert_eq!(why.as_deref(), Some("cpu 1: no result after 5 ms"));
    }

    /// A conduit that answers `busy` times FFA_ERROR(BUSY), then `sentinels` times the bus
    /// busy sentinel, then PING with the echo (and anything else with an empty answer).
    struct Scripted {
        busy: u32,
        sentinels: u32,
        calls: u32,
    }

    impl Conduit for Scripted {
        fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
            self.calls += 1;
            let mut out = [0u64; 18];
            if self.busy > 0 {
                self.busy -= 1;
                out[0] = 0x8400_0060; // FFA_ERROR
                out[2] = u64::from((-4i32).cast_unsigned()); // BUSY
                return out;
            }
            out[0] = 0xC400_008E; // FFA_MSG_SEND_DIRECT_RESP2
            out[1] = (regs[1] & 0xffff) << 16 | regs[1] >> 16;
            if self.sentinels > 0 {
                self.sentinels -= 1;
                return out;
            }
            let request: [u64; 14] = regs[4..18].try_into().unwrap();
            let frame = regs_to_frame(&request);
            let (h, req) = BusRequest::decode(&frame).unwrap();
            let BusRequest::Ping { data } = req else {
                return out;
            };
            let mut answer = [0u8; MAX_MSG_SIZE];
            let n = BusResponse::Ping { data }
                .encode(GetDevicesOrder::NextThenCount, &h, &mut answer)
                .unwrap();
            out[4..18].copy_from_slice(&frame_to_regs(&answer[..n]));
            out
        }
        fn tx(&mut self) -> &mut [u8] {
            &mut []
        }
        fn rx(&self) -> &[u8] {
            &[]
        }
    }

    #[test]
    fn busy_answers_are_retried_and_counted() {
        let job = Job::new(0, 0x8001, 1, &[]);
        let mut ffa = Ffa::new(Scripted {
            busy: 5,
            sentinels: 3,
            calls: 0,
        });
        let c = drive(&mut ffa, &job, 2);
        assert_eq!((c.done, c.ffa_busy, c.bus_busy, c.errors), (1, 5, 3, 0));
        assert_eq!(ffa.conduit().calls, 9);
    }

    #[test]
    fn a_partition_that_stays_busy_ends_the_share_in_bounded_time() {
        let mut job = Job::new(0, 0x8001, 6, &[]);
        job.max_busy = 40;
        let mut ffa = Ffa::new(Scripted {
            busy: u32::MAX,
            sentinels: 0,
            calls: 0,
        });
        let c = drive(&mut ffa, &job, 1);
        assert_eq!((c.done, c.errors, c.ffa_busy), (0, 6, 41));
        assert_eq!(c.first_error, Some((0, RequestError::StayedBusy)));
        // Once the budget is spent the later requests are not even sent.
        assert_eq!(ffa.conduit().calls, 41);
    }

    #[test]
    fn the_job_keeps_the_first_window() {
        let job = Job::new(0, 0x8001, 2, &[0, 1, 3, 9, 300]);
        assert_eq!(job.devices[0], 0b1011);
        assert_eq!(job.devices[1], 0b10);
        assert!(job.devices[2..].iter().all(|b| *b == 0));
    }
}
