//! Finding the Teleport repository among `.repo` sections: URLs, the
//! configured source file, the choice rule, duplicate ids, and the channel
//! move of a section.

use std::path::Path;

use super::{read_ini, IniSection};
use crate::types::{PkgName, System};
use crate::RepoHints;
use crate::{Error, Result};

/// The host of a URL, lowercased, without user info and port.
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let hostport = rest.split(['/', '?']).next().unwrap_or("");
    let host = hostport.rsplit_once('@').map(|x| x.1).unwrap_or(hostport);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

/// The path of a `file:` URL (`file:///x`, `file:/x`), or `None`.
pub fn file_url_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("file:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    // `file://localhost/x`
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    rest.starts_with('/').then_some(rest)
}

/// The [`Source`] a `.repo` section defines: its id, baseurls, the local
/// `gpgkey=file://` keyrings (host paths) and a one-line description.
pub fn source_from(system: &System, sec: &IniSection) -> crate::Source {
    let keyrings = sec
        .gpgkeys()
        .iter()
        .filter_map(|u| file_url_path(u).map(|p| system.path(p)))
        .collect();
    let uris = sec.urls();
    crate::Source {
        file: sec.file.clone(),
        description: crate::redact::redact(&format!(
            "repo {} ({}) in {}",
            sec.id,
            uris.first().map(String::as_str).unwrap_or("no baseurl"),
            system.display_path(&sec.file)
        )),
        id: sec.id.clone(),
        keyrings,
        uris,
    }
}

/// Whether a section is named after the agent's repository: one of the
/// hint words in its id or file name.
pub fn named_like(s: &IniSection, hints: &RepoHints) -> bool {
    let has = |x: &str| {
        let x = x.to_ascii_lowercase();
        hints
            .words
            .iter()
            .any(|w| x.contains(&w.to_ascii_lowercase()))
    };
    has(&s.id)
        || s.file
            .file_name()
            .is_some_and(|n| has(&n.to_string_lossy()))
}

/// Whether a URL is on one of the release hosts (or a subdomain of one).
pub fn on_release_host(url: &str, hints: &RepoHints) -> bool {
    let h = url_host(url);
    hints.release_hosts.iter().any(|r| {
        let r = r.to_ascii_lowercase();
        h == r || h.ends_with(&format!(".{r}"))
    })
}

/// Whether a section points at a release host.
pub fn on_release_hosts(s: &IniSection, hints: &RepoHints) -> bool {
    s.urls().iter().any(|u| on_release_host(u, hints))
}

/// `[id]` in `file:line` form, for messages.
pub fn where_defined(system: &System, s: &IniSection) -> String {
    format!("[{}] ({}:{})", s.id, system.display_path(&s.file), s.line)
}

/// The repository defined in the configured `source-file` (a path as the
/// target system sees it): its only section, or the one on Teleport's
/// release host when it defines several.
pub fn configured_section(
    system: &System,
    file: &Path,
    pkg: &PkgName,
    hints: &RepoHints,
) -> Result<IniSection> {
    let f = system.path(file);
    let secs: Vec<IniSection> = read_ini(&f)?
        .into_iter()
        .filter(|s| s.id != "main")
        .collect();
    if secs.len() == 1 {
        return Ok(secs[0].clone());
    }
    let on_host: Vec<&IniSection> = secs.iter().filter(|s| on_release_hosts(s, hints)).collect();
    match (secs.len(), on_host.len()) {
        (0, _) => Err(Error::SourceNotFound {
            package: pkg.to_string(),
            detail: format!(
                "the configured source file {} defines no repository",
                system.display_path(&f)
            ),
        }),
        (_, 1) => Ok(on_host[0].clone()),
        _ => Err(Error::SourceNotFound {
            package: pkg.to_string(),
            detail: format!(
                "the configured source file {} defines several repositories ({}) and not exactly one on the release host ({}); keep the agent's repository alone in that file",
                system.display_path(&f),
                secs.iter().map(|s| format!("[{}]", s.id)).collect::<Vec<_>>().join(", "),
                hints.release_hosts.join(", ")
            ),
        }),
    }
}

/// Choose the agent's repository among `sections` from configuration
/// alone (what a cache holds never changes the answer):
///
/// 1. the one whose URL is on a release host;
/// 2. else the one named after it (a hint word in its id, else in its id
///    or file name);
///
/// at each step, several candidates narrow to the enabled ones, and several
/// enabled ones are an error naming them (`Err`). `Ok(None)`: no candidate.
pub fn choose_section<'a>(
    sections: &'a [IniSection],
    hints: &RepoHints,
) -> std::result::Result<Option<&'a IniSection>, Vec<&'a IniSection>> {
    let in_id = |s: &IniSection| {
        let id = s.id.to_ascii_lowercase();
        hints
            .words
            .iter()
            .any(|w| id.contains(&w.to_ascii_lowercase()))
    };
    let steps: [&dyn Fn(&IniSection) -> bool; 3] =
        [&|s| on_release_hosts(s, hints), &in_id, &|s| {
            named_like(s, hints)
        }];
    for step in steps {
        let pool: Vec<&IniSection> = sections.iter().filter(|s| step(s)).collect();
        // One id defined in several places is one candidate (the caller
        // refuses the duplicate definitions, naming them).
        if pool.len() > 1 && pool.iter().all(|s| s.id == pool[0].id) {
            return Ok(Some(pool[0]));
        }
        match pool.len() {
            0 => continue,
            1 => return Ok(Some(pool[0])),
            _ => {
                let enabled: Vec<&IniSection> =
                    pool.iter().copied().filter(|s| s.enabled()).collect();
                return match enabled.len() {
                    1 => Ok(Some(enabled[0])),
                    0 => Err(pool),
                    _ => Err(enabled),
                };
            }
        }
    }
    Ok(None)
}

/// The error for several candidates: names each and says how to choose.
pub fn ambiguous(system: &System, pkg: &PkgName, several: &[&IniSection]) -> Error {
    Error::SourceNotFound {
        package: pkg.to_string(),
        detail: format!(
            "several repositories could be the agent's repository: {}; name its file in the `source-file` setting",
            several
                .iter()
                .map(|s| where_defined(system, s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Refuse when `id` is defined more than once in `sections` (the package
/// manager's effective repository set): the package manager would use one
/// of the definitions, and nothing says it is the one audited.
pub fn refuse_duplicates(
    system: &System,
    sections: &[IniSection],
    id: &str,
    tool: &str,
) -> Result<()> {
    let defs: Vec<&IniSection> = sections.iter().filter(|s| s.id == id).collect();
    let mut files: Vec<String> = Vec::new();
    for d in &defs {
        let w = format!("{}:{}", system.display_path(&d.file), d.line);
        if !files.contains(&w) {
            files.push(w);
        }
    }
    if files.len() > 1 {
        return Err(Error::Untrusted {
            reason: format!(
                "repository [{id}] is defined more than once ({}): {tool} uses only one of them, which need not be the one audited and pinned; remove or rename the other definitions",
                files.join(" and ")
            ),
        });
    }
    Ok(())
}

/// Plan a channel move of the `.repo` section `sec` (see
/// [`crate::Backend::plan_channel_move`]). A repository reached through
/// `mirrorlist=` / `metalink=` only has no URL the updater can move: refresh
/// and install work as usual, and a move to another major is left to the
/// operator (said in the log); `None`.
pub fn plan_repo_channel_move(
    system: &System,
    sec: &IniSection,
    to_major: u64,
) -> Result<Option<crate::ChannelMove>> {
    if sec.list("baseurl").is_empty() {
        let how = if sec.value("metalink").is_some() {
            "metalink="
        } else {
            "mirrorlist="
        };
        tracing::warn!(
            file = %system.display_path(&sec.file),
            repo = %sec.id,
            "[{}] is reached through {how}: the updater cannot move its channel; when the target needs stable/v{to_major}, point the mirror list at that channel yourself",
            sec.id
        );
        return Ok(None);
    }
    crate::ChannelMove::plan(
        system,
        &sec.file,
        crate::channel::Format::Repo { id: &sec.id },
        to_major,
    )
}
