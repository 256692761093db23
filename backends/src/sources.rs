//! apt source definitions: one-line `.list` files and deb822 `.sources`
//! files, parsed into entries that remember where they came from.

use std::path::{Path, PathBuf};

/// One `deb` entry (a deb822 stanza with several URIs or suites is split
/// into one entry per URI and suite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptEntry {
    pub file: PathBuf,
    /// 1-based line of the entry (the stanza's first line for deb822).
    pub line: usize,
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    /// Options as written: `signed-by`, `trusted`, `arch`, ...; keys are
    /// lowercased.
    pub options: Vec<(String, String)>,
    pub deb822: bool,
}

impl AptEntry {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `signed-by` keyring paths (an inline key block yields none).
    pub fn signed_by_paths(&self) -> Vec<String> {
        match self.option("signed-by") {
            Some(v) if !v.contains("BEGIN PGP") => v
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|s| s.starts_with('/'))
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn describe(&self) -> String {
        format!("{} {} {}", self.uri, self.suite, self.components.join(" "))
    }

    /// The host part of the URI, lowercased.
    pub fn host(&self) -> String {
        let rest = self.uri.split_once("://").map(|x| x.1).unwrap_or(&self.uri);
        let hostport = rest.split('/').next().unwrap_or("");
        let host = hostport.rsplit_once('@').map(|x| x.1).unwrap_or(hostport);
        host.split(':').next().unwrap_or("").to_ascii_lowercase()
    }

    /// Render as a one-line `deb` entry, with `signed-by` paths replaced by
    /// `map_keyring(path)`.
    pub fn to_one_line(&self, map_keyring: impl Fn(&str) -> String) -> String {
        let mut opts = Vec::new();
        for (k, v) in &self.options {
            if k == "signed-by" {
                let paths = self.signed_by_paths();
                if paths.is_empty() {
                    // An inline key cannot be expressed on one line; leave
                    // it out so that apt refuses the source rather than
                    // trusting it some other way.
                    continue;
                }
                let mapped: Vec<String> = paths.iter().map(|p| map_keyring(p)).collect();
                opts.push(format!("signed-by={}", mapped.join(",")));
            } else {
                opts.push(format!(
                    "{k}={}",
                    v.split_whitespace().collect::<Vec<_>>().join(",")
                ));
            }
        }
        let opts = if opts.is_empty() {
            String::new()
        } else {
            format!("[{}] ", opts.join(" "))
        };
        format!(
            "deb {opts}{} {} {}",
            self.uri,
            self.suite,
            self.components.join(" ")
        )
    }
}

/// Parse a one-line-style `.list` file. `deb-src` lines and comments are
/// skipped. Malformed lines are returned as errors with their line number.
pub fn parse_list(file: &Path, text: &str) -> Parsed {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (kind, rest) = match line.split_once(char::is_whitespace) {
            Some(x) => x,
            None => {
                errors.push((lineno, format!("malformed line {raw:?}")));
                continue;
            }
        };
        if kind == "deb-src" {
            continue;
        }
        if kind != "deb" {
            errors.push((lineno, format!("unknown type {kind:?}")));
            continue;
        }
        let mut rest = rest.trim_start();
        let mut options = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                errors.push((lineno, "unterminated [options]".into()));
                continue;
            };
            for o in opts.split_whitespace() {
                match o.split_once('=') {
                    Some((k, v)) => {
                        let k = k.trim_end_matches(['+', '-']).to_ascii_lowercase();
                        options.push((k, v.to_string()))
                    }
                    None => errors.push((lineno, format!("option without value {o:?}"))),
                }
            }
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            errors.push((lineno, "missing URI or suite".into()));
            continue;
        };
        entries.push(AptEntry {
            file: file.to_path_buf(),
            line: lineno,
            uri: uri.to_string(),
            suite: suite.to_string(),
            components: words.map(str::to_string).collect(),
            options,
            deb822: false,
        });
    }
    (entries, errors)
}

/// Parse a deb822 `.sources` file.
pub fn parse_deb822(file: &Path, text: &str) -> Parsed {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut start = 0usize;

    let flush = |fields: &mut Vec<(String, String)>,
                 start: usize,
                 entries: &mut Vec<AptEntry>,
                 errors: &mut Vec<(usize, String)>| {
        if fields.is_empty() {
            return;
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| v.trim().to_string())
        };
        let enabled = get("enabled")
            .map(|v| !v.eq_ignore_ascii_case("no"))
            .unwrap_or(true);
        let types = get("types").unwrap_or_default();
        if enabled && types.split_whitespace().any(|t| t == "deb") {
            let uris = get("uris").unwrap_or_default();
            let suites = get("suites").unwrap_or_default();
            if uris.is_empty() || suites.is_empty() {
                errors.push((start, "stanza without URIs or Suites".into()));
            }
            let components: Vec<String> = get("components")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let options: Vec<(String, String)> = fields
                .iter()
                .filter(|(k, _)| {
                    !["types", "uris", "suites", "components", "enabled"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.trim().to_string()))
                .collect();
            for uri in uris.split_whitespace() {
                for suite in suites.split_whitespace() {
                    entries.push(AptEntry {
                        file: file.to_path_buf(),
                        line: start,
                        uri: uri.to_string(),
                        suite: suite.to_string(),
                        components: components.clone(),
                        options: options.clone(),
                        deb822: true,
                    });
                }
            }
        }
        fields.clear();
    };

    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        if raw.starts_with('#') {
            continue;
        }
        if raw.trim().is_empty() {
            flush(&mut fields, start, &mut entries, &mut errors);
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            match fields.last_mut() {
                Some((_, v)) => {
                    let cont = raw.trim();
                    v.push('\n');
                    if cont != "." {
                        v.push_str(cont);
                    }
                }
                None => errors.push((lineno, "continuation line without a field".into())),
            }
            continue;
        }
        match raw.split_once(':') {
            Some((k, v)) => {
                if fields.is_empty() {
                    start = lineno;
                }
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            None => errors.push((lineno, format!("malformed line {raw:?}"))),
        }
    }
    flush(&mut fields, start, &mut entries, &mut errors);
    (entries, errors)
}

/// Every source file apt reads: `sources.list` and `sources.list.d/*.list`,
/// `*.sources`, in apt's order.
pub fn source_files(etc_apt: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    // Anything but a directory is listed: a FIFO or a device where a
    // source file is expected is reported when it is read (bounded), not
    // skipped in silence.
    let main = etc_apt.join("sources.list");
    if main.symlink_metadata().is_ok() && !main.is_dir() {
        out.push(main);
    }
    if let Ok(rd) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut parts: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.is_dir()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("list") | Some("sources")
                    )
            })
            .collect();
        parts.sort();
        out.extend(parts);
    }
    out
}

/// Entries, and the (line, message) of every line that could not be read.
pub type Parsed = (Vec<AptEntry>, Vec<(usize, String)>);

/// Parse one file by its extension.
pub fn parse_file(path: &Path) -> std::io::Result<Parsed> {
    let text = crate::fsread::read_to_string(path)?;
    Ok(
        if path.extension().and_then(|e| e.to_str()) == Some("sources") {
            parse_deb822(path, &text)
        } else {
            parse_list(path, &text)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_entries() {
        let text = "# comment\n\
            deb [signed-by=/usr/share/keyrings/teleport.asc arch=amd64] https://apt.releases.teleport.dev/debian bookworm stable/v15\n\
            deb-src http://x/ y z\n\
            deb http://deb.debian.org/debian bookworm main contrib # trailing\n\
            garbage\n";
        let (e, errs) = parse_list(Path::new("/t.list"), text);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].line, 2);
        assert_eq!(
            e[0].signed_by_paths(),
            vec!["/usr/share/keyrings/teleport.asc"]
        );
        assert_eq!(e[0].components, vec!["stable/v15"]);
        assert_eq!(e[0].host(), "apt.releases.teleport.dev");
        assert_eq!(e[1].components, vec!["main", "contrib"]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, 5);
    }

    #[test]
    fn deb822_entries() {
        let text = "Types: deb\nURIs: https://apt.releases.teleport.dev/debian\nSuites: bookworm\nComponents: stable/v16\nSigned-By: /usr/share/keyrings/t.asc\n\n\
            Types: deb deb-src\nURIs: http://a/ http://b/\nSuites: s1\nComponents: main\nEnabled: yes\n\n\
            Types: deb\nURIs: http://off/\nSuites: s\nComponents: main\nEnabled: no\n";
        let (e, errs) = parse_deb822(Path::new("/t.sources"), text);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].signed_by_paths(), vec!["/usr/share/keyrings/t.asc"]);
        assert_eq!(e[1].line, 7);
        assert_eq!(e[2].uri, "http://b/");
    }

    #[test]
    fn one_line_rendering_maps_keyrings() {
        let (e, _) = parse_list(
            Path::new("/x.list"),
            "deb [signed-by=/k.asc] http://127.0.0.1:1/debian bookworm stable/v15\n",
        );
        assert_eq!(
            e[0].to_one_line(|p| format!("/root{p}")),
            "deb [signed-by=/root/k.asc] http://127.0.0.1:1/debian bookworm stable/v15"
        );
    }

    #[test]
    fn inline_keys_are_not_paths() {
        let text = "Types: deb\nURIs: http://a/\nSuites: s\nComponents: c\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n";
        let (e, _) = parse_deb822(Path::new("/t.sources"), text);
        assert!(e[0].signed_by_paths().is_empty());
        assert!(!e[0].to_one_line(|p| p.to_string()).contains("signed-by"));
    }
}
