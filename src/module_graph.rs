//! The module graph flows one way: this test reads `src/` and fails on an
//! import circle between the top-level rooms.
//!
//! An edge `a -> b` is any `crate::b` path (or `crate::X` where `X` is a
//! root re-export of `b`, or `super::b` in a top-level file) in the
//! non-test code of room `a`. Comments, doc links and `#[cfg(test)]` code
//! are not edges. The only back edges allowed are listed in
//! [`ALLOWED_BACK_EDGES`], each with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level rooms, roughly from the leaves up. A file under `src/`
/// that belongs to none of them (the crate root, test-only files) is not
/// read; a `crate::` path to an unknown name fails the test, so that a new
/// room is added here.
const ROOMS: &[&str] = &[
    "error",
    "json",
    "fetch",
    "clock",
    "breaker",
    "store",
    "config",
    "scope",
    "bearer",
    "challenge",
    "metadata",
    "jwks",
    "dpop",
    "policy",
    "verify",
    "context",
    "handle",
    "requirement",
    "operation",
    "filter",
    "layer",
    "server",
    "metrics",
    "presets",
    "testing",
    "audit",
    "correlation",
    "throttle",
    "store",
    "weighed",
];

/// Back edges allowed, each with its reason: only one that a trait object
/// needs, or a temporary one with the move that removes it.
const ALLOWED_BACK_EDGES: &[(&str, &str, &str)] = &[];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room a file belongs to: `src/x.rs` and `src/x/**` are room `x`.
fn room_of(path: &Path) -> Option<&'static str> {
    let rel = path.strip_prefix(src_dir()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    ROOMS.iter().copied().find(|r| *r == name)
}

/// Files declared as `#[cfg(test)] mod x;`: test-only, never edges.
fn test_only_files(path: &Path, text: &str) -> Vec<PathBuf> {
    let dir = if path
        .file_name()
        .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
    {
        path.parent().unwrap().to_path_buf()
    } else {
        path.with_extension("")
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for pair in lines.windows(2) {
        if pair[0] == "#[cfg(test)]"
            && let Some(rest) = pair[1]
                .strip_prefix("mod ")
                .or_else(|| pair[1].strip_prefix("pub(crate) mod "))
            && let Some(name) = rest.strip_suffix(';')
        {
            out.push(dir.join(format!("{name}.rs")));
            out.push(dir.join(name).join("mod.rs"));
        }
    }
    out
}

/// The production code of a file: comments dropped, and everything from
/// the first `#[cfg(test)]` followed by an inline `mod` (the house puts
/// test modules last).
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t == "#[cfg(test)]"
            && lines
                .get(i + 1)
                .is_some_and(|n| n.trim().starts_with("mod ") && n.trim().ends_with('{'))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Root re-exports (`pub use room::{A, B};` in lib.rs): name -> room.
fn root_reexports(lib: &str) -> BTreeMap<String, &'static str> {
    let mut map = BTreeMap::new();
    let flat = code_of(lib).replace('\n', " ");
    for stmt in flat.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((room, names)) = rest.split_once("::") else {
            continue;
        };
        let Some(room) = ROOMS.iter().copied().find(|r| *r == room.trim()) else {
            continue;
        };
        for name in names
            .trim_matches(|c| c == '{' || c == '}' || c == ' ')
            .split(',')
        {
            let name = name.trim();
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() {
                map.insert(name.to_owned(), room);
            }
        }
    }
    map
}

fn idents_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        // Not part of a longer path (`mycrate::`) or identifier.
        let before = code.get(..at).and_then(|s| s.chars().next_back());
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = code.get(at + prefix.len()..).unwrap_or("");
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::{X, Y}, b}`: the first segment of each member.
            let mut depth = 0usize;
            let mut start = 0usize;
            for (i, c) in group.char_indices() {
                let member_end = match c {
                    '{' => {
                        depth += 1;
                        None
                    }
                    '}' if depth == 0 => Some(i),
                    '}' => {
                        depth -= 1;
                        None
                    }
                    ',' if depth == 0 => Some(i),
                    _ => None,
                };
                if let Some(end) = member_end {
                    let member = group.get(start..end).unwrap_or("").trim();
                    let first = member.split("::").next().unwrap_or(member).trim();
                    if !first.is_empty() {
                        out.push(first);
                    }
                    start = i + 1;
                    if c == '}' {
                        break;
                    }
                }
            }
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        out.push(rest.get(..end).unwrap_or(""));
    }
    out
}

/// room -> rooms it imports.
fn module_graph() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let src = src_dir();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let reexports = root_reexports(&lib);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            test_only.extend(test_only_files(&p, &text));
            (p, text)
        })
        .collect();
    let mut graph: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
    for (path, text) in &texts {
        let Some(room) = room_of(path) else { continue };
        if test_only.contains(path) {
            continue;
        }
        let top_level = path.parent() == Some(src.as_path());
        let code = code_of(text);
        let mut names = idents_after(&code, "crate::");
        if top_level {
            names.extend(idents_after(&code, "super::"));
        }
        for name in names {
            let target = ROOMS
                .iter()
                .copied()
                .find(|r| *r == name)
                .or_else(|| reexports.get(name).copied())
                .unwrap_or_else(|| panic!("{}: `crate::{name}` names no room", path.display()));
            if target != room {
                graph.entry(room).or_default().insert(target);
            }
        }
    }
    graph
}

/// A circle in `graph`, if any, as the rooms along it.
fn find_cycle(graph: &BTreeMap<&'static str, BTreeSet<&'static str>>) -> Option<Vec<&'static str>> {
    fn visit(
        room: &'static str,
        graph: &BTreeMap<&'static str, BTreeSet<&'static str>>,
        path: &mut Vec<&'static str>,
        done: &mut BTreeSet<&'static str>,
    ) -> Option<Vec<&'static str>> {
        if let Some(i) = path.iter().position(|r| *r == room) {
            let mut cycle = path[i..].to_vec();
            cycle.push(room);
            return Some(cycle);
        }
        if done.contains(room) {
            return None;
        }
        path.push(room);
        for next in graph.get(room).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(room);
        None
    }
    let mut done = BTreeSet::new();
    for room in graph.keys() {
        if let Some(cycle) = visit(room, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn module_graph_has_no_import_circle() {
    let mut graph = module_graph();
    for (from, to, _why) in ALLOWED_BACK_EDGES {
        if let Some(edges) = graph.get_mut(from) {
            edges.remove(to);
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        let rendered: Vec<String> = graph
            .iter()
            .map(|(from, to)| {
                format!(
                    "  {from} -> {}",
                    to.iter().copied().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        panic!(
            "import circle: {}\nmodule graph (allowed back edges removed):\n{}",
            cycle.join(" -> "),
            rendered.join("\n")
        );
    }
}

#[test]
fn cycle_finder_finds_a_circle_and_accepts_a_tree() {
    let mut graph: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
    graph.entry("layer").or_default().insert("verify");
    graph.entry("verify").or_default().insert("jwks");
    assert_eq!(find_cycle(&graph), None);
    graph.entry("jwks").or_default().insert("layer");
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["jwks", "layer", "verify", "jwks"])
    );
}

#[test]
fn comments_doc_links_and_tests_are_not_edges() {
    let text = "use crate::error::AuthError;\n/// See [`x`](crate::layer).\n// crate::server\nfn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::testing::X;\n}\n";
    let code = code_of(text);
    assert_eq!(idents_after(&code, "crate::"), vec!["error"]);
    assert_eq!(
        idents_after("use crate::{json::{Members, as_str}, clock};", "crate::"),
        vec!["json", "clock"]
    );
    assert_eq!(
        idents_after("use mycrate::x; super::crate::y", "crate::"),
        Vec::<&str>::new()
    );
}
