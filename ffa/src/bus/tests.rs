//! Bus instance tests against fake services and mock devices: the fakes and frame helpers here,
//! the tests by concern in `tests/` (negotiation, area_share, events, routing), driving a
//! [`BusInstance`] through [`BusInstance::handle`] only.

use std::{
    boxed::Box,
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, VecDeque},
    vec,
    vec::Vec,
};

use virtio_msg::{
    Header, Layout,
    device::{
        VirtioDevice,
        mock::{MockDevice, MockState},
    },
    header::HEADER_SIZE,
    transport::{TransportRequest, TransportResponse},
};
use zerocopy::{FromBytes, IntoBytes};

use super::*;
use crate::memory::{MapError, ShareKind};

mod area_mem;
mod area_share;
mod events;
mod negotiation;
mod relinquish;
mod routing;

/// A memory owner's share: (owner, pages, writable).
struct Share {
    owner: u16,
    pages: u64,
    writable: bool,
}

/// Fake FF-A services: shares by handle, each backed by its own byte vector at a base
/// address derived from the handle.
#[derive(Default)]
struct Fake {
    shares: BTreeMap<u64, Share>,
    retrieved: BTreeSet<u64>,
    memory: RefCell<BTreeMap<u64, Vec<u8>>>,
    notified: Vec<(u16, u16)>,
    /// Indirect messages sent: (receiver, service, frame).
    sent: Vec<(u16, uuid::Uuid, Vec<u8>)>,
    /// FFA_MSG_SEND2 answers BUSY (the receiver keeps its RX buffer).
    send_busy: bool,
    busy: bool,
    relinquished: Vec<u64>,
    /// Answers for the next relinquish calls of each handle, in order; a failed relinquish
    /// leaves the area retrieved and mapped (as FfaServices does).
    relinquish_fails: BTreeMap<u64, VecDeque<ServiceError>>,
    /// Relinquish calls made (successful or not).
    relinquish_calls: usize,
    /// Make the next retrieve succeed with the SPMC but fail for the partition, whose
    /// relinquish of it also fails ([`ServiceError::StillRetrieved`]).
    strand_next_retrieve: bool,
}

impl Fake {
    fn base(handle: u64) -> u64 {
        handle << 32
    }

    fn offer(&mut self, handle: u64, owner: u16, pages: u64) {
        self.shares.insert(
            handle,
            Share {
                owner,
                pages,
                writable: true,
            },
        );
    }

    /// Makes the next relinquish calls of `handle` fail with `errors`, in order.
    fn fail_relinquish(&mut self, handle: u64, errors: impl IntoIterator<Item = ServiceError>) {
        self.relinquish_fails
            .entry(handle)
            .or_default()
            .extend(errors);
    }

    fn locate(&self, addr: u64, len: usize) -> Result<(u64, usize), MapError> {
        let base = addr & !0xFFFF_FFFF;
        let handle = base >> 32;
        let mem = self.memory.borrow();
        let bytes = mem.get(&base).ok_or(MapError::NotMapped)?;
        if !self.retrieved.contains(&handle) {
            return Err(MapError::NotMapped);
        }
        let off = usize::try_from(addr - base).unwrap();
        if off + len > bytes.len() {
            return Err(MapError::NotMapped);
        }
        Ok((base, off))
    }
}

impl BusServices for Fake {
    fn retrieve(
        &mut self,
        owner: u16,
        handle: u64,
        _tag: u64,
        _kind: ShareKind,
    ) -> Result<RetrievedArea, ServiceError> {
        if self.busy {
            return Err(ServiceError::Busy);
        }
        let share = self.shares.get(&handle).ok_or(ServiceError::Refused)?;
        if share.owner != owner || self.retrieved.contains(&handle) {
            return Err(ServiceError::Refused);
        }
        if core::mem::take(&mut self.strand_next_retrieve) {
            self.retrieved.insert(handle);
            return Err(ServiceError::StillRetrieved);
        }
        let len = share.pages * 4096;
        self.memory
            .borrow_mut()
            .entry(Self::base(handle))
            .or_insert_with(|| vec![0; usize::try_from(len).unwrap()]);
        self.retrieved.insert(handle);
        Ok(RetrievedArea {
            handle,
            segments: vec![Segment {
                base: Self::base(handle),
                len,
            }],
            len,
            writable: share.writable,
            pages: share.pages,
        })
    }

    fn relinquish(&mut self, area: &RetrievedArea) -> Result<(), ServiceError> {
        self.relinquish_calls += 1;
        if let Some(e) = self
            .relinquish_fails
            .get_mut(&area.handle)
            .and_then(VecDeque::pop_front)
        {
            assert!(
                self.retrieved.contains(&area.handle),
                "relinquish of an unretrieved handle"
            );
            return Err(e);
        }
        assert!(
            self.retrieved.remove(&area.handle),
            "relinquish of an unretrieved handle"
        );
        self.relinquished.push(area.handle);
        Ok(())
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MapError> {
        let (base, off) = self.locate(addr, buf.len())?;
        buf.copy_from_slice(&self.memory.borrow()[&base][off..off + buf.len()]);
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MapError> {
        let (base, off) = self.locate(addr, data.len())?;
        self.memory.borrow_mut().get_mut(&base).unwrap()[off..off + data.len()]
            .copy_from_slice(data);
        Ok(())
    }

    fn notify(&mut self, vm: u16, notif_id: u16) -> Result<(), ServiceError> {
        self.notified.push((vm, notif_id));
        Ok(())
    }

    fn send_indirect(
        &mut self,
        vm: u16,
        uuid: uuid::Uuid,
        frame: &[u8],
    ) -> Result<(), ServiceError> {
        if self.send_busy {
            return Err(ServiceError::Busy);
        }
        self.sent.push((vm, uuid, frame.to_vec()));
        Ok(())
    }
}

const VM: u16 = 0x0001;

fn instance(ndev: usize) -> (BusInstance, Vec<MockDevice>) {
    let mocks: Vec<MockDevice> = (0..ndev)
        .map(|_| MockDevice::new(MockState::default()))
        .collect();
    let devices: Vec<Box<dyn VirtioDevice + Send>> = mocks
        .iter()
        .map(|m| Box::new(m.clone()) as Box<dyn VirtioDevice + Send>)
        .collect();
    (BusInstance::new(VM, devices, BusConfig::default()), mocks)
}

fn bus_frame(id: u8, token: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = msg::write_bus_frame(&mut out, false, id, 0, token, payload).unwrap();
    out[..n].to_vec()
}

fn send(bus: &mut BusInstance, fake: &mut Fake, frame: &[u8]) -> Option<Vec<u8>> {
    let mut out = [0u8; MAX_MSG_SIZE];
    match bus.handle(frame, &mut out, fake) {
        Reply::Frame(n) => {
            assert!(out[n..].iter().all(|b| *b == 0), "padding not zero");
            Some(out[..n].to_vec())
        }
        Reply::Busy => None,
    }
}

fn header(frame: &[u8]) -> Header {
    Header::parse(frame).unwrap()
}

/// Asserts `resp` is an ERROR frame for `msg_id`, echoing `dev_num` and `token`.
fn assert_error(resp: &[u8], msg_id: u8, dev_num: u16, token: u16) {
    let h = header(resp);
    assert_eq!(
        (h.msg_type, h.msg_id),
        (0x03, msg::ERROR),
        "not an ERROR frame: {resp:x?}"
    );
    assert_eq!((h.dev_num, h.token, h.msg_size), (dev_num, token, 10));
    assert_eq!(u16::from_le_bytes([resp[8], resp[9]]), u16::from(msg_id));
}

fn version_g3(bus: &mut BusInstance, fake: &mut Fake, v: u32, rev: u32) -> msg::VersionRespG3 {
    let req = msg::VersionReqG3 {
        bus_version: v.into(),
        transport_revision: rev.into(),
        ffa_version: 0x10002.into(),
    };
    let resp = send(bus, fake, &bus_frame(msg::VERSION, 7, req.as_bytes())).unwrap();
    let h = header(&resp);
    assert_eq!(
        (h.msg_type, h.msg_id, h.token, h.msg_size),
        (0x03, msg::VERSION, 7, 30)
    );
    msg::VersionRespG3::read_from_bytes(&resp[8..]).unwrap()
}

fn negotiate_g3(bus: &mut BusInstance, fake: &mut Fake) {
    let offer = version_g3(bus, fake, 0, 0);
    let agreed = version_g3(
        bus,
        fake,
        offer.bus_version.get(),
        offer.transport_revision.get(),
    );
    assert_eq!(agreed.bus_version.get(), msg::BUS_VERSION_1_0);
}

fn negotiate_g2(bus: &mut BusInstance, fake: &mut Fake) -> msg::VersionRespG2 {
    let req = msg::VersionReqG2 {
        bus_version: msg::BUS_VERSION_1_0.into(),
        transport_revision: 1.into(),
    };
    let resp = send(bus, fake, &bus_frame(msg::VERSION, 1, req.as_bytes())).unwrap();
    assert_eq!(header(&resp).msg_size, 26);
    msg::VersionRespG2::read_from_bytes(&resp[8..]).unwrap()
}

fn get_devices(offset: u16, count: u16) -> Vec<u8> {
    let mut p = offset.to_le_bytes().to_vec();
    p.extend_from_slice(&count.to_le_bytes());
    bus_frame(virtio_msg::ids::bus::GET_DEVICES, 3, &p)
}

fn bus_frame_resp(id: u8, token: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = msg::write_bus_frame(&mut out, true, id, 0, token, payload).unwrap();
    out[..n].to_vec()
}

fn area_share(id: u16, handle: u64, pages: u32, attrs: u32) -> Vec<u8> {
    let req = msg::AreaShareReq {
        area_id: id.into(),
        mem_handle: handle.into(),
        mem_tag: 0.into(),
        page_count: pages.into(),
        sharing_attrs: attrs.into(),
    };
    bus_frame(msg::AREA_SHARE, 30, req.as_bytes())
}

fn area_result(resp: &[u8], id: u16) -> u16 {
    let h = header(resp);
    assert_eq!(
        (h.msg_type, h.msg_id, h.msg_size),
        (0x03, msg::AREA_SHARE, 12)
    );
    let r = msg::AreaResp::read_from_bytes(&resp[8..]).unwrap();
    assert_eq!(r.area_id.get(), id);
    r.result.get()
}

/// Shares a ring area and configures queue 0 of device 0 with rings inside it.
fn setup_queue(bus: &mut BusInstance, fake: &mut Fake, layout: Layout) -> u64 {
    fake.offer(0x10, VM, 4);
    let attrs = if layout == Layout::V1Review {
        msg::attrs::LINUX_DEFAULT
    } else {
        0
    };
    let resp = send(bus, fake, &area_share(1, 0x10, 4, attrs)).unwrap();
    assert_eq!(area_result(&resp, 1), 0);
    bus_address(1, 0)
}

fn transport(
    bus: &mut BusInstance,
    fake: &mut Fake,
    layout: Layout,
    req: TransportRequest<'_>,
) -> Vec<u8> {
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = req.encode(layout, 0, 77, &mut out).unwrap();
    send(bus, fake, &out[..n]).unwrap()
}

/// Takes device 0 through ACKNOWLEDGE, DRIVER, the features and FEATURES_OK; returns the
/// status SET_DEVICE_STATUS(FEATURES_OK) answered.
fn to_features_ok(bus: &mut BusInstance, fake: &mut Fake, layout: Layout) -> u32 {
    use virtio_msg::transport::status::*;
    for s in [ACKNOWLEDGE, ACKNOWLEDGE | DRIVER] {
        transport(
            bus,
            fake,
            layout,
            TransportRequest::SetDeviceStatus { status: s },
        );
    }
    let features = (virtio_msg::device::VIRTIO_F_VERSION_1
        | virtio_msg::device::VIRTIO_F_ACCESS_PLATFORM)
        .to_le_bytes();
    transport(
        bus,
        fake,
        layout,
        TransportRequest::SetDriverFeatures {
            block_index: 0,
            blocks: virtio_msg::transport::FeatureBlocks::from_le_bytes(&features).unwrap(),
        },
    );
    let resp = transport(
        bus,
        fake,
        layout,
        TransportRequest::SetDeviceStatus {
            status: ACKNOWLEDGE | DRIVER | FEATURES_OK,
        },
    );
    status_of(&resp, layout, 0x08)
}

/// The status in a GET/SET_DEVICE_STATUS answer.
fn status_of(resp: &[u8], layout: Layout, msg_id: u8) -> u32 {
    match TransportResponse::decode(resp, layout, msg_id).unwrap().1 {
        TransportResponse::DeviceStatus { status }
        | TransportResponse::SetDeviceStatus { status } => status,
        other => panic!("{other:?}"),
    }
}

fn init_device(bus: &mut BusInstance, fake: &mut Fake, layout: Layout, ring: u64, size: u32) {
    use virtio_msg::transport::status::*;
    to_features_ok(bus, fake, layout);
    transport(
        bus,
        fake,
        layout,
        TransportRequest::SetVqueue {
            index: 0,
            flags: if layout == Layout::V1Review { 1 } else { 0 },
            size,
            desc_addr: ring,
            driver_addr: ring + 0x1000,
            device_addr: ring + 0x2000,
        },
    );
    transport(
        bus,
        fake,
        layout,
        TransportRequest::SetDeviceStatus {
            status: ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK,
        },
    );
}

fn cur_size(resp: &[u8], layout: Layout) -> u32 {
    let (_, r) = TransportResponse::decode(resp, layout, 0x09).unwrap();
    match r {
        TransportResponse::Vqueue { cur_size, .. } => cur_size,
        other => panic!("{other:?}"),
    }
}
