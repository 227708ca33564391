//! Tests of indirect messaging (`sim/indirect.rs`): FFA_MSG_SEND2 both ways with RX ownership
//! and the RX-full framework notifications, FFA_RUN by the normal-world scheduler, and every
//! refusal Hafnium makes.

use std::sync::mpsc;

use arm_ffa::{FfaError, Interface};

use super::support::*;
use crate::{
    calls::{Error, Ffa},
    conduit::Conduit,
    indirect,
    sim::*,
};

/// A partition with indirect messaging that answers every indirect message it is run for with
/// the payload's bytes incremented, and reports what it saw on `seen`.
fn indirect_echo_sp(
    seen: mpsc::Sender<String>,
) -> impl FnOnce(SimConduit, SimMapper) + Send + 'static {
    move |conduit, _mapper| {
        let (mut ffa, id) = sp_boot(conduit);
        let mut msg = ffa.msg_wait();
        loop {
            match msg {
                Ok(Interface::Run { target_info, .. }) => {
                    assert_eq!(target_info.endpoint_id, id);
                    // Run with a notification pending: the NPI is pending too, taken once.
                    let npi = ffa.conduit().interrupt_get();
                    let none = ffa.conduit().interrupt_get();
                    seen.send(format!("npi {npi:?} then {none:?}")).unwrap();
                    // The buffer cannot be released before the notification is taken.
                    let early = ffa.rx_release();
                    let full = ffa.rx_full_get(id, true).unwrap();
                    let mut copy = [0u8; 4096];
                    let n = ffa.take_indirect(&mut copy).unwrap();
                    let m = indirect::parse(&copy[..n], 104).unwrap();
                    seen.send(format!("{early:?} {full} {:#x} {:?}", m.sender, m.payload))
                        .unwrap();
                    let reply: Vec<u8> = m.payload.iter().map(|b| b + 1).collect();
                    let sent = ffa.send_indirect(id, m.sender, m.uuid, &reply);
                    seen.send(format!("reply {sent:?}")).unwrap();
                    msg = ffa.msg_wait();
                }
                Err(Error::Ffa(FfaError::Aborted)) => return,
                other => panic!("indirect echo: unexpected {other:?}"),
            }
        }
    }
}

fn indirect_sp_info() -> SpInfo {
    let mut info = SpInfo::new(SP, vec![SVC]);
    info.properties |= props::INDIRECT_MSG;
    info
}

/// The VM's side of one indirect round trip: its answer payload.
fn vm_round_trip(ffa: &mut Ffa<SimConduit>, payload: &[u8]) -> Vec<u8> {
    ffa.send_indirect(VM, SP, SVC, payload).unwrap();
    match ffa.run(SP, 0).unwrap() {
        Interface::MsgWait { .. } => {}
        other => panic!("FFA_RUN ended with {other:?}"),
    }
    assert!(ffa.rx_full_get(VM, false).unwrap(), "RX-full from the SPM");
    let mut copy = [0u8; 4096];
    let n = ffa.take_indirect(&mut copy).unwrap();
    let m = indirect::parse(&copy[..n], 104).unwrap();
    assert_eq!((m.sender, m.receiver, m.uuid), (SP, VM, SVC));
    m.payload.to_vec()
}

#[test]
fn indirect_round_trip_with_rx_ownership() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, seen) = mpsc::channel();
    let sp = world.spawn_sp(indirect_sp_info(), indirect_echo_sp(tx));
    let mut ffa = vm_ffa(&vm);
    ffa.notification_bitmap_create(VM, 1).unwrap();
    assert_eq!(vm_round_trip(&mut ffa, &[1, 2, 3]), [2, 3, 4]);
    assert_eq!(seen.recv().unwrap(), "npi Some(5) then Some(4294967295)");
    assert_eq!(
        seen.recv().unwrap(),
        "Err(Ffa(Denied)) true 0x1 [1, 2, 3]",
        "release refused while the RX-full notification is pending; hypervisor bit set"
    );
    assert_eq!(seen.recv().unwrap(), "reply Ok(())");
    // The buffers went back on both sides: a second round trip works.
    assert_eq!(vm_round_trip(&mut ffa, &[9; 104]), [10; 104]);
    seen.recv().unwrap();
    // A normal-world endpoint may not ask the SPMC for the hypervisor's framework bitmap
    // (Hafnium refuses it; seen under Hafnium, where asking for it failed every take).
    assert_eq!(
        ffa.rx_full_get(VM, true).map(drop),
        ffa_err(FfaError::InvalidParameters)
    );
    world.shutdown();
    sp.join().unwrap();
    world.assert_no_faults();
}

#[test]
fn a_receiver_that_keeps_its_rx_buffer_makes_senders_busy() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let vm2 = world.add_vm(VM2);
    let (tx, seen) = mpsc::channel();
    let sp = world.spawn_sp(indirect_sp_info(), indirect_echo_sp(tx));
    let mut ffa = vm_ffa(&vm);
    ffa.notification_bitmap_create(VM, 1).unwrap();
    let mut ffa2 = vm_ffa(&vm2);
    // Two messages to the partition before it runs: the second finds its RX buffer full.
    ffa.send_indirect(VM, SP, SVC, &[1]).unwrap();
    assert_eq!(
        ffa2.send_indirect(VM2, SP, SVC, &[2]),
        ffa_err(FfaError::Busy)
    );
    // The VM does not release its RX buffer: the partition's answer is accepted, its next
    // answer to that VM is BUSY, and another VM is served all the same.
    assert!(matches!(ffa.run(SP, 0), Ok(Interface::MsgWait { .. })));
    seen.recv().unwrap();
    seen.recv().unwrap();
    assert_eq!(seen.recv().unwrap(), "reply Ok(())");
    ffa.send_indirect(VM, SP, SVC, &[3]).unwrap();
    assert!(matches!(ffa.run(SP, 0), Ok(Interface::MsgWait { .. })));
    seen.recv().unwrap();
    seen.recv().unwrap();
    assert_eq!(seen.recv().unwrap(), "reply Err(Ffa(Busy))");
    ffa2.send_indirect(VM2, SP, SVC, &[4]).unwrap();
    assert!(matches!(ffa2.run(SP, 0), Ok(Interface::MsgWait { .. })));
    seen.recv().unwrap();
    seen.recv().unwrap();
    assert_eq!(seen.recv().unwrap(), "reply Ok(())");
    // The VM's buffer still holds the first answer.
    assert!(ffa.rx_full_get(VM, false).unwrap());
    let mut copy = [0u8; 64];
    let n = ffa.take_indirect(&mut copy).unwrap();
    assert_eq!(indirect::parse(&copy[..n], 104).unwrap().payload, [2]);
    world.shutdown();
    sp.join().unwrap();
}

#[test]
fn send2_refusals_follow_hafnium() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let no_indirect = world.spawn_sp(SpInfo::new(SP2, vec![SVC]), echo_sp);
    let (tx, _seen) = mpsc::channel();
    let sp = world.spawn_sp(indirect_sp_info(), indirect_echo_sp(tx));
    let mut ffa = vm_ffa(&vm);
    let send = |ffa: &mut Ffa<SimConduit>, f: &dyn Fn(&mut [u8])| {
        let tx = ffa.conduit().tx();
        indirect::write(tx, VM, SP, SVC, &[0; 8]).unwrap();
        f(tx);
        ffa.msg_send2()
    };
    let inval = ffa_err(FfaError::InvalidParameters);
    assert_eq!(
        send(&mut ffa, &|t| t[8] = 24),
        inval,
        "offset in the header"
    );
    assert_eq!(
        send(&mut ffa, &|t| t[16..20]
            .copy_from_slice(&u32::MAX.to_le_bytes())),
        inval,
        "offset + size overflows"
    );
    assert_eq!(
        send(&mut ffa, &|t| t[16..20]
            .copy_from_slice(&4057u32.to_le_bytes())),
        inval,
        "past the 4 KiB buffer"
    );
    assert_eq!(
        send(&mut ffa, &|t| t[14..16].copy_from_slice(&VM2.to_le_bytes())),
        inval,
        "header sender is not the caller"
    );
    assert_eq!(
        send(&mut ffa, &|t| t[12..14].copy_from_slice(&VM.to_le_bytes())),
        inval,
        "reflexive"
    );
    assert_eq!(
        send(&mut ffa, &|t| t[12..14]
            .copy_from_slice(&0x8009u16.to_le_bytes())),
        inval,
        "no such receiver"
    );
    assert_eq!(
        send(&mut ffa, &|t| t[12..14].copy_from_slice(&SP2.to_le_bytes())),
        ffa_err(FfaError::Denied),
        "receiver without indirect messaging"
    );
    // 4056 bytes of payload exactly fill the buffer.
    assert_eq!(
        send(&mut ffa, &|t| t[16..20]
            .copy_from_slice(&4056u32.to_le_bytes())),
        Ok(())
    );
    // FFA_RUN rules.
    assert_eq!(
        ffa.run(SP, 1).map(drop),
        ffa_err(FfaError::InvalidParameters),
        "no vCPU 1"
    );
    assert_eq!(
        ffa.run(VM, 0).map(drop),
        ffa_err(FfaError::InvalidParameters),
        "not a partition"
    );
    // A VM without buffers cannot send.
    let vm3 = world.add_vm(3);
    let mut bare = Ffa::new(vm3.conduit());
    bare.version(V1_2).unwrap();
    assert_eq!(
        bare.send_indirect(3, SP, SVC, &[1]),
        ffa_err(FfaError::Denied)
    );
    world.shutdown();
    sp.join().unwrap();
    no_indirect.join().unwrap();
}

#[test]
fn an_untaken_npi_makes_every_msg_wait_return_ffa_interrupt() {
    let world = World::new();
    let vm = world.add_vm(VM);
    let (tx, waits) = mpsc::channel();
    let sp = world.spawn_sp(indirect_sp_info(), move |conduit, _| {
        let (mut ffa, id) = sp_boot(conduit);
        assert!(matches!(ffa.msg_wait(), Ok(Interface::Run { .. })));
        // Not taken: FFA_MSG_WAIT comes back at once, again and again.
        for _ in 0..3 {
            assert!(matches!(ffa.msg_wait(), Ok(Interface::Interrupt { .. })));
        }
        assert_eq!(
            ffa.conduit().interrupt_get(),
            Some(crate::conduit::HF_NPI_INTID)
        );
        ffa.rx_full_get(id, true).unwrap();
        let mut copy = [0u8; 64];
        ffa.take_indirect(&mut copy).unwrap();
        tx.send(()).unwrap();
        // Taken: this FFA_MSG_WAIT ends the run and waits.
        assert_eq!(ffa.msg_wait(), Err(Error::Ffa(FfaError::Aborted)));
    });
    let mut ffa = vm_ffa(&vm);
    ffa.send_indirect(VM, SP, SVC, &[1]).unwrap();
    assert!(matches!(ffa.run(SP, 0), Ok(Interface::MsgWait { .. })));
    waits.recv().unwrap();
    world.shutdown();
    sp.join().unwrap();
}
