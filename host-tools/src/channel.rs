//! The transport's view of a bus session: [`virtio_msg::driver::Channel`] over its messaging
//! mode (direct or indirect messages).

use ffa::{
    Conduit,
    bus::{Dialect, MAX_MSG_SIZE, msg},
};
use virtio_msg::{
    Header,
    driver::{Channel, ChannelError},
};

use crate::session::{BusSession, SessionError};

/// The message size the G2 Linux driver works with (its `VIRTIO_MSG_MIN_SIZE`).
pub const G2_MSG_SIZE: usize = 48;

impl From<SessionError> for ChannelError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Busy => ChannelError::Busy,
            SessionError::ErrorFrame(_) => ChannelError::Bus,
            _ => ChannelError::Failed,
        }
    }
}

impl<C: Conduit> Channel for BusSession<C> {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<usize, ChannelError> {
        let (frame, n) = self.exchange(request).map_err(|e| {
            log::debug!("transport exchange failed: {e}");
            ChannelError::from(e)
        })?;
        let dst = response.get_mut(..n).ok_or(ChannelError::Failed)?;
        dst.copy_from_slice(frame.get(..n).ok_or(ChannelError::Failed)?);
        Ok(n)
    }

    fn notify(&mut self, event: &[u8]) -> Result<(), ChannelError> {
        let Some((frame, n)) = self.send_event(event)? else {
            // Over indirect messages an event gets no answer.
            return Ok(());
        };
        if self.info().dialect == Dialect::G2 {
            // The G2 driver ignores what comes back for an event.
            return Ok(());
        }
        // G3: the answer must be the bare acknowledgement with the event's token.
        let ack = Header::parse(&frame).map_err(|_| ChannelError::Failed)?;
        let sent = Header::parse(event).map_err(|_| ChannelError::Failed)?;
        let ok = n == virtio_msg::header::HEADER_SIZE
            && ack.msg_type == 0x03
            && ack.msg_id == msg::EVENT_ACK
            && ack.dev_num == 0
            && ack.token == sent.token;
        if ok {
            Ok(())
        } else {
            Err(ChannelError::Failed)
        }
    }

    fn max_size(&self) -> usize {
        match self.info().dialect {
            // The G2 driver sizes every message by its VIRTIO_MSG_MIN_SIZE (48 in the header
            // it builds with), not by the bus limit.
            Dialect::G2 => G2_MSG_SIZE,
            Dialect::G3 => MAX_MSG_SIZE,
        }
    }
}
