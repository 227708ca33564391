//! Where the suite gets its sessions from: [`Backend`].

use ffa::{Conduit, bus::Dialect};

use crate::{connection::Connection, platform::Platform, session::SessionError};

/// Where the suite gets its bus sessions from.
pub trait Backend {
    /// The FF-A conduit of the sessions.
    type Conduit: Conduit;
    /// The driver memory of the sessions.
    type Platform<'a>: Platform
    where
        Self: 'a;

    /// Opens a bus session in `dialect` on a clean bus instance (no areas, devices reset,
    /// events configured for polling): a new endpoint, or the same endpoint after a bus RESET.
    fn connect(
        &mut self,
        dialect: Dialect,
    ) -> Result<Connection<Self::Conduit, Self::Platform<'_>>, SessionError>;

    /// Called after each check, once its session is closed (e.g. to retire the endpoint).
    fn disconnect(&mut self) {}
}
