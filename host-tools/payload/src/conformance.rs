//! The conformance suite (`vmsg_host::conformance`) on the payload's one endpoint: each check
//! gets a clean bus instance by a bus RESET (accepted in any state; it forgets areas, devices,
//! events and the negotiation), then a new session in the check's dialect.

use ffa::{
    Ffa, VIRTIO_MSG_DEVICE_UUID,
    bus::{Dialect, MAX_MSG_SIZE, frame_to_regs, msg, regs_to_frame},
};
use vmsg_host::{
    Connection,
    conformance::{self, Backend, CheckResult, Counts, Outcome, dialect_name, known_failure},
    session::{BusSession, SessionError},
};

use crate::{machine::Machine, report::Report};

/// A [`Backend`] over the payload's machine: the same endpoint, reset between checks.
pub struct MachineBackend<'m, M: Machine> {
    machine: &'m mut M,
    own_id: u16,
    sp_id: u16,
}

impl<'m, M: Machine> MachineBackend<'m, M> {
    /// A backend for endpoint `own_id` talking to partition `sp_id` on `machine`.
    pub fn new(machine: &'m mut M, own_id: u16, sp_id: u16) -> Self {
        Self {
            machine,
            own_id,
            sp_id,
        }
    }
}

impl<M: Machine> Backend for MachineBackend<'_, M> {
    type Conduit = M::Conduit;
    type Platform<'a>
        = &'a M::Platform
    where
        Self: 'a;

    fn connect(
        &mut self,
        dialect: Dialect,
    ) -> Result<Connection<M::Conduit, &M::Platform>, SessionError> {
        let conduit = self
            .machine
            .conduit()
            .ok_or(SessionError::Protocol("no conduit (a session kept it)"))?;
        let mut ffa = Ffa::new(conduit);
        reset(&mut ffa, self.own_id, self.sp_id)?;
        let session = BusSession::connect(ffa, self.own_id, self.sp_id, dialect, false)?;
        Ok(Connection::new(session, self.machine.platform()))
    }
}

/// A bus RESET outside any session; it must be answered `{result 0}`.
pub(crate) fn reset<C: ffa::Conduit>(
    ffa: &mut Ffa<C>,
    own_id: u16,
    sp_id: u16,
) -> Result<(), SessionError> {
    let mut frame = [0u8; MAX_MSG_SIZE];
    let n = msg::write_bus_frame(&mut frame, false, msg::RESET, 0, 1, &[])
        .ok_or(SessionError::Protocol("RESET encode"))?;
    let payload = frame_to_regs(frame.get(..n).unwrap_or_default());
    let answer = regs_to_frame(&ffa.direct_req2(own_id, sp_id, VIRTIO_MSG_DEVICE_UUID, payload)?);
    // {type 0x03, RESET, dev 0, token 1, size 10, result 0}.
    let want = [0x03, msg::RESET, 0, 0, 1, 0, 10, 0, 0, 0];
    if answer.get(..want.len()) == Some(&want[..]) {
        Ok(())
    } else {
        Err(SessionError::Protocol("RESET not answered with result 0"))
    }
}

/// Runs the suite in G3 then G2 and writes one line per check: `PASS <id> <dialect>: …`,
/// `FAIL <id> <dialect>: …: <reason>` (naming the defect for a known failure), and, not
/// counted, `INFO n/a <id> <dialect>: <reason>`.
pub fn run<M: Machine, W: core::fmt::Write>(
    machine: &mut M,
    r: &mut Report<W>,
    own_id: u16,
    sp_id: u16,
) -> Counts {
    r.info(format_args!(
        "conformance suite: {} checks, dialects g3 and g2",
        conformance::CHECKS.len()
    ));
    let mut backend = MachineBackend::new(machine, own_id, sp_id);
    let results = conformance::run_with(&mut backend, &[Dialect::G3, Dialect::G2], |res| {
        line(r, res);
    });
    let counts = Counts::of(&results);
    r.info(format_args!("conformance: {counts}"));
    counts
}

fn line<W: core::fmt::Write>(r: &mut Report<W>, res: &CheckResult) {
    let (id, d, what) = (
        res.check.id,
        dialect_name(res.dialect),
        res.check.description,
    );
    match &res.outcome {
        Outcome::Pass => r.pass(format_args!("{id} {d}: {what}")),
        Outcome::Fail(why) => match known_failure(id, res.dialect) {
            Some(k) => r.fail(format_args!(
                "{id} {d}: {what}: {why} (known defect: {})",
                k.defect
            )),
            None => r.fail(format_args!("{id} {d}: {what}: {why}")),
        },
        Outcome::NotApplicable(why) => r.info(format_args!("n/a {id} {d}: {why}")),
    }
}
