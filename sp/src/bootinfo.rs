//! The FF-A boot information the SPMC hands over in x0, and the manifest it points to.
//!
//! Hafnium writes a boot-info blob over the first page of the package (`gp-register-num = <0>`
//! with a `boot-info { ffa_manifest; }` node): a header (signature 0x0FFA, version, blob size,
//! descriptor size/count/offset) and one FDT descriptor holding the address of the manifest DTB
//! in the package. The header version is the SPMC's choice (Hafnium v2.11 writes 1.1, newer
//! Hafnium the manifest's `ffa-version`), so it is read first and handed to the parser.

mod fdt;

use core::ops::Range;

use ffa::arm_ffa::{
    Version,
    boot_info::{BootInfoContents, BootInfoIterator, BootInfoStdId, BootInfoType},
};

use self::fdt::{Fdt, Token, base_name, is, lookup};
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
    let fdt = Fdt::new(fdt_bytes).ok_or(BootInfoError::Fdt)?;
    // One walk over the whole structure block (which validates it): the root's properties
    // and the first `rx_tx-info` node's.
    let mut root = RootProps::default();
    let mut in_rxtx = false;
    fdt.walk(|depth, token| {
        match (depth, token) {
            (1, Token::Prop(name, value)) => root.take(name, value),
            (2, Token::Begin(name))
                if root.rxtx.is_none() && is(base_name(name), b"rx_tx-info") =>
            {
                root.rxtx = Some((None, None));
                in_rxtx = true;
            }
            (2, Token::Prop(name, value)) if in_rxtx => {
                if let Some((rx, tx)) = root.rxtx.as_mut() {
                    match lookup(&[b"rx-buffer".as_slice(), b"tx-buffer"], name) {
                        Some(0) => first(rx, value),
                        Some(1) => first(tx, value),
                        _ => {}
                    }
                }
            }
            (2, Token::End) => in_rxtx = false,
            _ => {}
        }
        true
    })
    .ok_or(BootInfoError::Fdt)?;
    let ffa_version = root.ffa_version.and_then(cells);
    let ffa_version = ffa_version.and_then(|v| u32::try_from(v).ok());
    let rxtx = match root.rxtx {
        Some((rx, tx)) => Some(read_rxtx(&fdt, rx, tx, layout)?),
        None => None,
    };
    let messaging_method = root
        .messaging_method
        .and_then(cells)
        .and_then(|v| u32::try_from(v).ok());
    let exec_ctx_count = root
        .exec_ctx_count
        .and_then(cells)
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

/// A property value, if the node has the property.
type Value<'a> = Option<&'a [u8]>;

/// The root properties the partition reads (each the first of its name), and the
/// `rx-buffer` and `tx-buffer` values of the first `rx_tx-info` node, if there is one.
#[derive(Default)]
struct RootProps<'a> {
    ffa_version: Value<'a>,
    messaging_method: Value<'a>,
    exec_ctx_count: Value<'a>,
    rxtx: Option<(Value<'a>, Value<'a>)>,
}

impl<'a> RootProps<'a> {
    fn take(&mut self, name: &[u8], value: &'a [u8]) {
        let names: [&[u8]; 3] = [b"ffa-version", b"messaging-method", b"execution-ctx-count"];
        let slot = match lookup(&names, name) {
            Some(0) => &mut self.ffa_version,
            Some(1) => &mut self.messaging_method,
            Some(2) => &mut self.exec_ctx_count,
            _ => return,
        };
        first(slot, value);
    }
}

/// Keeps the first value seen.
fn first<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) {
    slot.get_or_insert(value);
}

/// A 1- or 2-cell big-endian integer property value.
fn cells(value: &[u8]) -> Option<u64> {
    match value.len() {
        4 => value.try_into().ok().map(u32::from_be_bytes).map(u64::from),
        8 => value.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// The properties of one `memory-regions` child that say where it is (each the first of its
/// name).
#[derive(Clone, Copy, Default)]
struct Region<'a> {
    phandle: Option<&'a [u8]>,
    base_address: Option<&'a [u8]>,
    load_offset: Option<&'a [u8]>,
    relative_address: Option<&'a [u8]>,
    pages_count: Option<&'a [u8]>,
}

impl<'a> Region<'a> {
    fn take(&mut self, name: &[u8], value: &'a [u8]) {
        let names: [&[u8]; 5] = [
            b"phandle",
            b"base-address",
            b"load-address-relative-offset",
            b"relative-address",
            b"pages-count",
        ];
        let slot = match lookup(&names, name) {
            Some(0) => &mut self.phandle,
            Some(1) => &mut self.base_address,
            Some(2) => &mut self.load_offset,
            Some(3) => &mut self.relative_address,
            Some(4) => &mut self.pages_count,
            _ => return,
        };
        first(slot, value);
    }

    /// The region as an address range, if it is a usable RX/TX buffer: page-aligned, 1 to
    /// [`MAX_RXTX_PAGES`] pages.
    fn range(&self, layout: &Layout) -> Option<Range<usize>> {
        let base = match self.base_address.and_then(cells) {
            Some(base) => base,
            None => {
                // Relative to the load address: `load-address-relative-offset` (Hafnium >= 2.12)
                // or `relative-address` (older).
                let offset = self.load_offset.or(self.relative_address).and_then(cells)?;
                u64::try_from(layout.window.start)
                    .ok()?
                    .checked_add(offset)?
            }
        };
        let pages = self.pages_count.and_then(cells)?;
        if pages == 0 || pages > MAX_RXTX_PAGES || base % 4096 != 0 {
            return None;
        }
        let start = usize::try_from(base).ok()?;
        let end = start.checked_add(usize::try_from(pages.checked_mul(4096)?).ok()?)?;
        Some(start..end)
    }
}

/// The RX and TX buffers `rx_tx-info` names (its phandle values `rx` and `tx`): the first
/// children of the first `memory-regions` node with those phandles.
fn read_rxtx(
    fdt: &Fdt<'_>,
    rx: Option<&[u8]>,
    tx: Option<&[u8]>,
    layout: &Layout,
) -> Result<RxTxRegions, BootInfoError> {
    let missing = BootInfoError::RxTx("missing rx-buffer/tx-buffer phandle");
    let rx = rx.and_then(cells).ok_or(missing.clone())?;
    let tx = tx.and_then(cells).ok_or(missing)?;
    let (mut rx_region, mut tx_region) = (None, None);
    // 0: before `memory-regions`; 1: inside it; 2: after it.
    let mut regions_node = 0u8;
    let mut current = Region::default();
    fdt.walk(|depth, token| {
        match (depth, token) {
            (2, Token::Begin(name))
                if regions_node == 0 && is(base_name(name), b"memory-regions") =>
            {
                regions_node = 1;
            }
            (2, Token::End) if regions_node == 1 => regions_node = 2,
            (3, Token::Begin(_)) if regions_node == 1 => current = Region::default(),
            (3, Token::Prop(name, value)) if regions_node == 1 => current.take(name, value),
            (3, Token::End) if regions_node == 1 => {
                let phandle = current.phandle.and_then(cells);
                if phandle == Some(rx) && rx_region.is_none() {
                    rx_region = Some(current);
                }
                if phandle == Some(tx) && tx_region.is_none() {
                    tx_region = Some(current);
                }
            }
            _ => {}
        }
        regions_node < 2
    })
    .ok_or(BootInfoError::Fdt)?;
    let rx = rx_region
        .and_then(|r| r.range(layout))
        .ok_or(BootInfoError::RxTx("bad RX region"))?;
    let tx = tx_region
        .and_then(|r| r.range(layout))
        .ok_or(BootInfoError::RxTx("bad TX region"))?;
    let overlaps = |a: &Range<usize>, b: &Range<usize>| a.start < b.end && b.start < a.end;
    if rx.len() != tx.len() {
        return Err(BootInfoError::RxTx("RX and TX differ in size"));
    }
    if overlaps(&rx, &tx) || overlaps(&rx, &layout.window) || overlaps(&tx, &layout.window) {
        return Err(BootInfoError::RxTx("RX/TX overlap each other or the image"));
    }
    Ok(RxTxRegions { rx, tx })
}

#[cfg(test)]
mod tests;
