//! The partition's message loop in the simulated world: no message from one VM stops it for
//! the others, and every request gets one answer of its own ABI and width.

use ffa::{
    Ffa,
    arm_ffa::{Interface, interface_args::DirectMsgArgs},
    bus::Dialect,
};
use vmsg_host::SimSystem;

#[test]
fn a_32_bit_direct_request_is_answered_in_32_bits_and_the_partition_keeps_serving() {
    let sys = SimSystem::start().expect("start");
    let vm = sys.world().add_vm(5);
    let mut ffa = Ffa::new(vm.conduit());
    ffa.version(ffa::FFA_VERSION).expect("FFA_VERSION");
    // FFA_MSG_SEND_DIRECT_REQ (32-bit), not a virtio-msg request: the simulated SPMC refuses
    // a 64-bit answer to it, which used to end the partition's message loop for everyone.
    let answer = ffa
        .call(&Interface::MsgSendDirectReq {
            src_id: 5,
            dst_id: sys.sp_id(),
            args: DirectMsgArgs::Args32([1, 2, 3, 4, 5]),
        })
        .expect("the request is answered");
    match answer {
        Interface::MsgSendDirectResp {
            src_id,
            dst_id,
            args: DirectMsgArgs::Args32(_),
        } => assert_eq!((src_id, dst_id), (sys.sp_id(), 5)),
        other => panic!("not a 32-bit DIRECT_RESP: {other:?}"),
    }
    assert!(sys.world().sp_alive(sys.sp_id()));
    // Another VM (and the same one) is still served.
    for (id, dialect) in [(6, Dialect::G3), (7, Dialect::G2)] {
        let mut conn = sys
            .connect(id, dialect, false)
            .expect("a session still opens");
        assert_eq!(conn.session().ping(0x5a5a).expect("PING"), 0x5a5a);
    }
    assert!(sys.faults().is_empty(), "{:?}", sys.faults());
}
