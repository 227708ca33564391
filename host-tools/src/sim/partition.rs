//! The partition's side of the simulated world: the [`Platform`] that `sp::startup::start`
//! runs on in this process, with boot information and a manifest handed over the way Hafnium
//! hands them to the image.
//!
//! [`PackageHead`] is what Hafnium leaves at the partition's load address: a boot-info blob
//! (header, one FDT descriptor) in the first page and the manifest DTB after it. The start-up
//! parses it with the image's own parser (`sp::bootinfo`), so the simulator runs the same
//! code path as the image.

use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use ffa::{Conduit, Ffa, arm_ffa::FfaError, memory::NsMapper};
use sp::{
    bootinfo::{self, BootInfoError, Manifest, RxTxRegions},
    layout::Layout,
    registry::DiskProvider,
    startup::{Buffers, ContextEntry, Platform, StartError},
};
use zerocopy::IntoBytes;

use crate::entropy::OsEntropy;

/// Offset of the manifest in the package (as `spkg` and TF-A's sptool lay it out).
pub const MANIFEST_OFFSET: usize = 0x1000;
/// Size of the package head (boot info page + manifest), as in the image.
pub const HEAD_SIZE: usize = 0x4000;
/// The RX and TX buffers the simulated manifest names (one page each, outside the window).
pub const MANIFEST_RXTX: (u64, u64) = (0x0e50_0000, 0x0e50_1000);

/// A package head at a fixed place in this process, and the partition layout around it.
pub struct PackageHead {
    /// The bytes, 8-byte aligned (boot-info descriptors are read in place); never moved.
    words: Box<[u64]>,
    layout: Layout,
}

impl PackageHead {
    /// A head whose boot info names `manifest` (a DTB), written as Hafnium writes it: header
    /// (signature 0x0FFA, version 1.2, blob size, descriptor size 32, one descriptor at offset
    /// 32) and one standard FDT descriptor holding the manifest's address.
    pub fn new(manifest: &[u8]) -> Option<Self> {
        if manifest.len() > HEAD_SIZE - MANIFEST_OFFSET {
            return None;
        }
        let mut words = vec![0u64; HEAD_SIZE / 8].into_boxed_slice();
        let base = words.as_ptr().addr();
        let bytes = words.as_mut_bytes();
        let pm_size = u32::try_from(manifest.len()).ok()?;
        let header = [0x0ffa, 0x0001_0002, 0x1000 + pm_size, 32, 1, 32];
        for (slot, word) in bytes.chunks_exact_mut(4).zip(header) {
            slot.copy_from_slice(&word.to_le_bytes());
        }
        let desc = bytes.get_mut(32..64)?;
        // name[16] = 0, type 0 (standard, FDT), reserved 0, flags 0 (contents are an address)
        desc.get_mut(20..24)?
            .copy_from_slice(&pm_size.to_le_bytes());
        let address = u64::try_from(base + MANIFEST_OFFSET).ok()?;
        desc.get_mut(24..32)?
            .copy_from_slice(&address.to_le_bytes());
        bytes
            .get_mut(MANIFEST_OFFSET..MANIFEST_OFFSET + manifest.len())?
            .copy_from_slice(manifest);
        let end = base + HEAD_SIZE;
        let layout = Layout {
            // A window of the image's size; nothing is ever mapped or read there.
            window: base..base + 0x20_0000,
            package_head: base..end,
            text: end..end,
            rodata: end..end,
            data: end..end,
            stack_guard: end..end,
            stack: end..end,
            secondary_stacks: end..end,
            heap: end..end,
        };
        Some(Self { words, layout })
    }

    /// The simulated partition's own manifest: FF-A 1.2 and `rx_tx-info` naming
    /// [`MANIFEST_RXTX`], as `manifests/virtio-msg-sp.dts` does for the image.
    pub fn standard() -> Self {
        Self::with_contexts(1)
    }

    /// [`standard`](Self::standard) with `execution-ctx-count = <contexts>`.
    pub fn with_contexts(contexts: u16) -> Self {
        // The manifest is a few hundred bytes: it always fits.
        Self::new(&standard_manifest(contexts)).unwrap_or_else(|| unreachable!())
    }

    /// The head's bytes (what the image finds at its load address).
    pub fn bytes(&self) -> &[u8] {
        self.words.as_bytes()
    }

    /// Mutable bytes, for tests that corrupt the boot info.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.words.as_mut_bytes()
    }

    /// The address x0 holds at entry: the start of the head.
    pub fn x0(&self) -> u64 {
        u64::try_from(self.layout.package_head.start).unwrap_or(0)
    }

    /// The layout around the head.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Parses the boot info with the image's parser.
    pub fn parse(&self) -> Result<Manifest, BootInfoError> {
        bootinfo::parse(self.bytes(), self.x0(), &self.layout)
    }
}

/// The manifest DTB of the simulated partition, with `contexts` execution contexts.
fn standard_manifest(contexts: u16) -> Vec<u8> {
    let mut tree = DeviceTree::new();
    tree.root
        .add_property(prop("compatible", "arm,ffa-manifest-1.0"));
    tree.root.add_property(prop("ffa-version", 0x0001_0002u32));
    tree.root
        .add_property(prop("execution-ctx-count", u32::from(contexts)));
    let mut info = DeviceTreeNode::new_unchecked("rx_tx-info");
    info.add_property(prop("compatible", "arm,ffa-manifest-rx_tx-buffer"));
    info.add_property(prop("rx-buffer", 1u32));
    info.add_property(prop("tx-buffer", 2u32));
    tree.root.add_child(info);
    let mut regions = DeviceTreeNode::new_unchecked("memory-regions");
    for (name, phandle, base) in [
        ("rx-buffer", 1u32, MANIFEST_RXTX.0),
        ("tx-buffer", 2, MANIFEST_RXTX.1),
    ] {
        let mut node = DeviceTreeNode::new_unchecked(name);
        node.add_property(prop("base-address", base));
        node.add_property(prop("pages-count", 1u32));
        node.add_property(prop("phandle", phandle));
        regions.add_child(node);
    }
    tree.root.add_child(regions);
    tree.to_dtb()
}

/// A property (names here are static and valid).
fn prop<T: dtoolkit::ToPropertyValue>(name: &str, value: T) -> DeviceTreeProperty {
    DeviceTreeProperty::new_unchecked(name, value)
}

/// Starts execution context `ec` of the simulated partition running the given entry with
/// the context's conduit (the simulated SPMC's part: `ffa::sim::World::start_ec`).
pub type ContextStarter<C> =
    Box<dyn FnMut(u16, Box<dyn FnOnce(C) + Send>) -> Result<(), FfaError> + Send>;

/// The address the simulated partition registers as its secondary entry point (the simulated
/// SPMC runs a closure there; the value only has to be registered).
const SIM_SECONDARY_ENTRY: u64 = 0x0e30_4000;

/// The simulated partition as a start-up [`Platform`]: its conduit and mapper come from the
/// simulated world (or, in tests, from anything that implements the traits), its boot info
/// from a [`PackageHead`], its entropy from the host OS.
pub struct HostPartition<C, M> {
    conduit: Option<C>,
    mapper: Option<M>,
    head: PackageHead,
    entropy: Option<OsEntropy>,
    contexts: Option<ContextStarter<C>>,
    disks: Option<Box<dyn DiskProvider>>,
}

impl<C: Conduit, M: NsMapper> HostPartition<C, M> {
    /// A partition over `conduit` and `mapper` whose boot info is `head`.
    pub fn new(conduit: C, mapper: M, head: PackageHead) -> Self {
        Self {
            conduit: Some(conduit),
            mapper: Some(mapper),
            head,
            entropy: Some(OsEntropy),
            contexts: None,
            disks: None,
        }
    }

    /// Endpoints `disks` gives a block device get it in place of their RAM disks (a host
    /// file: [`super::disk::HostDisk`]).
    pub fn with_disks(mut self, disks: Box<dyn DiskProvider>) -> Self {
        self.disks = Some(disks);
        self
    }

    /// Secondary execution contexts are started with `starter` (an MP manifest needs it).
    pub fn with_contexts(mut self, starter: ContextStarter<C>) -> Self {
        self.contexts = Some(starter);
        self
    }

    /// No entropy source (so no rng device).
    pub fn without_entropy(mut self) -> Self {
        self.entropy = None;
        self
    }
}

impl<C: Conduit + Send + 'static, M: NsMapper + Send + Sync + 'static> Platform
    for HostPartition<C, M>
{
    type Conduit = C;
    type Mapper = M;
    type Entropy = OsEntropy;

    fn boot_info(&mut self) -> Result<Manifest, BootInfoError> {
        self.head.parse()
    }

    fn memory(&mut self, _rxtx: Option<&RxTxRegions>) -> Result<M, StartError> {
        self.mapper
            .take()
            .ok_or_else(|| StartError::fatal("mmu", "mapper already taken"))
    }

    fn conduit(&mut self, rxtx: Option<&RxTxRegions>) -> Option<(C, Buffers)> {
        let conduit = self.conduit.take()?;
        // The simulated world's conduit owns its buffers either way; without rx_tx-info the
        // partition registers them as its own (two pages it names, as the image's statics).
        let buffers = match rxtx {
            Some(_) => Buffers::Manifest,
            None => Buffers::Own {
                tx: MANIFEST_RXTX.1,
                rx: MANIFEST_RXTX.0,
                pages: 1,
            },
        };
        Some((conduit, buffers))
    }

    fn console(&mut self, _spmc: bool) {}

    fn no_spmc_reason(&self) -> &'static str {
        "SMCCC NOT_SUPPORTED"
    }

    fn entropy(&mut self) -> Option<(OsEntropy, &'static str)> {
        self.entropy.take().map(|e| (e, "host OS"))
    }

    fn disks(&mut self) -> Option<Box<dyn DiskProvider>> {
        self.disks.take()
    }

    fn start_contexts(
        &mut self,
        ffa: &mut Ffa<C>,
        count: u16,
        entry: ContextEntry<C>,
    ) -> Result<(), StartError> {
        let Some(starter) = self.contexts.as_mut() else {
            return Err(StartError::fatal(
                "contexts",
                format_args!("{count} execution contexts and no way to start them"),
            ));
        };
        ffa.secondary_ep_register(SIM_SECONDARY_ENTRY)
            .map_err(|e| {
                StartError::fatal("ffa", format_args!("FFA_SECONDARY_EP_REGISTER: {e}"))
            })?;
        for ec in 1..count {
            let entry = entry.clone();
            starter(ec, Box::new(move |conduit| entry(conduit))).map_err(|e| {
                StartError::fatal("contexts", format_args!("context {ec} not started: {e}"))
            })?;
        }
        Ok(())
    }
}
