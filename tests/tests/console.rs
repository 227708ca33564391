//! The partition's console lines reach the SPMC's console whole: the longest line the
//! partition keeps (`sp::console::LINE_MAX`, cut with `...`) and its newline fit the buffer
//! Hafnium prints at 255 characters, which the simulated SPMC models. (Under Hafnium a
//! 256-character line once came out as two console lines, the second a lone `.`.)

use core::fmt::Write;

use ffa::{
    Ffa, VIRTIO_MSG_DEVICE_UUID,
    sim::{SpInfo, World},
};
use sp::console::{LINE_MAX, Line, write_ffa};

#[test]
fn the_longest_line_comes_out_as_one_console_line() {
    let world = World::new();
    let (conduit, _) = world.attach_sp(SpInfo::new(0x8001, vec![VIRTIO_MSG_DEVICE_UUID]));
    let mut ffa = Ffa::new(conduit);
    ffa.version(ffa::FFA_VERSION).unwrap();
    for len in [LINE_MAX - 1, LINE_MAX, LINE_MAX + 40] {
        let mut line = Line::new();
        write!(line, "WARN  {}", "w".repeat(len)).unwrap();
        let bytes = line.bytes().to_vec();
        assert!(bytes.len() <= LINE_MAX);
        write_ffa(ffa.conduit(), &bytes);
        let console = world.console();
        assert_eq!(
            console.last().map(|(_, l)| l.as_bytes()),
            Some(bytes.as_slice()),
            "a {len}-character record"
        );
    }
    assert_eq!(world.console().len(), 3, "one console line per record");
}
