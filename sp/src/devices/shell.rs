//! The partition shell: a tiny line-based command interpreter that the virtio-console device
//! ([`Console`](super::console::Console)) and a vsock connection
//! ([`vsock::StandardServices`](super::vsock::StandardServices)) both drive, through
//! [`Output`].
//!
//! Commands: `help`, `version`, `devices`; anything else is an `unknown command`. A line ends
//! at `\n` or `\r` (`\r\n` counts once); it is answered, then the prompt follows. No echo: the
//! peer sees only answers and prompts. A line longer than [`LINE_MAX`] is refused whole at its
//! end.

use super::stream::Output;

/// Longest command line the [`Shell`] keeps; a longer line is refused whole.
pub const LINE_MAX: usize = 128;
/// The shell's prompt.
pub const PROMPT: &[u8] = b"> ";

/// The answer to `help`.
const HELP: &[u8] = b"commands: help, version, devices\n";
/// The answer to an overlong line.
const TOO_LONG: &[u8] = b"line too long\n";
/// The answer to anything else.
const UNKNOWN: &[u8] = b"unknown command\n";
/// What `version` prints before the version and a newline.
const VERSION_PREFIX: &[u8] = b"vmsg-sp ";
/// The crate version `version` prints.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The larger of two lengths, in a const context.
const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The longest answer to a line other than `devices` (without the prompt after it).
const FIXED_ANSWER_MAX: usize = max(
    max(HELP.len(), TOO_LONG.len()),
    max(UNKNOWN.len(), VERSION_PREFIX.len() + VERSION.len() + 1),
);

/// A tiny line-based shell (see the [module docs](self)).
pub struct Shell {
    devices: &'static str,
    line: [u8; LINE_MAX],
    len: usize,
    /// The line outgrew [`LINE_MAX`]: it is refused at its end.
    overlong: bool,
    /// The last byte was `\r` (a `\n` right after it ends nothing).
    after_cr: bool,
}

impl Shell {
    /// A shell whose `devices` command prints `devices` (one line or more, no final newline
    /// needed).
    pub const fn new(devices: &'static str) -> Self {
        Self {
            devices,
            line: [0; LINE_MAX],
            len: 0,
            overlong: false,
            after_cr: false,
        }
    }

    /// The most bytes one line's answer and the prompt after it take.
    pub fn answer_max(&self) -> usize {
        max(FIXED_ANSWER_MAX, self.devices.len().saturating_add(1)).saturating_add(PROMPT.len())
    }

    /// Takes the bytes of `input` in order, answering each line into `out`, and returns how
    /// many it took: it stops before a line's end while `out` holds output and has less room
    /// than [`answer_max`](Self::answer_max), so that no answer is cut (the caller offers the
    /// rest again once `out` has drained). With `out` empty a line is always answered, cut to
    /// what fits if `out` is that small.
    pub fn feed(&mut self, input: &[u8], out: &mut dyn Output) -> usize {
        self.take(input, out, true)
    }

    /// Takes every byte of `input`, answering each line into `out` whatever its room: what
    /// does not fit is `out`'s to drop (the console's outbox counts it).
    pub fn feed_all(&mut self, input: &[u8], out: &mut dyn Output) {
        self.take(input, out, false);
    }

    /// The greeting of a new session: the prompt.
    pub fn open(&mut self, out: &mut dyn Output) {
        out.push(PROMPT);
    }

    /// Forgets any half-received line.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overlong = false;
        self.after_cr = false;
    }

    fn take(&mut self, input: &[u8], out: &mut dyn Output, hold_back: bool) -> usize {
        for (taken, &byte) in input.iter().enumerate() {
            let ends_line = byte == b'\r' || (byte == b'\n' && !self.after_cr);
            if ends_line && hold_back && !out.is_empty() && out.room() < self.answer_max() {
                return taken;
            }
            let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => self.run(out),
                _ => match self.line.get_mut(self.len) {
                    Some(slot) => {
                        *slot = byte;
                        self.len = self.len.saturating_add(1);
                    }
                    None => self.overlong = true,
                },
            }
        }
        input.len()
    }

    /// Answers the line held, then prompts.
    fn run(&mut self, out: &mut dyn Output) {
        let line = self.line.get(..self.len).unwrap_or(&[]).trim_ascii();
        if self.overlong {
            out.push(TOO_LONG);
        } else {
            match line {
                b"" => {}
                b"help" => {
                    out.push(HELP);
                }
                b"version" => {
                    out.push(VERSION_PREFIX);
                    out.push(VERSION.as_bytes());
                    out.push(b"\n");
                }
                b"devices" => {
                    out.push(self.devices.as_bytes());
                    if !self.devices.ends_with('\n') {
                        out.push(b"\n");
                    }
                }
                _ => {
                    out.push(UNKNOWN);
                }
            }
        }
        self.len = 0;
        self.overlong = false;
        out.push(PROMPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::stream::ByteRing;

    fn text<const N: usize>(ring: &mut ByteRing<N>) -> String {
        let mut out = vec![0u8; ring.len()];
        ring.pop(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn feed_holds_a_line_end_back_until_the_answer_fits() {
        let mut shell = Shell::new("0 dev");
        let need = shell.answer_max();
        assert_eq!(need, HELP.len() + PROMPT.len());
        let mut out = ByteRing::<64>::new();
        shell.open(&mut out);
        // The prompt and 30 more bytes held, 32 of room: "help\n" stops before its end.
        out.push(&[b'x'; 30]);
        assert!(out.room() < need);
        assert_eq!(shell.feed(b"help\nversion\n", &mut out), 4);
        out.consume(32);
        // Drained: the line end goes through; the answer then leaves too little room for the
        // next one, which waits again.
        assert_eq!(shell.feed(b"\nversion\n", &mut out), 8);
        assert_eq!(text(&mut out), "commands: help, version, devices\n> ");
        assert_eq!(shell.feed(b"\n", &mut out), 1);
        assert_eq!(
            text(&mut out),
            format!("vmsg-sp {}\n> ", env!("CARGO_PKG_VERSION"))
        );
        // Empty output: a line is answered even when its answer cannot fit whole.
        let mut tiny = ByteRing::<4>::new();
        assert_eq!(shell.feed(b"help\n", &mut tiny), 5);
        assert_eq!(text(&mut tiny), "comm");
        // feed_all never holds back.
        let mut small = ByteRing::<8>::new();
        small.push(b"1234567");
        shell.feed_all(b"nope\n", &mut small);
        assert_eq!(text(&mut small), "1234567u");
    }

    #[test]
    fn a_long_device_list_raises_the_bound() {
        const DEVICES: &str =
            "0 a very long device description line that is longer than help\n1 another one";
        let shell = Shell::new(DEVICES);
        assert_eq!(shell.answer_max(), DEVICES.len() + 1 + PROMPT.len());
        assert_eq!(Shell::new("d").answer_max(), HELP.len() + PROMPT.len());
    }
}
