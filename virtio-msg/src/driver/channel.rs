//! What the client needs from the bus under it: [`Channel`], one request/response exchange at a
//! time plus events, and why it can fail ([`ChannelError`]).

/// Why a channel (the bus under the client) failed to carry a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// No response arrived (timeout, or the device discarded the request and the bus gave up).
    #[error("no response")]
    NoResponse,
    /// The bus answered with its own error instead of a transport response.
    #[error("the bus reported an error")]
    Bus,
    /// The bus is busy; the message was not delivered.
    #[error("the bus is busy")]
    Busy,
    /// The platform failed to carry the message.
    #[error("transport failure")]
    Failed,
}

/// The bus as the driver sees it: one request/response exchange at a time, plus events.
pub trait Channel {
    /// Sends the request frame `request` and receives its response frame into `response`;
    /// returns the response's length (its `msg_size`, bus padding excluded).
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<usize, ChannelError>;
    /// Sends an event frame (EVENT_AVAIL), which gets no transport response.
    fn notify(&mut self, event: &[u8]) -> Result<(), ChannelError>;
    /// The bus's maximum message size in bytes, header included (both directions).
    fn max_size(&self) -> usize;
}

impl<T: Channel + ?Sized> Channel for &mut T {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<usize, ChannelError> {
        (**self).exchange(request, response)
    }
    fn notify(&mut self, event: &[u8]) -> Result<(), ChannelError> {
        (**self).notify(event)
    }
    fn max_size(&self) -> usize {
        (**self).max_size()
    }
}
