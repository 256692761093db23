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
use std::path::Path;

use crate::{Error, Result};

mod tokens;
mod transaction;

use tokens::{agreed, scan};
pub use transaction::{ChannelMove, Interrupted, BACKUP_SUFFIX};

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

fn read_text(p: &Path) -> Result<String> {
    let bytes =
        crate::fsread::read(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
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
mod tests;
