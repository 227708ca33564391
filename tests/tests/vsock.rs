//! virtio-vsock end to end in the simulated FF-A world: the partition core on its own thread,
//! the host driver library (`vmsg_host::vsock`) in the test, both dialects. The echo on port 7
//! and the partition shell on port 23, credit flow both ways (more data than either side's
//! window), refusals, the connection limit, each endpoint's CID space its own; every test
//! ends with zero simulator faults.

use ffa::bus::Dialect;
use sp::devices::vsock::{ECHO_PORT, GUEST_CID, MAX_CONNECTIONS, SHELL_PORT};
use vmsg_host::{SimSystem, virtio_ids, vsock::StreamState};

/// The sessions each test runs: G3 with a notification, G3 polling, G2.
const SESSIONS: [(Dialect, bool); 3] = [
    (Dialect::G3, true),
    (Dialect::G3, false),
    (Dialect::G2, false),
];

fn system() -> SimSystem {
    SimSystem::start().expect("simulated world starts")
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap())
        .collect()
}

#[test]
fn echo_and_shell_in_both_dialects() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let sys = system();
        let mut conn = sys.connect(1, dialect, notify).unwrap();
        let dev = conn
            .list_devices()
            .unwrap()
            .into_iter()
            .find(|d| d.info.device_id == virtio_ids::VSOCK)
            .unwrap();
        assert_eq!(dev.dev_num, 3, "{what}");
        let mut vsock = conn.vsock().unwrap();
        assert_eq!(vsock.guest_cid(), GUEST_CID, "{what}");

        let echo = vsock.connect(ECHO_PORT).unwrap();
        vsock.send(echo, b"hello, secure world").unwrap();
        assert_eq!(
            vsock.read_exact(echo, 19).unwrap(),
            b"hello, secure world",
            "{what}"
        );
        // 100 KiB: far more than the device's 1 KiB window and than the driver's 64 KiB one,
        // so the driver waits for the device's credit again and again, the device for rx
        // buffers and for the driver's credit; every byte comes back in order.
        let big = pattern(100 * 1024);
        let mut back = Vec::new();
        for piece in big.chunks(3000) {
            vsock.send(echo, piece).unwrap();
            back.extend(vsock.recv(echo).unwrap());
        }
        back.extend(vsock.read_exact(echo, big.len() - back.len()).unwrap());
        assert_eq!(back.len(), big.len(), "{what}");
        assert!(back == big, "{what}: the echo differs");

        let shell = vsock.connect(SHELL_PORT).unwrap();
        assert_eq!(vsock.read_until(shell, b"> ").unwrap(), b"> ", "{what}");
        vsock.send(shell, b"help\n").unwrap();
        assert_eq!(
            vsock.read_until(shell, b"> ").unwrap(),
            b"commands: help, version, devices, stats, log\n> ",
            "{what}"
        );
        vsock.send(shell, b"devices\n").unwrap();
        let devices = String::from_utf8(vsock.read_until(shell, b"> ").unwrap()).unwrap();
        assert_eq!(
            devices,
            "0 virtio-rng (id 4)\n1 virtio-blk (id 2)\n2 virtio-console (id 3)\n\
             3 virtio-vsock (id 19)\n> ",
            "{what}"
        );

        vsock.shutdown(echo).unwrap();
        vsock.shutdown(shell).unwrap();
        assert_eq!(vsock.state(echo), None, "{what}");
        // Nothing listens on port 99: refused, and the device goes on.
        assert!(vsock.connect(99).is_err(), "{what}");
        let again = vsock.connect(ECHO_PORT).unwrap();
        vsock.send(again, b"still here").unwrap();
        assert_eq!(
            vsock.read_exact(again, 10).unwrap(),
            b"still here",
            "{what}"
        );
        assert_eq!(vsock.stats().dropped, 0, "{what}");
        vsock.close().unwrap();
        drop(vsock);
        assert!(sys.faults().is_empty(), "{what}: {:?}", sys.faults());
    }
}

/// The driver writes 66 KiB to the echo without reading: its own 64 KiB window and the
/// device's two 1 KiB buffers take exactly that, and the device, out of credit, asks for more.
/// Then it reads: the credit it frees reaches the device, which sends the rest.
#[test]
fn a_reader_that_catches_up_gets_the_rest() {
    for (dialect, notify) in SESSIONS {
        let what = format!("{dialect:?} notify={notify}");
        let sys = system();
        let mut conn = sys.connect(1, dialect, notify).unwrap();
        let mut vsock = conn.vsock().unwrap();
        let echo = vsock.connect(ECHO_PORT).unwrap();
        let data = pattern(66 * 1024);
        vsock.send(echo, &data).unwrap();
        assert_eq!(vsock.read_exact(echo, data.len()).unwrap(), data, "{what}");
        vsock.shutdown(echo).unwrap();
        vsock.close().unwrap();
        drop(vsock);
        assert!(sys.faults().is_empty(), "{what}: {:?}", sys.faults());
    }
}

#[test]
fn eight_connections_at_most_and_a_closed_one_makes_room() {
    let sys = system();
    let mut conn = sys.connect(1, Dialect::G3, true).unwrap();
    let mut vsock = conn.vsock().unwrap();
    let open: Vec<u32> = (0..MAX_CONNECTIONS)
        .map(|_| vsock.connect(ECHO_PORT).unwrap())
        .collect();
    assert!(vsock.connect(ECHO_PORT).is_err(), "the ninth is refused");
    // Every open connection is its own stream.
    for (k, &c) in open.iter().enumerate() {
        vsock.send(c, format!("stream {k}").as_bytes()).unwrap();
    }
    for (k, &c) in open.iter().enumerate() {
        let want = format!("stream {k}");
        assert_eq!(vsock.read_exact(c, want.len()).unwrap(), want.as_bytes());
    }
    // An RST from the driver frees a slot at once; a clean shutdown another.
    vsock.reset_stream(open[2]).unwrap();
    vsock.shutdown(open[5]).unwrap();
    let a = vsock.connect(ECHO_PORT).unwrap();
    let b = vsock.connect(SHELL_PORT).unwrap();
    assert_eq!(vsock.state(a), Some(StreamState::Connected));
    assert_eq!(vsock.read_until(b, b"> ").unwrap(), b"> ");
    assert!(vsock.connect(ECHO_PORT).is_err());
    vsock.close().unwrap();
    drop(vsock);
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}

#[test]
fn each_endpoint_has_its_own_cid_space() {
    let sys = system();
    let mut one = sys.connect(1, Dialect::G3, false).unwrap();
    let mut two = sys.connect(2, Dialect::G2, false).unwrap();
    let mut a = one.vsock().unwrap();
    let mut b = two.vsock().unwrap();
    // Both drivers are CID 3 and use the same local ports, to the same service.
    assert_eq!((a.guest_cid(), b.guest_cid()), (GUEST_CID, GUEST_CID));
    let ca = a.connect(ECHO_PORT).unwrap();
    let cb = b.connect(ECHO_PORT).unwrap();
    assert_eq!(ca, cb);
    a.send(ca, b"from one").unwrap();
    b.send(cb, b"from two").unwrap();
    assert_eq!(a.read_exact(ca, 8).unwrap(), b"from one");
    assert_eq!(b.read_exact(cb, 8).unwrap(), b"from two");
    // Closing one endpoint's connection leaves the other's.
    a.shutdown(ca).unwrap();
    b.send(cb, b"alive").unwrap();
    assert_eq!(b.read_exact(cb, 5).unwrap(), b"alive");
    a.close().unwrap();
    b.close().unwrap();
    drop((a, b));
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}
