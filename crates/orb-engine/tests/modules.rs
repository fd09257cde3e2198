//! The import graph among orb-engine's top-level modules has no cycle, and the layering the crate docs
//! describe holds: only `worker` uses `dispatch`, `sync` uses neither `dispatch`, `reconcile` nor
//! `subscriptions`, and `runtime` (the bottom) uses no module that could use it back.
//!
//! The graph is read from the sources: every `crate::x` outside comments (`use crate::x::…`,
//! `use crate::{x, y}`, `crate::x::f(…)`) is an edge from the file's top-level module to `x`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/sync/room.rs` → `sync`); `None` for `lib.rs`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("the file is under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").map_or(first.clone(), str::to_owned);
    (name != "lib").then_some(name)
}

/// The source without `//` comments (doc comments included: a doc link is not a dependency) and
/// without `/* … */` comments.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `source` refers to through `crate::`.
fn referenced_modules(source: &str) -> BTreeSet<String> {
    let code = without_comments(source);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` belongs to a macro of another crate, `orb_crate::` is no `crate::` at all.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first identifier of each top-level item.
            let mut depth = 0_u32;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        found.insert(ident(&group[i..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name.to_owned());
            }
        }
    }
    found
}

/// orb-engine's module graph, read from `src/`.
fn engine_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src, f)).collect();
    let mut graph: Graph = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let Some(from) = top_module(&src, file) else { continue };
        let text = std::fs::read_to_string(file).expect("the source file is readable");
        for to in referenced_modules(&text) {
            assert!(modules.contains(&to), "{} refers to crate::{to}, which is no module", file.display());
            if to != from {
                graph.get_mut(&from).expect("known module").insert(to);
            }
        }
    }
    graph
}

/// A cycle in `graph` as the path of modules that closes it (`[a, b, a]`), if there is one (depth-first
/// search with the path on a stack).
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    fn visit(node: &str, graph: &Graph, marks: &mut BTreeMap<String, Mark>, path: &mut Vec<String>) -> bool {
        match marks.get(node) {
            Some(Mark::Done) => return false,
            Some(Mark::OnPath) => {
                let start = path.iter().position(|n| n == node).expect("on the path");
                path.drain(..start);
                path.push(node.to_owned());
                return true;
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::OnPath);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if visit(next, graph, marks, path) {
                return true;
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        false
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        let mut path = Vec::new();
        if visit(node, graph, &mut marks, &mut path) {
            return Some(path);
        }
    }
    None
}

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph.entry((*from).to_owned()).or_default().insert((*to).to_owned());
        graph.entry((*to).to_owned()).or_default();
    }
    graph
}

#[test]
fn the_engine_modules_import_each_other_without_a_cycle() {
    let graph = engine_graph();
    assert!(graph.len() >= 10, "the module list was read: {graph:?}");
    assert!(graph["dispatch"].contains("sync"), "the reader sees `use crate::sync`: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("orb-engine's modules import each other in a circle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_layering_of_the_crate_docs_holds() {
    let graph = engine_graph();
    let users_of =
        |m: &str| -> Vec<&String> { graph.iter().filter(|(_, to)| to.contains(m)).map(|(f, _)| f).collect() };
    assert_eq!(users_of("dispatch"), ["worker"], "only the worker dispatches jobs");
    for banned in ["dispatch", "reconcile", "subscriptions", "worker", "scheduler"] {
        assert!(!graph["sync"].contains(banned), "sync must not use {banned}: {:?}", graph["sync"]);
    }
    let runtime: Vec<&String> = graph["runtime"].iter().collect();
    assert_eq!(runtime, ["exchange", "observe", "pause"], "runtime is the bottom of the graph");
    assert!(graph["exchange"].is_empty(), "the Exchange seam uses no engine module: {:?}", graph["exchange"]);
}

#[test]
fn references_are_read_from_code_not_comments() {
    let cases: &[(&str, &[&str])] = &[
        ("use crate::sync::{SyncDeps, TenantRuntime};", &["sync"]),
        (
            "use crate::{dispatch, observe::{self, scrubbed}, runtime::X};",
            &["dispatch", "observe", "runtime"],
        ),
        ("let x = crate::reconcile::sweep_job(deps).await;", &["reconcile"]),
        ("/// see [`crate::dispatch::process_job`]\n// crate::worker\nfn f() {}", &[]),
        ("/* crate::worker */ use crate::pause::WritePause;", &["pause"]),
        ("$crate::x::y!(); orb_crate::z();", &[]),
    ];
    for (source, want) in cases {
        let got: Vec<String> = referenced_modules(source).into_iter().collect();
        assert_eq!(got, *want, "{source}");
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle_such_as_sync_using_dispatch() {
    let acyclic = graph_of(&[("worker", "dispatch"), ("dispatch", "sync"), ("sync", "runtime")]);
    assert_eq!(find_cycle(&acyclic), None);
    let mut real = engine_graph();
    real.get_mut("sync").expect("sync").insert("dispatch".to_owned());
    let cycle = find_cycle(&real).expect("sync → dispatch closes a cycle");
    assert_eq!(cycle.first(), cycle.last(), "{cycle:?}");
    assert!(cycle.contains(&"sync".to_owned()) && cycle.contains(&"dispatch".to_owned()), "{cycle:?}");
    let self_loop_free = graph_of(&[("a", "b"), ("b", "c"), ("c", "a")]);
    assert_eq!(find_cycle(&self_loop_free).map(|c| c.len()), Some(4), "a → b → c → a");
}
