//! Line formatting, the early buffer, and line splitting over FFA_CONSOLE_LOG.

use alloc::{string::String, vec::Vec};
use core::fmt::Write as _;

use super::*;
use crate::scripted::Scripted;

/// FFA_CONSOLE_LOG, 64-bit.
const CONSOLE_LOG_64: u32 = 0xc400_008a;

/// The characters each FFA_CONSOLE_LOG call carried (x1 = count, chars little-endian from x2).
fn logged(conduit: &Scripted) -> Vec<Vec<u8>> {
    conduit
        .calls()
        .iter()
        .map(|regs| {
            assert_eq!(ffa::conduit::low32(regs[0]), CONSOLE_LOG_64);
            let count = usize::try_from(regs[1]).unwrap();
            assert!((1..=128).contains(&count), "{count} characters in one call");
            regs[2..]
                .iter()
                .flat_map(|r| r.to_le_bytes())
                .take(count)
                .collect()
        })
        .collect()
}

fn ok() -> Scripted {
    Scripted::new(|_| {
        let mut r = [0; 18];
        r[0] = 0x8400_0061;
        r
    })
}

#[test]
fn a_line_goes_out_in_full_calls_and_ends_in_one_newline() {
    for (len, calls) in [
        (0, 1),
        (10, 1),
        (127, 1),
        (128, 2),
        (129, 2),
        (255, 2),
        (256, 3),
    ] {
        let line: Vec<u8> = (0..len)
            .map(|i| b'a' + u8::try_from(i % 26).unwrap())
            .collect();
        let mut conduit = ok();
        assert_eq!(write_ffa(&mut conduit, &line), calls, "{len} bytes");
        let chunks = logged(&conduit);
        assert_eq!(chunks.len(), calls);
        // Every call but the last is full; the newline comes exactly once, at the very end.
        for chunk in &chunks[..calls - 1] {
            assert_eq!(chunk.len(), 128);
        }
        let all: Vec<u8> = chunks.concat();
        let mut want = line.clone();
        want.push(b'\n');
        assert_eq!(all, want, "{len} bytes");
    }
}

#[test]
fn an_error_answer_does_not_stop_the_line() {
    let mut conduit = Scripted::not_supported();
    assert_eq!(write_ffa(&mut conduit, &[b'x'; 200]), 2);
    assert_eq!(logged(&conduit).concat().len(), 201);
}

#[test]
fn a_record_is_one_line_cut_at_line_max() {
    let mut line = Line::new();
    write!(line, "a\nb\rc").unwrap();
    assert_eq!(line.bytes(), b"a b c");
    let mut long = Line::new();
    write!(long, "{}", "y".repeat(LINE_MAX + 10)).unwrap();
    let bytes = long.bytes();
    assert_eq!(bytes.len(), LINE_MAX);
    assert!(bytes.ends_with(b"..."));
    assert!(bytes[..LINE_MAX - 3].iter().all(|&b| b == b'y'));
    let mut exact = Line::new();
    write!(exact, "{}", "z".repeat(LINE_MAX)).unwrap();
    assert!(
        exact.bytes().iter().all(|&b| b == b'z'),
        "a full line is not cut"
    );
}

#[test]
fn early_lines_come_out_in_order_and_overflow_is_counted() {
    let mut early = EarlyLog::new();
    early.push(b"first");
    early.push(b"second");
    let mut out = Vec::new();
    early.drain(|l| out.push(String::from_utf8(l.to_vec()).unwrap()));
    assert_eq!(out, ["first", "second"]);
    // Drained: nothing the second time.
    early.drain(|_| panic!("drained twice"));

    let line = [b'l'; 99];
    for _ in 0..EARLY_MAX / 100 + 5 {
        early.push(&line);
    }
    let mut out = Vec::new();
    early.drain(|l| out.push(String::from_utf8(l.to_vec()).unwrap()));
    assert_eq!(out.len(), EARLY_MAX / 100 + 1);
    assert_eq!(out.last().unwrap(), "WARN  5 early log lines dropped");
}

#[test]
fn recent_log_keeps_the_newest_whole_lines() {
    let mut recent = RecentLog::new();
    assert_eq!(recent.tail(100), b"");
    recent.push(b"one");
    recent.push(b"two");
    assert_eq!(recent.tail(100), b"one\ntwo\n");
    // A tail starts at a line's beginning: "two\n" fits in 5 bytes, "one\ntwo\n" does not.
    assert_eq!(recent.tail(5), b"two\n");
    assert_eq!(recent.tail(4), b"two\n");
    assert_eq!(recent.tail(3), b"");
    // Filling it pushes out the oldest lines, whole.
    let long = [b'x'; 200];
    for _ in 0..20 {
        recent.push(&long);
    }
    recent.push(b"last");
    let all = recent.tail(RECENT_BYTES);
    assert!(all.len() <= RECENT_BYTES);
    assert!(all.ends_with(b"\nlast\n"));
    assert!(
        all.split(|&b| b == b'\n')
            .all(|l| l.is_empty() || l == b"last" || l == long)
    );
    assert_eq!(
        all.len(),
        10 * 201 + 5,
        "as many 200-byte lines as fit beside the last"
    );
    // A line longer than a console line is cut to LINE_MAX.
    recent.push(&[b'y'; 400]);
    let tail = recent.tail(LINE_MAX + 1);
    assert_eq!(tail.len(), LINE_MAX + 1);
}

#[test]
fn a_record_line_has_the_padded_level_then_the_message_on_one_line() {
    for (level, prefix) in [
        (log::Level::Error, "ERROR "),
        (log::Level::Warn, "WARN  "),
        (log::Level::Info, "INFO  "),
        (log::Level::Debug, "DEBUG "),
        (log::Level::Trace, "TRACE "),
    ] {
        let mut line = Line::new();
        line.write_record(level, format_args!("a\nb {}", 7));
        assert_eq!(line.bytes(), format!("{prefix}a b 7").as_bytes());
        assert_eq!(format!("{level:<5} "), prefix, "as {{:<5}} writes it");
    }
}
