//! The documentation a person navigates: the README stays short and keeps
//! its two quick-start commands, and every relative link in the README and
//! under docs/ points at a file that exists. (The generated reference pages
//! are compared with their tables by the unit test
//! `reference::tests::docs_in_the_repository_are_generated_from_the_tables`.)

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                files.push(p);
            }
        }
    }
    files
}

/// The targets of `[text](target)` links in `text`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn readme_is_short_and_has_the_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 150,
        "README.md has {lines} lines; move detail into docs/"
    );
    for needle in [
        "scripts/demo     #",
        "scripts/test     #",
        "SKIP_CONTAINER_TESTS=1",
    ] {
        assert!(readme.contains(needle), "README.md lacks {needle:?}");
    }
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "scripts/test"),
        ".ci/run no longer calls scripts/test, as the README says"
    );
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with('#') || link.starts_with("mailto:") {
                continue;
            }
            let path = link.split('#').next().unwrap();
            let target = file.parent().unwrap().join(path);
            if !target.exists() {
                broken.push(format!("{}: {link}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_finder_finds_links() {
    assert_eq!(links("a [b](c.md) d [e](f/g.md#h)"), ["c.md", "f/g.md#h"]);
}

/// `teleport-upgrade man` is one page that reads at 80 columns: rendered
/// by man(1) at MANWIDTH=80 no line is wider, the settings and exit codes
/// are there, and no other (unshipped) page is referred to.
#[test]
fn the_man_page_reads_at_80_columns() {
    let bin = env!("CARGO_BIN_EXE_teleport-upgrade");
    let out = std::process::Command::new(bin).arg("man").output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("teleport-upgrade.8");
    std::fs::write(&page, &out.stdout).unwrap();
    let shown = std::process::Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .output()
        .expect("man (apt-get install man-db)");
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
    }
    for needle in [
        "CONFIGURATION",
        "EXIT STATUS",
        "window-margin",
        "fleet-lock-group",
        "What to do:",
    ] {
        assert!(text.contains(needle), "the man page lacks {needle:?}");
    }
    assert!(
        !text.contains("teleport-upgrade-"),
        "the man page refers to a subcommand page that is not shipped"
    );
}
