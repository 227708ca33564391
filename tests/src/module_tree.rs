//! Whether a crate's modules form a tree: no file imports a file that imports it back,
//! directly or through others ([`check_module_tree`]; `tests/tests/module_tree.rs` runs it on
//! every crate of the workspace).
//!
//! `module_graph` reads every `.rs` file under a `src` directory, collects the paths each file names —
//! `use` trees (`use crate::a::{b, c::D}`), and `crate::…`, `super::…`, `self::…` and
//! `child_module::…` paths anywhere in the code — and resolves each to the file of the deepest
//! module it names (`crate::transport::status::X` → `transport.rs` when `status` is an inline
//! module). Comments and string literals are skipped; inline `mod x { … }` blocks are tracked so
//! that `super::` inside them resolves correctly. A `mod x;` declaration is not an edge; a
//! re-export (`pub use x::Y`) is.
//!
//! Not handled: `#[path = "…"]` attributes, macro-generated paths (`$crate::` is skipped) and
//! `extern crate self as …` aliases.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

/// One use edge: the source line that names the target file first, and the path it names.
#[derive(Clone, Debug)]
struct Evidence {
    /// Line number in the source file.
    line: usize,
    /// The path as written (segments joined with `::`).
    path: String,
}

/// The files of a crate and the edges between them, by path relative to `src` (`a/b.rs`).
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Every file, with its edges: target file → first evidence.
    edges: BTreeMap<String, BTreeMap<String, Evidence>>,
}

impl ModuleGraph {
    /// The edges as text, one line per file: `a.rs -> b.rs, c.rs`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (file, targets) in &self.edges {
            let list: Vec<&str> = targets.keys().map(String::as_str).collect();
            let list = if list.is_empty() {
                "(nothing)".to_owned()
            } else {
                list.join(", ")
            };
            let _ = writeln!(s, "{file} -> {list}");
        }
        s
    }

    /// Every group of files that import each other (strongly connected components with more
    /// than one file), each as its files and one cycle through them.
    fn cycles(&self) -> Vec<(Vec<String>, Vec<String>)> {
        let nodes: Vec<&String> = self.edges.keys().collect();
        let index: BTreeMap<&String, usize> =
            nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let succ: Vec<Vec<usize>> = nodes
            .iter()
            .map(|n| {
                self.edges[*n]
                    .keys()
                    .filter_map(|t| index.get(t).copied())
                    .collect()
            })
            .collect();
        let mut cycles = Vec::new();
        for scc in tarjan(&succ) {
            let start = scc[0];
            let in_scc: BTreeSet<usize> = scc.iter().copied().collect();
            // Shortest path from `start` back to itself inside the component.
            let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut end = None;
            'bfs: while let Some(n) = queue.pop_front() {
                for &m in &succ[n] {
                    if !in_scc.contains(&m) {
                        continue;
                    }
                    if m == start {
                        end = Some(n);
                        break 'bfs;
                    }
                    if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(m) {
                        e.insert(n);
                        queue.push_back(m);
                    }
                }
            }
            let Some(mut n) = end else { continue };
            let mut cycle = vec![nodes[start].clone()];
            let mut back = vec![];
            while n != start {
                back.push(nodes[n].clone());
                n = prev[&n];
            }
            cycle.extend(back.into_iter().rev());
            cycle.push(nodes[start].clone());
            let group = scc.iter().map(|&n| nodes[n].clone()).collect();
            cycles.push((group, cycle));
        }
        cycles
    }

    /// A group and one of its cycles as text, with the line that makes each edge.
    fn describe(&self, group: &[String], cycle: &[String]) -> String {
        let mut s = format!("{{{}}}, e.g. {}", group.join(", "), cycle.join(" -> "));
        for pair in cycle.windows(2) {
            let e = &self.edges[&pair[0]][&pair[1]];
            let _ = write!(
                s,
                "\n    {}:{} names `{}` ({})",
                pair[0], e.line, e.path, pair[1]
            );
        }
        s
    }
}

/// Strongly connected components that contain a cycle (Tarjan's algorithm, iterative).
fn tarjan(succ: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = succ.len();
    let (mut index, mut low, mut on_stack) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut next, mut stack, mut out) = (0, Vec::new(), Vec::new());
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i == 0 {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = succ[v].get(*i) {
                *i += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                scc.sort_unstable();
                if scc.len() > 1 || succ[v].contains(&v) {
                    out.push(scc);
                }
            }
        }
    }
    out.sort();
    out
}

// ---- reading the sources ---------------------------------------------------------------------

/// A token of Rust source, with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// An identifier or keyword (raw identifiers without `r#`).
    Ident(String),
    /// `::`.
    PathSep,
    /// Any other punctuation character.
    Punct(char),
    /// A literal (number, string, char); its content is irrelevant here.
    Lit,
}

/// Splits Rust source into tokens, dropping comments and the content of literals.
fn tokenize(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut toks = Vec::new();
    let (mut i, mut line) = (0, 1);
    // Skips a quoted literal starting at `i` (on the opening quote) with `hashes` raw hashes;
    // returns the index after it and counts newlines.
    let skip_quoted = |mut i: usize, hashes: Option<usize>, line: &mut usize| -> usize {
        i += 1;
        while i < c.len() {
            match (c[i], hashes) {
                ('\n', _) => *line += 1,
                ('\\', None) => i += 1,
                ('"', None) => return i + 1,
                ('"', Some(h)) if (1..=h).all(|k| at(i + k) == '#') => return i + 1 + h,
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < c.len() {
        let ch = c[i];
        let l = line;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_quoted(i, None, &mut line);
            toks.push((Tok::Lit, l));
        } else if (ch == 'r' || (ch == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(ch == 'b')), '"' | '#')
            && {
                let s = i + 1 + usize::from(ch == 'b');
                let h = (s..).take_while(|&k| at(k) == '#').count();
                at(s + h) == '"'
            }
        {
            let s = i + 1 + usize::from(ch == 'b');
            let h = (s..).take_while(|&k| at(k) == '#').count();
            i = skip_quoted(s + h, Some(h), &mut line);
            toks.push((Tok::Lit, l));
        } else if ch == 'b' && at(i + 1) == '"' {
            i = skip_quoted(i + 1, None, &mut line);
            toks.push((Tok::Lit, l));
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            let s = i + usize::from(ch == 'b');
            if at(s + 1) == '\\' {
                // Escaped char literal: past the escaped character, up to the closing quote.
                let mut k = s + 3;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                i = k + 1;
                toks.push((Tok::Lit, l));
            } else if at(s + 2) == '\'' {
                i = s + 3;
                toks.push((Tok::Lit, l));
            } else {
                // A lifetime or label: drop the quote, the name follows as an identifier.
                i = s + 1;
            }
        } else if ch == 'r' && at(i + 1) == '#' && (at(i + 2).is_alphabetic() || at(i + 2) == '_') {
            i += 2;
        } else if ch.is_alphabetic() || ch == '_' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Ident(c[s..i].iter().collect()), l));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Lit, l));
        } else if ch == ':' && at(i + 1) == ':' {
            toks.push((Tok::PathSep, l));
            i += 2;
        } else {
            toks.push((Tok::Punct(ch), l));
            i += 1;
        }
    }
    toks
}

/// Parses a use tree starting at `toks[*i]`, appending each full path to `out`, and leaves
/// `*i` after the tree. `prefix` is the path so far.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    if toks.get(*i).map(|t| &t.0) == Some(&Tok::PathSep) {
        *i += 1; // leading `::`
    }
    loop {
        match toks.get(*i).map(|t| &t.0) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(path);
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                while let Some((t, _)) = toks.get(*i) {
                    match t {
                        Tok::Punct('}') => {
                            *i += 1;
                            return;
                        }
                        Tok::Punct(',') => *i += 1,
                        _ => use_tree(toks, i, &path, out),
                    }
                }
                return;
            }
            _ => {
                out.push(path);
                return;
            }
        }
        match toks.get(*i).map(|t| &t.0) {
            Some(Tok::PathSep) => *i += 1,
            Some(Tok::Ident(s)) if s == "as" => {
                *i += 2; // `as name`
                out.push(path);
                return;
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

/// The module path of a file (`a/b.rs` and `a/b/mod.rs` → `[a, b]`; `lib.rs` → `[]`).
fn module_of(rel: &str) -> Vec<String> {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    if stem == "lib" || stem == "main" {
        return vec![];
    }
    stem.split('/').map(str::to_owned).collect()
}

/// The file of module `m`, if it is a file of the crate.
fn file_of(files: &BTreeSet<String>, m: &[String]) -> Option<String> {
    if m.is_empty() {
        return ["lib.rs", "main.rs"]
            .into_iter()
            .find(|f| files.contains(*f))
            .map(str::to_owned);
    }
    let base = m.join("/");
    [format!("{base}.rs"), format!("{base}/mod.rs")]
        .into_iter()
        .find(|f| files.contains(f))
}

/// The file a path written in module `here` names, or `None` for other crates' paths.
fn resolve(files: &BTreeSet<String>, here: &[String], path: &[String]) -> Option<String> {
    let first = path.first()?;
    let (mut abs, rest) = match first.as_str() {
        "crate" => (vec![], &path[1..]),
        "self" => (here.to_vec(), &path[1..]),
        "super" => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let keep = here.len().checked_sub(ups)?;
            (here[..keep].to_vec(), &path[ups..])
        }
        _ => {
            let mut child = here.to_vec();
            child.push(first.clone());
            file_of(files, &child)?;
            (here.to_vec(), path)
        }
    };
    abs.extend(rest.iter().filter(|s| *s != "self").cloned());
    (0..=abs.len())
        .rev()
        .find_map(|k| file_of(files, &abs[..k]))
}

/// Every `.rs` file under `dir`, relative to `root`, with `/` separators.
fn rs_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rs_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// Reads the crate under `src` and returns its file graph.
fn module_graph(src: &Path) -> std::io::Result<ModuleGraph> {
    let mut paths = Vec::new();
    rs_files(src, src, &mut paths)?;
    let files: BTreeSet<String> = paths
        .iter()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    let mut graph = ModuleGraph::default();
    for file in &files {
        let text = fs::read_to_string(src.join(file))?;
        let toks = tokenize(&text);
        let file_mod = module_of(file);
        let edges = graph.edges.entry(file.clone()).or_default();
        // Inline modules open at each brace depth (`None` for other blocks).
        let mut blocks: Vec<Option<String>> = Vec::new();
        let here = |blocks: &[Option<String>]| {
            let mut m = file_mod.clone();
            m.extend(blocks.iter().flatten().cloned());
            m
        };
        let mut i = 0;
        while i < toks.len() {
            let prev = i.checked_sub(1).map(|p| &toks[p].0);
            let (tok, line) = &toks[i];
            let mut found: Vec<Vec<String>> = Vec::new();
            match tok {
                Tok::Punct('{') => {
                    let name = match (i.checked_sub(2).map(|p| &toks[p].0), prev) {
                        (Some(Tok::Ident(k)), Some(Tok::Ident(n))) if k == "mod" => Some(n.clone()),
                        _ => None,
                    };
                    blocks.push(name);
                    i += 1;
                }
                Tok::Punct('}') => {
                    blocks.pop();
                    i += 1;
                }
                Tok::Ident(k) if k == "use" && prev != Some(&Tok::PathSep) => {
                    i += 1;
                    use_tree(&toks, &mut i, &[], &mut found);
                }
                Tok::Ident(_)
                    if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep)
                        && !matches!(prev, Some(Tok::PathSep | Tok::Punct('$')))
                        && !matches!(prev, Some(Tok::Ident(k)) if k == "in") =>
                {
                    let mut path = Vec::new();
                    while let Some((Tok::Ident(s), _)) = toks.get(i) {
                        path.push(s.clone());
                        i += 1;
                        if toks.get(i).map(|t| &t.0) != Some(&Tok::PathSep) {
                            break;
                        }
                        i += 1;
                    }
                    found.push(path);
                }
                _ => i += 1,
            }
            let m = here(&blocks);
            for path in found {
                if let Some(target) = resolve(&files, &m, &path)
                    && target != *file
                {
                    edges.entry(target).or_insert_with(|| Evidence {
                        line: *line,
                        path: path.join("::"),
                    });
                }
            }
        }
    }
    Ok(graph)
}

/// Checks that the crate under `src` has no import cycle between its files; the error names
/// every cycle with the lines that make it.
pub fn check_module_tree(src: &Path) -> Result<ModuleGraph, String> {
    let graph = module_graph(src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    let cycles = graph.cycles();
    if cycles.is_empty() {
        return Ok(graph);
    }
    let mut msg = format!("{} import cycle(s) in {}:\n", cycles.len(), src.display());
    for (group, cycle) in &cycles {
        let _ = writeln!(msg, "  {}", graph.describe(group, cycle));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch crate `src` directory, removed on drop.
    struct TempSrc(PathBuf);

    impl TempSrc {
        fn new(name: &str, files: &[(&str, &str)]) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "module_tree_{}_{name}_{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            for (path, text) in files {
                let p = dir.join(path);
                fs::create_dir_all(p.parent().expect("file has a parent")).expect("mkdir");
                fs::write(&p, text).expect("write");
            }
            Self(dir)
        }
    }

    impl Drop for TempSrc {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn finds_a_direct_cycle() {
        let t = TempSrc::new(
            "direct",
            &[
                ("lib.rs", "mod a;\nmod b;\n"),
                ("a.rs", "use crate::b::B;\npub struct A;\n"),
                (
                    "b.rs",
                    "pub struct B;\nfn f() -> crate::a::A { crate::a::A }\n",
                ),
            ],
        );
        let err = check_module_tree(&t.0).expect_err("a and b import each other");
        assert!(err.contains("a.rs -> b.rs -> a.rs"), "{err}");
        assert!(err.contains("a.rs:1 names `crate::b::B`"), "{err}");
        assert!(err.contains("b.rs:2 names `crate::a::A`"), "{err}");
    }

    #[test]
    fn finds_a_parent_reexporting_a_child_that_uses_it() {
        let t = TempSrc::new(
            "reexport",
            &[
                ("lib.rs", "pub mod x;\n"),
                ("x.rs", "mod y;\npub use y::Y;\npub struct X;\n"),
                ("x/y.rs", "use super::X;\npub struct Y(X);\n"),
            ],
        );
        let err = check_module_tree(&t.0).expect_err("x re-exports y, y uses x");
        assert!(err.contains("x.rs -> x/y.rs -> x.rs"), "{err}");
    }

    #[test]
    fn finds_a_longer_cycle_through_super_super() {
        let t = TempSrc::new(
            "long",
            &[
                ("lib.rs", "mod p;\nmod q;\n"),
                ("p.rs", "pub mod c;\n"),
                ("p/c.rs", "pub fn f() { super::super::q::g() }\n"),
                ("q.rs", "pub fn g() { r::h() }\nmod r;\n"),
                ("q/r.rs", "pub fn h() { use crate::p::c as c2; c2::f() }\n"),
            ],
        );
        let err = check_module_tree(&t.0).expect_err("p/c -> q -> q/r -> p/c");
        assert!(err.contains("p/c.rs -> q.rs -> q/r.rs -> p/c.rs"), "{err}");
    }

    #[test]
    fn ignores_comments_strings_declarations_and_inline_modules() {
        let t = TempSrc::new(
            "clean",
            &[
                (
                    "lib.rs",
                    "//! Uses [`crate::b::B`] in docs only.\npub mod a;\npub mod b;\npub use a::A;\n",
                ),
                (
                    "a.rs",
                    concat!(
                        "/* crate::b::B /* nested */ crate::b */\n",
                        "pub struct A;\n",
                        "pub(in crate::a) fn f() -> &'static str { \"crate::b::B\" }\n",
                        "fn g() -> char { '\\'' }\n",
                        "fn h<'a>(x: &'a str) -> &'a str { let _ = r#\"super::b\"#; x }\n",
                        "macro_rules! m { () => { $crate::b::B } }\n",
                        "#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::{a::{self, A}};\n}\n",
                    ),
                ),
                ("b.rs", "use crate::a::{self, A};\npub struct B(A);\n"),
            ],
        );
        let graph = check_module_tree(&t.0).expect("no cycle");
        assert_eq!(
            graph.render(),
            "a.rs -> (nothing)\nb.rs -> a.rs\nlib.rs -> a.rs\n"
        );
    }
}
