//! The per-endpoint share of the mapping window.

use alloc::collections::BTreeMap;

use super::*;

/// A mapper that hands out consecutive bases and counts what it holds.
#[derive(Default)]
struct Bump {
    next: u64,
    held: BTreeMap<u64, u32>,
}

impl NsMapper for Bump {
    fn map(&mut self, range: MemRange, _: bool) -> Result<u64, MapError> {
        let base = 0x1000_0000 + self.next;
        self.next += u64::from(range.page_count) * PAGE_SIZE;
        self.held.insert(base, range.page_count);
        Ok(base)
    }
    fn unmap(&mut self, base: u64, _: u32) {
        self.held.remove(&base);
    }
    fn read(&self, _: u64, _: &mut [u8]) -> Result<(), MapError> {
        Ok(())
    }
    fn write(&self, _: u64, _: &[u8]) -> Result<(), MapError> {
        Ok(())
    }
}

fn pages(n: u64) -> MemRange {
    MemRange {
        address: 0x4000_0000,
        page_count: u32::try_from(n).unwrap(),
    }
}

#[test]
fn an_endpoint_maps_up_to_its_share_and_no_more() {
    let (mut inner, mut quota) = (Bump::default(), EndpointQuota::default());
    let mut m = QuotaMapper {
        inner: &mut inner,
        quota: &mut quota,
    };
    let share = ENDPOINT_MAX_BYTES / PAGE_SIZE;
    let a = m.map(pages(share - 1), true).unwrap();
    assert_eq!(m.map(pages(2), true), Err(MapError::NoSpace));
    let b = m.map(pages(1), true).unwrap();
    assert_eq!(m.map(pages(1), true), Err(MapError::NoSpace));
    assert_eq!(quota.bytes(), ENDPOINT_MAX_BYTES);
    assert_eq!(
        inner.held.len(),
        2,
        "refused maps never reach the partition's mapper"
    );
    // Unmapping gives the share back.
    let mut m = QuotaMapper {
        inner: &mut inner,
        quota: &mut quota,
    };
    m.unmap(b, 1);
    m.unmap(a, u32::try_from(share - 1).unwrap());
    assert_eq!((quota.bytes(), quota.mappings()), (0, 0));
    assert!(inner.held.is_empty());
}

#[test]
fn an_endpoint_holds_at_most_its_mapping_slots() {
    let (mut inner, mut quota) = (Bump::default(), EndpointQuota::default());
    let mut m = QuotaMapper {
        inner: &mut inner,
        quota: &mut quota,
    };
    for _ in 0..ENDPOINT_MAX_MAPPINGS {
        m.map(pages(1), false).unwrap();
    }
    assert_eq!(m.map(pages(1), false), Err(MapError::NoSpace));
    assert_eq!(quota.mappings(), ENDPOINT_MAX_MAPPINGS);
}

#[test]
fn an_endpoint_cannot_unmap_what_another_mapped() {
    let mut inner = Bump::default();
    let (mut mine, mut theirs) = (EndpointQuota::default(), EndpointQuota::default());
    let base = QuotaMapper {
        inner: &mut inner,
        quota: &mut theirs,
    }
    .map(pages(4), true)
    .unwrap();
    let mut m = QuotaMapper {
        inner: &mut inner,
        quota: &mut mine,
    };
    m.unmap(base, 4);
    assert_eq!(
        inner.held.len(),
        1,
        "the other endpoint's mapping is untouched"
    );
    assert_eq!(theirs.bytes(), 4 * PAGE_SIZE);
}
