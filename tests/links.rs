//! Every relative link in the project's Markdown (README.md, CONTRIBUTING.md
//! and docs/*.md) resolves: the file or folder exists, and an `#anchor`
//! names a heading of the target Markdown file (GitHub's slug rules). No
//! broker needed; std only.
//!
//! What counts as a link: inline links and images, `[text](target)` and
//! `![alt](target)`, and reference definitions, `[label]: target`, outside
//! fenced code blocks and inline code spans. `http://`, `https://` and
//! `mailto:` targets are not checked (no network in tests).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One link found in a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    /// 1-based line number.
    line: usize,
    /// The target as written, e.g. `docs/design.md#known-limits`.
    target: String,
}

/// The workspace root: the tests crate lives at `<root>/tests`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The Markdown files whose links are checked.
fn checked_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    files.extend(docs);
    files
}

/// Lines outside fenced code blocks, with their 1-based numbers.
fn prose_lines(markdown: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = if trimmed.starts_with("```") {
            Some("```")
        } else if trimmed.starts_with("~~~") {
            Some("~~~")
        } else {
            None
        };
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => lines.push((index + 1, line)),
            _ => {}
        }
    }
    lines
}

/// The line with every inline code span blanked out (same length), so that
/// link syntax inside code is not read as a link.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '`' {
            let mut run = 0;
            while i + run < chars.len() && chars[i + run] == '`' {
                run += 1;
            }
            // Find a closing run of the same length.
            let mut j = i + run;
            let mut close = None;
            while j < chars.len() {
                if chars[j] == '`' {
                    let mut r = 0;
                    while j + r < chars.len() && chars[j + r] == '`' {
                        r += 1;
                    }
                    if r == run {
                        close = Some(j);
                        break;
                    }
                    j += r;
                } else {
                    j += 1;
                }
            }
            match close {
                Some(end) => {
                    out.extend(std::iter::repeat_n(' ', end + run - i));
                    i = end + run;
                }
                None => {
                    out.extend(&chars[i..i + run]);
                    i += run;
                }
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The target inside `(...)`: its first token, without `<>`.
fn clean_target(raw: &str) -> String {
    let raw = raw.trim();
    let token = if let Some(rest) = raw.strip_prefix('<') {
        rest.split('>').next().unwrap_or("")
    } else {
        raw.split_whitespace().next().unwrap_or("")
    };
    token.to_string()
}

/// Inline links and images on one line (code spans already blanked).
fn inline_links(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut targets = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '[' {
            i += 1;
            continue;
        }
        // Matching ']' with nesting.
        let mut depth = 0;
        let mut j = i;
        let mut close = None;
        while j < chars.len() {
            match chars[j] {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let Some(close) = close else {
            i += 1;
            continue;
        };
        if chars.get(close + 1) != Some(&'(') {
            i += 1;
            continue;
        }
        let mut depth = 0;
        let mut k = close + 1;
        let mut end = None;
        while k < chars.len() {
            match chars[k] {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(k);
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        let Some(end) = end else {
            i += 1;
            continue;
        };
        let raw: String = chars[close + 2..end].iter().collect();
        targets.push(clean_target(&raw));
        // Links nested in the text (an image inside a link) come next.
        i += 1;
    }
    targets
}

/// A reference definition, `[label]: target`, if the line is one.
fn reference_definition(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    let rest = trimmed.strip_prefix('[')?;
    let close = rest.find("]:")?;
    if rest[..close].is_empty() || rest[..close].starts_with('^') {
        return None;
    }
    let target = clean_target(&rest[close + 2..]);
    (!target.is_empty()).then_some(target)
}

/// Every link of a Markdown text, in order.
fn links(markdown: &str) -> Vec<Link> {
    let mut found = Vec::new();
    for (line, text) in prose_lines(markdown) {
        let text = without_code_spans(text);
        if let Some(target) = reference_definition(&text) {
            found.push(Link { line, target });
            continue;
        }
        for target in inline_links(&text) {
            found.push(Link { line, target });
        }
    }
    found
}

/// GitHub's anchor for a heading's text: lowercase, inline code marks and
/// punctuation dropped (except `-` and `_`), spaces to `-`.
fn slug(heading: &str) -> String {
    // A link in a heading contributes its text only.
    let mut text = String::new();
    let chars: Vec<char> = heading.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ']' && chars.get(i + 1) == Some(&'(') {
            // Skip "](target)".
            let mut k = i + 1;
            while k < chars.len() && chars[k] != ')' {
                k += 1;
            }
            i = k + 1;
            continue;
        }
        text.push(chars[i]);
        i += 1;
    }
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a Markdown text's ATX headings make, with GitHub's `-1`,
/// `-2`... suffixes for repeated headings.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    for (_, line) in prose_lines(markdown) {
        let trimmed = line.trim_start();
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if hashes == 0 || hashes > 6 {
            continue;
        }
        let rest = &trimmed[hashes..];
        if !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        let text = rest.trim().trim_end_matches('#').trim();
        let base = slug(text);
        let count = seen.entry(base.clone()).or_insert(0);
        let anchor = if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        anchors.insert(anchor);
    }
    anchors
}

/// Whether a target is left alone (external).
fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// What is wrong with one link of `file`, if anything.
fn check(file: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("empty target".into());
    }
    if is_external(target) {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else {
        dir.join(path)
    };
    if !resolved.exists() {
        return Some(format!("{} does not exist", resolved.display()));
    }
    let anchor = anchor?;
    if resolved.extension().is_none_or(|x| x != "md") {
        return None; // an anchor into source (`#L10`) is GitHub's view, not checked
    }
    let text = match fs::read_to_string(&resolved) {
        Ok(text) => text,
        Err(e) => return Some(format!("cannot read {}: {e}", resolved.display())),
    };
    (!anchors(&text).contains(anchor))
        .then(|| format!("no heading makes #{anchor} in {}", resolved.display()))
}

#[test]
fn every_relative_link_in_the_readme_contributing_and_docs_resolves() {
    let root = workspace_root();
    let files = checked_files(&root);
    assert!(
        files.iter().any(|f| f.ends_with("README.md") && f.exists()),
        "README.md not found under {}",
        root.display()
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                broken.push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        for link in links(&text) {
            checked += 1;
            if let Some(problem) = check(file, &link.target) {
                let shown = file.strip_prefix(&root).unwrap_or(file);
                broken.push(format!(
                    "{}:{}: ({}) {problem}",
                    shown.display(),
                    link.line,
                    link.target
                ));
            }
        }
    }
    assert!(checked > 0, "no links found in {files:?}");
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn slugs_follow_github_rules() {
    assert_eq!(slug("Run it, test it"), "run-it-test-it");
    assert_eq!(
        slug("`producer [OPTIONS] [NAME]...`"),
        "producer-options-name"
    );
    assert_eq!(
        slug("Tested: `scripts/compose-test.sh`"),
        "tested-scriptscompose-testsh"
    );
    assert_eq!(
        slug("Bulk throughput: batching (contract v1.1)"),
        "bulk-throughput-batching-contract-v11"
    );
    assert_eq!(slug("Allowed `reply_to`"), "allowed-reply_to");
    assert_eq!(slug("See [the docs](docs/a.md) now"), "see-the-docs-now");
    assert_eq!(slug("Ünïcode stays"), "ünïcode-stays");
}

#[test]
fn repeated_headings_get_numbered_anchors_and_code_blocks_are_not_headings() {
    let md = "# Title\n## Cluster\n```text\n# HELP not a heading\n```\n### Cluster\n#hashtag\n";
    let found = anchors(md);
    assert!(found.contains("title"));
    assert!(found.contains("cluster"));
    assert!(found.contains("cluster-1"));
    assert!(!found.contains("help-not-a-heading"));
    assert!(!found.contains("hashtag"));
}

#[test]
fn links_are_found_inline_as_images_and_as_references_but_not_in_code() {
    let md = "See [a](docs/a.md#x \"title\") and ![img](pic.svg).\n\
              `[not](a-link.md)` but [`code` text](b.md)\n\
              ```\n[inside](fence.md)\n```\n\
              [ref]: c.md\n\
              [nested [brackets]](d.md) and [no link] here, (parens)\n\
              [![badge](e.svg)](f.md)\n";
    let targets: Vec<(usize, String)> = links(md).into_iter().map(|l| (l.line, l.target)).collect();
    assert_eq!(
        targets,
        vec![
            (1, "docs/a.md#x".to_string()),
            (1, "pic.svg".to_string()),
            (2, "b.md".to_string()),
            (6, "c.md".to_string()),
            (7, "d.md".to_string()),
            (8, "f.md".to_string()),
            (8, "e.svg".to_string()),
        ]
    );
}

#[test]
fn external_and_missing_targets_are_told_apart() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("links.rs");
    assert_eq!(check(&here, "https://example.com/x"), None);
    assert_eq!(check(&here, "mailto:someone@example.com"), None);
    assert_eq!(check(&here, "links.rs"), None);
    assert!(check(&here, "no-such-file.md").is_some());
    assert!(check(&here, "").is_some());
}

#[test]
fn anchors_are_checked_against_the_target_files_headings() {
    let dir = std::env::temp_dir().join(format!("links-test-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("a.md");
    fs::write(&file, "# A file\n## Known limits\n").expect("write a.md");
    assert_eq!(check(&file, "#known-limits"), None);
    assert_eq!(check(&file, "a.md#a-file"), None);
    let missing = check(&file, "#unknown-limits");
    fs::remove_dir_all(&dir).expect("remove temp dir");
    assert!(
        missing.is_some_and(|m| m.contains("#unknown-limits")),
        "a missing anchor is reported"
    );
}
