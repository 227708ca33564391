//! Engine tests at the typed level (no codecs involved). Each test is named after the rule it
//! checks; conformance lines (V10–V29 of `shared/spec/virtio-msg.md` §6) are given where they
//! apply.
#![allow(clippy::field_reassign_with_default)]

use alloc::{boxed::Box, vec, vec::Vec};

use super::{
    Budget, DeviceError, DeviceTransport, Event, QueueConfig, VIRTIO_F_ACCESS_PLATFORM,
    VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1,
    mock::{MockDevice, MockState},
};
use crate::{
    layout::Layout,
    mem::VecMem,
    transport::{
        DeviceEvent, DeviceInfo, FeatureBlocks, SET_VQUEUE_OP_ENABLE, TransportRequest as Req,
        TransportResponse as Resp, VQUEUE_FLAG_ENABLED, status::*,
    },
};

const FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM;
const MEM_BASE: u64 = 0x1000_0000;
const DESC: u64 = MEM_BASE + 0x1000;
const DRV: u64 = MEM_BASE + 0x2000;
const DEV: u64 = MEM_BASE + 0x3000;

/// A response with its borrowed data copied out.
#[derive(Debug, PartialEq, Eq)]
enum R {
    Features {
        block_index: u32,
        blocks: Vec<u32>,
    },
    Config {
        generation: u32,
        offset: u32,
        data: Vec<u8>,
    },
    Plain(Resp<'static>),
}

fn own(r: Resp<'_>) -> R {
    match r {
        Resp::DeviceFeatures {
            block_index,
            blocks,
        } => R::Features {
            block_index,
            blocks: blocks.iter().collect(),
        },
        Resp::Config {
            generation,
            offset,
            data,
        } => R::Config {
            generation,
            offset,
            data: data.to_vec(),
        },
        Resp::DeviceInfo(i) => R::Plain(Resp::DeviceInfo(i)),
        Resp::SetDriverFeatures => R::Plain(Resp::SetDriverFeatures),
        Resp::SetConfig {
            generation,
            offset,
            length,
        } => R::Plain(Resp::SetConfig {
            generation,
            offset,
            length,
        }),
        Resp::DeviceStatus { status } => R::Plain(Resp::DeviceStatus { status }),
        Resp::SetDeviceStatus { status } => R::Plain(Resp::SetDeviceStatus { status }),
        Resp::Vqueue {
            index,
            max_size,
            cur_size,
            flags,
            desc_addr,
            driver_addr,
            device_addr,
        } => R::Plain(Resp::Vqueue {
            index,
            max_size,
            cur_size,
            flags,
            desc_addr,
            driver_addr,
            device_addr,
        }),
        Resp::SetVqueue => R::Plain(Resp::SetVqueue),
        Resp::ResetVqueue => R::Plain(Resp::ResetVqueue),
        Resp::Shm {
            index,
            length,
            address,
        } => R::Plain(Resp::Shm {
            index,
            length,
            address,
        }),
    }
}

/// GET_VQUEUE fields: (max, cur, flags, desc, driver, device).
type Vq = (u32, u32, u32, u64, u64, u64);

struct Rig {
    t: DeviceTransport,
    dev: MockDevice,
    mem: VecMem,
    events: Vec<Event>,
}

impl Rig {
    fn new(layout: Layout) -> Self {
        Self::with(MockState::default(), layout)
    }

    fn with(state: MockState, layout: Layout) -> Self {
        let dev = MockDevice::new(state);
        Self {
            t: DeviceTransport::new(Box::new(dev.clone()), layout),
            dev,
            mem: VecMem::new(MEM_BASE, 0x10000),
            events: Vec::new(),
        }
    }

    fn call(&mut self, req: Req<'_>) -> Option<R> {
        let events = &mut self.events;
        self.t
            .handle(&req, &mut self.mem, &mut Budget::unlimited(), &mut |e| {
                events.push(e)
            })
            .map(own)
    }

    fn plain(&mut self, req: Req<'_>) -> Resp<'static> {
        match self.call(req) {
            Some(R::Plain(r)) => r,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    fn status(&mut self) -> u32 {
        match self.plain(Req::GetDeviceStatus) {
            Resp::DeviceStatus { status } => status,
            r => panic!("{r:?}"),
        }
    }

    fn set_status(&mut self, status: u32) -> u32 {
        let got = match self.plain(Req::SetDeviceStatus { status }) {
            Resp::SetDeviceStatus { status } => status,
            r => panic!("{r:?}"),
        };
        assert_eq!(got, self.status(), "GET and SET report the same status");
        got
    }

    fn write_features(&mut self, block_index: u32, words: &[u32]) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let blocks = FeatureBlocks::from_le_bytes(&bytes).unwrap();
        assert_eq!(
            self.plain(Req::SetDriverFeatures {
                block_index,
                blocks
            }),
            Resp::SetDriverFeatures
        );
    }

    fn set_features(&mut self, features: u64) {
        self.write_features(0, &split(features));
    }

    /// ACK, DRIVER, features, FEATURES_OK; returns the resulting status.
    fn negotiate(&mut self, features: u64) -> u32 {
        assert_eq!(self.set_status(ACKNOWLEDGE), ACKNOWLEDGE);
        assert_eq!(self.set_status(ACKNOWLEDGE | DRIVER), ACKNOWLEDGE | DRIVER);
        self.set_features(features);
        self.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK)
    }

    fn set_vq_flags(&mut self, index: u32, flags: u32, size: u32, addrs: [u64; 3]) {
        let r = self.plain(Req::SetVqueue {
            index,
            flags,
            size,
            desc_addr: addrs[0],
            driver_addr: addrs[1],
            device_addr: addrs[2],
        });
        assert_eq!(r, Resp::SetVqueue, "SET_VQUEUE always gets its empty reply");
    }

    fn set_vq(&mut self, index: u32, size: u32, addrs: [u64; 3]) {
        let flags = match self.t.layout() {
            Layout::V1Review => SET_VQUEUE_OP_ENABLE,
            Layout::Pr28 => 0,
        };
        self.set_vq_flags(index, flags, size, addrs);
    }

    fn get_vq(&mut self, index: u32) -> Vq {
        match self.plain(Req::GetVqueue { index }) {
            Resp::Vqueue {
                index: i,
                max_size,
                cur_size,
                flags,
                desc_addr,
                driver_addr,
                device_addr,
            } => {
                assert_eq!(i, index, "index echoed");
                (
                    max_size,
                    cur_size,
                    flags,
                    desc_addr,
                    driver_addr,
                    device_addr,
                )
            }
            r => panic!("{r:?}"),
        }
    }

    fn enabled_flag(&self) -> u32 {
        match self.t.layout() {
            Layout::V1Review => VQUEUE_FLAG_ENABLED,
            Layout::Pr28 => 0,
        }
    }

    /// Negotiates, configures queue 0 and sets DRIVER_OK.
    fn ready(&mut self) {
        assert_ne!(self.negotiate(FEATURES) & FEATURES_OK, 0);
        self.set_vq(0, 128, [DESC, DRV, DEV]);
        let s = self.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assert_eq!(s, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assert!(self.t.is_active());
    }

    fn avail(&mut self, vq_index: u32) {
        assert_eq!(
            self.call(Req::EventAvail {
                vq_index,
                next_offset: 0
            }),
            None,
            "EVENT_AVAIL gets no transport response"
        );
    }

    fn config(&mut self, offset: u32, length: u32) -> Option<(u32, Vec<u8>)> {
        match self.call(Req::GetConfig { offset, length })? {
            R::Config {
                generation,
                offset: o,
                data,
            } => {
                assert_eq!(o, offset);
                assert_eq!(data.len(), length as usize);
                Some((generation, data))
            }
            r => panic!("{r:?}"),
        }
    }

    /// SET_CONFIG; returns (generation, length).
    fn write_config(&mut self, generation: u32, offset: u32, data: &[u8]) -> (u32, u32) {
        match self.plain(Req::SetConfig {
            generation,
            offset,
            data,
        }) {
            Resp::SetConfig {
                generation,
                offset: o,
                length,
            } => {
                assert_eq!(o, offset);
                (generation, length)
            }
            r => panic!("{r:?}"),
        }
    }
}

/// Feature blocks 0 and 1 of `features`.
fn split(features: u64) -> [u32; 2] {
    let b = features.to_le_bytes();
    [
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    ]
}

fn both(f: impl Fn(Layout)) {
    f(Layout::V1Review);
    f(Layout::Pr28);
}

// ---- V10 GET_DEVICE_INFO ----------------------------------------------------------------------

#[test]
fn v10_device_info_answered_in_reset_state_and_consistent() {
    let mut rig = Rig::new(Layout::V1Review);
    let expected = DeviceInfo {
        device_id: 4,
        vendor_id: 0x1AF4,
        device_uuid: [0x11; 16],
        num_feature_bits: 64,
        config_size: 16,
        max_virtqueues: 2,
        admin_vq_start: 0,
        admin_vq_count: 0,
    };
    assert_eq!(rig.plain(Req::GetDeviceInfo), Resp::DeviceInfo(expected));
    assert_eq!(expected.num_feature_bits % 32, 0);
    // Same answer in any later state.
    rig.ready();
    assert_eq!(rig.plain(Req::GetDeviceInfo), Resp::DeviceInfo(expected));
}

// ---- V11 GET_DEVICE_FEATURES ------------------------------------------------------------------

#[test]
fn v11_get_features_returns_device_blocks_and_zero_beyond_64_bits() {
    let mut rig = Rig::new(Layout::V1Review);
    let f = rig.dev.state().features;
    assert_eq!(
        rig.call(Req::GetDeviceFeatures {
            block_index: 0,
            num_blocks: 4
        }),
        Some(R::Features {
            block_index: 0,
            blocks: vec![split(f)[0], split(f)[1], 0, 0]
        })
    );
    assert_eq!(
        rig.call(Req::GetDeviceFeatures {
            block_index: 1,
            num_blocks: 2
        }),
        Some(R::Features {
            block_index: 1,
            blocks: vec![split(f)[1], 0]
        })
    );
    // Block indices near u32::MAX do not overflow.
    assert_eq!(
        rig.call(Req::GetDeviceFeatures {
            block_index: u32::MAX,
            num_blocks: 2
        }),
        Some(R::Features {
            block_index: u32::MAX,
            blocks: vec![0, 0]
        })
    );
    assert_eq!(
        rig.call(Req::GetDeviceFeatures {
            block_index: 0,
            num_blocks: 0
        }),
        Some(R::Features {
            block_index: 0,
            blocks: vec![]
        })
    );
}

#[test]
fn v29_get_features_count_capped_to_the_message_size() {
    let mut rig = Rig::new(Layout::V1Review);
    // Default 264: (264 - 16) / 4 = 62 blocks, whatever is asked.
    match rig.call(Req::GetDeviceFeatures {
        block_index: 0,
        num_blocks: u32::MAX,
    }) {
        Some(R::Features { blocks, .. }) => assert_eq!(blocks.len(), 62),
        r => panic!("{r:?}"),
    }
    rig.t.set_max_size(24);
    match rig.call(Req::GetDeviceFeatures {
        block_index: 0,
        num_blocks: 2,
    }) {
        Some(R::Features { blocks, .. }) => assert_eq!(blocks.len(), 2),
        r => panic!("{r:?}"),
    }
    rig.t.set_max_size(23);
    match rig.call(Req::GetDeviceFeatures {
        block_index: 0,
        num_blocks: 2,
    }) {
        Some(R::Features { blocks, .. }) => assert_eq!(blocks.len(), 1),
        r => panic!("{r:?}"),
    }
}

// ---- V12 SET_DRIVER_FEATURES / FEATURES_OK ----------------------------------------------------

#[test]
fn v12_driver_features_stored_and_subset_accepted() {
    both(|layout| {
        let mut rig = Rig::new(layout);
        let s = rig.negotiate(FEATURES | 1);
        assert_eq!(s, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(rig.t.driver_features(), FEATURES | 1);
    });
}

#[test]
fn v12_features_ok_refused_for_unoffered_bits() {
    let mut rig = Rig::new(Layout::V1Review);
    let s = rig.negotiate(FEATURES | 1 << 5);
    assert_eq!(
        s,
        ACKNOWLEDGE | DRIVER,
        "FEATURES_OK cleared in the response"
    );
    assert_eq!(rig.status(), ACKNOWLEDGE | DRIVER);
}

#[test]
fn v12_features_ok_refused_without_version_1() {
    let mut rig = Rig::new(Layout::V1Review);
    let s = rig.negotiate(VIRTIO_F_ACCESS_PLATFORM);
    assert_eq!(s & FEATURES_OK, 0);
}

#[test]
fn v12_features_ok_refused_for_nonzero_blocks_beyond_64_bits() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.set_status(ACKNOWLEDGE);
    rig.set_status(ACKNOWLEDGE | DRIVER);
    rig.write_features(0, &[0, 1, 0x10]);
    assert_eq!(rig.t.driver_features(), VIRTIO_F_VERSION_1);
    assert_eq!(
        rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK) & FEATURES_OK,
        0
    );
}

#[test]
fn v12_zero_blocks_beyond_64_bits_are_ignored() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.set_status(ACKNOWLEDGE);
    rig.set_status(ACKNOWLEDGE | DRIVER);
    rig.write_features(0, &[0, 1, 0, 0]);
    rig.write_features(7, &[0]);
    assert_ne!(
        rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK) & FEATURES_OK,
        0
    );
}

#[test]
fn v12_partial_feature_write_updates_only_its_blocks() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.set_status(ACKNOWLEDGE);
    rig.set_status(ACKNOWLEDGE | DRIVER);
    rig.set_features(FEATURES | 1);
    rig.write_features(1, &[1]);
    assert_eq!(rig.t.driver_features(), VIRTIO_F_VERSION_1 | 1);
    rig.write_features(0, &[0]);
    assert_eq!(rig.t.driver_features(), VIRTIO_F_VERSION_1);
}

#[test]
fn set_driver_features_ignored_before_driver_and_after_features_ok() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.set_features(FEATURES);
    assert_eq!(rig.t.driver_features(), 0, "status 0: ignored");
    rig.set_status(ACKNOWLEDGE);
    rig.set_features(FEATURES);
    assert_eq!(rig.t.driver_features(), 0, "ACKNOWLEDGE only: ignored");
    assert_ne!(rig.negotiate_from_ack(FEATURES) & FEATURES_OK, 0);
    rig.set_features(FEATURES | 1);
    assert_eq!(
        rig.t.driver_features(),
        FEATURES,
        "after FEATURES_OK: ignored"
    );
}

impl Rig {
    fn negotiate_from_ack(&mut self, features: u64) -> u32 {
        self.set_status(ACKNOWLEDGE | DRIVER);
        self.set_features(features);
        self.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK)
    }
}

// ---- V13 / V16 / V17 configuration ------------------------------------------------------------

#[test]
fn v16_get_config_returns_bytes_and_current_generation() {
    let mut rig = Rig::new(Layout::V1Review);
    assert_eq!(rig.config(0, 16), Some((0, (0..16).collect())));
    assert_eq!(rig.config(5, 3), Some((0, vec![5, 6, 7])));
    assert_eq!(rig.config(16, 0), Some((0, vec![])), "length 0 at the end");
    let _ = rig.t.config_changed();
    assert_eq!(
        rig.config(0, 0),
        Some((1, vec![])),
        "length 0 reads the generation"
    );
}

#[test]
fn get_config_out_of_range_is_discarded() {
    let mut rig = Rig::new(Layout::V1Review);
    assert_eq!(
        rig.call(Req::GetConfig {
            offset: 15,
            length: 2
        }),
        None
    );
    assert_eq!(
        rig.call(Req::GetConfig {
            offset: 17,
            length: 0
        }),
        None
    );
    assert_eq!(
        rig.call(Req::GetConfig {
            offset: u32::MAX,
            length: 2
        }),
        None,
        "offset + length overflow"
    );
}

#[test]
fn v29_get_config_longer_than_the_message_size_is_discarded() {
    let mut state = MockState::default();
    state.config = vec![7; 300];
    let mut rig = Rig::with(state, Layout::V1Review);
    // 264 - 20 = 244 data bytes fit, 245 do not.
    assert_eq!(rig.config(0, 244).map(|(_, d)| d.len()), Some(244));
    assert_eq!(
        rig.call(Req::GetConfig {
            offset: 0,
            length: 245
        }),
        None
    );
    rig.t.set_max_size(48);
    assert!(rig.config(0, 28).is_some());
    assert_eq!(
        rig.call(Req::GetConfig {
            offset: 0,
            length: 29
        }),
        None
    );
}

#[test]
fn v13_generation_bumped_before_device_config_change() {
    let mut rig = Rig::new(Layout::V1Review);
    let (g0, _) = rig.config(0, 4).unwrap();
    rig.dev.state().config[0] = 0xAA;
    assert_eq!(rig.t.config_changed(), Event::Config);
    let (g1, data) = rig.config(0, 4).unwrap();
    assert_eq!(g1, g0 + 1);
    assert_eq!(data[0], 0xAA);
    assert_eq!(
        rig.t.config_event(),
        DeviceEvent::Config {
            device_status: 0,
            generation: g1,
            offset: 0,
            data: &[]
        }
    );
}

#[test]
fn v13_set_config_change_bumps_generation_and_same_bytes_do_not() {
    both(|layout| {
        let mut rig = Rig::new(layout);
        assert_eq!(rig.write_config(0, 8, &[1, 2]), (1, 2));
        assert_eq!(rig.config(8, 2), Some((1, vec![1, 2])));
        assert_eq!(rig.write_config(1, 8, &[1, 2]), (1, 2), "no visible change");
        assert!(rig.events.is_empty(), "driver-caused: no EVENT_CONFIG");
    });
}

#[test]
fn v17_set_config_generation_field_not_checked() {
    // Drivers disagree with the Dec-2025 text: G2 sends its tracked generation and ignores the
    // reply, G3 sends 0 (2026 baseline). A stale value is therefore applied.
    let mut rig = Rig::new(Layout::Pr28);
    let _ = rig.t.config_changed();
    let _ = rig.t.config_changed();
    assert_eq!(rig.write_config(0, 8, &[9]), (3, 1));
    assert_eq!(rig.dev.state().config[8], 9);
}

#[test]
fn set_config_out_of_range_rejected_with_state_unchanged() {
    let mut rig = Rig::new(Layout::V1Review);
    assert_eq!(rig.write_config(0, 15, &[1, 2]), (0, 0));
    assert_eq!(rig.write_config(0, u32::MAX, &[1]), (0, 0));
    assert!(rig.dev.state().config_writes.is_empty());
    assert_eq!(rig.dev.state().config, (0..16).collect::<Vec<u8>>());
}

#[test]
fn set_config_refused_by_device_rejected_all_or_nothing() {
    let mut rig = Rig::new(Layout::V1Review);
    // Bytes 7..9 straddle the read-only part: nothing applied.
    assert_eq!(rig.write_config(0, 7, &[1, 2]), (0, 0));
    assert_eq!(rig.dev.state().config, (0..16).collect::<Vec<u8>>());
    assert_eq!(rig.t.generation(), 0);
}

#[test]
fn set_config_of_zero_bytes_applies_nothing() {
    let mut rig = Rig::new(Layout::V1Review);
    assert_eq!(rig.write_config(0, 8, &[]), (0, 0));
    assert!(rig.dev.state().config_writes.is_empty());
}

// ---- V18 / V19 virtqueue setup ----------------------------------------------------------------

#[test]
fn v18_get_vqueue_reports_max_and_zero_when_unconfigured() {
    both(|layout| {
        let mut rig = Rig::new(layout);
        assert_eq!(rig.get_vq(0), (256, 0, 0, 0, 0, 0));
        assert_eq!(rig.get_vq(1), (64, 0, 0, 0, 0, 0));
    });
}

#[test]
fn get_vqueue_of_missing_queue_is_all_zero_but_index() {
    let mut state = MockState::default();
    state.queue_max = vec![256, 0];
    let mut rig = Rig::with(state, Layout::V1Review);
    assert_eq!(
        rig.get_vq(1),
        (0, 0, 0, 0, 0, 0),
        "max 0: queue does not exist"
    );
    assert_eq!(rig.get_vq(2), (0, 0, 0, 0, 0, 0));
    assert_eq!(rig.get_vq(u32::MAX), (0, 0, 0, 0, 0, 0));
}

#[test]
fn v19_set_vqueue_persisted_and_read_back() {
    both(|layout| {
        let mut rig = Rig::new(layout);
        rig.negotiate(FEATURES);
        rig.set_vq(1, 32, [DESC, DRV, DEV]);
        let enabled = rig.enabled_flag();
        assert_eq!(rig.get_vq(1), (64, 32, enabled, DESC, DRV, DEV));
        assert_eq!(
            rig.t.queue(1),
            Some(QueueConfig {
                size: 32,
                desc_addr: DESC,
                driver_addr: DRV,
                device_addr: DEV
            })
        );
        // Before DRIVER_OK a queue may be set again.
        rig.set_vq(1, 64, [DESC + 16, DRV + 2, DEV + 4]);
        assert_eq!(
            rig.get_vq(1),
            (64, 64, enabled, DESC + 16, DRV + 2, DEV + 4)
        );
    });
}

/// Each refused SET_VQUEUE leaves the queue unconfigured, even if it was configured before.
#[test]
fn set_vqueue_rejections_leave_the_queue_unconfigured() {
    let bad: &[(&str, u32, u32, [u64; 3])] = &[
        ("size 0", 0, 0, [DESC, DRV, DEV]),
        ("size above max", 0, 512, [DESC, DRV, DEV]),
        ("size above u16", 0, 0x1_0000, [DESC, DRV, DEV]),
        ("size not a power of two", 0, 100, [DESC, DRV, DEV]),
        ("desc zero", 0, 64, [0, DRV, DEV]),
        ("driver zero", 0, 64, [DESC, 0, DEV]),
        ("device zero", 0, 64, [DESC, DRV, 0]),
        ("desc misaligned", 0, 64, [DESC + 8, DRV, DEV]),
        ("driver misaligned", 0, 64, [DESC, DRV + 1, DEV]),
        ("device misaligned", 0, 64, [DESC, DRV, DEV + 2]),
        ("desc wraps", 0, 64, [u64::MAX - 15, DRV, DEV]),
        ("device wraps", 0, 64, [DESC, DRV, u64::MAX - 3]),
    ];
    both(|layout| {
        for &(why, _, size, addrs) in bad {
            let mut rig = Rig::new(layout);
            rig.negotiate(FEATURES);
            rig.set_vq(0, 128, [DESC, DRV, DEV]);
            rig.set_vq(0, size, addrs);
            assert_eq!(rig.get_vq(0), (256, 0, 0, 0, 0, 0), "{layout:?}: {why}");
            assert_eq!(rig.t.queue(0), None, "{why}");
        }
    });
}

#[test]
fn set_vqueue_flags_must_match_the_layout() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.negotiate(FEATURES);
    rig.set_vq_flags(0, 0, 64, [DESC, DRV, DEV]);
    assert_eq!(rig.get_vq(0).1, 0, "2026: flags must be ENABLE");
    rig.set_vq_flags(0, 3, 64, [DESC, DRV, DEV]);
    assert_eq!(rig.get_vq(0).1, 0, "2026: unknown flag bits");
    let mut rig = Rig::new(Layout::Pr28);
    rig.negotiate(FEATURES);
    rig.set_vq_flags(0, 1, 64, [DESC, DRV, DEV]);
    assert_eq!(rig.get_vq(0).1, 0, "Dec-2025: reserved word must be 0");
}

#[test]
fn set_vqueue_before_features_ok_refused() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.set_status(ACKNOWLEDGE);
    rig.set_status(ACKNOWLEDGE | DRIVER);
    rig.set_vq(0, 64, [DESC, DRV, DEV]);
    assert_eq!(rig.get_vq(0).1, 0);
}

#[test]
fn set_vqueue_for_missing_queue_answered_without_effect() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.negotiate(FEATURES);
    rig.set_vq(2, 64, [DESC, DRV, DEV]);
    rig.set_vq(u32::MAX, 64, [DESC, DRV, DEV]);
    assert_eq!(rig.get_vq(2), (0, 0, 0, 0, 0, 0));
}

#[test]
fn packed_ring_allows_any_size_up_to_max() {
    let mut state = MockState::default();
    state.features |= VIRTIO_F_RING_PACKED;
    let mut rig = Rig::with(state, Layout::V1Review);
    rig.negotiate(FEATURES | VIRTIO_F_RING_PACKED);
    rig.set_vq(0, 100, [DESC, DRV + 4, DEV]);
    assert_eq!(rig.get_vq(0).1, 100);
    rig.set_vq(1, 10, [DESC, DRV + 2, DEV]);
    assert_eq!(
        rig.get_vq(1).1,
        0,
        "packed driver area needs 4-byte alignment"
    );
}

#[test]
fn set_vqueue_on_live_queue_ignored() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.ready();
    rig.set_vq(0, 64, [DESC + 16, DRV, DEV]);
    assert_eq!(
        rig.get_vq(0),
        (256, 128, VQUEUE_FLAG_ENABLED, DESC, DRV, DEV)
    );
    rig.avail(0);
    assert_eq!(rig.dev.state().notifies, vec![0], "still live");
}

// ---- V20 / V21 RESET_VQUEUE and late queues ---------------------------------------------------

#[test]
fn v20_reset_vqueue_clears_and_allows_reconfiguration() {
    let mut state = MockState::default();
    state.late_queues = true;
    let mut rig = Rig::with(state, Layout::V1Review);
    rig.ready();
    assert_eq!(rig.plain(Req::ResetVqueue { index: 0 }), Resp::ResetVqueue);
    assert_eq!(rig.dev.state().queue_resets, vec![0]);
    assert_eq!(rig.get_vq(0), (256, 0, 0, 0, 0, 0));
    rig.avail(0);
    assert!(
        rig.dev.state().notifies.is_empty(),
        "reset queue is not served"
    );
    rig.set_vq(0, 64, [DESC, DRV, DEV]);
    assert_eq!(
        rig.get_vq(0),
        (256, 64, VQUEUE_FLAG_ENABLED, DESC, DRV, DEV)
    );
    let cfg = QueueConfig {
        size: 64,
        desc_addr: DESC,
        driver_addr: DRV,
        device_addr: DEV,
    };
    assert_eq!(rig.dev.state().late_activated, vec![(0, cfg)]);
    rig.avail(0);
    assert_eq!(rig.dev.state().notifies, vec![0]);
}

#[test]
fn reset_vqueue_before_driver_ok_and_out_of_range() {
    let mut rig = Rig::new(Layout::Pr28);
    rig.negotiate(FEATURES);
    rig.set_vq(0, 64, [DESC, DRV, DEV]);
    assert_eq!(rig.plain(Req::ResetVqueue { index: 0 }), Resp::ResetVqueue);
    assert_eq!(rig.get_vq(0).1, 0);
    assert!(
        rig.dev.state().queue_resets.is_empty(),
        "device not active: nothing to drop"
    );
    assert_eq!(rig.plain(Req::ResetVqueue { index: 9 }), Resp::ResetVqueue);
}

#[test]
fn v21_set_vqueue_after_driver_ok_for_unused_queue() {
    let mut state = MockState::default();
    state.late_queues = true;
    let mut rig = Rig::with(state, Layout::V1Review);
    rig.ready();
    rig.set_vq(1, 16, [DESC + 0x800, DRV + 0x100, DEV + 0x100]);
    assert_eq!(rig.get_vq(1).1, 16);
    rig.avail(1);
    assert_eq!(rig.dev.state().notifies, vec![1]);
    assert_eq!(rig.events, vec![Event::Used { vq: 1 }]);
}

#[test]
fn late_queue_refused_by_device_stays_unconfigured() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.ready();
    rig.set_vq(1, 16, [DESC, DRV, DEV]);
    assert_eq!(rig.get_vq(1), (64, 0, 0, 0, 0, 0));
    assert_eq!(
        rig.status() & DEVICE_NEEDS_RESET,
        0,
        "a refusal is not a failure"
    );
}

// ---- V22 / V23 status ---------------------------------------------------------------------------

#[test]
fn v22_status_zero_resets_everything_but_the_generation() {
    both(|layout| {
        let mut rig = Rig::new(layout);
        rig.ready();
        let _ = rig.t.config_changed();
        assert_eq!(rig.set_status(0), 0);
        assert_eq!(rig.dev.state().resets, 1);
        assert_eq!(rig.t.driver_features(), 0);
        assert_eq!(rig.get_vq(0), (256, 0, 0, 0, 0, 0));
        assert!(!rig.t.is_active());
        assert_eq!(rig.t.generation(), 1, "generation survives reset");
        rig.avail(0);
        assert!(
            rig.dev.state().notifies.is_empty(),
            "pending work discarded"
        );
        // The device can be brought up again.
        rig.ready();
        assert_eq!(rig.dev.state().activations, 2);
    });
}

#[test]
fn v23_status_only_grows_in_order() {
    let mut rig = Rig::new(Layout::V1Review);
    assert_eq!(rig.set_status(DRIVER), 0, "DRIVER before ACKNOWLEDGE");
    assert_eq!(
        rig.set_status(ACKNOWLEDGE | DRIVER),
        ACKNOWLEDGE | DRIVER,
        "both at once, in order"
    );
    assert_eq!(
        rig.set_status(ACKNOWLEDGE),
        ACKNOWLEDGE | DRIVER,
        "clearing is ignored"
    );
    assert_eq!(
        rig.set_status(ACKNOWLEDGE | DRIVER | DRIVER_OK),
        ACKNOWLEDGE | DRIVER,
        "DRIVER_OK before FEATURES_OK"
    );
    assert_eq!(rig.dev.state().activations, 0);
    assert_eq!(
        rig.set_status(ACKNOWLEDGE | DRIVER | 0x10),
        ACKNOWLEDGE | DRIVER,
        "unknown bit"
    );
    assert_eq!(
        rig.set_status(ACKNOWLEDGE | DRIVER | DEVICE_NEEDS_RESET),
        ACKNOWLEDGE | DRIVER,
        "the driver cannot set DEVICE_NEEDS_RESET"
    );
    rig.set_features(FEATURES);
    // FEATURES_OK and DRIVER_OK together: taken in order.
    let all = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;
    assert_eq!(rig.set_status(all), all);
    assert_eq!(rig.dev.state().activations, 1);
    assert_eq!(
        rig.set_status(all),
        all,
        "rewriting the same status changes nothing"
    );
    assert_eq!(rig.dev.state().activations, 1);
}

#[test]
fn v23_refused_features_ok_stops_driver_ok_in_the_same_write() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.set_status(ACKNOWLEDGE | DRIVER);
    rig.set_features(FEATURES | 1 << 20);
    let s = rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    assert_eq!(s, ACKNOWLEDGE | DRIVER);
    assert_eq!(rig.dev.state().activations, 0);
}

#[test]
fn failed_bit_accepted_any_time() {
    let mut rig = Rig::new(Layout::V1Review);
    assert_eq!(rig.set_status(FAILED), FAILED);
    let mut rig = Rig::new(Layout::V1Review);
    rig.negotiate(FEATURES);
    assert_eq!(
        rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | FAILED),
        ACKNOWLEDGE | DRIVER | FEATURES_OK | FAILED
    );
    assert_eq!(rig.set_status(0), 0);
}

// ---- V24 / V27 queue processing ---------------------------------------------------------------

#[test]
fn v24_no_queue_processing_before_driver_ok() {
    both(|layout| {
        let mut rig = Rig::new(layout);
        rig.avail(0);
        rig.negotiate(FEATURES);
        rig.set_vq(0, 128, [DESC, DRV, DEV]);
        rig.avail(0);
        assert!(rig.dev.state().notifies.is_empty());
        assert!(rig.events.is_empty());
        rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        let activated = rig.dev.state().activated.clone();
        let cfg = QueueConfig {
            size: 128,
            desc_addr: DESC,
            driver_addr: DRV,
            device_addr: DEV,
        };
        assert_eq!(activated, Some((FEATURES, vec![Some(cfg), None])));
        rig.avail(0);
        assert_eq!(rig.dev.state().notifies, vec![0]);
    });
}

#[test]
fn v24_unconfigured_queue_not_served_after_driver_ok() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.ready();
    rig.avail(1);
    rig.avail(7);
    rig.avail(u32::MAX);
    assert!(rig.dev.state().notifies.is_empty());
    assert!(rig.events.is_empty());
}

#[test]
fn v27_used_event_only_when_buffers_returned() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.ready();
    rig.avail(0);
    assert_eq!(rig.events, vec![Event::Used { vq: 0 }]);
    rig.dev.state().notify_result = Ok(false);
    rig.avail(0);
    assert_eq!(rig.events, vec![Event::Used { vq: 0 }]);
}

#[test]
fn used_buffers_on_another_queue_get_their_event() {
    let mut rig = Rig::new(Layout::V1Review);
    assert_ne!(rig.negotiate(FEATURES) & FEATURES_OK, 0);
    rig.set_vq(0, 128, [DESC, DRV, DEV]);
    rig.set_vq(1, 16, [DESC + 0x800, DRV + 0x100, DEV + 0x100]);
    rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    assert!(rig.t.is_active());
    // A notify of queue 0 that also returned buffers on queue 1 (and, stray, on queues the
    // device does not have): EVENT_USED for 1 first, then for 0; nothing for the others.
    rig.dev.state().used_elsewhere = 0b11 | 1 << 5 | 1 << 63;
    rig.avail(0);
    assert_eq!(
        rig.events,
        vec![Event::Used { vq: 1 }, Event::Used { vq: 0 }]
    );
    assert_eq!(rig.dev.state().used_elsewhere, 0, "taken by the engine");
    // Nothing returned anywhere: no event.
    rig.events.clear();
    rig.dev.state().notify_result = Ok(false);
    rig.avail(0);
    assert!(rig.events.is_empty());
    // Queue 1 not set up: its bit is not passed on.
    let mut rig = Rig::new(Layout::V1Review);
    rig.ready();
    rig.dev.state().used_elsewhere = 0b10;
    rig.avail(0);
    assert_eq!(rig.events, vec![Event::Used { vq: 0 }]);
}

#[test]
fn notify_reaches_shared_memory() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.dev.state().notify_write = Some((DEV, vec![1, 2, 3, 4]));
    rig.ready();
    rig.avail(0);
    let at = usize::try_from(DEV - MEM_BASE).unwrap();
    assert_eq!(&rig.mem.bytes[at..at + 4], &[1, 2, 3, 4]);
}

#[test]
fn kick_serves_like_event_avail() {
    let mut rig = Rig::new(Layout::V1Review);
    let mut events = Vec::new();
    rig.t
        .kick(0, &mut rig.mem, &mut Budget::unlimited(), &mut |e| {
            events.push(e)
        });
    assert!(events.is_empty(), "not active yet");
    rig.ready();
    rig.t
        .kick(0, &mut rig.mem, &mut Budget::unlimited(), &mut |e| {
            events.push(e)
        });
    assert_eq!(events, vec![Event::Used { vq: 0 }]);
}

#[test]
fn a_kick_that_runs_out_of_budget_leaves_its_queue_pending_until_resumed() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.dev.state().notify_cost = 100;
    rig.ready();
    let mut events = Vec::new();
    // Enough for the notification: nothing pending afterwards.
    let mut budget = Budget::bytes(1000);
    rig.t
        .kick(0, &mut rig.mem, &mut budget, &mut |e| events.push(e));
    assert_eq!(budget.left(), 900);
    assert!(!rig.t.has_pending_work());
    // The notification spends the rest: the device may have stopped early.
    let mut budget = Budget::bytes(100);
    rig.t
        .kick(0, &mut rig.mem, &mut budget, &mut |e| events.push(e));
    assert!(budget.is_spent());
    assert!(rig.t.has_pending_work());
    assert_eq!(rig.dev.state().notifies, vec![0, 0]);
    // A kick with nothing left does not reach the device and leaves the queue pending.
    rig.t
        .kick(0, &mut rig.mem, &mut budget, &mut |e| events.push(e));
    assert_eq!(rig.dev.state().notifies.len(), 2);
    // A spent budget resumes nothing; a new one resumes the queue, which then is done.
    rig.t
        .resume(&mut rig.mem, &mut budget, &mut |e| events.push(e));
    assert_eq!(rig.dev.state().notifies.len(), 2);
    let mut budget = Budget::bytes(1000);
    rig.t
        .resume(&mut rig.mem, &mut budget, &mut |e| events.push(e));
    assert_eq!(rig.dev.state().notifies, vec![0, 0, 0]);
    assert!(!rig.t.has_pending_work());
    assert_eq!(events, vec![Event::Used { vq: 0 }; 3]);
    // Nothing pending: resume does not call the device.
    rig.t
        .resume(&mut rig.mem, &mut budget, &mut |e| events.push(e));
    assert_eq!(rig.dev.state().notifies.len(), 3);
}

#[test]
fn pending_work_is_forgotten_by_a_reset() {
    for reset_queue in [false, true] {
        let mut rig = Rig::new(Layout::V1Review);
        rig.dev.state().notify_cost = 100;
        rig.ready();
        let mut budget = Budget::bytes(1);
        rig.t.kick(0, &mut rig.mem, &mut budget, &mut |_| {});
        assert!(rig.t.has_pending_work());
        if reset_queue {
            rig.plain(Req::ResetVqueue { index: 0 });
        } else {
            rig.set_status(0);
        }
        assert!(!rig.t.has_pending_work(), "reset_queue {reset_queue}");
        rig.t
            .resume(&mut rig.mem, &mut Budget::unlimited(), &mut |_| {});
        assert_eq!(
            rig.dev.state().notifies.len(),
            1,
            "reset_queue {reset_queue}"
        );
    }
}

// ---- V25 GET_SHM --------------------------------------------------------------------------------

#[test]
fn v25_get_shm_reports_regions_and_zero_for_missing() {
    let mut state = MockState::default();
    state.shm = vec![(0, 0x8000_0000, 0x1000), (1, 0x1_0000_0000, 0x2000)];
    let mut rig = Rig::with(state.clone(), Layout::V1Review);
    let shm = |index, length, address| Resp::Shm {
        index,
        length,
        address,
    };
    assert_eq!(
        rig.plain(Req::GetShm { index: 0 }),
        shm(0, 0x1000, 0x8000_0000)
    );
    assert_eq!(
        rig.plain(Req::GetShm { index: 1 }),
        shm(1, 0x2000, 0x1_0000_0000)
    );
    assert_eq!(rig.plain(Req::GetShm { index: 2 }), shm(2, 0, 0));
    let mut rig = Rig::with(state, Layout::Pr28);
    assert_eq!(
        rig.plain(Req::GetShm { index: 0 }),
        shm(0, 0x1000, 0x8000_0000)
    );
    assert_eq!(
        rig.plain(Req::GetShm { index: 1 }),
        shm(1, 0, 0),
        "not representable in 32 bits: reported absent"
    );
}

// ---- V26 / V28 device errors ------------------------------------------------------------------

#[test]
fn v28_activation_failure_sets_needs_reset_and_raises_config_event() {
    let mut state = MockState::default();
    state.fail_activate = true;
    let mut rig = Rig::with(state, Layout::V1Review);
    rig.negotiate(FEATURES);
    rig.set_vq(0, 128, [DESC, DRV, DEV]);
    let s = rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    assert_ne!(s & DEVICE_NEEDS_RESET, 0);
    assert_eq!(rig.events, vec![Event::Config]);
    assert!(!rig.t.is_active());
    rig.avail(0);
    assert!(rig.dev.state().notifies.is_empty());
    match rig.t.config_event() {
        DeviceEvent::Config { device_status, .. } => assert_eq!(device_status, s),
        e => panic!("{e:?}"),
    }
}

#[test]
fn v28_notify_error_sets_needs_reset_once_and_stops_processing() {
    both(|layout| {
        let mut rig = Rig::new(layout);
        rig.ready();
        rig.dev.state().notify_result = Err(DeviceError::Queue);
        rig.avail(0);
        assert_ne!(rig.status() & DEVICE_NEEDS_RESET, 0);
        assert_eq!(rig.events, vec![Event::Config]);
        rig.avail(0);
        assert_eq!(rig.dev.state().notifies, vec![0], "processing stopped");
        assert_eq!(rig.events, vec![Event::Config], "signalled once");
        // Only FAILED or a reset is taken now.
        let s = rig.status();
        assert_eq!(rig.set_status(s | FAILED), s | FAILED);
        assert_eq!(rig.set_status(0), 0);
        rig.ready();
        rig.dev.state().notify_result = Ok(true);
        rig.avail(0);
        assert_eq!(rig.events.last(), Some(&Event::Used { vq: 0 }));
    });
}

#[test]
fn v28_memory_fault_in_notify_sets_needs_reset() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.dev.state().notify_write = Some((0x10, vec![0]));
    rig.ready();
    rig.avail(0);
    assert_ne!(rig.status() & DEVICE_NEEDS_RESET, 0);
    assert_eq!(rig.events, vec![Event::Config]);
}

#[test]
fn needs_reset_blocks_queue_setup() {
    let mut rig = Rig::new(Layout::V1Review);
    rig.ready();
    rig.dev.state().notify_result = Err(DeviceError::Backend);
    rig.avail(0);
    assert_eq!(rig.plain(Req::ResetVqueue { index: 0 }), Resp::ResetVqueue);
    rig.set_vq(0, 64, [DESC, DRV, DEV]);
    assert_eq!(rig.get_vq(0).1, 0);
}

#[test]
fn a_refused_driver_fails_features_ok_or_driver_ok_until_reset() {
    both(|layout| {
        // Refused before FEATURES_OK: FEATURES_OK is not taken (the driver's probe fails when
        // it re-reads the status); the refusal is news only once.
        let mut rig = Rig::new(layout);
        rig.set_status(ACKNOWLEDGE);
        rig.set_status(ACKNOWLEDGE | DRIVER);
        rig.set_features(FEATURES);
        let events = &mut rig.events;
        assert!(rig.t.refuse_driver("test", &mut |e| events.push(e)));
        assert!(!rig.t.refuse_driver("test", &mut |e| events.push(e)));
        assert_eq!(rig.t.refusal(), Some("test"));
        let s = rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assert_eq!(s, ACKNOWLEDGE | DRIVER, "{layout:?}");
        assert!(rig.events.is_empty());
        // A reset forgets the refusal.
        rig.set_status(0);
        assert_eq!(rig.t.refusal(), None);
        rig.ready();

        // Refused after FEATURES_OK with a queue refused: the queue is unconfigured and
        // DRIVER_OK sets DEVICE_NEEDS_RESET instead of activating the device.
        let mut rig = Rig::new(layout);
        assert_ne!(rig.negotiate(FEATURES) & FEATURES_OK, 0);
        rig.set_vq(0, 128, [DESC, DRV, DEV]);
        let events = &mut rig.events;
        assert!(rig.t.refuse_vqueue(0, "test", &mut |e| events.push(e)));
        assert_eq!(rig.t.queue(0), None);
        let s = rig.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assert_eq!(s, ACKNOWLEDGE | DRIVER | FEATURES_OK | DEVICE_NEEDS_RESET);
        assert_eq!(rig.events, vec![Event::Config]);
        assert!(!rig.t.is_active());
        assert_eq!(rig.dev.state().activations, 0);

        // Refused while running: DEVICE_NEEDS_RESET at once, the device stops serving.
        let mut rig = Rig::new(layout);
        rig.ready();
        let events = &mut rig.events;
        assert!(rig.t.refuse_vqueue(1, "test", &mut |e| events.push(e)));
        assert_ne!(rig.status() & DEVICE_NEEDS_RESET, 0);
        assert_eq!(rig.events, vec![Event::Config]);
        assert!(!rig.t.is_active());
    });
}
