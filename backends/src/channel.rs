//! Teleport's repository channels, and moving a repository definition from
//! one major-version channel to another.
//!
//! Teleport publishes one channel per major version, named `stable/v<N>`:
//!
//! * apt: the component, `deb [signed-by=...] https://apt.releases.teleport.dev/debian bookworm stable/v15`
//!   (or deb822 `Components: stable/v15`);
//! * dnf/yum: the end of the baseurl,
//!   `baseurl=https://yum.releases.teleport.dev/rhel/9/Teleport/x86_64/stable/v15`;
//! * zypper: likewise,
//!   `baseurl=https://zypper.releases.teleport.dev/sles/15/Teleport/x86_64/stable/v15`.
//!
//! `stable/cloud`, `stable/rolling` and anything else are never changed.
//!
//! # Which entry is Teleport's
//!
//! A file may define other repositories besides Teleport's. The backend's
//! [`Source`](crate::Source) already names the entry, and [`Format`]
//! carries that name:
//!
//! * apt: the `deb`/`deb-src` lines (one-line style) or the enabled
//!   stanzas (deb822) whose URI is one of `Source::uris` (a trailing `/`
//!   ignored). Those are the entries `locate_source` chose: the ones apt
//!   says offer the package, else the ones that point at Teleport's release
//!   host or live in a file named after Teleport. Commented-out lines and
//!   disabled stanzas are not touched.
//! * rpm (dnf, yum, zypper): the section `[Source::id]`, and in it the
//!   `baseurl` values only (every URL of a multi-line or comma-separated
//!   baseurl).
//!
//! # What the channel of an entry is
//!
//! * apt: the entry's component when it has one, else its only component
//!   starting with `stable/`.
//! * rpm: in each baseurl URL, the `stable` path segment and the segment
//!   after it (the last such pair).
//!
//! Every Teleport entry (every URL) must name the same channel; if they
//! disagree, or one names none, there is no single channel: nothing is
//! found and nothing is rewritten.
//!
//! The rewrite changes only the bytes of the channel token (`v15` becomes
//! `v16`) in those entries; every other byte of the file (comments,
//! options, spacing, line endings, other entries) is kept.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::rpmdb;
use crate::types::System;
use crate::{Error, Result};

/// A Teleport repository channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `stable/v<N>`: one major version.
    Stable(u64),
    /// `stable/cloud`.
    Cloud,
    /// `stable/rolling`.
    Rolling,
    /// Anything else, as written (never changed).
    Other(String),
}

impl Channel {
    /// Parse a channel token such as `stable/v15`. `N` must be written
    /// without leading zeros, so that the token round-trips.
    pub fn parse(token: &str) -> Channel {
        match token.strip_prefix("stable/") {
            Some("cloud") => Channel::Cloud,
            Some("rolling") => Channel::Rolling,
            Some(v) => match v.strip_prefix('v') {
                Some(n)
                    if !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && (n == "0" || !n.starts_with('0')) =>
                {
                    n.parse()
                        .map(Channel::Stable)
                        .unwrap_or_else(|_| Channel::Other(token.to_string()))
                }
                _ => Channel::Other(token.to_string()),
            },
            None => Channel::Other(token.to_string()),
        }
    }

    /// The major version of a `stable/v<N>` channel.
    pub fn major(&self) -> Option<u64> {
        match self {
            Channel::Stable(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Stable(n) => write!(f, "stable/v{n}"),
            Channel::Cloud => f.write_str("stable/cloud"),
            Channel::Rolling => f.write_str("stable/rolling"),
            Channel::Other(s) => f.write_str(s),
        }
    }
}

/// The syntax of a repository definition file, and which entries in it are
/// Teleport's (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format<'a> {
    /// An apt one-line-style `.list` file; Teleport's entries are those
    /// whose URI is one of `uris`.
    AptList { uris: &'a [String] },
    /// An apt deb822 `.sources` file; Teleport's stanzas are those whose
    /// `URIs` include one of `uris`.
    AptDeb822 { uris: &'a [String] },
    /// A dnf/yum or zypper `.repo` file; Teleport's entry is section `[id]`.
    Repo { id: &'a str },
}

impl<'a> Format<'a> {
    /// The apt format of `file` (by its extension, as apt decides).
    pub fn apt(file: &Path, uris: &'a [String]) -> Format<'a> {
        if file.extension().is_some_and(|e| e == "sources") {
            Format::AptDeb822 { uris }
        } else {
            Format::AptList { uris }
        }
    }
}

/// A channel token found in the text: its byte range and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    /// Byte range of the part to replace when moving (`stable/v15` for apt,
    /// the `v15` segment for a URL).
    start: usize,
    end: usize,
    /// The whole channel token (`stable/v15`).
    channel: String,
}

/// What the Teleport entries of a text say: one token per entry (or URL);
/// `None` for an entry without a recognisable channel.
fn scan(text: &str, format: Format<'_>) -> Vec<Option<Token>> {
    match format {
        Format::AptList { uris } => scan_list(text, uris),
        Format::AptDeb822 { uris } => scan_deb822(text, uris),
        Format::Repo { id } => scan_repo(text, id),
    }
}

/// The single channel all Teleport entries agree on.
fn agreed(tokens: &[Option<Token>]) -> Option<Channel> {
    let first = tokens.first()?.as_ref()?;
    tokens
        .iter()
        .all(|t| t.as_ref().is_some_and(|t| t.channel == first.channel))
        .then(|| Channel::parse(&first.channel))
}

/// The channel of the Teleport entries of `text`. `None` when no entry is
/// Teleport's, or when they do not name one single channel.
pub fn find_channel(text: &str, format: Format<'_>) -> Option<Channel> {
    agreed(&scan(text, format))
}

/// `text` with the Teleport entries moved to `stable/v<to_major>`.
///
/// `Ok(None)`: nothing to change, because the channel is already
/// `stable/v<to_major>`, or is not a `stable/v<N>` one (cloud, rolling,
/// other), or the entries do not agree on one channel. `Err`: the text
/// defines no Teleport entry at all, or `to_major` is 0.
pub fn rewrite_channel(text: &str, format: Format<'_>, to_major: u64) -> Result<Option<String>> {
    if to_major == 0 {
        return Err(Error::Parse {
            what: "a target channel".into(),
            detail: "there is no major version 0".into(),
        });
    }
    let tokens = scan(text, format);
    if tokens.is_empty() {
        return Err(Error::Parse {
            what: "a repository definition".into(),
            detail: match format {
                Format::AptList { uris } | Format::AptDeb822 { uris } => {
                    format!("no entry for {} in the file", uris.join(", "))
                }
                Format::Repo { id } => format!("no section [{id}] with a baseurl in the file"),
            },
        });
    }
    match agreed(&tokens) {
        Some(Channel::Stable(n)) if n != to_major => {}
        _ => return Ok(None),
    }
    let apt = !matches!(format, Format::Repo { .. });
    let replacement = if apt {
        format!("stable/v{to_major}")
    } else {
        format!("v{to_major}")
    };
    let mut spans: Vec<(usize, usize)> =
        tokens.iter().flatten().map(|t| (t.start, t.end)).collect();
    spans.sort();
    spans.dedup();
    let mut out = String::with_capacity(text.len() + 8);
    let mut at = 0;
    for (s, e) in spans {
        out.push_str(&text[at..s]);
        out.push_str(&replacement);
        at = e;
    }
    out.push_str(&text[at..]);
    Ok(Some(out))
}

/// Byte offset of every line of `text` (lines as `split_inclusive('\n')`).
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    text.split_inclusive('\n').map(move |l| {
        let start = at;
        at += l.len();
        (start, l)
    })
}

/// The line without its line ending.
fn strip_eol(l: &str) -> &str {
    l.strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(l)
}

/// Whitespace-separated words of `s` with their byte ranges.
fn words(s: &str) -> Vec<(usize, usize)> {
    spans(s, char::is_whitespace)
}

/// The non-empty runs of `s` between separators, with their byte ranges.
fn spans(s: &str, is_sep: impl Fn(char) -> bool) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if is_sep(c) {
            if let Some(st) = start.take() {
                v.push((st, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        v.push((st, s.len()));
    }
    v
}

fn same_uri(a: &str, uris: &[String]) -> bool {
    let a = a.trim_end_matches('/');
    uris.iter().any(|u| u.trim_end_matches('/') == a)
}

/// The channel component among `components` (byte ranges in `base`):
/// the only one, else the only one starting with `stable/`.
fn channel_component(base: usize, s: &str, components: &[(usize, usize)]) -> Option<Token> {
    let pick = if components.len() == 1 {
        Some(components[0])
    } else {
        let stable: Vec<&(usize, usize)> = components
            .iter()
            .filter(|(a, b)| s[*a..*b].starts_with("stable/"))
            .collect();
        (stable.len() == 1).then(|| *stable[0])
    };
    pick.map(|(a, b)| Token {
        start: base + a,
        end: base + b,
        channel: s[a..b].to_string(),
    })
}

/// One-line style: `deb|deb-src [opts] URI SUITE COMPONENT...  # comment`.
/// The same reading as [`crate::sources::parse_list`].
fn scan_list(text: &str, uris: &[String]) -> Vec<Option<Token>> {
    let mut out = Vec::new();
    for (off, raw) in lines_with_offsets(text) {
        let line = strip_eol(raw);
        let body = line.split('#').next().unwrap_or("");
        let ws = words(body);
        let Some(&(ts, te)) = ws.first() else {
            continue;
        };
        if !matches!(&body[ts..te], "deb" | "deb-src") {
            continue;
        }
        // Options: `[` right after the type, up to the first `]`.
        let after_type = te + (body[te..].len() - body[te..].trim_start().len());
        let rest_start = if body[after_type..].starts_with('[') {
            match body[after_type..].find(']') {
                Some(i) => after_type + i + 1,
                None => continue,
            }
        } else {
            after_type
        };
        let rest: Vec<(usize, usize)> = words(&body[rest_start..])
            .into_iter()
            .map(|(a, b)| (rest_start + a, rest_start + b))
            .collect();
        if rest.len() < 2 || !same_uri(&body[rest[0].0..rest[0].1], uris) {
            continue;
        }
        let suite = &body[rest[1].0..rest[1].1];
        if suite.ends_with('/') {
            // A flat repository has no components, hence no channel.
            out.push(None);
            continue;
        }
        out.push(channel_component(off, body, &rest[2..]));
    }
    out
}

/// deb822: stanzas separated by blank lines; `Components:` may continue on
/// indented lines.
fn scan_deb822(text: &str, uris: &[String]) -> Vec<Option<Token>> {
    struct Field {
        key: String,
        /// (offset of the line in text, the line without its end)
        lines: Vec<(usize, String)>,
        /// Where the value starts in the first line.
        value_at: usize,
    }
    let mut out = Vec::new();
    let mut stanza: Vec<Field> = Vec::new();
    let flush = |stanza: &mut Vec<Field>, out: &mut Vec<Option<Token>>| {
        let value = |k: &str| -> Option<String> {
            stanza.iter().find(|f| f.key == k).map(|f| {
                f.lines
                    .iter()
                    .enumerate()
                    .map(|(i, (_, l))| if i == 0 { &l[f.value_at..] } else { &l[..] })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        let enabled = value("enabled")
            .map(|v| !v.trim().eq_ignore_ascii_case("no"))
            .unwrap_or(true);
        let types = value("types").unwrap_or_default();
        let ours = enabled
            && types
                .split_whitespace()
                .any(|t| t == "deb" || t == "deb-src")
            && value("uris")
                .unwrap_or_default()
                .split_whitespace()
                .any(|u| same_uri(u, uris));
        if ours {
            let token = stanza.iter().find(|f| f.key == "components").and_then(|f| {
                // Components of every line of the field, as absolute ranges.
                let mut comps: Vec<(usize, usize)> = Vec::new();
                let mut joined = String::new();
                let mut map: Vec<(usize, usize)> = Vec::new();
                for (i, (off, l)) in f.lines.iter().enumerate() {
                    let from = if i == 0 { f.value_at } else { 0 };
                    for (a, b) in words(&l[from..]) {
                        let w = &l[from + a..from + b];
                        if w == "." && i > 0 {
                            continue;
                        }
                        comps.push((joined.len(), joined.len() + w.len()));
                        map.push((off + from + a, off + from + b));
                        joined.push_str(w);
                        joined.push(' ');
                    }
                }
                let t = channel_component(0, &joined, &comps)?;
                let k = comps.iter().position(|c| c.0 == t.start)?;
                Some(Token {
                    start: map[k].0,
                    end: map[k].1,
                    channel: t.channel,
                })
            });
            out.push(token);
        }
        stanza.clear();
    };
    for (off, raw) in lines_with_offsets(text) {
        let line = strip_eol(raw);
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut stanza, &mut out);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(f) = stanza.last_mut() {
                f.lines.push((off, line.to_string()));
            }
            continue;
        }
        if let Some((k, _)) = line.split_once(':') {
            stanza.push(Field {
                key: k.trim().to_ascii_lowercase(),
                lines: vec![(off, line.to_string())],
                value_at: k.len() + 1,
            });
        }
    }
    flush(&mut stanza, &mut out);
    out
}

/// The channel segment of a URL: the segment after the last `stable`
/// segment of its path. Returns the range of that segment within `url`.
fn url_channel(url: &str) -> Option<(usize, usize, String)> {
    let path_start = match url.find("://") {
        Some(i) => {
            let after = i + 3;
            after + url[after..].find('/')?
        }
        None => url.find('/')?,
    };
    let end = url[path_start..]
        .find(['?', '#'])
        .map(|i| path_start + i)
        .unwrap_or(url.len());
    let path = &url[path_start..end];
    // Segments with their offsets.
    let mut segs: Vec<(usize, &str)> = Vec::new();
    let mut at = 0;
    for s in path.split('/') {
        segs.push((path_start + at, s));
        at += s.len() + 1;
    }
    let i = segs
        .windows(2)
        .rposition(|w| w[0].1 == "stable" && !w[1].1.is_empty())?;
    let (o, s) = segs[i + 1];
    Some((o, o + s.len(), format!("stable/{s}")))
}

/// `.repo` INI: the `baseurl` values of section `[id]`, read as
/// [`rpmdb::parse_ini`] reads them (continuation lines included).
fn scan_repo(text: &str, id: &str) -> Vec<Option<Token>> {
    let secs = rpmdb::parse_ini(Path::new(""), text);
    let offsets: Vec<(usize, &str)> = lines_with_offsets(text).collect();
    let mut out = Vec::new();
    for sec in secs.iter().filter(|s| s.id == id) {
        for e in sec.entries.iter().filter(|e| e.key == "baseurl") {
            for n in e.line..=e.end_line {
                let (off, raw) = offsets[n - 1];
                let line = strip_eol(raw);
                let from = if n == e.line {
                    match line.find('=') {
                        Some(i) => i + 1,
                        None => continue,
                    }
                } else {
                    0
                };
                let value = &line[from..];
                for (start, end) in spans(value, |c| c.is_whitespace() || c == ',') {
                    out.push(
                        url_channel(&value[start..end]).map(|(a, b, channel)| Token {
                            start: off + from + start + a,
                            end: off + from + start + b,
                            channel,
                        }),
                    );
                }
            }
        }
    }
    out
}

/// A change of the channel of one repository definition file: planned by
/// a backend (`plan_channel_move`), then applied and, if what follows
/// fails, restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMove {
    /// The file as the target system sees it
    /// (`/etc/apt/sources.list.d/teleport.list`).
    pub file: PathBuf,
    /// The file on this machine (inside the alternate root, if any).
    pub real_path: PathBuf,
    /// Where [`ChannelMove::apply`] keeps the previous bytes: `<file>.teleport-upgrade.bak`
    /// beside it (a name apt, dnf and zypper all ignore). Host path.
    pub backup: PathBuf,
    pub from: Channel,
    pub to: Channel,
    pub old_text: String,
    pub new_text: String,
}

/// The suffix of the backup a [`ChannelMove`] writes beside the file.
pub const BACKUP_SUFFIX: &str = ".teleport-upgrade.bak";

fn backup_path(real_path: &Path) -> PathBuf {
    let mut backup = real_path.as_os_str().to_owned();
    backup.push(BACKUP_SUFFIX);
    PathBuf::from(backup)
}

/// What an earlier run left when it stopped between
/// [`ChannelMove::apply`] and restoring the file or removing the backup (a
/// crash, a kill, a power cut): the backup is still beside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// The file is exactly the backup moved to another channel (or already
    /// the backup again): [`ChannelMove::restore`] then
    /// [`ChannelMove::remove_backup`] undo that move.
    Undo(ChannelMove),
    /// The file is not what that move wrote (edited since): neither file is
    /// touched; the operator decides.
    Edited { file: PathBuf, backup: PathBuf },
}

impl ChannelMove {
    /// Plan moving the Teleport entries of `real_path` (a host path of
    /// `system`) to `stable/v<to_major>`. Nothing is written. `None` when
    /// there is nothing to do (see [`rewrite_channel`]).
    pub fn plan(
        system: &System,
        real_path: &Path,
        format: Format<'_>,
        to_major: u64,
    ) -> Result<Option<ChannelMove>> {
        let old_text = read_text(real_path)?;
        let Some(new_text) = rewrite_channel(&old_text, format, to_major)? else {
            return Ok(None);
        };
        let from = find_channel(&old_text, format).ok_or_else(|| Error::Parse {
            what: "a repository definition".into(),
            detail: "the channel vanished while rewriting".into(),
        })?;
        Ok(Some(ChannelMove {
            file: PathBuf::from(system.display_path(real_path)),
            real_path: real_path.to_path_buf(),
            backup: backup_path(real_path),
            from,
            to: Channel::Stable(to_major),
            old_text,
            new_text,
        }))
    }

    /// The move an earlier run left unfinished in `real_path`, if its
    /// backup is there.
    pub fn interrupted(
        system: &System,
        real_path: &Path,
        format: Format<'_>,
    ) -> Result<Option<Interrupted>> {
        let backup = backup_path(real_path);
        let old_text = match std::fs::read(&backup) {
            Ok(b) => String::from_utf8(b).map_err(|_| Error::Parse {
                what: backup.display().to_string(),
                detail: "not UTF-8 text".into(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", backup.display()), e)),
        };
        let new_text = read_text(real_path)?;
        let file = PathBuf::from(system.display_path(real_path));
        let (from, to) = (
            find_channel(&old_text, format),
            find_channel(&new_text, format),
        );
        let undo = match (from, to) {
            (Some(from), Some(to)) if new_text == old_text => Some((from, to)),
            (Some(from), Some(Channel::Stable(m)))
                if rewrite_channel(&old_text, format, m)?.as_deref() == Some(&new_text) =>
            {
                Some((from, Channel::Stable(m)))
            }
            _ => None,
        };
        Ok(Some(match undo {
            Some((from, to)) => Interrupted::Undo(ChannelMove {
                file,
                real_path: real_path.to_path_buf(),
                backup,
                from,
                to,
                old_text,
                new_text,
            }),
            None => Interrupted::Edited { file, backup },
        }))
    }

    /// Write the backup (the previous bytes), then the new text, each
    /// atomically and with the file's mode and owner. Fails, writing
    /// nothing, when the file no longer holds the text planned from.
    pub fn apply(&self) -> Result<()> {
        let now = read_text(&self.real_path)?;
        if now == self.new_text {
            return Ok(());
        }
        if now != self.old_text {
            return Err(Error::Parse {
                what: self.file.display().to_string(),
                detail: "the file changed since the channel move was planned; nothing written"
                    .into(),
            });
        }
        let meta = std::fs::metadata(&self.real_path)
            .map_err(|e| Error::io(format!("reading {}", self.real_path.display()), e))?;
        crate::write_atomic_like(&self.backup, self.old_text.as_bytes(), &meta)
            .map_err(|e| Error::io(format!("writing {}", self.backup.display()), e))?;
        crate::write_atomic_in_place(
            &self.real_path,
            self.root().as_deref(),
            self.new_text.as_bytes(),
        )
        .map_err(|e| Error::io(format!("writing {}", self.real_path.display()), e))?;
        tracing::info!(file = %self.file.display(), backup = %self.backup.display(), "{}", self.describe());
        Ok(())
    }

    /// Put the previous bytes back, atomically (mode and owner kept).
    /// Succeeds when they are already there. Refuses, writing nothing, when
    /// the file holds neither the old nor the new text (someone else
    /// edited it since; the backup is still there).
    pub fn restore(&self) -> Result<()> {
        let now = read_text(&self.real_path)?;
        if now == self.old_text {
            return Ok(());
        }
        if now != self.new_text {
            return Err(Error::Parse {
                what: self.file.display().to_string(),
                detail: format!(
                    "the file changed since the channel move; not restored (the previous text is in {})",
                    self.backup.display()
                ),
            });
        }
        crate::write_atomic_in_place(
            &self.real_path,
            self.root().as_deref(),
            self.old_text.as_bytes(),
        )
        .map_err(|e| Error::io(format!("writing {}", self.real_path.display()), e))?;
        tracing::info!(file = %self.file.display(), "restored the channel {}", self.from);
        Ok(())
    }

    /// Remove the backup (after a move that is to stay). Succeeds when it
    /// is already gone.
    pub fn remove_backup(&self) -> Result<()> {
        match std::fs::remove_file(&self.backup) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", self.backup.display()), e)),
        }
    }

    /// One line for a dry run: `/etc/apt/sources.list.d/teleport.list:
    /// stable/v15 -> stable/v16`.
    pub fn describe(&self) -> String {
        format!("{}: {} -> {}", self.file.display(), self.from, self.to)
    }
}

impl ChannelMove {
    /// The alternate root the file lives in (`real_path` is `file` inside
    /// it), `None` on the host.
    fn root(&self) -> Option<PathBuf> {
        let rel = self.file.strip_prefix("/").ok()?;
        let mut root = self.real_path.clone();
        for _ in rel.components() {
            if !root.pop() {
                return None;
            }
        }
        (root != Path::new("/") && self.real_path == root.join(rel)).then_some(root)
    }
}

impl fmt::Display for ChannelMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn read_text(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
    String::from_utf8(bytes).map_err(|_| Error::Parse {
        what: p.display().to_string(),
        detail: "not UTF-8 text".into(),
    })
}

/// The channel of the Teleport entries of `real_path`.
pub fn channel_of(real_path: &Path, format: Format<'_>) -> Result<Option<Channel>> {
    Ok(find_channel(&read_text(real_path)?, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| s.to_string()).collect()
    }

    const TP: &str = "https://apt.releases.teleport.dev/debian";

    #[test]
    fn channels_parse_and_print() {
        assert_eq!(Channel::parse("stable/v15"), Channel::Stable(15));
        assert_eq!(Channel::parse("stable/cloud"), Channel::Cloud);
        assert_eq!(Channel::parse("stable/rolling"), Channel::Rolling);
        for other in [
            "stable/v015",
            "stable/v",
            "stable/v15.1",
            "stable/v-1",
            "main",
            "stable/V15",
            "stable/v99999999999999999999999",
        ] {
            assert_eq!(
                Channel::parse(other),
                Channel::Other(other.into()),
                "{other}"
            );
            assert_eq!(Channel::parse(other).to_string(), other);
        }
        for t in ["stable/v15", "stable/cloud", "stable/rolling", "stable/v0"] {
            assert_eq!(Channel::parse(t).to_string(), t);
        }
        assert_eq!(Channel::Stable(16).major(), Some(16));
        assert_eq!(Channel::Cloud.major(), None);
    }

    #[test]
    fn list_lines_change_only_the_component_of_teleport_entries() {
        let u = uris(&[TP]);
        let text = "# Teleport (stable/v15)\n\
            deb [signed-by=/usr/share/keyrings/teleport-archive-keyring.asc arch=amd64]  https://apt.releases.teleport.dev/debian/\tbookworm   stable/v15 # pinned to stable/v15\r\n\
            deb-src [signed-by=/k.asc] https://apt.releases.teleport.dev/debian bookworm stable/v15\n\
            deb http://deb.debian.org/debian bookworm main stable/v15\n\
            #deb https://apt.releases.teleport.dev/debian bookworm stable/v15\n\
            deb https://apt.releases.teleport.dev/debian bookworm stable/v15";
        let f = Format::AptList { uris: &u };
        assert_eq!(find_channel(text, f), Some(Channel::Stable(15)));
        let new = rewrite_channel(text, f, 16).unwrap().unwrap();
        let want = text
            .replacen("bookworm   stable/v15", "bookworm   stable/v16", 1)
            .replacen(
                "debian bookworm stable/v15\ndeb http",
                "debian bookworm stable/v16\ndeb http",
                1,
            )
            .replace(
                "\ndeb https://apt.releases.teleport.dev/debian bookworm stable/v15",
                "\ndeb https://apt.releases.teleport.dev/debian bookworm stable/v16",
            );
        assert_eq!(new, want);
        // Comment, other repository, commented-out line: untouched.
        assert!(new.contains("# pinned to stable/v15\r\n"));
        assert!(new.contains("deb http://deb.debian.org/debian bookworm main stable/v15\n"));
        assert!(new.contains("#deb https://apt.releases.teleport.dev/debian bookworm stable/v15\n"));
        assert_eq!(find_channel(&new, f), Some(Channel::Stable(16)));
        // Back again: byte for byte.
        assert_eq!(rewrite_channel(&new, f, 15).unwrap().unwrap(), text);
        // Already there.
        assert_eq!(rewrite_channel(text, f, 15).unwrap(), None);
    }

    #[test]
    fn cloud_rolling_and_others_are_left_alone() {
        let u = uris(&[TP]);
        let f = Format::AptList { uris: &u };
        for (comp, ch) in [
            ("stable/cloud", Channel::Cloud),
            ("stable/rolling", Channel::Rolling),
            ("main", Channel::Other("main".into())),
        ] {
            let text = format!("deb [signed-by=/k] {TP} bookworm {comp}\n");
            assert_eq!(find_channel(&text, f), Some(ch));
            assert_eq!(rewrite_channel(&text, f, 16).unwrap(), None, "{comp}");
        }
    }

    #[test]
    fn disagreeing_entries_are_left_alone() {
        let u = uris(&[TP]);
        let f = Format::AptList { uris: &u };
        for text in [
            format!("deb {TP} bookworm stable/v15\ndeb {TP} bookworm stable/v16\n"),
            format!("deb {TP} bookworm stable/v15 stable/v16\n"),
            format!("deb {TP} bookworm stable/v15\ndeb {TP} bookworm stable/cloud\n"),
            format!("deb {TP} ./\n"),
        ] {
            assert_eq!(find_channel(&text, f), None, "{text}");
            assert_eq!(rewrite_channel(&text, f, 17).unwrap(), None, "{text}");
        }
        // Several components, one of them the channel.
        let text = format!("deb {TP} bookworm extras stable/v15\n");
        assert_eq!(find_channel(&text, f), Some(Channel::Stable(15)));
        assert_eq!(
            rewrite_channel(&text, f, 16).unwrap().unwrap(),
            format!("deb {TP} bookworm extras stable/v16\n")
        );
    }

    #[test]
    fn a_file_without_the_entry_is_an_error() {
        let u = uris(&["http://elsewhere/"]);
        let text = format!("deb {TP} bookworm stable/v15\n");
        let f = Format::AptList { uris: &u };
        assert_eq!(find_channel(&text, f), None);
        assert!(rewrite_channel(&text, f, 16).is_err());
        let u = uris(&[TP]);
        assert!(rewrite_channel(&text, Format::AptList { uris: &u }, 0).is_err());
    }

    #[test]
    fn deb822_components() {
        let u = uris(&[TP]);
        let text = "# Teleport\n\
            Types: deb\n\
            URIs: https://apt.releases.teleport.dev/debian\n\
            Suites: bookworm\n\
            Components:   stable/v15\n\
            Signed-By: /usr/share/keyrings/teleport-archive-keyring.asc\n\
            \n\
            Types: deb\n\
            URIs: http://deb.debian.org/debian\n\
            Suites: bookworm\n\
            Components: stable/v15\n\
            \n\
            Types: deb\n\
            URIs: https://apt.releases.teleport.dev/debian\n\
            Suites: bookworm\n\
            Components: stable/v15\n\
            Enabled: no\n";
        let f = Format::AptDeb822 { uris: &u };
        assert_eq!(find_channel(text, f), Some(Channel::Stable(15)));
        let new = rewrite_channel(text, f, 16).unwrap().unwrap();
        assert_eq!(
            new,
            text.replacen("Components:   stable/v15", "Components:   stable/v16", 1)
        );
        assert_eq!(rewrite_channel(&new, f, 15).unwrap().unwrap(), text);
    }

    #[test]
    fn deb822_continued_components_and_inline_keys() {
        let u = uris(&[TP]);
        let text = "Types: deb deb-src\n\
            URIs: http://mirror.example.com/teleport https://apt.releases.teleport.dev/debian/\n\
            Suites: bookworm\n\
            Components:\n stable/v15\n\
            Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n stable/v15\n -----END PGP PUBLIC KEY BLOCK-----\n";
        let f = Format::AptDeb822 { uris: &u };
        assert_eq!(find_channel(text, f), Some(Channel::Stable(15)));
        let new = rewrite_channel(text, f, 16).unwrap().unwrap();
        assert_eq!(
            new,
            text.replacen("Components:\n stable/v15", "Components:\n stable/v16", 1)
        );
    }

    const REPO: &str = "# Teleport, stable/v15\n\
        [teleport]\n\
        name=Gravitational Teleport packages (stable/v15)\n\
        baseurl=https://yum.releases.teleport.dev/rhel/9/Teleport/x86_64/stable/v15\n\
        enabled=1\n\
        gpgcheck=1\n\
        repo_gpgcheck=1\n\
        gpgkey=https://yum.releases.teleport.dev/gpg\n\
        \n\
        [other]\n\
        baseurl=https://example.com/stable/v15\n";

    #[test]
    fn repo_baseurl() {
        let f = Format::Repo { id: "teleport" };
        assert_eq!(find_channel(REPO, f), Some(Channel::Stable(15)));
        let new = rewrite_channel(REPO, f, 16).unwrap().unwrap();
        assert_eq!(
            new,
            REPO.replacen("x86_64/stable/v15\n", "x86_64/stable/v16\n", 1)
        );
        assert_eq!(rewrite_channel(&new, f, 15).unwrap().unwrap(), REPO);
        assert_eq!(
            find_channel(REPO, Format::Repo { id: "other" }),
            Some(Channel::Stable(15))
        );
        assert!(rewrite_channel(REPO, Format::Repo { id: "nosuch" }, 16).is_err());
    }

    #[test]
    fn repo_multi_line_and_variables() {
        let text = "[teleport]\r\n\
            baseurl = https://zypper.releases.teleport.dev/sles/15/Teleport/$basearch/stable/v15/,https://m.example.com/t/stable/v15\r\n\
            \thttps://m2.example.com/stable/v15?x=stable/v1\r\n\
            gpgcheck=1\r\n";
        let f = Format::Repo { id: "teleport" };
        assert_eq!(find_channel(text, f), Some(Channel::Stable(15)));
        let new = rewrite_channel(text, f, 16).unwrap().unwrap();
        assert_eq!(new, text.replace("stable/v15", "stable/v16"));
        // One URL without a channel: no single channel.
        let text = "[teleport]\nbaseurl=https://yum.releases.teleport.dev/x/stable/v15\n  https://mirror.example.com/teleport\n";
        assert_eq!(find_channel(text, f), None);
        assert_eq!(rewrite_channel(text, f, 16).unwrap(), None);
        // Cloud.
        let text = "[teleport]\nbaseurl=https://yum.releases.teleport.dev/rhel/9/Teleport/x86_64/stable/cloud\n";
        assert_eq!(find_channel(text, f), Some(Channel::Cloud));
        assert_eq!(rewrite_channel(text, f, 16).unwrap(), None);
    }

    #[test]
    fn url_channels() {
        assert_eq!(
            url_channel("http://127.0.0.1:8000/stable/v15/").map(|x| x.2),
            Some("stable/v15".into())
        );
        assert_eq!(url_channel("http://h/stable/").map(|x| x.2), None);
        assert_eq!(url_channel("http://stable/v15").map(|x| x.2), None);
        assert_eq!(
            url_channel("file:///srv/stable/v15").map(|x| x.2),
            Some("stable/v15".into())
        );
        let u = "https://h/a/stable/v1/stable/v15";
        let (a, b, _) = url_channel(u).unwrap();
        assert_eq!(&u[a..b], "v15");
    }

    #[test]
    fn an_interrupted_move_is_found_and_undone_only_when_untouched() {
        let d = tempfile::tempdir().unwrap();
        let sys = System::rooted(d.path()).unwrap();
        let real = sys.path("/etc/yum.repos.d/teleport.repo");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, REPO).unwrap();
        let f = Format::Repo { id: "teleport" };
        assert_eq!(ChannelMove::interrupted(&sys, &real, f).unwrap(), None);
        // A run applied a move and died before restoring or dropping it.
        let m = ChannelMove::plan(&sys, &real, f, 16).unwrap().unwrap();
        m.apply().unwrap();
        let Some(Interrupted::Undo(u)) = ChannelMove::interrupted(&sys, &real, f).unwrap() else {
            panic!("not found as an undoable move");
        };
        assert_eq!(u, m);
        u.restore().unwrap();
        // ... or died after restoring, before removing the backup.
        let Some(Interrupted::Undo(again)) = ChannelMove::interrupted(&sys, &real, f).unwrap()
        else {
            panic!("a restored file with its backup left is not undoable");
        };
        assert_eq!(
            (&again.from, &again.to),
            (&Channel::Stable(15), &Channel::Stable(15))
        );
        again.restore().unwrap();
        again.remove_backup().unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), REPO);
        assert_eq!(ChannelMove::interrupted(&sys, &real, f).unwrap(), None);
        // Edited since the move (here: by hand to another channel): left.
        m.apply().unwrap();
        let edited = REPO.replace("stable/v15", "stable/cloud");
        std::fs::write(&real, &edited).unwrap();
        assert_eq!(
            ChannelMove::interrupted(&sys, &real, f).unwrap(),
            Some(Interrupted::Edited {
                file: "/etc/yum.repos.d/teleport.repo".into(),
                backup: m.backup.clone()
            })
        );
        std::fs::write(&real, format!("{}# a comment\n", m.new_text)).unwrap();
        assert!(matches!(
            ChannelMove::interrupted(&sys, &real, f).unwrap(),
            Some(Interrupted::Edited { .. })
        ));
    }

    #[test]
    fn moves_apply_and_restore_with_mode_kept() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let sys = System::rooted(d.path()).unwrap();
        let real = sys.path("/etc/yum.repos.d/teleport.repo");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, REPO).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let f = Format::Repo { id: "teleport" };
        assert!(ChannelMove::plan(&sys, &real, f, 15).unwrap().is_none());
        let m = ChannelMove::plan(&sys, &real, f, 16).unwrap().unwrap();
        assert_eq!(
            m.describe(),
            "/etc/yum.repos.d/teleport.repo: stable/v15 -> stable/v16"
        );
        assert_eq!(m.to_string(), m.describe());
        // Planning wrote nothing.
        assert!(!m.backup.exists());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), REPO);
        m.apply().unwrap();
        m.apply().unwrap();
        assert_eq!(std::fs::read_to_string(&m.backup).unwrap(), REPO);
        assert_eq!(std::fs::read_to_string(&real).unwrap(), m.new_text);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&real), 0o600);
        assert_eq!(mode(&m.backup), 0o600);
        m.restore().unwrap();
        m.restore().unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), REPO.as_bytes());
        assert_eq!(mode(&real), 0o600);
        m.remove_backup().unwrap();
        m.remove_backup().unwrap();
        assert!(!m.backup.exists());
        // Someone else's edit is never overwritten.
        m.apply().unwrap();
        std::fs::write(&real, "edited\n").unwrap();
        assert!(m.restore().is_err());
        assert!(m.apply().is_err());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "edited\n");
    }
}
