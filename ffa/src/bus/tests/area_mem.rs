//! `AreaMem` over an area of several segments: an access inside the first segment, inside a
//! later one, across a boundary, past the end, and a write to a read-only area each reach
//! exactly the bytes they name, or nothing.

use virtio_msg::{MemError, SharedMem};

use super::*;

/// An area of two segments in two different places: 4 KiB (handle 0x21's memory) then 8 KiB
/// (handle 0x22's), as an area of two constituents is mapped.
fn two_segment_area(fake: &mut Fake, writable: bool) -> AreaTable {
    fake.offer(0x21, VM, 1);
    fake.offer(0x22, VM, 2);
    for handle in [0x21, 0x22] {
        fake.retrieve(VM, handle, 0, ShareKind::Share).unwrap();
    }
    let mut table = AreaTable::new();
    table.insert(
        1,
        RetrievedArea {
            handle: 0x21,
            segments: vec![
                Segment {
                    base: Fake::base(0x21),
                    len: 4096,
                },
                Segment {
                    base: Fake::base(0x22),
                    len: 8192,
                },
            ],
            len: 12288,
            writable,
            pages: 3,
        },
        AreaState::Live,
    );
    table
}

fn byte_at(fake: &Fake, handle: u64, offset: usize) -> u8 {
    fake.memory.borrow()[&Fake::base(handle)][offset]
}

#[test]
fn accesses_reach_the_segment_that_holds_each_byte() {
    let mut fake = Fake::default();
    let table = two_segment_area(&mut fake, true);
    let mut mem = AreaMem::new(&table, &fake);
    // Inside the first segment.
    mem.write(bus_address(1, 100), &[1, 2, 3]).unwrap();
    // Inside the second, at its start and further in.
    mem.write(bus_address(1, 4096), &[4]).unwrap();
    mem.write(bus_address(1, 4096 + 5000), &[5, 6]).unwrap();
    // Across the boundary: the last 2 bytes of the first, the first 2 of the second.
    mem.write(bus_address(1, 4094), &[7, 8, 9, 10]).unwrap();
    assert_eq!(
        (0..3)
            .map(|i| byte_at(&fake, 0x21, 100 + i))
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(byte_at(&fake, 0x21, 4094), 7);
    assert_eq!(byte_at(&fake, 0x21, 4095), 8);
    assert_eq!(
        byte_at(&fake, 0x22, 0),
        9,
        "overwrote the 4 written at its start"
    );
    assert_eq!(byte_at(&fake, 0x22, 1), 10);
    assert_eq!(byte_at(&fake, 0x22, 5000), 5);
    assert_eq!(byte_at(&fake, 0x22, 5001), 6);
    // Read back the same way, across the boundary.
    let mem = AreaMem::new(&table, &fake);
    let mut got = [0u8; 4];
    mem.read(bus_address(1, 4094), &mut got).unwrap();
    assert_eq!(got, [7, 8, 9, 10]);
    let mut one = [0u8; 2];
    mem.read(bus_address(1, 4096 + 5000), &mut one).unwrap();
    assert_eq!(one, [5, 6]);
}

#[test]
fn accesses_past_the_end_or_to_a_read_only_area_touch_nothing() {
    let mut fake = Fake::default();
    let table = two_segment_area(&mut fake, true);
    let mut mem = AreaMem::new(&table, &fake);
    // The last byte is 12287: a 2-byte access there, and anything in another area, fail.
    assert!(matches!(
        mem.write(bus_address(1, 12287), &[0xee, 0xee]),
        Err(MemError::OutOfBounds { .. })
    ));
    assert!(mem.write(bus_address(2, 0), &[0xee]).is_err());
    mem.write(bus_address(1, 12287), &[0xaa]).unwrap();
    assert_eq!(byte_at(&fake, 0x22, 8191), 0xaa);
    assert!(
        fake.memory.borrow().values().flatten().all(|&b| b != 0xee),
        "a refused access wrote nothing"
    );
    let mut fake = Fake::default();
    let table = two_segment_area(&mut fake, false);
    let mut mem = AreaMem::new(&table, &fake);
    assert!(matches!(
        mem.write(bus_address(1, 10), &[1]),
        Err(MemError::ReadOnly { .. })
    ));
    let mut b = [0u8; 1];
    mem.read(bus_address(1, 10), &mut b).unwrap();
}

#[test]
fn empty_accesses_inside_or_at_the_end_of_an_area_succeed_and_past_it_fail() {
    let mut fake = Fake::default();
    let table = two_segment_area(&mut fake, true);
    let mut mem = AreaMem::new(&table, &fake);
    for offset in [0, 100, 4096, 12287, 12288] {
        mem.write(bus_address(1, offset), &[]).unwrap();
        mem.read(bus_address(1, offset), &mut []).unwrap();
    }
    assert!(mem.read(bus_address(1, 12289), &mut []).is_err());
}
