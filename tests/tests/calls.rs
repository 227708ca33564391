//! FF-A calls per completed request, counted exactly by the simulator (`vmsg bench` prints the
//! same counts): a 4 KiB rng request at queue depth 1 costs one round trip (the device
//! completes inside the EVENT_AVAIL request and the driver finds it in the used ring without
//! polling), and 32 requests in flight share one.

use vmsg_host::bench;

fn calls(name: &str) -> bench::Measured {
    let scenario = bench::scenarios(64)
        .into_iter()
        .find(|s| s.name == name)
        .expect("scenario exists");
    bench::run(&scenario).expect("scenario runs")
}

/// (side, function, calls per request) of a run.
fn breakdown(m: &bench::Measured) -> Vec<(&'static str, String, f64)> {
    m.calls
        .iter()
        .map(|c| (c.side, c.function.clone(), c.per_request))
        .collect()
}

#[test]
fn one_round_trip_per_request_at_depth_one_in_every_mode() {
    for name in [
        "rng-4k-qd1-g3-poll",
        "rng-4k-qd1-g3-notify",
        "rng-4k-qd1-g2-used-ring",
    ] {
        let m = calls(name);
        assert_eq!(
            breakdown(&m),
            vec![
                ("driver", "FFA_MSG_SEND_DIRECT_REQ2".to_string(), 1.0),
                ("partition", "FFA_MSG_SEND_DIRECT_RESP2".to_string(), 1.0),
            ],
            "{name}"
        );
    }
}

#[test]
fn thirty_two_requests_in_flight_share_one_round_trip() {
    for name in [
        "rng-4k-qd32-g3-poll",
        "rng-4k-qd32-g3-notify",
        "rng-4k-qd32-g2-used-ring",
    ] {
        let m = calls(name);
        assert_eq!(m.driver_calls_per_request, 1.0 / 32.0, "{name}");
        assert_eq!(m.calls_per_request, 2.0 / 32.0, "{name}");
    }
}

#[test]
fn the_ring_features_keep_one_round_trip_per_batch() {
    // Indirect tables and EVENT_IDX change what crosses shared memory, not the calls: the
    // device still completes inside the kick, and asks for every kick.
    for name in [
        "rng-4k-qd1-g3-poll-ring",
        "blk-read-4k-qd1-g3-poll-ring",
        "blk-write-4k-qd1-g3-notify-ring",
    ] {
        let m = calls(name);
        assert_eq!(
            breakdown(&m),
            vec![
                ("driver", "FFA_MSG_SEND_DIRECT_REQ2".to_string(), 1.0),
                ("partition", "FFA_MSG_SEND_DIRECT_RESP2".to_string(), 1.0),
            ],
            "{name}"
        );
    }
    let m = calls("rng-4k-qd32-g3-notify-ring");
    assert_eq!(m.driver_calls_per_request, 1.0 / 32.0);
    assert_eq!(m.calls_per_request, 2.0 / 32.0);
}
