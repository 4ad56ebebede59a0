//! The module map kept true. Every `crate::` (and `super::`) path in the
//! library points to a module of its own layer or a lower one, as the
//! layer table in docs/design.md says; the modules import each other
//! without a cycle, and so do the files of each folder; no function in
//! src/ is longer than 120 lines. Read with syn, so a path in a comment or
//! a string does not count and one spread over lines does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The longest a function in src/ may be, in lines.
const MAX_FN_LINES: usize = 120;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layer table of docs/design.md: each library module and its layer.
fn layer_table() -> BTreeMap<String, usize> {
    let design = std::fs::read_to_string(root().join("docs/design.md")).unwrap();
    let section = design
        .split("\n## ")
        .find(|s| s.starts_with("Layers"))
        .expect("docs/design.md has a `## Layers` section");
    let mut table = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(layer) = cells
            .get(1)
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        for module in cells[2].split('`').skip(1).step_by(2) {
            assert!(
                table.insert(module.to_owned(), layer).is_none(),
                "docs/design.md lists `{module}` twice"
            );
        }
    }
    assert!(
        !table.is_empty(),
        "the layer table in docs/design.md has no rows"
    );
    table
}

/// A file of the crate: its path, its module path (`lock::resolve`) and
/// its syntax tree.
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    syntax: syn::File,
}

fn source_files() -> Vec<SourceFile> {
    let src = root().join("src");
    let mut out = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let syntax =
                syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push(SourceFile {
                path,
                module,
                syntax,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether a file belongs to the binary rather than the library.
fn is_binary(f: &SourceFile) -> bool {
    matches!(
        f.module.first().map(String::as_str),
        Some("main" | "lib" | "cli")
    )
}

/// Every module path a file names (outside its `#[cfg(test)]` items),
/// made absolute: `super::repo::checked` in `lock/artifacts.rs` is
/// `lock::repo::checked`.
struct Paths<'a> {
    here: &'a [String],
    found: Vec<Vec<String>>,
}

impl Paths<'_> {
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "super" => self.here[..self.here.len().saturating_sub(1)].to_vec(),
            "self" => self.here.to_vec(),
            _ => return None,
        };
        base.extend(segments[1..].iter().cloned());
        Some(base)
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.record(prefix, Some(n.ident.to_string())),
            syn::UseTree::Rename(r) => self.record(prefix, Some(r.ident.to_string())),
            syn::UseTree::Glob(_) => self.record(prefix, None),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn record(&mut self, prefix: &[String], last: Option<String>) {
        let mut segments = prefix.to_vec();
        segments.extend(last.filter(|l| l != "self"));
        if let Some(p) = self.absolute(&segments) {
            self.found.push(p);
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test_only(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(abs) = self.absolute(&segments) {
            self.found.push(abs);
        }
        syn::visit::visit_path(self, p);
    }
}

/// Module paths named by `f`.
fn paths_of(f: &SourceFile) -> Vec<Vec<String>> {
    let mut v = Paths {
        here: &f.module,
        found: Vec::new(),
    };
    v.visit_file(&f.syntax);
    v.found
}

/// The first cycle of a graph, if it has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut c = stack[from..].to_vec();
                c.push(node.to_owned());
                return Some(c);
            }
            _ => {}
        }
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut state, &mut Vec::new()))
}

#[test]
fn no_module_imports_one_of_a_higher_layer() {
    let layers = layer_table();
    let files = source_files();
    let library: Vec<&SourceFile> = files.iter().filter(|f| !is_binary(f)).collect();
    let tops: BTreeSet<&str> = library.iter().map(|f| f.module[0].as_str()).collect();
    let mut wrong = Vec::new();
    for t in &tops {
        if !layers.contains_key(*t) {
            wrong.push(format!("src/{t}: not in the layer table of docs/design.md"));
        }
    }
    for m in layers.keys() {
        if !tops.contains(m.as_str()) {
            wrong.push(format!(
                "docs/design.md lists `{m}`, which src/ does not have"
            ));
        }
    }
    for f in &library {
        let from = &f.module[0];
        for p in paths_of(f) {
            let Some(to) = p.first().filter(|t| tops.contains(t.as_str())) else {
                continue;
            };
            if let (Some(a), Some(b)) = (layers.get(from), layers.get(to))
                && b > a
            {
                wrong.push(format!(
                    "{}: `{from}` (layer {a}) imports `{}` (layer {b})",
                    f.path.strip_prefix(root()).unwrap().display(),
                    p.join("::")
                ));
            }
        }
    }
    wrong.dedup();
    assert!(wrong.is_empty(), "upward imports:\n{}", wrong.join("\n"));
}

#[test]
fn modules_and_the_files_of_each_folder_import_each_other_without_a_cycle() {
    let files = source_files();
    let library: Vec<&SourceFile> = files.iter().filter(|f| !is_binary(f)).collect();
    let tops: BTreeSet<String> = library.iter().map(|f| f.module[0].clone()).collect();
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Per folder: its files (not mod.rs) and which of them each names.
    let mut siblings: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let files_of: BTreeSet<Vec<String>> = library
        .iter()
        .filter(|f| f.module.len() > 1)
        .map(|f| f.module[..2].to_vec())
        .collect();
    for f in &library {
        let from = f.module[0].clone();
        modules.entry(from.clone()).or_default();
        for p in paths_of(f) {
            if p.first().is_some_and(|t| tops.contains(t) && *t != from) {
                modules.get_mut(&from).unwrap().insert(p[0].clone());
            }
            if f.module.len() > 1
                && p.len() > 1
                && p[0] == from
                && p[1] != f.module[1]
                && files_of.contains(&p[..2])
            {
                siblings
                    .entry(from.clone())
                    .or_default()
                    .entry(f.module[1].clone())
                    .or_default()
                    .insert(p[1].clone());
            }
        }
    }
    if let Some(c) = cycle(&modules) {
        panic!("modules import each other in a loop: {}", c.join(" → "));
    }
    for (folder, graph) in &siblings {
        if let Some(c) = cycle(graph) {
            panic!(
                "files of src/{folder}/ import each other in a loop: {}",
                c.join(" → ")
            );
        }
    }
}

/// Lines of every function (free, in an impl or a trait) longer than the
/// limit.
struct LongFunctions<'a> {
    file: &'a Path,
    found: Vec<String>,
}

impl LongFunctions<'_> {
    fn check(&mut self, name: &syn::Ident, block: &syn::Block) {
        let end = block.brace_token.span.close().start().line;
        let lines = end - name.span().start().line + 1;
        if lines > MAX_FN_LINES {
            self.found.push(format!(
                "{}:{}: `{name}` is {lines} lines",
                self.file.display(),
                name.span().start().line
            ));
        }
    }
}

impl<'ast> Visit<'ast> for LongFunctions<'_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.check(&f.sig.ident, &f.block);
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.check(&f.sig.ident, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(b) = &f.default {
            self.check(&f.sig.ident, b);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

#[test]
fn no_function_in_src_is_longer_than_120_lines() {
    let mut found = Vec::new();
    for f in source_files() {
        let rel = f.path.strip_prefix(root()).unwrap().to_owned();
        let mut v = LongFunctions {
            file: &rel,
            found: Vec::new(),
        };
        v.visit_file(&f.syntax);
        found.extend(v.found);
    }
    assert!(
        found.is_empty(),
        "functions longer than {MAX_FN_LINES} lines:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_see_an_upward_import_and_a_loop() {
    // The checks above must be able to fail: a file that names a module
    // of a higher layer, and a graph with a loop.
    let syntax =
        syn::parse_file("use crate::install::OpenBundle;\nfn f() { crate::serve::x(); }").unwrap();
    let f = SourceFile {
        path: PathBuf::from("src/digest.rs"),
        module: vec!["digest".into()],
        syntax,
    };
    let found: Vec<String> = paths_of(&f).iter().map(|p| p.join("::")).collect();
    assert_eq!(found, ["install::OpenBundle", "serve::x"]);
    let layers = layer_table();
    assert!(layers["install"] > layers["digest"] && layers["serve"] > layers["digest"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(cycle(&graph).unwrap(), ["a", "b", "a"]);
}
