//! Boot-info and manifest parsing of good and hostile blobs, on a package head in a host
//! buffer (the layout is made around it, so its addresses are real addresses here).

use alloc::{boxed::Box, vec, vec::Vec};

use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use proptest::prelude::*;
use zerocopy::IntoBytes;

use super::*;

const HEAD: usize = 0x4000;

/// A named corruption of a head (and the head's base address where it needs it).
type Corruption = (&'static str, fn(&mut Head, u64));
/// A named set of memory regions made for a head.
type Regions = (&'static str, fn(&Head) -> Vec<DeviceTreeNode>);
const PM_OFFSET: usize = 0x1000;

/// A package head in host memory, page-aligned as the image's is, and a layout whose package
/// head is exactly it.
struct Head {
    words: Box<[u64]>,
    /// Index of the first word of the (page-aligned) head.
    start: usize,
}

impl Head {
    fn new() -> Self {
        let words = vec![0u64; (HEAD + 4096) / 8].into_boxed_slice();
        let start = (4096 - words.as_ptr().addr() % 4096) % 4096 / 8;
        Self { words, start }
    }

    fn base(&self) -> usize {
        self.head().as_ptr().addr()
    }

    fn head(&self) -> &[u8] {
        self.words[self.start..self.start + HEAD / 8].as_bytes()
    }

    fn bytes(&mut self) -> &mut [u8] {
        self.words[self.start..self.start + HEAD / 8].as_mut_bytes()
    }

    fn layout(&self) -> Layout {
        let base = self.base();
        let end = base + HEAD;
        Layout {
            window: base..base + 0x20_0000,
            package_head: base..end,
            text: end..end,
            rodata: end..end,
            data: end..end,
            stack_guard: end..end,
            stack: end..end,
            secondary_stacks: end..end,
            heap: end..end,
        }
    }

    fn parse(&self) -> Result<Manifest, BootInfoError> {
        self.parse_at(self.base() as u64)
    }

    fn parse_at(&self, x0: u64) -> Result<Manifest, BootInfoError> {
        parse(self.head(), x0, &self.layout())
    }

    /// Writes Hafnium's blob: header and one FDT descriptor naming `manifest` at +0x1000.
    fn with_manifest(mut self, manifest: &[u8]) -> Self {
        let base = self.base() as u64;
        let pm_size = u32::try_from(manifest.len()).unwrap();
        let header = [0x0ffa, 0x0001_0002, 0x1000 + pm_size, 32, 1, 32];
        let b = self.bytes();
        for (i, w) in header.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        b[32 + 20..32 + 24].copy_from_slice(&pm_size.to_le_bytes());
        b[32 + 24..32 + 32].copy_from_slice(&(base + PM_OFFSET as u64).to_le_bytes());
        b[PM_OFFSET..PM_OFFSET + manifest.len()].copy_from_slice(manifest);
        self
    }

    fn word(&mut self, offset: usize, value: u32) {
        self.bytes()[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn dword(&mut self, offset: usize, value: u64) {
        self.bytes()[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }
}

fn prop<T: dtoolkit::ToPropertyValue>(name: &str, value: T) -> DeviceTreeProperty {
    DeviceTreeProperty::new_unchecked(name, value)
}

/// One `memory-regions` child.
fn region(name: &str, phandle: u32, props: &[(&str, u64)]) -> DeviceTreeNode {
    let mut node = DeviceTreeNode::new_unchecked(name);
    node.add_property(prop("phandle", phandle));
    for (key, value) in props {
        match u32::try_from(*value) {
            Ok(v) => node.add_property(prop(key, v)),
            Err(_) => node.add_property(prop(key, *value)),
        }
    }
    node
}

/// A manifest DTB with `ffa-version` and, if `regions` is given, `rx_tx-info` naming
/// phandles 1 (RX) and 2 (TX) among `regions`.
fn manifest(regions: Option<Vec<DeviceTreeNode>>) -> Vec<u8> {
    let mut tree = DeviceTree::new();
    tree.root
        .add_property(prop("compatible", "arm,ffa-manifest-1.0"));
    tree.root.add_property(prop("ffa-version", 0x0001_0002u32));
    tree.root.add_property(prop("messaging-method", 0x205u32));
    tree.root.add_property(prop("execution-ctx-count", 4u32));
    if let Some(regions) = regions {
        let mut info = DeviceTreeNode::new_unchecked("rx_tx-info");
        info.add_property(prop("rx-buffer", 1u32));
        info.add_property(prop("tx-buffer", 2u32));
        tree.root.add_child(info);
        let mut node = DeviceTreeNode::new_unchecked("memory-regions");
        for r in regions {
            node.add_child(r);
        }
        tree.root.add_child(node);
    }
    tree.to_dtb()
}

fn rxtx(rx_base: u64, tx_base: u64, pages: u64) -> Vec<DeviceTreeNode> {
    vec![
        region(
            "rx",
            1,
            &[("base-address", rx_base), ("pages-count", pages)],
        ),
        region(
            "tx",
            2,
            &[("base-address", tx_base), ("pages-count", pages)],
        ),
    ]
}

const RX: u64 = 0x0e50_0000;
const TX: u64 = 0x0e50_1000;

#[test]
fn a_hafnium_blob_gives_the_manifest_and_its_buffers() {
    let dtb = manifest(Some(rxtx(RX, TX, 1)));
    let head = Head::new().with_manifest(&dtb);
    let m = head.parse().unwrap();
    assert_eq!(m.boot_info_version, Version(1, 2));
    assert_eq!(m.fdt_len, dtb.len());
    assert_eq!(m.ffa_version, Some(0x0001_0002));
    assert_eq!(m.messaging_method, Some(0x205));
    assert_eq!(m.exec_ctx_count, Some(4));
    assert_eq!(
        m.rxtx,
        Some(RxTxRegions {
            rx: 0x0e50_0000..0x0e50_1000,
            tx: 0x0e50_1000..0x0e50_2000,
        })
    );
}

#[test]
fn the_buffers_are_found_whatever_the_node_order_and_unit_addresses() {
    let mut tree = DeviceTree::new();
    tree.root.add_property(prop("ffa-version", 0x0001_0002u32));
    let mut regions = DeviceTreeNode::new_unchecked("memory-regions@0");
    // A node without a phandle, and the TX region before the RX one.
    regions.add_child(region("other", 7, &[("base-address", 0x0e60_0000)]));
    for r in rxtx(RX, TX, 1).into_iter().rev() {
        regions.add_child(r);
    }
    tree.root.add_child(regions);
    let mut info = DeviceTreeNode::new_unchecked("rx_tx-info@1");
    info.add_property(prop("rx-buffer", 1u32));
    info.add_property(prop("tx-buffer", 2u32));
    tree.root.add_child(info);
    // A second rx_tx-info is not looked at.
    tree.root
        .add_child(DeviceTreeNode::new_unchecked("rx_tx-info"));
    let head = Head::new().with_manifest(&tree.to_dtb());
    let m = head.parse().unwrap();
    assert_eq!(m.messaging_method, None);
    assert_eq!(
        m.rxtx,
        Some(RxTxRegions {
            rx: 0x0e50_0000..0x0e50_1000,
            tx: 0x0e50_1000..0x0e50_2000,
        })
    );
}

#[test]
fn without_rx_tx_info_there_are_no_buffers() {
    let head = Head::new().with_manifest(&manifest(None));
    assert_eq!(head.parse().unwrap().rxtx, None);
}

#[test]
fn relative_region_addresses_count_from_the_load_address() {
    let regions = vec![
        region(
            "rx",
            1,
            &[
                ("load-address-relative-offset", 0x30_0000),
                ("pages-count", 1),
            ],
        ),
        region(
            "tx",
            2,
            &[("relative-address", 0x30_1000), ("pages-count", 1)],
        ),
    ];
    let head = Head::new().with_manifest(&manifest(Some(regions)));
    let base = head.base();
    let got = head.parse().unwrap().rxtx.unwrap();
    assert_eq!(got.rx, base + 0x30_0000..base + 0x30_1000);
    assert_eq!(got.tx, base + 0x30_1000..base + 0x30_2000);
}

#[test]
fn x0_outside_or_misaligned_in_the_head_is_refused() {
    let head = Head::new().with_manifest(&manifest(None));
    let base = head.base() as u64;
    for x0 in [
        0,
        base - 8,
        base + 4,
        base + HEAD as u64 - 8,
        base + HEAD as u64,
        u64::MAX,
    ] {
        assert_eq!(
            head.parse_at(x0),
            Err(BootInfoError::NotInPackage(x0)),
            "{x0:#x}"
        );
    }
}

#[test]
fn a_head_that_is_not_where_the_layout_says_is_refused() {
    let head = Head::new().with_manifest(&manifest(None));
    let mut layout = head.layout();
    layout.package_head.start += 8;
    assert!(matches!(
        parse(head.head(), head.base() as u64, &layout),
        Err(BootInfoError::Header(_))
    ));
}

#[test]
fn bad_headers_are_refused() {
    let dtb = manifest(None);
    let cases: [Corruption; 5] = [
        ("signature", |h, _| h.word(0, 0x0ffb)),
        ("version", |h, _| h.word(4, 0)),
        ("size below the header", |h, _| h.word(8, 11)),
        ("size past the head", |h, _| h.word(8, 0x4001)),
        ("huge size", |h, _| h.word(8, u32::MAX)),
    ];
    for (what, corrupt) in cases {
        let mut head = Head::new().with_manifest(&dtb);
        corrupt(&mut head, 0);
        assert!(head.parse().is_err(), "{what}");
    }
    let mut head = Head::new().with_manifest(&dtb);
    head.word(0, 0);
    assert!(matches!(head.parse(), Err(BootInfoError::Signature(_))));
}

#[test]
fn bad_descriptors_are_refused() {
    let dtb = manifest(None);
    let cases: [Corruption; 7] = [
        ("descriptor count past the blob", |h, _| h.word(16, 1000)),
        ("descriptor offset past the blob", |h, _| h.word(20, 0x3ff0)),
        ("descriptor size 0", |h, _| h.word(12, 0)),
        ("manifest address before the blob", |h, b| {
            h.dword(56, b - 0x1000)
        }),
        ("manifest past the blob", |h, b| h.dword(56, b + 0x3f00)),
        ("manifest size overflows", |h, _| h.word(52, u32::MAX)),
        ("manifest address wraps", |h, _| h.dword(56, u64::MAX - 4)),
    ];
    for (what, corrupt) in cases {
        let mut head = Head::new().with_manifest(&dtb);
        let base = head.base() as u64;
        corrupt(&mut head, base);
        assert!(head.parse().is_err(), "{what}: {:?}", head.parse());
    }
}

#[test]
fn no_fdt_descriptor_or_a_broken_dtb_is_refused() {
    let dtb = manifest(None);
    let mut head = Head::new().with_manifest(&dtb);
    head.word(16, 0); // no descriptors
    assert_eq!(head.parse().unwrap_err(), BootInfoError::NoManifest);
    let mut head = Head::new().with_manifest(&dtb);
    head.bytes()[PM_OFFSET] ^= 0xff; // DTB magic
    assert_eq!(head.parse().unwrap_err(), BootInfoError::Fdt);
    let mut head = Head::new().with_manifest(&dtb);
    head.bytes()[PM_OFFSET + 4..PM_OFFSET + 8].copy_from_slice(&u32::MAX.to_be_bytes()); // totalsize
    assert_eq!(head.parse().unwrap_err(), BootInfoError::Fdt);
}

#[test]
fn inconsistent_rx_tx_info_is_refused() {
    let cases: [Regions; 7] = [
        ("a phandle with no region", |_| {
            rxtx(RX, TX, 1)[..1].to_vec()
        }),
        ("zero pages", |_| rxtx(RX, TX, 0)),
        ("too many pages", |_| rxtx(RX, RX + 17 * 4096, 17)),
        ("unaligned base", |_| rxtx(RX + 8, TX, 1)),
        ("overlapping buffers", |_| rxtx(RX, RX, 1)),
        ("inside the window", |h| {
            rxtx(h.base() as u64 + 0x10_0000, TX, 1)
        }),
        ("different sizes", |_| {
            vec![
                region("rx", 1, &[("base-address", RX), ("pages-count", 1)]),
                region("tx", 2, &[("base-address", TX), ("pages-count", 2)]),
            ]
        }),
    ];
    for (what, regions) in cases {
        // The head must be the one the regions were made for (the window case).
        let probe = Head::new();
        let dtb = manifest(Some(regions(&probe)));
        let head = probe.with_manifest(&dtb);
        assert!(
            matches!(head.parse(), Err(BootInfoError::RxTx(_))),
            "{what}: {:?}",
            head.parse()
        );
    }
    // rx_tx-info without its phandle properties.
    let mut tree = DeviceTree::new();
    tree.root
        .add_child(DeviceTreeNode::new_unchecked("rx_tx-info"));
    let head = Head::new().with_manifest(&tree.to_dtb());
    assert!(matches!(head.parse(), Err(BootInfoError::RxTx(_))));
}

proptest! {
    /// Whatever bytes the blob's first 128 bytes and the manifest's first 256 hold, parsing
    /// returns (it never panics or reads outside the head).
    #[test]
    fn hostile_blobs_never_panic(
        header in proptest::collection::vec(any::<u8>(), 128),
        dtb_noise in proptest::collection::vec(any::<u8>(), 256),
        keep_header in any::<bool>(),
    ) {
        let dtb = manifest(Some(rxtx(RX, TX, 1)));
        let mut head = Head::new().with_manifest(&dtb);
        let b = head.bytes();
        if keep_header {
            // Keep the signature and version so the descriptors are reached.
            b[12..128].copy_from_slice(&header[12..]);
        } else {
            b[..128].copy_from_slice(&header);
        }
        for (i, n) in dtb_noise.iter().enumerate() {
            b[PM_OFFSET + 40 + i] ^= n;
        }
        let _ = head.parse();
    }
}
