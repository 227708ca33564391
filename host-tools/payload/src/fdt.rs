//! Just enough of a flattened device tree reader to find the CPUs: the `reg` (MPIDR) of every
//! child of `/cpus` whose `device_type` is `"cpu"`, in the tree's order.
//!
//! QEMU `virt` hands its device tree to the firmware at the start of RAM and TF-A leaves it
//! there for BL33 (the payload reads it in place); the `/cpus` node has one `cpu@N` child per
//! `-smp` CPU, `reg` being its MPIDR affinity. Everything is bounds-checked: a malformed tree
//! is an [`FdtError`], never a panic.

use alloc::vec::Vec;

/// The magic number at offset 0 of a flattened device tree.
pub const FDT_MAGIC: u32 = 0xd00d_feed;

const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// Why the tree could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FdtError {
    /// No FDT magic number.
    #[error("no device tree (magic {0:#010x})")]
    NoMagic(u32),
    /// The header, a block or a token runs past the tree.
    #[error("device tree truncated or malformed at offset {0:#x}")]
    Malformed(usize),
    /// An unknown structure token.
    #[error("unknown device tree token {0:#x}")]
    Token(u32),
    /// No `/cpus` node, or no CPU in it.
    #[error("the device tree lists no CPU")]
    NoCpu,
}

fn be32(blob: &[u8], at: usize) -> Result<u32, FdtError> {
    let bytes = at
        .checked_add(4)
        .and_then(|end| blob.get(at..end))
        .ok_or(FdtError::Malformed(at))?;
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    Ok(u32::from_be_bytes(word))
}

/// `n` rounded up to a multiple of 4.
fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// The total size the header of `blob` gives (for a caller that must first read just the
/// header to know how much to map).
pub fn total_size(header: &[u8]) -> Result<usize, FdtError> {
    let magic = be32(header, 0)?;
    if magic != FDT_MAGIC {
        return Err(FdtError::NoMagic(magic));
    }
    usize::try_from(be32(header, 4)?).map_err(|_| FdtError::Malformed(4))
}

/// The properties of a `/cpus` child seen so far.
#[derive(Default)]
struct CpuNode {
    is_cpu: bool,
    reg: Option<u64>,
}

/// The MPIDR of every CPU the tree lists under `/cpus`, in order.
pub fn cpu_mpidrs(blob: &[u8]) -> Result<Vec<u64>, FdtError> {
    let size = total_size(blob)?;
    let blob = blob.get(..size).ok_or(FdtError::Malformed(size))?;
    let offset = |field: usize| -> Result<usize, FdtError> {
        usize::try_from(be32(blob, field)?).map_err(|_| FdtError::Malformed(field))
    };
    let structs = offset(8)?;
    let strings = offset(12)?;
    let string = |off: u32| -> Result<&[u8], FdtError> {
        let start = usize::try_from(off)
            .ok()
            .and_then(|o| strings.checked_add(o))
            .ok_or(FdtError::Malformed(strings))?;
        let rest = blob.get(start..).ok_or(FdtError::Malformed(start))?;
        let len = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(FdtError::Malformed(start))?;
        Ok(rest.get(..len).unwrap_or_default())
    };

    let mut found = Vec::new();
    let mut at = structs;
    let mut depth = 0usize;
    // Depth of the `/cpus` node while inside it, its #address-cells, and the child being read.
    let mut in_cpus = false;
    let mut address_cells = 2u32;
    let mut child: Option<CpuNode> = None;
    loop {
        let token = be32(blob, at)?;
        at = at.checked_add(4).ok_or(FdtError::Malformed(at))?;
        match token {
            BEGIN_NODE => {
                let rest = blob.get(at..).ok_or(FdtError::Malformed(at))?;
                let len = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or(FdtError::Malformed(at))?;
                let name = rest.get(..len).unwrap_or_default();
                at = len
                    .checked_add(1)
                    .and_then(align4)
                    .and_then(|n| at.checked_add(n))
                    .ok_or(FdtError::Malformed(at))?;
                depth = depth.checked_add(1).ok_or(FdtError::Malformed(at))?;
                if depth == 2 && name == b"cpus" {
                    in_cpus = true;
                } else if depth == 3 && in_cpus {
                    child = Some(CpuNode::default());
                }
            }
            END_NODE => {
                if depth == 3
                    && let Some(CpuNode {
                        is_cpu: true,
                        reg: Some(mpidr),
                    }) = child.take()
                {
                    found.push(mpidr);
                }
                if depth == 2 {
                    in_cpus = false;
                }
                depth = depth.checked_sub(1).ok_or(FdtError::Malformed(at))?;
            }
            PROP => {
                let len = usize::try_from(be32(blob, at)?).map_err(|_| FdtError::Malformed(at))?;
                let name = string(be32(blob, at.saturating_add(4))?)?;
                let start = at.checked_add(8).ok_or(FdtError::Malformed(at))?;
                let value = start
                    .checked_add(len)
                    .and_then(|end| blob.get(start..end))
                    .ok_or(FdtError::Malformed(start))?;
                at = align4(len)
                    .and_then(|n| start.checked_add(n))
                    .ok_or(FdtError::Malformed(start))?;
                if in_cpus && depth == 2 && name == b"#address-cells" {
                    address_cells = be32(value, 0)?;
                } else if let (Some(c), 3) = (child.as_mut(), depth) {
                    match name {
                        b"device_type" => c.is_cpu = value == b"cpu\0",
                        b"reg" => c.reg = Some(reg(value, address_cells)?),
                        _ => {}
                    }
                }
            }
            NOP => {}
            END => break,
            other => return Err(FdtError::Token(other)),
        }
    }
    if found.is_empty() {
        return Err(FdtError::NoCpu);
    }
    Ok(found)
}

/// The first address of a `reg` value of `cells` 32-bit cells (1 or 2).
fn reg(value: &[u8], cells: u32) -> Result<u64, FdtError> {
    match cells {
        1 => be32(value, 0).map(u64::from),
        2 => Ok(u64::from(be32(value, 0)?) << 32 | u64::from(be32(value, 4)?)),
        _ => Err(FdtError::Malformed(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal FDT writer for the tests.
    #[derive(Default)]
    struct Builder {
        structs: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Builder {
        fn word(&mut self, w: u32) {
            self.structs.extend_from_slice(&w.to_be_bytes());
        }
        fn pad(&mut self) {
            while !self.structs.len().is_multiple_of(4) {
                self.structs.push(0);
            }
        }
        fn begin(&mut self, name: &str) -> &mut Self {
            self.word(BEGIN_NODE);
            self.structs.extend_from_slice(name.as_bytes());
            self.structs.push(0);
            self.pad();
            self
        }
        fn end(&mut self) -> &mut Self {
            self.word(END_NODE);
            self
        }
        fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
            let off = u32::try_from(self.strings.len()).unwrap();
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            self.word(PROP);
            self.word(u32::try_from(value.len()).unwrap());
            self.word(off);
            self.structs.extend_from_slice(value);
            self.pad();
            self
        }
        fn finish(&mut self) -> Vec<u8> {
            self.word(END);
            let structs = 40usize;
            let strings = structs + self.structs.len();
            let total = strings + self.strings.len();
            let mut out = Vec::new();
            for w in [
                FDT_MAGIC,
                u32::try_from(total).unwrap(),
                u32::try_from(structs).unwrap(),
                u32::try_from(strings).unwrap(),
                40,
                17,
                16,
                0,
                u32::try_from(self.strings.len()).unwrap(),
                u32::try_from(self.structs.len()).unwrap(),
            ] {
                out.extend_from_slice(&w.to_be_bytes());
            }
            out.extend_from_slice(&self.structs);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    fn cpu(b: &mut Builder, name: &str, reg: &[u8]) {
        b.begin(name)
            .prop("device_type", b"cpu\0")
            .prop("compatible", b"arm,cortex-a57\0")
            .prop("reg", reg)
            .end();
    }

    /// QEMU virt's shape: `/cpus` with two address cells, a `cpu-map` and the CPUs in
    /// reverse order.
    fn qemu_like(cells: u32, cpus: &[u64]) -> Vec<u8> {
        let mut b = Builder::default();
        b.begin("").prop("#address-cells", &2u32.to_be_bytes());
        b.begin("psci").prop("method", b"smc\0").end();
        b.begin("cpus")
            .prop("#address-cells", &cells.to_be_bytes())
            .prop("#size-cells", &0u32.to_be_bytes());
        b.begin("cpu-map")
            .begin("socket0")
            .begin("cluster0")
            .end()
            .end()
            .end();
        for &m in cpus {
            let reg = if cells == 2 {
                m.to_be_bytes().to_vec()
            } else {
                u32::try_from(m).unwrap().to_be_bytes().to_vec()
            };
            cpu(&mut b, &format!("cpu@{m:x}"), &reg);
        }
        b.end();
        // A node elsewhere with a `reg` and a `device_type` is not a CPU of /cpus.
        b.begin("memory@40000000")
            .prop("device_type", b"memory\0")
            .prop("reg", &[0, 0, 0, 0, 0x40, 0, 0, 0])
            .end();
        b.end();
        b.finish()
    }

    #[test]
    fn finds_every_cpu_in_order() {
        let blob = qemu_like(2, &[3, 2, 1, 0]);
        assert_eq!(cpu_mpidrs(&blob), Ok(vec![3, 2, 1, 0]));
        let blob = qemu_like(1, &[0, 0x100]);
        assert_eq!(cpu_mpidrs(&blob), Ok(vec![0, 0x100]));
        assert_eq!(total_size(&blob), Ok(blob.len()));
    }

    #[test]
    fn a_cpu_without_device_type_is_not_counted() {
        let mut b = Builder::default();
        b.begin("")
            .begin("cpus")
            .prop("#address-cells", &1u32.to_be_bytes());
        cpu(&mut b, "cpu@0", &0u32.to_be_bytes());
        b.begin("cpu@1").prop("reg", &1u32.to_be_bytes()).end();
        b.end().end();
        assert_eq!(cpu_mpidrs(&b.finish()), Ok(vec![0]));
    }

    #[test]
    fn bad_trees_are_errors() {
        assert_eq!(cpu_mpidrs(&[0; 64]), Err(FdtError::NoMagic(0)));
        assert_eq!(cpu_mpidrs(&[]), Err(FdtError::Malformed(0)));
        let blob = qemu_like(2, &[0, 1]);
        // Every truncation is an error, never a panic.
        for n in 0..blob.len() {
            let mut cut = blob[..n].to_vec();
            assert!(cpu_mpidrs(&cut).is_err(), "{n}");
            // Also with the header claiming the cut size.
            if n >= 8 {
                cut[4..8].copy_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
                assert!(cpu_mpidrs(&cut).is_err(), "{n}");
            }
        }
        let mut b = Builder::default();
        b.begin("").end();
        assert_eq!(cpu_mpidrs(&b.finish()), Err(FdtError::NoCpu));
        let mut b = Builder::default();
        b.word(7);
        assert_eq!(cpu_mpidrs(&b.finish()), Err(FdtError::Token(7)));
    }
}
