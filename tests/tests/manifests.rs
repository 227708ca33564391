//! The SP's integration files agree with each other and with the image's layout constants.
//!
//! The load address lives in `sp/qemu/src/layout.rs` (the linker script is generated from it)
//! and is repeated in the SP manifest, the SPMC manifest fragment, the TB_FW_CONFIG fragment and
//! `sp_layout.json`, which an SPMC and TF-A read. These tests read those files as text (they are
//! not Rust), so a change to one of them without the others fails here.

use std::{fs, path::PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `0x0e30_0000` or `4096` as written in Rust, DTS or JSON.
fn parse_int(s: &str) -> u64 {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{s}: {e}")),
        None => s.parse().unwrap_or_else(|e| panic!("{s}: {e}")),
    }
}

/// `pub const NAME: u64 = <literal>;` from `layout.rs`.
fn layout_const(name: &str) -> u64 {
    let text = read("sp/qemu/src/layout.rs");
    let prefix = format!("pub const {name}: u64 = ");
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("layout.rs has no `{prefix}`"));
    parse_int(line.trim_end_matches(';'))
}

/// Strips `/* */` and `//` comments from DTS text.
fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = rest[i..].split_once("*/").map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The values of every `name = ...;` in DTS text (comments removed), raw.
fn dts_props(text: &str, name: &str) -> Vec<String> {
    let code = strip_comments(text);
    let mut found = Vec::new();
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        // A statement may start with the end of a node (`}`) or a node header (`x {`).
        let stmt = stmt.rsplit(['{', '}']).next().unwrap_or(stmt).trim();
        if let Some((key, value)) = stmt.split_once('=')
            && key.trim() == name
        {
            found.push(value.trim().to_string());
        }
    }
    found
}

/// The cells of a `<a b c>` value.
fn cells(value: &str) -> Vec<u64> {
    let inner = value
        .trim()
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or_else(|| panic!("not a cell list: {value}"));
    inner.split_whitespace().map(parse_int).collect()
}

/// A 1- or 2-cell number.
fn cells_u64(value: &str) -> u64 {
    match cells(value)[..] {
        [v] => v,
        [hi, lo] => (hi << 32) | lo,
        ref other => panic!("expected 1 or 2 cells, got {other:?}"),
    }
}

/// The single occurrence of DTS property `name` as a number.
fn dts_u64(text: &str, name: &str) -> u64 {
    let values = dts_props(text, name);
    assert_eq!(values.len(), 1, "expected one `{name}`, found {values:?}");
    cells_u64(&values[0])
}

/// The single occurrence of DTS property `name` as a string.
fn dts_str(text: &str, name: &str) -> String {
    let values = dts_props(text, name);
    assert_eq!(values.len(), 1, "expected one `{name}`, found {values:?}");
    values[0].trim_matches('"').to_string()
}

/// The string value of `"key": "value"` in the JSON text (first occurrence).
fn json_str(text: &str, key: &str) -> String {
    let pat = format!("\"{key}\"");
    let at = text
        .find(&pat)
        .unwrap_or_else(|| panic!("no {pat} in json"));
    let rest = text[at + pat.len()..].trim_start();
    let rest = rest.strip_prefix(':').expect("colon").trim_start();
    let rest = rest.strip_prefix('"').expect("string value");
    rest[..rest.find('"').expect("closing quote")].to_string()
}

const DEVICE_UUID: &str = "c66028b5-2498-4aa1-9de7-77da6122abf0";

#[test]
fn device_uuid_constant_is_the_one_in_the_files() {
    assert_eq!(ffa::VIRTIO_MSG_DEVICE_UUID.to_string(), DEVICE_UUID);
}

#[test]
fn load_address_agrees_everywhere() {
    let load = layout_const("LOAD_ADDRESS");
    assert_eq!(load, 0x0e30_0000, "the SP window of TF-A's QEMU port");
    let sp = read("manifests/virtio-msg-sp.dts");
    let spmc = read("manifests/spmc_manifest.dtsi");
    let tb = read("manifests/tb_fw_config.dtsi");
    let layout = read("manifests/sp_layout.json");
    assert_eq!(dts_u64(&sp, "load-address"), load, "SP manifest");
    assert_eq!(
        dts_u64(&spmc, "load_address"),
        load,
        "SPMC manifest vm node"
    );
    assert_eq!(
        dts_u64(&tb, "load-address"),
        load,
        "TB_FW_CONFIG arm,sp node"
    );
    assert_eq!(
        parse_int(&json_str(&layout, "physical-load-address")),
        load,
        "sp_layout.json"
    );
}

#[test]
fn image_and_manifest_offsets_agree() {
    let image_offset = layout_const("IMAGE_OFFSET");
    let manifest_offset = layout_const("MANIFEST_OFFSET");
    assert_eq!(u64::from(vmsg_host::spkg::IMG_OFFSET), image_offset);
    assert_eq!(u64::from(vmsg_host::spkg::PM_OFFSET), manifest_offset);
    let sp = read("manifests/virtio-msg-sp.dts");
    assert_eq!(dts_u64(&sp, "entrypoint-offset"), image_offset);
    // In sp_layout.json the image comes first, the manifest second.
    let layout = read("manifests/sp_layout.json");
    let image = &layout[layout.find("\"image\"").unwrap()..];
    assert_eq!(parse_int(&json_str(image, "offset")), image_offset);
    let pm = &layout[layout.find("\"pm\"").unwrap()..];
    assert_eq!(parse_int(&json_str(pm, "offset")), manifest_offset);
    assert_eq!(json_str(pm, "file"), "virtio-msg-sp.dts");
}

#[test]
fn memory_window_and_rxtx_buffers() {
    let load = layout_const("LOAD_ADDRESS");
    let mem_size = layout_const("MEM_SIZE");
    let spmc = read("manifests/spmc_manifest.dtsi");
    assert_eq!(
        dts_u64(&spmc, "mem_size"),
        mem_size,
        "SPMC manifest mem_size"
    );
    let sp = read("manifests/virtio-msg-sp.dts");
    assert_eq!(
        dts_u64(&spmc, "vcpu_count"),
        dts_u64(&sp, "execution-ctx-count"),
        "vCPUs = execution contexts"
    );
    let bases: Vec<u64> = dts_props(&sp, "base-address")
        .iter()
        .map(|v| cells_u64(v))
        .collect();
    let pages: Vec<u64> = dts_props(&sp, "pages-count")
        .iter()
        .map(|v| cells_u64(v))
        .collect();
    assert_eq!(bases.len(), 2, "RX and TX regions");
    assert_eq!(pages, [1, 1], "RX and TX are one page each (equal sizes)");
    let window = load..load + mem_size;
    // Secure DRAM of TF-A's QEMU port, above Hafnium's own 2 MiB.
    let secure = 0x0e30_0000..0x0f00_0000;
    for (&base, &n) in bases.iter().zip(&pages) {
        let end = base + n * 4096;
        assert_eq!(base % 4096, 0, "{base:#x} page aligned");
        assert!(
            end <= window.start || base >= window.end,
            "{base:#x} overlaps the partition window (Hafnium refuses that)"
        );
        assert!(
            secure.contains(&base) && end <= secure.end,
            "{base:#x} in secure DRAM"
        );
    }
    assert_ne!(bases[0], bases[1]);
    // The image (linked at load + image offset) must leave room in the window.
    assert!(layout_const("IMAGE_OFFSET") + layout_const("MIN_HEAP_SIZE") < mem_size);
}

#[test]
fn uuid_words_decode_to_the_virtio_msg_device_uuid() {
    let sp = read("manifests/virtio-msg-sp.dts");
    let words = cells(&dts_props(&sp, "uuid")[0]);
    assert_eq!(words.len(), 4);
    // SMCCC packing: each word is the little-endian u32 of four UUID bytes in string order.
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|&w| u32::try_from(w).unwrap().to_le_bytes())
        .collect();
    let uuid = ffa::arm_ffa::Uuid::from_slice(&bytes).unwrap();
    assert_eq!(uuid, ffa::VIRTIO_MSG_DEVICE_UUID);
    // The same words arm-ffa puts in w2..w5 for this UUID.
    let regs = ffa::arm_ffa::UuidHelper::to_u32_regs(ffa::VIRTIO_MSG_DEVICE_UUID);
    assert_eq!(words, regs.map(u64::from));

    let tb = read("manifests/tb_fw_config.dtsi");
    assert_eq!(dts_str(&tb, "uuid"), DEVICE_UUID);
    let layout = read("manifests/sp_layout.json");
    assert_eq!(json_str(&layout, "uuid"), DEVICE_UUID);
}

#[test]
fn manifest_properties_hafnium_needs() {
    let sp = read("manifests/virtio-msg-sp.dts");
    assert_eq!(
        dts_props(&sp, "compatible").first().map(String::as_str),
        Some("\"arm,ffa-manifest-1.0\""),
        "the root node's compatible comes first"
    );
    assert_eq!(dts_u64(&sp, "ffa-version"), 0x0001_0002);
    assert_eq!(dts_u64(&sp, "exception-level"), 2, "S-EL1");
    assert_eq!(dts_u64(&sp, "execution-state"), 0, "AArch64");
    assert_eq!(dts_u64(&sp, "xlat-granule"), 0, "4 KiB");
    assert_eq!(dts_u64(&sp, "gp-register-num"), 0, "boot info in x0");
    let method = dts_u64(&sp, "messaging-method");
    assert_ne!(method & (1 << 9), 0, "receives DIRECT_REQ2");
    assert_ne!(
        method & 1,
        0,
        "receives DIRECT_REQ (G2 driver, framework messages)"
    );
    let allowed = 1 | 1 << 1 | 1 << 2 | 1 << 9 | 1 << 10;
    assert_eq!(method & !allowed, 0, "Hafnium rejects other bits");
    assert_eq!(
        dts_u64(&sp, "ns-interrupts-action"),
        0,
        "queued: a signaled NS interrupt livelocks a Linux caller that has interrupts masked"
    );
    assert!(
        strip_comments(&sp).contains("ffa_manifest;"),
        "boot-info asks for the manifest"
    );
}

#[test]
fn tf_a_line_scan_finds_one_uuid_and_one_load_address() {
    // Without "uuid"/"physical-load-address" in sp_layout.json, TF-A's sp_mk_generator.py takes
    // them from the single line of the .dts that mentions them; keep that working.
    let sp = read("manifests/virtio-msg-sp.dts");
    assert_eq!(sp.lines().filter(|l| l.contains("uuid")).count(), 1);
    let load_lines = sp
        .lines()
        .filter(|l| {
            l.match_indices("load-address")
                .any(|(i, m)| l[i + m.len()..].chars().next().is_some_and(|c| c != '-'))
        })
        .count();
    assert_eq!(load_lines, 1);
}

#[test]
fn helpers_reject_what_they_should() {
    // The parsers above are what these tests stand on: check them on known text.
    let text = "/* load-address = <1>; */ a { load-address = <0x0 0x10>; }; // x = <2>;";
    assert_eq!(dts_props(text, "load-address"), ["<0x0 0x10>"]);
    assert_eq!(dts_u64(text, "load-address"), 0x10);
    assert!(dts_props(text, "x").is_empty());
    assert_eq!(cells_u64("<0x1 0x2>"), 0x1_0000_0002);
    assert_eq!(parse_int("0x0e30_0000"), 0x0e30_0000);
    assert!(std::panic::catch_unwind(|| cells("0x1")).is_err());
}
