//! Tests of memory sharing (`sim/memory.rs`, `sim/ns_memory.rs`): FFA_MEM_SHARE/LEND,
//! retrieve, relinquish and reclaim, mapping through the `SimMapper` (`sim/mapper.rs`), and
//! a VM's access to its own memory.

use std::sync::mpsc;

use arm_ffa::{FfaError, Interface, interface_args::DirectMsgArgs};

use super::support::*;
use crate::{
    calls::Ffa,
    conduit::Conduit,
    memory::{
        ATTR_NORMAL_WB_INNER_SHAREABLE, DataAccess, MapError, MemRange, MemTransaction, NsMapper,
        ShareKind,
    },
    sim::*,
};

#[test]
fn share_retrieve_access_relinquish_reclaim() {
    let mut env = Env::new();
    let pa = env.vm.alloc(2);
    env.vm.write(pa, b"hello").unwrap();
    let range = MemRange {
        address: pa,
        page_count: 2,
    };
    let handle = env
        .ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(vec![range], DataAccess::ReadWrite),
        )
        .unwrap();
    assert_eq!(env.world.outstanding_handles(), vec![handle]);
    env.vm.write(pa + 8, b"!").unwrap(); // A sharer keeps access.

    let (resp, emad_size, va) = env.on_sp(move |ffa, mapper| {
        let resp = ffa.mem_retrieve(&retrieve_req(handle, 0, VM)).unwrap();
        // The raw response (still in the RX buffer) uses the v1.2 layout: 32-byte EMADs.
        let rx = ffa.conduit().rx();
        let emad_size = u32::from_le_bytes(rx[24..28].try_into().unwrap());
        let va = mapper.map(resp.ranges[0], true).unwrap();
        let mut buf = [0; 9];
        mapper.read(va, &mut buf).unwrap();
        assert_eq!(&buf, b"hello\0\0\0!");
        mapper.write(va + 4096 + 100, b"from the sp").unwrap();
        (resp, emad_size, va)
    });
    assert_eq!(emad_size, 32);
    assert_eq!(resp.handle, handle);
    assert_eq!(resp.sender, VM);
    assert_eq!(resp.ranges, vec![range]);
    assert_eq!(resp.receivers[0].access, DataAccess::ReadWrite);
    assert_eq!(
        resp.attributes,
        ATTR_NORMAL_WB_INNER_SHAREABLE | crate::memory::ATTR_NON_SECURE
    );
    assert_eq!(ShareKind::from_flags(resp.flags), Some(ShareKind::Share));
    assert_ne!(va, pa, "mapped at a virtual address of its own");
    assert!(env.world.is_retrieved(handle, SP));
    let mut buf = [0; 11];
    env.vm.read(pa + 4096 + 100, &mut buf).unwrap();
    assert_eq!(&buf, b"from the sp");

    assert_eq!(
        env.ffa.mem_reclaim(handle),
        ffa_err(FfaError::Denied),
        "still retrieved"
    );
    env.world.assert_no_faults();

    // Relinquish, then touch the still-mapped range: a fault.
    let after = env.on_sp(move |ffa, mapper| {
        ffa.mem_relinquish(handle, SP).unwrap();
        let again = ffa.mem_relinquish(handle, SP);
        let mut b = [0; 4];
        let read = mapper.read(va, &mut b);
        mapper.unmap(va, 2);
        (again, read)
    });
    assert_eq!(
        after,
        (
            ffa_err(FfaError::InvalidParameters),
            Err(MapError::NotMapped)
        )
    );
    let faults = env.world.take_faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(
        (faults[0].endpoint, faults[0].addr, faults[0].write),
        (SP, va, false)
    );
    assert!(
        faults[0].reason.contains("relinquish"),
        "{}",
        faults[0].reason
    );

    env.ffa.mem_reclaim(handle).unwrap();
    assert!(env.world.outstanding_handles().is_empty());
    assert_eq!(
        env.ffa.mem_reclaim(handle),
        ffa_err(FfaError::InvalidParameters),
        "handle gone"
    );
    env.vm.free(pa, 2).unwrap();
    env.world.assert_no_faults();
}

#[test]
fn retrieve_refusals() {
    let mut env = Env::new();
    let sp2 = env.world.spawn_sp(SpInfo::new(SP2, vec![OTHER]), echo_sp);
    let pa = env.vm.alloc(1);
    let range = MemRange {
        address: pa,
        page_count: 1,
    };
    let mut desc = share_desc(vec![range], DataAccess::ReadOnly);
    desc.tag = 9;
    let handle = env.ffa.mem_send(ShareKind::Share, &desc).unwrap();
    desc.receivers[0].endpoint = SP2;
    let not_mine = env.ffa.mem_send(ShareKind::Share, &{
        let pa2 = env.vm.alloc(1);
        let mut d = desc.clone();
        d.ranges = vec![MemRange {
            address: pa2,
            page_count: 1,
        }];
        d
    });
    let not_mine = not_mine.unwrap();

    let results = env.on_sp(move |ffa, mapper| {
        let get =
            |ffa: &mut Ffa<SimConduit>, req: &MemTransaction| ffa.mem_retrieve(req).map(|_| ());
        let mut out = vec![
            get(ffa, &retrieve_req(not_mine, 9, VM)),
            get(ffa, &retrieve_req(handle, 8, VM)),
            get(ffa, &retrieve_req(handle, 9, VM2)),
            get(ffa, &retrieve_req(0x1234, 9, VM)),
            get(ffa, &retrieve_req(handle, 9, VM)), // asks RW, was shared RO
        ];
        let mut ro = retrieve_req(handle, 9, VM);
        ro.receivers[0].access = DataAccess::ReadOnly;
        let mut lend = ro.clone();
        lend.flags = ShareKind::Lend.type_flag();
        out.push(get(ffa, &lend));
        out.push(get(ffa, &ro));
        out.push(get(ffa, &ro)); // second retrieval
        // Read-only: no writable mapping, no writes through a read-only one.
        let w = mapper.map(range, true).map(|_| ());
        let va = mapper.map(range, false).unwrap();
        let write = mapper.write(va, b"x");
        let straddle = mapper.read(va + 4090, &mut [0; 8]);
        let elsewhere = mapper.read(pa, &mut [0; 1]); // the physical address is not mapped
        (out, w, write, straddle, elsewhere)
    });
    let (out, w, write, straddle, elsewhere) = results;
    assert_eq!(
        out,
        vec![
            ffa_err(FfaError::InvalidParameters), // not a receiver of that handle
            ffa_err(FfaError::InvalidParameters), // wrong tag
            ffa_err(FfaError::Denied),            // wrong sender
            ffa_err(FfaError::InvalidParameters), // unknown handle
            ffa_err(FfaError::Denied),            // more access than granted
            ffa_err(FfaError::InvalidParameters), // wrong transaction type
            Ok(()),
            ffa_err(FfaError::Denied), // already retrieved
        ]
    );
    assert_eq!(w, Err(MapError::NotMapped));
    assert_eq!(write, Err(MapError::NotMapped));
    assert_eq!(straddle, Err(MapError::NotMapped));
    assert_eq!(elsewhere, Err(MapError::NotMapped));
    let reasons: Vec<&str> = env.world.take_faults().iter().map(|f| f.reason).collect();
    assert_eq!(
        reasons,
        vec![
            "write to memory retrieved read-only",
            "write to a read-only mapping",
            "access straddles the end of a mapping",
            "access to an address that is not mapped",
        ]
    );
    // The owner of the other handle is VM, but VM2 cannot reclaim either.
    let vm2 = env.world.add_vm(VM2);
    let mut other = vm_ffa(&vm2);
    assert_eq!(
        other.mem_reclaim(not_mine),
        ffa_err(FfaError::InvalidParameters)
    );
    env.ffa.mem_reclaim(not_mine).unwrap();
    env.world.shutdown();
    sp2.join().unwrap();
}

#[test]
fn retrieve_needs_rx_released() {
    let mut env = Env::new();
    let a = env.vm.alloc(1);
    let b = env.vm.alloc(1);
    let share = |ffa: &mut Ffa<SimConduit>, address| {
        ffa.mem_send(
            ShareKind::Share,
            &share_desc(
                vec![MemRange {
                    address,
                    page_count: 1,
                }],
                DataAccess::ReadWrite,
            ),
        )
        .unwrap()
    };
    let (ha, hb) = (share(&mut env.ffa, a), share(&mut env.ffa, b));
    let results = env.on_sp(move |ffa, _| {
        let raw = |ffa: &mut Ffa<SimConduit>, h| {
            let len = retrieve_req(h, 0, VM)
                .pack(V1_2, ffa.conduit().tx())
                .unwrap();
            let len = u32::try_from(len).unwrap();
            ffa.call(&Interface::MemRetrieveReq {
                total_len: len,
                frag_len: len,
                buf: None,
            })
            .map(|_| ())
        };
        let first = raw(ffa, ha);
        let busy = raw(ffa, hb);
        ffa.rx_release().unwrap();
        let second = raw(ffa, hb);
        ffa.rx_release().unwrap();
        [first, busy, second]
    });
    assert_eq!(results, [Ok(()), ffa_err(FfaError::Busy), Ok(())]);
}

#[test]
fn share_refusals() {
    let mut env = Env::new();
    let vm2 = env.world.add_vm(VM2);
    let mine = env.vm.alloc(4);
    let theirs = vm2.alloc(1);
    let send = |ffa: &mut Ffa<SimConduit>, desc: &MemTransaction| {
        ffa.mem_send(ShareKind::Share, desc).map(|_| ())
    };
    let one = |address, page_count| {
        share_desc(
            vec![MemRange {
                address,
                page_count,
            }],
            DataAccess::ReadWrite,
        )
    };

    assert_eq!(
        send(&mut env.ffa, &one(theirs, 1)),
        ffa_err(FfaError::Denied),
        "not owned"
    );
    assert_eq!(
        send(&mut env.ffa, &one(0x10_0000_0000, 1)),
        ffa_err(FfaError::Denied),
        "unallocated"
    );
    assert_eq!(
        send(&mut env.ffa, &one(mine, 0)),
        ffa_err(FfaError::InvalidParameters),
        "zero pages"
    );
    assert_eq!(
        send(&mut env.ffa, &one(mine + 3 * 4096, 2)),
        ffa_err(FfaError::Denied),
        "runs off the end"
    );
    let overlap = share_desc(
        vec![
            MemRange {
                address: mine,
                page_count: 2,
            },
            MemRange {
                address: mine + 4096,
                page_count: 1,
            },
        ],
        DataAccess::ReadWrite,
    );
    assert_eq!(
        send(&mut env.ffa, &overlap),
        ffa_err(FfaError::InvalidParameters),
        "overlap"
    );
    let mut d = one(mine, 1);
    d.sender = VM2;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::Denied),
        "sender is not the caller"
    );
    let mut d = one(mine, 1);
    d.receivers[0].endpoint = VM2;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "receiver is a VM"
    );
    d.receivers[0].endpoint = 0x8007;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "no such receiver"
    );
    d.receivers = vec![];
    assert!(send(&mut env.ffa, &d).is_err(), "no receivers");
    let mut d = one(mine, 1);
    d.receivers[0].endpoint = VM;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "sharing with itself"
    );
    let mut d = one(mine, 1);
    d.receivers[0].access = DataAccess::NotSpecified;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "access not specified"
    );
    let mut d = one(mine, 1);
    d.receivers[0].executable = true;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "executable"
    );
    let mut d = one(mine, 1);
    d.attributes = 0x24; // normal, write-back, non-shareable
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::Denied),
        "attributes"
    );
    d.attributes = ATTR_NORMAL_WB_INNER_SHAREABLE | crate::memory::ATTR_NON_SECURE;
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "NS bit"
    );
    let mut d = one(mine, 1);
    d.flags = 1; // clear: not for a share
    assert_eq!(
        send(&mut env.ffa, &d),
        ffa_err(FfaError::InvalidParameters),
        "clear flag"
    );

    // Misaligned constituent: patch the packed descriptor (pack refuses to write one).
    let len = one(mine, 1).pack(V1_2, env.ffa.conduit().tx()).unwrap();
    let constituent = 48 + 32 + 16;
    env.ffa.conduit().tx()[constituent..constituent + 8]
        .copy_from_slice(&(mine + 0x10).to_le_bytes());
    let len = u32::try_from(len).unwrap();
    let raw = |ffa: &mut Ffa<SimConduit>, total_len, frag_len| {
        ffa.call(&Interface::MemShare {
            total_len,
            frag_len,
            buf: None,
        })
        .map(|_| ())
    };
    assert_eq!(
        raw(&mut env.ffa, len, len),
        ffa_err(FfaError::InvalidParameters),
        "misaligned"
    );
    one(mine, 1).pack(V1_2, env.ffa.conduit().tx()).unwrap();
    assert_eq!(
        raw(&mut env.ffa, len + 16, len),
        ffa_err(FfaError::NotSupported),
        "fragmented"
    );
    assert_eq!(
        raw(&mut env.ffa, 8000, 8000),
        ffa_err(FfaError::InvalidParameters),
        "longer than TX"
    );

    // Already shared, and RX/TX pages, cannot be shared (again).
    env.ffa.mem_send(ShareKind::Share, &one(mine, 2)).unwrap();
    assert_eq!(
        send(&mut env.ffa, &one(mine + 4096, 2)),
        ffa_err(FfaError::Denied),
        "already shared"
    );
    let rx_page = 0x4000_0000 + 4096; // vm_ffa's RX buffer: VM 1's first allocation
    assert_eq!(
        send(&mut env.ffa, &one(rx_page, 1)),
        ffa_err(FfaError::Denied),
        "RX buffer page"
    );
    assert!(
        env.vm.free(mine, 1).is_err(),
        "shared pages cannot be freed"
    );
    env.world.take_faults();
    env.world.assert_no_faults();
}

#[test]
fn lend_takes_the_owners_access_until_reclaim() {
    let mut env = Env::new();
    let pa = env.vm.alloc(1);
    env.vm.write(pa, b"lent").unwrap();
    let mut desc = share_desc(
        vec![MemRange {
            address: pa,
            page_count: 1,
        }],
        DataAccess::ReadWrite,
    );
    desc.attributes = 0; // a lend to one borrower leaves the type unspecified
    let handle = env.ffa.mem_send(ShareKind::Lend, &desc).unwrap();
    let mut b = [0; 4];
    assert!(env.vm.read(pa, &mut b).is_err());
    assert_eq!(
        env.world.take_faults()[0].reason,
        "owner access to memory it lent"
    );
    let seen = env.on_sp(move |ffa, mapper| {
        let mut req = retrieve_req(handle, 0, VM);
        req.flags = ShareKind::Lend.type_flag();
        let resp = ffa.mem_retrieve(&req).unwrap();
        let va = mapper.map(resp.ranges[0], true).unwrap();
        let mut b = [0; 4];
        mapper.read(va, &mut b).unwrap();
        mapper.write(va, b"back").unwrap();
        mapper.unmap(va, 1);
        ffa.mem_relinquish(handle, SP).unwrap();
        b
    });
    assert_eq!(&seen, b"lent");
    env.ffa.mem_reclaim(handle).unwrap();
    env.vm.read(pa, &mut b).unwrap();
    assert_eq!(&b, b"back");
    env.world.assert_no_faults();
}

#[test]
fn map_needs_a_retrieval() {
    let mut env = Env::new();
    let pa = env.vm.alloc(1);
    let handle = env
        .ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(
                vec![MemRange {
                    address: pa,
                    page_count: 1,
                }],
                DataAccess::ReadWrite,
            ),
        )
        .unwrap();
    let result = env.on_sp(move |_, mapper| {
        let r = mapper.map(
            MemRange {
                address: pa,
                page_count: 1,
            },
            false,
        );
        mapper.unmap(0x1000, 1);
        r
    });
    assert_eq!(result, Err(MapError::NotMapped));
    let reasons: Vec<&str> = env.world.take_faults().iter().map(|f| f.reason).collect();
    assert_eq!(
        reasons,
        vec![
            "access to memory not retrieved (or already relinquished)",
            "unmap of a range that is not a mapping"
        ]
    );
    env.ffa.mem_reclaim(handle).unwrap();
}

#[test]
fn partition_death_relinquishes_its_retrievals() {
    let mut env = Env::new();
    let pa = env.vm.alloc(1);
    let handle = env
        .ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(
                vec![MemRange {
                    address: pa,
                    page_count: 1,
                }],
                DataAccess::ReadWrite,
            ),
        )
        .unwrap();
    env.jobs
        .send(Box::new(move |ffa, _| {
            ffa.mem_retrieve(&retrieve_req(handle, 0, VM)).unwrap();
            panic!("partition bug (expected by the test)");
        }))
        .unwrap();
    assert_eq!(
        env.ffa.direct_req2(VM, SP, SVC, [0; 14]).map(|_| ()),
        ffa_err(FfaError::Aborted)
    );
    assert!(!env.world.is_retrieved(handle, SP));
    env.ffa.mem_reclaim(handle).unwrap();
    assert!(env.sp.take().unwrap().join().is_err());
}

#[test]
fn vm_memory_access_rules() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let vm2 = world.add_vm(VM2);
    let mine = vm.alloc(2);
    let theirs = vm2.alloc(1);
    vm.write(mine + 4090, b"across a page").unwrap();
    let mut b = [0; 13];
    vm.read(mine + 4090, &mut b).unwrap();
    assert_eq!(&b, b"across a page");
    assert!(vm.read(theirs, &mut b).is_err());
    assert!(vm.write(mine + 2 * 4096 - 4, b"runs off").is_err());
    assert!(vm.read(0x1000, &mut b).is_err());
    assert!(vm.free(theirs, 1).is_err());
    let faults = world.take_faults();
    assert_eq!(faults.len(), 4, "{faults:?}");
    assert!(faults.iter().all(|f| f.endpoint == VM));
    vm.free(mine, 2).unwrap();
    assert!(vm.read(mine, &mut b).is_err(), "freed");
}

#[test]
#[should_panic(expected = "fault")]
fn assert_no_faults_panics_on_a_fault() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let _ = vm.read(0x1000, &mut [0; 1]);
    world.assert_no_faults();
}

#[test]
fn retrieve_response_layout_follows_the_callers_version() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let sp = world.spawn_sp(SpInfo::new(SP, vec![SVC]), move |conduit, _| {
        let mut ffa = Ffa::new(conduit);
        ffa.version(V1_1).unwrap();
        ffa.rxtx_map(0x0e00_0000, 0x0e00_1000, 1).unwrap();
        let mut msg = ffa.msg_wait();
        while let Ok(Interface::MsgSendDirectReq { src_id, .. }) = msg {
            let handle = go_rx.recv().unwrap();
            let resp = ffa
                .mem_retrieve(&retrieve_req(handle, 0, VM))
                .map(|r| r.ranges);
            let emad_size = u32::from_le_bytes(ffa.conduit().rx()[24..28].try_into().unwrap());
            tx.send((resp, emad_size)).unwrap();
            msg = ffa.direct_resp(SP, src_id, DirectMsgArgs::Args32([0; 5]));
        }
    });
    let mut ffa = vm_ffa(&vm);
    let pa = vm.alloc(1);
    let range = MemRange {
        address: pa,
        page_count: 1,
    };
    let handle = ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(vec![range], DataAccess::ReadWrite),
        )
        .unwrap();
    go_tx.send(handle).unwrap();
    // A v1.1 partition is reached with the 32-bit FFA_MSG_SEND_DIRECT_REQ.
    let answer = ffa
        .call(&Interface::MsgSendDirectReq {
            src_id: VM,
            dst_id: SP,
            args: DirectMsgArgs::Args32([1, 2, 3, 4, 5]),
        })
        .unwrap();
    assert!(matches!(
        answer,
        Interface::MsgSendDirectResp {
            src_id: SP,
            dst_id: VM,
            ..
        }
    ));
    assert_eq!(rx.recv().unwrap(), (Ok(vec![range]), 16));
    world.shutdown();
    sp.join().unwrap();
}
