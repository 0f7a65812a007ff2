//! `cargo xtask tidy`: the repository's house rules, checked in a second
//! without compiling anything.
//!
//! - Every Rust source file opens with its doc paragraph (`//!`, or the
//!   crate doc taken from the README with `#![doc = include_str!(..)]`),
//!   except the files of [`NO_DOC_EXEMPT`], each with its reason.
//! - No snapshot left pending: no `*.snap.new` or `*.pending-snap` file
//!   (insta writes them when a snapshot test fails; they are ignored by git
//!   and so easy to forget).
//! - Every relative link of the Markdown files resolves to a file or folder
//!   of the repository.
//! - The README's layout names every crate under `crates/`.
//! - The conformance scenarios are the reference ones: when
//!   `../shared/conformance/` exists beside the repository, every scenario
//!   file in it has a byte-identical copy committed in
//!   `crates/ratelimit-replay/conformance/`. Without that folder (a clone
//!   on its own) there is nothing to compare and the check passes.
//!
//! Every problem is listed, not only the first.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::{Step, root};

/// Rust files that need not open with a doc paragraph, and why. Empty
/// today; an entry needs a reason a reviewer accepts.
const NO_DOC_EXEMPT: &[(&str, &str)] = &[];

/// Where the repository keeps its copies of the conformance files.
const CONFORMANCE_COPIES: &str = "crates/ratelimit-replay/conformance";

/// Folders never walked: build output, git's own files.
fn skipped(name: &str) -> bool {
    name == "target" || name.starts_with("target-") || name.starts_with('.')
}

pub(crate) fn run() -> Result<(), String> {
    let root = root();
    let files = walk(&root);
    let mut problems = Vec::new();
    problems.extend(doc_paragraphs(&root, &files));
    problems.extend(pending_snapshots(&root, &files));
    problems.extend(markdown_links(&root, &files));
    problems.extend(readme_layout(&root));
    // `git ls-files` fails outside a git checkout: then only the contents
    // are compared.
    let committed = Step::new("git", &["ls-files", "--", CONFORMANCE_COPIES])
        .output()
        .ok();
    problems.extend(conformance_copies(
        &root,
        &root.join("../shared/conformance"),
        committed.as_deref(),
    ));
    if problems.is_empty() {
        eprintln!("tidy: {} files checked, all tidy", files.len());
        Ok(())
    } else {
        Err(format!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

/// Every file under `dir`, but in [`skipped`] folders.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            match entry.file_type() {
                Ok(t) if t.is_dir() && !skipped(&name) => pending.push(path),
                Ok(t) if t.is_file() => files.push(path),
                _ => {}
            }
        }
    }
    files.sort();
    files
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Whether Rust source `text` opens with a doc paragraph.
fn opens_with_doc(text: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty())
        .is_some_and(|first| {
            first.starts_with("//!") || first.starts_with("#![doc = include_str!(")
        })
}

fn doc_paragraphs(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let name = relative(root, path);
        if NO_DOC_EXEMPT.iter().any(|(exempt, _)| *exempt == name) {
            continue;
        }
        match fs::read_to_string(path) {
            Ok(text) if opens_with_doc(&text) => {}
            Ok(_) => problems.push(format!(
                "{name}: does not open with a `//!` paragraph saying what the file is"
            )),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    problems
}

fn pending_snapshots(root: &Path, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| relative(root, p))
        .filter(|name| name.ends_with(".snap.new") || name.ends_with(".pending-snap"))
        .map(|name| {
            format!(
                "{name}: a pending snapshot (review it with `cargo insta review`, or delete it)"
            )
        })
        .collect()
}

/// The targets of the inline links `[text](target)` and of the reference
/// definitions `[label]: target` of Markdown `text`, outside code blocks
/// and code spans, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        // Indented code blocks (four spaces) hold no links either.
        if fenced || line.starts_with("    ") || line.starts_with('\t') {
            continue;
        }
        // Code spans: drop what lies between backticks.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(rest) = trimmed.strip_prefix('[') {
            if let Some((_, target)) = rest.split_once("]: ") {
                found.push((index + 1, target.trim().to_owned()));
                continue;
            }
        }
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else {
                break;
            };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            found.push((index + 1, target.to_owned()));
            rest = &after[end..];
        }
    }
    found
}

/// Whether a link target is a rustdoc intra-doc link (`HeaderKey::new`,
/// `Quota`) rather than a file: a crate README that is also the crate's
/// documentation links to items that way. A file link has a `/` or an
/// extension.
fn is_rust_path(target: &str) -> bool {
    target.contains("::") || !(target.contains('/') || target.contains('.'))
}

fn markdown_links(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        let dir = path.parent().unwrap_or(root);
        for (line, target) in links(&text) {
            let external = target.contains("://") || target.starts_with("mailto:");
            let file = target.split('#').next().unwrap_or("");
            if external || file.is_empty() || is_rust_path(file) {
                continue;
            }
            if !dir.join(file).exists() {
                problems.push(format!(
                    "{}:{line}: the link to `{target}` leads nowhere",
                    relative(root, path)
                ));
            }
        }
    }
    problems
}

/// The README's "Layout" section names every crate folder.
fn readme_layout(root: &Path) -> Vec<String> {
    let Ok(readme) = fs::read_to_string(root.join("README.md")) else {
        return vec!["README.md: missing".to_owned()];
    };
    let Some(layout) = readme.split("\n## Layout").nth(1) else {
        return vec!["README.md: no `## Layout` section".to_owned()];
    };
    let layout = layout.split("\n## ").next().unwrap_or(layout);
    let Ok(crates) = fs::read_dir(root.join("crates")) else {
        return Vec::new();
    };
    let mut problems: Vec<String> = crates
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !layout.contains(&format!("crates/{name}")))
        .map(|name| format!("README.md: the Layout section does not name crates/{name}"))
        .collect();
    problems.sort();
    problems
}

/// The scenario files of `reference` (when it exists) each have an
/// identical copy in [`CONFORMANCE_COPIES`], listed in `committed` (the
/// output of `git ls-files`) when that is known.
fn conformance_copies(root: &Path, reference: &Path, committed: Option<&str>) -> Vec<String> {
    let Ok(entries) = fs::read_dir(reference) else {
        eprintln!(
            "tidy: no {} beside the repository: the conformance copies are not compared",
            reference.display()
        );
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".jsonl.gz"))
        .collect();
    names.sort();
    let mut problems = Vec::new();
    for name in names {
        let copy = format!("{CONFORMANCE_COPIES}/{name}");
        let fix = format!("(cp {}/{name} {copy})", reference.display());
        match (fs::read(reference.join(&name)), fs::read(root.join(&copy))) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(_), Ok(_)) => problems.push(format!("{copy}: differs from the reference {fix}")),
            (Ok(_), Err(_)) => problems.push(format!("{copy}: missing {fix}")),
            (Err(e), _) => problems.push(format!("{}/{name}: {e}", reference.display())),
        }
        if let Some(listed) = committed {
            if !listed.lines().any(|l| l.trim() == copy) {
                problems.push(format!("{copy}: not committed (git add it)"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_paragraphs_are_recognized() {
        assert!(opens_with_doc("//! What this is.\n\nuse x;"));
        assert!(opens_with_doc("\n//! After a blank line."));
        assert!(opens_with_doc("#![doc = include_str!(\"../README.md\")]\n"));
        assert!(!opens_with_doc("use x;\n//! Too late."));
        assert!(!opens_with_doc(
            "/// An item's doc, not the file's.\nfn f() {}"
        ));
        assert!(!opens_with_doc(""));
    }

    #[test]
    fn rustdoc_links_are_not_files() {
        for item in [
            "HeaderKey::new",
            "Quota",
            "crate::Rate",
            "RefusalKind::Denied",
        ] {
            assert!(is_rust_path(item), "{item}");
        }
        for file in ["docs/http.md", "README.md", "../x", "./e.md"] {
            assert!(!is_rust_path(file), "{file}");
        }
    }

    #[test]
    fn links_outside_code_are_found() {
        let text = "See [a](docs/a.md#part) and [b](https://x.invalid).\n\
                    ```\n[c](not/a/link.md)\n```\n\
                    Code `[d](nope.md)` and [e](./e.md \"title\").\n\
                    \x20   [f](indented/code.md)\n\
                    [g]: ../g.md\n";
        let targets: Vec<String> = links(text).into_iter().map(|(_, t)| t).collect();
        assert_eq!(
            targets,
            ["docs/a.md#part", "https://x.invalid", "./e.md", "../g.md"]
        );
    }

    #[test]
    fn conformance_copies_are_compared_when_the_reference_exists() {
        let base = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        let (reference, repo) = (base.join("reference"), base.join("repo"));
        let copies = repo.join(CONFORMANCE_COPIES);
        fs::create_dir_all(&reference).unwrap();
        fs::create_dir_all(&copies).unwrap();
        fs::write(reference.join("a.jsonl.gz"), b"same").unwrap();
        fs::write(reference.join("b.jsonl.gz"), b"new").unwrap();
        fs::write(reference.join("README.md"), b"not a scenario file").unwrap();
        fs::write(copies.join("a.jsonl.gz"), b"same").unwrap();
        let committed = format!("{CONFORMANCE_COPIES}/a.jsonl.gz\n");
        let problems = conformance_copies(&repo, &reference, Some(&committed));
        assert_eq!(
            problems,
            [
                format!(
                    "{CONFORMANCE_COPIES}/b.jsonl.gz: missing (cp {}/b.jsonl.gz {CONFORMANCE_COPIES}/b.jsonl.gz)",
                    reference.display()
                ),
                format!("{CONFORMANCE_COPIES}/b.jsonl.gz: not committed (git add it)"),
            ]
        );
        fs::write(copies.join("a.jsonl.gz"), b"edited").unwrap();
        let problems = conformance_copies(&repo, &reference, Some(&committed));
        assert!(problems[0].contains("a.jsonl.gz: differs"), "{problems:?}");
        // No reference folder: nothing to compare, nothing wrong.
        assert!(conformance_copies(&repo, &base.join("absent"), None).is_empty());
        fs::remove_dir_all(&base).unwrap();
    }
}
