//! The device clauses (virtio-msg §6 "Device", `V*`), checked on the first device the
//! partition lists, through transport messages sent as raw frames (so every byte of each
//! answer is seen) or through the driver library's [`DeviceClient`] where only the result
//! matters.

use alloc::{format, string::String, vec::Vec};

use ffa::{Conduit, bus::Dialect};
use virtio_msg::{
    Layout,
    device::{QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
    ids::transport as id,
    transport::{FeatureBlocks, SET_VQUEUE_OP_ENABLE, TransportRequest, TransportResponse, status},
};

use super::{
    check::{Applies, Check, Stop, Verdict, check, ensure},
    wire::{self, Answer},
};
use crate::{
    connection::Connection,
    platform::Platform,
    session::{BusSession, Event, SharedArea},
    virtqueue::DriverQueue,
};

pub(super) const V1: Check = check(
    "V1",
    "virtio-msg §6 V1 (type bits)",
    Applies::Both,
    "every answer has type bits 2..7 zero; a request with reserved type bits set is served",
    "",
);
pub(super) const V2: Check = check(
    "V2",
    "virtio-msg §6 V2 (msg_size)",
    Applies::Both,
    "every answer's msg_size is 8 + its payload (exact decode) and within the driver's maximum",
    "",
);
pub(super) const V3: Check = check(
    "V3",
    "virtio-msg §6 V3 (dev_num)",
    Applies::Both,
    "every transport answer carries the device's own dev_num",
    "",
);
pub(super) const V4: Check = check(
    "V4",
    "virtio-msg §6 V4 (little-endian)",
    Applies::Both,
    "status and feature words arrive least significant byte first",
    "",
);
pub(super) const V5: Check = check(
    "V5",
    "virtio-msg §6 V5 (padding)",
    Applies::Both,
    "bytes after msg_size (bus padding, x17) are zero in every answer",
    "",
);
pub(super) const V6: Check = check(
    "V6",
    "virtio-msg §6 V6 (token)",
    Applies::Both,
    "answers do not depend on the token (0, 1, 0x7fff, 0xffff) and echo it",
    "",
);
pub(super) const V7: Check = check(
    "V7",
    "virtio-msg §6 V7 (malformed requests); README: ERROR instead of silence",
    Applies::Both,
    "documented: a malformed or unknown transport request gets the bus ERROR frame (id, dev_num, \
     token echoed) instead of silence, and changes nothing",
    "",
);
pub(super) const V9: Check = check(
    "V9",
    "virtio-msg §6 V9 (mandatory messages)",
    Applies::Both,
    "GET_DEVICE_INFO, GET_DEVICE_FEATURES, SET_DRIVER_FEATURES, GET/SET_CONFIG, GET/SET_DEVICE_STATUS, \
     GET/SET/RESET_VQUEUE, GET_SHM each get their own response",
    "",
);
pub(super) const V10: Check = check(
    "V10",
    "virtio-msg §6 V10 (GET_DEVICE_INFO)",
    Applies::Both,
    "GET_DEVICE_INFO answered in status 0, the same in every state, feature bits a multiple of 32",
    "",
);
pub(super) const V11: Check = check(
    "V11",
    "virtio-msg §6 V11 (feature blocks beyond)",
    Applies::Both,
    "GET_DEVICE_FEATURES returns 0 for blocks beyond num_feature_bits",
    "",
);
pub(super) const V12: Check = check(
    "V12",
    "virtio-msg §6 V12 (SET_DRIVER_FEATURES)",
    Applies::Both,
    "an offered feature set keeps FEATURES_OK; a set with an unoffered bit clears FEATURES_OK in \
     the SET_DEVICE_STATUS answer",
    "",
);
pub(super) const V13: Check = check(
    "V13",
    "virtio-msg §6 V13-V15, V26 (config changes, EVENT_CONFIG)",
    Applies::Both,
    "config generation and EVENT_CONFIG on device-side config changes (needs a device whose \
     config changes)",
    "",
);
pub(super) const V16: Check = check(
    "V16",
    "virtio-msg §6 V16 (GET_CONFIG generation)",
    Applies::Both,
    "GET_CONFIG carries the current generation (stable while nothing changes, across status changes)",
    "",
);
pub(super) const V17: Check = check(
    "V17",
    "virtio-msg §6 V17 (SET_CONFIG); README: generation not checked",
    Applies::Both,
    "documented: SET_CONFIG generation is not checked, writes are all-or-nothing: a write outside \
     the config space is refused with length 0 and the generation is unchanged",
    "",
);
pub(super) const V18: Check = check(
    "V18",
    "virtio-msg §6 V18 (GET_VQUEUE)",
    Applies::Both,
    "GET_VQUEUE: max_size a power of two for existing queues, all zero beyond max_virtqueues, \
     cur_size 0 and no addresses when unconfigured",
    "",
);
pub(super) const V19: Check = check(
    "V19",
    "virtio-msg §6 V19 (SET_VQUEUE persisted)",
    Applies::Both,
    "SET_VQUEUE at max_size is reported back exactly by GET_VQUEUE (size, addresses, enabled)",
    "",
);
pub(super) const V20: Check = check(
    "V20",
    "virtio-msg §6 V20 (RESET_VQUEUE); README: accepted without RING_RESET",
    Applies::Both,
    "documented: RESET_VQUEUE is accepted without VIRTIO_F_RING_RESET; the queue reads back \
     unconfigured and can be set again",
    "",
);
pub(super) const V21: Check = check(
    "V21",
    "virtio-msg §6 V21 (SET_VQUEUE after DRIVER_OK)",
    Applies::Both,
    "SET_VQUEUE of an unused queue after DRIVER_OK is accepted and reported back",
    "",
);
pub(super) const V22: Check = check(
    "V22",
    "virtio-msg §6 V22 (reset)",
    Applies::Both,
    "SET_DEVICE_STATUS(0) answers 0, status reads 0, queues unconfigured, pending buffers never \
     completed, no event left",
    "",
);
pub(super) const V23: Check = check(
    "V23",
    "virtio-msg §6 V23 (status answers)",
    Applies::Both,
    "SET/GET_DEVICE_STATUS report the resulting status (ACKNOWLEDGE, DRIVER, FEATURES_OK, FAILED, 0)",
    "",
);
pub(super) const V24: Check = check(
    "V24",
    "virtio-msg §6 V24 (no processing before DRIVER_OK)",
    Applies::Both,
    "a buffer made available before DRIVER_OK is not used; after DRIVER_OK and a kick it is",
    "",
);
pub(super) const V25: Check = check(
    "V25",
    "virtio-msg §6 V25 (GET_SHM)",
    Applies::Both,
    "GET_SHM answers length 0 for regions the device does not have (ids 0, 1, 255)",
    "",
);
pub(super) const V27: Check = check(
    "V27",
    "virtio-msg §6 V27 (EVENT_USED)",
    Applies::G3,
    "after a buffer is used, EVENT_POLL returns EVENT_USED for the device and queue",
    "documented: no events are queued for G2 (its driver polls the used rings); see FB-POLL-2",
);
pub(super) const V28: Check = check(
    "V28",
    "virtio-msg §6 V28 (DEVICE_NEEDS_RESET)",
    Applies::Both,
    "DEVICE_NEEDS_RESET is never reported to a driver that did nothing wrong",
    "",
);
pub(super) const V29: Check = check(
    "V29",
    "virtio-msg §6 V29 (size limit)",
    Applies::Both,
    "answers never exceed the maximum: a full-size GET_DEVICE_FEATURES answer is exactly the \
     maximum (G3 104 bytes, G2 48)",
    "",
);

/// Runs the body of device check `id`, if it is one.
pub(super) fn execute<C: Conduit, P: Platform>(
    id: &str,
    conn: &mut Connection<C, P>,
) -> Option<Verdict> {
    Some(match id {
        "V1" => v1(conn),
        "V2" => v2(conn),
        "V3" => v3(conn),
        "V4" => v4(conn),
        "V5" => v5(conn),
        "V6" => v6(conn),
        "V7" => v7(conn),
        "V9" => v9(conn),
        "V10" => v10(conn),
        "V11" => v11(conn),
        "V12" => v12(conn),
        "V13" => v13(conn),
        "V16" => v16(conn),
        "V17" => v17(conn),
        "V18" => v18(conn),
        "V19" => v19(conn),
        "V20" => v20(conn),
        "V21" => v21(conn),
        "V22" => v22(conn),
        "V23" => v23(conn),
        "V24" => v24(conn),
        "V25" => v25(conn),
        "V27" => v27(conn),
        "V28" => v28(conn),
        "V29" => v29(conn),
        _ => return None,
    })
}

/// The device the checks run on: the first one GET_DEVICES lists.
fn device<C: Conduit>(session: &mut BusSession<C>) -> Result<u16, Stop> {
    session
        .devices()?
        .first()
        .copied()
        .ok_or_else(|| Stop::Fail(String::from("GET_DEVICES lists no device")))
}

fn layout<C: Conduit>(session: &BusSession<C>) -> Layout {
    session.info().dialect.layout()
}

/// The driver features the checks negotiate (the G3 driver's required pair).
const FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM;

/// `FEATURES` as two feature blocks, little-endian.
fn feature_block_bytes(features: u64) -> [u8; 8] {
    features.to_le_bytes()
}

/// One request of a sweep and its answer.
struct Exchange {
    id: u8,
    dev: u16,
    token: u16,
    answer: Answer,
}

/// Sends every transport request once, in an order that makes each meaningful (reset, status,
/// features, config, a queue in a shared page, SHM, reset), and keeps the answers.
fn sweep<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Result<Vec<Exchange>, Stop> {
    let dev = device(conn.session())?;
    let area = wire::share(conn, 1)?;
    let result = sweep_in(conn.session(), dev, &area);
    wire::unshare(conn, &area)?;
    result
}

fn sweep_in<C: Conduit>(
    session: &mut BusSession<C>,
    dev: u16,
    area: &SharedArea,
) -> Result<Vec<Exchange>, Stop> {
    let layout = layout(session);
    let mut out = Vec::new();
    let mut token = 0x0100u16;
    let mut send = |session: &mut BusSession<C>, req: &TransportRequest<'_>| {
        token = token.wrapping_add(1);
        let answer = wire::transport(session, dev, token, req)?;
        out.push(Exchange {
            id: req.msg_id(),
            dev,
            token,
            answer,
        });
        Ok::<Answer, Stop>(answer)
    };
    send(session, &TransportRequest::GetDeviceInfo)?;
    send(session, &TransportRequest::SetDeviceStatus { status: 0 })?;
    send(session, &TransportRequest::GetDeviceStatus)?;
    send(
        session,
        &TransportRequest::SetDeviceStatus {
            status: status::ACKNOWLEDGE | status::DRIVER,
        },
    )?;
    send(
        session,
        &TransportRequest::GetDeviceFeatures {
            block_index: 0,
            num_blocks: 2,
        },
    )?;
    let bytes = feature_block_bytes(FEATURES);
    let blocks = FeatureBlocks::from_le_bytes(&bytes)
        .ok_or_else(|| Stop::Fail(String::from("feature blocks")))?;
    send(
        session,
        &TransportRequest::SetDriverFeatures {
            block_index: 0,
            blocks,
        },
    )?;
    send(
        session,
        &TransportRequest::SetDeviceStatus {
            status: status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        },
    )?;
    let config = send(
        session,
        &TransportRequest::GetConfig {
            offset: 0,
            length: 0,
        },
    )?;
    let generation = match config.transport(layout, id::GET_CONFIG) {
        Ok((_, TransportResponse::Config { generation, .. })) => generation,
        _ => 0,
    };
    send(
        session,
        &TransportRequest::SetConfig {
            generation,
            offset: 0,
            data: &[0],
        },
    )?;
    send(session, &TransportRequest::GetVqueue { index: 0 })?;
    send(session, &set_vqueue(layout, 0, 16, area.bus(0)))?;
    send(session, &TransportRequest::GetVqueue { index: 0 })?;
    send(session, &TransportRequest::ResetVqueue { index: 0 })?;
    send(session, &TransportRequest::GetShm { index: 0 })?;
    send(session, &TransportRequest::SetDeviceStatus { status: 0 })?;
    Ok(out)
}

/// SET_VQUEUE of queue `index` with `size` descriptors in a ring at bus address `base`
/// (descriptors, then the driver and device areas at 16 bytes per descriptor and 4 KiB / 2).
fn set_vqueue(layout: Layout, index: u32, size: u32, base: u64) -> TransportRequest<'static> {
    let config = ring_config(size, base);
    TransportRequest::SetVqueue {
        index,
        flags: match layout {
            Layout::V1Review => SET_VQUEUE_OP_ENABLE,
            Layout::Pr28 => 0,
        },
        size,
        desc_addr: config.desc_addr,
        driver_addr: config.driver_addr,
        device_addr: config.device_addr,
    }
}

fn ring_config(size: u32, base: u64) -> QueueConfig {
    let n = u64::from(size);
    QueueConfig {
        size: u16::try_from(size).unwrap_or(u16::MAX),
        desc_addr: base,
        driver_addr: base + 16 * n,
        device_addr: (base + 16 * n + 6 + 2 * n).next_multiple_of(4),
    }
}

fn v1<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    for e in sweep(conn)? {
        ensure!(
            e.answer.raw_type() & 0xFC == 0,
            "answer to {:#04x} has type byte {:#04x}",
            e.id,
            e.answer.raw_type()
        );
    }
    // A request with every reserved type bit set is the same request.
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let mut frame = wire::transport_frame(layout, dev, 0x77, &TransportRequest::GetDeviceInfo)?;
    if let Some(t) = frame.first_mut() {
        *t = 0xFC;
    }
    let answer = wire::send(session, &frame)?;
    let (h, _) = answer.transport(layout, id::GET_DEVICE_INFO)?;
    ensure!(
        h.token == 0x77 && answer.raw_type() == 0x01,
        "GET_DEVICE_INFO with reserved type bits not served: {}",
        answer.describe()
    );
    Ok(())
}

fn v2<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dialect = conn.session().info().dialect;
    let layout = dialect.layout();
    for e in sweep(conn)? {
        let n = e.answer.msg_size();
        ensure!(
            n <= wire::max_size(dialect),
            "answer to {:#04x} is {n} bytes, above {}",
            e.id,
            wire::max_size(dialect)
        );
        let (_, resp) = e.answer.transport(layout, e.id)?;
        if let TransportResponse::DeviceFeatures { blocks, .. } = resp {
            ensure!(
                n == 16 + 4 * blocks.len() && blocks.len() == 2,
                "GET_DEVICE_FEATURES of 2 blocks answered with {n} bytes"
            );
        }
    }
    Ok(())
}

fn v3<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    for e in sweep(conn)? {
        let h = e.answer.header()?;
        ensure!(
            h.dev_num == e.dev && h.token == e.token,
            "answer to {:#04x} for device {} (token {:#x}) carries dev_num {} (token {:#x})",
            e.id,
            e.dev,
            e.token,
            h.dev_num,
            h.token
        );
    }
    Ok(())
}

fn v4<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let status = status::ACKNOWLEDGE | status::DRIVER;
    wire::transport(
        session,
        dev,
        1,
        &TransportRequest::SetDeviceStatus { status: 0 },
    )?;
    wire::transport(
        session,
        dev,
        2,
        &TransportRequest::SetDeviceStatus { status },
    )?;
    let a = wire::transport(session, dev, 3, &TransportRequest::GetDeviceStatus)?;
    ensure!(
        a.payload() == [0x03, 0, 0, 0],
        "GET_DEVICE_STATUS after ACKNOWLEDGE|DRIVER: payload {} (want 03000000)",
        wire::hex(a.payload())
    );
    let a = wire::transport(
        session,
        dev,
        4,
        &TransportRequest::GetDeviceFeatures {
            block_index: 1,
            num_blocks: 1,
        },
    )?;
    // Block 1 holds bits 32..63: VERSION_1 (32) and ACCESS_PLATFORM (33) in its first byte.
    let block = a.payload().get(8..12).unwrap_or_default();
    ensure!(
        block.first().is_some_and(|b| b & 0x03 == 0x03) && block.get(3) == Some(&0),
        "feature block 1 bytes {} (want VERSION_1|ACCESS_PLATFORM in byte 0)",
        wire::hex(block)
    );
    wire::transport(
        session,
        dev,
        5,
        &TransportRequest::SetDeviceStatus { status: 0 },
    )?;
    Ok(())
}

fn v5<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    for e in sweep(conn)? {
        ensure!(
            e.answer.padding_is_zero(),
            "answer to {:#04x} has non-zero bytes after msg_size {}",
            e.id,
            e.answer.msg_size()
        );
    }
    Ok(())
}

fn v6<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    for req in [
        TransportRequest::GetDeviceInfo,
        TransportRequest::GetDeviceStatus,
        TransportRequest::GetVqueue { index: 0 },
    ] {
        let mut first: Option<Answer> = None;
        for token in [0u16, 1, 0x7fff, 0xffff] {
            let mut a = wire::transport(session, dev, token, &req)?;
            let h = a.header()?;
            ensure!(
                h.token == token,
                "{:#04x}: token {token:#x} echoed as {:#x}",
                req.msg_id(),
                h.token
            );
            // Compare with the token bytes masked.
            if let Some(t) = a.bytes.get_mut(4..6) {
                t.fill(0);
            }
            match first {
                None => first = Some(a),
                Some(f) => ensure!(
                    f == a,
                    "{:#04x}: answer with token {token:#x} differs: {} vs {}",
                    req.msg_id(),
                    a.describe(),
                    f.describe()
                ),
            }
        }
    }
    Ok(())
}

fn v7<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dialect = conn.session().info().dialect;
    let session = conn.session();
    let dev = device(session)?;
    let set = |s| TransportRequest::SetDeviceStatus { status: s };
    wire::transport(session, dev, 1, &set(0))?;
    wire::transport(session, dev, 2, &set(status::ACKNOWLEDGE))?;
    // Unknown transport id; GET_DEVICE_STATUS with a payload; SET_DEVICE_STATUS cut short.
    let cases: [(u8, u16, Vec<u8>); 3] = [
        (0x30, 0x31, wire::raw_frame(0x00, 0x30, dev, 0x31, 8, &[])),
        (
            id::GET_DEVICE_STATUS,
            0x32,
            wire::raw_frame(0x00, id::GET_DEVICE_STATUS, dev, 0x32, 12, &[1, 2, 3, 4]),
        ),
        (
            id::SET_DEVICE_STATUS,
            0x33,
            wire::raw_frame(0x00, id::SET_DEVICE_STATUS, dev, 0x33, 10, &[0, 0]),
        ),
    ];
    for (msg_id, token, frame) in cases {
        let a = wire::send(session, &frame)?;
        wire::expect_error(&a, msg_id, dev, token)?;
    }
    let a = wire::transport(session, dev, 3, &TransportRequest::GetDeviceStatus)?;
    ensure!(
        a.payload() == status::ACKNOWLEDGE.to_le_bytes(),
        "status changed by malformed requests: {}",
        wire::hex(a.payload())
    );
    if dialect == Dialect::G3 {
        let events = session.drain_events()?;
        ensure!(
            events.is_empty(),
            "malformed requests queued events: {events:?}"
        );
    }
    wire::transport(session, dev, 4, &set(0))?;
    Ok(())
}

fn v9<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let layout = layout(conn.session());
    let exchanges = sweep(conn)?;
    let mut seen = Vec::new();
    for e in &exchanges {
        ensure!(
            !e.answer.is_busy(),
            "{:#04x} answered with the busy sentinel",
            e.id
        );
        e.answer.transport(layout, e.id)?;
        seen.push(e.id);
    }
    for want in [
        id::GET_DEVICE_INFO,
        id::GET_DEVICE_FEATURES,
        id::SET_DRIVER_FEATURES,
        id::GET_CONFIG,
        id::SET_CONFIG,
        id::GET_DEVICE_STATUS,
        id::SET_DEVICE_STATUS,
        id::GET_VQUEUE,
        id::SET_VQUEUE,
        id::RESET_VQUEUE,
        id::GET_SHM,
    ] {
        ensure!(seen.contains(&want), "{want:#04x} not exercised");
    }
    Ok(())
}

fn v10<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let mut client = DeviceClient::new(&mut *session, dev, layout)?;
    client.reset()?;
    let inactive = client.get_device_info()?;
    ensure!(inactive.device_id != 0, "device id 0 in status 0");
    ensure!(
        inactive.num_feature_bits % 32 == 0 && inactive.num_feature_bits >= 64,
        "num_feature_bits {} (a multiple of 32 covering VERSION_1)",
        inactive.num_feature_bits
    );
    ensure!(
        inactive.max_virtqueues >= 1,
        "max_virtqueues {}",
        inactive.max_virtqueues
    );
    client.set_status(status::ACKNOWLEDGE | status::DRIVER)?;
    let active = client.get_device_info()?;
    ensure!(
        active == inactive,
        "GET_DEVICE_INFO changed with the status: {active:?} vs {inactive:?}"
    );
    client.reset()?;
    Ok(())
}

fn v11<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let mut client = DeviceClient::new(&mut *session, dev, layout)?;
    let info = client.get_device_info()?;
    let implemented = info.num_feature_bits / 32;
    let mut inside = [0u32; 2];
    client.get_features(0, &mut inside)?;
    ensure!(
        inside[1] & 0x3 == 0x3,
        "VERSION_1|ACCESS_PLATFORM not offered (block 1 = {:#x})",
        inside[1]
    );
    for start in [implemented, implemented + 1, implemented + 100, 0xFFFF] {
        let mut beyond = [0xAAAA_AAAAu32; 2];
        client.get_features(start, &mut beyond)?;
        ensure!(
            beyond == [0, 0],
            "blocks {start}.. beyond {implemented} implemented: {beyond:x?}"
        );
    }
    Ok(())
}

fn v12<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let mut client = DeviceClient::new(&mut *session, dev, layout)?;
    let info = client.get_device_info()?;
    client.reset()?;
    client.set_status(status::ACKNOWLEDGE | status::DRIVER)?;
    let offered = client.device_features()?;
    client.set_driver_features(offered & FEATURES)?;
    let s = client.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK)?;
    ensure!(
        s & status::FEATURES_OK != 0 && client.get_status()? & status::FEATURES_OK != 0,
        "offered features {:#x}: FEATURES_OK not kept (answer {s:#x})",
        offered & FEATURES
    );
    // A bit the device does not offer, among its implemented bits.
    let limit = u64::from(info.num_feature_bits.min(64));
    let Some(bit) = (0..limit).find(|b| offered & (1 << b) == 0) else {
        client.reset()?;
        return Err(Stop::NotApplicable(String::from(
            "the device offers every feature bit",
        )));
    };
    client.reset()?;
    client.set_status(status::ACKNOWLEDGE | status::DRIVER)?;
    client.set_driver_features((offered & FEATURES) | (1 << bit))?;
    let s = client.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK)?;
    let got = client.get_status()?;
    ensure!(
        s & status::FEATURES_OK == 0 && got & status::FEATURES_OK == 0,
        "unoffered feature bit {bit} accepted: SET_DEVICE_STATUS answered {s:#x}, status {got:#x}"
    );
    client.reset()?;
    Ok(())
}

fn v13<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let info = DeviceClient::new(&mut *session, dev, layout)?.get_device_info()?;
    Err(Stop::NotApplicable(format!(
        "device {dev} (virtio id {}, config {} bytes) has no device-side config change to observe",
        info.device_id, info.config_size
    )))
}

/// GET_CONFIG of `length` bytes at `offset`: the generation and the data length.
fn get_config<C: Conduit>(
    session: &mut BusSession<C>,
    dev: u16,
    token: u16,
    offset: u32,
    length: u32,
) -> Result<(u32, usize), Stop> {
    let layout = layout(session);
    let a = wire::transport(
        session,
        dev,
        token,
        &TransportRequest::GetConfig { offset, length },
    )?;
    match a.transport(layout, id::GET_CONFIG)? {
        (
            _,
            TransportResponse::Config {
                generation, data, ..
            },
        ) => Ok((generation, data.len())),
        _ => Err(Stop::Fail(String::from("GET_CONFIG answer kind"))),
    }
}

fn v16<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let (g0, n) = get_config(session, dev, 1, 0, 0)?;
    ensure!(n == 0, "GET_CONFIG of 0 bytes returned {n}");
    let (g1, _) = get_config(session, dev, 2, 0, 0)?;
    wire::transport(
        session,
        dev,
        3,
        &TransportRequest::SetDeviceStatus {
            status: status::ACKNOWLEDGE,
        },
    )?;
    let (g2, _) = get_config(session, dev, 4, 0, 0)?;
    wire::transport(
        session,
        dev,
        5,
        &TransportRequest::SetDeviceStatus { status: 0 },
    )?;
    ensure!(
        g0 == g1 && g1 == g2,
        "generation moved without a config change: {g0}, {g1}, {g2}"
    );
    Ok(())
}

fn v17<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let info = DeviceClient::new(&mut *session, dev, layout)?.get_device_info()?;
    let (g, _) = get_config(session, dev, 1, 0, 0)?;
    for (generation, offset) in [(g, info.config_size), (g.wrapping_add(5), info.config_size)] {
        let a = wire::transport(
            session,
            dev,
            2,
            &TransportRequest::SetConfig {
                generation,
                offset,
                data: &[0x5a, 0x5a],
            },
        )?;
        match a.transport(layout, id::SET_CONFIG)? {
            (
                _,
                TransportResponse::SetConfig {
                    length, offset: o, ..
                },
            ) => ensure!(
                length == 0 && o == offset,
                "SET_CONFIG of 2 bytes at {offset} (config {} bytes) applied {length} at {o}",
                info.config_size
            ),
            _ => return Err(Stop::Fail(String::from("SET_CONFIG answer kind"))),
        }
    }
    let (after, _) = get_config(session, dev, 3, 0, 0)?;
    ensure!(
        after == g,
        "refused SET_CONFIG moved the generation {g} -> {after}"
    );
    Ok(())
}

fn v18<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let mut client = DeviceClient::new(&mut *session, dev, layout)?;
    let info = client.get_device_info()?;
    client.reset()?;
    for q in 0..info.max_virtqueues.min(8) {
        // get_vqueue checks the sentinel rules (cur 0 ⇒ no addresses, not enabled).
        let v = client.get_vqueue(q)?;
        ensure!(
            v.max_size != 0 && v.max_size.is_power_of_two() && v.max_size <= 32768,
            "queue {q}: max_size {}",
            v.max_size
        );
        ensure!(
            v.cur_size == 0 && !v.enabled,
            "queue {q} configured after reset"
        );
    }
    for q in [info.max_virtqueues, info.max_virtqueues + 7, 0xFFFF] {
        let v = client.get_vqueue(q)?;
        ensure!(
            v == Default::default(),
            "queue {q} (beyond {} queues): {v:?}",
            info.max_virtqueues
        );
    }
    Ok(())
}

/// Brings the device to FEATURES_OK with the checks' features.
fn features_ok<C: Conduit>(session: &mut BusSession<C>, dev: u16) -> Result<(), Stop> {
    let layout = layout(session);
    DeviceClient::new(&mut *session, dev, layout)?.initialize(FEATURES)?;
    Ok(())
}

fn v19<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dev = device(conn.session())?;
    features_ok(conn.session(), dev)?;
    let layout = layout(conn.session());
    let max = DeviceClient::new(conn.session(), dev, layout)?
        .get_vqueue(0)?
        .max_size;
    let size = u16::try_from(max).unwrap_or(u16::MAX);
    let area = wire::share(conn, wire::ring_pages(size)?)?;
    let result = (|| {
        let mut client = DeviceClient::new(conn.session(), dev, layout)?;
        let before = client.get_vqueue(0)?;
        ensure!(before.cur_size == 0, "queue configured before SET_VQUEUE");
        let config = ring_config(max, area.bus(0));
        client.set_vqueue(0, config)?;
        let v = client.get_vqueue(0)?;
        ensure!(
            v.cur_size == max
                && v.enabled
                && v.desc_addr == config.desc_addr
                && v.driver_addr == config.driver_addr
                && v.device_addr == config.device_addr,
            "GET_VQUEUE after SET_VQUEUE({max}, {:#x}): {v:?}",
            config.desc_addr
        );
        client.reset()?;
        Ok(())
    })();
    wire::unshare(conn, &area)?;
    result
}

fn v20<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dev = device(conn.session())?;
    features_ok(conn.session(), dev)?;
    let layout = layout(conn.session());
    let area = wire::share(conn, 1)?;
    let result = (|| {
        let mut client = DeviceClient::new(conn.session(), dev, layout)?;
        let config = ring_config(16, area.bus(0));
        client.set_vqueue(0, config)?;
        client.reset_vqueue(0)?;
        let v = client.get_vqueue(0)?;
        ensure!(
            v.cur_size == 0 && !v.enabled && v.desc_addr == 0,
            "queue after RESET_VQUEUE: {v:?}"
        );
        client.set_vqueue(0, config)?;
        client.reset()?;
        Ok(())
    })();
    wire::unshare(conn, &area)?;
    result
}

fn v21<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dev = device(conn.session())?;
    features_ok(conn.session(), dev)?;
    let layout = layout(conn.session());
    let area = wire::share(conn, 1)?;
    let result = (|| {
        let mut client = DeviceClient::new(conn.session(), dev, layout)?;
        let s = client.driver_ok()?;
        ensure!(s & status::DRIVER_OK != 0, "DRIVER_OK not taken: {s:#x}");
        client.set_vqueue(0, ring_config(16, area.bus(0)))?;
        client.reset()?;
        Ok(())
    })();
    wire::unshare(conn, &area)?;
    result
}

/// An initialised device with queue 0 in one shared area and a data buffer in another.
pub(super) struct Rig {
    pub(super) dev: u16,
    ring: SharedArea,
    buffer: SharedArea,
    pub(super) queue: DriverQueue,
}

/// Sets up a [`Rig`] (to FEATURES_OK and the queue; DRIVER_OK if `driver_ok`).
fn rig<C: Conduit, P: Platform>(conn: &mut Connection<C, P>, driver_ok: bool) -> Result<Rig, Stop> {
    let dev = device(conn.session())?;
    features_ok(conn.session(), dev)?;
    let layout = layout(conn.session());
    let max = DeviceClient::new(conn.session(), dev, layout)?
        .get_vqueue(0)?
        .max_size;
    let size = u16::try_from(max.min(16)).unwrap_or(16);
    let ring = wire::share(conn, wire::ring_pages(size)?)?;
    let buffer = wire::share(conn, 1)?;
    let (session, platform) = conn.parts();
    let queue = DriverQueue::new(platform, size, ring.pa, ring.bus(0))?;
    let mut client = DeviceClient::new(&mut *session, dev, layout)?;
    client.set_vqueue(0, queue.queue_config())?;
    if driver_ok {
        client.driver_ok()?;
    }
    Ok(Rig {
        dev,
        ring,
        buffer,
        queue,
    })
}

/// Makes `len` bytes of the buffer (at `offset`) available and kicks queue 0; returns the head.
pub(super) fn post<C: Conduit, P: Platform>(
    conn: &mut Connection<C, P>,
    rig: &mut Rig,
    offset: u64,
    len: u32,
) -> Result<u16, Stop> {
    let (session, platform) = conn.parts();
    let head = rig
        .queue
        .add(platform, &[], &[(rig.buffer.bus(offset), len)])?;
    rig.queue.publish(platform)?;
    let layout = session.info().dialect.layout();
    DeviceClient::new(&mut *session, rig.dev, layout)?.notify_avail(0)?;
    Ok(head)
}

/// Resets the device and unshares the rig's areas.
fn unrig<C: Conduit, P: Platform>(conn: &mut Connection<C, P>, rig: &Rig) -> Verdict {
    let layout = layout(conn.session());
    DeviceClient::new(conn.session(), rig.dev, layout)?.reset()?;
    wire::unshare(conn, &rig.ring)?;
    wire::unshare(conn, &rig.buffer)
}

pub(super) fn with_rig<C: Conduit, P: Platform>(
    conn: &mut Connection<C, P>,
    driver_ok: bool,
    body: impl FnOnce(&mut Connection<C, P>, &mut Rig) -> Verdict,
) -> Verdict {
    let mut rig = rig(conn, driver_ok)?;
    let result = body(conn, &mut rig);
    let cleanup = unrig(conn, &rig);
    result.and(cleanup)
}

fn v22<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dialect = conn.session().info().dialect;
    with_rig(conn, false, |conn, rig| {
        post(conn, rig, 0, 64)?;
        let layout = dialect.layout();
        let mut client = DeviceClient::new(conn.session(), rig.dev, layout)?;
        let s = client.set_status(0)?;
        ensure!(s == 0, "SET_DEVICE_STATUS(0) answered {s:#x}");
        let got = client.get_status()?;
        ensure!(got == 0, "status {got:#x} after reset");
        let v = client.get_vqueue(0)?;
        ensure!(v.cur_size == 0 && !v.enabled, "queue 0 after reset: {v:?}");
        let (session, platform) = conn.parts();
        let used = rig.queue.pop_used(platform)?;
        ensure!(
            used.is_none(),
            "a buffer posted before reset was used: {used:?}"
        );
        if dialect == Dialect::G3 {
            let events = session.drain_events()?;
            ensure!(events.is_empty(), "events left after reset: {events:?}");
        }
        Ok(())
    })
}

fn v23<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let mut client = DeviceClient::new(&mut *session, dev, layout)?;
    client.reset()?;
    let mut expect = 0;
    for bit in [status::ACKNOWLEDGE, status::DRIVER] {
        expect |= bit;
        let s = client.set_status(expect)?;
        let g = client.get_status()?;
        ensure!(
            s == expect && g == expect,
            "SET_DEVICE_STATUS({expect:#x}) answered {s:#x}, reads {g:#x}"
        );
    }
    client.set_driver_features(FEATURES)?;
    expect |= status::FEATURES_OK;
    let s = client.set_status(expect)?;
    ensure!(
        s == expect && client.get_status()? == expect,
        "FEATURES_OK: answered {s:#x}"
    );
    expect |= status::FAILED;
    let s = client.set_status(expect)?;
    ensure!(
        s == expect && client.get_status()? == expect,
        "FAILED: answered {s:#x}"
    );
    let s = client.set_status(0)?;
    ensure!(s == 0 && client.get_status()? == 0, "reset answered {s:#x}");
    Ok(())
}

fn v24<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    with_rig(conn, false, |conn, rig| {
        let head = post(conn, rig, 0, 64)?;
        let (session, platform) = conn.parts();
        let early = rig.queue.pop_used(platform)?;
        ensure!(early.is_none(), "buffer used before DRIVER_OK: {early:?}");
        let layout = session.info().dialect.layout();
        DeviceClient::new(&mut *session, rig.dev, layout)?.driver_ok()?;
        DeviceClient::new(&mut *session, rig.dev, layout)?.notify_avail(0)?;
        let used = rig.queue.pop_used(platform)?;
        ensure!(
            matches!(used, Some((h, len)) if h == head && len > 0),
            "after DRIVER_OK and a kick: used {used:?} (head {head})"
        );
        if session.info().dialect == Dialect::G3 {
            session.drain_events()?;
        }
        Ok(())
    })
}

fn v25<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dev = device(session)?;
    let layout = layout(session);
    let mut client = DeviceClient::new(&mut *session, dev, layout)?;
    for shm in [0, 1, 255] {
        let r = client.get_shm(shm)?;
        ensure!(
            r.is_none(),
            "SHM {shm}: {r:?} (virtio-rng has no SHM region)"
        );
    }
    Ok(())
}

fn v27<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    with_rig(conn, true, |conn, rig| {
        let head = post(conn, rig, 0, 64)?;
        let (session, platform) = conn.parts();
        let events = session.drain_events()?;
        let used = rig.queue.pop_used(platform)?;
        ensure!(
            matches!(used, Some((h, _)) if h == head),
            "buffer not used: {used:?}"
        );
        ensure!(
            events.contains(&Event::Used {
                dev: rig.dev,
                vq: 0
            }),
            "no EVENT_USED for device {} queue 0 in {events:?}",
            rig.dev
        );
        Ok(())
    })
}

fn v28<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let dialect = conn.session().info().dialect;
    with_rig(conn, true, |conn, rig| {
        for i in 0..4u64 {
            post(conn, rig, i * 512, 512)?;
            let (_, platform) = conn.parts();
            rig.queue.pop_used(platform)?;
        }
        let session = conn.session();
        let s = DeviceClient::new(&mut *session, rig.dev, dialect.layout())?.get_status()?;
        ensure!(
            s & status::DEVICE_NEEDS_RESET == 0,
            "DEVICE_NEEDS_RESET after normal use: {s:#x}"
        );
        if dialect == Dialect::G3 {
            for e in session.drain_events()? {
                if let Event::Config { status: st, .. } = e {
                    ensure!(
                        st & status::DEVICE_NEEDS_RESET == 0,
                        "EVENT_CONFIG with DEVICE_NEEDS_RESET: {st:#x}"
                    );
                }
            }
        }
        Ok(())
    })
}

fn v29<C: Conduit, P: Platform>(conn: &mut Connection<C, P>) -> Verdict {
    let session = conn.session();
    let dialect = session.info().dialect;
    let dev = device(session)?;
    let max = wire::max_size(dialect);
    let blocks = u32::try_from((max - 16) / 4).unwrap_or(0);
    let a = wire::transport(
        session,
        dev,
        9,
        &TransportRequest::GetDeviceFeatures {
            block_index: 0,
            num_blocks: blocks,
        },
    )?;
    let (_, resp) = a.transport(dialect.layout(), id::GET_DEVICE_FEATURES)?;
    ensure!(
        matches!(resp, TransportResponse::DeviceFeatures { blocks: b, .. } if b.len() == usize::try_from(blocks).unwrap_or(0)),
        "GET_DEVICE_FEATURES of {blocks} blocks: {}",
        a.describe()
    );
    ensure!(
        a.msg_size() == max && a.x17_is_zero(),
        "full-size answer is {} bytes (want {max}), x17 zero: {}",
        a.msg_size(),
        a.x17_is_zero()
    );
    Ok(())
}
