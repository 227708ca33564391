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

/// A simulated world the backend opens sessions in: the threaded one or the inline one.
pub trait World {
    /// The endpoints' conduit.
    type Conduit: ffa::Conduit;
    /// Adds endpoint `vm` and opens a session from it (polling for events).
    fn open(
        &self,
        vm: u16,
        dialect: Dialect,
    ) -> Result<Connection<Self::Conduit, VmEndpoint>, SessionError>;
    /// Tells the partition that `vm` is gone; whether it acknowledged.
    fn destroyed(&self, vm: u16) -> bool;
}

impl World for SimSystem {
    type Conduit = SimConduit;
    fn open(
        &self,
        vm: u16,
        dialect: Dialect,
    ) -> Result<Connection<SimConduit, VmEndpoint>, SessionError> {
        open(self.world().add_vm(vm), self.sp_id(), dialect, false)
    }
    fn destroyed(&self, vm: u16) -> bool {
        self.world().send_vm_destroyed(self.sp_id(), vm).is_ok()
    }
}

impl World for InlineSystem {
    type Conduit = InlineConduit;
    fn open(
        &self,
        vm: u16,
        dialect: Dialect,
    ) -> Result<Connection<InlineConduit, VmEndpoint>, SessionError> {
        self.connect(vm, dialect, false)
    }
    fn destroyed(&self, vm: u16) -> bool {
        self.vm_destroyed(vm)
    }
}

/// A [`Backend`] over a simulated world `W`.
pub struct WorldBackend<'s, W: World> {
    system: &'s W,
    next_vm: u16,
    current: Option<u16>,
}

/// The backend over the threaded world.
pub type SimBackend<'s> = WorldBackend<'s, SimSystem>;
/// The backend over the inline world (the partition on the caller's thread).
pub type InlineBackend<'s> = WorldBackend<'s, InlineSystem>;

impl<'s, W: World> WorldBackend<'s, W> {
    /// A backend opening sessions from endpoints [`FIRST_VM`], [`FIRST_VM`] + 1, … of `system`.
    pub fn new(system: &'s W) -> Self {
        Self {
            system,
            next_vm: FIRST_VM,
            current: None,
        }
    }
}

impl<W: World> Backend for WorldBackend<'_, W> {
    type Conduit = W::Conduit;
    type Platform<'a>
        = VmEndpoint
    where
        Self: 'a;

    fn connect(
        &mut self,
        dialect: Dialect,
    ) -> Result<Connection<W::Conduit, VmEndpoint>, SessionError> {
        let vm = self.next_vm;
        self.next_vm = self.next_vm.wrapping_add(1);
        self.current = Some(vm);
        self.system.open(vm, dialect)
    }

    fn disconnect(&mut self) {
        if let Some(vm) = self.current.take()
            && !self.system.destroyed(vm)
        {
            log::warn!("VM_DESTROYED for {vm:#x} not acknowledged");
        }
    }
}
