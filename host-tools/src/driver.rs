//! What the device drivers ([`crate::rng`], [`crate::blk`], the `thirdparty` adapter) share:
//! sharing their pages with the partition and waiting for a used buffer the way each
//! dialect's driver does.

use alloc::vec::Vec;

use ffa::{bus::Dialect, conduit::Conduit};
use virtio_msg::driver::DeviceClient;

use crate::{
    connection::HostError,
    platform::Platform,
    session::{BusSession, Event, Events, Messaging, SharedArea},
};

/// Most waits for one batch of requests to complete (each lets the device do one more
/// message's work).
pub(crate) const MAX_WAITS: usize = 64;
/// How long to wait for a completion notification, in milliseconds.
const NOTIFY_TIMEOUT_MS: u32 = 5000;
/// How many times (each after a wait of up to 1 ms) a G2 session with pushed events looks for
/// one before it kicks the queue: the partition's retry timer gives up after about a quarter
/// of a second.
const PUSHED_WAITS: u32 = 1000;

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

/// A driver's memory for its device: the area holding its rings and its data area, both the
/// endpoint's own pages shared with the partition.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceMemory {
    /// The rings.
    pub(crate) ring: SharedArea,
    /// The data buffers.
    pub(crate) buffer: SharedArea,
}

/// Opens device `dev_num` the way every driver here does: checks that its virtio id is
/// `device_id` (`not_it` otherwise), shares `ring_pages` and `buffer_pages` fresh pages
/// before the device is initialised, then runs `setup` (features, queues, DRIVER_OK) with a
/// client of the device. Whatever fails after the sharing, the memory is given back.
pub(crate) fn open_device<C: Conduit, P: Platform, T>(
    session: &mut BusSession<C>,
    platform: &P,
    dev_num: u16,
    (device_id, not_it): (u32, &'static str),
    (ring_pages, buffer_pages): (u32, u32),
    setup: impl FnOnce(&mut DeviceClient<&mut BusSession<C>>, &DeviceMemory) -> Result<T, HostError>,
) -> Result<(DeviceMemory, T), HostError> {
    let layout = session.info().dialect.layout();
    if DeviceClient::new(&mut *session, dev_num, layout)?
        .get_device_info()?
        .device_id
        != device_id
    {
        return Err(HostError::Device(not_it));
    }
    let ring = share_pages(session, platform, ring_pages)?;
    let buffer = match share_pages(session, platform, buffer_pages) {
        Ok(b) => b,
        Err(e) => {
            release(session, platform, &ring);
            return Err(e);
        }
    };
    let memory = DeviceMemory { ring, buffer };
    let set_up = DeviceClient::new(&mut *session, dev_num, layout)
        .map_err(HostError::from)
        .and_then(|mut client| setup(&mut client, &memory));
    match set_up {
        Ok(t) => Ok((memory, t)),
        Err(e) => {
            release(session, platform, &buffer);
            release(session, platform, &ring);
            Err(e)
        }
    }
}

/// Resets device `dev_num` and takes its memory back (unshared, pages freed).
pub(crate) fn close_device<C: Conduit, P: Platform>(
    session: &mut BusSession<C>,
    platform: &P,
    dev_num: u16,
    memory: &DeviceMemory,
) -> Result<(), HostError> {
    let layout = session.info().dialect.layout();
    DeviceClient::new(&mut *session, dev_num, layout)?.reset()?;
    for area in [memory.ring, memory.buffer] {
        session.unshare(&area)?;
        platform.free_pages(area.pa, area.pages);
    }
    Ok(())
}

/// The size to give queue 0: `wanted`, or the device's maximum if that is smaller; an error
/// if the device has no queue 0.
pub(crate) fn queue0_size<C: Conduit>(
    client: &mut DeviceClient<&mut BusSession<C>>,
    wanted: u16,
) -> Result<u16, HostError> {
    let max = u16::try_from(client.get_vqueue(0)?.max_size).unwrap_or(u16::MAX);
    match wanted.min(max) {
        0 => Err(HostError::Device("queue 0 does not exist")),
        size => Ok(size),
    }
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
/// events it fetched (every device's):
/// - pushed events (indirect messages): what the partition pushed is taken from the RX buffer;
///   if nothing came, the partition is given a chance to push what its busy RX buffer kept
///   (over direct messages: a kick of `vq` for G2, EVENT_POLL for G3; over indirect ones: an
///   FFA_RUN);
/// - G3 otherwise fetches events with EVENT_POLL (after the notification when one was
///   configured);
/// - G2 without pushed events has no event path and looks at the used ring directly, so it
///   kicks queue `vq` again (a new message lets a device that stopped at its work budget go
///   on) and fetches nothing.
pub(crate) fn wait_events<C: Conduit, P: Platform>(
    session: &mut BusSession<C>,
    platform: &P,
    dev_num: u16,
    vq: u32,
) -> Result<Vec<Event>, HostError> {
    let info = session.info();
    if info.modes.events == Events::Indirect {
        session.take_pushed()?;
        let mut events = session.pushed_events();
        if events.is_empty() {
            match (info.modes.messaging, info.dialect) {
                (Messaging::Indirect, _) => session.collect_pushed()?,
                (Messaging::Direct, Dialect::G2) => {
                    // As Linux's G2 driver: no message; the partition pushes what a full RX
                    // buffer made it keep when its retry timer fires, and the RX-full
                    // framework notification says it came (looked for after each wait of
                    // up to 1 ms; a platform that cannot wait, the NWd payload, looks
                    // PUSHED_WAITS times). If nothing came, a kick, which G2 never sends.
                    for _ in 0..PUSHED_WAITS {
                        platform.wait_notification(1);
                        session.take_pushed()?;
                        if session.pushed_len() > 0 {
                            break;
                        }
                    }
                    if session.pushed_len() == 0 {
                        session.count_kick_for_pushed();
                        let layout = info.dialect.layout();
                        DeviceClient::new(&mut *session, dev_num, layout)?.notify_avail(vq)?;
                        session.take_pushed()?;
                    }
                }
                (Messaging::Direct, Dialect::G3) => events.extend(session.drain_events()?),
            }
            events.extend(session.pushed_events());
        }
        return Ok(events);
    }
    if info.dialect == Dialect::G2 {
        // Pushed EVENT_USED, if the partition sends them anyway, are taken and ignored: the
        // used ring says it all.
        session.take_pushed()?;
        session.pushed_events();
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
