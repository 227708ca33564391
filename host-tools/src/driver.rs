//! What the device drivers ([`crate::rng`], [`crate::blk`], the `thirdparty` adapter) share:
//! sharing their pages with the partition and waiting for a used buffer the way each
//! dialect's driver does.

use alloc::vec::Vec;

use ffa::{bus::Dialect, conduit::Conduit};
use virtio_msg::driver::DeviceClient;

use crate::{
    connection::HostError,
    platform::Platform,
    session::{BusSession, Event, SharedArea},
};

/// Most waits for one batch of requests to complete (each lets the device do one more
/// message's work).
pub(crate) const MAX_WAITS: usize = 64;
/// How long to wait for a completion notification, in milliseconds.
const NOTIFY_TIMEOUT_MS: u32 = 5000;

/// Allocates `pages` pages and shares them with the partition as a new area.
pub(crate) fn share_pages<C: Conduit, P: Platform>(
    session: &mut BusSession<C>,
    platform: &P,
    pages: u32,
) -> Result<SharedArea, HostError> {
    let pa = platform
        .alloc_pages(pages)
        .ok_or(HostError::Device("out of driver memory"))?;
    session.share(pa, pages).map_err(|e| {
        platform.free_pages(pa, pages);
        HostError::from(e)
    })
}

/// Unshares `area` and frees its pages (best effort: on a failed open).
pub(crate) fn release<C: Conduit, P: Platform>(
    session: &mut BusSession<C>,
    platform: &P,
    area: &SharedArea,
) {
    if session.unshare(area).is_ok() {
        platform.free_pages(area.pa, area.pages);
    }
}

/// Waits for device `dev_num`'s EVENT_USED on queue 0 the way the dialect's driver does (see
/// [`wait_events`]).
pub(crate) fn wait_used<C: Conduit, P: Platform>(
    session: &mut BusSession<C>,
    platform: &P,
    dev_num: u16,
) -> Result<(), HostError> {
    if session.info().dialect == Dialect::G2 {
        return wait_events(session, platform, dev_num, 0).map(drop);
    }
    let events = wait_events(session, platform, dev_num, 0)?;
    if events.contains(&Event::Used {
        dev: dev_num,
        vq: 0,
    }) {
        Ok(())
    } else {
        Err(HostError::Device("no EVENT_USED for the request"))
    }
}

/// One wait for device `dev_num`'s queue `vq` the way the dialect's driver does, returning the
/// events it fetched (every device's): G3 fetches events with EVENT_POLL (after the
/// notification when one was configured); G2 has no event path and looks at the used ring
/// directly, so it kicks queue `vq` again (a new message lets a device that stopped at its
/// work budget go on) and fetches nothing.
pub(crate) fn wait_events<C: Conduit, P: Platform>(
    session: &mut BusSession<C>,
    platform: &P,
    dev_num: u16,
    vq: u32,
) -> Result<Vec<Event>, HostError> {
    let info = session.info();
    if info.dialect == Dialect::G2 {
        let layout = info.dialect.layout();
        DeviceClient::new(&mut *session, dev_num, layout)?.notify_avail(vq)?;
        return Ok(Vec::new());
    }
    if info.notified {
        if !platform.wait_notification(NOTIFY_TIMEOUT_MS) {
            return Err(HostError::Device("no notification after EVENT_AVAIL"));
        }
        let own = session.own_id();
        session
            .ffa()
            .notification_get(own)
            .map_err(crate::session::SessionError::from)?;
    }
    Ok(session.drain_events()?)
}
