//! Routing: transport messages to the device they address (with the SET_VQUEUE ring check and
//! the EVENT_AVAIL acknowledgement), and the standard bus messages about the devices:
//! GET_DEVICES (which device numbers exist) and PING.
//!
//! A driver whose memory the partition will not touch (it hands raw physical addresses: the
//! G2 driver built without its DMA pool) must fail at probe with a clear message on both
//! sides, never be left hanging. Neither Linux driver checks a SET_VQUEUE answer, so:
//! - G2 shares its whole DMA pool at bus probe, before any device (`virtio_msg_ffa_probe`
//!   calls `virtio_msg_ffa_share_rmem` before the `virtio_msg_register` loop). A G2 endpoint
//!   that has shared nothing when it sets FEATURES_OK has no pool: FEATURES_OK is refused, and
//!   virtio core's `virtio_features_ok` re-reads the status and fails the probe ("device
//!   refuses features", -ENODEV). G2 never reads SET_VQUEUE's answer, a GET_VQUEUE after it, or
//!   the status after DRIVER_OK, and drops EVENT_CONFIG, so FEATURES_OK is its only check.
//! - G3 exports ring memory per allocation, after FEATURES_OK, and confirms every SET_VQUEUE
//!   with a GET_VQUEUE read-back (`virtio_msg_vq_confirm`: enabled, same size and addresses,
//!   else -EPROTO and the probe fails). A SET_VQUEUE whose rings lie outside every shared area
//!   therefore leaves the queue unconfigured, and the engine refuses the driver (DRIVER_OK not
//!   taken, DEVICE_NEEDS_RESET), in either dialect.
//!
//! Either way one WARN line names the cause.

use virtio_msg::{
    bus::{BusRequest, BusResponse},
    device::{Budget, DeviceTransport, Event as EngineEvent, Refusal},
    header::HEADER_SIZE,
    transport::{TransportRequest, status},
};

use super::{
    area::{AreaMem, AreaTable},
    config::Endpoint,
    dialect::DeviceListing,
    events::{Events, PendingEvent},
    frame::{self, Frame, MAX_MSG_SIZE, Reply},
    msg,
    services::BusServices,
};

/// Most device numbers one GET_DEVICES response can describe within the bus's size limit:
/// (104 - 8 header - 6 fields) bytes of bitmap.
const MAX_WINDOW: u16 = 720;
const _: () = assert!(MAX_WINDOW as usize == (MAX_MSG_SIZE - HEADER_SIZE - 6) * 8);

/// Bytes of the GET_DEVICES fields before the bitmap (offset, count, next_offset).
const DEVICES_FIELDS: usize = 6;

/// An endpoint's devices with what serving them needs: the memory they work on, where their
/// events go, the endpoint and the partition's services.
pub(crate) struct Devices<'a> {
    pub(crate) devices: &'a mut [DeviceTransport],
    pub(crate) areas: &'a AreaTable,
    pub(crate) events: &'a mut Events,
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) services: &'a mut dyn BusServices,
}

/// Hands a transport request to the device it addresses and answers with the device's
/// response; queues the events the device raised.
pub(crate) fn transport(
    frame: &Frame<'_>,
    ctx: Devices<'_>,
    budget: &mut Budget,
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    let Devices {
        devices,
        areas,
        events,
        endpoint,
        services,
    } = ctx;
    let header = &frame.header;
    let layout = endpoint.dialect.layout();
    let Ok(request) = TransportRequest::decode_payload(header, frame.payload, layout) else {
        return frame::error(header, out);
    };

    let dev = header.dev_num;
    if usize::from(dev) >= devices.len() {
        if matches!(request, TransportRequest::EventAvail { .. }) {
            // An event is never answered with an error (virtio-msg B6): an EVENT_AVAIL for a
            // device that does not exist is dropped and acknowledged like any other.
            out.fill(0);
            return frame::bus_ack(msg::EVENT_ACK, header.token, out);
        }
        return frame::error(header, out);
    }
    let mut raised = Raised::default();
    let Some(engine) = devices.get_mut(usize::from(dev)) else {
        return frame::error(header, out);
    };
    match request {
        TransportRequest::SetVqueue {
            index,
            size,
            desc_addr,
            driver_addr,
            device_addr,
            ..
        } if size != 0 && !rings_in_areas(areas, size, desc_addr, driver_addr, device_addr) => {
            if engine.refuse_vqueue(index, RAW_ADDRESSES, &mut |e| raised.push(e)) {
                log::warn!(
                    "vm {:#x} dev {dev}: SET_VQUEUE {index} refused, DRIVER_OK will be too: \
                     rings outside every shared area (desc {desc_addr:#x}, driver \
                     {driver_addr:#x}, device {device_addr:#x})",
                    endpoint.vm
                );
                log::warn!("vm {:#x} dev {dev}: {RAW_ADDRESSES_HELP}", endpoint.vm);
            }
            raised.queue(dev, events, endpoint, services);
            // No status field in the answer; the driver sees the refusal on read-back.
            return frame::empty_transport_response(header, out);
        }
        TransportRequest::SetDeviceStatus { status: new } => {
            // G2 shares its pool before any device: nothing shared by FEATURES_OK means none.
            let no_memory = new & status::FEATURES_OK != 0
                && engine.status() & status::FEATURES_OK == 0
                && endpoint.dialect.shares_memory_before_devices()
                && areas.is_empty();
            if no_memory && engine.refuse_driver(RAW_ADDRESSES, &mut |e| raised.push(e)) {
                log::warn!(
                    "vm {:#x} dev {dev}: FEATURES_OK refused: no memory shared; \
                     {RAW_ADDRESSES_HELP}",
                    endpoint.vm
                );
            }
        }
        _ => {}
    }
    let mem_services: &dyn BusServices = services;
    let mut mem = AreaMem::new(areas, mem_services);
    let written = engine.handle_frame(header, &request, &mut mem, budget, out, &mut |e| {
        raised.push(e)
    });
    raised.queue(dev, events, endpoint, services);
    if matches!(request, TransportRequest::EventAvail { .. }) {
        // Events get the bare acknowledgement frame (type 0x03, id 0, dev_num 0, size 8).
        out.fill(0);
        return frame::bus_ack(msg::EVENT_ACK, header.token, out);
    }
    match written {
        Some(n) => Reply::Frame(n),
        None => frame::error(header, out),
    }
}

/// Resumes the device work earlier kicks left pending (see `Budget`), device by device while
/// `budget` lasts, and queues the events it raises. Called before each message of the
/// endpoint is handled.
pub(crate) fn resume(ctx: Devices<'_>, budget: &mut Budget) {
    let Devices {
        devices,
        areas,
        events,
        endpoint,
        services,
    } = ctx;
    for (dev, engine) in (0u16..).zip(devices.iter_mut()) {
        if budget.is_spent() {
            return;
        }
        if !engine.has_pending_work() {
            continue;
        }
        let mut raised = Raised::default();
        let mem_services: &dyn BusServices = services;
        let mut mem = AreaMem::new(areas, mem_services);
        engine.resume(&mut mem, budget, &mut |e| raised.push(e));
        raised.queue(dev, events, endpoint, services);
    }
}

/// Why a driver is refused when it hands raw physical addresses (G2 shared nothing by
/// FEATURES_OK, or rings lie outside every shared area).
const RAW_ADDRESSES: Refusal = "it hands raw physical addresses, not shared memory";

/// What the log says about such a driver.
/// (The verdict comes first in each line: a console line is cut at `sp::console::LINE_MAX`.)
const RAW_ADDRESSES_HELP: &str = "raw physical addresses are not served (G2 needs \
     VIRTIO_MSG_FFA_DMA_OPS and a \"virtio-msg,ffa\" restricted-dma-pool)";

/// Most events one transport request raises: EVENT_AVAIL raises one EVENT_USED or one
/// EVENT_CONFIG, a status change or a refusal one EVENT_CONFIG.
const MAX_RAISED: usize = 4;

/// The events the engine raised while handling one request, held without allocating until
/// the engine is done with the endpoint's memory.
#[derive(Default)]
struct Raised {
    events: [Option<EngineEvent>; MAX_RAISED],
    /// Slots used, from the first.
    len: usize,
}

impl Raised {
    fn push(&mut self, e: EngineEvent) {
        match self.events.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(e);
                // Below MAX_RAISED: `get_mut` found the slot.
                self.len = self.len.saturating_add(1);
            }
            None => log::warn!("more than {MAX_RAISED} events for one request: {e} dropped"),
        }
    }

    /// Queues the events for the driver and empties the list.
    fn queue(
        &mut self,
        dev: u16,
        events: &mut Events,
        endpoint: &Endpoint,
        services: &mut dyn BusServices,
    ) {
        let len = core::mem::take(&mut self.len);
        for e in self.events.iter_mut().take(len).filter_map(Option::take) {
            let pending = match e {
                EngineEvent::Used { vq } => PendingEvent::Used { dev, vq },
                EngineEvent::Config => PendingEvent::Config { dev },
            };
            events.queue(pending, endpoint, services);
        }
    }
}

/// Whether the three rings of a `size`-entry split queue lie inside shared areas.
fn rings_in_areas(areas: &AreaTable, size: u32, desc: u64, driver: u64, device: u64) -> bool {
    let size = u64::from(size);
    // `size` is below 2^32, so no length comes near saturating; a saturated one would be
    // covered by no area.
    areas.covers(desc, 16 * size, false)
        && areas.covers(driver, (2 * size).saturating_add(6), false)
        && areas.covers(device, (8 * size).saturating_add(6), true)
}

/// Answers GET_DEVICES for an endpoint serving `ndev` devices (device number = index).
pub(crate) fn get_devices(
    frame: &Frame<'_>,
    ndev: usize,
    endpoint: &Endpoint,
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    let header = &frame.header;
    let Ok(BusRequest::GetDevices { offset, count }) =
        BusRequest::decode_payload(header, frame.payload)
    else {
        return frame::error(header, out);
    };
    match endpoint.dialect.device_listing() {
        DeviceListing::DeviceCount {
            addressable,
            bitmap_len,
        } => device_count(
            frame,
            ndev,
            offset,
            addressable,
            bitmap_len,
            endpoint.vm,
            out,
        ),
        DeviceListing::Windows { order } => {
            // The answer covers min(count, what fits) device numbers from offset.
            let count = count.min(MAX_WINDOW);
            let mut bitmap = [0u8; (MAX_WINDOW as usize).div_ceil(8)];
            for n in 0..count {
                // Past every device if it ever saturated.
                let dev = usize::from(offset).saturating_add(usize::from(n));
                if dev < ndev
                    && let Some(b) = bitmap.get_mut(usize::from(n / 8))
                {
                    // Cannot panic (shift): by less than 8 bits.
                    *b |= 1 << (n % 8);
                }
            }
            let end = usize::from(offset).saturating_add(usize::from(count));
            let next_offset = if end < ndev {
                u16::try_from(end).unwrap_or(0)
            } else {
                0
            };
            // Cannot panic (`div_ceil`): the divisor is 8.
            let bitmap = bitmap
                .get(..usize::from(count).div_ceil(8))
                .unwrap_or_default();
            let resp = BusResponse::Devices {
                offset,
                count,
                next_offset,
                bitmap,
            };
            match resp.encode(order, header, out) {
                Ok(n) => Reply::Frame(n),
                Err(_) => frame::error(header, out),
            }
        }
    }
}

/// The [`DeviceListing::DeviceCount`] answer: one window at 0, `count` = devices visible, in
/// `CountThenNext` order (offset 0, count, next_offset 0, bitmap).
fn device_count(
    frame: &Frame<'_>,
    ndev: usize,
    offset: u16,
    addressable: usize,
    bitmap_len: usize,
    vm: u16,
    out: &mut [u8; MAX_MSG_SIZE],
) -> Reply {
    let header = &frame.header;
    if offset != 0 {
        return frame::error(header, out);
    }
    let visible = ndev.min(addressable);
    if ndev > visible {
        log::warn!(
            "vm {vm:#x}: this driver can address only devices 0..{}",
            addressable.saturating_sub(1)
        );
    }
    let mut buf = [0u8; MAX_MSG_SIZE - HEADER_SIZE];
    let Some(payload) = DEVICES_FIELDS
        .checked_add(bitmap_len)
        .and_then(|len| buf.get_mut(..len))
    else {
        return frame::error(header, out);
    };
    let count = u16::try_from(visible).unwrap_or(0);
    if let Some(field) = payload.get_mut(2..4) {
        // Cannot panic: the field is 2 bytes long, as is a `u16`.
        field.copy_from_slice(&count.to_le_bytes());
    }
    for n in 0..visible {
        if let Some(b) = payload
            .get_mut(DEVICES_FIELDS..)
            .and_then(|bitmap| bitmap.get_mut(n / 8))
        {
            // Cannot panic (shift): by less than 8 bits.
            *b |= 1 << (n % 8);
        }
    }
    frame::bus_response(header, payload, out)
}

/// Answers PING with its data.
pub(crate) fn ping(frame: &Frame<'_>, out: &mut [u8; MAX_MSG_SIZE]) -> Reply {
    match BusRequest::decode_payload(&frame.header, frame.payload) {
        Ok(BusRequest::Ping { data }) => {
            frame::bus_response(&frame.header, &data.to_le_bytes(), out)
        }
        _ => frame::error(&frame.header, out),
    }
}
