//! Normal-world memory of the simulated world and the FF-A memory transactions over it: the
//! rules of FF-A v1.2 (DEN0077A) "Memory management" (transaction descriptors, lend/share,
//! retrieve, relinquish, reclaim) that the ABI handlers of `memory.rs` apply.
//!
//! Pages are allocated on demand in a sparse physical address space. Each page has an owner
//! (the VM that allocated it) and a state: exclusive to its owner, reserved as the owner's
//! RX/TX buffer, or part of one memory transaction (a handle). Validation follows the FF-A
//! rules as Hafnium (the SPMC we target) enforces them; the error codes are Hafnium's.

use std::collections::{BTreeMap, HashMap, VecDeque};

use arm_ffa::FfaError;

use super::reply::Refusal;
use crate::memory::{
    ATTR_NON_SECURE as ATTR_NS, ATTR_NORMAL_WB_INNER_SHAREABLE as ATTR_NORMAL_WB_INNER, DataAccess,
    FLAG_CLEAR, FLAG_CLEAR_RELINQUISH, FLAG_TYPE_MASK, MemRange, MemTransaction, PAGE_SIZE,
    RELINQUISH_FLAG_CLEAR, RELINQUISH_FLAG_TIME_SLICE, Receiver, ShareKind,
};

/// Bytes in a page, as `usize`.
const PAGE: usize = 4096;

/// Handles allocated by the SPMC have bit 63 set (FF-A "handle allocator" bit).
const HANDLE_SPMC: u64 = 1 << 63;

/// Memory region attributes: bits that must be zero.
const ATTR_MBZ: u16 = !0x7f;
/// Memory region attributes: type field mask (bits 5:4).
const ATTR_TYPE_MASK: u16 = 0b11 << 4;
/// Retrieve request flags: address range alignment hint (bits 8:5) and its valid bit (9).
const FLAG_HINT: u32 = 0b1_1111 << 5;
/// Retrieve request flags: bypass the multiple-borrower check.
const FLAG_BYPASS_BORROWERS: u32 = 1 << 10;
/// Retrieve request flags: bits 31:11 must be zero.
const RETRIEVE_FLAGS_MBZ: u32 = !0x7ff;
/// Relinquish flags: bits other than zero-memory and time-slicing must be zero.
const RELINQUISH_FLAGS_MBZ: u32 = !(RELINQUISH_FLAG_CLEAR | RELINQUISH_FLAG_TIME_SLICE);

/// One 4 KiB page of normal-world memory.
struct Page {
    /// The VM that allocated it.
    owner: u16,
    /// What it is used for.
    state: PageState,
    /// Contents (`None` = all zero, not yet written).
    data: Option<Box<[u8; PAGE]>>,
}

/// What a page is used for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PageState {
    /// Accessible to its owner only.
    Exclusive,
    /// Reserved as the owner's RX or TX buffer.
    Mailbox,
    /// Part of the memory transaction with this handle.
    Txn(u64),
}

/// A memory transaction (FFA_MEM_SHARE or FFA_MEM_LEND) that has not been reclaimed.
struct Txn {
    kind: ShareKind,
    sender: u16,
    attributes: u16,
    flags: u32,
    tag: u64,
    receivers: Vec<TxnReceiver>,
    ranges: Vec<MemRange>,
}

/// A receiver of a transaction and what it currently has.
struct TxnReceiver {
    id: u16,
    /// Access the sender granted.
    access: DataAccess,
    /// `Some(writable)` while retrieved (not yet relinquished).
    retrieved: Option<bool>,
}

/// Normal-world memory and the transactions over it.
pub(super) struct Memory {
    pages: HashMap<u64, Page>,
    next_pa: u64,
    txns: BTreeMap<u64, Txn>,
    next_handle: u64,
    /// Fault injection for tests: the next FFA_MEM_RELINQUISH calls of a handle that would
    /// succeed answer these errors instead, changing nothing (as Hafnium's NO_MEMORY does: it
    /// rolls the page tables back).
    relinquish_faults: BTreeMap<u64, VecDeque<FfaError>>,
    /// Injected failures of the next retrieve calls of a handle (see `fail_retrieve`).
    retrieve_faults: BTreeMap<u64, VecDeque<FfaError>>,
}

/// Page frame number of `addr`.
fn pfn(addr: u64) -> u64 {
    addr / PAGE_SIZE
}

/// Offset of `addr` inside its page.
fn page_offset(addr: u64) -> usize {
    usize::try_from(addr % PAGE_SIZE).unwrap_or(0)
}

/// `x` as `u64` (lossless on every supported host).
pub(super) fn to_u64(x: usize) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

/// Page frame numbers covering `[addr, addr + len)`; `None` if the range wraps.
fn pfns(addr: u64, len: u64) -> Option<core::ops::RangeInclusive<u64>> {
    let last = addr.checked_add(len.checked_sub(1)?)?;
    Some(pfn(addr)..=pfn(last))
}

/// Byte length of `pages` pages.
fn pages_len(pages: u32) -> u64 {
    u64::from(pages) * PAGE_SIZE
}

impl Memory {
    pub fn new(base: u64) -> Self {
        Self {
            pages: HashMap::new(),
            next_pa: base,
            txns: BTreeMap::new(),
            next_handle: 1,
            relinquish_faults: BTreeMap::new(),
            retrieve_faults: BTreeMap::new(),
        }
    }

    /// Allocates `pages` zeroed, contiguous pages owned by `owner`; returns the base.
    pub fn alloc(&mut self, owner: u16, pages: u32) -> u64 {
        let base = self.next_pa;
        for i in 0..u64::from(pages) {
            self.pages.insert(
                pfn(base) + i,
                Page {
                    owner,
                    state: PageState::Exclusive,
                    data: None,
                },
            );
        }
        self.next_pa = base.saturating_add(pages_len(pages));
        base
    }

    /// Frees pages `owner` allocated; they must be exclusive to it.
    pub fn free(&mut self, owner: u16, pa: u64, pages: u32) -> Result<(), &'static str> {
        if !pa.is_multiple_of(PAGE_SIZE) || pages == 0 {
            return Err("free of a misaligned or empty range");
        }
        let range = pfns(pa, pages_len(pages)).ok_or("free of a range that wraps")?;
        for p in range.clone() {
            match self.pages.get(&p) {
                Some(page) if page.owner == owner && page.state == PageState::Exclusive => {}
                Some(page) if page.owner == owner => {
                    return Err("free of a page that is shared, lent or an RX/TX buffer");
                }
                _ => return Err("free of a page the endpoint does not own"),
            }
        }
        for p in range {
            self.pages.remove(&p);
        }
        Ok(())
    }

    /// Checks that owner `who` may access `[pa, pa + len)` itself: every page is its own and
    /// not lent away (shared pages stay accessible to the owner).
    pub fn check_owner_access(&self, who: u16, pa: u64, len: usize) -> Result<(), &'static str> {
        if len == 0 {
            return Ok(());
        }
        let range = pfns(pa, to_u64(len)).ok_or("access range wraps")?;
        for p in range {
            let page = self.pages.get(&p).ok_or("access to unallocated memory")?;
            if page.owner != who {
                return Err("access to memory the endpoint does not own");
            }
            if let PageState::Txn(h) = page.state
                && self
                    .txns
                    .get(&h)
                    .is_some_and(|t| t.kind != ShareKind::Share)
            {
                return Err("owner access to memory it lent");
            }
        }
        Ok(())
    }

    /// Checks that partition `sp` currently has `[pa, pa + len)` retrieved (read-write for
    /// `write`).
    pub fn check_retrieved(
        &self,
        sp: u16,
        pa: u64,
        len: u64,
        write: bool,
    ) -> Result<(), &'static str> {
        if len == 0 {
            return Ok(());
        }
        let range = pfns(pa, len).ok_or("access range wraps")?;
        for p in range {
            let page = self.pages.get(&p).ok_or("access to unallocated memory")?;
            let PageState::Txn(h) = page.state else {
                return Err("access to memory not shared with the partition");
            };
            let receiver = self
                .txns
                .get(&h)
                .and_then(|t| t.receivers.iter().find(|r| r.id == sp))
                .ok_or("access to memory shared with someone else")?;
            match receiver.retrieved {
                None => return Err("access to memory not retrieved (or already relinquished)"),
                Some(false) if write => return Err("write to memory retrieved read-only"),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Copies `[pa, pa + buf.len())` into `buf`. Access must have been checked.
    pub fn copy_out(&self, pa: u64, buf: &mut [u8]) {
        let mut pos = 0;
        while pos < buf.len() {
            let addr = pa.wrapping_add(to_u64(pos));
            let off = page_offset(addr);
            let n = (PAGE - off).min(buf.len() - pos);
            if let Some(dst) = buf.get_mut(pos..pos + n) {
                match self.pages.get(&pfn(addr)).and_then(|p| p.data.as_ref()) {
                    Some(data) => dst.copy_from_slice(data.get(off..off + n).unwrap_or_default()),
                    None => dst.fill(0),
                }
            }
            pos += n;
        }
    }

    /// Copies `data` to `[pa, pa + data.len())`. Access must have been checked.
    pub fn copy_in(&mut self, pa: u64, data: &[u8]) {
        let mut pos = 0;
        while pos < data.len() {
            let addr = pa.wrapping_add(to_u64(pos));
            let off = page_offset(addr);
            let n = (PAGE - off).min(data.len() - pos);
            if let Some(page) = self.pages.get_mut(&pfn(addr)) {
                let bytes = page.data.get_or_insert_with(|| Box::new([0; PAGE]));
                if let (Some(dst), Some(src)) =
                    (bytes.get_mut(off..off + n), data.get(pos..pos + n))
                {
                    dst.copy_from_slice(src);
                }
            }
            pos += n;
        }
    }

    /// Reserves `pa` (one page) as an RX/TX buffer of `owner`; it must be exclusive to it.
    pub fn reserve_mailbox(&mut self, owner: u16, pa: u64) -> bool {
        match self.pages.get_mut(&pfn(pa)) {
            Some(page) if page.owner == owner && page.state == PageState::Exclusive => {
                page.state = PageState::Mailbox;
                true
            }
            _ => false,
        }
    }

    /// Undoes [`Memory::reserve_mailbox`].
    pub fn release_mailbox(&mut self, pa: u64) {
        if let Some(page) = self.pages.get_mut(&pfn(pa))
            && page.state == PageState::Mailbox
        {
            page.state = PageState::Exclusive;
        }
    }

    /// FFA_MEM_SHARE / FFA_MEM_LEND of `desc` by `caller`; `is_sp` says whether an id is a
    /// secure partition. Returns the new handle.
    pub fn send(
        &mut self,
        caller: u16,
        kind: ShareKind,
        desc: &MemTransaction,
        is_sp: &dyn Fn(u16) -> bool,
    ) -> Result<u64, Refusal> {
        use FfaError::{Denied, InvalidParameters as Inval, NotSupported};
        if kind == ShareKind::Donate {
            return Err((NotSupported, "FFA_MEM_DONATE is not modelled"));
        }
        if desc.sender != caller {
            return Err((Denied, "sender id is not the caller"));
        }
        if desc.receivers.is_empty() {
            return Err((Inval, "no receivers"));
        }
        for (i, r) in desc.receivers.iter().enumerate() {
            if r.endpoint == desc.sender {
                return Err((Inval, "sender is also a receiver"));
            }
            if desc
                .receivers
                .iter()
                .skip(i + 1)
                .any(|o| o.endpoint == r.endpoint)
            {
                return Err((Inval, "repeated receiver"));
            }
            if !is_sp(r.endpoint) {
                return Err((Inval, "receiver is not a secure partition of this world"));
            }
            if r.executable {
                return Err((Inval, "sender must not specify instruction access"));
            }
            if r.access == DataAccess::NotSpecified {
                return Err((Inval, "data access must be specified for share and lend"));
            }
        }
        let flags_allowed = if kind == ShareKind::Lend {
            FLAG_CLEAR
        } else {
            0
        };
        if desc.flags & !flags_allowed != 0 {
            return Err((Inval, "unsupported transaction flags"));
        }
        if desc.handle != 0 {
            return Err((Inval, "handle must be zero in a send descriptor"));
        }
        if desc.attributes & ATTR_NS != 0 {
            return Err((Inval, "NS bit must be zero in a send descriptor"));
        }
        if desc.attributes & ATTR_MBZ != 0 {
            return Err((Inval, "reserved memory attribute bits set"));
        }
        if kind == ShareKind::Lend && desc.receivers.len() == 1 {
            if desc.attributes & ATTR_TYPE_MASK != 0 {
                return Err((
                    Inval,
                    "memory type must not be specified for a lend to one borrower",
                ));
            }
        } else if desc.attributes != ATTR_NORMAL_WB_INNER {
            return Err((
                Denied,
                "attributes must be normal, write-back, inner shareable",
            ));
        }
        check_ranges(&desc.ranges)?;
        for range in &desc.ranges {
            let pages =
                pfns(range.address, pages_len(range.page_count)).ok_or((Inval, "range wraps"))?;
            for p in pages {
                match self.pages.get(&p) {
                    Some(page) if page.owner == caller && page.state == PageState::Exclusive => {}
                    Some(page) if page.owner == caller => {
                        return Err((Denied, "page already shared, lent or an RX/TX buffer"));
                    }
                    _ => return Err((Denied, "page not owned by the sender")),
                }
            }
        }

        let handle = HANDLE_SPMC | self.next_handle;
        self.next_handle += 1;
        for range in &desc.ranges {
            for p in pfns(range.address, pages_len(range.page_count))
                .into_iter()
                .flatten()
            {
                if let Some(page) = self.pages.get_mut(&p) {
                    page.state = PageState::Txn(handle);
                    if desc.flags & FLAG_CLEAR != 0 {
                        page.data = None;
                    }
                }
            }
        }
        self.txns.insert(
            handle,
            Txn {
                kind,
                sender: desc.sender,
                attributes: desc.attributes,
                flags: desc.flags,
                tag: desc.tag,
                receivers: desc
                    .receivers
                    .iter()
                    .map(|r| TxnReceiver {
                        id: r.endpoint,
                        access: r.access,
                        retrieved: None,
                    })
                    .collect(),
                ranges: desc.ranges.clone(),
            },
        );
        Ok(handle)
    }

    /// FFA_MEM_RETRIEVE_REQ of `req` by `caller`; returns the retrieve response.
    pub fn retrieve(
        &mut self,
        caller: u16,
        req: &MemTransaction,
    ) -> Result<MemTransaction, Refusal> {
        use FfaError::{Denied, InvalidParameters as Inval};
        let txn = self
            .txns
            .get_mut(&req.handle)
            .ok_or((Inval, "unknown handle"))?;
        if req.sender != txn.sender {
            return Err((Denied, "sender does not match the transaction"));
        }
        let req_type = req.flags & FLAG_TYPE_MASK;
        if req_type != 0 && req_type != txn.kind.type_flag() {
            return Err((Inval, "transaction type does not match"));
        }
        if req.tag != txn.tag {
            return Err((Inval, "tag does not match the transaction"));
        }
        if !txn.receivers.iter().any(|r| r.id == caller) {
            return Err((Inval, "caller is not a receiver of the transaction"));
        }
        if req.flags & FLAG_HINT != 0 || req.flags & RETRIEVE_FLAGS_MBZ != 0 {
            return Err((Inval, "unsupported retrieve flags"));
        }
        let clear = req.flags & (FLAG_CLEAR | FLAG_CLEAR_RELINQUISH);
        if clear != 0 && txn.kind == ShareKind::Share {
            return Err((Inval, "shared memory cannot be cleared"));
        }
        if req.flags & FLAG_CLEAR != 0 && txn.flags & FLAG_CLEAR == 0 {
            return Err((Denied, "clear requested but the sender did not clear"));
        }
        if req.attributes & ATTR_NS != 0 {
            return Err((Inval, "NS bit must be zero in a retrieve request"));
        }
        if req.attributes & ATTR_TYPE_MASK != 0 && req.attributes != ATTR_NORMAL_WB_INNER {
            return Err((
                Denied,
                "requested attributes differ from normal, write-back, inner",
            ));
        }
        let bypass = req.flags & FLAG_BYPASS_BORROWERS != 0;
        if bypass {
            if req.receivers.len() != 1 || txn.receivers.len() == 1 {
                return Err((Inval, "bypass-borrowers flag misused"));
            }
        } else if req.receivers.len() != txn.receivers.len() {
            return Err((Inval, "retrieve request must list the same borrowers"));
        }
        if !req.ranges.is_empty() {
            return Err((
                Inval,
                "retriever-specified address ranges are not supported",
            ));
        }
        let mut granted = None;
        for r in &req.receivers {
            if bypass && r.endpoint != caller {
                continue;
            }
            let sent = txn
                .receivers
                .iter()
                .find(|t| t.id == r.endpoint)
                .ok_or((Denied, "listed receiver is not a borrower"))?;
            let writable = match (sent.access, r.access) {
                (DataAccess::ReadWrite, DataAccess::NotSpecified | DataAccess::ReadWrite) => true,
                (_, DataAccess::NotSpecified | DataAccess::ReadOnly) => false,
                _ => return Err((Denied, "requested more access than the sender granted")),
            };
            if r.executable {
                return Err((
                    Inval,
                    "instruction access must not be requested for NS memory",
                ));
            }
            if !writable && clear != 0 && r.endpoint == caller {
                return Err((Denied, "read-only borrower cannot request clearing"));
            }
            if r.endpoint == caller {
                granted = Some(writable);
            }
        }
        let writable = granted.ok_or((Inval, "retrieve request does not list the caller"))?;
        let me = txn
            .receivers
            .iter_mut()
            .find(|r| r.id == caller)
            .ok_or((Inval, "caller is not a receiver of the transaction"))?;
        if me.retrieved.is_some() {
            return Err((Denied, "already retrieved by this receiver"));
        }
        if let Some(e) = self
            .retrieve_faults
            .get_mut(&req.handle)
            .and_then(VecDeque::pop_front)
        {
            return Err((e, "injected retrieve failure"));
        }
        me.retrieved = Some(writable);

        Ok(MemTransaction {
            sender: txn.sender,
            attributes: txn.attributes | ATTR_NS,
            flags: txn.kind.type_flag(),
            handle: req.handle,
            tag: txn.tag,
            receivers: txn
                .receivers
                .iter()
                .map(|r| Receiver {
                    endpoint: r.id,
                    access: match r.retrieved {
                        Some(true) => DataAccess::ReadWrite,
                        Some(false) => DataAccess::ReadOnly,
                        None => r.access,
                    },
                    executable: false,
                })
                .collect(),
            ranges: txn.ranges.clone(),
        })
    }

    /// Undoes a retrieval whose response could not be delivered.
    pub fn undo_retrieve(&mut self, caller: u16, handle: u64) {
        if let Some(r) = self
            .txns
            .get_mut(&handle)
            .and_then(|t| t.receivers.iter_mut().find(|r| r.id == caller))
        {
            r.retrieved = None;
        }
    }

    /// FFA_MEM_RELINQUISH of `handle` by `caller` for `endpoints`.
    pub fn relinquish(
        &mut self,
        caller: u16,
        handle: u64,
        flags: u32,
        endpoints: &[u16],
    ) -> Result<(), Refusal> {
        use FfaError::{Denied, InvalidParameters as Inval};
        let [endpoint] = endpoints else {
            return Err((Inval, "relinquish must name exactly one endpoint"));
        };
        if *endpoint != caller {
            return Err((Inval, "relinquish endpoint is not the caller"));
        }
        if flags & RELINQUISH_FLAGS_MBZ != 0 {
            return Err((Inval, "unsupported relinquish flags"));
        }
        let txn = self
            .txns
            .get_mut(&handle)
            .ok_or((Inval, "unknown handle"))?;
        let kind = txn.kind;
        let others_retrieved = txn
            .receivers
            .iter()
            .any(|r| r.id != caller && r.retrieved.is_some());
        let me = txn
            .receivers
            .iter_mut()
            .find(|r| r.id == caller)
            .ok_or((Inval, "caller is not a borrower"))?;
        let Some(writable) = me.retrieved else {
            return Err((Inval, "not retrieved by the caller"));
        };
        let clear = flags & RELINQUISH_FLAG_CLEAR != 0 && !others_retrieved;
        if clear && kind == ShareKind::Share {
            return Err((Inval, "shared memory cannot be cleared"));
        }
        if clear && !writable {
            return Err((Denied, "read-only borrower cannot clear"));
        }
        if let Some(e) = self
            .relinquish_faults
            .get_mut(&handle)
            .and_then(VecDeque::pop_front)
        {
            return Err((e, "injected relinquish failure"));
        }
        me.retrieved = None;
        if clear {
            let ranges = txn.ranges.clone();
            self.zero(&ranges);
        }
        Ok(())
    }

    /// FFA_MEM_RECLAIM of `handle` by `caller`.
    pub fn reclaim(&mut self, caller: u16, handle: u64, zero: bool) -> Result<(), Refusal> {
        use FfaError::{Denied, InvalidParameters as Inval};
        let txn = self.txns.get(&handle).ok_or((Inval, "unknown handle"))?;
        if txn.sender != caller {
            return Err((Inval, "only the owner can reclaim"));
        }
        if txn.receivers.iter().any(|r| r.retrieved.is_some()) {
            return Err((Denied, "still retrieved by a borrower"));
        }
        let ranges = txn.ranges.clone();
        self.txns.remove(&handle);
        for range in &ranges {
            for p in pfns(range.address, pages_len(range.page_count))
                .into_iter()
                .flatten()
            {
                if let Some(page) = self.pages.get_mut(&p) {
                    page.state = PageState::Exclusive;
                }
            }
        }
        if zero {
            self.zero(&ranges);
        }
        Ok(())
    }

    /// Relinquishes everything `id` retrieved (it aborted).
    pub fn drop_retrievals(&mut self, id: u16) {
        for txn in self.txns.values_mut() {
            for r in txn.receivers.iter_mut().filter(|r| r.id == id) {
                r.retrieved = None;
            }
        }
    }

    /// Makes the next relinquish calls of `handle` that would succeed fail with `errors`.
    pub fn fail_relinquish(&mut self, handle: u64, errors: &[FfaError]) {
        self.relinquish_faults
            .entry(handle)
            .or_default()
            .extend(errors.iter().copied());
    }

    /// Makes the next retrieve calls of `handle` that would succeed fail with `errors` (as
    /// Hafnium's do when its page pool runs out: NO_MEMORY, or ABORTED after a fault).
    pub fn fail_retrieve(&mut self, handle: u64, errors: &[FfaError]) {
        self.retrieve_faults
            .entry(handle)
            .or_default()
            .extend(errors.iter().copied());
    }

    /// Handles of transactions not yet reclaimed.
    pub fn handles(&self) -> Vec<u64> {
        self.txns.keys().copied().collect()
    }

    /// Whether `endpoint` currently has `handle` retrieved.
    pub fn is_retrieved(&self, handle: u64, endpoint: u16) -> bool {
        self.txns.get(&handle).is_some_and(|t| {
            t.receivers
                .iter()
                .any(|r| r.id == endpoint && r.retrieved.is_some())
        })
    }

    fn zero(&mut self, ranges: &[MemRange]) {
        for range in ranges {
            for p in pfns(range.address, pages_len(range.page_count))
                .into_iter()
                .flatten()
            {
                if let Some(page) = self.pages.get_mut(&p) {
                    page.data = None;
                }
            }
        }
    }
}

/// Constituent ranges: at least one, each page aligned, non-empty, not wrapping, no two
/// overlapping.
fn check_ranges(ranges: &[MemRange]) -> Result<(), Refusal> {
    use FfaError::InvalidParameters as Inval;
    if ranges.is_empty() {
        return Err((Inval, "no constituent ranges"));
    }
    let mut spans = Vec::with_capacity(ranges.len());
    for r in ranges {
        if r.page_count == 0 {
            return Err((Inval, "constituent with zero pages"));
        }
        if !r.address.is_multiple_of(PAGE_SIZE) {
            return Err((Inval, "constituent address not page aligned"));
        }
        let end = r
            .address
            .checked_add(pages_len(r.page_count))
            .ok_or((Inval, "constituent range wraps"))?;
        spans.push((r.address, end));
    }
    spans.sort_unstable();
    if spans.windows(2).any(|w| matches!(w, [a, b] if b.0 < a.1)) {
        return Err((Inval, "overlapping constituent ranges"));
    }
    Ok(())
}
