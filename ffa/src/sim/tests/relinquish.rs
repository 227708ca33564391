//! [`FfaServices`] (the bus's services over FF-A) against relinquish failures of the simulated
//! SPMC: the memory stays mapped until FFA_MEM_RELINQUISH succeeded, and is unmapped after.

use arm_ffa::FfaError;

use super::support::*;
use crate::{
    bus::{BusServices, FfaServices, ServiceError},
    memory::{DataAccess, MemRange, ShareKind},
};

#[test]
fn a_failed_relinquish_leaves_the_area_mapped() {
    let mut env = Env::new();
    let pa = env.vm.alloc(1);
    env.vm.write(pa, b"ring").unwrap();
    let range = MemRange {
        address: pa,
        page_count: 1,
    };
    let handle = env
        .ffa
        .mem_send(
            ShareKind::Share,
            &share_desc(vec![range], DataAccess::ReadWrite),
        )
        .unwrap();
    env.world
        .fail_relinquish(handle, &[FfaError::NoMemory, FfaError::Denied]);
    let (answers, read_while_pending, read_after) = env.on_sp(move |ffa, mapper| {
        let mut services = FfaServices {
            ffa,
            mapper,
            own_id: SP,
            mailbox: &Default::default(),
        };
        let area = services.retrieve(VM, handle, 0, ShareKind::Share).unwrap();
        let base = area.segments[0].base;
        let mut answers = vec![services.relinquish(&area), services.relinquish(&area)];
        let mut buf = [0; 4];
        let read_while_pending = services.read(base, &mut buf).map(|()| buf);
        answers.push(services.relinquish(&area));
        let read_after = services.read(base, &mut buf).is_ok();
        (answers, read_while_pending, read_after)
    });
    assert_eq!(
        answers,
        vec![
            Err(ServiceError::NoSpace),
            Err(ServiceError::Refused),
            Ok(())
        ]
    );
    assert_eq!(
        read_while_pending,
        Ok(*b"ring"),
        "unmapped before the relinquish succeeded"
    );
    assert!(!read_after, "still mapped after the relinquish");
    assert!(!env.world.is_retrieved(handle, SP));
    assert_eq!(env.ffa.mem_reclaim(handle), Ok(()));
    // The one refused access is the read after the unmap.
    assert_eq!(env.world.take_faults().len(), 1);
}
