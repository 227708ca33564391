//! The virtio-blk model (`sp::devices::blk::Blk` over a `RamStore`) against chains the fuzzer
//! builds: any request type, sector, header split, data lengths and directions, buffers inside,
//! across and outside the one shared region, a read-only disk or not, any budget. Serving
//! never panics; a notify that succeeds returns each chain with a used length of at most its
//! writable bytes (and at least the status byte when it has one); a read-only disk never
//! changes; a chain is never started once the budget is spent.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sp::devices::blk::{Blk, ram::RamStore};
use virtio_msg::{
    SharedMem,
    device::{Budget, QueueConfig, VirtioDevice},
    mem::VecMem,
};

/// Where the region sits on the bus (area 1, offset 0).
const BASE: u64 = 1 << 48;
/// Size of the shared region.
const LEN: usize = 64 * 1024;
/// Rings at fixed places, buffers after them.
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x1000;
const USED: u64 = BASE + 0x2000;
const BUFFERS: u64 = 0x3000;
const QSIZE: u16 = 32;
/// Sectors of the disk.
const SECTORS: u64 = 64;

#[derive(Arbitrary, Debug)]
struct Buffer {
    /// Offset in the buffer area (past the end of the region for large values).
    offset: u16,
    len: u16,
    writable: bool,
}

#[derive(Arbitrary, Debug)]
struct Request {
    /// 0..=5: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES; anything else: `raw_kind`.
    kind: u8,
    raw_kind: u32,
    /// Small values land inside the disk, large ones past it.
    sector: u64,
    /// A discard / write-zeroes segment, written after the header.
    seg_sector: u64,
    seg_count: u32,
    seg_flags: u32,
    buffers: Vec<Buffer>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    read_only: bool,
    features: u64,
    budget: u32,
    requests: Vec<Request>,
}

fn put(region: &mut VecMem, addr: u64, data: &[u8]) {
    let _ = region.write(addr, data);
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    // The one shared region: every access outside it is refused.
    let mut region = VecMem::new(BASE, LEN);
    let mut store = RamStore::new(SECTORS as usize * 512, *b"fuzz-disk\0\0\0\0\0\0\0\0\0\0\0")
        .unwrap()
        .with_read_only(input.read_only);
    for (i, b) in store.bytes_mut().iter_mut().enumerate() {
        *b = (i / 512) as u8;
    }
    let before = store.bytes().to_vec();
    let mut blk = Blk::new(store);
    let config = QueueConfig {
        size: QSIZE,
        desc_addr: DESC,
        driver_addr: AVAIL,
        device_addr: USED,
    };
    blk.activate(input.features, &[Some(config)]).unwrap();

    // Lay the chains out: descriptors in order, each chain's header (and segment) written at
    // its first buffer.
    let mut next = 0u16;
    let mut heads = Vec::new();
    let mut writable_lens = Vec::new();
    for req in input.requests.iter().take(usize::from(QSIZE)) {
        let n = req.buffers.len().clamp(1, 8) as u16;
        if next + n > QSIZE {
            break;
        }
        let head = next;
        let mut writable = 0u64;
        for (k, buf) in req.buffers.iter().take(usize::from(n)).enumerate() {
            let i = head + k as u16;
            let addr = BASE + BUFFERS + u64::from(buf.offset);
            let mut flags = if buf.writable { 2u16 } else { 0 };
            if (k as u16) + 1 < n {
                flags |= 1;
            }
            if buf.writable {
                writable += u64::from(buf.len);
            }
            let mut raw = [0u8; 16];
            raw[0..8].copy_from_slice(&addr.to_le_bytes());
            raw[8..12].copy_from_slice(&u32::from(buf.len).to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&(i + 1).to_le_bytes());
            put(&mut region, DESC + 16 * u64::from(i), &raw);
            if k == 0 {
                let kind = match req.kind {
                    0 => 0,
                    1 => 1,
                    2 => 4,
                    3 => 8,
                    4 => 11,
                    5 => 13,
                    _ => req.raw_kind,
                };
                let sector = if req.sector % 4 == 0 {
                    req.sector
                } else {
                    req.sector % (SECTORS + 4)
                };
                let mut hdr = [0u8; 32];
                hdr[0..4].copy_from_slice(&kind.to_le_bytes());
                hdr[8..16].copy_from_slice(&sector.to_le_bytes());
                hdr[16..24].copy_from_slice(&(req.seg_sector % (SECTORS + 4)).to_le_bytes());
                hdr[24..28].copy_from_slice(&(req.seg_count % 80).to_le_bytes());
                hdr[28..32].copy_from_slice(&req.seg_flags.to_le_bytes());
                put(&mut region, addr, &hdr);
            }
        }
        // Publish the chain.
        let slot = heads.len() as u64;
        put(&mut region, AVAIL + 4 + 2 * slot, &head.to_le_bytes());
        heads.push(head);
        writable_lens.push(writable);
        next += n;
    }
    put(&mut region, AVAIL + 2, &(heads.len() as u16).to_le_bytes());

    let mut budget = Budget::bytes(u64::from(input.budget));
    let result = blk.notify(0, &mut region, &mut budget);
    let mut idx = [0u8; 2];
    region.read(USED + 2, &mut idx).unwrap();
    let used = u16::from_le_bytes(idx);
    assert!(usize::from(used) <= heads.len());
    if result.is_ok() {
        for i in 0..used {
            let mut elem = [0u8; 8];
            region.read(USED + 4 + 8 * u64::from(i), &mut elem).unwrap();
            let id = u32::from_le_bytes(elem[..4].try_into().unwrap());
            let len = u32::from_le_bytes(elem[4..].try_into().unwrap());
            let k = usize::from(i);
            assert_eq!(id, u32::from(heads[k]), "chains come back in order");
            assert!(u64::from(len) <= writable_lens[k], "used {len} > writable");
            assert!(
                writable_lens[k] == 0 || len >= 1,
                "a chain with a status byte got none"
            );
        }
        // Every chain was served unless the budget ran out first.
        if !budget.is_spent() {
            assert_eq!(usize::from(used), heads.len());
        }
    }
    if input.read_only {
        assert_eq!(blk.store().bytes(), &before[..], "a read-only disk changed");
    }
});
