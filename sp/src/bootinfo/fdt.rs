//! The manifest DTB, read the way the partition needs it: the header checked, the structure
//! block walked token by token with every offset and length bounds-checked against the blob
//! (devicetree specification v0.4, chapter 5).
//!
//! The walk is all the validation there is: a token other than the five defined, a name or a
//! value that runs past the structure block, a property name outside the strings block, a
//! property outside a node, an unbalanced `FDT_END_NODE` or anything but `FDT_END` after the
//! root node makes the blob unusable. Names are compared as bytes; nothing checks the
//! characters of names the partition never looks up (a general parser's validation of every
//! name and string was three quarters of the boot's manifest cost).

/// `FDT_MAGIC`.
const MAGIC: u32 = 0xd00d_feed;
/// The version whose structure block this reads (it must lie in `last_comp_version..=version`).
const VERSION: u32 = 17;
/// Size of the header (version 17).
const HEADER: usize = 40;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// One token of the structure block, with the depth of the node it belongs to (the root is 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    /// A node begins: its name (unit address included).
    Begin(&'a [u8]),
    /// A property of the current node: name and value.
    Prop(&'a [u8], &'a [u8]),
    /// The current node ends.
    End,
}

/// A DTB whose header checked out.
#[derive(Clone, Copy, Debug)]
pub struct Fdt<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
}

/// The big-endian `u32` at `at` in `bytes`.
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..)?
        .first_chunk()
        .copied()
        .map(u32::from_be_bytes)
}

/// The bytes of `bytes` from `at` up to (not including) the next NUL; `None` without one.
fn until_nul(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let rest = bytes.get(at..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    rest.get(..len)
}

/// `at` rounded up to the next 4-byte boundary.
fn align4(at: usize) -> Option<usize> {
    at.checked_next_multiple_of(4)
}

impl<'a> Fdt<'a> {
    /// The DTB in `blob` (exactly `totalsize` bytes), if its header is one: the magic, a
    /// version range that includes 17, and structure and strings blocks inside the blob (the
    /// structure block 4-byte aligned).
    pub fn new(blob: &'a [u8]) -> Option<Self> {
        let word = |i: usize| be32(blob, i.checked_mul(4)?);
        if blob.len() < HEADER || word(0)? != MAGIC {
            return None;
        }
        let total = usize::try_from(word(1)?).ok()?;
        let (version, last_compatible) = (word(5)?, word(6)?);
        if total != blob.len() || !(last_compatible..=version).contains(&VERSION) {
            return None;
        }
        let block = |offset: u32, size: u32| {
            let start = usize::try_from(offset).ok()?;
            let end = start.checked_add(usize::try_from(size).ok()?)?;
            blob.get(start..end)
        };
        let structure = block(word(2)?, word(9)?)?;
        let strings = block(word(3)?, word(8)?)?;
        if !word(2)?.is_multiple_of(4) {
            return None;
        }
        Some(Self { structure, strings })
    }

    /// Hands every token of the structure block, in order and with its node's depth, to
    /// `visit` until it returns `false`. `None` if the block is malformed before that (see the
    /// module docs); `Some(())` once `visit` stopped or the block ended well.
    pub fn walk(&self, mut visit: impl FnMut(usize, Token<'a>) -> bool) -> Option<()> {
        self.walk_dyn(&mut visit)
    }

    /// [`walk`](Self::walk) behind a `dyn` visitor: one copy of the walk in the image however
    /// many visitors there are (each copy, with its visitor inlined, was 2 KiB).
    fn walk_dyn(&self, visit: &mut dyn FnMut(usize, Token<'a>) -> bool) -> Option<()> {
        let block = self.structure;
        let mut at = 0usize;
        let mut depth = 0usize;
        let mut root_done = false;
        loop {
            let token = be32(block, at)?;
            at = at.checked_add(4)?;
            let (node_depth, token) = match token {
                NOP => continue,
                END => return (root_done && depth == 0).then_some(()),
                BEGIN_NODE if !root_done => {
                    let name = until_nul(block, at)?;
                    // The root node has an empty name.
                    if (depth == 0) != name.is_empty() {
                        return None;
                    }
                    at = align4(at.checked_add(name.len())?.checked_add(1)?)?;
                    depth = depth.checked_add(1)?;
                    (depth, Token::Begin(name))
                }
                END_NODE if depth > 0 => {
                    let node_depth = depth;
                    depth = depth.checked_sub(1)?;
                    root_done = depth == 0;
                    (node_depth, Token::End)
                }
                PROP if depth > 0 => {
                    let len = usize::try_from(be32(block, at)?).ok()?;
                    let name_offset = usize::try_from(be32(block, at.checked_add(4)?)?).ok()?;
                    let start = at.checked_add(8)?;
                    let end = start.checked_add(len)?;
                    let value = block.get(start..end)?;
                    let name = until_nul(self.strings, name_offset)?;
                    at = align4(end)?;
                    (depth, Token::Prop(name, value))
                }
                _ => return None,
            };
            if !visit(node_depth, token) {
                return Some(());
            }
        }
    }
}

/// A node name without its unit address (`memory@4000` → `memory`).
pub fn base_name(name: &[u8]) -> &[u8] {
    name.split(|&b| b == b'@').next().unwrap_or(name)
}

/// Where `name` is in `names`.
///
/// Names are looked up here rather than matched against byte-string patterns or compared with
/// `==` to a literal: either expands, per literal, into byte-by-byte or word-by-word compares
/// with the literal built in registers (1.6 KiB of the image for the manifest's dozen names),
/// where this is one loop over `bcmp`.
#[inline(never)]
pub fn lookup(names: &[&[u8]], name: &[u8]) -> Option<usize> {
    names.iter().position(|n| *n == name)
}

/// Whether `name` is `want` (through [`lookup`], for the same reason).
pub fn is(name: &[u8], want: &[u8]) -> bool {
    lookup(&[want], name).is_some()
}

#[cfg(test)]
mod tests;
