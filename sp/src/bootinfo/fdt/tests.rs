//! The DTB reader against hand-built blobs: every token in order, and each malformation
//! refused (never a panic, never a read outside the blob).

use alloc::{vec, vec::Vec};

use proptest::prelude::*;

use super::*;

/// A structure block builder: tokens as big-endian words, names and values padded to 4 bytes.
#[derive(Default)]
struct Block {
    words: Vec<u8>,
    strings: Vec<u8>,
}

impl Block {
    fn token(mut self, t: u32) -> Self {
        self.words.extend(t.to_be_bytes());
        self
    }

    fn padded(mut self, bytes: &[u8]) -> Self {
        self.words.extend(bytes);
        while !self.words.len().is_multiple_of(4) {
            self.words.push(0);
        }
        self
    }

    fn begin(self, name: &str) -> Self {
        let mut name = name.as_bytes().to_vec();
        name.push(0);
        self.token(BEGIN_NODE).padded(&name)
    }

    fn end(self) -> Self {
        self.token(END_NODE)
    }

    fn prop(mut self, name: &str, value: &[u8]) -> Self {
        let offset = u32::try_from(self.strings.len()).unwrap();
        self.strings.extend(name.as_bytes());
        self.strings.push(0);
        let len = u32::try_from(value.len()).unwrap();
        self.token(PROP)
            .padded(&len.to_be_bytes())
            .padded(&offset.to_be_bytes())
            .padded(value)
    }

    /// The DTB: header (version 17, last compatible 16), an empty memory reservation map,
    /// the structure block, the strings.
    fn dtb(&self) -> Vec<u8> {
        let off_struct = HEADER + 16;
        let off_strings = off_struct + self.words.len();
        let total = off_strings + self.strings.len();
        let header = [
            usize::try_from(MAGIC).unwrap(),
            total,
            off_struct,
            off_strings,
            HEADER,
            usize::try_from(VERSION).unwrap(),
            16,
            0,
            self.strings.len(),
            self.words.len(),
        ]
        .map(|w| u32::try_from(w).unwrap());
        let mut out: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
        out.extend([0u8; 16]);
        out.extend(&self.words);
        out.extend(&self.strings);
        out
    }
}

/// A small manifest-like tree.
fn sample() -> Block {
    Block::default()
        .begin("")
        .prop("ffa-version", &0x0001_0002u32.to_be_bytes())
        .token(NOP)
        .begin("memory-regions")
        .begin("rx@0")
        .prop("pages-count", &1u32.to_be_bytes())
        .prop("empty", &[])
        .end()
        .end()
        .end()
        .token(END)
}

/// Every token of `dtb`, or `None` if the walk refused it.
fn tokens(dtb: &[u8]) -> Option<Vec<(usize, Token<'_>)>> {
    let fdt = Fdt::new(dtb)?;
    let mut out = Vec::new();
    fdt.walk(|depth, token| {
        out.push((depth, token));
        true
    })?;
    Some(out)
}

#[test]
fn the_walk_gives_every_token_in_order_with_its_depth() {
    let dtb = sample().dtb();
    assert_eq!(
        tokens(&dtb).unwrap(),
        vec![
            (1, Token::Begin(b"")),
            (1, Token::Prop(b"ffa-version", &[0, 1, 0, 2])),
            (2, Token::Begin(b"memory-regions")),
            (3, Token::Begin(b"rx@0")),
            (3, Token::Prop(b"pages-count", &[0, 0, 0, 1])),
            (3, Token::Prop(b"empty", &[])),
            (3, Token::End),
            (2, Token::End),
            (1, Token::End),
        ]
    );
    assert_eq!(base_name(b"rx@0"), b"rx");
    assert_eq!(base_name(b"rx_tx-info"), b"rx_tx-info");
}

#[test]
fn the_walk_stops_when_told() {
    let dtb = sample().dtb();
    let fdt = Fdt::new(&dtb).unwrap();
    let mut seen = 0;
    assert_eq!(
        fdt.walk(|_, _| {
            seen += 1;
            seen < 3
        }),
        Some(())
    );
    assert_eq!(seen, 3);
}

#[test]
fn a_dtb_written_by_dtoolkit_walks() {
    use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
    let mut tree = DeviceTree::new();
    tree.root.add_property(DeviceTreeProperty::new_unchecked(
        "messaging-method",
        0x201u32,
    ));
    tree.root
        .add_child(DeviceTreeNode::new_unchecked("rx_tx-info"));
    let dtb = tree.to_dtb();
    let got = tokens(&dtb).unwrap();
    assert!(got.contains(&(1, Token::Prop(b"messaging-method", &[0, 0, 2, 1]))));
    assert!(got.contains(&(2, Token::Begin(b"rx_tx-info"))));
}

#[test]
fn bad_headers_are_refused() {
    let good = sample().dtb();
    let word = |dtb: &mut Vec<u8>, i: usize, v: u32| {
        dtb[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    };
    type Corruption = (&'static str, fn(&mut Vec<u8>));
    let cases: [Corruption; 9] = [
        ("magic", |d| d[0] ^= 1),
        ("totalsize above the blob", |d| {
            let n = u32::try_from(d.len() + 1).unwrap();
            d[4..8].copy_from_slice(&n.to_be_bytes());
        }),
        // One byte more than the header says.
        ("totalsize below the blob", |d| d.push(0)),
        ("version 16 only", |d| {
            d[20..24].copy_from_slice(&16u32.to_be_bytes())
        }),
        ("last compatible 18", |d| {
            d[24..28].copy_from_slice(&18u32.to_be_bytes())
        }),
        ("structure past the blob", |d| {
            d[36..40].copy_from_slice(&u32::MAX.to_be_bytes())
        }),
        ("strings past the blob", |d| {
            d[32..36].copy_from_slice(&0x1000u32.to_be_bytes())
        }),
        ("structure offset wraps", |d| {
            d[8..12].copy_from_slice(&u32::MAX.to_be_bytes())
        }),
        ("shorter than a header", |d| d.truncate(HEADER - 1)),
    ];
    for (what, corrupt) in cases {
        let mut dtb = good.clone();
        corrupt(&mut dtb);
        assert!(Fdt::new(&dtb).is_none(), "{what}");
    }
    // A structure block that is not 4-byte aligned.
    let mut dtb = good.clone();
    word(&mut dtb, 2, u32::try_from(HEADER + 16 + 2).unwrap());
    word(&mut dtb, 9, 4);
    assert!(Fdt::new(&dtb).is_none());
    assert!(Fdt::new(&good).is_some());
}

#[test]
fn malformed_structure_blocks_are_refused() {
    let cases: [(&str, Block); 10] = [
        (
            "unknown token",
            Block::default().begin("").token(5).end().token(END),
        ),
        (
            "property outside a node",
            Block::default().prop("x", &[1]).token(END),
        ),
        (
            "unbalanced end node",
            Block::default().begin("").end().end().token(END),
        ),
        (
            "a second root",
            Block::default().begin("").end().begin("").end().token(END),
        ),
        (
            "a named root",
            Block::default().begin("root").end().token(END),
        ),
        (
            "an unnamed child",
            Block::default().begin("").begin("").end().end().token(END),
        ),
        ("end inside a node", Block::default().begin("").token(END)),
        ("no end", Block::default().begin("").end()),
        ("empty", Block::default()),
        ("end without a root", Block::default().token(END)),
    ];
    for (what, block) in cases {
        assert_eq!(tokens(&block.dtb()), None, "{what}");
    }
    // A property whose name lies outside the strings block, or whose value runs past the
    // structure block.
    let mut block = Block::default()
        .begin("")
        .prop("name", &[1, 2, 3, 4])
        .end()
        .token(END);
    let name_at = 4 + 4 + 4 + 4; // BEGIN_NODE, "\0" padded, PROP, len
    block.words[name_at..name_at + 4].copy_from_slice(&100u32.to_be_bytes());
    assert_eq!(tokens(&block.dtb()), None, "name offset");
    let mut block = Block::default()
        .begin("")
        .prop("name", &[1, 2, 3, 4])
        .end()
        .token(END);
    block.words[name_at - 4..name_at].copy_from_slice(&1000u32.to_be_bytes());
    assert_eq!(tokens(&block.dtb()), None, "value length");
    let mut block = Block::default()
        .begin("")
        .prop("name", &[1])
        .end()
        .token(END);
    block.strings.pop(); // the name's NUL
    assert_eq!(tokens(&block.dtb()), None, "unterminated name");
}

#[test]
fn every_truncation_of_the_structure_block_is_refused() {
    let block = sample();
    for len in 0..block.words.len() {
        let cut = Block {
            words: block.words[..len].to_vec(),
            strings: block.strings.clone(),
        };
        assert_eq!(tokens(&cut.dtb()), None, "cut at {len}");
    }
}

proptest! {
    /// Whatever the structure block and the strings hold, the walk returns.
    #[test]
    fn hostile_blocks_never_panic(
        noise in proptest::collection::vec(any::<u8>(), 0..160),
        at in 0usize..160,
        strings in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut block = sample();
        for (i, n) in noise.iter().enumerate() {
            if let Some(b) = block.words.get_mut((at + i) % 160) {
                *b ^= n;
            }
        }
        block.strings.extend(strings);
        let _ = tokens(&block.dtb());
    }
}
