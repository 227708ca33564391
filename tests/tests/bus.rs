//! Bus flows through the whole stack: host driver library → simulated SPMC → partition core.
//! Covers RESET, AREA_SHARE failure paths, ERROR answers and hostile frames (isolation
//! between endpoints is `isolation.rs`). Every test ends with zero simulator faults and a live partition.

use ffa::{
    bus::{Dialect, MAX_MSG_SIZE, msg},
    memory::PAGE_SIZE,
};
use virtio_msg::{
    Header, Layout,
    device::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1},
    driver::DeviceClient,
};
use vmsg_host::session::{SessionError, SharedArea};
use vmsg_tests::drive::{healthy, share, system, try_queue};

#[test]
fn reset_relinquishes_every_area_and_forgets_negotiation() {
    let sys = system();
    let mut vm = sys.connect(1, Dialect::G3, true).unwrap();
    let areas: Vec<SharedArea> = (0..3).map(|_| share(&mut vm, 2)).collect();
    try_queue(&mut vm, areas[0].bus(0)).unwrap();
    for a in &areas {
        assert!(sys.world().is_retrieved(a.handle, sys.sp_id()));
        // Reclaim is refused while the partition holds the memory.
        assert!(vm.session().ffa().mem_reclaim(a.handle).is_err());
    }
    vm.session().reset().unwrap();
    for a in &areas {
        assert!(!sys.world().is_retrieved(a.handle, sys.sp_id()));
        vm.session().ffa().mem_reclaim(a.handle).unwrap();
    }
    // Negotiation is gone: bus requests other than VERSION/RESET get ERROR.
    assert!(matches!(
        vm.session().ping(1),
        Err(SessionError::ErrorFrame(0x03))
    ));
    healthy(&sys);
}

#[test]
fn area_share_failure_paths() {
    let sys = system();
    let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
    let pa = vm.platform().alloc(4);
    let desc = ffa::memory::MemTransaction {
        sender: 1,
        attributes: ffa::memory::ATTR_NORMAL_WB_INNER_SHAREABLE,
        flags: 0,
        handle: 0,
        tag: 0,
        receivers: vec![ffa::memory::Receiver {
            endpoint: sys.sp_id(),
            access: ffa::memory::DataAccess::ReadWrite,
            executable: false,
        }],
        ranges: vec![ffa::memory::MemRange {
            address: pa,
            page_count: 4,
        }],
    };
    let handle = vm
        .session()
        .ffa()
        .mem_send(ffa::memory::ShareKind::Share, &desc)
        .unwrap();
    let req = |area: u16, handle: u64, pages: u32, attrs: u32| msg::AreaShareReq {
        area_id: area.into(),
        mem_handle: handle.into(),
        mem_tag: 0.into(),
        page_count: pages.into(),
        sharing_attrs: attrs.into(),
    };
    let ok = msg::attrs::LINUX_DEFAULT;
    for (r, why) in [
        (req(1, handle + 1000, 4, ok), "unknown handle"),
        (req(1, handle, 3, ok), "page count disagrees"),
        (req(0, handle, 4, ok), "area id 0"),
        (req(1, handle, 4, ok | 0x8), "executable"),
        (req(1, handle, 4, 0), "zero attributes from G3"),
    ] {
        assert_eq!(
            vm.session().area_share_raw(&r).unwrap(),
            msg::RESULT_ERROR,
            "{why}"
        );
        assert!(
            !sys.world().is_retrieved(handle, sys.sp_id()),
            "{why}: left retrieved"
        );
    }
    assert_eq!(
        vm.session().area_share_raw(&req(1, handle, 4, ok)).unwrap(),
        0
    );
    assert_eq!(
        vm.session().area_share_raw(&req(1, handle, 4, ok)).unwrap(),
        msg::RESULT_ERROR,
        "same area id twice"
    );
    // The memory is reachable only through area 1 now; unshare gives it back.
    let area = SharedArea {
        id: 1,
        handle,
        pa,
        pages: 4,
    };
    vm.session().unshare(&area).unwrap();
    assert!(!sys.world().is_retrieved(handle, sys.sp_id()));
    healthy(&sys);
}

#[test]
fn unknown_ids_and_devices_get_error_frames() {
    let sys = system();
    let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
    let session = vm.session();
    let mut frame = [0u8; MAX_MSG_SIZE];
    // Unknown bus message.
    let n = msg::write_bus_frame(&mut frame, false, 0xB0, 0, 99, &[]).unwrap();
    assert!(matches!(
        session.exchange(&frame[..n]),
        Err(SessionError::ErrorFrame(0xB0))
    ));
    // Unknown transport message id, and a device that does not exist.
    for (id, dev) in [(0x30u8, 0u16), (0x07, 5)] {
        let h = Header {
            msg_type: 0,
            msg_id: id,
            dev_num: dev,
            token: 5,
            msg_size: 8,
        };
        h.write(&mut frame).unwrap();
        assert!(matches!(
            session.exchange(&frame[..8]),
            Err(SessionError::ErrorFrame(e)) if e == u16::from(id)
        ));
    }
    // A G2 driver asking for a device it cannot address is refused by its transport.
    assert_eq!(session.ping(42).unwrap(), 42);
    healthy(&sys);
}

#[test]
fn hostile_frames_never_hurt_the_partition() {
    let sys = system();
    let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
    let area = share(&mut vm, 2);
    // Deterministic pseudo-random frames: every header shape, sizes, ids and payloads,
    // including plausible ones that name the shared area.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000u32 {
        let mut frame = [0u8; MAX_MSG_SIZE];
        for b in frame.iter_mut() {
            *b = (next() & 0xFF) as u8;
        }
        let size = 8 + (next() % 97) as usize;
        frame[0] &= 0x03;
        frame[6..8].copy_from_slice(&u16::try_from(size).unwrap().to_le_bytes());
        if i % 3 == 0 {
            frame[2] = 0;
            frame[3] = 0;
            // Addresses inside and around the area.
            let addr = area.bus(next() % (3 * PAGE_SIZE));
            frame[16..24].copy_from_slice(&addr.to_le_bytes());
        }
        // Never RESET, VERSION or unshare our area: the rest must keep working afterwards.
        if frame[0] & 2 != 0 && matches!(frame[1], 0x80 | 0x82 | 0x83) {
            continue;
        }
        let _ = vm.session().exchange(&frame[..size]);
    }
    assert_eq!(vm.session().ping(7).unwrap(), 7);
    assert!(sys.world().is_retrieved(area.handle, sys.sp_id()));
    healthy(&sys);
    // The device still serves a proper driver.
    let layout = vm.session().info().dialect.layout();
    DeviceClient::new(vm.session(), 0, layout)
        .unwrap()
        .reset()
        .unwrap();
    let mut rng = vm.rng().unwrap();
    assert_eq!(rng.read(4096).unwrap().len(), 4096);
    drop(rng);
    healthy(&sys);
}

#[test]
fn vm_destroyed_drops_the_endpoint_state() {
    let sys = system();
    let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
    let area = share(&mut vm, 1);
    assert!(sys.world().is_retrieved(area.handle, sys.sp_id()));
    sys.world().send_vm_destroyed(sys.sp_id(), 1).unwrap();
    assert!(!sys.world().is_retrieved(area.handle, sys.sp_id()));
    vm.session().ffa().mem_reclaim(area.handle).unwrap();
    healthy(&sys);
}

#[test]
fn g2_session_serves_the_rng_and_refuses_event_poll() {
    let sys = system();
    let mut vm = sys.connect(1, Dialect::G2, false).unwrap();
    // Direct messaging and indirect (G2 then takes pushed EVENT_USED instead of polling its
    // used rings), never notifications.
    assert_eq!(vm.session().info().bus_features, 0xF);
    assert!(matches!(
        vm.session().poll_event(),
        Err(SessionError::ErrorFrame(0x84))
    ));
    let mut rng = vm.rng().unwrap();
    assert_eq!(rng.read(10_000).unwrap().len(), 10_000);
    drop(rng);
    healthy(&sys);
}

#[test]
fn a_new_dialect_on_one_endpoint_starts_over() {
    let sys = system();
    let mut g3 = sys.connect(3, Dialect::G3, false).unwrap();
    let area = share(&mut g3, 1);
    assert!(sys.world().is_retrieved(area.handle, sys.sp_id()));
    // The endpoint reboots into a G2 kernel: same endpoint id, a 16-byte VERSION. The
    // partition starts a fresh instance, which relinquishes the G3 driver's area.
    let ffa = g3.into_session().into_ffa();
    let mut g2 =
        vmsg_host::session::BusSession::connect(ffa, 3, sys.sp_id(), Dialect::G2, false).unwrap();
    assert!(!sys.world().is_retrieved(area.handle, sys.sp_id()));
    assert_eq!(g2.devices().unwrap(), vec![0, 1, 2, 3]);
    g2.ffa().mem_reclaim(area.handle).unwrap();
    healthy(&sys);
}

#[test]
fn concurrent_endpoints_are_served() {
    let sys = system();
    let threads: Vec<_> = (1..=4u16)
        .map(|vm| {
            let mut conn = sys.connect(vm, Dialect::G3, false).unwrap();
            std::thread::spawn(move || {
                let mut rng = conn.rng().unwrap();
                let mut total = 0;
                for _ in 0..20 {
                    total += rng.read(8192).unwrap().len();
                }
                total
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 20 * 8192);
    }
    healthy(&sys);
}

#[test]
fn vm_destroyed_keeps_memory_whose_relinquish_failed_and_retries_it() {
    let sys = system();
    let mut vm = sys.connect(1, Dialect::G3, false).unwrap();
    let area = share(&mut vm, 1);
    // The SPMC refuses the relinquish twice (Hafnium answers NO_MEMORY when its page tables
    // cannot be updated): the partition must not forget the memory it still holds.
    sys.world().fail_relinquish(
        area.handle,
        &[
            ffa::arm_ffa::FfaError::NoMemory,
            ffa::arm_ffa::FfaError::NoMemory,
        ],
    );
    sys.world().send_vm_destroyed(sys.sp_id(), 1).unwrap();
    assert!(
        sys.world().is_retrieved(area.handle, sys.sp_id()),
        "the relinquish failed: the memory is still the partition's"
    );
    // Any later message gives the partition a chance to retry; the second retry succeeds.
    let mut other = sys.connect(2, Dialect::G3, false).unwrap();
    other.session().ping(1).unwrap();
    other.session().ping(2).unwrap();
    assert!(
        !sys.world().is_retrieved(area.handle, sys.sp_id()),
        "retried until relinquished"
    );
    vm.session().ffa().mem_reclaim(area.handle).unwrap();
    healthy(&sys);
}

/// A G2 driver built without its DMA pool shares no memory before it sets up a device; its
/// rings would be raw physical addresses. It must fail at probe (FEATURES_OK refused, which
/// virtio core's `virtio_features_ok` notices), not be accepted and left hanging.
#[test]
fn g2_driver_without_dma_pool_fails_at_features_ok() {
    let sys = system();
    let mut vm = sys.connect(1, Dialect::G2, false).unwrap();
    let mut client = DeviceClient::new(vm.session(), 0, Layout::Pr28).unwrap();
    assert!(
        client
            .initialize(VIRTIO_F_VERSION_1 | VIRTIO_F_ACCESS_PLATFORM)
            .is_err(),
        "FEATURES_OK accepted from a G2 driver that shared no memory"
    );
    assert_eq!(
        client.get_status().unwrap() & 0x8,
        0,
        "FEATURES_OK read back"
    );
    // The same endpoint with its pool shared is served.
    client.reset().unwrap();
    vm.share_dma_pool().unwrap();
    let mut rng = vm.rng().unwrap();
    assert_eq!(rng.read(64).unwrap().len(), 64);
    drop(rng);
    healthy(&sys);
}
