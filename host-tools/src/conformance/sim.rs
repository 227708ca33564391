//! The simulated FF-A world as a conformance backend, threaded ([`SimBackend`]) or inline
//! ([`InlineBackend`]): every check gets a new normal-world endpoint (a fresh bus instance),
//! which is retired with a VM_DESTROYED framework message once the check is done (the
//! partition keeps state for a bounded number of endpoints).

use ffa::{
    bus::Dialect,
    sim::{SimConduit, VmEndpoint},
};

use super::backend::Backend;
use crate::{
    connection::Connection,
    session::SessionError,
    sim::{
        SimSystem,
        inline::{InlineConduit, InlineSystem},
        open,
    },
};

/// First endpoint id the backend uses.
pub const FIRST_VM: u16 = 0x0100;

/// A [`Backend`] over a [`SimSystem`].
pub struct SimBackend<'s> {
    system: &'s SimSystem,
    next_vm: u16,
    current: Option<u16>,
}

impl<'s> SimBackend<'s> {
    /// A backend opening sessions from endpoints [`FIRST_VM`], [`FIRST_VM`] + 1, … of `system`.
    pub fn new(system: &'s SimSystem) -> Self {
        Self {
            system,
            next_vm: FIRST_VM,
            current: None,
        }
    }
}

impl Backend for SimBackend<'_> {
    type Conduit = SimConduit;
    type Platform<'a>
        = VmEndpoint
    where
        Self: 'a;

    fn connect(
        &mut self,
        dialect: Dialect,
    ) -> Result<Connection<SimConduit, VmEndpoint>, SessionError> {
        let vm = self.next_vm;
        self.next_vm = self.next_vm.wrapping_add(1);
        self.current = Some(vm);
        let endpoint = self.system.world().add_vm(vm);
        open(endpoint, self.system.sp_id(), dialect, false)
    }

    fn disconnect(&mut self) {
        if let Some(vm) = self.current.take()
            && let Err(e) = self
                .system
                .world()
                .send_vm_destroyed(self.system.sp_id(), vm)
        {
            log::warn!("VM_DESTROYED for {vm:#x}: {e:?}");
        }
    }
}

/// A [`Backend`] over an [`InlineSystem`] (the partition on the caller's thread).
pub struct InlineBackend<'s> {
    system: &'s InlineSystem,
    next_vm: u16,
    current: Option<u16>,
}

impl<'s> InlineBackend<'s> {
    /// A backend opening sessions from endpoints [`FIRST_VM`], [`FIRST_VM`] + 1, … of `system`.
    pub fn new(system: &'s InlineSystem) -> Self {
        Self {
            system,
            next_vm: FIRST_VM,
            current: None,
        }
    }
}

impl Backend for InlineBackend<'_> {
    type Conduit = InlineConduit;
    type Platform<'a>
        = VmEndpoint
    where
        Self: 'a;

    fn connect(
        &mut self,
        dialect: Dialect,
    ) -> Result<Connection<InlineConduit, VmEndpoint>, SessionError> {
        let vm = self.next_vm;
        self.next_vm = self.next_vm.wrapping_add(1);
        self.current = Some(vm);
        self.system.connect(vm, dialect, false)
    }

    fn disconnect(&mut self) {
        if let Some(vm) = self.current.take()
            && !self.system.vm_destroyed(vm)
        {
            log::warn!("VM_DESTROYED for {vm:#x} not acknowledged");
        }
    }
}
