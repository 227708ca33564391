//! Driver-client tests over a loopback channel: frames are really encoded, decoded by the
//! transport codecs and served by a [`DeviceTransport`] with a mock device.
#![allow(clippy::field_reassign_with_default)]

use alloc::{boxed::Box, vec, vec::Vec};

use super::{Channel, ChannelError, DeviceClient, DriverError, ShmRegion, VqueueInfo};
use crate::{
    device::{
        Budget, DeviceTransport, Event, QueueConfig, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1,
        mock::{MockDevice, MockState},
    },
    header::Header,
    header::TYPE_RESPONSE,
    ids,
    layout::Layout,
    mem::VecMem,
    transport::{TransportRequest, status},
};

const FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM;
const BASE: u64 = 0x4000_0000;
const DEV_NUM: u16 = 3;

fn queue(size: u16) -> QueueConfig {
    QueueConfig {
        size,
        desc_addr: BASE + 0x1000,
        driver_addr: BASE + 0x2000,
        device_addr: BASE + 0x3000,
    }
}

/// What a loopback does to a response before returning it.
type Tamper = fn(&mut [u8]);

struct Loopback {
    engine: DeviceTransport,
    mem: VecMem,
    events: Vec<Event>,
    max: usize,
    /// Every request decoded: (msg_id, token, SET_CONFIG generation if any).
    seen: Vec<(u8, u16, Option<u32>)>,
    tamper: Option<Tamper>,
    /// Bump the generation (device-side config change) after these GET_CONFIG counts.
    bump_after_get_config: Vec<usize>,
    get_configs: usize,
}

impl Loopback {
    fn new(state: MockState, layout: Layout, max: usize) -> (Self, MockDevice) {
        let dev = MockDevice::new(state);
        let lb = Self {
            engine: DeviceTransport::new(Box::new(dev.clone()), layout),
            mem: VecMem::new(BASE, 0x10000),
            events: Vec::new(),
            max,
            seen: Vec::new(),
            tamper: None,
            bump_after_get_config: Vec::new(),
            get_configs: 0,
        };
        (lb, dev)
    }
}

impl Channel for Loopback {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<usize, ChannelError> {
        assert!(request.len() <= self.max, "request above the maximum size");
        let (header, req) = TransportRequest::decode(request, self.engine.layout())
            .map_err(|_| ChannelError::Bus)?;
        assert_eq!(header.dev_num, DEV_NUM);
        assert_ne!(header.token, 0, "requests carry a non-zero token");
        assert!(!ids::is_event(header.msg_id));
        let generation = match req {
            TransportRequest::SetConfig { generation, .. } => Some(generation),
            _ => None,
        };
        self.seen.push((header.msg_id, header.token, generation));
        let out = &mut response[..self.max];
        let events = &mut self.events;
        let n = self
            .engine
            .handle_frame(
                &header,
                &req,
                &mut self.mem,
                &mut Budget::unlimited(),
                out,
                &mut |e| events.push(e),
            )
            .ok_or(ChannelError::NoResponse)?;
        assert!(n <= self.max, "response above the maximum size");
        if matches!(req, TransportRequest::GetConfig { .. }) {
            self.get_configs += 1;
            if self.bump_after_get_config.contains(&self.get_configs) {
                let _ = self.engine.config_changed();
            }
        }
        if let Some(tamper) = self.tamper {
            tamper(&mut response[..n]);
        }
        Ok(n)
    }

    fn notify(&mut self, event: &[u8]) -> Result<(), ChannelError> {
        let (header, req) =
            TransportRequest::decode(event, self.engine.layout()).map_err(|_| ChannelError::Bus)?;
        assert_eq!(header.token, 0, "events carry token 0");
        assert_eq!(header.msg_id, ids::transport::EVENT_AVAIL);
        let mut out = [0u8; 64];
        let events = &mut self.events;
        let n = self.engine.handle_frame(
            &header,
            &req,
            &mut self.mem,
            &mut Budget::unlimited(),
            &mut out,
            &mut |e| events.push(e),
        );
        assert_eq!(n, None, "EVENT_AVAIL gets no transport response");
        Ok(())
    }

    fn max_size(&self) -> usize {
        self.max
    }
}

fn client(state: MockState, layout: Layout, max: usize) -> (DeviceClient<Loopback>, MockDevice) {
    let (lb, dev) = Loopback::new(state, layout, max);
    (DeviceClient::new(lb, DEV_NUM, layout).unwrap(), dev)
}

fn both(f: impl Fn(Layout)) {
    f(Layout::V1Review);
    f(Layout::Pr28);
}

#[test]
fn full_initialization_and_queue_setup_in_both_layouts() {
    both(|layout| {
        let (mut c, dev) = client(MockState::default(), layout, 104);
        // Bit 5 is not offered; VERSION_1 and ACCESS_PLATFORM are taken even if not asked.
        let negotiated = c.initialize(1 | 1 << 5).unwrap();
        assert_eq!(negotiated, FEATURES | 1);
        assert_eq!(c.channel().engine.driver_features(), FEATURES | 1);
        c.set_vqueue(0, queue(128)).unwrap();
        assert_eq!(
            c.get_vqueue(0).unwrap(),
            VqueueInfo {
                max_size: 256,
                cur_size: 128,
                enabled: true,
                desc_addr: BASE + 0x1000,
                driver_addr: BASE + 0x2000,
                device_addr: BASE + 0x3000,
            }
        );
        let s = c.driver_ok().unwrap();
        assert_eq!(
            s,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
        );
        assert_eq!(
            dev.state().activated,
            Some((FEATURES | 1, vec![Some(queue(128)), None]))
        );
        c.notify_avail(0).unwrap();
        assert_eq!(dev.state().notifies, vec![0]);
        assert_eq!(c.channel().events, vec![Event::Used { vq: 0 }]);
        // The sequence Linux uses: info first, reset, then status read-modify-writes.
        let ids: Vec<u8> = c.channel().seen.iter().map(|s| s.0).collect();
        use ids::transport::*;
        assert_eq!(
            &ids[..6],
            &[
                GET_DEVICE_INFO,
                SET_DEVICE_STATUS,
                GET_DEVICE_STATUS,
                GET_DEVICE_STATUS,
                SET_DEVICE_STATUS,
                GET_DEVICE_STATUS
            ]
        );
    });
}

#[test]
fn tokens_are_never_zero_and_change() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    c.token = u16::MAX - 1;
    for _ in 0..3 {
        c.get_status().unwrap();
    }
    let tokens: Vec<u16> = c.channel().seen.iter().map(|s| s.1).collect();
    assert_eq!(tokens, vec![u16::MAX, 1, 2]);
}

#[test]
fn device_info_is_checked() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    let info = c.get_device_info().unwrap();
    assert_eq!(
        (info.device_id, info.config_size, info.max_virtqueues),
        (4, 16, 2)
    );
    let mut state = MockState::default();
    state.device_id = 0;
    let (mut c, _) = client(state, Layout::Pr28, 104);
    assert_eq!(c.get_device_info(), Err(DriverError::NoDevice));
}

#[test]
fn max_size_below_the_layout_minimum_refused() {
    let (lb, _) = Loopback::new(MockState::default(), Layout::V1Review, 48);
    assert_eq!(
        DeviceClient::new(lb, 0, Layout::V1Review).err(),
        Some(DriverError::MaxSizeTooSmall(48))
    );
}

#[test]
fn initialize_refuses_devices_without_version_1() {
    let mut state = MockState::default();
    state.features = VIRTIO_F_ACCESS_PLATFORM;
    let (mut c, _) = client(state, Layout::V1Review, 104);
    assert_eq!(c.initialize(0), Err(DriverError::NoVersion1));
    assert_ne!(c.get_status().unwrap() & status::FAILED, 0, "FAILED set");
}

#[test]
fn config_read_and_write_chunked_to_the_maximum_size() {
    both(|layout| {
        let mut state = MockState::default();
        state.config = (0..100).collect();
        state.writable = 40..100;
        let max = usize::from(layout.min_max_size());
        let (mut c, dev) = client(state, layout, max);
        c.get_device_info().unwrap();
        let mut buf = [0u8; 100];
        assert_eq!(c.get_config(0, &mut buf).unwrap(), 0);
        assert_eq!(buf.to_vec(), (0..100).collect::<Vec<u8>>());
        let chunk = max - 20;
        let reads = c
            .channel()
            .seen
            .iter()
            .filter(|s| s.0 == ids::transport::GET_CONFIG);
        assert_eq!(reads.count(), 100usize.div_ceil(chunk));
        let data: Vec<u8> = (0..60).map(|i| 200 - i).collect();
        c.set_config(40, &data).unwrap();
        assert_eq!(&dev.state().config[40..], &data[..]);
        assert!(
            c.generation() > 0,
            "generation tracked from SET_CONFIG responses"
        );
    });
}

#[test]
fn config_access_outside_config_size_refused_locally() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    c.get_device_info().unwrap();
    let before = c.channel().seen.len();
    let mut buf = [0u8; 4];
    assert!(matches!(
        c.get_config(14, &mut buf),
        Err(DriverError::ConfigOutOfRange { .. })
    ));
    assert!(matches!(
        c.set_config(u32::MAX, &buf),
        Err(DriverError::ConfigOutOfRange { .. })
    ));
    assert_eq!(c.channel().seen.len(), before, "nothing sent");
}

#[test]
fn config_read_restarts_when_the_generation_moves() {
    let mut state = MockState::default();
    state.config = vec![1; 64];
    let (mut c, _) = client(state, Layout::V1Review, 52);
    // 32 bytes per chunk: 2 chunks. The generation moves after the first read.
    c.channel().bump_after_get_config = vec![1];
    let mut buf = [0u8; 64];
    assert_eq!(c.get_config(0, &mut buf).unwrap(), 1);
    assert_eq!(c.channel().get_configs, 4, "one restart");
}

#[test]
fn config_read_gives_up_when_the_generation_never_settles() {
    let mut state = MockState::default();
    state.config = vec![1; 64];
    let (mut c, _) = client(state, Layout::V1Review, 52);
    c.channel().bump_after_get_config = (1..100).step_by(2).collect();
    let mut buf = [0u8; 64];
    assert_eq!(
        c.get_config(0, &mut buf),
        Err(DriverError::GenerationUnstable)
    );
    assert_eq!(
        c.channel().get_configs,
        2 * super::CONFIG_READ_ATTEMPTS as usize
    );
}

#[test]
fn set_config_generation_field_per_layout() {
    for (layout, expected) in [(Layout::Pr28, 2), (Layout::V1Review, 0)] {
        let (mut c, _) = client(MockState::default(), layout, 104);
        let _ = c.channel().engine.config_changed();
        let _ = c.channel().engine.config_changed();
        c.get_config(0, &mut []).unwrap();
        assert_eq!(c.generation(), 2);
        c.set_config(8, &[5]).unwrap();
        let sent = c.channel().seen.last().unwrap().2;
        assert_eq!(sent, Some(expected), "{layout:?}");
    }
}

#[test]
fn set_config_rejection_reported() {
    let (mut c, dev) = client(MockState::default(), Layout::V1Review, 104);
    assert_eq!(
        c.set_config(0, &[1, 2]),
        Err(DriverError::ConfigRejected { offset: 0 })
    );
    assert_eq!(dev.state().config[0], 0);
}

#[test]
fn queue_refused_by_the_device_detected_on_read_back() {
    both(|layout| {
        let (mut c, _) = client(MockState::default(), layout, 104);
        c.initialize(0).unwrap();
        let mut bad = queue(64);
        bad.driver_addr += 1;
        assert_eq!(
            c.set_vqueue(0, bad),
            Err(DriverError::QueueRejected { index: 0 })
        );
        assert_eq!(c.get_vqueue(0).unwrap().cur_size, 0);
    });
}

#[test]
fn queue_checked_against_its_maximum_before_set() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    c.initialize(0).unwrap();
    assert_eq!(
        c.set_vqueue(1, queue(128)),
        Err(DriverError::QueueInvalid { index: 1 })
    );
    assert_eq!(
        c.set_vqueue(5, queue(16)),
        Err(DriverError::QueueInvalid { index: 5 })
    );
    assert_eq!(
        c.set_vqueue(0, queue(0)),
        Err(DriverError::QueueInvalid { index: 0 })
    );
    let sets = c
        .channel()
        .seen
        .iter()
        .filter(|s| s.0 == ids::transport::SET_VQUEUE);
    assert_eq!(sets.count(), 0);
}

#[test]
fn reset_vqueue_and_late_setup_with_ring_reset() {
    let mut state = MockState::default();
    state.late_queues = true;
    let (mut c, dev) = client(state, Layout::V1Review, 104);
    c.initialize(0).unwrap();
    c.set_vqueue(0, queue(128)).unwrap();
    c.driver_ok().unwrap();
    c.reset_vqueue(0).unwrap();
    assert_eq!(dev.state().queue_resets, vec![0]);
    c.set_vqueue(0, queue(64)).unwrap();
    c.set_vqueue(1, queue(16)).unwrap();
    assert_eq!(dev.state().late_activated.len(), 2);
}

#[test]
fn device_needs_reset_reported_at_driver_ok() {
    let mut state = MockState::default();
    state.fail_activate = true;
    let (mut c, _) = client(state, Layout::Pr28, 104);
    c.initialize(0).unwrap();
    assert_eq!(c.driver_ok(), Err(DriverError::NeedsReset));
    c.reset().unwrap();
    assert_eq!(c.get_status().unwrap(), 0);
}

#[test]
fn features_read_and_written_in_chunks() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 52);
    // (52 - 16) / 4 = 9 blocks per message.
    let mut blocks = [0xFFFF_FFFFu32; 20];
    c.get_features(0, &mut blocks).unwrap();
    assert_eq!(blocks[0], 1);
    assert_eq!(blocks[1], 3);
    assert!(blocks[2..].iter().all(|&b| b == 0));
    let gets = c
        .channel()
        .seen
        .iter()
        .filter(|s| s.0 == ids::transport::GET_DEVICE_FEATURES);
    assert_eq!(gets.count(), 3);
    c.add_status(status::ACKNOWLEDGE).unwrap();
    c.add_status(status::DRIVER).unwrap();
    let mut words = [0u32; 20];
    words[1] = 1;
    c.set_features(0, &words).unwrap();
    assert_eq!(c.channel().engine.driver_features(), VIRTIO_F_VERSION_1);
}

#[test]
fn shm_regions() {
    both(|layout| {
        let mut state = MockState::default();
        state.shm = vec![(2, 0x9000_0000, 0x4000)];
        let (mut c, _) = client(state, layout, 104);
        assert_eq!(
            c.get_shm(2).unwrap(),
            Some(ShmRegion {
                address: 0x9000_0000,
                length: 0x4000
            })
        );
        assert_eq!(c.get_shm(0).unwrap(), None);
    });
}

#[test]
fn response_with_wrong_token_refused() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    c.channel().tamper = Some(|f| f[4] ^= 0x40);
    assert_eq!(c.get_status(), Err(DriverError::Mismatch("token")));
}

#[test]
fn response_with_wrong_dev_num_refused() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    c.channel().tamper = Some(|f| f[2] ^= 1);
    assert_eq!(c.get_status(), Err(DriverError::Mismatch("dev_num")));
}

#[test]
fn response_to_another_request_refused() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    // GET_DEVICE_STATUS and SET_DEVICE_STATUS responses have the same size; only the id differs.
    c.channel().tamper = Some(|f| f[1] = ids::transport::SET_DEVICE_STATUS);
    assert!(matches!(c.get_status(), Err(DriverError::Decode(_))));
}

#[test]
fn response_not_marked_as_response_refused() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    c.channel().tamper = Some(|f| f[0] &= !TYPE_RESPONSE);
    assert!(matches!(c.get_status(), Err(DriverError::Decode(_))));
}

#[test]
fn echo_mismatch_in_config_response_refused() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    // GET_CONFIG response payload: generation @8, offset @12.
    c.channel().tamper = Some(|f| f[12] ^= 1);
    let mut buf = [0u8; 2];
    assert_eq!(
        c.get_config(2, &mut buf),
        Err(DriverError::Mismatch("offset"))
    );
}

#[test]
fn discarded_request_surfaces_as_channel_error() {
    let (mut c, _) = client(MockState::default(), Layout::V1Review, 104);
    // Without GET_DEVICE_INFO the client does not know config_size; the device discards.
    let mut buf = [0u8; 4];
    assert_eq!(
        c.get_config(100, &mut buf),
        Err(DriverError::Channel(ChannelError::NoResponse))
    );
}

#[test]
fn engine_responses_echo_the_request_header() {
    both(|layout| {
        let (mut lb, _) = Loopback::new(MockState::default(), layout, 104);
        let mut frame = [0u8; 104];
        let n = TransportRequest::GetDeviceStatus
            .encode(layout, DEV_NUM, 0x1234, &mut frame)
            .unwrap();
        let mut out = [0u8; 104];
        let m = lb.exchange(&frame[..n], &mut out).unwrap();
        let h = Header::parse(&out[..m]).unwrap();
        assert_eq!(
            (
                h.msg_type,
                h.msg_id,
                h.dev_num,
                h.token,
                usize::from(h.msg_size)
            ),
            (
                TYPE_RESPONSE,
                ids::transport::GET_DEVICE_STATUS,
                DEV_NUM,
                0x1234,
                m
            )
        );
    });
}
