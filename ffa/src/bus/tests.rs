//! Bus instance tests against fake services and mock devices.

use std::{
    boxed::Box,
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
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
    busy: bool,
    relinquished: Vec<u64>,
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

#[test]
fn g3_version_probe_then_echo_commits() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    let offer = version_g3(&mut bus, &mut fake, 0, 0);
    assert_eq!(offer.bus_version.get(), 0x0001_0000);
    assert_eq!(offer.transport_revision.get(), 1);
    assert_eq!(offer.ffa_version.get(), 0x0001_0002);
    assert_eq!(offer.feature_bits.get(), 0);
    assert_eq!(offer.bus_features.get(), 0x33);
    assert_eq!(offer.max_areas.get(), 256);
    assert_eq!(bus.dialect(), Some(Dialect::G3));
    // The probe alone does not negotiate: bus messages other than VERSION/RESET are refused.
    let resp = send(&mut bus, &mut fake, &get_devices(0, 256)).unwrap();
    assert_error(&resp, 0x02, 0, 3);
    version_g3(&mut bus, &mut fake, 0x0001_0000, 1);
    let resp = send(&mut bus, &mut fake, &get_devices(0, 256)).unwrap();
    assert_eq!(header(&resp).msg_id, 0x02);
}

#[test]
fn g3_version_unsupported_and_newer() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    // Older than ours: all-zero answer, nothing negotiated.
    let r = version_g3(&mut bus, &mut fake, 0x0000_0001, 1);
    assert_eq!(
        (r.bus_version.get(), r.bus_features.get(), r.max_areas.get()),
        (0, 0, 0)
    );
    let r = version_g3(&mut bus, &mut fake, 0x0001_0000, 0);
    assert_eq!(r.bus_version.get(), 0);
    // Newer than ours: we offer ours without committing.
    let r = version_g3(&mut bus, &mut fake, 0x0002_0000, 1);
    assert_eq!(r.bus_version.get(), 0x0001_0000);
    let resp = send(&mut bus, &mut fake, &get_devices(0, 256)).unwrap();
    assert_error(&resp, 0x02, 0, 3);
    // Once agreed, a different version gets zeros and the agreement stands.
    version_g3(&mut bus, &mut fake, 0x0001_0000, 1);
    let r = version_g3(&mut bus, &mut fake, 0x0002_0000, 1);
    assert_eq!(r.bus_version.get(), 0);
    let r = version_g3(&mut bus, &mut fake, 0, 0);
    assert_eq!(r.bus_version.get(), 0x0001_0000);
    assert!(send(&mut bus, &mut fake, &get_devices(0, 256)).is_some());
}

#[test]
fn version_of_other_sizes_is_an_error() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::VERSION, 9, &[0; 18])).unwrap();
    assert_error(&resp, msg::VERSION, 0, 9);
    assert_eq!(bus.dialect(), None);
}

#[test]
fn g2_version_and_get_devices() {
    let (mut bus, _) = instance(3);
    let mut fake = Fake::default();
    let r = negotiate_g2(&mut bus, &mut fake);
    assert_eq!(r.bus_version.get(), 0x0001_0000);
    assert_eq!(r.transport_revision.get(), 1);
    assert_eq!(r.transport_features.get(), 0);
    assert_eq!(
        r.bus_features.get(),
        0x3,
        "G2 must not be offered indirect or notifications"
    );
    assert_eq!(bus.dialect(), Some(Dialect::G2));
    let resp = send(&mut bus, &mut fake, &get_devices(0, 255)).unwrap();
    let h = header(&resp);
    assert_eq!((h.msg_type, h.msg_id, h.msg_size), (0x03, 0x02, 8 + 6 + 32));
    let p = &resp[8..];
    assert_eq!(u16::from_le_bytes([p[0], p[1]]), 0, "offset");
    assert_eq!(u16::from_le_bytes([p[2], p[3]]), 3, "num = device count");
    assert_eq!(u16::from_le_bytes([p[4], p[5]]), 0, "next_offset");
    assert_eq!(p[6], 0b111);
    assert!(p[7..].iter().all(|b| *b == 0));
    // G2 gets no EVENT_POLL.
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 1, &[])).unwrap();
    assert_error(&resp, msg::EVENT_POLL, 0, 1);
}

#[test]
fn g2_wrong_version_gets_zero_version() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    let req = msg::VersionReqG2 {
        bus_version: 0x0002_0000.into(),
        transport_revision: 1.into(),
    };
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::VERSION, 1, req.as_bytes()),
    )
    .unwrap();
    let r = msg::VersionRespG2::read_from_bytes(&resp[8..]).unwrap();
    assert_eq!(r.bus_version.get(), 0);
}

#[test]
fn g3_get_devices_windows() {
    let (mut bus, _) = instance(20);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    // Window 8..16 of 20 devices: all present, more after it.
    let resp = send(&mut bus, &mut fake, &get_devices(8, 8)).unwrap();
    let p = &resp[8..];
    assert_eq!(header(&resp).msg_size, 8 + 6 + 1);
    assert_eq!(u16::from_le_bytes([p[0], p[1]]), 8, "offset");
    assert_eq!(u16::from_le_bytes([p[2], p[3]]), 16, "next_offset");
    assert_eq!(u16::from_le_bytes([p[4], p[5]]), 8, "count");
    assert_eq!(p[6], 0xFF);
    // Last window: devices 16..19, no more.
    let resp = send(&mut bus, &mut fake, &get_devices(16, 256)).unwrap();
    let p = &resp[8..];
    assert_eq!(header(&resp).msg_size, 8 + 6 + 32);
    assert_eq!(u16::from_le_bytes([p[2], p[3]]), 0);
    assert_eq!(u16::from_le_bytes([p[4], p[5]]), 256);
    assert_eq!(p[6], 0x0F);
    assert!(p[7..].iter().all(|b| *b == 0));
    // A window larger than a frame carries is cut to what fits.
    let resp = send(&mut bus, &mut fake, &get_devices(0, 4096)).unwrap();
    let p = &resp[8..];
    assert_eq!(u16::from_le_bytes([p[4], p[5]]), 720);
    assert_eq!(header(&resp).msg_size, 104);
    // Beyond every device: an empty window.
    let resp = send(&mut bus, &mut fake, &get_devices(1024, 8)).unwrap();
    assert_eq!(resp[8 + 6], 0);
    // Malformed request size.
    let resp = send(&mut bus, &mut fake, &bus_frame(0x02, 5, &[0, 0])).unwrap();
    assert_error(&resp, 0x02, 0, 5);
}

#[test]
fn ping_echoes() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(0x03, 44, &0xdead_beefu32.to_le_bytes()),
    )
    .unwrap();
    assert_eq!(
        resp,
        bus_frame_resp(0x03, 44, &0xdead_beefu32.to_le_bytes())
    );
}

fn bus_frame_resp(id: u8, token: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = msg::write_bus_frame(&mut out, true, id, 0, token, payload).unwrap();
    out[..n].to_vec()
}

#[test]
fn unknown_and_malformed_frames_get_error() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    // Unknown bus id.
    assert_error(
        &send(&mut bus, &mut fake, &bus_frame(0x99, 12, &[])).unwrap(),
        0x99,
        0,
        12,
    );
    // A bus event id sent as a request.
    assert_error(
        &send(&mut bus, &mut fake, &bus_frame(0x40, 12, &[0; 4])).unwrap(),
        0x40,
        0,
        12,
    );
    // FIFO_CONFIGURE is not offered.
    assert_error(
        &send(&mut bus, &mut fake, &bus_frame(0x86, 2, &[0; 12])).unwrap(),
        0x86,
        0,
        2,
    );
    // Bus message with a device number.
    let mut f = bus_frame(0x03, 13, &[1, 2, 3, 4]);
    f[2] = 1;
    assert_error(&send(&mut bus, &mut fake, &f).unwrap(), 0x03, 1, 13);
    // A response where a request is due.
    let f = bus_frame_resp(0x03, 14, &[1, 2, 3, 4]);
    assert_error(&send(&mut bus, &mut fake, &f).unwrap(), 0x03, 0, 14);
    // msg_size larger than the frame, and smaller than a header.
    let mut f = bus_frame(0x03, 15, &[1, 2, 3, 4]);
    f[6] = 200;
    assert_error(&send(&mut bus, &mut fake, &f).unwrap(), 0x03, 0, 15);
    f[6] = 4;
    assert_error(&send(&mut bus, &mut fake, &f).unwrap(), 0x03, 0, 15);
    // Transport message for a device that does not exist.
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = TransportRequest::GetDeviceStatus
        .encode(Layout::V1Review, 9, 16, &mut out)
        .unwrap();
    assert_error(&send(&mut bus, &mut fake, &out[..n]).unwrap(), 0x07, 9, 16);
    // Empty frame.
    assert!(matches!(
        bus.handle(&[], &mut [0; MAX_MSG_SIZE], &mut fake),
        Reply::Frame(10)
    ));
    // Everything still works.
    assert!(send(&mut bus, &mut fake, &get_devices(0, 8)).is_some());
}

#[test]
fn transport_before_negotiation_is_an_error() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    let mut out = [0u8; MAX_MSG_SIZE];
    let n = TransportRequest::GetDeviceInfo
        .encode(Layout::V1Review, 0, 21, &mut out)
        .unwrap();
    assert_error(&send(&mut bus, &mut fake, &out[..n]).unwrap(), 0x02, 0, 21);
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

#[test]
fn area_share_success_and_failure_paths() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    fake.offer(0x10, VM, 4);
    fake.offer(0x11, VM, 4);
    fake.offer(0x12, 0x0002, 4);
    let ok = msg::attrs::LINUX_DEFAULT;
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(1, 0x10, 4, ok)).unwrap(),
            1
        ),
        0
    );
    assert!(bus.areas().contains(1));
    // Area id 0 is reserved; an id in use is refused.
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(0, 0x11, 4, ok)).unwrap(),
            0
        ),
        1
    );
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(1, 0x11, 4, ok)).unwrap(),
            1
        ),
        1
    );
    // Attributes: executable, not writable, device memory, secure, MBZ bits, donate.
    for bad in [
        ok | 0x8,
        ok & !0x4,
        (ok & !0x300) | 0x100,
        ok & !0x400,
        ok | 0x1000,
        ok | 0x2,
        0,
    ] {
        assert_eq!(
            area_result(
                &send(&mut bus, &mut fake, &area_share(2, 0x11, 4, bad)).unwrap(),
                2
            ),
            1,
            "attrs {bad:#x} accepted"
        );
    }
    // Page count disagreeing with the retrieved memory: refused and relinquished.
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x11, 3, ok)).unwrap(),
            2
        ),
        1
    );
    assert_eq!(fake.relinquished, vec![0x11]);
    assert!(!fake.retrieved.contains(&0x11));
    // Zero pages; a handle owned by another endpoint; an unknown handle.
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x11, 0, ok)).unwrap(),
            2
        ),
        1
    );
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x12, 4, ok)).unwrap(),
            2
        ),
        1
    );
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x99, 4, ok)).unwrap(),
            2
        ),
        1
    );
    // Busy SPMC: G3 gets the busy sentinel, then a retry succeeds.
    fake.busy = true;
    assert_eq!(send(&mut bus, &mut fake, &area_share(2, 0x11, 4, ok)), None);
    fake.busy = false;
    assert_eq!(
        area_result(
            &send(&mut bus, &mut fake, &area_share(2, 0x11, 4, ok)).unwrap(),
            2
        ),
        0
    );
    // Wrong size.
    let mut f = area_share(3, 0x11, 4, ok);
    f.pop();
    f[6] -= 1;
    assert_error(
        &send(&mut bus, &mut fake, &f).unwrap(),
        msg::AREA_SHARE,
        0,
        30,
    );
    assert_eq!(bus.areas().len(), 2);
}

#[test]
fn g2_area_share_with_zero_attributes_and_no_busy() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g2(&mut bus, &mut fake);
    fake.offer(0x20, VM, 1024);
    fake.busy = true;
    let resp = send(&mut bus, &mut fake, &area_share(1, 0x20, 1024, 0)).unwrap();
    assert_eq!(area_result(&resp, 1), 1, "G2 never gets the busy sentinel");
    fake.busy = false;
    // G2 counts Linux pages: 16 KiB pages are 4 FF-A pages each.
    let resp = send(&mut bus, &mut fake, &area_share(1, 0x20, 256, 0)).unwrap();
    assert_eq!(area_result(&resp, 1), 0);
}

#[test]
fn area_unshare() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    fake.offer(0x10, VM, 1);
    send(
        &mut bus,
        &mut fake,
        &area_share(5, 0x10, 1, msg::attrs::LINUX_DEFAULT),
    )
    .unwrap();
    let unshare = |id: u16| bus_frame(msg::AREA_UNSHARE, 31, &id.to_le_bytes());
    let resp = send(&mut bus, &mut fake, &unshare(6)).unwrap();
    assert_eq!(
        msg::AreaResp::read_from_bytes(&resp[8..])
            .unwrap()
            .result
            .get(),
        1
    );
    let resp = send(&mut bus, &mut fake, &unshare(5)).unwrap();
    let r = msg::AreaResp::read_from_bytes(&resp[8..]).unwrap();
    assert_eq!((r.area_id.get(), r.result.get()), (5, 0));
    assert_eq!(fake.relinquished, vec![0x10]);
    assert!(bus.areas().is_empty());
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

fn init_device(bus: &mut BusInstance, fake: &mut Fake, layout: Layout, ring: u64, size: u32) {
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
    transport(
        bus,
        fake,
        layout,
        TransportRequest::SetDeviceStatus {
            status: ACKNOWLEDGE | DRIVER | FEATURES_OK,
        },
    );
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

#[test]
fn set_vqueue_outside_areas_leaves_queue_unconfigured() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    // Raw physical addresses (area 0) and addresses past the area's end are refused.
    for (desc, drv, dev) in [
        (0x8000_0000, 0x8000_1000, 0x8000_2000),
        (ring, ring + 0x1000, ring + 0x4000),
        (bus_address(2, 0), ring + 0x1000, ring + 0x2000),
    ] {
        let resp = transport(
            &mut bus,
            &mut fake,
            Layout::V1Review,
            TransportRequest::SetVqueue {
                index: 0,
                flags: 1,
                size: 64,
                desc_addr: desc,
                driver_addr: drv,
                device_addr: dev,
            },
        );
        assert_eq!(header(&resp).msg_size, 8);
        let resp = transport(
            &mut bus,
            &mut fake,
            Layout::V1Review,
            TransportRequest::GetVqueue { index: 0 },
        );
        assert_eq!(cur_size(&resp, Layout::V1Review), 0);
    }
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    let resp = transport(
        &mut bus,
        &mut fake,
        Layout::V1Review,
        TransportRequest::GetVqueue { index: 0 },
    );
    assert_eq!(cur_size(&resp, Layout::V1Review), 64);
}

#[test]
fn event_avail_ack_poll_and_notification() {
    let (mut bus, mocks) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    // Notifications with id 5.
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 40, &[1, 0, 5, 0]),
    )
    .unwrap();
    assert_eq!(
        resp,
        bus_frame_resp(msg::EVENT_CONFIGURE, 40, &0u16.to_le_bytes())
    );
    // A second EVENT_CONFIGURE is refused.
    assert_error(
        &send(
            &mut bus,
            &mut fake,
            &bus_frame(msg::EVENT_CONFIGURE, 41, &[0, 0, 0, 0]),
        )
        .unwrap(),
        msg::EVENT_CONFIGURE,
        0,
        41,
    );
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    // Two kicks: one EVENT_USED (coalesced), one notification.
    for token in [50, 51] {
        let resp = transport(
            &mut bus,
            &mut fake,
            Layout::V1Review,
            TransportRequest::EventAvail {
                vq_index: 0,
                next_offset: 0,
            },
        );
        let mut ack = bus_frame_resp(msg::EVENT_ACK, 77, &[]);
        ack[4..6].copy_from_slice(&77u16.to_le_bytes());
        assert_eq!(resp, ack, "token {token}");
    }
    assert_eq!(mocks[0].state().notifies, vec![0, 0]);
    assert_eq!(fake.notified, vec![(VM, 5)]);
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 60, &[])).unwrap();
    // EVENT_USED {vq 0} from device 0, token 0.
    assert_eq!(resp, vec![0x00, 0x42, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0]);
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 61, &[])).unwrap();
    assert_eq!(resp, bus_frame_resp(msg::EVENT_POLL, 61, &[]));
    // EVENT_POLL with a payload is malformed.
    assert_error(
        &send(&mut bus, &mut fake, &bus_frame(msg::EVENT_POLL, 62, &[0])).unwrap(),
        msg::EVENT_POLL,
        0,
        62,
    );
}

#[test]
fn event_configure_rejects_unsupported_methods() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    for (method, id) in [(2u8, 0u16), (3, 0), (9, 0), (1, 64)] {
        let p = [method, 0, id.to_le_bytes()[0], id.to_le_bytes()[1]];
        let resp = send(&mut bus, &mut fake, &bus_frame(msg::EVENT_CONFIGURE, 1, &p)).unwrap();
        assert_eq!(resp[8..], 1u16.to_le_bytes(), "method {method} id {id}");
    }
    // Reserved byte.
    assert_error(
        &send(
            &mut bus,
            &mut fake,
            &bus_frame(msg::EVENT_CONFIGURE, 2, &[0, 1, 0, 0]),
        )
        .unwrap(),
        msg::EVENT_CONFIGURE,
        0,
        2,
    );
    let resp = send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 3, &[0, 0, 0, 0]),
    )
    .unwrap();
    assert_eq!(resp[8..], 0u16.to_le_bytes());
}

#[test]
fn reset_clears_everything_and_relinquishes_every_area() {
    let (mut bus, mocks) = instance(2);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    send(
        &mut bus,
        &mut fake,
        &bus_frame(msg::EVENT_CONFIGURE, 40, &[0, 0, 0, 0]),
    )
    .unwrap();
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    fake.offer(0x30, VM, 2);
    send(
        &mut bus,
        &mut fake,
        &area_share(9, 0x30, 2, msg::attrs::LINUX_DEFAULT),
    )
    .unwrap();
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    transport(
        &mut bus,
        &mut fake,
        Layout::V1Review,
        TransportRequest::EventAvail {
            vq_index: 0,
            next_offset: 0,
        },
    );
    assert_eq!(bus.pending_events(), 1);
    let resets_before = mocks[0].state().resets;
    let resp = send(&mut bus, &mut fake, &bus_frame(msg::RESET, 70, &[])).unwrap();
    assert_eq!(resp, bus_frame_resp(msg::RESET, 70, &0u16.to_le_bytes()));
    assert!(bus.areas().is_empty());
    assert!(fake.retrieved.is_empty());
    let mut relinquished = fake.relinquished.clone();
    relinquished.sort();
    assert_eq!(relinquished, vec![0x10, 0x30]);
    assert_eq!(bus.pending_events(), 0);
    assert!(mocks[0].state().resets > resets_before);
    assert_eq!(bus.device(0).unwrap().status(), 0);
    // Negotiation is gone too.
    assert_error(
        &send(&mut bus, &mut fake, &get_devices(0, 8)).unwrap(),
        0x02,
        0,
        3,
    );
    // And the endpoint can start over.
    negotiate_g3(&mut bus, &mut fake);
    assert_eq!(
        area_result(
            &send(
                &mut bus,
                &mut fake,
                &area_share(1, 0x10, 4, msg::attrs::LINUX_DEFAULT)
            )
            .unwrap(),
            1
        ),
        0
    );
}

#[test]
fn dialect_change_resets_the_instance() {
    let (mut bus, _) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    setup_queue(&mut bus, &mut fake, Layout::V1Review);
    negotiate_g2(&mut bus, &mut fake);
    assert_eq!(bus.dialect(), Some(Dialect::G2));
    assert!(bus.areas().is_empty());
    assert!(fake.retrieved.is_empty());
}

#[test]
fn device_cannot_reach_memory_outside_areas() {
    let (mut bus, mocks) = instance(1);
    let mut fake = Fake::default();
    negotiate_g3(&mut bus, &mut fake);
    let ring = setup_queue(&mut bus, &mut fake, Layout::V1Review);
    init_device(&mut bus, &mut fake, Layout::V1Review, ring, 64);
    // The device writes past the end of the area: the write fails, nothing is touched, and
    // the device is flagged DEVICE_NEEDS_RESET by its model (mock returns the memory error).
    mocks[0].state().notify_write = Some((ring + 4 * 4096 - 2, vec![0xAA; 4]));
    transport(
        &mut bus,
        &mut fake,
        Layout::V1Review,
        TransportRequest::EventAvail {
            vq_index: 0,
            next_offset: 0,
        },
    );
    let mem = fake.memory.borrow();
    assert!(mem[&Fake::base(0x10)].iter().all(|b| *b == 0));
}

#[test]
fn frames_and_registers_round_trip() {
    let frame: Vec<u8> = (1..=104).collect();
    let regs = frame_to_regs(&frame);
    assert_eq!(regs[0], u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(regs[13], 0, "x17 stays zero");
    assert_eq!(&regs_to_frame(&regs)[..104], &frame[..]);
    assert_eq!(bus_address(0xFFFF, 0x1234), 0xFFFF_0000_0000_1234);
    let _ = HEADER_SIZE;
}
