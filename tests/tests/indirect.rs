//! Indirect messages and pushed events, end to end in the simulated FF-A world: every device
//! (rng, blk, console, vsock) in
//! every mode each dialect defines, and hostile indirect input refused or dropped with the
//! session (and every other endpoint) still served.

use ffa::{
    Conduit, VIRTIO_MSG_DEVICE_UUID,
    arm_ffa::FfaError,
    bus::{BusConfig, Dialect, msg},
    indirect,
};
use vmsg_host::{
    Connection,
    session::{Events, Messaging, Modes, SessionError},
    sim::{SP_ID, inline::InlineSystem},
};
use vmsg_tests::drive::{healthy, system};

const DIRECT_POLL: Modes = Modes {
    messaging: Messaging::Direct,
    events: Events::Poll,
};
const DIRECT_NOTIFY: Modes = Modes {
    messaging: Messaging::Direct,
    events: Events::Notify,
};
const DIRECT_PUSHED: Modes = Modes {
    messaging: Messaging::Direct,
    events: Events::Indirect,
};
const INDIRECT: Modes = Modes {
    messaging: Messaging::Indirect,
    events: Events::Indirect,
};

/// rng, blk and console through `conn`, each checked.
fn use_every_device<C: Conduit, P: vmsg_host::platform::Platform>(
    conn: &mut Connection<C, P>,
    what: &str,
) {
    let mut rng = conn.rng().unwrap();
    rng.set_depth(8);
    let bytes = rng.read(40_000).unwrap();
    assert_eq!(bytes.len(), 40_000, "{what}: rng");
    assert!(
        bytes.iter().any(|b| *b != bytes[0]),
        "{what}: rng bytes vary"
    );
    drop(rng);
    let mut disk = conn.blk().unwrap();
    let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
    disk.write(8, &data).unwrap();
    assert_eq!(disk.read(8, data.len()).unwrap(), data, "{what}: blk");
    drop(disk);
    let mut console = conn.console().unwrap();
    console
        .read_until(vmsg_host::console::PROMPT)
        .unwrap_or_else(|e| panic!("{what}: console prompt: {e}"));
    let answer = console.command("version").unwrap();
    assert!(
        answer.contains("vmsg-sp"),
        "{what}: console answered {answer:?}"
    );
    console.close().unwrap();
    drop(console);
    let mut vsock = conn.vsock().unwrap();
    let local = vsock.connect(7).unwrap();
    let message: Vec<u8> = (0..3000u32).map(|i| (i % 251).to_le_bytes()[0]).collect();
    vsock.send(local, &message).unwrap();
    assert_eq!(
        vsock.read_exact(local, message.len()).unwrap(),
        message,
        "{what}: vsock echo"
    );
    vsock.shutdown(local).unwrap();
    vsock.close().unwrap();
}

#[test]
fn every_device_in_every_mode_of_each_dialect() {
    let sys = system();
    for (vm, dialect, modes) in [
        (1, Dialect::G3, DIRECT_POLL),
        (2, Dialect::G3, DIRECT_NOTIFY),
        (3, Dialect::G3, DIRECT_PUSHED),
        (4, Dialect::G3, INDIRECT),
        (5, Dialect::G2, DIRECT_PUSHED),
    ] {
        let what = format!("{dialect:?} {modes:?}");
        let mut conn = sys.connect_modes(vm, dialect, modes).unwrap();
        assert_eq!(conn.session().info().modes, modes, "{what}");
        use_every_device(&mut conn, &what);
        assert_eq!(conn.session().stray_messages(), 0, "{what}");
        // G2 waits for pushed events as Linux's driver does, without a message: each came
        // (the console's second event of a kick by the partition's retry timer).
        assert_eq!(conn.session().kicks_for_pushed(), 0, "{what}");
    }
    healthy(&sys);
}

/// G2 with pushed events in the inline world, where the partition runs only when a call hands
/// it control: its retry timer fires once the driver released its RX buffer, and every event
/// a kick raised arrives without another kick.
#[test]
fn g2_pushed_events_arrive_without_kicks_in_the_inline_world() {
    let sys = InlineSystem::start().unwrap();
    let mut conn = sys.connect_modes(1, Dialect::G2, DIRECT_PUSHED).unwrap();
    assert_eq!(conn.session().info().bus_features, 0xF);
    use_every_device(&mut conn, "G2 pushed, inline");
    assert_eq!(conn.session().kicks_for_pushed(), 0);
    assert_eq!(conn.session().stray_messages(), 0);
    assert!(sys.faults().is_empty());
}

/// FFA_MSG_SEND2 (64-bit), as the simulated world counts it.
const MSG_SEND2: u32 = 0x8400_0086;

/// How many FFA_MSG_SEND2 calls the partition of `sys` made so far.
fn partition_sends(sys: &vmsg_host::SimSystem) -> u64 {
    sys.world()
        .calls()
        .get(&(SP_ID, MSG_SEND2))
        .copied()
        .unwrap_or(0)
}

/// A pushed event that finds the driver's RX buffer full (FFA_MSG_SEND2 BUSY) is tried again
/// by the partition's retry timer, with no message from the driver (a G2 driver waiting for it
/// sends none), a bounded number of times while the buffer stays full.
#[test]
fn a_pushed_event_refused_by_a_full_rx_buffer_is_retried_by_the_timer_a_bounded_number_of_times() {
    let sys = system();
    let mut conn = sys.connect_modes(1, Dialect::G2, DIRECT_PUSHED).unwrap();
    let mut filler = sys.connect_modes(2, Dialect::G3, DIRECT_POLL).unwrap();
    // Endpoint 2 fills endpoint 1's RX buffer with a message of its own, which the G2 session
    // does not look for (it takes the partition's messages only).
    filler
        .session()
        .ffa()
        .send_indirect(2, 1, VIRTIO_MSG_DEVICE_UUID, &[0u8; 8])
        .unwrap();
    let mut rng = conn.rng().unwrap();
    let before = partition_sends(&sys);
    // One kick: its EVENT_USED finds the buffer full; the driver finds its bytes in the used
    // ring and sends nothing more.
    assert_eq!(rng.read(64).unwrap().len(), 64);
    // One call per attempt (pushes are not retried at once: the timer covers them).
    let bound = 1 + u64::from(sp::partition::MAX_PUSH_RETRIES);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while partition_sends(&sys) < before + bound && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Long enough for more, had the timer not stopped (its delay is at most 10 ms).
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(partition_sends(&sys) - before, bound, "push attempts");
    drop(rng);
    // The session goes on.
    assert_eq!(conn.session().ping(0x66).unwrap(), 0x66);
    assert_eq!(conn.session().kicks_for_pushed(), 0);
    healthy(&sys);
}

#[test]
fn g2_polls_the_used_rings_where_pushed_events_are_not_offered() {
    // Indirect messages off, or on with G2's pushed events turned off: G2 is offered direct
    // messaging only (and G3 keeps indirect messages in the second).
    for config in [
        BusConfig {
            indirect: false,
            ..BusConfig::default()
        },
        BusConfig {
            g2_pushed_events: false,
            ..BusConfig::default()
        },
    ] {
        let sys = InlineSystem::start_with(config).unwrap();
        let mut conn = sys.connect_modes(1, Dialect::G2, DIRECT_POLL).unwrap();
        assert_eq!(conn.session().info().bus_features, 0x3);
        assert_eq!(conn.session().info().modes.events, Events::Poll);
        use_every_device(&mut conn, "G2 used rings");
        // And pushed events cannot be asked for.
        assert!(matches!(
            sys.connect_modes(2, Dialect::G2, DIRECT_PUSHED),
            Err(SessionError::Protocol(_))
        ));
        assert!(sys.faults().is_empty());
    }
}

#[test]
fn modes_a_dialect_does_not_define_are_refused_clearly() {
    let sys = system();
    for (vm, dialect, modes) in [
        (9, Dialect::G2, INDIRECT),
        (10, Dialect::G2, DIRECT_NOTIFY),
        (
            11,
            Dialect::G3,
            Modes {
                messaging: Messaging::Indirect,
                events: Events::Poll,
            },
        ),
    ] {
        assert!(modes.check(dialect).is_err(), "{dialect:?} {modes:?}");
        assert!(matches!(
            sys.connect_modes(vm, dialect, modes),
            Err(SessionError::Protocol(_))
        ));
    }
    healthy(&sys);
}

#[test]
fn inline_world_counts_one_round_of_each_mode() {
    // QD1 4 KiB rng: the exact FF-A calls per request in each mode (see `make bench`).
    for (modes, driver, partition) in [(DIRECT_POLL, 1, 1), (DIRECT_PUSHED, 3, 2), (INDIRECT, 4, 4)]
    {
        let sys = InlineSystem::start().unwrap();
        let mut conn = sys.connect_modes(1, Dialect::G3, modes).unwrap();
        let mut rng = conn.rng().unwrap();
        rng.read_in_requests(4096, 4096, |_| Ok(())).unwrap();
        sys.world().reset_calls();
        rng.read_in_requests(4096 * 10, 4096, |_| Ok(())).unwrap();
        let calls = sys.world().calls();
        let by = |id: u16| {
            calls
                .iter()
                .filter(|((c, _), _)| *c == id)
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        assert_eq!(by(1), 10 * driver, "{modes:?}: driver calls {calls:?}");
        assert_eq!(
            by(SP_ID),
            10 * partition,
            "{modes:?}: partition calls {calls:?}"
        );
    }
}

/// A raw endpoint of `sys` that speaks G3 over indirect messages (its session negotiated),
/// for sending hand-made indirect messages.
fn raw_indirect(sys: &vmsg_host::SimSystem, vm: u16) -> vmsg_host::SimConnection {
    sys.connect_modes(vm, Dialect::G3, INDIRECT).unwrap()
}

/// Sends what `build` writes into the TX buffer (a message prepared by `indirect::write` and
/// then altered) with FFA_MSG_SEND2, and runs the partition; returns the send's result.
fn send_raw(
    conn: &mut vmsg_host::SimConnection,
    build: impl FnOnce(&mut [u8]),
) -> Result<(), ffa::Error> {
    let own = conn.session().own_id();
    let ffa = conn.session().ffa();
    let mut ping = [0u8; 12];
    msg::write_bus_frame(&mut ping, false, 0x03, 0, 0x77, &7u32.to_le_bytes()).unwrap();
    indirect::write(
        ffa.conduit().tx(),
        own,
        SP_ID,
        VIRTIO_MSG_DEVICE_UUID,
        &ping,
    )
    .unwrap();
    build(ffa.conduit().tx());
    let sent = ffa.msg_send2();
    if sent.is_ok() {
        ffa.run(SP_ID, 0).unwrap();
    }
    sent
}

#[test]
fn bad_indirect_input_is_refused_or_dropped_and_the_session_goes_on() {
    let sys = system();
    let mut conn = raw_indirect(&sys, 1);
    let inval = Err(ffa::Error::Ffa(FfaError::InvalidParameters));
    // Refused by the SPMC: the offset inside the header; a size past the buffer.
    assert_eq!(send_raw(&mut conn, |t| t[8] = 24), inval);
    assert_eq!(
        send_raw(&mut conn, |t| t[16..20]
            .copy_from_slice(&5000u32.to_le_bytes())),
        inval
    );
    // Taken by the SPMC, dropped by the partition: a payload over one bus frame (no answer).
    assert_eq!(
        send_raw(&mut conn, |t| t[16..20]
            .copy_from_slice(&200u32.to_le_bytes())),
        Ok(())
    );
    assert!(
        !conn.session().ffa().rx_full_get(1, false).unwrap(),
        "no answer"
    );
    // An unknown service UUID: the bus ERROR frame comes back.
    send_raw(&mut conn, |t| t[24] ^= 0xff).unwrap();
    assert!(conn.session().ffa().rx_full_get(1, false).unwrap());
    let mut copy = [0u8; 256];
    let n = conn.session().ffa().take_indirect(&mut copy).unwrap();
    let m = indirect::parse(&copy[..n], 104).unwrap();
    assert_eq!(
        (m.payload[0], m.payload[1]),
        (0x03, msg::ERROR),
        "ERROR frame"
    );
    // A message while the partition's RX buffer is still owned: BUSY, and the partition gets
    // to the first once run.
    let own = conn.session().own_id();
    let ffa = conn.session().ffa();
    let mut ping = [0u8; 12];
    msg::write_bus_frame(&mut ping, false, 0x03, 0, 0x78, &9u32.to_le_bytes()).unwrap();
    ffa.send_indirect(own, SP_ID, VIRTIO_MSG_DEVICE_UUID, &ping)
        .unwrap();
    assert_eq!(
        ffa.send_indirect(own, SP_ID, VIRTIO_MSG_DEVICE_UUID, &ping),
        Err(ffa::Error::Ffa(FfaError::Busy))
    );
    ffa.run(SP_ID, 0).unwrap();
    assert!(ffa.rx_full_get(own, false).unwrap());
    let n = ffa.take_indirect(&mut copy).unwrap();
    assert_eq!(
        &indirect::parse(&copy[..n], 104).unwrap().payload[8..12],
        &9u32.to_le_bytes()
    );
    // The session goes on.
    assert_eq!(conn.session().ping(0x1234).unwrap(), 0x1234);
    healthy(&sys);
}

#[test]
fn a_driver_that_never_releases_its_rx_buffer_stalls_only_itself() {
    let sys = system();
    let mut stuck = raw_indirect(&sys, 1);
    let mut other = raw_indirect(&sys, 2);
    // The stuck driver's first answer fills its RX buffer; it never takes it.
    send_raw(&mut stuck, |_| {}).unwrap();
    // Its next request is served, but the answer cannot be delivered: dropped after a few
    // tries, and the partition goes on.
    send_raw(&mut stuck, |_| {}).unwrap();
    // Everyone else is served meanwhile, in every device.
    use_every_device(&mut other, "beside a stuck driver");
    // Once it takes its buffer back, the stuck driver is served again.
    let mut copy = [0u8; 256];
    assert!(stuck.session().ffa().rx_full_get(1, false).unwrap());
    stuck.session().ffa().take_indirect(&mut copy).unwrap();
    assert_eq!(stuck.session().ping(0x55).unwrap(), 0x55);
    healthy(&sys);
}

#[test]
fn a_message_waiting_in_the_partitions_rx_buffer_does_not_block_another_vms_share() {
    let sys = system();
    let mut waiting = raw_indirect(&sys, 1);
    let mut sharer = sys.connect(2, Dialect::G3, false).unwrap();
    // VM 1's request waits in the partition's RX buffer: nobody has run the partition yet.
    let own = waiting.session().own_id();
    let mut ping = [0u8; 12];
    msg::write_bus_frame(&mut ping, false, 0x03, 0, 0x79, &11u32.to_le_bytes()).unwrap();
    waiting
        .session()
        .ffa()
        .send_indirect(own, SP_ID, VIRTIO_MSG_DEVICE_UUID, &ping)
        .unwrap();
    // VM 2's AREA_SHARE needs the RX buffer for the retrieve: the message is set aside, the
    // share succeeds, and VM 1's request is answered meanwhile.
    let pa = sharer.platform().alloc(1);
    let area = sharer.session().share(pa, 1).unwrap();
    assert!(sys.world().is_retrieved(area.handle, sys.sp_id()));
    let ffa = waiting.session().ffa();
    assert!(ffa.rx_full_get(own, false).unwrap(), "VM 1 got its answer");
    let mut copy = [0u8; 256];
    let n = ffa.take_indirect(&mut copy).unwrap();
    let answer = indirect::parse(&copy[..n], 104).unwrap().payload;
    assert_eq!((answer[0], answer[1]), (0x03, 0x03), "the PING answer");
    assert_eq!(&answer[8..12], &11u32.to_le_bytes());
    sharer.session().unshare(&area).unwrap();
    healthy(&sys);
}
