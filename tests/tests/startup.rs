//! The simulated world starts the partition through the image's start-up (`sp::startup`):
//! boot info and manifest parsed by the image's parser, FFA_VERSION first, RX/TX from the
//! manifest's `rx_tx-info`, then the message loop, with the image's log lines.

use ffa::bus::Dialect;
use vmsg_host::SimSystem;
use vmsg_tests::startup_log;

#[test]
fn the_simulated_partition_starts_as_the_image_does() {
    startup_log::install();
    let _ = startup_log::take();
    let system = SimSystem::start().expect("start the simulated world");
    // The partition is serving once a session can be opened.
    let connection = system.connect(1, Dialect::G3, false).expect("connect");
    drop(connection);
    let lines = startup_log::take();
    let dtb_len = {
        // The simulated manifest, parsed again here with the image's parser.
        let head = vmsg_host::sim::partition::PackageHead::standard();
        head.parse()
            .expect("the simulated boot info parses")
            .fdt_len
    };
    assert_eq!(
        lines,
        [
            format!(
                "INFO  boot info: v1.2, manifest {dtb_len} bytes, ffa-version 0x10002, rx_tx-info yes"
            ),
            "INFO  ffa: SPMC speaks FF-A 1.2, using 1.2".into(),
            "INFO  ffa: RX/TX from the manifest (rx 0xe500000, tx 0xe501000, 4096 bytes)".into(),
            "INFO  partition 0x8001 initialised; entropy: host OS".into(),
            "INFO  indirect messages (FFA_MSG_SEND2): yes".into(),
            "INFO  entering the message loop (FFA_MSG_WAIT)".into(),
        ]
    );
    system.world().assert_no_faults();
}
