//! The live partition core in the simulated FF-A world, driven by up to three normal-world
//! endpoints (either driver dialect) with real shared memory: sequences of well-formed and
//! arbitrary transport and bus frames, by direct and by indirect messages (with arbitrary
//! header offsets, sizes and UUIDs, and drivers that keep their RX buffer), AREA_SHARE of real
//! pages whose contents (rings, descriptors) the fuzzer writes, AREA_UNSHARE, RESET, FFA_RUN
//! and VM destroyed.
//!
//! The world is the inline one (`vmsg_host::sim::inline`): each message goes through the
//! message loop's own per-message function on this thread, and every FF-A call either side
//! makes goes through the simulated SPMC — the same results as the threaded world (the
//! conformance suite runs on both), without thread hand-offs.
//!
//! After every sequence: the partition is alive, the simulator recorded no access outside
//! what was shared and retrieved, and once every endpoint has sent RESET (or been destroyed)
//! the partition holds no retrieved memory.
#![no_main]

use arbitrary::Arbitrary;
use ffa::{
    VIRTIO_MSG_DEVICE_UUID,
    bus::{Dialect, MAX_MSG_SIZE, frame_to_regs},
};
use libfuzzer_sys::fuzz_target;
use virtio_msg::Header;
use vmsg_host::{
    session::SharedArea,
    sim::inline::{InlineConnection, InlineSystem},
};

#[derive(Arbitrary, Debug)]
enum Op {
    /// Any bytes as one DIRECT_REQ2 payload.
    Raw { vm: u8, frame: Vec<u8> },
    /// A transport frame with a correct header (type 0, size) and an arbitrary payload.
    Transport {
        vm: u8,
        dev_num: u8,
        msg_id: u8,
        token: u16,
        payload: Vec<u8>,
    },
    /// A bus frame with a correct header and an arbitrary payload.
    Bus {
        vm: u8,
        msg_id: u8,
        payload: Vec<u8>,
    },
    /// Shares 1 to 4 fresh pages as a new area.
    Share { vm: u8, pages: u8 },
    /// Writes into an area shared by this endpoint (as a driver writes its rings).
    Write {
        vm: u8,
        area: u8,
        offset: u16,
        bytes: Vec<u8>,
    },
    /// AREA_UNSHARE of an area this endpoint shared.
    Unshare { vm: u8, area: u8 },
    /// Bus RESET.
    Reset { vm: u8 },
    /// The hypervisor reports the VM destroyed.
    Destroy { vm: u8 },
    /// An indirect message (FFA_MSG_SEND2) with the given frame, its header's offset and size
    /// overridden when given and its UUID's first byte flipped when asked, then FFA_RUN of the
    /// partition; the endpoint takes what came back to its RX buffer only when `take` is set
    /// (a driver that never releases its buffer is part of the game).
    Indirect {
        vm: u8,
        offset: Option<u32>,
        size: Option<u32>,
        flip_uuid: bool,
        take: bool,
        frame: Vec<u8>,
    },
    /// FFA_RUN of the partition with nothing sent (it pushes what it holds).
    Run { vm: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    g2: [bool; 3],
    ops: Vec<Op>,
}

struct Vm {
    id: u16,
    conn: Option<InlineConnection>,
    areas: Vec<SharedArea>,
}

fn send(sys: &InlineSystem, vm: &mut Vm, frame: &[u8]) {
    let Some(conn) = vm.conn.as_mut() else {
        return;
    };
    let regs = frame_to_regs(&frame[..frame.len().min(MAX_MSG_SIZE)]);
    let own = vm.id;
    // One request, one answer: a DIRECT_RESP2 from the partition to this endpoint (the inline
    // conduit turns anything else into FFA_ERROR).
    let answer = conn
        .session()
        .ffa()
        .direct_req2(own, sys.sp_id(), VIRTIO_MSG_DEVICE_UUID, regs);
    assert!(
        answer.is_ok(),
        "no DIRECT_RESP2 to a DIRECT_REQ2: {answer:?}"
    );
}

/// FFA_RUN of the partition by `vm`, which must come back with FFA_MSG_WAIT.
fn run(sys: &InlineSystem, vm: &mut Vm) {
    let Some(conn) = vm.conn.as_mut() else {
        return;
    };
    let answer = conn.session().ffa().run(sys.sp_id(), 0);
    assert!(
        matches!(answer, Ok(ffa::arm_ffa::Interface::MsgWait { .. })),
        "FFA_RUN did not end with FFA_MSG_WAIT: {answer:?}"
    );
}

/// Takes what waits in `vm`'s RX buffer, if anything.
fn take(vm: &mut Vm) {
    let Some(conn) = vm.conn.as_mut() else {
        return;
    };
    let own = vm.id;
    let ffa = conn.session().ffa();
    if ffa.rx_full_get(own, false).unwrap_or(false) {
        let mut copy = [0u8; 4096];
        let n = ffa
            .take_indirect(&mut copy)
            .expect("the partition's message is well formed");
        ffa::indirect::parse(&copy[..n], MAX_MSG_SIZE).expect("the partition's message parses");
    }
}

fn framed(msg_type: u8, msg_id: u8, dev_num: u16, token: u16, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_MSG_SIZE - 8)];
    let mut frame = vec![0u8; 8 + payload.len()];
    let header = Header {
        msg_type,
        msg_id,
        dev_num,
        token,
        msg_size: u16::try_from(frame.len()).unwrap_or(0),
    };
    header
        .write(&mut frame)
        .expect("the frame has room for its header");
    frame[8..].copy_from_slice(payload);
    frame
}

fuzz_target!(|input: Input| {
    if input.ops.len() > 64 {
        return;
    }
    let sys = InlineSystem::start().expect("the simulated world starts");
    let mut vms: Vec<Vm> = (0..3u16)
        .map(|i| {
            let dialect = if input.g2[usize::from(i)] {
                Dialect::G2
            } else {
                Dialect::G3
            };
            Vm {
                id: i + 1,
                conn: sys.connect(i + 1, dialect, false).ok(),
                areas: Vec::new(),
            }
        })
        .collect();
    for op in &input.ops {
        match op {
            Op::Raw { vm, frame } => {
                let vm = &mut vms[usize::from(*vm) % 3];
                send(&sys, vm, frame);
            }
            Op::Transport {
                vm,
                dev_num,
                msg_id,
                token,
                payload,
            } => {
                let frame = framed(0, *msg_id, u16::from(*dev_num % 4), *token, payload);
                send(&sys, &mut vms[usize::from(*vm) % 3], &frame);
            }
            Op::Bus {
                vm,
                msg_id,
                payload,
            } => {
                let frame = framed(virtio_msg::header::TYPE_BUS, *msg_id, 0, 1, payload);
                send(&sys, &mut vms[usize::from(*vm) % 3], &frame);
            }
            Op::Share { vm, pages } => {
                let vm = &mut vms[usize::from(*vm) % 3];
                if let Some(conn) = vm.conn.as_mut() {
                    let pages = u32::from(*pages % 4) + 1;
                    let pa = conn.platform().alloc(pages);
                    if let Ok(area) = conn.session().share(pa, pages) {
                        vm.areas.push(area);
                    }
                }
            }
            Op::Write {
                vm,
                area,
                offset,
                bytes,
            } => {
                let vm = &mut vms[usize::from(*vm) % 3];
                if let (Some(conn), Some(a)) = (
                    vm.conn.as_ref(),
                    vm.areas.get(usize::from(*area) % vm.areas.len().max(1)),
                ) {
                    let off = u64::from(*offset) % a.len();
                    let n = bytes.len().min(usize::try_from(a.len() - off).unwrap_or(0));
                    let _ = conn.platform().write(a.pa + off, &bytes[..n]);
                }
            }
            Op::Unshare { vm, area } => {
                let vm = &mut vms[usize::from(*vm) % 3];
                if let Some(conn) = vm.conn.as_mut() {
                    if !vm.areas.is_empty() {
                        let a = vm.areas.remove(usize::from(*area) % vm.areas.len());
                        let _ = conn.session().unshare(&a);
                    }
                }
            }
            Op::Reset { vm } => {
                let vm = &mut vms[usize::from(*vm) % 3];
                if let Some(conn) = vm.conn.as_mut() {
                    let _ = conn.session().reset();
                }
            }
            Op::Indirect {
                vm,
                offset,
                size,
                flip_uuid,
                take: taken,
                frame,
            } => {
                let vm = &mut vms[usize::from(*vm) % 3];
                let own = vm.id;
                if let Some(conn) = vm.conn.as_mut() {
                    let ffa = conn.session().ffa();
                    let tx = ffa::Conduit::tx(ffa.conduit());
                    let frame = &frame[..frame.len().min(1024)];
                    if ffa::indirect::write(tx, own, sys.sp_id(), VIRTIO_MSG_DEVICE_UUID, frame)
                        .is_ok()
                    {
                        if let Some(o) = offset {
                            tx[8..12].copy_from_slice(&o.to_le_bytes());
                        }
                        if let Some(n) = size {
                            tx[16..20].copy_from_slice(&n.to_le_bytes());
                        }
                        if *flip_uuid {
                            tx[24] ^= 0xff;
                        }
                        // Refused by the SPMC (bad header, BUSY) or accepted: either way the
                        // partition is run.
                        let _ = ffa.msg_send2();
                    }
                }
                run(&sys, vm);
                if *taken {
                    take(vm);
                }
            }
            Op::Run { vm } => run(&sys, &mut vms[usize::from(*vm) % 3]),
            Op::Destroy { vm } => {
                let vm = &mut vms[usize::from(*vm) % 3];
                if vm.conn.take().is_some() {
                    assert!(sys.vm_destroyed(vm.id), "VM_DESTROYED not acknowledged");
                }
            }
        }
    }
    assert!(sys.faults().is_empty(), "faults: {:?}", sys.faults());
    // Every endpoint ends its session: the partition must hold no retrieved memory after.
    for vm in &mut vms {
        if let Some(conn) = vm.conn.as_mut() {
            let _ = conn.session().reset();
        }
    }
    for handle in sys.world().outstanding_handles() {
        assert!(
            !sys.world().is_retrieved(handle, sys.sp_id()),
            "handle {handle:#x} still retrieved by the partition after RESET"
        );
    }
    assert!(sys.faults().is_empty(), "faults: {:?}", sys.faults());
});
