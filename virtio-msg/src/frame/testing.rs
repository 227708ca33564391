//! Test helpers for building frames by hand: whole frames, little-endian words, and pokes
//! into `msg_size` and payload words.

use alloc::{vec, vec::Vec};

use crate::header::Header;

/// A frame with a correct `msg_size` (8 + payload).
pub(crate) fn frame(msg_type: u8, id: u8, dev_num: u16, token: u16, payload: &[u8]) -> Vec<u8> {
    let size = u16::try_from(8 + payload.len()).unwrap();
    let mut f = vec![msg_type, id];
    f.extend_from_slice(&dev_num.to_le_bytes());
    f.extend_from_slice(&token.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// Concatenated little-endian words.
pub(crate) fn le32s(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Sets `msg_size` of a frame.
pub(crate) fn set_size(f: &mut [u8], size: usize) {
    f[6..8].copy_from_slice(&u16::try_from(size).unwrap().to_le_bytes());
}

/// Writes a little-endian u32 at payload offset `off`.
pub(crate) fn poke32(f: &mut [u8], off: usize, v: u32) {
    f[8 + off..12 + off].copy_from_slice(&v.to_le_bytes());
}

/// A request header as a device would have decoded it.
pub(crate) fn req_header(msg_type: u8, msg_id: u8, dev_num: u16, token: u16) -> Header {
    Header {
        msg_type,
        msg_id,
        dev_num,
        token,
        msg_size: 8,
    }
}
