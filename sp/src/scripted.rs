//! Test doubles for host tests: a scripted [`Conduit`] that records every call and answers from
//! a function, and [`NoMapper`], an [`NsMapper`] with nothing to map.

extern crate std;

use alloc::{boxed::Box, sync::Arc, vec, vec::Vec};
use std::sync::{Mutex, PoisonError};

use ffa::{
    Conduit,
    memory::{MapError, MemRange, NsMapper},
};

type Answer = dyn Fn(&[u64; 18]) -> [u64; 18] + Send + Sync;

/// A conduit whose calls are answered by a function and recorded; clones share the record.
#[derive(Clone)]
pub struct Scripted {
    calls: Arc<Mutex<Vec<[u64; 18]>>>,
    answer: Arc<Answer>,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl Scripted {
    /// A conduit answering every call with `answer(regs)`, with one-page RX/TX buffers.
    pub fn new(answer: impl Fn(&[u64; 18]) -> [u64; 18] + Send + Sync + 'static) -> Self {
        let answer: Box<Answer> = Box::new(answer);
        Self {
            calls: Arc::default(),
            answer: Arc::from(answer),
            rx: vec![0; 4096],
            tx: vec![0; 4096],
        }
    }

    /// A conduit answering every call with SMCCC NOT_SUPPORTED (no firmware behind it).
    pub fn not_supported() -> Self {
        Self::new(|_| {
            let mut regs = [0; 18];
            if let Some(x0) = regs.first_mut() {
                *x0 = u64::MAX;
            }
            regs
        })
    }

    /// The calls made so far (x0..x17 of each), by this conduit and its clones.
    pub fn calls(&self) -> Vec<[u64; 18]> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The function ids (low 32 bits of x0) of the calls made so far.
    pub fn function_ids(&self) -> Vec<u32> {
        self.calls()
            .iter()
            .map(|r| ffa::conduit::low32(r[0]))
            .collect()
    }
}

impl core::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Scripted({} calls)", self.calls().len())
    }
}

impl PartialEq for Scripted {
    /// Two scripted conduits are equal when they share their record (one is a clone of the
    /// other).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.calls, &other.calls)
    }
}

impl Eq for Scripted {}

impl Conduit for Scripted {
    fn call(&mut self, regs: [u64; 18]) -> [u64; 18] {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(regs);
        (self.answer)(&regs)
    }

    fn tx(&mut self) -> &mut [u8] {
        &mut self.tx
    }

    fn rx(&self) -> &[u8] {
        &self.rx
    }
}

/// A mapper that maps nothing: every map is refused, every access is to unmapped memory (for
/// tests whose partition shares no memory).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMapper;

impl NsMapper for NoMapper {
    fn map(&mut self, _: MemRange, _: bool) -> Result<u64, MapError> {
        Err(MapError::NoSpace)
    }
    fn unmap(&mut self, _: u64, _: u32) {}
    fn read(&self, _: u64, _: &mut [u8]) -> Result<(), MapError> {
        Err(MapError::NotMapped)
    }
    fn write(&self, _: u64, _: &[u8]) -> Result<(), MapError> {
        Err(MapError::NotMapped)
    }
}
