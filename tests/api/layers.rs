//! The module tree is the architecture: a module may use modules of its own layer or of
//! the layers below, never above, and no modules use each other in a circle. Checked over
//! the `crate::` and `super::` paths of every file under `src/` (test modules left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::TestResult;

/// The layers, lowest first. A module's layer is that of its first path segment.
const LAYERS: &[&[&str]] = &[
    // What every layer speaks: configuration, ids, enums, cursors.
    &["config", "vocabulary"],
    // The metrics registry every layer above records into.
    &["metrics"],
    // Storage: the database, and the media store for attachment bytes (with what
    // reads those bytes: sniffing, images, signed URLs).
    &["db", "media"],
    // Errors (they map database errors), credentials, the rate limit.
    &["error", "auth", "rate"],
    // Live events: the broker, the PostgreSQL bridge, presence, typing.
    &["events"],
    // The services and the state they share.
    &["app", "domain"],
    &["graphql"],
    &["ws"],
    &["http"],
    &["server", "main", "lib"],
];

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    LAYERS.iter().position(|layer| layer.contains(&top))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    Ok(())
}

/// `src/db/chats.rs` → `db::chats`, `src/db/mod.rs` → `db`, `src/lib.rs` → `lib`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The modules (files) `text` names through `crate::` or `super::` paths.
fn uses(module: &str, text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    // Test modules may reach anywhere.
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    let parent = module.rsplit_once("::").map(|(p, _)| p.to_owned());
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(['c', 's']) {
        let tail = &rest[at..];
        let start_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let base = if !start_ok {
            None
        } else if let Some(path) = tail.strip_prefix("crate::") {
            Some((String::new(), path))
        } else if let Some(path) = tail.strip_prefix("super::") {
            parent.clone().map(|p| (p, path))
        } else {
            None
        };
        if let Some((base, path)) = base {
            let segments: Vec<&str> = path
                .split("::")
                .map(|s| {
                    s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")
                })
                .take_while(|s| !s.is_empty())
                .collect();
            let prefix = |n: usize| {
                let joined = segments[..n].join("::");
                match (base.is_empty(), joined.is_empty()) {
                    (true, _) => joined,
                    (false, true) => base.clone(),
                    (false, false) => format!("{base}::{joined}"),
                }
            };
            // The longest prefix that names a module file.
            let mut targets: Vec<String> = (1..=segments.len())
                .map(prefix)
                .rfind(|m| modules.contains(m))
                .into_iter()
                .collect();
            // `crate::a::{b, c::D}` names `a::b` and `a::c` too.
            let braced = path
                .get(segments.iter().map(|s| s.len() + 2).sum::<usize>()..)
                .filter(|after| after.starts_with('{'));
            if let Some(group) = braced.and_then(|g| g.get(1..g.find('}')?)) {
                let stem = prefix(segments.len());
                for item in group.split(',') {
                    let name = item.trim().split("::").next().unwrap_or("").trim();
                    let candidate = if stem.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{stem}::{name}")
                    };
                    if modules.contains(&candidate) {
                        targets.push(candidate);
                    }
                }
            }
            // `crate::with_conn!` is db's macro, exported at the crate root.
            if segments.first() == Some(&"with_conn") {
                targets = vec!["db".to_owned()];
            }
            found.extend(targets.into_iter().filter(|t| t != module));
        }
        rest = &rest[at + 1..];
    }
    found
}

fn import_graph() -> TestResult<BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file)?;
        graph.insert(module.clone(), uses(&module, &text, &modules));
    }
    Ok(graph)
}

#[test]
fn no_module_uses_a_higher_layer() -> TestResult {
    let graph = import_graph()?;
    let mut upward = Vec::new();
    for (module, targets) in &graph {
        let Some(own) = layer_of(module) else {
            return Err(format!("`{module}` belongs to no layer: add it to LAYERS").into());
        };
        for target in targets {
            let theirs = layer_of(target).ok_or(format!("`{target}` belongs to no layer"))?;
            if theirs > own {
                upward.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports that run up: {upward:#?}");
    Ok(())
}

#[test]
fn no_modules_use_each_other_in_a_circle() -> TestResult {
    let graph = import_graph()?;
    // Depth-first search; a module met again while still on the path closes a circle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_owned());
            circles.push(circle.join(" -> "));
            return;
        }
        if !done.insert(module.to_owned()) {
            return;
        }
        path.push(module.to_owned());
        for target in graph.get(module).into_iter().flatten() {
            visit(target, graph, path, done, circles);
        }
        path.pop();
    }
    let (mut done, mut circles) = (BTreeSet::new(), Vec::new());
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
    Ok(())
}
