//! The gateway's modules form layers that depend only downward:
//!
//! ```text
//! server → protocol, call → context → error, metrics, policy → upstream → wire
//! ```
//!
//! This reads the sources and fails on any reference from a module to one above it (or to
//! the crate root's re-exports, which would hide such a reference), so the floor plan in
//! `docs/architecture.md` stays true.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module's layer; a module may use its own layer and those below.
const LAYERS: [(&str, u8); 9] = [
    ("wire", 0),
    ("upstream", 1),
    ("error", 2),
    ("policy", 2),
    ("metrics", 2),
    ("context", 3),
    ("protocol", 4),
    ("call", 4),
    ("server", 5),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::name` references outside comments, with their line numbers.
fn references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push((number + 1, name));
        }
    }
    found
}

#[test]
fn every_module_depends_only_on_layers_below_it() {
    let layers: BTreeMap<&str, u8> = LAYERS.into_iter().collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&root).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("")
            .trim_end_matches(".rs");
        if top == "lib" {
            continue;
        }
        let Some(&own) = layers.get(top) else {
            violations.push(format!(
                "{}: module `{top}` has no layer in LAYERS",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("source is readable");
        for (line, name) in references(&text) {
            checked += 1;
            match layers.get(name.as_str()) {
                Some(&layer) if layer <= own => {}
                Some(_) => violations.push(format!(
                    "{}:{line}: `{top}` uses `crate::{name}`, a layer above it",
                    relative.display()
                )),
                None => violations.push(format!(
                    "{}:{line}: `crate::{name}` goes through the crate root; name the module",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        checked > 80,
        "only {checked} references found: is the scan broken?"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scan_sees_references_and_skips_comments() {
    let found = references(
        "use crate::wire::framing; // crate::server\n/// crate::x\nlet a = crate::context::X;",
    );
    let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["wire", "context"]);
}
