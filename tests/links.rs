//! Every relative link in `README.md`, `CONTRIBUTING.md` and `docs/*.md`
//! resolves to a file or directory of the repository (the path part; an
//! `#anchor` is not checked). Web and mail links, and links within the same
//! page, are out of scope. Needs no broker.

use std::path::{Path, PathBuf};

/// The repository's root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The markdown files whose links are checked.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut files: Vec<PathBuf> = ["README.md", "CONTRIBUTING.md"]
        .iter()
        .map(|name| root.join(name))
        .filter(|path| path.exists())
        .collect();
    if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
        let mut docs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}

/// The targets of the inline links `[text](target)` in `text`, with the
/// line each stands on; fenced code blocks are code, not links.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            // `[text](target "title")`: the target is the first word.
            let target = after[..end].split_whitespace().next().unwrap_or("");
            targets.push((number + 1, target.to_owned()));
            rest = &after[end..];
        }
    }
    targets
}

/// Whether `target` is a link to check: not a web or mail address, not a
/// link within the same page.
fn is_relative(target: &str) -> bool {
    !(target.is_empty()
        || target.starts_with('#')
        || target.contains("://")
        || target.starts_with("mailto:"))
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let documents = documents();
    assert!(
        documents.iter().any(|d| d.ends_with("README.md")),
        "README.md not found under {}",
        root().display()
    );
    let mut broken = Vec::new();
    for document in &documents {
        let text = std::fs::read_to_string(document)
            .unwrap_or_else(|e| panic!("read {}: {e}", document.display()));
        let base = document.parent().unwrap_or_else(|| Path::new("."));
        for (line, target) in link_targets(&text) {
            if !is_relative(&target) {
                continue;
            }
            let path = target.split('#').next().unwrap_or("");
            if !base.join(path).exists() {
                broken.push(format!("{}:{line}: {target}", document.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn link_targets_are_parsed_and_classified() {
    let text = "see [a](docs/a.md#x) and [b](https://x.y) [c](#top)\n\
                ```\n[code](not/a/link)\n```\n[d](b.md \"title\") [e](mailto:a@b)";
    let targets = link_targets(text);
    assert_eq!(
        targets,
        [
            (1, "docs/a.md#x".to_owned()),
            (1, "https://x.y".to_owned()),
            (1, "#top".to_owned()),
            (5, "b.md".to_owned()),
            (5, "mailto:a@b".to_owned()),
        ]
    );
    let relative: Vec<_> = targets.iter().filter(|(_, t)| is_relative(t)).collect();
    assert_eq!(relative.len(), 2);
}
