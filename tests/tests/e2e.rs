//! End to end in the simulated FF-A world: the partition core on its own thread, the host
//! driver library in the test, both dialects. Every test ends by checking that the partition
//! never touched normal-world memory outside what it had retrieved.

use ffa::bus::Dialect;
use vmsg_host::{SimSystem, virtio_ids};

const DIALECTS: [Dialect; 2] = [Dialect::G3, Dialect::G2];

fn system() -> SimSystem {
    SimSystem::start().expect("simulated world starts")
}

#[test]
fn devices_are_listed_in_both_dialects() {
    for dialect in DIALECTS {
        let sys = system();
        let mut conn = sys.connect(1, dialect, true).unwrap();
        let devices = conn.list_devices().unwrap();
        assert_eq!(devices.len(), 4, "{dialect:?}");
        let rng = &devices[0];
        assert_eq!(rng.dev_num, 0);
        assert_eq!(rng.info.device_id, virtio_ids::ENTROPY);
        assert_eq!(rng.info.max_virtqueues, 1);
        assert_eq!(rng.info.num_feature_bits, 64);
        let blk = &devices[1];
        assert_eq!(blk.dev_num, 1);
        assert_eq!(blk.info.device_id, virtio_ids::BLOCK);
        assert_eq!(blk.info.max_virtqueues, 1);
        assert_eq!(blk.info.num_feature_bits, 64);
        assert_eq!(blk.info.config_size, 60);
        let console = &devices[2];
        assert_eq!(console.dev_num, 2);
        assert_eq!(console.info.device_id, virtio_ids::CONSOLE);
        assert_eq!(console.info.max_virtqueues, 2);
        assert_eq!(console.info.num_feature_bits, 64);
        assert_eq!(console.info.config_size, 0);
        let vsock = &devices[3];
        assert_eq!(vsock.dev_num, 3);
        assert_eq!(vsock.info.device_id, virtio_ids::VSOCK);
        assert_eq!(vsock.info.max_virtqueues, 3);
        assert_eq!(vsock.info.num_feature_bits, 64);
        assert_eq!(vsock.info.config_size, 8);
        assert!(sys.faults().is_empty(), "{:?}", sys.faults());
    }
}

#[test]
fn ping_in_g3() {
    let sys = system();
    let mut conn = sys.connect(1, Dialect::G3, false).unwrap();
    for v in [0, 1, 0xdead_beef, u32::MAX] {
        assert_eq!(conn.session().ping(v).unwrap(), v);
    }
}

/// The acceptance test: 1 MiB of entropy through virtio-rng, zero simulator faults.
#[test]
fn rng_reads_one_mib_in_both_dialects() {
    for dialect in DIALECTS {
        for notify in [true, false] {
            if dialect == Dialect::G2 && !notify {
                continue;
            }
            let sys = system();
            let mut conn = sys.connect(1, dialect, notify).unwrap();
            let mut rng = conn.rng().unwrap();
            let data = rng.read(1 << 20).unwrap();
            assert_eq!(data.len(), 1 << 20);
            // Real entropy: no long runs, every byte value present, roughly uniform.
            let mut histogram = [0u32; 256];
            for b in &data {
                histogram[usize::from(*b)] += 1;
            }
            let expected = (1u32 << 20) / 256;
            for (value, count) in histogram.iter().enumerate() {
                assert!(
                    count.abs_diff(expected) < expected / 4,
                    "{dialect:?}: byte {value} seen {count} times"
                );
            }
            assert!(data.windows(16).all(|w| w.iter().any(|b| *b != w[0])));
            drop(rng);
            assert!(sys.faults().is_empty(), "{dialect:?}: {:?}", sys.faults());
        }
    }
}

#[test]
fn rng_reads_odd_sizes() {
    let sys = system();
    let mut conn = sys.connect(1, Dialect::G3, true).unwrap();
    let mut rng = conn.rng().unwrap();
    for n in [1, 7, 4095, 4096, 4097, 65536 + 3] {
        assert_eq!(rng.read(n).unwrap().len(), n);
    }
    let a = rng.read(64).unwrap();
    let b = rng.read(64).unwrap();
    assert_ne!(a, b);
    drop(rng);
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}

#[test]
fn reading_more_than_memory_holds_is_refused_not_aborted() {
    let sys = SimSystem::start().expect("start");
    let mut conn = sys.connect(9, Dialect::G3, false).expect("connect");
    let mut rng = conn.rng().expect("rng");
    assert!(rng.read(usize::MAX).is_err(), "refused, not an abort");
    // And the driver still works after the refusal.
    assert_eq!(rng.read(100).expect("read").len(), 100);
    let mut sizes = Vec::new();
    rng.read_with(200_000, |chunk| {
        sizes.push(chunk.len());
        Ok(())
    })
    .expect("streamed read");
    assert_eq!(sizes.iter().sum::<usize>(), 200_000);
    assert!(sizes.iter().all(|&n| n <= vmsg_host::rng::BUFFER_BYTES));
}

/// The shell's `stats` reports this endpoint's own counters, as they grow: after a 4 KiB
/// rng read, device 0 returned one chain of 4096 bytes; the blk device (never used) nothing;
/// another endpoint's 8 KiB are not in them. `log` answers the partition's recent lines
/// (through the simulated partition's logger), whole lines.
#[test]
fn console_stats_and_log_report_the_endpoint() {
    vmsg_host::sim::partition_log::install(log::LevelFilter::Info, false);
    let sys = system();
    let mut other = sys.connect(2, Dialect::G3, false).unwrap();
    other.rng().unwrap().read(8192).unwrap();
    let mut conn = sys.connect(1, Dialect::G3, false).unwrap();
    let mut console = conn.console().unwrap();
    console.read_until("> ").unwrap();
    let dev0 = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("dev 0: "))
            .unwrap_or_else(|| panic!("no dev 0 line in {text:?}"))
            .to_owned()
    };
    let before = console.command("stats").unwrap();
    assert!(before.starts_with("endpoint: "), "{before}");
    assert_eq!(before.lines().count(), 5, "{before}");
    assert!(dev0(&before).contains(" 0 chains, 0 bytes,"), "{before}");
    drop(console);
    conn.rng().unwrap().read(4096).unwrap();
    let mut console = conn.console().unwrap();
    console.read_until("> ").unwrap_or_default();
    let after = console.command("stats").unwrap();
    assert!(
        dev0(&after).contains(" 1 chains, 4096 bytes, 0 failures"),
        "{after}"
    );
    assert!(
        after
            .lines()
            .nth(2)
            .unwrap()
            .contains(" 0 chains, 0 bytes,"),
        "blk untouched: {after}"
    );
    let log = console.command("log").unwrap();
    assert!(log.len() <= 768, "{}", log.len());
    // Whole lines with their level. Which lines: other tests' partitions in this process log
    // into the same recent lines (`vmsg_cli.rs` checks the content, one partition per run).
    assert!(
        log.lines().all(|l| ["INFO  ", "WARN  ", "ERROR "]
            .iter()
            .any(|p| l.starts_with(p))),
        "{log}"
    );
    assert!(log.lines().count() >= 3, "{log}");
    drop(console);
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}

/// The console shell (device 2) answers line by line in both dialects, with and without the
/// notification; the transmit notify's answer lands in receive buffers already posted.
#[test]
fn console_shell_in_both_dialects() {
    for dialect in DIALECTS {
        for notify in [true, false] {
            if dialect == Dialect::G2 && !notify {
                continue;
            }
            let sys = system();
            let mut conn = sys.connect(1, dialect, notify).unwrap();
            let mut console = conn.console().unwrap();
            assert_eq!(console.read_until("> ").unwrap(), "> ", "{dialect:?}");
            assert_eq!(
                console.command("help").unwrap(),
                "commands: help, version, devices, stats, log\n"
            );
            assert!(
                console.command("version").unwrap().starts_with("vmsg-sp "),
                "{dialect:?}"
            );
            assert_eq!(
                console.command("devices").unwrap(),
                "0 virtio-rng (id 4)\n1 virtio-blk (id 2)\n2 virtio-console (id 3)\n\
                 3 virtio-vsock (id 19)\n"
            );
            assert_eq!(console.command("frobnicate").unwrap(), "unknown command\n");
            console.close().unwrap();
            drop(console);
            assert!(sys.faults().is_empty(), "{:?}", sys.faults());
        }
    }
}
