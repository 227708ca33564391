//! Typed FF-A calls over a [`Conduit`], built on `arm_ffa::Interface` encodings.
// Placeholder signatures: being written.
#![allow(clippy::todo, unused_variables)]

use alloc::vec::Vec;

use arm_ffa::{FfaError, Interface, Version, partition_info::PartitionInfo};

use crate::{
    Conduit,
    memory::{MemTransaction, ShareKind},
};

/// A failed FF-A call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The callee answered FFA_ERROR with this code.
    #[error("FFA_ERROR {0:?}")]
    Ffa(FfaError),
    /// The callee answered FFA_ERROR with a code outside the spec.
    #[error("FFA_ERROR with unknown code {0}")]
    UnknownErrorCode(i32),
    /// The answer did not decode as an FF-A interface.
    #[error("undecodable FF-A answer (x0 = {0:#x})")]
    Decode(u64),
    /// The answer was a valid interface but not one this call can return.
    #[error("unexpected FF-A answer")]
    Unexpected,
    /// A memory descriptor was malformed or did not fit.
    #[error("memory descriptor: {0}")]
    Descriptor(#[from] crate::memory::DescriptorError),
}

/// An endpoint's FF-A interface: typed calls over its [`Conduit`] at a fixed FF-A version.
pub struct Ffa<C: Conduit> {
    conduit: C,
    version: Version,
}

impl<C: Conduit> Ffa<C> {
    /// Wraps a conduit; calls are encoded for `crate::FFA_VERSION` until [`Ffa::version`]
    /// negotiates otherwise.
    pub fn new(conduit: C) -> Self {
        Self {
            conduit,
            version: crate::FFA_VERSION,
        }
    }

    /// The conduit (for its RX/TX buffers).
    pub fn conduit(&mut self) -> &mut C {
        &mut self.conduit
    }

    /// The version calls are encoded for.
    pub fn negotiated(&self) -> Version {
        self.version
    }

    /// Issues `iface` and decodes the answer (FFA_ERROR becomes `Err`).
    pub fn call(&mut self, iface: &Interface) -> Result<Interface, Error> {
        todo!()
    }

    /// FFA_VERSION: offers `version`; returns the callee's version and records the version
    /// used for encodings (the lower of the two compatible versions).
    pub fn version(&mut self, version: Version) -> Result<Version, Error> {
        todo!()
    }

    /// FFA_ID_GET.
    pub fn id_get(&mut self) -> Result<u16, Error> {
        todo!()
    }

    /// FFA_RXTX_MAP (64-bit) of `page_count` 4 KiB pages each.
    pub fn rxtx_map(&mut self, tx_addr: u64, rx_addr: u64, page_count: u32) -> Result<(), Error> {
        todo!()
    }

    /// FFA_RX_RELEASE.
    pub fn rx_release(&mut self) -> Result<(), Error> {
        todo!()
    }

    /// FFA_PARTITION_INFO_GET for `uuid` (nil = all); reads the descriptors from the RX
    /// buffer and releases it.
    pub fn partition_info_get(&mut self, uuid: uuid::Uuid) -> Result<Vec<PartitionInfo>, Error> {
        todo!()
    }

    /// FFA_MSG_WAIT (64-bit form when the version allows): returns the next message.
    pub fn msg_wait(&mut self) -> Result<Interface, Error> {
        todo!()
    }

    /// FFA_MSG_SEND_DIRECT_REQ2 from `src` to `dst` for service `uuid`; returns x4..x17 of
    /// the DIRECT_RESP2. FFA_INTERRUPT and FFA_YIELD answers are resumed with FFA_RUN.
    pub fn direct_req2(
        &mut self,
        src: u16,
        dst: u16,
        uuid: uuid::Uuid,
        payload: [u64; 14],
    ) -> Result<[u64; 14], Error> {
        todo!()
    }

    /// FFA_MEM_SHARE / LEND / DONATE of the descriptor `tx` (written to the TX buffer here);
    /// returns the global handle.
    pub fn mem_send(&mut self, kind: ShareKind, desc: &MemTransaction) -> Result<u64, Error> {
        todo!()
    }

    /// FFA_MEM_RETRIEVE_REQ with the retrieve request `req` (written to the TX buffer here);
    /// returns the retrieve response decoded from the RX buffer, which is then released.
    pub fn mem_retrieve(&mut self, req: &MemTransaction) -> Result<MemTransaction, Error> {
        todo!()
    }

    /// FFA_MEM_RELINQUISH of `handle` for `endpoint` (descriptor written to the TX buffer).
    pub fn mem_relinquish(&mut self, handle: u64, endpoint: u16) -> Result<(), Error> {
        todo!()
    }

    /// FFA_MEM_RECLAIM of `handle`.
    pub fn mem_reclaim(&mut self, handle: u64) -> Result<(), Error> {
        todo!()
    }

    /// FFA_NOTIFICATION_BIND: lets `sender` signal the notifications in `bitmap` to `receiver`.
    pub fn notification_bind(&mut self, sender: u16, receiver: u16, bitmap: u64) -> Result<(), Error> {
        todo!()
    }

    /// FFA_NOTIFICATION_SET: signals the (global) notifications in `bitmap` from `sender` to
    /// `receiver`.
    pub fn notification_set(&mut self, sender: u16, receiver: u16, bitmap: u64) -> Result<(), Error> {
        todo!()
    }

    /// FFA_NOTIFICATION_GET of the global notifications pending for `receiver` from SPs
    /// (bitmap) and clears them.
    pub fn notification_get(&mut self, receiver: u16) -> Result<u64, Error> {
        todo!()
    }

    /// FFA_CONSOLE_LOG (64-bit) of `bytes`, split into as many calls as needed.
    pub fn console_log(&mut self, bytes: &[u8]) -> Result<(), Error> {
        todo!()
    }
}
