//! The one way the partition starts, in the aarch64 image under an SPMC and in the simulated
//! FF-A world alike, so that the simulator runs the start-up code Hafnium runs.
//!
//! [`start`] is generic over a [`Platform`]: what differs by platform (where the boot
//! information comes from, how memory is mapped, the RX/TX buffers, the console, entropy) is a
//! small trait method; the order of the steps, the FF-A calls and the log lines are the same
//! everywhere:
//!
//! 1. boot information and manifest ([`Platform::boot_info`]); RX/TX from its `rx_tx-info`;
//! 2. memory ([`Platform::memory`]): the stage-1 mapper (the image also runs its self-test);
//! 3. the conduit over the manifest's RX/TX buffers, or over the platform's own;
//! 4. `FFA_VERSION(1.2)`, the first FF-A call: no answer means no SPMC, which is logged and
//!    ends the start-up ([`StartError::NoSpmc`]); an answer picks the console
//!    ([`Platform::console`]) and must allow 1.2;
//! 5. `FFA_ID_GET`, then `FFA_RXTX_MAP` if the buffers are the platform's own;
//! 6. the entropy source ([`Platform::entropy`]);
//! 7. an MP partition (the manifest's `execution-ctx-count` above 1) has its other execution
//!    contexts started ([`Platform::start_contexts`]: the image registers its secondary entry
//!    point with `FFA_SECONDARY_EP_REGISTER`), each running the same message loop on the one
//!    shared [`Partition`] and mapper;
//! 8. the message loop ([`partition::run`]) until a call fails.
//!
//! Lines logged before step 4 are held by the console until it knows where to send them.

use alloc::{boxed::Box, sync::Arc};
use core::fmt;

use ffa::{Conduit, Ffa, arm_ffa::Version, bus::BusConfig, memory::NsMapper};

use crate::{
    bootinfo::{BootInfoError, Manifest, RxTxRegions},
    devices::rng::EntropySource,
    partition::{self, Partition, SharedMapper},
    registry::{DiskProvider, StandardDevices},
};

/// Most execution contexts a partition runs (one per CPU; Hafnium's `MAX_CPUS` on QEMU is 8).
pub const MAX_CONTEXTS: u16 = 8;

/// What a secondary execution context runs, given its conduit: the message loop, on the
/// partition shared with the primary. Returns only when the loop ends.
pub type ContextEntry<C> = Arc<dyn Fn(C) + Send + Sync>;

/// The RX/TX buffers a conduit works over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffers {
    /// The manifest's (`rx_tx-info`): the SPMC mapped them at boot.
    Manifest,
    /// The platform's own, to be registered with `FFA_RXTX_MAP(tx, rx, pages)`.
    Own {
        /// TX buffer address.
        tx: u64,
        /// RX buffer address.
        rx: u64,
        /// Size of each, in 4 KiB pages.
        pages: u32,
    },
}

/// What differs between the platforms the partition starts on.
pub trait Platform {
    /// The FF-A conduit.
    type Conduit: Conduit + Send + 'static;
    /// Maps retrieved normal-world memory.
    type Mapper: NsMapper + Send + Sync + 'static;
    /// The entropy source of the rng device.
    type Entropy: EntropySource + Clone + Send + 'static;

    /// The boot information and the manifest it names.
    fn boot_info(&mut self) -> Result<Manifest, BootInfoError>;
    /// Memory management, given the manifest's RX/TX buffers (to be mapped too). `Err` is a
    /// fatal start-up error.
    fn memory(&mut self, rxtx: Option<&RxTxRegions>) -> Result<Self::Mapper, StartError>;
    /// The conduit: over the manifest's RX/TX buffers if `rxtx` has them, else over the
    /// platform's own. `None` if there are none.
    fn conduit(&mut self, rxtx: Option<&RxTxRegions>) -> Option<(Self::Conduit, Buffers)>;
    /// An SPMC answered `FFA_VERSION` (`spmc`), or nothing did: log lines go to
    /// `FFA_CONSOLE_LOG` from now on, or to the platform's fallback console. Lines held so far
    /// go out first.
    fn console(&mut self, spmc: bool);
    /// Why nothing answered `FFA_VERSION` (SMC undefined, or SMCCC NOT_SUPPORTED).
    fn no_spmc_reason(&self) -> &'static str;
    /// The entropy source, and its name for the log. Called after `FFA_VERSION` (it may issue
    /// SMCs).
    fn entropy(&mut self) -> Option<(Self::Entropy, &'static str)>;
    /// Arranges for execution contexts 1..`count` to run `entry`, each with a conduit of its
    /// own over the partition's RX/TX buffers, when the SPMC starts them. Called once, by the
    /// primary context while it boots (`FFA_SECONDARY_EP_REGISTER` is allowed only then), with
    /// `ffa` its FF-A interface. The default refuses: a platform that cannot start other
    /// contexts must not run an MP partition (under Hafnium they would enter at the primary
    /// entry point and boot a second partition over the first).
    fn start_contexts(
        &mut self,
        ffa: &mut Ffa<Self::Conduit>,
        count: u16,
        entry: ContextEntry<Self::Conduit>,
    ) -> Result<(), StartError> {
        let _ = (ffa, entry);
        Err(StartError::fatal(
            "contexts",
            format_args!("{count} execution contexts, and this platform starts only one"),
        ))
    }
    /// Block devices for some endpoints in place of their RAM disks (the simulated world's
    /// host file); the default, and the image, have none.
    fn disks(&mut self) -> Option<Box<dyn DiskProvider>> {
        None
    }
    /// The partition leaves start-up: its next FF-A call is the first `FFA_MSG_WAIT`.
    fn running(&mut self) {}
}

/// Why the partition stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// Nothing answered `FFA_VERSION` (already logged).
    NoSpmc,
    /// A fatal error before the message loop.
    Fatal(FatalError),
    /// The message loop ended: a call failed.
    Loop(ffa::Error),
}

/// A fatal start-up error: what failed, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatalError {
    /// What failed (`mmu`, `selftest`, `ffa`, `rx/tx`).
    pub what: &'static str,
    /// The message.
    pub message: alloc::string::String,
}

impl StartError {
    /// A fatal error of `what`.
    pub fn fatal(what: &'static str, message: impl fmt::Display) -> Self {
        Self::Fatal(FatalError {
            what,
            message: alloc::format!("{message}"),
        })
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSpmc => f.write_str("no SPMC answered FFA_VERSION"),
            Self::Fatal(e) => write!(f, "{}: {}", e.what, e.message),
            Self::Loop(e) => write!(f, "message loop: {e}"),
        }
    }
}

/// Starts the partition on `platform` (see the module docs) and runs its message loop; returns
/// only when it stops.
pub fn start<P: Platform>(platform: &mut P, config: BusConfig) -> StartError {
    match run(platform, config) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// The steps of [`start`]; `Ok` is never built.
fn run<P: Platform>(
    platform: &mut P,
    config: BusConfig,
) -> Result<core::convert::Infallible, StartError> {
    let manifest = match platform.boot_info() {
        Ok(m) => {
            log::info!(
                "boot info: v{}.{}, manifest {} bytes, ffa-version {:#x}, rx_tx-info {}",
                m.boot_info_version.0,
                m.boot_info_version.1,
                m.fdt_len,
                m.ffa_version.unwrap_or(0),
                if m.rxtx.is_some() { "yes" } else { "no" }
            );
            Some(m)
        }
        Err(e) => {
            log::warn!("boot info: {e}; using built-in RX/TX buffers");
            None
        }
    };
    let messaging_method = manifest.as_ref().and_then(|m| m.messaging_method);
    let contexts = manifest
        .as_ref()
        .and_then(|m| m.exec_ctx_count)
        .unwrap_or(1);
    let rxtx = manifest.and_then(|m| m.rxtx);
    let mapper = platform.memory(rxtx.as_ref())?;
    let (conduit, buffers) = platform
        .conduit(rxtx.as_ref())
        .ok_or_else(|| StartError::fatal("rx/tx", "no buffers"))?;
    let mut ffa = Ffa::new(conduit);

    // FFA_VERSION: the first FF-A call of the partition.
    match ffa.version(ffa::FFA_VERSION) {
        Ok(spmc) => {
            platform.console(true);
            let agreed = ffa.negotiated();
            log::info!(
                "ffa: SPMC speaks FF-A {}.{}, using {}.{}",
                spmc.0,
                spmc.1,
                agreed.0,
                agreed.1
            );
            if agreed < Version(1, 2) {
                return Err(StartError::fatal("ffa", "FF-A 1.2 is needed"));
            }
        }
        Err(e) => {
            platform.console(false);
            log::error!(
                "no SPMC answered FFA_VERSION ({}; {e})",
                platform.no_spmc_reason()
            );
            return Err(StartError::NoSpmc);
        }
    }

    let own_id = ffa
        .id_get()
        .map_err(|e| StartError::fatal("ffa", format_args!("FFA_ID_GET: {e}")))?;
    match (buffers, &rxtx) {
        (Buffers::Own { tx, rx, pages }, _) => {
            ffa.rxtx_map(tx, rx, pages)
                .map_err(|e| StartError::fatal("ffa", format_args!("FFA_RXTX_MAP: {e}")))?;
            log::info!("ffa: RX/TX mapped with FFA_RXTX_MAP (rx {rx:#x}, tx {tx:#x})");
        }
        (Buffers::Manifest, Some(b)) => log::info!(
            "ffa: RX/TX from the manifest (rx {:#x}, tx {:#x}, {} bytes)",
            b.rx.start,
            b.tx.start,
            b.rx.len()
        ),
        (Buffers::Manifest, None) => {}
    }
    let entropy = platform.entropy();
    log::info!(
        "partition {own_id:#x} initialised; entropy: {}",
        entropy.as_ref().map_or("none (no rng device)", |e| e.1)
    );
    let mut factory = StandardDevices::new(entropy.map(|e| e.0));
    if let Some(disks) = platform.disks() {
        factory = factory.with_disks(disks);
    }
    let mut config = config;
    // Indirect messages need the manifest to declare them (Hafnium refuses FFA_MSG_SEND2 from
    // a partition that does not: DENIED) and the SPMC to implement them. A manifest without
    // `messaging-method` bit 2 is how an integrator keeps the partition on direct messages.
    if config.indirect {
        let (indirect, why) =
            if messaging_method.is_some_and(|m| m & crate::bootinfo::MESSAGING_INDIRECT == 0) {
                (false, "no (the manifest's messaging-method has no bit 2)")
            } else if ffa
                .supports(ffa::arm_ffa::FuncId::MsgSend2)
                .unwrap_or(false)
            {
                (true, "yes")
            } else {
                (false, "no (the SPMC does not implement it)")
            };
        config.indirect = indirect;
        log::info!("indirect messages (FFA_MSG_SEND2): {why}");
    }
    let shared = Arc::new(Shared {
        partition: Partition::new(own_id, factory, config),
        mapper: SharedMapper::new(mapper),
    });
    if contexts > 1 {
        if contexts > MAX_CONTEXTS {
            return Err(StartError::fatal(
                "contexts",
                format_args!("execution-ctx-count {contexts}: at most {MAX_CONTEXTS}"),
            ));
        }
        let version = ffa.negotiated();
        let on_context = shared.clone();
        let entry: ContextEntry<P::Conduit> = Arc::new(move |conduit| {
            let mut ffa = Ffa::on_context(conduit, version);
            let mut mapper = &on_context.mapper;
            if let Err(e) = partition::run(&mut ffa, &mut mapper, &on_context.partition) {
                log::error!("message loop of a secondary context ended: {e}");
            }
        });
        platform.start_contexts(&mut ffa, contexts, entry)?;
        log::info!("execution contexts: {contexts}, one per CPU (secondary entry registered)");
    }
    platform.running();
    log::info!("entering the message loop (FFA_MSG_WAIT)");
    let mut mapper = &shared.mapper;
    match partition::run(&mut ffa, &mut mapper, &shared.partition) {
        Ok(()) => Err(StartError::fatal("message loop", "returned")),
        Err(e) => Err(StartError::Loop(e)),
    }
}

/// What every execution context shares: the partition and the stage-1 mapper.
struct Shared<F: crate::registry::DeviceFactory, M> {
    partition: Partition<F>,
    mapper: SharedMapper<M>,
}

#[cfg(test)]
mod tests;
