//! FF-A memory transaction descriptors: `MemTransaction::unpack` (v1.1 and v1.2 layouts) and
//! `MemRelinquishDesc::unpack` on arbitrary bytes never panic, and what unpacks packs and
//! unpacks to the same value; and a retrieve response reassembled from fragments
//! (`Ffa::mem_retrieve`) from an SPMC whose every answer and every RX buffer the fuzzer writes:
//! it ends (a bounded number of calls), never panics, and what it returns packs again.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use ffa::{
    Conduit, Ffa,
    arm_ffa::{
        FfaError, Interface, Version,
        interface_args::{SuccessArgs, TargetInfo},
        memory_management::Handle,
    },
    conduit::low32,
    memory::{DataAccess, MemRelinquishDesc, MemTransaction, Receiver, ShareKind},
};
use libfuzzer_sys::fuzz_target;

const VERSIONS: [Version; 2] = [Version(1, 1), Version(1, 2)];
/// Most calls one retrieve may take before it counts as a livelock.
const MAX_CALLS: usize = 10_000;

/// One answer of the scripted SPMC.
#[derive(Arbitrary, Debug)]
enum Answer {
    RetrieveResp { total_len: u32, frag_len: u32 },
    FragTx { same_handle: bool, frag_len: u32 },
    Success,
    Error,
}

/// An SPMC answering from the fuzzer's script, RX refilled from it for each answer.
struct Script<'a> {
    input: Unstructured<'a>,
    handle: u64,
    calls: usize,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl Conduit for Script<'_> {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        self.calls += 1;
        assert!(self.calls < MAX_CALLS, "the retrieve does not end");
        let fid = low32(regs[0]);
        let answer = match Answer::arbitrary(&mut self.input) {
            Ok(a) => a,
            Err(_) => Answer::Error,
        };
        // The fuzzer writes the RX buffer that comes with this answer.
        let n = self.input.len().min(self.rx.len());
        let chunk = self.input.bytes(n).unwrap_or_default();
        self.rx.fill(0);
        self.rx[..chunk.len()].copy_from_slice(chunk);
        let iface = match answer {
            // A fragmented-transfer answer only makes sense for these two calls, but the
            // fuzzer may give any answer to any call.
            Answer::RetrieveResp {
                total_len,
                frag_len,
            } => Interface::MemRetrieveResp {
                total_len,
                frag_len,
            },
            Answer::FragTx {
                same_handle,
                frag_len,
            } => Interface::MemFragTx {
                handle: Handle(if same_handle {
                    self.handle
                } else {
                    !self.handle
                }),
                frag_len,
                endpoint_id: 0,
            },
            Answer::Success => Interface::Success {
                target_info: TargetInfo::default(),
                args: SuccessArgs::Args32([0; 6]),
            },
            Answer::Error => Interface::Error {
                target_info: TargetInfo::default(),
                error_code: FfaError::Denied,
                error_arg: 0,
                is_32bit: true,
            },
        };
        let _ = fid;
        let mut out = [0u64; 18];
        iface.to_regs(Version(1, 2), &mut out);
        out
    }

    fn tx(&mut self) -> &mut [u8] {
        &mut self.tx
    }

    fn rx(&self) -> &[u8] {
        &self.rx
    }
}

fn round_trip(version: Version, desc: &MemTransaction) {
    let len = desc
        .packed_len(version)
        .expect("an unpacked descriptor has a length");
    let mut buf = vec![0u8; len];
    let n = desc.pack(version, &mut buf).expect("and packs");
    let again = MemTransaction::unpack(version, &buf[..n]).expect("and unpacks again");
    assert_eq!(&again, desc);
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else {
        return;
    };
    let version = VERSIONS[usize::from(select & 1)];
    if select & 2 == 0 {
        if let Ok(desc) = MemTransaction::unpack(version, rest) {
            round_trip(version, &desc);
        }
        if let Ok(desc) = MemRelinquishDesc::unpack(rest) {
            let mut buf = vec![0u8; desc.packed_len().expect("length")];
            let n = desc.pack(&mut buf).expect("packs");
            assert_eq!(MemRelinquishDesc::unpack(&buf[..n]).expect("unpacks"), desc);
        }
        return;
    }
    let handle = 0x1234_5678_9abc;
    let mut ffa = Ffa::new(Script {
        input: Unstructured::new(rest),
        handle,
        calls: 0,
        rx: vec![0; 4096],
        tx: vec![0; 4096],
    });
    let _ = ffa.version(version);
    let req = MemTransaction::retrieve_request(
        1,
        handle,
        0,
        ShareKind::Share,
        Receiver {
            endpoint: 0x8001,
            access: DataAccess::ReadWrite,
            executable: false,
        },
    )
    .expect("room for one receiver");
    if let Ok(resp) = ffa.mem_retrieve(&req) {
        round_trip(ffa.negotiated(), &resp);
    }
});
