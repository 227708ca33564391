//! VERSION negotiation of one endpoint: the dialect latch, the version agreed, the bus features
//! offered, and the answer to RESET.
//!
//! The latch itself (and the reset a change of dialect causes) is done by the instance, which
//! owns everything a reset clears; this module keeps the state and writes the answers.

use virtio_msg::Header;
use zerocopy::IntoBytes;

use super::{
    config::{BusConfig, Endpoint},
    dialect::{Dialect, Handshake},
    frame::{self, Frame, MAX_MSG_SIZE, Reply},
    msg::{self, features},
};

/// The version served: bus 1.0, transport revision 1.
const SUPPORTED: (u32, u32) = (msg::BUS_VERSION_1_0, msg::TRANSPORT_REVISION_1);

/// Negotiation state of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Negotiation {
    /// The dialect latched so far.
    dialect: Option<Dialect>,
    /// Whether a version was agreed: the bus is open only once one is, in both handshakes.
    agreed: bool,
}

impl Negotiation {
    /// Nothing latched, nothing agreed.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The dialect latched so far.
    pub(crate) fn dialect(&self) -> Option<Dialect> {
        self.dialect
    }

    /// The dialect, if the bus is open to messages other than VERSION and RESET.
    pub(crate) fn negotiated(&self) -> Option<Dialect> {
        self.dialect.filter(|_| self.agreed)
    }

    /// Latches `dialect` if none is latched; returns whether it was latched now.
    pub(crate) fn latch(&mut self, dialect: Dialect) -> bool {
        if self.dialect.is_some() {
            return false;
        }
        self.dialect = Some(dialect);
        true
    }

    /// Forgets the dialect and the agreement (RESET, a new driver).
    pub(crate) fn forget(&mut self) {
        *self = Self::new();
    }

    /// Answers VERSION of the latched dialect's form.
    pub(crate) fn version(
        &mut self,
        frame: &Frame<'_>,
        vm: u16,
        config: BusConfig,
        out: &mut [u8; MAX_MSG_SIZE],
    ) -> Reply {
        let Some(dialect) = self.dialect else {
            return frame::error(&frame.header, out);
        };
        let endpoint = Endpoint {
            vm,
            config,
            dialect,
        };
        match dialect.handshake() {
            Handshake::ProbeAndEcho => self.probe_and_echo(frame, &endpoint, out),
            Handshake::Single => self.single(frame, &endpoint, out),
        }
    }

    /// G3 VERSION: probe (0/0), offer, echo to commit.
    fn probe_and_echo(
        &mut self,
        frame: &Frame<'_>,
        endpoint: &Endpoint,
        out: &mut [u8; MAX_MSG_SIZE],
    ) -> Reply {
        let Some(req) = frame.exact::<msg::VersionReqG3>() else {
            return frame::error(&frame.header, out);
        };
        let asked = (req.bus_version.get(), req.transport_revision.get());
        let answer = if asked == (0, 0) {
            // Probe: report what we support (or what was agreed).
            Some(SUPPORTED)
        } else if self.agreed {
            (asked == SUPPORTED).then_some(SUPPORTED)
        } else if asked == SUPPORTED {
            self.agreed = true;
            Some(SUPPORTED)
        } else if asked > SUPPORTED {
            // Newer than ours: offer ours; the driver echoes it to commit.
            Some(SUPPORTED)
        } else {
            None
        };
        let (bus, rev) = answer.unwrap_or((0, 0));
        let ok = answer.is_some();
        let resp = msg::VersionRespG3 {
            bus_version: bus.into(),
            transport_revision: rev.into(),
            ffa_version: msg::FFA_VERSION_1_2.into(),
            feature_bits: 0.into(),
            bus_features: if ok { bus_features(endpoint) } else { 0 }.into(),
            max_areas: if ok { endpoint.config.max_areas } else { 0 }.into(),
        };
        frame::bus_response(&frame.header, resp.as_bytes(), out)
    }

    /// G2 VERSION: one request naming the version it needs; anything else is refused with
    /// zero versions (the G2 driver's "unsupported") and leaves the bus closed.
    fn single(
        &mut self,
        frame: &Frame<'_>,
        endpoint: &Endpoint,
        out: &mut [u8; MAX_MSG_SIZE],
    ) -> Reply {
        let Some(req) = frame.exact::<msg::VersionReqG2>() else {
            return frame::error(&frame.header, out);
        };
        let asked = (req.bus_version.get(), req.transport_revision.get());
        let ok = asked == SUPPORTED;
        // Only the version served opens the bus; once open, a wrong one does not close it.
        self.agreed |= ok;
        if !ok {
            log::warn!(
                "vm {:#x}: G2 VERSION {:#x}/{} not supported",
                endpoint.vm,
                asked.0,
                asked.1
            );
        }
        let resp = msg::VersionRespG2 {
            bus_version: if ok { SUPPORTED.0 } else { 0 }.into(),
            transport_revision: if ok { SUPPORTED.1 } else { 0 }.into(),
            transport_features: 0.into(),
            bus_features: if ok { bus_features(endpoint) } else { 0 }.into(),
            area_num: if ok { endpoint.config.max_areas } else { 0 }.into(),
        };
        frame::bus_response(&frame.header, resp.as_bytes(), out)
    }
}

/// The bus features offered: direct messaging both ways; indirect messaging both ways if the
/// partition has it and offers it to the endpoint ([`Endpoint::indirect`]); notifications both ways if the partition can ring them and the dialect
/// has a notification path.
fn bus_features(endpoint: &Endpoint) -> u32 {
    let notify = endpoint.config.notifications && endpoint.dialect.offers_notifications();
    let pair = |on: bool, bits: u32| if on { bits } else { 0 };
    features::DIRECT_RX
        | features::DIRECT_TX
        | pair(
            endpoint.indirect(),
            features::INDIRECT_RX | features::INDIRECT_TX,
        )
        | pair(notify, features::NOTIF_RX | features::NOTIF_TX)
}

/// The answer to a RESET that was carried out: result SUCCESS.
pub(crate) fn reset_done(request: &Header, out: &mut [u8; MAX_MSG_SIZE]) -> Reply {
    let result = msg::Word16 {
        value: msg::RESULT_SUCCESS.into(),
    };
    frame::bus_response(request, result.as_bytes(), out)
}
