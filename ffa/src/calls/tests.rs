//! Tests of the typed FF-A calls over a scripted conduit.

use super::*;
use crate::memory::{
    ATTR_NORMAL_WB_INNER_SHAREABLE, DataAccess, MemRange, RELINQUISH_FLAG_CLEAR, Receiver,
};
use alloc::{collections::VecDeque, vec, vec::Vec};
use arm_ffa::partition_info::{PartitionIdType, PartitionProperties};

const V1_1: Version = Version(1, 1);
const V1_2: Version = Version(1, 2);

/// One scripted answer: registers, and optionally what the callee leaves in RX.
struct Answer {
    regs: [u64; 18],
    rx: Option<Vec<u8>>,
}

/// A conduit that records every call (registers and TX contents) and plays back answers.
struct Script {
    answers: VecDeque<Answer>,
    calls: Vec<[u64; 18]>,
    tx_seen: Vec<Vec<u8>>,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl Script {
    fn new() -> Self {
        Self {
            answers: VecDeque::new(),
            calls: Vec::new(),
            tx_seen: Vec::new(),
            tx: vec![0; 4096],
            rx: vec![0; 4096],
        }
    }
}

impl Conduit for Script {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        self.calls.push(regs);
        self.tx_seen.push(self.tx.clone());
        let answer = self
            .answers
            .pop_front()
            .unwrap_or_else(|| panic!("unscripted call {regs:x?}"));
        if let Some(rx) = answer.rx {
            self.rx.fill(0);
            self.rx[..rx.len()].copy_from_slice(&rx);
        }
        answer.regs
    }
    fn tx(&mut self) -> &mut [u8] {
        &mut self.tx
    }
    fn rx(&self) -> &[u8] {
        &self.rx
    }
}

fn regs(iface: Interface) -> [u64; 18] {
    let mut r = [0; 18];
    iface.to_regs(V1_2, &mut r);
    r
}

fn raw(words: &[u64]) -> [u64; 18] {
    let mut r = [0; 18];
    r[..words.len()].copy_from_slice(words);
    r
}

fn success(args: [u32; 6]) -> [u64; 18] {
    regs(Interface::Success {
        target_info: TargetInfo::default(),
        args: SuccessArgs::Args32(args),
    })
}

fn ok() -> [u64; 18] {
    success([0; 6])
}

fn error(code: FfaError) -> [u64; 18] {
    regs(Interface::error(code, true))
}

/// An `Ffa` whose conduit plays `answers` in order.
fn ffa(answers: impl IntoIterator<Item = [u64; 18]>) -> Ffa<Script> {
    let mut script = Script::new();
    script
        .answers
        .extend(answers.into_iter().map(|regs| Answer { regs, rx: None }));
    Ffa::new(script)
}

fn push(ffa: &mut Ffa<Script>, regs: [u64; 18], rx: Option<Vec<u8>>) {
    ffa.conduit().answers.push_back(Answer { regs, rx });
}

fn calls(ffa: &mut Ffa<Script>) -> Vec<[u64; 18]> {
    ffa.conduit().calls.clone()
}

fn done(ffa: &mut Ffa<Script>) {
    assert!(ffa.conduit().answers.is_empty(), "script not consumed");
}

#[test]
fn call_maps_errors() {
    let mut f = ffa([
        error(FfaError::Busy),
        raw(&[0x8400_0060, 0, 0xffff_ffd6]),
        raw(&[0xc400_0060, 0, u64::from(0xffff_fff8u32)]),
        raw(&[0x1234]),
        ok(),
    ]);
    assert_eq!(f.call(&Interface::IdGet), Err(Error::Ffa(FfaError::Busy)));
    assert_eq!(f.call(&Interface::IdGet), Err(Error::UnknownErrorCode(-42)));
    assert_eq!(
        f.call(&Interface::IdGet),
        Err(Error::Ffa(FfaError::Aborted))
    );
    assert_eq!(f.call(&Interface::IdGet), Err(Error::Decode(0x1234)));
    assert_eq!(f.last_answer()[0], 0x1234);
    assert_eq!(f.call(&Interface::IdGet), Ok(Interface::success32_noargs()));
    done(&mut f);
}

#[test]
fn call_rejects_unencodable_without_calling() {
    let mut f = ffa([]);
    // A response-type payload in a request would make arm-ffa panic.
    let bad = Interface::MsgSendDirectReq {
        src_id: 1,
        dst_id: 2,
        args: DirectMsgArgs::VersionResp { version: None },
    };
    assert_eq!(f.call(&bad), Err(Error::Ffa(FfaError::InvalidParameters)));
    let bad = Interface::MsgSendDirectResp {
        src_id: 1,
        dst_id: 2,
        args: DirectMsgArgs::PowerWarmBootReq {
            boot_type: arm_ffa::interface_args::WarmBootType::ExitFromLowPower,
        },
    };
    assert_eq!(f.call(&bad), Err(Error::Ffa(FfaError::InvalidParameters)));
    assert_eq!(
        f.version(Version(0x8000, 0)),
        Err(Error::Ffa(FfaError::InvalidParameters))
    );
    // FFA_MSG_WAIT64 is v1.3.
    let wait64 = Interface::MsgWait {
        flags: MsgWaitFlags::default(),
        is_32bit: false,
    };
    assert_eq!(f.call(&wait64), Err(Error::Ffa(FfaError::NotSupported)));
    assert!(calls(&mut f).is_empty());
}

#[test]
fn version_negotiation() {
    let mut f = ffa([raw(&[0x0001_0002])]);
    assert_eq!(f.version(V1_2), Ok(V1_2));
    assert_eq!(calls(&mut f), vec![raw(&[0x8400_0063, 0x0001_0002, 0])]);
    assert_eq!(f.negotiated(), V1_2);

    // A newer callee: we keep our version. Upper bits of x0 are ignored.
    let mut f = ffa([raw(&[0xdead_beef_0001_0005])]);
    assert_eq!(f.version(V1_2), Ok(Version(1, 5)));
    assert_eq!(f.negotiated(), V1_2);

    // An older callee: we speak its version.
    let mut f = ffa([raw(&[0x0001_0001])]);
    assert_eq!(f.version(V1_2), Ok(V1_1));
    assert_eq!(f.negotiated(), V1_1);
    // DIRECT_REQ2 is v1.2: refused without a call.
    assert_eq!(
        f.direct_req2(1, 2, uuid::Uuid::nil(), [0; 14]),
        Err(Error::Ffa(FfaError::NotSupported))
    );
    done(&mut f);
}

#[test]
fn version_failures_keep_the_version() {
    for (answer, expected) in [
        (0xffff_ffff, Error::Ffa(FfaError::NotSupported)),
        (0x0002_0000, Error::Ffa(FfaError::NotSupported)),
        (0x0001_0000, Error::Ffa(FfaError::NotSupported)),
        (0x8000_0001, Error::Decode(0x8000_0001)),
    ] {
        let mut f = ffa([raw(&[answer])]);
        assert_eq!(f.version(V1_2), Err(expected), "answer {answer:#x}");
        assert_eq!(f.negotiated(), V1_2);
    }
}

#[test]
fn decoding_below_v1_2_does_not_panic() {
    let mut f = ffa([
        raw(&[0x0001_0001]),
        regs(Interface::Success {
            target_info: TargetInfo::default(),
            args: SuccessArgs::Args64([7; 16]),
        }),
    ]);
    f.version(V1_2).unwrap();
    assert_eq!(f.negotiated(), V1_1);
    // A SUCCESS64 answer would trip arm-ffa's v1.2 assertion if decoded at v1.1.
    assert_eq!(f.id_get(), Err(Error::Unexpected));
}

#[test]
fn id_get() {
    let mut f = ffa([success([0x8001, 0, 0, 0, 0, 0])]);
    assert_eq!(f.id_get(), Ok(0x8001));
    assert_eq!(calls(&mut f), vec![raw(&[0x8400_0069])]);
}

#[test]
fn rxtx_map_and_release() {
    let mut f = ffa([ok(), ok(), error(FfaError::Denied)]);
    f.rxtx_map(0x1000, 0x2000, 1).unwrap();
    f.rx_release().unwrap();
    assert_eq!(f.rx_release(), Err(Error::Ffa(FfaError::Denied)));
    assert_eq!(
        calls(&mut f),
        vec![
            raw(&[0xc400_0066, 0x1000, 0x2000, 1]),
            raw(&[0x8400_0065, 0]),
            raw(&[0x8400_0065, 0]),
        ]
    );
}

fn sample_partition() -> PartitionInfo {
    PartitionInfo {
        uuid: crate::ids::VIRTIO_MSG_DEVICE_UUID,
        partition_id: 0x8001,
        partition_id_type: PartitionIdType::PeEndpoint {
            execution_ctx_count: 1,
        },
        props: PartitionProperties {
            support_direct_req_rec: true,
            support_direct_req_send: false,
            support_indirect_msg: false,
            support_notif_rec: false,
            subscribe_vm_created: false,
            subscribe_vm_destroyed: false,
            is_aarch64: true,
            support_direct_req2_rec: Some(true),
            support_direct_req2_send: Some(false),
        },
    }
}

#[test]
fn partition_info_get() {
    let info = sample_partition();
    let mut rx = vec![0; 48];
    PartitionInfo::pack(V1_2, &[info, info], &mut rx, true);
    let mut f = ffa([]);
    push(&mut f, success([2, 24, 0, 0, 0, 0]), Some(rx));
    push(&mut f, ok(), None);
    assert_eq!(
        f.partition_info_get(crate::ids::VIRTIO_MSG_DEVICE_UUID),
        Ok(vec![info, info])
    );
    let uuid = arm_ffa::UuidHelper::to_u32_regs(crate::ids::VIRTIO_MSG_DEVICE_UUID).map(u64::from);
    assert_eq!(
        calls(&mut f),
        vec![
            raw(&[0x8400_0068, uuid[0], uuid[1], uuid[2], uuid[3], 0]),
            raw(&[0x8400_0065]),
        ]
    );
}

/// A v1.3 SPMC (Hafnium) writes 48-byte descriptors to a v1.2 caller: step by the reported
/// size and read the known first 24 bytes of each.
#[test]
fn partition_info_get_with_longer_descriptors() {
    let info = sample_partition();
    let mut packed = vec![0; 48];
    PartitionInfo::pack(V1_2, &[info, info], &mut packed, true);
    let mut rx = vec![0xEE; 96];
    rx[..24].copy_from_slice(&packed[..24]);
    rx[48..72].copy_from_slice(&packed[24..]);
    let mut f = ffa([]);
    push(&mut f, success([2, 48, 0, 0, 0, 0]), Some(rx));
    push(&mut f, ok(), None);
    assert_eq!(
        f.partition_info_get(crate::ids::VIRTIO_MSG_DEVICE_UUID),
        Ok(vec![info, info])
    );
}

#[test]
fn partition_info_get_releases_rx_on_bad_answers() {
    for (args, expected) in [
        (
            [1, 16, 0, 0, 0, 0],
            Error::Descriptor(DescriptorError::Malformed),
        ),
        (
            [1000, 24, 0, 0, 0, 0],
            Error::Descriptor(DescriptorError::TooSmall),
        ),
        (
            [u32::MAX, 24, 0, 0, 0, 0],
            Error::Descriptor(DescriptorError::TooSmall),
        ),
    ] {
        let mut f = ffa([success(args), ok()]);
        assert_eq!(f.partition_info_get(uuid::Uuid::nil()), Err(expected));
        assert_eq!(calls(&mut f)[1], raw(&[0x8400_0065]));
        done(&mut f);
    }
    // A failed call leaves no RX buffer to release.
    let mut f = ffa([error(FfaError::InvalidParameters)]);
    assert_eq!(
        f.partition_info_get(uuid::Uuid::nil()),
        Err(Error::Ffa(FfaError::InvalidParameters))
    );
    assert_eq!(calls(&mut f).len(), 1);
}

fn req2(src: u16, dst: u16, payload: [u64; 14]) -> Interface {
    Interface::MsgSendDirectReq2 {
        src_id: src,
        dst_id: dst,
        uuid: crate::ids::VIRTIO_MSG_DEVICE_UUID,
        args: DirectMsg2Args(payload),
    }
}

fn resp2(src: u16, dst: u16, payload: [u64; 14]) -> Interface {
    Interface::MsgSendDirectResp2 {
        src_id: src,
        dst_id: dst,
        args: DirectMsg2Args(payload),
    }
}

#[test]
fn msg_wait_returns_the_next_message() {
    let request = req2(0x0001, 0x8001, [5; 14]);
    let mut f = ffa([regs(request)]);
    assert_eq!(f.msg_wait(), Ok(request));
    assert_eq!(calls(&mut f), vec![raw(&[0x8400_006b, 0, 0])]);
}

#[test]
fn direct_req2_encoding() {
    let payload: [u64; 14] = core::array::from_fn(|i| 0x1000 + i as u64);
    let answer: [u64; 14] = core::array::from_fn(|i| 0x2000 + i as u64);
    let mut f = ffa([regs(resp2(0x8001, 0x0001, answer))]);
    assert_eq!(
        f.direct_req2(0x0001, 0x8001, crate::ids::VIRTIO_MSG_DEVICE_UUID, payload),
        Ok(answer)
    );
    let sent = calls(&mut f)[0];
    assert_eq!(sent[0], 0xc400_008d);
    assert_eq!(sent[1], 0x0001_8001);
    assert_eq!(sent[2], 0xa14a_9824_b528_60c6);
    assert_eq!(sent[3], 0xf0ab_2261_da77_e79d);
    assert_eq!(sent[4..], payload);
}

#[test]
fn direct_req2_resumes_interrupts_and_yields() {
    let mut f = ffa([
        regs(Interface::Interrupt {
            target_info: TargetInfo {
                endpoint_id: 0x8001,
                vcpu_id: 3,
            },
            interrupt_id: 0,
            is_32bit: true,
        }),
        raw(&[0x8400_006c, 0x8001_0002]),
        // A YIELD without an endpoint in w1: RUN targets `dst`.
        raw(&[0x8400_006c, 0x0000_0001]),
        regs(resp2(0x8001, 0x0001, [9; 14])),
    ]);
    assert_eq!(
        f.direct_req2(0x0001, 0x8001, crate::ids::VIRTIO_MSG_DEVICE_UUID, [1; 14]),
        Ok([9; 14])
    );
    let sent = calls(&mut f);
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[1], raw(&[0x8400_006d, 0x8001_0003]));
    assert_eq!(sent[2], raw(&[0x8400_006d, 0x8001_0002]));
    assert_eq!(sent[3], raw(&[0x8400_006d, 0x8001_0001]));
}

#[test]
fn direct_req2_rejects_bad_answers() {
    // Response from the wrong endpoint.
    let mut f = ffa([regs(resp2(0x8002, 0x0001, [0; 14]))]);
    assert_eq!(
        f.direct_req2(0x0001, 0x8001, uuid::Uuid::nil(), [0; 14]),
        Err(Error::Unexpected)
    );
    // An answer that is not a response.
    let mut f = ffa([ok()]);
    assert_eq!(
        f.direct_req2(0x0001, 0x8001, uuid::Uuid::nil(), [0; 14]),
        Err(Error::Unexpected)
    );
    // FFA_ERROR, also after a resumption.
    let mut f = ffa([raw(&[0x8400_006c, 0x8001_0000]), error(FfaError::Busy)]);
    assert_eq!(
        f.direct_req2(0x0001, 0x8001, uuid::Uuid::nil(), [0; 14]),
        Err(Error::Ffa(FfaError::Busy))
    );
}

/// A conduit answering every call with FFA_INTERRUPT.
struct Interrupting(u32);

impl Conduit for Interrupting {
    fn call(&mut self, _regs: [u64; 18]) -> [u64; 18] {
        self.0 += 1;
        raw(&[0x8400_0062, 0x8001_0000])
    }
    fn tx(&mut self) -> &mut [u8] {
        &mut []
    }
    fn rx(&self) -> &[u8] {
        &[]
    }
}

#[test]
fn direct_req2_resumption_is_bounded() {
    let mut f = Ffa::new(Interrupting(0));
    assert_eq!(
        f.direct_req2(0x0001, 0x8001, uuid::Uuid::nil(), [0; 14]),
        Err(Error::Unexpected)
    );
    assert_eq!(f.conduit().0, MAX_RESUMES + 1);
}

#[test]
fn direct_resp2_returns_the_next_message() {
    let next = req2(0x0002, 0x8001, [3; 14]);
    let mut f = ffa([regs(next)]);
    let payload: [u64; 14] = core::array::from_fn(|i| i as u64);
    assert_eq!(f.direct_resp2(0x8001, 0x0001, payload), Ok(next));
    let sent = calls(&mut f)[0];
    assert_eq!(sent[..4], [0xc400_008e, 0x8001_0001, 0, 0]);
    assert_eq!(sent[4..], payload);
}

#[test]
fn direct_resp_framework_message() {
    let next = req2(0x0002, 0x8001, [3; 14]);
    let mut f = ffa([regs(next)]);
    let ack = DirectMsgArgs::VmCreatedAck {
        sp_status: arm_ffa::interface_args::VmAvailabilityStatus::Success,
    };
    assert_eq!(f.direct_resp(0x8001, 0x0000, ack), Ok(next));
    assert_eq!(
        calls(&mut f)[0],
        raw(&[0x8400_0070, 0x8001_0000, 0x8000_0005, 0])
    );
}

#[test]
fn error_answer_encoding() {
    let next = req2(0x0002, 0x8001, [3; 14]);
    let mut f = ffa([regs(next)]);
    assert_eq!(f.error_answer(FfaError::Busy), Ok(next));
    assert_eq!(calls(&mut f), vec![raw(&[0x8400_0060, 0, 0xffff_fffc])]);
}

fn shared(handle: u64) -> MemTransaction {
    MemTransaction {
        sender: 0x0001,
        attributes: ATTR_NORMAL_WB_INNER_SHAREABLE,
        flags: 0,
        handle,
        tag: 0,
        receivers: vec![Receiver {
            endpoint: 0x8001,
            access: DataAccess::ReadWrite,
            executable: false,
        }],
        ranges: vec![MemRange {
            address: 0x4000_0000,
            page_count: 4,
        }],
    }
}

fn packed(desc: &MemTransaction, version: Version) -> Vec<u8> {
    let mut buf = vec![0; 4096];
    let len = desc.pack(version, &mut buf).unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn mem_send_encoding() {
    let desc = shared(0);
    let bytes = packed(&desc, V1_2);
    let len = bytes.len() as u64;
    for (kind, fid) in [
        (ShareKind::Share, 0x8400_0073),
        (ShareKind::Lend, 0x8400_0072),
        (ShareKind::Donate, 0x8400_0071),
    ] {
        let mut f = ffa([success([0x5566_7788, 0x1122_3344, 0, 0, 0, 0])]);
        assert_eq!(f.mem_send(kind, &desc), Ok(0x1122_3344_5566_7788));
        assert_eq!(calls(&mut f), vec![raw(&[fid, len, len, 0, 0])]);
        assert_eq!(f.conduit().tx_seen[0][..bytes.len()], bytes[..]);
    }
    // The descriptor follows the negotiated version.
    let mut f = ffa([raw(&[0x0001_0001]), success([1, 0, 0, 0, 0, 0])]);
    f.version(V1_2).unwrap();
    f.mem_send(ShareKind::Share, &desc).unwrap();
    let v11 = packed(&desc, V1_1);
    assert_eq!(f.conduit().tx_seen[1][..v11.len()], v11[..]);
}

fn retrieve_req(handle: u64) -> MemTransaction {
    MemTransaction::retrieve_request(
        0x0001,
        handle,
        0,
        ShareKind::Share,
        Receiver {
            endpoint: 0x8001,
            access: DataAccess::ReadWrite,
            executable: false,
        },
    )
    .expect("room for one receiver")
}

fn retrieve_resp(total: usize, frag: usize) -> [u64; 18] {
    regs(Interface::MemRetrieveResp {
        total_len: u32::try_from(total).unwrap(),
        frag_len: u32::try_from(frag).unwrap(),
    })
}

#[test]
fn mem_retrieve_decodes_a_v1_2_response() {
    let handle = 0xaaaa_0000_0000_0001;
    let req = retrieve_req(handle);
    let mut resp = shared(handle);
    resp.attributes |= crate::memory::ATTR_NON_SECURE;
    resp.flags = ShareKind::Share.type_flag();
    let bytes = packed(&resp, V1_2);
    assert_eq!(bytes[24], 32, "v1.2 EMAD size");

    let mut f = ffa([]);
    push(&mut f, retrieve_resp(bytes.len(), bytes.len()), Some(bytes));
    push(&mut f, ok(), None);
    assert_eq!(f.mem_retrieve(&req), Ok(resp));

    let req_bytes = packed(&req, V1_2);
    let len = req_bytes.len() as u64;
    assert_eq!(
        calls(&mut f),
        vec![raw(&[0x8400_0074, len, len, 0, 0]), raw(&[0x8400_0065])]
    );
    assert_eq!(f.conduit().tx_seen[0][..req_bytes.len()], req_bytes[..]);
    done(&mut f);
}

#[test]
fn mem_retrieve_reassembles_fragments() {
    let handle = 0x0000_0002_0000_0001;
    let mut resp = shared(handle);
    resp.ranges = (0..8)
        .map(|i| MemRange {
            address: 0x4000_0000 + i * 0x10_0000,
            page_count: 1,
        })
        .collect();
    let bytes = packed(&resp, V1_2);
    let (first, second) = bytes.split_at(64);

    let mut f = ffa([]);
    push(&mut f, retrieve_resp(bytes.len(), 64), Some(first.to_vec()));
    push(&mut f, ok(), None);
    push(
        &mut f,
        regs(Interface::MemFragTx {
            handle: Handle(handle),
            frag_len: u32::try_from(second.len()).unwrap(),
            endpoint_id: 0,
        }),
        Some(second.to_vec()),
    );
    push(&mut f, ok(), None);
    assert_eq!(f.mem_retrieve(&retrieve_req(handle)), Ok(resp));
    let sent = calls(&mut f);
    assert_eq!(sent[1], raw(&[0x8400_0065]));
    assert_eq!(
        sent[2],
        raw(&[0x8400_007a, 0x0000_0001, 0x0000_0002, 64, 0])
    );
    assert_eq!(sent[3], raw(&[0x8400_0065]));
    done(&mut f);
}

fn relinquish_bytes(handle: u64) -> Vec<u8> {
    let mut buf = vec![0; 18];
    MemRelinquishDesc {
        handle,
        flags: 0,
        endpoints: vec![0x8001],
    }
    .pack(&mut buf)
    .unwrap();
    buf
}

#[test]
fn mem_retrieve_relinquishes_on_a_bad_response() {
    let handle = 7;
    let mut garbage = packed(&shared(handle), V1_2);
    garbage[28] = 0; // EMAD count 0.
    let mut f = ffa([]);
    push(
        &mut f,
        retrieve_resp(garbage.len(), garbage.len()),
        Some(garbage.clone()),
    );
    push(&mut f, ok(), None);
    push(&mut f, ok(), None);
    assert_eq!(
        f.mem_retrieve(&retrieve_req(handle)),
        Err(Error::Descriptor(DescriptorError::Malformed))
    );
    let sent = calls(&mut f);
    assert_eq!(sent[1], raw(&[0x8400_0065]));
    assert_eq!(sent[2], raw(&[0x8400_0076]));
    assert_eq!(f.conduit().tx_seen[2][..18], relinquish_bytes(handle)[..]);
    done(&mut f);

    // Fragment lengths that do not add up: frag_len beyond total, zero, beyond RX, too big.
    for (total, frag) in [
        (100, 101),
        (100, 0),
        (8192, 8192),
        (MAX_RETRIEVE_LEN + 1, 16),
    ] {
        let mut f = ffa([retrieve_resp(total, frag), ok(), ok()]);
        assert!(
            f.mem_retrieve(&retrieve_req(handle)).is_err(),
            "{total} {frag}"
        );
        let sent = calls(&mut f);
        assert_eq!(sent[1], raw(&[0x8400_0065]), "{total} {frag}");
        assert_eq!(sent[2], raw(&[0x8400_0076]), "{total} {frag}");
        done(&mut f);
    }

    // The SPMC refusing the retrieve: nothing to release or relinquish.
    let mut f = ffa([error(FfaError::Denied)]);
    assert_eq!(
        f.mem_retrieve(&retrieve_req(handle)),
        Err(Error::Ffa(FfaError::Denied))
    );
    assert_eq!(calls(&mut f).len(), 1);
}

#[test]
fn mem_relinquish_and_reclaim() {
    let mut f = ffa([ok(), ok()]);
    f.mem_relinquish(0x1_0000_0002, 0x8001).unwrap();
    f.mem_reclaim(0x1_0000_0002).unwrap();
    assert_eq!(
        calls(&mut f),
        vec![raw(&[0x8400_0076]), raw(&[0x8400_0077, 2, 1, 0])]
    );
    assert_eq!(
        f.conduit().tx_seen[0][..18],
        relinquish_bytes(0x1_0000_0002)[..]
    );
    let desc = MemRelinquishDesc::unpack(&f.conduit().tx_seen[0]).unwrap();
    assert_eq!(desc.flags & RELINQUISH_FLAG_CLEAR, 0);
}

#[test]
fn notifications() {
    let mut f = ffa([
        ok(),
        ok(),
        success([0x0000_0004, 0x8000_0000, 0, 0, 0, 0]),
        error(FfaError::Denied),
    ]);
    f.notification_bind(0x8001, 0x0001, 0x1_0000_0004).unwrap();
    f.notification_set(0x8001, 0x0001, 0x1_0000_0004).unwrap();
    assert_eq!(f.notification_get(0x0001), Ok(0x8000_0000_0000_0004));
    assert_eq!(
        f.notification_set(0x8001, 0x0001, 1),
        Err(Error::Ffa(FfaError::Denied))
    );
    assert_eq!(
        calls(&mut f),
        vec![
            raw(&[0x8400_007f, 0x8001_0001, 0, 4, 1]),
            raw(&[0x8400_0081, 0x8001_0001, 0, 4, 1]),
            raw(&[0x8400_0082, 0x0000_0001, 1]),
            raw(&[0x8400_0081, 0x8001_0001, 0, 1, 0]),
        ]
    );
}

#[test]
fn console_log_splits() {
    let text: Vec<u8> = (0..26u8).cycle().take(300).map(|i| b'a' + i).collect();
    let mut f = ffa([ok(), ok(), ok()]);
    f.console_log(&text).unwrap();
    let sent = calls(&mut f);
    assert_eq!(sent.len(), 3);
    let mut joined = Vec::new();
    for (regs, count) in sent.iter().zip([128u64, 128, 44]) {
        assert_eq!(regs[0], 0xc400_008a);
        assert_eq!(regs[1], count);
        let bytes: Vec<u8> = regs[2..].iter().flat_map(|r| r.to_le_bytes()).collect();
        joined.extend_from_slice(&bytes[..usize::try_from(count).unwrap()]);
    }
    assert_eq!(joined, text);

    let mut f = ffa([]);
    f.console_log(b"").unwrap();
    assert!(calls(&mut f).is_empty());

    let mut f = ffa([error(FfaError::NotSupported)]);
    assert_eq!(f.console_log(b"x"), Err(Error::Ffa(FfaError::NotSupported)));
}

mod hot_path {
    //! The message loop's two hot calls, decoded and encoded without `arm-ffa`, give exactly
    //! what `arm-ffa` gives; every other call is left to it.

    use proptest::prelude::*;

    use super::super::{decode_regs, encode_regs};
    use arm_ffa::{Interface, Version, interface_args::DirectMsg2Args};

    fn generic_decode(version: Version, regs: &[u64; 18]) -> Option<Interface> {
        Interface::from_regs(version, regs).ok()
    }

    proptest! {
        #[test]
        fn direct_req2_decodes_as_arm_ffa_does(
            hi in any::<u32>(), x1 in any::<u64>(), x2 in any::<u64>(), x3 in any::<u64>(),
            message in proptest::array::uniform14(any::<u64>()),
        ) {
            let mut regs = [0u64; 18];
            // The upper half of x0 is ignored by both (SMC64 function ids are 32 bits).
            regs[0] = u64::from(hi) << 32 | 0xc400_008d;
            regs[1] = x1;
            regs[2] = x2;
            regs[3] = x3;
            regs[4..].copy_from_slice(&message);
            for version in [Version(1, 2), Version(1, 3)] {
                let fast = decode_regs(version, &regs).ok();
                prop_assert_eq!(fast, generic_decode(version, &regs));
                let is_req2 = matches!(fast, Some(Interface::MsgSendDirectReq2 { .. }));
                prop_assert!(is_req2);
            }
        }

        #[test]
        fn direct_resp2_encodes_as_arm_ffa_does(
            src_id in any::<u16>(), dst_id in any::<u16>(),
            message in proptest::array::uniform14(any::<u64>()),
        ) {
            let iface = Interface::MsgSendDirectResp2 { src_id, dst_id, args: DirectMsg2Args(message) };
            for version in [Version(1, 2), Version(1, 3)] {
                let mut fast = [0u64; 18];
                encode_regs(&iface, version, &mut fast).unwrap();
                let mut generic = [0u64; 18];
                iface.to_regs(version, &mut generic);
                prop_assert_eq!(fast, generic);
            }
        }
    }

    #[test]
    fn below_1_2_the_hot_calls_are_refused_as_arm_ffa_refuses_them() {
        let mut regs = [0u64; 18];
        regs[0] = 0xc400_008d;
        // Decoding is at 1.2 or later in `Ffa` (answers), but the function itself follows
        // `arm-ffa` at any version: FFA_MSG_SEND_DIRECT_REQ2 does not exist in 1.1.
        assert!(decode_regs(Version(1, 1), &regs).is_err());
        assert!(Interface::from_regs(Version(1, 1), &regs).is_err());
        let iface = Interface::MsgSendDirectResp2 {
            src_id: 1,
            dst_id: 2,
            args: DirectMsg2Args([7; 14]),
        };
        let mut out = [0u64; 18];
        assert!(encode_regs(&iface, Version(1, 1), &mut out).is_err());
        assert_eq!(out, [0; 18], "nothing written for a refused interface");
    }

    #[test]
    fn other_calls_go_through_arm_ffa() {
        let iface = Interface::IdGet;
        let mut fast = [0u64; 18];
        encode_regs(&iface, Version(1, 2), &mut fast).unwrap();
        let mut generic = [0u64; 18];
        iface.to_regs(Version(1, 2), &mut generic);
        assert_eq!(fast, generic);
        let mut regs = [0u64; 18];
        regs[0] = 0x8400_0061; // FFA_SUCCESS32
        assert_eq!(
            decode_regs(Version(1, 2), &regs).ok(),
            generic_decode(Version(1, 2), &regs)
        );
    }
}
