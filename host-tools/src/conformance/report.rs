//! Renderings of a run: a table for people, JSON for tools.

use alloc::{format, string::String};
use core::fmt::Write;

use super::check::{CheckResult, Counts, dialect_name};

/// A table of `results` (id, dialect, result, description; the reason under each failure or
/// not-applicable check), ending with the line `N passed, N failed` and the not-applicable
/// count beside it.
pub fn table(results: &[CheckResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:<7} {:<6} description",
        "id", "dialect", "result"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:<13} {:<7} {:<6} {}",
            r.check.id,
            dialect_name(r.dialect),
            r.outcome.name(),
            r.check.description
        );
        if let Some(reason) = r.outcome.reason() {
            let _ = writeln!(out, "{:<28} -> {reason}", "");
        }
    }
    let c = Counts::of(results);
    let _ = writeln!(
        out,
        "{} passed, {} failed ({} not applicable)",
        c.passed, c.failed, c.not_applicable
    );
    out
}

/// `results` as a JSON array of objects `{id, clause, dialect, result, reason, description}`.
pub fn json(results: &[CheckResult]) -> String {
    let mut out = String::from("[");
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let reason = r
            .outcome
            .reason()
            .map_or_else(|| String::from("null"), quote);
        let _ = write!(
            out,
            "\n  {{\"id\": {}, \"clause\": {}, \"dialect\": \"{}\", \"result\": \"{}\", \
             \"reason\": {reason}, \"description\": {}}}",
            quote(r.check.id),
            quote(r.check.clause),
            dialect_name(r.dialect),
            r.outcome.name(),
            quote(r.check.description)
        );
    }
    out.push_str("\n]\n");
    out
}

/// `s` as a JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
