//! A simulated FF-A world: an SPMC in software, normal-world endpoints (VMs), secure
//! partitions running on their own threads, and normal-world memory with enforced windows.
//!
//! It exists so host tests can prove that a partition touches normal-world memory only
//! where it was shared and retrieved, and as the default backend of the `vmsg` CLI. It
//! follows the FF-A rules (with Hafnium's choice of error code where the spec leaves one),
//! not any partition's convenience.
//!
//! - [`World`]: the SPMC and its state. Cloneable handle; dropping the last [`World`] (and
//!   every [`VmEndpoint`] and VM [`SimConduit`], which hold one) shuts it down.
//! - [`VmEndpoint`]: a normal-world endpoint. It allocates memory ([`VmEndpoint::alloc`]),
//!   touches only pages it owns and has not lent, and issues FF-A calls through
//!   [`VmEndpoint::conduit`] (one conduit per thread).
//! - [`World::spawn_sp`]: runs a partition's `main(SimConduit, SimMapper)` on a thread and
//!   returns once it has finished booting (its first FFA_MSG_WAIT), as an SPMC boots its
//!   partitions before the normal world runs.
//! - [`SimMapper`]: the partition's [`crate::memory::NsMapper`].
//! - [`Fault`]: a refused memory access, recorded in the world ([`World::faults`]).
//!
//! # Modelled ABIs and rules
//!
//! FFA_VERSION (v1.1 and v1.2; locked once another call was made), FFA_FEATURES, FFA_ID_GET,
//! FFA_SPM_ID_GET, FFA_RXTX_MAP/UNMAP (one 4 KiB page each; a VM's buffers must be pages it
//! owns, and stay reserved while mapped), FFA_RX_RELEASE and RX ownership (a call that fills
//! RX while the caller still owns it is BUSY; FFA_MSG_WAIT releases it unless told to retain
//! it), FFA_PARTITION_INFO_GET, FFA_MSG_WAIT, FFA_MSG_SEND_DIRECT_REQ(2)/RESP(2) (VM to
//! partition; BUSY while the partition handles another request; ABORTED once its thread has
//! ended), the VM created/destroyed framework messages, FFA_MEM_SHARE/LEND,
//! FFA_MEM_RETRIEVE_REQ/RESP, FFA_MEM_RELINQUISH, FFA_MEM_RECLAIM, FFA_NOTIFICATION_*
//! (global notifications only, and the "RX buffer full" framework notifications), a
//! partition's EL1 physical timer as Hafnium emulates it (HF_INTERRUPT_ENABLE of its virtual
//! interrupt 3, one deadline per execution context, FFA_INTERRUPT to a waiting context,
//! pending until HF_INTERRUPT_GET),
//! FFA_MSG_SEND2 between any two endpoints with RX/TX buffers, FFA_RUN of a partition by a VM
//! (the normal-world scheduler) and FFA_CONSOLE_LOG. Anything else is NOT_SUPPORTED.
//!
//! Deliberate limits: no fragmented memory descriptors and no descriptors outside the TX
//! buffer (NOT_SUPPORTED), no FFA_MEM_DONATE, memory is shared only from VMs to partitions,
//! partitions do not send direct requests, no FFA_YIELD, no interrupts but a partition's timer
//! (above) and the notification pending interrupt, no schedule receiver
//! interrupt (a VM that sent a partition a message runs it). A retrieval is counted once: a second FFA_MEM_RETRIEVE_REQ by the same receiver
//! before it relinquishes is DENIED (Hafnium behaves the same). FFA_ERROR from a partition is
//! an abort during boot (with ABORTED) and NOT_SUPPORTED otherwise: a request must be
//! answered with a direct response, as under Hafnium.
//!
//! Each conduit keeps its own RX and TX buffers; a call reads the TX buffer and fills the RX
//! buffer of the conduit that issued it.
//!
//! # Where things are
//!
//! The SPMC, by FF-A area (a call enters at `dispatch` and goes to one area):
//!
//! - `dispatch.rs`: decodes a call, applies the rules common to every ABI (unknown or ended
//!   caller, version gate and lock) and dispatches it.
//! - `setup.rs`: setup and discovery: FFA_VERSION, FFA_FEATURES, FFA_ID_GET, FFA_SPM_ID_GET,
//!   FFA_RXTX_MAP/UNMAP, FFA_RX_RELEASE, FFA_PARTITION_INFO_GET, FFA_CONSOLE_LOG.
//! - `messaging.rs`: FFA_MSG_WAIT, FFA_MSG_SEND_DIRECT_REQ(2)/RESP(2), framework messages,
//!   FFA_ERROR from a partition.
//! - `memory.rs`: FFA_MEM_SHARE/LEND/DONATE, FFA_MEM_RETRIEVE_REQ, FFA_MEM_RELINQUISH,
//!   FFA_MEM_RECLAIM (descriptors in TX, answers in RX); `ns_memory.rs`: the normal-world
//!   pages and the transaction rules behind them.
//! - `indirect.rs`: FFA_MSG_SEND2 and FFA_RUN (the partition side of a run ends in
//!   `messaging.rs`'s FFA_MSG_WAIT).
//! - `notifications.rs`: FFA_NOTIFICATION_BITMAP_CREATE/DESTROY, _BIND/_UNBIND, _SET, _GET.
//!
//! Underneath: `state.rs` (the world's state behind one mutex), `reply.rs` (answer
//! registers, FFA_SUCCESS/FFA_ERROR), `types.rs` and `props.rs` (public ids, [`SpInfo`],
//! [`Fault`], [`props`]). On top: `world.rs` ([`World`], [`VmEndpoint`], [`SpHandle`]),
//! `conduit.rs` ([`SimConduit`]) and `mapper.rs` ([`SimMapper`]). `tests/` has one file per
//! area.
//!
//! Imports flow one way, `reply`/`props` → `types` → `ns_memory` → `state` → the areas
//! (`indirect` uses `messaging`) → `dispatch` → `conduit` → `world` (`mapper` uses `state` and is used by
//! `world`): no file uses a file that uses it, and this file only declares and re-exports.

mod conduit;
mod dispatch;
mod indirect;
mod mapper;
mod memory;
mod messaging;
mod notifications;
mod ns_memory;
pub mod props;
mod reply;
mod setup;
mod state;
#[cfg(test)]
mod tests;
mod types;
mod world;

pub use conduit::{ContextLauncher, SimConduit};
pub use mapper::{MAX_MAPPINGS, SimMapper};
pub use types::{BUF_SIZE, Fault, HYPERVISOR_ID, NS_BASE, SPMC_ID, SpInfo, in_simulator};
pub use world::{SpHandle, VmEndpoint, World};
