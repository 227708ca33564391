//! The bus clauses (virtio-msg §6 "Bus", `B*`) and the virtio-msg FF-A bus binding's rules
//! (`FB-*`: VERSION, framing, ERROR, busy, the EVENT_AVAIL ack, EVENT_CONFIGURE, EVENT_POLL,
//! areas, RESET; `FF-*`: the FF-A direct messaging underneath).

use alloc::{format, string::String, vec, vec::Vec};

use ffa::{
    Conduit, VIRTIO_MSG_DEVICE_UUID,
    arm_ffa::{Interface, Uuid, interface_args::DirectMsg2Args},
    bus::{Dialect, MAX_MSG_SIZE, bus_address, frame_to_regs, msg, regs_to_frame},
    memory::{DataAccess, MemRange, MemTransaction, Receiver, ShareKind},
};
use virtio_msg::{
    driver::DeviceClient,
    header::HEADER_SIZE,
    ids::{bus as bus_id, transport as tid},
    transport::{FeatureBlocks, TransportRequest, TransportResponse, status},
};
use zerocopy::IntoBytes;

use super::{
    check::{Applies, Check, Stop, Verdict, check, ensure},
    device,
    wire::{self, Answer},
};
use crate::{connection::Connection, platform::Platform, session::BusSession};

const G2_NO_RESET: &str = "the G2 driver never sends RESET";
const G2_NO_EVENTS: &str = "documented: G2 gets no events and no EVENT_POLL (see FB-POLL-2)";

pub(super) const B2: Check = check(
    "B2",
    "virtio-msg §6 B2; virtio-msg-ffa §4 (before negotiation)",
    Applies::G3,
    "before VERSION is agreed (after RESET) transport and bus requests get ERROR; after the probe \
     and echo they are served",
    G2_NO_RESET,
);
pub(super) const B3: Check = check(
    "B3",
    "virtio-msg §6 B3; virtio-msg-ffa §3.1 (104-byte frames)",
    Applies::Both,
    "a request of the full size is served (SET_DRIVER_FEATURES of 22 blocks, 104 bytes; G2: 8 \
     blocks, its 48), and 104 lies in 52..=264",
    "",
);
pub(super) const B5: Check = check(
    "B5",
    "virtio-msg §6 B5 (device numbers)",
    Applies::Both,
    "GET_DEVICES lists distinct numbers; messages to numbers not listed get ERROR (not forwarded)",
    "",
);
pub(super) const B6: Check = check(
    "B6",
    "virtio-msg §6 B6 (no error responses to events)",
    Applies::Both,
    "EVENT_AVAIL for a missing queue, a missing device or an inactive device gets the ack, never \
     ERROR",
    "",
);
pub(super) const B7: Check = check(
    "B7",
    "virtio-msg §6 B7 (bus message form)",
    Applies::Both,
    "bus answers (PING, GET_DEVICES, EVENT_POLL) have type 0x03, dev_num 0, the request's id and \
     token, zero padding",
    "",
);
pub(super) const B8: Check = check(
    "B8",
    "virtio-msg §6 B8 (one response, in order)",
    Applies::Both,
    "24 interleaved bus and transport requests each get exactly their own response (id, dev_num, \
     token)",
    "",
);
pub(super) const B14: Check = check(
    "B14",
    "virtio-msg §6 B14 (GET_DEVICES); README: G2 count = device count",
    Applies::Both,
    "GET_DEVICES windows: G3 offset/count multiples of 8, bitmap count/8 bytes LSB first, \
     next_offset 0 or aligned past the window; documented G2 form: count = number of devices, \
     next_offset 0, devices in byte 0",
    "",
);
pub(super) const B15: Check = check(
    "B15",
    "virtio-msg §6 B15 (PING)",
    Applies::Both,
    "PING echoes its 32-bit data exactly (0, 1, 0x5a5a1234, 0x80000000, 0xffffffff) in a 12-byte \
     answer",
    "",
);
pub(super) const FB_VERSION_1: Check = check(
    "FB-VERSION-1",
    "virtio-msg-ffa §4.1 (probe and echo)",
    Applies::G3,
    "the VERSION probe is answered in 30 bytes with bus 1.0, revision 1, FF-A >= 1.2, feature bits \
     0, DIRECT_RX|DIRECT_TX, known bus features only, max_areas > 0; the echo commits the same",
    "G2 negotiates with one 16-byte VERSION (FB-VERSION-3)",
);
pub(super) const FB_VERSION_2: Check = check(
    "FB-VERSION-2",
    "virtio-msg-ffa §4.1 (other versions)",
    Applies::G3,
    "before agreement (after RESET), VERSION above the supported one is answered with the \
     supported one, below it with bus version 0; the supported echo then commits",
    "G2 negotiates with one 16-byte VERSION (FB-VERSION-3)",
);
pub(super) const FB_VERSION_3: Check = check(
    "FB-VERSION-3",
    "virtio-msg-ffa-g2 (VERSION); README: G2 gets no notifications",
    Applies::G2,
    "the 16-byte VERSION {1.0, 1} is answered in 26 bytes {1.0, 1, features 0, DIRECT_RX|DIRECT_TX \
     without notification bits}; an unsupported bus version gets zero versions",
    "G3 negotiates with the probe and echo (FB-VERSION-1)",
);
pub(super) const FB_FRAME_1: Check = check(
    "FB-FRAME-1",
    "virtio-msg-ffa §3.1 (framing limits)",
    Applies::Both,
    "msg_size below 8, above 104 or not the message's size gets ERROR; x17 is zero in every answer",
    "",
);
pub(super) const FB_ERROR_1: Check = check(
    "FB-ERROR-1",
    "virtio-msg-ffa §4 (ERROR 0x87)",
    Applies::Both,
    "unknown bus ids (0xB0, 0xBF), unknown transport ids and missing devices get ERROR: type \
     0x03, 10 bytes, original id, dev_num and token echoed",
    "",
);
pub(super) const FB_BUSY_1: Check = check(
    "FB-BUSY-1",
    "virtio-msg-ffa §3.1 (busy sentinel)",
    Applies::Both,
    "no answer to valid, malformed or refused requests or events is the all-zero busy sentinel \
     when the partition is not busy",
    "",
);
pub(super) const FB_ACK_1: Check = check(
    "FB-ACK-1",
    "virtio-msg-ffa §3.1 (EVENT_AVAIL ack)",
    Applies::Both,
    "EVENT_AVAIL is answered with exactly the 8-byte ack: type 0x03, id 0, dev_num 0, the event's \
     token",
    "",
);
pub(super) const FB_EVCFG_1: Check = check(
    "FB-EVCFG-1",
    "virtio-msg-ffa §4.2 (EVENT_CONFIGURE once)",
    Applies::G3,
    "a second EVENT_CONFIGURE is refused (ERROR or a non-zero result) and polling keeps working",
    "documented: G2 asks for NOTIF id 0 and nothing is bound",
);
pub(super) const FB_POLL_1: Check = check(
    "FB-POLL-1",
    "virtio-msg-ffa §4.3 (EVENT_POLL)",
    Applies::G3,
    "EVENT_POLL returns the 12-byte EVENT_USED (coalesced: one for two completions), then the \
     8-byte empty answer (same token, dev_num 0), and stays empty",
    G2_NO_EVENTS,
);
pub(super) const FB_POLL_2: Check = check(
    "FB-POLL-2",
    "README: events for G2",
    Applies::G2,
    "documented: EVENT_POLL from G2 is answered with ERROR(0x84), and a used buffer queues nothing",
    "G3 polls events (FB-POLL-1)",
);
pub(super) const FB_AREA_1: Check = check(
    "FB-AREA-1",
    "virtio-msg-ffa §5 (AREA_SHARE)",
    Applies::Both,
    "AREA_SHARE of a shared page answers 12 bytes {area id, result 0}; while the area is held \
     FFA_MEM_RECLAIM is refused",
    "",
);
pub(super) const FB_AREA_2: Check = check(
    "FB-AREA-2",
    "virtio-msg-ffa §5 (AREA_UNSHARE)",
    Applies::Both,
    "AREA_UNSHARE answers {area id, result 0}, then FFA_MEM_RECLAIM succeeds and the page is as \
     written; a second AREA_UNSHARE is refused",
    "",
);
pub(super) const FB_AREA_3: Check = check(
    "FB-AREA-3",
    "virtio-msg-ffa §5 (AREA_SHARE refusals); README: G2 attributes 0",
    Applies::Both,
    "AREA_SHARE with an unknown handle, a wrong page count, area id 0, a duplicate id (G3 also: \
     executable or zero attributes) gets result 1 and leaves the memory reclaimable",
    "",
);
pub(super) const FB_AREA_4: Check = check(
    "FB-AREA-4",
    "virtio-msg-ffa §5 (AREA_UNSHARE of nothing)",
    Applies::Both,
    "AREA_UNSHARE of an area never shared (and of id 0) gets {area id, result 1}",
    "",
);
pub(super) const FB_AREA_5: Check = check(
    "FB-AREA-5",
    "virtio-msg-ffa §5 (bus addresses)",
    Applies::Both,
    "queues pointing into an area not shared, past an area's end, or into an unshared area are \
     not configured",
    "",
);
pub(super) const FB_RESET_1: Check = check(
    "FB-RESET-1",
    "virtio-msg-ffa §6.7 (bus RESET)",
    Applies::G3,
    "RESET answers 10 bytes {result 0}, relinquishes every area (reclaimable without \
     AREA_UNSHARE) and resets the devices",
    G2_NO_RESET,
);
pub(super) const FF_RESP_1: Check = check(
    "FF-RESP-1",
    "virtio-msg-ffa §3.1 (DIRECT_RESP2)",
    Applies::Both,
    "every DIRECT_REQ2 (request, event, malformed, unknown) gets exactly one DIRECT_RESP2 from the \
     partition to the sender (ids swapped in x1)",
    "",
);
pub(super) const FF_UUID_1: Check = check(
    "FF-UUID-1",
    "virtio-msg-ffa §2, §10 (service UUID)",
    Applies::Both,
    "DIRECT_REQ2 for another service UUID is refused (FFA_ERROR, or no frame) and the session \
     keeps working",
    "",
);

/// Runs the body of bus check `id`, if it is one.
pub(super) fn execute<C: Conduit, P: Platform>(
    id: &str,
    conn: &mut Connection<C, P>,
) -> Option<Verdict> {
    Some(match id {
        "B2" => b2(conn.session()),
        "B3" => b3(conn.session()),
        "B5" => b5(conn.session()),
        "B6" => b6(conn.session()),
        "B7" => b7(conn.session()),
        "B8" => b8(conn.session()),
        "B14" => b14(conn.session()),
        "B15" => b15(conn.session()),
        "FB-VERSION-1" => fb_version_1(conn.session()),
        "FB-VERSION-2" => fb_version_2(conn.session()),
        "FB-VERSION-3" => fb_version_3(conn.session()),
        "FB-FRAME-1" => fb_frame_1(conn.session()),
        "FB-ERROR-1" => fb_error_1(conn.session()),
        "FB-BUSY-1" => fb_busy_1(conn.session()),
        "FB-ACK-1" => fb_ack_1(conn.session()),
        "FB-EVCFG-1" => fb_evcfg_1(conn.session()),
        "FB-POLL-1" => fb_poll_1(conn),
        "FB-POLL-2" => fb_poll_2(conn),
        "FB-AREA-1" => fb_area_1(conn),
        "FB-AREA-2" => fb_area_2(conn),
        "FB-AREA-3" => fb_area_3(conn),
        "FB-AREA-4" => fb_area_4(conn.session()),
        "FB-AREA-5" => fb_area_5(conn),
        "FB-RESET-1" => fb_reset_1(conn),
        "FF-RESP-1" => ff_resp_1(conn.session()),
        "FF-UUID-1" => ff_uuid_1(conn.session()),
        _ => return None,
    })
}

/// Checks that `a` is the bus response to `msg_id` with `token`: type 0x03, dev_num 0, zero
/// padding, `size` bytes.
fn expect_bus_answer(a: &Answer, msg_id: u8, token: u16, size: usize) -> Verdict {
    ensure!(
        !a.is_busy(),
        "{msg_id:#04x} answered with the busy sentinel"
    );
    let h = a.header()?;
    ensure!(
        a.raw_type() == 0x03 && h.msg_id == msg_id && h.dev_num == 0 && h.token == token,
        "answer to bus {msg_id:#04x} (token {token:#x}) is {}",
        a.describe()
    );
    ensure!(
        a.msg_size() == size,
        "answer to bus {msg_id:#04x} is {} bytes, want {size}",
        a.msg_size()
    );
    ensure!(
        a.padding_is_zero(),
        "answer to {msg_id:#04x}: padding not zero"
    );
    Ok(())
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0xFFFF,
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0xFFFF_FFFF,
    }
}

fn ping_frame(token: u16, data: u32) -> Vec<u8> {
    wire::bus_frame(bus_id::PING, token, &data.to_le_bytes())
}

fn version_g3<C: Conduit>(
    session: &mut BusSession<C>,
    token: u16,
    bus_version: u32,
    transport_revision: u32,
) -> Result<msg::VersionRespG3, Stop> {
    let req = msg::VersionReqG3 {
        bus_version: bus_version.into(),
        transport_revision: transport_revision.into(),
        ffa_version: msg::FFA_VERSION_1_2.into(),
    };
    let a = wire::send(
        session,
        &wire::bus_frame(msg::VERSION, token, req.as_bytes()),
    )?;
    expect_bus_answer(&a, msg::VERSION, token, 30)?;
    let h = a.header()?;
    msg::exact::<msg::VersionRespG3>(&h, a.frame())
        .ok_or_else(|| Stop::Fail(String::from("VERSION answer does not decode")))
}

fn b2<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let a = wire::send(s, &wire::bus_frame(msg::RESET, 0x20, &[]))?;
    expect_bus_answer(&a, msg::RESET, 0x20, 10)?;
    let layout = s.info().dialect.layout();
    let info = wire::transport_frame(layout, 0, 0x21, &TransportRequest::GetDeviceInfo)?;
    wire::expect_error(&wire::send(s, &info)?, tid::GET_DEVICE_INFO, 0, 0x21)?;
    wire::expect_error(&wire::send(s, &ping_frame(0x22, 5))?, bus_id::PING, 0, 0x22)?;
    let devices = wire::bus_frame(bus_id::GET_DEVICES, 0x23, &[0, 0, 0, 1]);
    wire::expect_error(&wire::send(s, &devices)?, bus_id::GET_DEVICES, 0, 0x23)?;
    let offer = version_g3(s, 0x24, 0, 0)?;
    let agreed = version_g3(
        s,
        0x25,
        offer.bus_version.get(),
        offer.transport_revision.get(),
    )?;
    ensure!(
        agreed.bus_version == offer.bus_version,
        "echo not confirmed"
    );
    let a = wire::send(s, &ping_frame(0x26, 5))?;
    expect_bus_answer(&a, bus_id::PING, 0x26, 12)?;
    let a = wire::send(s, &info)?;
    a.transport(layout, tid::GET_DEVICE_INFO)?;
    Ok(())
}

fn b3<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let dialect = s.info().dialect;
    let layout = dialect.layout();
    let dev = first_device(s)?;
    let max = wire::max_size(dialect);
    ensure!(
        (52..=264).contains(&MAX_MSG_SIZE),
        "bus maximum {MAX_MSG_SIZE}"
    );
    let blocks = (max - 16) / 4;
    let mut bytes = vec![0u8; blocks * 4];
    // VERSION_1 | ACCESS_PLATFORM in block 1.
    if let Some(b) = bytes.get_mut(4) {
        *b = 0x03;
    }
    let blocks =
        FeatureBlocks::from_le_bytes(&bytes).ok_or_else(|| Stop::Fail(String::from("blocks")))?;
    let set = |st| TransportRequest::SetDeviceStatus { status: st };
    wire::transport(s, dev, 1, &set(0))?;
    wire::transport(s, dev, 2, &set(status::ACKNOWLEDGE | status::DRIVER))?;
    let frame = wire::transport_frame(
        layout,
        dev,
        3,
        &TransportRequest::SetDriverFeatures {
            block_index: 0,
            blocks,
        },
    )?;
    ensure!(
        frame.len() == max,
        "request is {} bytes, want {max}",
        frame.len()
    );
    let a = wire::send(s, &frame)?;
    let (_, resp) = a.transport(layout, tid::SET_DRIVER_FEATURES)?;
    ensure!(
        resp == TransportResponse::SetDriverFeatures,
        "full-size SET_DRIVER_FEATURES answered {resp:?}"
    );
    let ok = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    let a = wire::transport(s, dev, 4, &set(ok))?;
    let got = u32_at(a.payload(), 0);
    wire::transport(s, dev, 5, &set(0))?;
    ensure!(
        got == ok,
        "features from the full-size request not taken: status {got:#x}"
    );
    Ok(())
}

fn first_device<C: Conduit>(s: &mut BusSession<C>) -> Result<u16, Stop> {
    s.devices()?
        .first()
        .copied()
        .ok_or_else(|| Stop::Fail(String::from("GET_DEVICES lists no device")))
}

fn b5<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let listed = s.devices()?;
    ensure!(!listed.is_empty(), "no device listed");
    for (i, d) in listed.iter().enumerate() {
        ensure!(
            !listed.iter().skip(i + 1).any(|o| o == d),
            "device {d} listed twice"
        );
    }
    let mut token = 0x40;
    for dev in [1u16, 7, 8, 200, 0x7FFF, 0xFFFF] {
        if listed.contains(&dev) {
            continue;
        }
        token += 1;
        for req in [
            TransportRequest::GetDeviceInfo,
            TransportRequest::SetDeviceStatus {
                status: status::ACKNOWLEDGE,
            },
        ] {
            let a = wire::transport(s, dev, token, &req)?;
            wire::expect_error(&a, req.msg_id(), dev, token)?;
        }
    }
    Ok(())
}

fn event_avail(layout: virtio_msg::Layout, dev: u16, token: u16, vq: u32) -> Result<Vec<u8>, Stop> {
    wire::transport_frame(
        layout,
        dev,
        token,
        &TransportRequest::EventAvail {
            vq_index: vq,
            next_offset: 0,
        },
    )
}

fn b6<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let layout = s.info().dialect.layout();
    let dev = first_device(s)?;
    let set = |st| TransportRequest::SetDeviceStatus { status: st };
    wire::transport(s, dev, 1, &set(0))?;
    for (what, target, vq, token) in [
        ("inactive device, queue 0", dev, 0u32, 0x51u16),
        ("missing queue 9", dev, 9, 0x52),
        ("missing queue 0xffffffff", dev, u32::MAX, 0x53),
        ("missing device 7", 7, 0, 0x54),
    ] {
        let a = wire::send(s, &event_avail(layout, target, token, vq)?)?;
        wire::expect_ack(&a, token).map_err(|e| match e {
            Stop::Fail(r) => Stop::Fail(format!("EVENT_AVAIL to {what}: {r}")),
            other => other,
        })?;
    }
    Ok(())
}

fn b7<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let dialect = s.info().dialect;
    let a = wire::send(s, &ping_frame(0x1111, 0xABCD_EF01))?;
    expect_bus_answer(&a, bus_id::PING, 0x1111, 12)?;
    let (offset, count) = match dialect {
        Dialect::G2 => (0u16, 255u16),
        Dialect::G3 => (0, 256),
    };
    let mut payload = Vec::new();
    payload.extend_from_slice(&offset.to_le_bytes());
    payload.extend_from_slice(&count.to_le_bytes());
    let a = wire::send(s, &wire::bus_frame(bus_id::GET_DEVICES, 0x1112, &payload))?;
    let size = a.msg_size();
    expect_bus_answer(&a, bus_id::GET_DEVICES, 0x1112, size)?;
    if dialect == Dialect::G3 {
        let a = wire::send(s, &wire::bus_frame(msg::EVENT_POLL, 0x1113, &[]))?;
        expect_bus_answer(&a, msg::EVENT_POLL, 0x1113, HEADER_SIZE)?;
    }
    Ok(())
}

fn b8<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let dialect = s.info().dialect;
    let layout = dialect.layout();
    let dev = first_device(s)?;
    let count: u16 = if dialect == Dialect::G2 { 255 } else { 256 };
    let mut devices = Vec::new();
    devices.extend_from_slice(&0u16.to_le_bytes());
    devices.extend_from_slice(&count.to_le_bytes());
    for i in 0..24u16 {
        let token = 0x2000 + i;
        let (frame, want_id, want_dev, bus) = match i % 4 {
            0 => (ping_frame(token, u32::from(i)), bus_id::PING, 0, true),
            1 => (
                wire::transport_frame(layout, dev, token, &TransportRequest::GetDeviceStatus)?,
                tid::GET_DEVICE_STATUS,
                dev,
                false,
            ),
            2 => (
                wire::bus_frame(bus_id::GET_DEVICES, token, &devices),
                bus_id::GET_DEVICES,
                0,
                true,
            ),
            _ => (
                wire::transport_frame(
                    layout,
                    dev,
                    token,
                    &TransportRequest::GetVqueue { index: 0 },
                )?,
                tid::GET_VQUEUE,
                dev,
                false,
            ),
        };
        let a = wire::send(s, &frame)?;
        let h = a.header()?;
        let want_type = if bus { 0x03 } else { 0x01 };
        ensure!(
            a.raw_type() == want_type
                && h.msg_id == want_id
                && h.dev_num == want_dev
                && h.token == token,
            "request {i} ({want_id:#04x}, token {token:#x}) answered with {}",
            a.describe()
        );
    }
    Ok(())
}

fn b14<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    match s.info().dialect {
        Dialect::G3 => b14_g3(s),
        Dialect::G2 => b14_g2(s),
    }
}

/// GET_DEVICES `{offset, count}`; returns (offset, count, next_offset, bitmap) in the G3
/// order (offset, next_offset, count).
fn get_devices_g3<C: Conduit>(
    s: &mut BusSession<C>,
    token: u16,
    offset: u16,
    count: u16,
) -> Result<(u16, u16, u16, Vec<u8>), Stop> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&offset.to_le_bytes());
    payload.extend_from_slice(&count.to_le_bytes());
    let a = wire::send(s, &wire::bus_frame(bus_id::GET_DEVICES, token, &payload))?;
    let size = a.msg_size();
    expect_bus_answer(&a, bus_id::GET_DEVICES, token, size)?;
    let p = a.payload();
    let (echo, next, got) = (u16_at(p, 0), u16_at(p, 2), u16_at(p, 4));
    let bitmap = p.get(6..).unwrap_or_default().to_vec();
    ensure!(
        bitmap.len() == usize::from(got).div_ceil(8),
        "GET_DEVICES {{{offset}, {count}}}: count {got} with {} bitmap bytes",
        bitmap.len()
    );
    Ok((echo, got, next, bitmap))
}

fn b14_g3<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let listed = s.devices()?;
    for (i, (offset, count)) in [(0u16, 256u16), (0, 8), (8, 8), (0, 64), (256, 256)]
        .into_iter()
        .enumerate()
    {
        let token = 0x3000 + u16::try_from(i).unwrap_or(0);
        let (echo, got, next, bitmap) = get_devices_g3(s, token, offset, count)?;
        ensure!(echo == offset, "window {offset}: offset echoed as {echo}");
        ensure!(
            got % 8 == 0 && got <= count,
            "window {{{offset}, {count}}}: count {got}"
        );
        ensure!(
            next == 0 || (next % 8 == 0 && u32::from(next) >= u32::from(offset) + u32::from(got)),
            "window {{{offset}, {count}}}: next_offset {next} (count {got})"
        );
        for n in 0..got {
            let dev = offset + n;
            let bit = bitmap
                .get(usize::from(n / 8))
                .is_some_and(|b| b & (1 << (n % 8)) != 0);
            ensure!(
                bit == listed.contains(&dev),
                "window {{{offset}, {count}}}: device {dev} bit {bit}, listed {}",
                listed.contains(&dev)
            );
        }
        if let Some(&last) = listed.iter().max()
            && u32::from(offset) + u32::from(got) > u32::from(last)
        {
            ensure!(
                next == 0,
                "window {{{offset}, {count}}} covers the last device {last} but next_offset is {next}"
            );
        }
    }
    Ok(())
}

fn b14_g2<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let listed = s.devices()?;
    let mut payload = Vec::new();
    payload.extend_from_slice(&0u16.to_le_bytes());
    payload.extend_from_slice(&255u16.to_le_bytes());
    let a = wire::send(s, &wire::bus_frame(bus_id::GET_DEVICES, 1, &payload))?;
    let size = a.msg_size();
    expect_bus_answer(&a, bus_id::GET_DEVICES, 1, size)?;
    let p = a.payload();
    // G2 order: offset, count (= number of devices), next_offset, bitmap.
    let (offset, count, next) = (u16_at(p, 0), u16_at(p, 2), u16_at(p, 4));
    let byte0 = p.get(6).copied().unwrap_or(0);
    ensure!(
        offset == 0 && next == 0,
        "G2 GET_DEVICES: offset {offset}, next_offset {next}"
    );
    ensure!(
        u32::from(count) == byte0.count_ones() && usize::from(count) == listed.len(),
        "G2 GET_DEVICES: count {count}, bitmap byte 0 {byte0:#04x}, {} listed",
        listed.len()
    );
    ensure!(
        p.get(7..).unwrap_or_default().iter().all(|b| *b == 0),
        "G2 GET_DEVICES: devices beyond byte 0 (unreachable for the G2 driver)"
    );
    Ok(())
}

fn b15<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    for (i, v) in [0u32, 1, 0x5a5a_1234, 0x8000_0000, u32::MAX]
        .into_iter()
        .enumerate()
    {
        let token = 0x4000 + u16::try_from(i).unwrap_or(0);
        let a = wire::send(s, &ping_frame(token, v))?;
        expect_bus_answer(&a, bus_id::PING, token, 12)?;
        let got = u32_at(a.payload(), 0);
        ensure!(got == v, "PING {v:#x} echoed as {got:#x}");
    }
    Ok(())
}

fn fb_version_1<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let offer = version_g3(s, 0x50, 0, 0)?;
    let known = msg::features::DIRECT_RX
        | msg::features::DIRECT_TX
        | msg::features::INDIRECT_RX
        | msg::features::INDIRECT_TX
        | msg::features::NOTIF_RX
        | msg::features::NOTIF_TX
        | msg::features::FIFO;
    let direct = msg::features::DIRECT_RX | msg::features::DIRECT_TX;
    let f = offer.bus_features.get();
    ensure!(
        offer.bus_version.get() == msg::BUS_VERSION_1_0
            && offer.transport_revision.get() == msg::TRANSPORT_REVISION_1,
        "probe answered bus {:#x} revision {}",
        offer.bus_version.get(),
        offer.transport_revision.get()
    );
    ensure!(
        offer.ffa_version.get() >= msg::FFA_VERSION_1_2,
        "partition FF-A version {:#x}",
        offer.ffa_version.get()
    );
    ensure!(
        offer.feature_bits.get() == 0,
        "transport feature bits {:#x}",
        offer.feature_bits.get()
    );
    ensure!(
        f & direct == direct && f & !known == 0,
        "bus features {f:#x}"
    );
    ensure!(offer.max_areas.get() > 0, "max_areas 0");
    let agreed = version_g3(
        s,
        0x51,
        offer.bus_version.get(),
        offer.transport_revision.get(),
    )?;
    ensure!(
        agreed.as_bytes() == offer.as_bytes(),
        "echo answered differently from the probe"
    );
    Ok(())
}

fn fb_version_2<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    // From a clean state: RESET forgets the agreed version.
    let a = wire::send(s, &wire::bus_frame(msg::RESET, 0x5F, &[]))?;
    expect_bus_answer(&a, msg::RESET, 0x5F, 10)?;
    let higher = version_g3(s, 0x60, 0x0002_0000, 1)?;
    ensure!(
        higher.bus_version.get() == msg::BUS_VERSION_1_0,
        "VERSION 2.0 answered {:#x}, want the supported 1.0",
        higher.bus_version.get()
    );
    let lower = version_g3(s, 0x61, 0x0000_0100, 1)?;
    ensure!(
        lower.bus_version.get() == 0,
        "VERSION 0.1 answered {:#x}, want 0 (unsupported)",
        lower.bus_version.get()
    );
    let agreed = version_g3(s, 0x62, msg::BUS_VERSION_1_0, msg::TRANSPORT_REVISION_1)?;
    ensure!(
        agreed.bus_version.get() == msg::BUS_VERSION_1_0,
        "echo of 1.0 answered {:#x}",
        agreed.bus_version.get()
    );
    let a = wire::send(s, &ping_frame(0x63, 9))?;
    expect_bus_answer(&a, bus_id::PING, 0x63, 12)
}

fn version_g2<C: Conduit>(
    s: &mut BusSession<C>,
    bus_version: u32,
) -> Result<msg::VersionRespG2, Stop> {
    let req = msg::VersionReqG2 {
        bus_version: bus_version.into(),
        transport_revision: msg::TRANSPORT_REVISION_1.into(),
    };
    let a = wire::send(s, &wire::bus_frame(msg::VERSION, 1, req.as_bytes()))?;
    expect_bus_answer(&a, msg::VERSION, 1, 26)?;
    let h = a.header()?;
    msg::exact::<msg::VersionRespG2>(&h, a.frame())
        .ok_or_else(|| Stop::Fail(String::from("G2 VERSION answer does not decode")))
}

fn fb_version_3<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let r = version_g2(s, msg::BUS_VERSION_1_0)?;
    let f = r.bus_features.get();
    let notif = msg::features::NOTIF_RX | msg::features::NOTIF_TX;
    ensure!(
        r.bus_version.get() == msg::BUS_VERSION_1_0
            && r.transport_revision.get() == msg::TRANSPORT_REVISION_1
            && r.transport_features.get() == 0,
        "G2 VERSION answered bus {:#x} revision {} features {:#x}",
        r.bus_version.get(),
        r.transport_revision.get(),
        r.transport_features.get()
    );
    ensure!(
        f & (msg::features::DIRECT_RX | msg::features::DIRECT_TX)
            == msg::features::DIRECT_RX | msg::features::DIRECT_TX
            && f & notif == 0,
        "G2 bus features {f:#x}"
    );
    let bad = version_g2(s, 0x0002_0000)?;
    ensure!(
        bad.bus_version.get() == 0 && bad.transport_revision.get() == 0,
        "G2 VERSION 2.0 answered bus {:#x} revision {}",
        bad.bus_version.get(),
        bad.transport_revision.get()
    );
    Ok(())
}

fn fb_frame_1<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let data = 7u32.to_le_bytes();
    for (size, token) in [
        (105u16, 0x71u16),
        (112, 0x72),
        (0xFFFF, 0x73),
        (16, 0x74),
        (10, 0x75),
    ] {
        let frame = wire::raw_frame(0x02, bus_id::PING, 0, token, size, &data);
        let a = wire::send(s, &frame)?;
        ensure!(a.x17_is_zero(), "x17 not zero");
        wire::expect_error(&a, bus_id::PING, 0, token)
            .map_err(|e| fail_context(e, format!("PING with msg_size {size}")))?;
    }
    // msg_size below the header: no header to echo; the answer must still be an ERROR frame.
    let frame = wire::raw_frame(0x02, bus_id::PING, 0, 0x76, 4, &data);
    let a = wire::send(s, &frame)?;
    ensure!(
        !a.is_busy() && a.x17_is_zero(),
        "msg_size 4 answered with {}",
        a.describe()
    );
    let h = a.header()?;
    ensure!(
        a.raw_type() == 0x03 && h.msg_id == msg::ERROR && a.msg_size() == 10,
        "msg_size 4 answered with {}",
        a.describe()
    );
    let a = wire::send(s, &ping_frame(0x77, 3))?;
    expect_bus_answer(&a, bus_id::PING, 0x77, 12)?;
    ensure!(a.x17_is_zero(), "x17 not zero");
    Ok(())
}

fn fail_context(e: Stop, what: String) -> Stop {
    match e {
        Stop::Fail(r) => Stop::Fail(format!("{what}: {r}")),
        other => other,
    }
}

fn fb_error_1<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    for (id, token) in [(0xB0u8, 0x81u16), (0xBF, 0x82), (0x8F, 0x83)] {
        let a = wire::send(s, &wire::bus_frame(id, token, &[]))?;
        wire::expect_error(&a, id, 0, token)?;
    }
    let dev = first_device(s)?;
    for (id, token) in [(0x30u8, 0x84u16), (0x7F, 0x85), (0x00, 0x86)] {
        let a = wire::send(s, &wire::raw_frame(0x00, id, dev, token, 8, &[]))?;
        wire::expect_error(&a, id, dev, token)?;
    }
    let a = wire::transport(s, 5, 0x87, &TransportRequest::GetDeviceStatus)?;
    wire::expect_error(&a, tid::GET_DEVICE_STATUS, 5, 0x87)?;
    Ok(())
}

fn fb_busy_1<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let layout = s.info().dialect.layout();
    let dev = first_device(s)?;
    let frames: Vec<(&str, Vec<u8>)> = vec![
        ("PING", ping_frame(1, 1)),
        (
            "GET_DEVICES",
            wire::bus_frame(bus_id::GET_DEVICES, 2, &[0, 0, 8, 0]),
        ),
        ("unknown bus id", wire::bus_frame(0xB1, 3, &[])),
        (
            "unknown transport id",
            wire::raw_frame(0, 0x31, dev, 4, 8, &[]),
        ),
        (
            "missing device",
            wire::raw_frame(0, tid::GET_DEVICE_INFO, 9, 5, 8, &[]),
        ),
        (
            "oversized msg_size",
            wire::raw_frame(2, bus_id::PING, 0, 6, 200, &[]),
        ),
        (
            "truncated AREA_SHARE",
            wire::raw_frame(2, msg::AREA_SHARE, 0, 7, 20, &[1; 12]),
        ),
        (
            "AREA_UNSHARE of nothing",
            wire::bus_frame(msg::AREA_UNSHARE, 8, &[0x99, 0x99]),
        ),
        ("all-ones header", vec![0xFF; 8]),
        ("EVENT_AVAIL", event_avail(layout, dev, 9, 0)?),
        (
            "EVENT_AVAIL to a missing queue",
            event_avail(layout, dev, 10, 77)?,
        ),
        (
            "GET_VQUEUE",
            wire::transport_frame(layout, dev, 11, &TransportRequest::GetVqueue { index: 0 })?,
        ),
    ];
    for (what, frame) in frames {
        let a = wire::send(s, &frame)?;
        ensure!(!a.is_busy(), "{what} answered with the busy sentinel");
    }
    // An all-zero request is not a frame either.
    let a = wire::send(s, &[0u8; 8])?;
    ensure!(
        !a.is_busy(),
        "an all-zero request answered with the busy sentinel"
    );
    Ok(())
}

fn fb_ack_1<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let layout = s.info().dialect.layout();
    let dev = first_device(s)?;
    for token in [0u16, 0x1234, 0xFFFF] {
        let a = wire::send(s, &event_avail(layout, dev, token, 0)?)?;
        wire::expect_ack(&a, token)?;
    }
    Ok(())
}

fn fb_evcfg_1<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let req = msg::EventConfigureReq {
        method: msg::event_method::POLL,
        reserved: 0,
        notif_id: 0.into(),
    };
    let a = wire::send(
        s,
        &wire::bus_frame(msg::EVENT_CONFIGURE, 0x90, req.as_bytes()),
    )?;
    ensure!(!a.is_busy(), "second EVENT_CONFIGURE answered busy");
    let h = a.header()?;
    let refused = if h.msg_id == msg::ERROR {
        wire::expect_error(&a, msg::EVENT_CONFIGURE, 0, 0x90)?;
        true
    } else {
        expect_bus_answer(&a, msg::EVENT_CONFIGURE, 0x90, 10)?;
        u16_at(a.payload(), 0) != msg::RESULT_SUCCESS
    };
    ensure!(refused, "a second EVENT_CONFIGURE was accepted (result 0)");
    let a = wire::send(s, &wire::bus_frame(msg::EVENT_POLL, 0x91, &[]))?;
    expect_bus_answer(&a, msg::EVENT_POLL, 0x91, HEADER_SIZE)
}

fn fb_poll_1<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    device::with_rig(conn, true, |conn, rig| {
        let first = device::post(conn, rig, 0, 64)?;
        let second = device::post(conn, rig, 512, 64)?;
        let (session, platform) = conn.parts();
        for head in [first, second] {
            let used = rig.queue.pop_used(platform)?;
            ensure!(
                matches!(used, Some((h, _)) if h == head),
                "buffer {head} not used: {used:?}"
            );
        }
        let a = wire::send(session, &wire::bus_frame(msg::EVENT_POLL, 0xA0, &[]))?;
        let h = a.header()?;
        ensure!(
            a.raw_type() == 0x00
                && h.msg_id == tid::EVENT_USED
                && h.dev_num == rig.dev
                && a.msg_size() == 12
                && u32_at(a.payload(), 0) == 0
                && a.padding_is_zero(),
            "first EVENT_POLL: want the 12-byte EVENT_USED of device {} queue 0, got {}",
            rig.dev,
            a.describe()
        );
        for token in [0xA1u16, 0xA2] {
            let a = wire::send(session, &wire::bus_frame(msg::EVENT_POLL, token, &[]))?;
            expect_bus_answer(&a, msg::EVENT_POLL, token, HEADER_SIZE).map_err(|e| {
                fail_context(
                    e,
                    String::from("EVENT_POLL after the EVENT_USED (coalesced)"),
                )
            })?;
        }
        Ok(())
    })
}

fn fb_poll_2<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let a = wire::send(conn.session(), &wire::bus_frame(msg::EVENT_POLL, 1, &[]))?;
    wire::expect_error(&a, msg::EVENT_POLL, 0, 1)?;
    device::with_rig(conn, true, |conn, rig| {
        let head = device::post(conn, rig, 0, 64)?;
        let (session, platform) = conn.parts();
        let used = rig.queue.pop_used(platform)?;
        ensure!(
            matches!(used, Some((h, _)) if h == head),
            "buffer not used: {used:?}"
        );
        let a = wire::send(session, &wire::bus_frame(msg::EVENT_POLL, 1, &[]))?;
        wire::expect_error(&a, msg::EVENT_POLL, 0, 1)
    })
}

/// Pages shared with FFA_MEM_SHARE only (no AREA_SHARE yet): their address and handle.
struct Shared {
    pa: u64,
    pages: u32,
    handle: u64,
}

fn mem_share<C: Conduit, P: Platform>(
    conn: &mut Connection<C, P>,
    pages: u32,
    fill: u8,
) -> Result<Shared, Stop> {
    let (session, platform) = conn.parts();
    let pa = platform
        .alloc_pages(pages)
        .ok_or_else(|| Stop::Fail(String::from("out of driver memory")))?;
    let len = usize::try_from(pages).unwrap_or(0) * 4096;
    platform.write(pa, &vec![fill; len])?;
    let desc = MemTransaction {
        sender: session.own_id(),
        attributes: ffa::memory::ATTR_NORMAL_WB_INNER_SHAREABLE,
        flags: 0,
        handle: 0,
        tag: 0,
        receivers: vec![Receiver {
            endpoint: session.sp_id(),
            access: DataAccess::ReadWrite,
            executable: false,
        }],
        ranges: vec![MemRange {
            address: pa,
            page_count: pages,
        }],
    };
    match session.ffa().mem_send(ShareKind::Share, &desc) {
        Ok(handle) => Ok(Shared { pa, pages, handle }),
        Err(e) => {
            platform.free_pages(pa, pages);
            Err(Stop::Fail(format!("FFA_MEM_SHARE: {e}")))
        }
    }
}

fn default_attrs(dialect: Dialect) -> u32 {
    match dialect {
        Dialect::G3 => msg::attrs::LINUX_DEFAULT,
        Dialect::G2 => 0,
    }
}

/// AREA_SHARE as a raw frame; returns (area id echoed, result) after checking the form.
fn area_share<C: Conduit>(
    s: &mut BusSession<C>,
    token: u16,
    area: u16,
    handle: u64,
    pages: u32,
    attrs: u32,
) -> Result<(u16, u16), Stop> {
    let req = msg::AreaShareReq {
        area_id: area.into(),
        mem_handle: handle.into(),
        mem_tag: 0.into(),
        page_count: pages.into(),
        sharing_attrs: attrs.into(),
    };
    let a = wire::send(s, &wire::bus_frame(msg::AREA_SHARE, token, req.as_bytes()))?;
    expect_bus_answer(&a, msg::AREA_SHARE, token, 12)?;
    Ok((u16_at(a.payload(), 0), u16_at(a.payload(), 2)))
}

fn area_unshare<C: Conduit>(
    s: &mut BusSession<C>,
    token: u16,
    area: u16,
) -> Result<(u16, u16), Stop> {
    let a = wire::send(
        s,
        &wire::bus_frame(msg::AREA_UNSHARE, token, &area.to_le_bytes()),
    )?;
    expect_bus_answer(&a, msg::AREA_UNSHARE, token, 12)?;
    Ok((u16_at(a.payload(), 0), u16_at(a.payload(), 2)))
}

/// Takes the memory back (reclaim, free); a failure is the check's failure.
fn reclaim<C: Conduit, P: Platform>(conn: &mut Connection<C, P>, m: &Shared) -> Verdict {
    let (session, platform) = conn.parts();
    session
        .ffa()
        .mem_reclaim(m.handle)
        .map_err(|e| Stop::Fail(format!("FFA_MEM_RECLAIM of {:#x}: {e}", m.handle)))?;
    platform.free_pages(m.pa, m.pages);
    Ok(())
}

fn fb_area_1<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dialect = conn.session().info().dialect;
    let m = mem_share(conn, 1, 0x3C)?;
    let s = conn.session();
    let (area, result) = area_share(s, 0xB0, 0x42, m.handle, 1, default_attrs(dialect))?;
    ensure!(
        area == 0x42 && result == msg::RESULT_SUCCESS,
        "AREA_SHARE answered area {area:#x} result {result}"
    );
    let held = s.ffa().mem_reclaim(m.handle);
    ensure!(
        held.is_err(),
        "FFA_MEM_RECLAIM succeeded while the partition holds the area"
    );
    let (_, r) = area_unshare(s, 0xB1, 0x42)?;
    ensure!(r == msg::RESULT_SUCCESS, "AREA_UNSHARE result {r}");
    reclaim(conn, &m)
}

fn fb_area_2<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dialect = conn.session().info().dialect;
    let m = mem_share(conn, 2, 0xC3)?;
    let s = conn.session();
    let (_, result) = area_share(s, 0xC0, 7, m.handle, 2, default_attrs(dialect))?;
    ensure!(result == msg::RESULT_SUCCESS, "AREA_SHARE result {result}");
    let (area, r) = area_unshare(s, 0xC1, 7)?;
    ensure!(
        area == 7 && r == msg::RESULT_SUCCESS,
        "AREA_UNSHARE answered area {area} result {r}"
    );
    let (area, again) = area_unshare(s, 0xC2, 7)?;
    ensure!(
        area == 7 && again != msg::RESULT_SUCCESS,
        "second AREA_UNSHARE answered area {area} result {again}"
    );
    let mut back = vec![0u8; 8192];
    conn.platform().read(m.pa, &mut back)?;
    reclaim(conn, &m)?;
    ensure!(back.iter().all(|b| *b == 0xC3), "the shared pages changed");
    Ok(())
}

fn fb_area_3<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dialect = conn.session().info().dialect;
    let ok = default_attrs(dialect);
    let m = mem_share(conn, 1, 0)?;
    let other = mem_share(conn, 1, 0)?;
    let s = conn.session();
    let mut cases = vec![
        ("unknown handle", 3u16, m.handle ^ 0x5555_0000, 1u32, ok),
        ("page count 3 for 1 page", 3, m.handle, 3, ok),
        ("page count 0", 3, m.handle, 0, ok),
        ("area id 0", 0, m.handle, 1, ok),
    ];
    if dialect == Dialect::G3 {
        cases.push(("executable", 3, m.handle, 1, ok | msg::attrs::EXECUTABLE));
        cases.push(("attributes 0 from G3", 3, m.handle, 1, 0));
        cases.push(("MBZ bits", 3, m.handle, 1, ok | 0x1000));
    }
    for (i, (what, area, handle, pages, attrs)) in cases.into_iter().enumerate() {
        let token = 0xD0 + u16::try_from(i).unwrap_or(0);
        let (echo, r) = area_share(s, token, area, handle, pages, attrs)?;
        ensure!(
            r == msg::RESULT_ERROR && echo == area,
            "{what}: AREA_SHARE answered area {echo} result {r}"
        );
    }
    let (_, r) = area_share(s, 0xE0, 3, m.handle, 1, ok)?;
    ensure!(
        r == msg::RESULT_SUCCESS,
        "valid AREA_SHARE after refusals: result {r}"
    );
    let (_, dup) = area_share(s, 0xE1, 3, other.handle, 1, ok)?;
    ensure!(
        dup == msg::RESULT_ERROR,
        "duplicate area id 3: result {dup}"
    );
    // The refused handle was not kept: it is reclaimable at once.
    reclaim(conn, &other)?;
    let (_, r) = area_unshare(conn.session(), 0xE2, 3)?;
    ensure!(r == msg::RESULT_SUCCESS, "AREA_UNSHARE result {r}");
    reclaim(conn, &m)
}

fn fb_area_4<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    for (token, area) in [(0xF0u16, 0x7777u16), (0xF1, 0), (0xF2, 0xFFFF)] {
        let (echo, r) = area_unshare(s, token, area)?;
        ensure!(
            echo == area && r == msg::RESULT_ERROR,
            "AREA_UNSHARE of unshared {area:#x}: area {echo:#x} result {r}"
        );
    }
    Ok(())
}

fn queue_taken<C: Conduit>(s: &mut BusSession<C>, dev: u16, base: u64) -> Result<bool, Stop> {
    let layout = s.info().dialect.layout();
    let mut client = DeviceClient::new(&mut *s, dev, layout)?;
    let config = virtio_msg::device::QueueConfig {
        size: 16,
        desc_addr: base,
        driver_addr: base + 0x100,
        device_addr: base + 0x200,
    };
    let set = client.set_vqueue(0, config);
    let v = client.get_vqueue(0)?;
    Ok(set.is_ok() || v.cur_size != 0)
}

fn fb_area_5<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dev = first_device(conn.session())?;
    let layout = conn.session().info().dialect.layout();
    DeviceClient::new(conn.session(), dev, layout)?.initialize(
        virtio_msg::device::VIRTIO_F_VERSION_1 | virtio_msg::device::VIRTIO_F_ACCESS_PLATFORM,
    )?;
    let area = wire::share(conn, 1)?;
    let s = conn.session();
    for (what, base) in [
        ("an area never shared", bus_address(0x0777, 0)),
        ("past the area's end", area.bus(4096 - 0x100)),
        ("a raw physical address", area.pa),
    ] {
        ensure!(
            !queue_taken(s, dev, base)?,
            "queue at {base:#x} ({what}) was configured"
        );
    }
    ensure!(
        queue_taken(s, dev, area.bus(0))?,
        "queue inside the shared area refused"
    );
    DeviceClient::new(&mut *s, dev, layout)?.reset_vqueue(0)?;
    wire::unshare(conn, &area)?;
    let s = conn.session();
    DeviceClient::new(&mut *s, dev, layout)?.initialize(
        virtio_msg::device::VIRTIO_F_VERSION_1 | virtio_msg::device::VIRTIO_F_ACCESS_PLATFORM,
    )?;
    ensure!(
        !queue_taken(s, dev, area.bus(0))?,
        "queue in area {} after AREA_UNSHARE was configured",
        area.id
    );
    DeviceClient::new(&mut *s, dev, layout)?.reset()?;
    Ok(())
}

fn fb_reset_1<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dev = first_device(conn.session())?;
    let layout = conn.session().info().dialect.layout();
    DeviceClient::new(conn.session(), dev, layout)?.initialize(
        virtio_msg::device::VIRTIO_F_VERSION_1 | virtio_msg::device::VIRTIO_F_ACCESS_PLATFORM,
    )?;
    let a1 = wire::share(conn, 1)?;
    let a2 = wire::share(conn, 2)?;
    let s = conn.session();
    ensure!(queue_taken(s, dev, a1.bus(0))?, "queue not configured");
    let a = wire::send(s, &wire::bus_frame(msg::RESET, 0x99, &[]))?;
    expect_bus_answer(&a, msg::RESET, 0x99, 10)?;
    let r = u16_at(a.payload(), 0);
    ensure!(r == msg::RESULT_SUCCESS, "RESET result {r}");
    for area in [a1, a2] {
        let (s, platform) = conn.parts();
        s.ffa().mem_reclaim(area.handle).map_err(|e| {
            Stop::Fail(format!(
                "area {} not relinquished by RESET (FFA_MEM_RECLAIM: {e})",
                area.id
            ))
        })?;
        platform.free_pages(area.pa, area.pages);
    }
    let s = conn.session();
    let offer = version_g3(s, 0x9A, 0, 0)?;
    version_g3(
        s,
        0x9B,
        offer.bus_version.get(),
        offer.transport_revision.get(),
    )?;
    let mut client = DeviceClient::new(&mut *s, dev, layout)?;
    let st = client.get_status()?;
    let v = client.get_vqueue(0)?;
    ensure!(
        st == 0 && v.cur_size == 0,
        "after RESET: status {st:#x}, queue 0 {v:?}"
    );
    Ok(())
}

fn ff_resp_1<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let (own, sp) = (s.own_id(), s.sp_id());
    let layout = s.info().dialect.layout();
    let dev = first_device(s)?;
    let frames = [
        ("PING", ping_frame(0x10, 1)),
        (
            "GET_DEVICE_STATUS",
            wire::transport_frame(layout, dev, 0x11, &TransportRequest::GetDeviceStatus)?,
        ),
        ("EVENT_AVAIL", event_avail(layout, dev, 0x12, 0)?),
        ("unknown bus id", wire::bus_frame(0xB2, 0x13, &[])),
        (
            "bad msg_size",
            wire::raw_frame(2, bus_id::PING, 0, 0x14, 99, &[]),
        ),
    ];
    for (what, frame) in frames {
        let token = u16_at(&frame, 4);
        let answer = s.ffa().call(&Interface::MsgSendDirectReq2 {
            src_id: own,
            dst_id: sp,
            uuid: VIRTIO_MSG_DEVICE_UUID,
            args: DirectMsg2Args(frame_to_regs(&frame)),
        });
        let x1 = s.ffa().last_answer().get(1).copied().unwrap_or(0);
        match answer {
            Ok(Interface::MsgSendDirectResp2 {
                src_id,
                dst_id,
                args,
            }) => {
                ensure!(
                    src_id == sp
                        && dst_id == own
                        && x1 & 0xFFFF_FFFF == (u64::from(sp) << 16 | u64::from(own)),
                    "{what}: DIRECT_RESP2 from {src_id:#x} to {dst_id:#x} (x1 {x1:#x}); want {sp:#x} to {own:#x}"
                );
                let a = Answer {
                    bytes: regs_to_frame(&args.0),
                };
                let h = a.header()?;
                ensure!(
                    h.token == token,
                    "{what}: the response carries token {:#x}, not the request's {token:#x}",
                    h.token
                );
            }
            Ok(other) => {
                return Err(Stop::Fail(format!(
                    "{what}: answered with {other:?}, not DIRECT_RESP2"
                )));
            }
            Err(e) => return Err(Stop::Fail(format!("{what}: {e}"))),
        }
    }
    Ok(())
}

fn ff_uuid_1<C: Conduit>(s: &mut BusSession<C>) -> Verdict {
    let (own, sp) = (s.own_id(), s.sp_id());
    let other = Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef);
    let frame = ping_frame(0x30, 0x30);
    match s.ffa().direct_req2(own, sp, other, frame_to_regs(&frame)) {
        Err(ffa::Error::Ffa(code)) => {
            ensure!(
                code != ffa::arm_ffa::FfaError::Busy,
                "unknown UUID refused with BUSY (means retry)"
            );
        }
        Ok(regs) => {
            let a = Answer {
                bytes: regs_to_frame(&regs),
            };
            ensure!(
                a.header().map_or(true, |h| h.msg_id != bus_id::PING),
                "PING for an unknown service UUID was served: {}",
                a.describe()
            );
        }
        Err(e) => return Err(Stop::Fail(format!("DIRECT_REQ2: {e}"))),
    }
    let a = wire::send(s, &ping_frame(0x31, 0x31))?;
    expect_bus_answer(&a, bus_id::PING, 0x31, 12)
}
