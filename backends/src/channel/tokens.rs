//! Finding the channel tokens of the Teleport entries in a text: one-line
//! apt sources, deb822 stanzas and `.repo` sections, with their byte ranges
//! (for a rewrite that changes nothing else).

use std::path::Path;

use super::{Channel, Format};
use crate::rpmdb;

/// A channel token found in the text: its byte range and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    /// Byte range of the part to replace when moving (`stable/v15` for apt,
    /// the `v15` segment for a URL).
    pub(super) start: usize,
    pub(super) end: usize,
    /// The whole channel token (`stable/v15`).
    pub(super) channel: String,
}

/// What the Teleport entries of a text say: one token per entry (or URL);
/// `None` for an entry without a recognisable channel.
pub(super) fn scan(text: &str, format: Format<'_>) -> Vec<Option<Token>> {
    match format {
        Format::AptList { uris } => scan_list(text, uris),
        Format::AptDeb822 { uris } => scan_deb822(text, uris),
        Format::Repo { id } => scan_repo(text, id),
    }
}

/// The single channel all Teleport entries agree on.
pub(super) fn agreed(tokens: &[Option<Token>]) -> Option<Channel> {
    let first = tokens.first()?.as_ref()?;
    tokens
        .iter()
        .all(|t| t.as_ref().is_some_and(|t| t.channel == first.channel))
        .then(|| Channel::parse(&first.channel))
}

/// Byte offset of every line of `text` (lines as `split_inclusive('\n')`).
pub(super) fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    text.split_inclusive('\n').map(move |l| {
        let start = at;
        at += l.len();
        (start, l)
    })
}

/// The line without its line ending.
pub(super) fn strip_eol(l: &str) -> &str {
    l.strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(l)
}

/// Whitespace-separated words of `s` with their byte ranges.
pub(super) fn words(s: &str) -> Vec<(usize, usize)> {
    spans(s, char::is_whitespace)
}

/// The non-empty runs of `s` between separators, with their byte ranges.
pub(super) fn spans(s: &str, is_sep: impl Fn(char) -> bool) -> Vec<(usize, usize)> {
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

pub(super) fn same_uri(a: &str, uris: &[String]) -> bool {
    let a = a.trim_end_matches('/');
    uris.iter().any(|u| u.trim_end_matches('/') == a)
}

/// The channel component among `components` (byte ranges in `base`):
/// the only one, else the only one starting with `stable/`.
pub(super) fn channel_component(
    base: usize,
    s: &str,
    components: &[(usize, usize)],
) -> Option<Token> {
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
pub(super) fn scan_list(text: &str, uris: &[String]) -> Vec<Option<Token>> {
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
pub(super) fn scan_deb822(text: &str, uris: &[String]) -> Vec<Option<Token>> {
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
pub(super) fn url_channel(url: &str) -> Option<(usize, usize, String)> {
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
pub(super) fn scan_repo(text: &str, id: &str) -> Vec<Option<Token>> {
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
