//! One endpoint cannot hold the partition (issue 10, defect 4, work per message): a kick is
//! served within one message's work budget (`ffa::bus::WORK_PER_MESSAGE`), what it did not
//! get to is resumed at that endpoint's next message, and another endpoint's messages neither
//! wait for it nor pay for it.

use ffa::bus::{Dialect, WORK_PER_MESSAGE};
use virtio_msg::device::Budget;
use vmsg_host::{SimConnection, SimSystem};
use vmsg_tests::drive::{Live, kick, running};

/// The rng's queue size and largest request: a driver filling the queue with such requests
/// asks for 64 × 64 KiB = 4 MiB in one kick.
const QUEUE: u16 = 64;
const CHAIN: u32 = 64 * 1024;

/// Chains one message's budget covers: it stops before a chain once spent.
fn chains_per_message() -> u16 {
    let cost = u64::from(CHAIN) + Budget::CHAIN_COST;
    u16::try_from(WORK_PER_MESSAGE.div_ceil(cost)).unwrap()
}

/// Shares a ring and 4 MiB of buffers, brings the rng up and fills its queue with 64 KiB
/// requests (published, not kicked).
fn flood(conn: &mut SimConnection) -> Live {
    let pages = u32::from(QUEUE) * CHAIN / 4096;
    let mut live = running(conn, QUEUE, 2, pages);
    for i in 0..u64::from(QUEUE) {
        live.queue
            .add(
                conn.platform(),
                &[],
                &[(live.buffer.bus(i * u64::from(CHAIN)), CHAIN)],
            )
            .unwrap();
    }
    live.queue.publish(conn.platform()).unwrap();
    live
}

/// Chains the device returned since the last call (each must be a whole 64 KiB request).
fn completed(conn: &mut SimConnection, flood: &mut Live) -> u16 {
    let mut n = 0;
    while let Some((_, len)) = flood.queue.pop_used(conn.platform()).unwrap() {
        assert_eq!(len, CHAIN);
        n += 1;
    }
    n
}

#[test]
fn a_kick_for_four_mebibytes_is_served_one_budget_per_message() {
    let per_message = chains_per_message();
    assert!(per_message < QUEUE, "the budget must bite for this test");
    for dialect in [Dialect::G3, Dialect::G2] {
        let sys = SimSystem::start().unwrap();
        let mut hog = sys.connect(1, dialect, false).unwrap();
        let mut flood = flood(&mut hog);
        kick(&mut hog);
        assert_eq!(
            completed(&mut hog, &mut flood),
            per_message,
            "{dialect:?}: the kick's answer came after one budget of work"
        );

        // Another endpoint is served meanwhile, and its messages do not resume the hog's work.
        let mut other = sys.connect(2, dialect, false).unwrap();
        let mut rng = other.rng().unwrap();
        assert_eq!(rng.read(4096).unwrap().len(), 4096);
        assert_eq!(completed(&mut hog, &mut flood), 0, "{dialect:?}");

        // Each later message of the hog's (a kick, as G2 sends; a PING for G3) does one more
        // budget, oldest chains first, until the queue is done.
        let mut done = per_message;
        let mut messages = 1;
        while done < QUEUE {
            match dialect {
                Dialect::G2 => kick(&mut hog),
                _ => {
                    hog.session().ping(7).expect("PING");
                }
            }
            messages += 1;
            let n = completed(&mut hog, &mut flood);
            assert!(n > 0 && n <= per_message, "{dialect:?}: {n} chains");
            done += n;
        }
        assert_eq!(done, QUEUE);
        assert_eq!(messages, QUEUE.div_ceil(per_message), "{dialect:?}");
        // Nothing left: one more message serves nothing.
        hog.session().ping(7).expect("PING");
        assert_eq!(completed(&mut hog, &mut flood), 0);
        assert!(sys.faults().is_empty(), "faults: {:?}", sys.faults());
    }
}
