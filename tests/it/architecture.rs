//! The shape of the code, held against `ARCHITECTURE.md`: the layers it lists (top to bottom)
//! are the only direction imports may run, sibling files import each other in one direction
//! only, and no file grows past 600 lines. Imports are read from the source text as a newcomer
//! reads them (`crate::…`, `super::…`, a child module's name), comments and unit tests left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be.
const MAX_LINES: usize = 600;
/// The longest `main.rs` may be: setup and dispatch only.
const MAX_MAIN_LINES: usize = 150;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The library's files by module path (`tables::spec`; `tables` for `tables/mod.rs`).
fn library() -> BTreeMap<Vec<String>, String> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().with_extension("");
        let mut path: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        if path[0] == "main" || path[0] == "lib" || path[0] == "cli" {
            continue; // the binary (main.rs, cli/) sits above every layer
        }
        if path.last().is_some_and(|l| l == "mod") {
            path.pop();
        }
        out.insert(path, code_of(&std::fs::read_to_string(&f).unwrap()));
    }
    out
}

/// The text that counts: no comments, no unit-test module.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
    text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// Every path a file names: `use` trees expanded (`a::{b, c::d}` → `a::b`, `a::c::d`), plus
/// paths written inline (`crate::x::y(…)`).
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let word = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !s.is_empty();
    for stmt in code.split(';') {
        // The statement's last `use` that starts a statement (after a brace or at the start).
        let at = stmt.match_indices("use ").map(|(i, _)| i).filter(|&i| {
            let before = stmt[..i].trim_end().trim_end_matches("pub(crate)").trim_end_matches("pub").trim_end();
            before.is_empty() || before.ends_with(['{', '}'])
        });
        if let Some(i) = at.last() {
            expand(&stmt[i + 4..].split_whitespace().collect::<Vec<_>>().join(" "), &mut Vec::new(), &mut out);
        }
    }
    for start in ["crate::", "super::"] {
        for (i, _) in code.match_indices(start) {
            if i > 0 && code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let segs: Vec<String> = code[i..].split("::").take_while(|s| word(s)).map(str::to_string).collect();
            let next = code[i..].split("::").nth(segs.len()).unwrap_or("");
            let mut segs = segs;
            if let Some(w) = next.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next()
                && word(w)
            {
                segs.push(w.to_string());
            }
            out.push(segs);
        }
    }
    out
}

fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(open) = tree.find('{') else {
        let mut p = prefix.clone();
        p.extend(tree.split(" as ").next().unwrap().split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string));
        out.push(p);
        return;
    };
    let head: Vec<String> = tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut depth, mut last) = (0, 0);
    let mut parts = Vec::new();
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[last..i]);
                last = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[last..]);
    let n = prefix.len();
    prefix.extend(head);
    for p in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        if p == "self" {
            out.push(prefix.clone());
        } else {
            expand(p, prefix, out);
        }
    }
    prefix.truncate(n);
}

fn child(me: &[String], name: &str) -> Vec<String> {
    me.iter().cloned().chain([name.to_string()]).collect()
}

/// The modules a file imports, as module paths of the library (the longest prefix that is one).
fn imports(me: &[String], code: &str, modules: &BTreeSet<Vec<String>>, is_dir: bool) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for p in paths(code) {
        let abs: Vec<String> = match p.first().map(String::as_str) {
            Some("crate") => p[1..].to_vec(),
            Some("super") => {
                let mut base = me.to_vec();
                let mut rest = &p[..];
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                base
            }
            Some(first) if is_dir && modules.contains(&child(me, first)) => me.iter().chain(&p).cloned().collect(),
            _ => continue,
        };
        if let Some(m) = (1..=abs.len()).rev().map(|n| abs[..n].to_vec()).find(|m| modules.contains(m))
            && m != me
        {
            out.insert(m);
        }
    }
    out
}

/// The layers of `ARCHITECTURE.md` (its fenced `layers` block), top first: each line names the
/// top-level modules of one layer.
fn layers() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let block = doc.split("```layers\n").nth(1).expect("ARCHITECTURE.md has a ```layers block").split("```").next().unwrap();
    block
        .lines()
        .map(|l| l.split('#').next().unwrap().split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn imports_run_down_the_layers_of_architecture_md() {
    let lib = library();
    let modules: BTreeSet<Vec<String>> = lib.keys().cloned().collect();
    let layers = layers();
    let layer_of: BTreeMap<&str, usize> = layers.iter().enumerate().flat_map(|(i, l)| l.iter().map(move |m| (m.as_str(), i))).collect();
    let tops: BTreeSet<&str> = modules.iter().map(|m| m[0].as_str()).collect();
    let unlisted: Vec<&&str> = tops.iter().filter(|t| !layer_of.contains_key(**t)).collect();
    assert!(unlisted.is_empty(), "modules missing from ARCHITECTURE.md's layers: {unlisted:?}");
    let mut wrong = Vec::new();
    for (me, code) in &lib {
        let is_dir = root().join("src").join(me.join("/")).is_dir();
        for to in imports(me, code, &modules, is_dir) {
            let (a, b) = (layer_of[me[0].as_str()], layer_of[to[0].as_str()]);
            if me[0] != to[0] && a >= b {
                wrong.push(format!("{} → {} (layer {a} → layer {b})", me.join("::"), to.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that do not run down the layers (top = 0):\n{}", wrong.join("\n"));
}

#[test]
fn sibling_files_import_each_other_one_way() {
    let lib = library();
    let modules: BTreeSet<Vec<String>> = lib.keys().cloned().collect();
    let mut edges: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for (me, code) in &lib {
        let is_dir = root().join("src").join(me.join("/")).is_dir();
        for to in imports(me, code, &modules, is_dir) {
            // Siblings: same parent, neither the other's ancestor.
            if me.len() == to.len() && me[..me.len() - 1] == to[..to.len() - 1] {
                edges.insert((me.clone(), to));
            }
        }
    }
    let circles: Vec<String> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| format!("{} ↔ {}", a.join("::"), b.join("::")))
        .collect();
    assert!(circles.is_empty(), "sibling modules that import each other:\n{}", circles.join("\n"));
}

#[test]
fn files_stay_small() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root().join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(f, n)| *n > if f.ends_with("src/main.rs") { MAX_MAIN_LINES } else { MAX_LINES })
        .map(|(f, n)| format!("{} ({n} lines)", f.strip_prefix(root()).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines (main.rs: {MAX_MAIN_LINES}): {long:?}");
}

#[test]
fn the_import_reader_sees_nested_use_trees() {
    let code = "use crate::tables::{self, delta::{AsOf, open}, writer::ShardConfig as C};\nfn f() { crate::query::read::quote(\"x\"); }";
    let p = paths(code);
    assert!(p.contains(&vec!["crate".into(), "tables".into()]), "{p:?}");
    assert!(p.contains(&vec!["crate".into(), "tables".into(), "delta".into(), "AsOf".into()]), "{p:?}");
    assert!(p.contains(&vec!["crate".into(), "tables".into(), "writer".into(), "ShardConfig".into()]), "{p:?}");
    assert!(p.contains(&vec!["crate".into(), "query".into(), "read".into(), "quote".into()]), "{p:?}");
    let modules: BTreeSet<Vec<String>> = [
        vec!["tables".to_string()],
        vec!["tables".into(), "delta".into()],
        vec!["query".into()],
        vec!["query".into(), "read".into()],
        vec!["x".into()],
    ]
    .into();
    let got = imports(&["x".to_string()], code, &modules, false);
    assert_eq!(got, [vec!["query".to_string(), "read".into()], vec!["tables".into()], vec!["tables".into(), "delta".into()]].into());
}
