//! The FF-A boot information the SPMC hands over in x0, and the manifest it points to.
//!
//! Hafnium writes a boot-info blob over the first page of the package (`gp-register-num = <0>`
//! with a `boot-info { ffa_manifest; }` node): a header (signature 0x0FFA, version, blob size,
//! descriptor size/count/offset) and one FDT descriptor holding the address of the manifest DTB
//! in the package. The header version is the SPMC's choice (Hafnium v2.11 writes 1.1, newer
//! Hafnium the manifest's `ffa-version`), so it is read first and handed to the parser.

use core::ops::Range;

use dtoolkit::{Node, Property, fdt::Fdt};
use ffa::arm_ffa::{
    Version,
    boot_info::{BootInfoContents, BootInfoIterator, BootInfoStdId, BootInfoType},
};

use crate::layout::Layout;

/// Bytes of the boot-info header read before parsing (signature, version, blob size).
const HEADER_PEEK: usize = 12;
/// Boot-info signature.
const SIGNATURE: u32 = 0x0ffa;
/// Largest RX/TX buffer accepted from the manifest, in pages.
const MAX_RXTX_PAGES: u64 = 16;

/// The RX/TX buffers the manifest's `rx_tx-info` names (mapped by the SPMC; no
/// `FFA_RXTX_MAP` needed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxTxRegions {
    /// RX buffer (the SPMC writes, the partition reads).
    pub rx: Range<usize>,
    /// TX buffer.
    pub tx: Range<usize>,
}

/// What the partition reads from its manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Version in the boot-info header.
    pub boot_info_version: Version,
    /// Size of the manifest DTB.
    pub fdt_len: usize,
    /// The manifest's `ffa-version`.
    pub ffa_version: Option<u32>,
    /// The manifest's RX/TX buffers, if it has `rx_tx-info`.
    pub rxtx: Option<RxTxRegions>,
    /// The manifest's `messaging-method` bits (bit 2: indirect messages).
    pub messaging_method: Option<u32>,
    /// The manifest's `execution-ctx-count`: 1 for a UP partition, else one context per CPU.
    pub exec_ctx_count: Option<u16>,
}

/// `messaging-method` bit 2: the partition sends and receives indirect messages.
pub const MESSAGING_INDIRECT: u32 = 1 << 2;

/// Why no manifest could be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootInfoError {
    /// x0 does not point into the package head (no boot info was configured).
    #[error("x0 = {0:#x} is not a boot-info address in the package")]
    NotInPackage(u64),
    /// The blob does not start with the boot-info signature.
    #[error("no boot-info signature at {0:#x}")]
    Signature(u64),
    /// The header's version or size is unusable.
    #[error("boot-info header: {0}")]
    Header(&'static str),
    /// `arm-ffa` rejected the blob.
    #[error("boot-info blob: {0}")]
    Blob(ffa::arm_ffa::boot_info::Error),
    /// No FDT descriptor with an address.
    #[error("no manifest (FDT) descriptor in the boot info")]
    NoManifest,
    /// The manifest is not a valid DTB.
    #[error("manifest DTB does not parse")]
    Fdt,
    /// `rx_tx-info` or its memory regions are inconsistent.
    #[error("rx_tx-info: {0}")]
    RxTx(&'static str),
}

/// Reads the boot information at `x0` and the manifest it names.
///
/// `head` is the package head itself: `layout.package_head`, at that address in this
/// program (the image makes it from memory that nothing writes once the partition runs; host
/// tests from a buffer and a layout made around it). arm-ffa resolves the descriptors'
/// addresses against the blob's own address, so they must be addresses in `head`. The blob and
/// the manifest must lie inside `head`; anything outside is refused, and nothing in a hostile
/// blob can make this read outside `head` or panic.
pub fn parse(head: &[u8], x0: u64, layout: &Layout) -> Result<Manifest, BootInfoError> {
    let base = layout.package_head.start;
    if head.len() != layout.package_head.len() || head.as_ptr().addr() != base {
        return Err(BootInfoError::Header(
            "package head is not where the layout says",
        ));
    }
    let start = usize::try_from(x0)
        .ok()
        .and_then(|a| a.checked_sub(base))
        .filter(|&off| off % 8 == 0 && off.saturating_add(HEADER_PEEK) <= head.len())
        .ok_or(BootInfoError::NotInPackage(x0))?;
    let peek = head
        .get(start..)
        .and_then(|rest| rest.get(..HEADER_PEEK))
        .ok_or(BootInfoError::NotInPackage(x0))?;
    let word = |i: usize| {
        peek.get(i..)
            .and_then(<[u8]>::first_chunk)
            .copied()
            .map(u32::from_le_bytes)
            .unwrap_or(0)
    };
    if word(0) != SIGNATURE {
        return Err(BootInfoError::Signature(x0));
    }
    let boot_info_version =
        Version::try_from(word(4)).map_err(|_| BootInfoError::Header("bad version"))?;
    // FF-A 1.1 introduced the blob; every 1.x since has the same header.
    if boot_info_version.0 != 1 || boot_info_version.1 == 0 {
        return Err(BootInfoError::Header("unsupported version"));
    }
    let blob_len = usize::try_from(word(8)).map_err(|_| BootInfoError::Header("bad size"))?;
    let blob = start
        .checked_add(blob_len)
        .filter(|_| blob_len >= HEADER_PEEK)
        .and_then(|end| head.get(start..end))
        .ok_or(BootInfoError::Header(
            "blob does not fit in the package head",
        ))?;

    let mut fdt = None;
    for info in BootInfoIterator::new(boot_info_version, blob).map_err(BootInfoError::Blob)? {
        let info = info.map_err(BootInfoError::Blob)?;
        if let (BootInfoType::Std(BootInfoStdId::Fdt), BootInfoContents::Address { content_buf }) =
            (info.typ, info.contents)
        {
            fdt = Some(content_buf);
            break;
        }
    }
    let fdt_bytes = fdt.ok_or(BootInfoError::NoManifest)?;
    let fdt = Fdt::new(fdt_bytes).map_err(|_| BootInfoError::Fdt)?;
    let root = fdt.root();
    let ffa_version = root.property("ffa-version").and_then(|p| cells(p.value()));
    let ffa_version = ffa_version.and_then(|v| u32::try_from(v).ok());
    let rxtx = read_rxtx(&fdt, layout)?;
    let messaging_method = root
        .property("messaging-method")
        .and_then(|p| cells(p.value()))
        .and_then(|v| u32::try_from(v).ok());
    let exec_ctx_count = root
        .property("execution-ctx-count")
        .and_then(|p| cells(p.value()))
        .and_then(|v| u16::try_from(v).ok());
    Ok(Manifest {
        boot_info_version,
        fdt_len: fdt_bytes.len(),
        ffa_version,
        rxtx,
        messaging_method,
        exec_ctx_count,
    })
}

/// A 1- or 2-cell big-endian integer property value.
fn cells(value: &[u8]) -> Option<u64> {
    match value.len() {
        4 => value.try_into().ok().map(u32::from_be_bytes).map(u64::from),
        8 => value.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// The memory region (child of `/memory-regions`) with `phandle`, as an address range.
fn region_by_phandle(fdt: &Fdt<'_>, phandle: u64, layout: &Layout) -> Option<Range<usize>> {
    let regions = fdt.root().child("memory-regions")?;
    let node = regions.children().find(|n| {
        n.property("phandle")
            .and_then(|p| cells(p.value()))
            .is_some_and(|p| p == phandle)
    })?;
    let base = match node.property("base-address").and_then(|p| cells(p.value())) {
        Some(base) => base,
        None => {
            // Relative to the load address: `load-address-relative-offset` (Hafnium >= 2.12)
            // or `relative-address` (older).
            let offset = node
                .property("load-address-relative-offset")
                .or_else(|| node.property("relative-address"))
                .and_then(|p| cells(p.value()))?;
            u64::try_from(layout.window.start)
                .ok()?
                .checked_add(offset)?
        }
    };
    let pages = node
        .property("pages-count")
        .and_then(|p| cells(p.value()))?;
    if pages == 0 || pages > MAX_RXTX_PAGES || base % 4096 != 0 {
        return None;
    }
    let start = usize::try_from(base).ok()?;
    let end = start.checked_add(usize::try_from(pages.checked_mul(4096)?).ok()?)?;
    Some(start..end)
}

fn read_rxtx(fdt: &Fdt<'_>, layout: &Layout) -> Result<Option<RxTxRegions>, BootInfoError> {
    let Some(info) = fdt.root().child("rx_tx-info") else {
        return Ok(None);
    };
    let phandle = |name| {
        info.property(name)
            .and_then(|p| cells(p.value()))
            .ok_or(BootInfoError::RxTx("missing rx-buffer/tx-buffer phandle"))
    };
    let (rx, tx) = (phandle("rx-buffer")?, phandle("tx-buffer")?);
    let rx = region_by_phandle(fdt, rx, layout).ok_or(BootInfoError::RxTx("bad RX region"))?;
    let tx = region_by_phandle(fdt, tx, layout).ok_or(BootInfoError::RxTx("bad TX region"))?;
    let overlaps = |a: &Range<usize>, b: &Range<usize>| a.start < b.end && b.start < a.end;
    if rx.len() != tx.len() {
        return Err(BootInfoError::RxTx("RX and TX differ in size"));
    }
    if overlaps(&rx, &tx) || overlaps(&rx, &layout.window) || overlaps(&tx, &layout.window) {
        return Err(BootInfoError::RxTx("RX/TX overlap each other or the image"));
    }
    Ok(Some(RxTxRegions { rx, tx }))
}

#[cfg(test)]
mod tests;
