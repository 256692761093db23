//! Helpers shared by the dnf/yum and zypper backends: the installed version
//! from the rpm database, and `.repo` / `dnf.conf` / `zypp.conf` INI files
//! parsed with file and line positions (for trust findings) and edited in
//! place (for the `exclude=` hold).
//!
//! Where the rpm database lives differs: RHEL <= 9, Amazon Linux and SLES 15
//! keep it under `/var/lib/rpm`; openSUSE and newer Fedora-family systems
//! under `/usr/lib/sysimage/rpm` (with `/var/lib/rpm` a link, or not);
//! Debian's rpm build under `~/.rpmdb` (`/root/.rpmdb` inside a root); and a
//! system's own rpm macros may put it anywhere (`%_dbpath`). rpm, dnf and
//! zypper read the macros of the system they run on, so on the host rpm's
//! own answer is right. Under `--root` it is not: the host's rpm would look
//! for the database where the host keeps it. So for a root the query uses,
//! in this order: the `%_dbpath` the root's own macro files define (when a
//! database is there), rpm's default (when a database is there), the first
//! known location that holds one (`--dbpath`, which rpm resolves inside
//! `--root`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cmd::{CommandLine, Runner};
use crate::integrity::{self, FileProblem};
use crate::types::{Installed, PkgName, PkgVersion, System};
use crate::{Error, Result};

/// Places an rpm database is found in, most common first.
const DB_DIRS: &[&str] = &["/var/lib/rpm", "/usr/lib/sysimage/rpm", "/root/.rpmdb"];

/// Files that show a directory holds an rpm database (sqlite, ndb, bdb).
const DB_FILES: &[&str] = &["rpmdb.sqlite", "Packages.db", "Packages"];

fn holds_db(dir: &Path) -> bool {
    DB_FILES.iter().any(|f| dir.join(f).is_file())
}

/// rpm's compiled-in database directory (`%_dbpath`), as the target sees it.
fn default_dbpath(runner: &Runner) -> Option<String> {
    static DEFAULT: OnceLock<Option<String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let fin = runner
                .run(
                    &CommandLine::new("rpm")
                        .env("HOME", crate::RPM_HOME)
                        .args(["--eval", "%{_dbpath}"]),
                )
                .ok()?;
            let p = fin.stdout.trim().to_string();
            (fin.success() && p.starts_with('/')).then_some(p)
        })
        .clone()
}

/// The macro files of a system, in the order rpm reads them (a later
/// definition wins): rpm's own, its `macros.d`, the vendor's
/// (`redhat`, `suse`, ...), then the administrator's in `/etc/rpm`.
fn macro_files(system: &System) -> Vec<PathBuf> {
    let sorted = |dir: &str, prefix: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(system.path(dir))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut files = vec![system.path("/usr/lib/rpm/macros")];
    files.extend(sorted("/usr/lib/rpm/macros.d", "macros."));
    for vendor in ["redhat", "suse", "amazon", "openEuler", "mageia"] {
        files.push(system.path(format!("/usr/lib/rpm/{vendor}/macros")));
    }
    files.extend(sorted("/etc/rpm", "macros."));
    files.push(system.path("/etc/rpm/macros"));
    files
}

/// The single-line macro definitions of `text` (`%name value`), in order.
/// Multi-line (`\`-continued) and parametric (`%name(...)`) ones are
/// skipped: `%_dbpath` is never one.
fn macro_definitions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut continued = false;
    for line in text.lines() {
        let was_continued = continued;
        continued = line.ends_with('\\');
        if was_continued || continued {
            continue;
        }
        let Some(rest) = line.trim_start().strip_prefix('%') else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let value = &rest[name.len()..];
        if name.is_empty() || !value.starts_with([' ', '\t']) {
            continue;
        }
        out.push((name, value.trim().to_string()));
    }
    out
}

/// `value` with `%{name}` / `%name` references expanded from `defs`;
/// `None` when something cannot be expanded (a conditional, a shell
/// expansion, an unknown macro, a loop).
fn expand_macro(
    value: &str,
    defs: &std::collections::HashMap<String, String>,
    depth: u8,
) -> Option<String> {
    if depth > 8 {
        return None;
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let name: String = if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}')?;
            let n = &r[..end];
            rest = &r[end + 1..];
            n.to_string()
        } else {
            let n: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[n.len()..];
            n
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        out.push_str(&expand_macro(defs.get(&name)?, defs, depth + 1)?);
    }
    out.push_str(rest);
    Some(out)
}

/// The `%_dbpath` the system's own macro files define, expanded; `None`
/// when they define none (or one that cannot be expanded here).
pub fn root_macro_dbpath(system: &System) -> Option<String> {
    let mut defs: std::collections::HashMap<String, String> = [
        ("_usr", "/usr"),
        ("_prefix", "/usr"),
        ("_var", "/var"),
        ("_localstatedir", "/var"),
        ("_sysconfdir", "/etc"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut dbpath = None;
    for f in macro_files(system) {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for (name, value) in macro_definitions(&text) {
            if name == "_dbpath" {
                dbpath = Some(value.clone());
            }
            defs.insert(name, value);
        }
    }
    let p = expand_macro(&dbpath?, &defs, 0)?;
    let p = p.trim_end_matches('/').to_string();
    (p.starts_with('/') && !p.contains("/../")).then_some(p)
}

/// The `--dbpath` to pass for `system`, or `None` to use rpm's default.
pub fn dbpath(system: &System, runner: &Runner) -> Option<String> {
    let default = default_dbpath(runner);
    if !system.is_host() {
        if let Some(own) = root_macro_dbpath(system) {
            if holds_db(&system.path(&own)) {
                return (default.as_deref() != Some(own.as_str())).then_some(own);
            }
        }
    }
    if let Some(d) = default {
        if holds_db(&system.path(&d)) {
            return None;
        }
    }
    DB_DIRS
        .iter()
        .find(|d| holds_db(&system.path(d)))
        .map(|d| d.to_string())
}

/// `rpm [--root R] [--dbpath P]` for `system`.
pub fn rpm(system: &System, runner: &Runner) -> CommandLine {
    let mut cl = CommandLine::new("rpm").env("HOME", crate::RPM_HOME);
    if let Some(root) = system.root() {
        cl = cl.arg("--root").arg(root.display().to_string());
    }
    if let Some(p) = dbpath(system, runner) {
        cl = cl.arg("--dbpath").arg(p);
    }
    cl
}

/// The query [`installed`] runs.
pub fn query_cmd(system: &System, runner: &Runner, pkg: &PkgName) -> CommandLine {
    rpm(system, runner).args([
        "-q",
        "--qf",
        "%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n",
        pkg.as_str(),
    ])
}

/// The installed version of `pkg` as `[E:]V-R` (epoch only when nonzero).
/// When several versions are installed (multiversion), the last one rpm
/// lists.
pub fn installed(system: &System, runner: &Runner, pkg: &PkgName) -> Result<Option<Installed>> {
    let cl = query_cmd(system, runner, pkg);
    let fin = runner.run(&cl)?;
    if !fin.success() {
        if fin.combined().contains("is not installed") {
            return Ok(None);
        }
        return Err(Error::CommandFailed {
            command: cl.to_string(),
            status: fin.status_text(),
            tail: fin.tail(3),
        });
    }
    let Some(line) = fin.stdout.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let line = line.strip_prefix("0:").unwrap_or(line);
    let version = PkgVersion::parse(line).map_err(|_| Error::Parse {
        what: "the version rpm reports".into(),
        detail: format!("{pkg} {line:?}"),
    })?;
    Ok(Some(Installed {
        name: pkg.clone(),
        version,
    }))
}

/// Every installed instance of `pkg`: (`NAME-[E:]V-R.ARCH`, install time),
/// in database order.
pub fn instances(system: &System, runner: &Runner, pkg: &PkgName) -> Result<Vec<(String, i64)>> {
    let cl = rpm(system, runner).args([
        "-q",
        "--qf",
        "%{NAME}-%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}.%{ARCH} %{INSTALLTIME}\\n",
        pkg.as_str(),
    ]);
    let fin = runner.run(&cl)?;
    if !fin.success() {
        if fin.combined().contains("is not installed") {
            return Ok(Vec::new());
        }
        return Err(Error::CommandFailed {
            command: cl.to_string(),
            status: fin.status_text(),
            tail: fin.tail(3),
        });
    }
    fin.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (nevra, t) = l.trim().rsplit_once(' ').unwrap_or((l, ""));
            let t = t.parse::<i64>().map_err(|_| Error::Parse {
                what: "the install time rpm reports".into(),
                detail: format!("{pkg}: {l:?}"),
            })?;
            Ok((nevra.to_string(), t))
        })
        .collect()
}

/// Two or more instances of `pkg` in the rpm database: what an rpm
/// transaction killed between installing the new version and erasing the
/// old one leaves.
pub fn duplicate_instances(
    system: &System,
    runner: &Runner,
    pkg: &PkgName,
) -> Result<Option<String>> {
    let all = instances(system, runner, pkg)?;
    Ok((all.len() > 1).then(|| {
        format!(
            "{} versions of {pkg} in the rpm database: {}",
            all.len(),
            all.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }))
}

/// Finish the transaction [`duplicate_instances`] reports: erase every
/// instance but the one installed last (`rpm -e --nodeps NEVRA`), which is
/// what the interrupted upgrade had left to do (the files the newer
/// instance owns stay).
pub fn erase_older_instances(
    system: &System,
    runner: &Runner,
    pkg: &PkgName,
) -> Result<Option<String>> {
    let Some(what) = duplicate_instances(system, runner, pkg)? else {
        return Ok(None);
    };
    let mut all = instances(system, runner, pkg)?;
    // The last installed stays (database order breaks a tie).
    let keep = all
        .iter()
        .enumerate()
        .max_by_key(|(i, (_, t))| (*t, *i))
        .map(|(i, _)| i)
        .unwrap_or(0);
    all.remove(keep);
    for (nevra, _) in all {
        let cl = rpm(system, runner).args(["-e", "--nodeps", &nevra]);
        tracing::warn!(command = %cl, "erasing the older instance an interrupted transaction left");
        runner.run_ok(&cl)?;
    }
    Ok(Some(what))
}

/// `rpm -V` of `pkg`'s files only: dependencies and `%verifyscript` are
/// left out (`--nodeps --noscripts`), which would print other lines.
pub fn verify_cmd(system: &System, runner: &Runner, pkg: &PkgName) -> CommandLine {
    rpm(system, runner).args(["-V", "--nodeps", "--noscripts", pkg.as_str()])
}

/// Verify the executables of the installed `pkg` (see [`integrity`]):
/// `rpm -V`, then the recorded file modes to tell executables from other
/// files outside `bin`/`sbin` directories.
pub fn verify_files(system: &System, runner: &Runner, pkg: &PkgName) -> Result<Vec<FileProblem>> {
    if installed(system, runner, pkg)?.is_none() {
        return Err(Error::NotInstalled {
            package: pkg.to_string(),
        });
    }
    let cl = verify_cmd(system, runner, pkg);
    let fin = runner.run(&cl)?;
    // rpm -V exits 1 when it found problems (and when the package is not
    // installed, which was ruled out above).
    let lines = match fin.code {
        Some(0) | Some(1) => integrity::parse_rpm_verify(&fin.stdout)?,
        _ => {
            return Err(Error::CommandFailed {
                command: cl.to_string(),
                status: fin.status_text(),
                tail: fin.tail(3),
            })
        }
    };
    if fin.code == Some(1) && lines.is_empty() {
        return Err(Error::CommandFailed {
            command: cl.to_string(),
            status: fin.status_text(),
            tail: fin.tail(3),
        });
    }
    let modes = rpm(system, runner).args([
        "-q",
        "--qf",
        "[%{FILEMODES:octal} %{FILENAMES}\\n]",
        pkg.as_str(),
    ]);
    let fin = runner.run_ok(&modes)?;
    let execs = integrity::rpm_executables(&fin.stdout);
    Ok(integrity::executable_problems(lines, |p| {
        execs.iter().any(|e| e == p)
    }))
}

/// The executable regular files of the installed `pkg`, as rpm recorded
/// them (`rpm -q --qf '[%{FILEMODES:octal} %{FILENAMES}\n]'`).
pub fn executables(system: &System, runner: &Runner, pkg: &PkgName) -> Result<Vec<PathBuf>> {
    let modes = rpm(system, runner).args([
        "-q",
        "--qf",
        "[%{FILEMODES:octal} %{FILENAMES}\\n]",
        pkg.as_str(),
    ]);
    let fin = runner.run_ok(&modes)?;
    Ok(integrity::rpm_executables(&fin.stdout))
}

/// Whether the rpm database of `system` holds at least one public key
/// (`gpg-pubkey` pseudo-package).
pub fn has_pubkeys(system: &System, runner: &Runner) -> Result<bool> {
    let fin = runner.run(&rpm(system, runner).args(["-q", "gpg-pubkey"]))?;
    Ok(fin.success())
}

/// The public keys the rpm database of `system` trusts (every
/// `gpg-pubkey` pseudo-package), as concatenated ASCII-armored blocks;
/// empty when it holds none.
pub fn pubkeys(system: &System, runner: &Runner) -> Result<String> {
    let fin =
        runner.run(&rpm(system, runner).args(["-q", "gpg-pubkey", "--qf", "%{DESCRIPTION}\n"]))?;
    if fin.success() {
        Ok(fin.stdout)
    } else if fin.combined().contains("is not installed") {
        Ok(String::new())
    } else {
        Err(Error::CommandFailed {
            command: rpm(system, runner).args(["-q", "gpg-pubkey"]).to_string(),
            status: fin.status_text(),
            tail: fin.tail(3),
        })
    }
}

// ---------------------------------------------------------------------------
// INI files (.repo, dnf.conf, yum.conf, zypp.conf)

/// One `key=value` setting, possibly continued on following indented lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// Lowercased key.
    pub key: String,
    /// The value, continuation lines joined with `\n`.
    pub value: String,
    /// 1-based first and last line.
    pub line: usize,
    pub end_line: usize,
}

/// One `[section]` of an INI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniSection {
    /// The file (host path).
    pub file: PathBuf,
    /// The section name: a repo id (zypper: alias), or `main`.
    pub id: String,
    /// 1-based line of the `[id]` header.
    pub line: usize,
    pub entries: Vec<IniEntry>,
}

impl IniSection {
    /// The last setting of `key` (later ones win, as in dnf and libzypp).
    pub fn get(&self, key: &str) -> Option<&IniEntry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(|e| e.value.as_str())
    }

    /// A boolean setting as dnf reads it, and its line; `None` when unset
    /// or not a boolean dnf accepts (dnf then keeps the inherited value).
    pub fn bool(&self, key: &str) -> Option<(bool, usize)> {
        self.bool_as(key, parse_bool)
    }

    /// A boolean setting read with `parse` (dnf's or libzypp's spellings).
    /// The last setting of `key` that `parse` understands wins.
    pub fn bool_as(&self, key: &str, parse: fn(&str) -> Option<bool>) -> Option<(bool, usize)> {
        let e = self.get(key)?;
        parse(&e.value).map(|b| (b, e.line))
    }

    /// A list setting (space, comma or newline separated), all occurrences.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.key == key)
            .flat_map(|e| split_list(&e.value))
            .collect()
    }

    /// `baseurl` entries, else `mirrorlist` / `metalink`.
    pub fn urls(&self) -> Vec<String> {
        let mut v = self.list("baseurl");
        if v.is_empty() {
            v = self.list("mirrorlist");
        }
        if v.is_empty() {
            v = self.list("metalink");
        }
        v
    }

    pub fn gpgkeys(&self) -> Vec<String> {
        self.list("gpgkey")
    }

    /// `enabled` (default on).
    pub fn enabled(&self) -> bool {
        self.bool("enabled").map(|(b, _)| b).unwrap_or(true)
    }

    /// The `name=` of the repository, else its id.
    pub fn name(&self) -> &str {
        self.value("name")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.id)
    }
}

/// dnf's booleans (libdnf `OptionBool`, case-insensitive): `1/yes/true/on`
/// and `0/no/false/off`. Anything else is not a boolean to dnf.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// libzypp's booleans (`str::strToTrue` / `str::strToFalse`,
/// case-insensitive): `1/yes/true/on/always/+` and `0/no/false/off/never/-`.
/// Anything else leaves the setting at its inherited value.
pub fn parse_bool_zypp(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" | "always" | "+" => Some(true),
        "0" | "no" | "false" | "off" | "never" | "-" => Some(false),
        _ => None,
    }
}

/// Split a list value on whitespace and commas.
pub fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parse INI text. Comments start with `#` or `;`; a line starting with
/// whitespace continues the previous value; settings before any section
/// are dropped.
pub fn parse_ini(file: &Path, text: &str) -> Vec<IniSection> {
    let mut out: Vec<IniSection> = Vec::new();
    let mut last_was_entry = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            // A blank or comment line ends a continuation.
            last_was_entry = false;
            continue;
        }
        if trimmed.starts_with('[') {
            if let Some(end) = trimmed.find(']') {
                out.push(IniSection {
                    file: file.to_path_buf(),
                    id: trimmed[1..end].trim().to_string(),
                    line: n,
                    entries: Vec::new(),
                });
                last_was_entry = false;
                continue;
            }
        }
        let Some(sec) = out.last_mut() else { continue };
        let continued = raw.starts_with([' ', '\t']);
        if continued && last_was_entry {
            if let Some(e) = sec.entries.last_mut() {
                e.value.push('\n');
                e.value.push_str(trimmed);
                e.end_line = n;
            }
            continue;
        }
        if let Some((k, v)) = trimmed.split_once('=') {
            sec.entries.push(IniEntry {
                key: k.trim().to_ascii_lowercase(),
                value: v.trim().to_string(),
                line: n,
                end_line: n,
            });
            last_was_entry = true;
        } else {
            last_was_entry = false;
        }
    }
    out
}

/// Parse one file; a missing file gives no sections.
pub fn read_ini(file: &Path) -> Result<Vec<IniSection>> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(parse_ini(file, &t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("reading {}", file.display()), e)),
    }
}

/// The `*.repo` files of `dir`, sorted.
pub fn repo_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "repo") && p.is_file())
        .collect();
    v.sort();
    v
}

/// Every repository section of every `.repo` file in `dirs` (the `main`
/// section excluded).
pub fn repo_sections(dirs: &[PathBuf]) -> Vec<IniSection> {
    let mut out = Vec::new();
    for d in dirs {
        for f in repo_files(d) {
            match read_ini(&f) {
                Ok(secs) => out.extend(secs.into_iter().filter(|s| s.id != "main")),
                Err(e) => tracing::warn!(file = %f.display(), "cannot read repository file: {e}"),
            }
        }
    }
    out
}

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

/// Whether a section looks like the Teleport repository: a URL on
/// `releases.teleport.dev`, or `teleport` in its id or file name.
pub fn looks_like_teleport(s: &IniSection) -> bool {
    s.urls().iter().any(|u| on_release_host(u))
        || s.id.to_ascii_lowercase().contains("teleport")
        || s.file.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .to_ascii_lowercase()
                .contains("teleport")
        })
}

/// Whether a URL is on Teleport's release host (`*.releases.teleport.dev`).
pub fn on_release_host(url: &str) -> bool {
    let h = url_host(url);
    h == "releases.teleport.dev" || h.ends_with(".releases.teleport.dev")
}

/// `[id]` in `file:line` form, for messages.
pub fn where_defined(system: &System, s: &IniSection) -> String {
    format!("[{}] ({}:{})", s.id, system.display_path(&s.file), s.line)
}

/// The repository defined in the configured `source-file` (a path as the
/// target system sees it): its only section, or the one on Teleport's
/// release host when it defines several.
pub fn configured_section(system: &System, file: &Path, pkg: &PkgName) -> Result<IniSection> {
    let f = system.path(file);
    let secs: Vec<IniSection> = read_ini(&f)?
        .into_iter()
        .filter(|s| s.id != "main")
        .collect();
    if secs.len() == 1 {
        return Ok(secs[0].clone());
    }
    let on_host: Vec<&IniSection> = secs
        .iter()
        .filter(|s| s.urls().iter().any(|u| on_release_host(u)))
        .collect();
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
                "the configured source file {} defines several repositories ({}) and not exactly one on releases.teleport.dev; keep the Teleport repository alone in that file",
                system.display_path(&f),
                secs.iter().map(|s| format!("[{}]", s.id)).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// Choose the Teleport repository among `sections` by a rule that does not
/// depend on what a cache happens to hold first:
///
/// 1. the one whose URL is on Teleport's release host;
/// 2. else the single one the package manager says offers the package
///    (`offered`: repo ids or names);
/// 3. else the single one named after Teleport (its id, else its file name);
///
/// at each step, several candidates narrow to the enabled ones, and several
/// enabled ones are an error naming them (`Err`). `Ok(None)`: no candidate.
pub fn choose_section<'a>(
    sections: &'a [IniSection],
    offered: &[String],
) -> std::result::Result<Option<&'a IniSection>, Vec<&'a IniSection>> {
    let steps: [&dyn Fn(&IniSection) -> bool; 4] = [
        &|s| s.urls().iter().any(|u| on_release_host(u)),
        &|s| offered.iter().any(|o| *o == s.id || o == s.name()),
        &|s| s.id.to_ascii_lowercase().contains("teleport"),
        &|s| looks_like_teleport(s),
    ];
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
            "several repositories could be the Teleport repository: {}; name its file in the `source-file` setting",
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

/// A `*`/`?` glob as dnf and zypper use in package patterns.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Keys dnf reads as the package exclude list of a repository.
pub const EXCLUDE_KEYS: &[&str] = &["exclude", "excludepkgs"];

/// Whether section `id` of `text` excludes `pkg` (exactly or by glob).
pub fn excludes(sections: &[IniSection], id: &str, pkg: &str) -> bool {
    sections
        .iter()
        .filter(|s| s.id == id)
        .flat_map(|s| EXCLUDE_KEYS.iter().flat_map(move |k| s.list(k)))
        .any(|p| glob_match(&p, pkg))
}

/// Add (`add`) or remove `pkg` in the `exclude=` of section `id` of `text`,
/// leaving every other line as it is. Returns `None` when nothing changes
/// (already excluded / not excluded), or when the section does not exist.
pub fn edit_exclude(text: &str, id: &str, pkg: &str, add: bool) -> Option<String> {
    let secs = parse_ini(Path::new(""), text);
    let sec = secs.iter().find(|s| s.id == id)?;
    let excl: Vec<&IniEntry> = sec
        .entries
        .iter()
        .filter(|e| EXCLUDE_KEYS.contains(&e.key.as_str()))
        .collect();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    // (first line, last line) 1-based -> replacement (None: delete)
    let mut replace: Vec<(usize, usize, Option<String>)> = Vec::new();
    if add {
        if excl
            .iter()
            .any(|e| split_list(&e.value).iter().any(|p| p == pkg))
        {
            return None;
        }
        if let Some(e) = excl.first() {
            let sep = if e.value.contains(',') { ", " } else { " " };
            let items = split_list(&e.value);
            let joined = if items.is_empty() {
                pkg.to_string()
            } else {
                format!("{}{sep}{pkg}", items.join(sep))
            };
            let key = lines[e.line - 1]
                .split('=')
                .next()
                .unwrap_or(&e.key)
                .trim_end();
            replace.push((e.line, e.end_line, Some(format!("{key}={joined}{nl}"))));
        } else {
            // After the section's last setting.
            let after = sec.entries.last().map(|e| e.end_line).unwrap_or(sec.line);
            let mut out = String::new();
            for (i, l) in lines.iter().enumerate() {
                out.push_str(l);
                if i + 1 == after {
                    if !l.ends_with('\n') {
                        out.push_str(nl);
                    }
                    out.push_str(&format!("exclude={pkg}{nl}"));
                }
            }
            return Some(out);
        }
    } else {
        for e in &excl {
            let items = split_list(&e.value);
            if !items.iter().any(|p| p == pkg) {
                continue;
            }
            let kept: Vec<String> = items.into_iter().filter(|p| p != pkg).collect();
            if kept.is_empty() {
                replace.push((e.line, e.end_line, None));
            } else {
                let sep = if e.value.contains(',') { ", " } else { " " };
                let key = lines[e.line - 1]
                    .split('=')
                    .next()
                    .unwrap_or(&e.key)
                    .trim_end();
                replace.push((
                    e.line,
                    e.end_line,
                    Some(format!("{key}={}{nl}", kept.join(sep))),
                ));
            }
        }
        if replace.is_empty() {
            return None;
        }
    }
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        if let Some((_, end, rep)) = replace.iter().find(|(s, _, _)| *s == n) {
            if let Some(r) = rep {
                out.push_str(r);
            }
            i = *end;
            continue;
        }
        out.push_str(lines[i]);
        i += 1;
    }
    Some(out)
}

/// Messages by which rpm-based tools say a signature, key or checksum
/// failed: such a failure is a trust refusal, never a plain error.
pub const TRUST_FAILURES: &[&str] = &[
    // dnf / librepo / rpm
    "GPG check FAILED",
    "is not signed",
    "Public key for",
    "GPG signature verification error",
    "Bad GPG signature",
    "GPG verification is enabled, but GPG signature is not available",
    "not correct for this package",
    "Failed to retrieve GPG key",
    "Didn't install any keys",
    "checksum doesn't match",
    "Checksum mismatch",
    "NOKEY",
    "BAD (Expected",
    // zypper / libzypp
    "Signature verification failed",
    "Digest verification failed",
    "is unsigned",
    "File is unsigned",
    "public key is not available",
    "Signature does not verify",
    // Last resort: zypper's key prompt (answered "reject" in -n mode).
    "reject the key",
    "has wrong checksum",
    "File has no checksum",
];

/// The line of `text` that best reports a trust failure: the first line
/// matching the earliest marker that matches at all, except that zypper's
/// key prompt is used only when nothing else matched.
pub fn trust_failure_line(text: &str) -> Option<String> {
    let lower: Vec<(String, &str)> = text.lines().map(|l| (l.to_ascii_lowercase(), l)).collect();
    let first_line = |m: &str| {
        let m = m.to_ascii_lowercase();
        lower
            .iter()
            .find(|(l, _)| l.contains(&m))
            .map(|(_, l)| l.trim().to_string())
    };
    // Preference: the first line (in output order) that matches any
    // marker but the prompt; then the prompt.
    let (prompt, rest): (Vec<&str>, Vec<&str>) =
        TRUST_FAILURES.iter().partition(|m| **m == "reject the key");
    let rest_lower: Vec<String> = rest.iter().map(|m| m.to_ascii_lowercase()).collect();
    lower
        .iter()
        .find(|(l, _)| rest_lower.iter().any(|m| l.contains(m.as_str())))
        .map(|(_, l)| l.trim().to_string())
        .or_else(|| prompt.iter().find_map(|m| first_line(m)))
}

/// The first line of `text` containing the first of `needles` that occurs
/// at all, else `fallback`.
pub fn line_with(text: &str, needles: &[&str], fallback: String) -> String {
    needles
        .iter()
        .find_map(|n| text.lines().find(|l| l.contains(n)))
        .map(|l| l.trim().to_string())
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "\
# Teleport
[teleport]
name=Teleport Enterprise
baseurl=https://yum.releases.teleport.dev/rhel/9/Teleport/x86_64/stable/v15
  https://mirror.example.com/teleport
enabled=1
gpgcheck = 1
repo_gpgcheck=1
gpgkey=https://yum.releases.teleport.dev/gpg

[other]
baseurl=http://example.com/os
gpgcheck=0
";

    #[test]
    fn parses_sections_lines_and_continuations() {
        let s = parse_ini(Path::new("/x.repo"), REPO);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id, "teleport");
        assert_eq!(s[0].line, 2);
        assert_eq!(s[0].urls().len(), 2);
        assert_eq!(s[0].bool("gpgcheck"), Some((true, 7)));
        assert_eq!(s[0].name(), "Teleport Enterprise");
        assert!(looks_like_teleport(&s[0]));
        assert!(!looks_like_teleport(&s[1]));
        assert_eq!(s[1].bool("gpgcheck"), Some((false, 13)));
        assert_eq!(s[1].name(), "other");
    }

    #[test]
    fn booleans_as_dnf_and_libzypp_read_them() {
        for t in ["1", "yes", "True", "ON", " on "] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
            assert_eq!(parse_bool_zypp(t), Some(true), "{t}");
        }
        for f in ["0", "No", "FALSE", "off"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
            assert_eq!(parse_bool_zypp(f), Some(false), "{f}");
        }
        // dnf has no always/never; libzypp has.
        assert_eq!(parse_bool("never"), None);
        assert_eq!(parse_bool_zypp("Never"), Some(false));
        assert_eq!(parse_bool_zypp("always"), Some(true));
        assert_eq!(parse_bool("enabled"), None);
        assert_eq!(parse_bool("2"), None);
    }

    #[test]
    fn duplicates_are_refused_naming_both_files() {
        let mut s = parse_ini(
            Path::new("/etc/yum.repos.d/aaa.repo"),
            "[teleport]\nbaseurl=x\n",
        );
        s.extend(parse_ini(
            Path::new("/etc/yum.repos.d/teleport.repo"),
            "# t\n[teleport]\nbaseurl=y\n[other]\n",
        ));
        let e = refuse_duplicates(&System::host(), &s, "teleport", "dnf")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/yum.repos.d/aaa.repo:1 and /etc/yum.repos.d/teleport.repo:2"),
            "{e}"
        );
        assert!(refuse_duplicates(&System::host(), &s, "other", "dnf").is_ok());
        // The same id in one place is one candidate, not an ambiguity.
        assert_eq!(choose_section(&s, &[]).unwrap().unwrap().id, "teleport");
    }

    #[test]
    fn hosts_and_file_urls() {
        assert_eq!(
            url_host("https://u:p@Yum.Releases.Teleport.dev:443/x"),
            "yum.releases.teleport.dev"
        );
        assert_eq!(url_host("http://[::1]:8080/r"), "::1");
        assert_eq!(file_url_path("file:///etc/pki/k"), Some("/etc/pki/k"));
        assert_eq!(file_url_path("file:/etc/pki/k"), Some("/etc/pki/k"));
        assert_eq!(file_url_path("https://x/k"), None);
    }

    #[test]
    fn exclude_is_added_once_and_removed_cleanly() {
        let added = edit_exclude(REPO, "teleport", "teleport-ent", true).unwrap();
        assert!(
            added.contains(
                "gpgkey=https://yum.releases.teleport.dev/gpg\nexclude=teleport-ent\n\n[other]"
            ),
            "{added}"
        );
        assert_eq!(edit_exclude(&added, "teleport", "teleport-ent", true), None);
        let secs = parse_ini(Path::new(""), &added);
        assert!(excludes(&secs, "teleport", "teleport-ent"));
        assert!(!excludes(&secs, "other", "teleport-ent"));
        let removed = edit_exclude(&added, "teleport", "teleport-ent", false).unwrap();
        assert_eq!(removed, REPO);
        assert_eq!(edit_exclude(REPO, "teleport", "teleport-ent", false), None);
        assert_eq!(edit_exclude(REPO, "nosuch", "teleport-ent", true), None);
    }

    #[test]
    fn exclude_lists_keep_other_packages() {
        let t = "[teleport]\nbaseurl=x\nexcludepkgs=foo, bar\n";
        let a = edit_exclude(t, "teleport", "teleport-ent", true).unwrap();
        assert_eq!(
            a,
            "[teleport]\nbaseurl=x\nexcludepkgs=foo, bar, teleport-ent\n"
        );
        let r = edit_exclude(&a, "teleport", "teleport-ent", false).unwrap();
        assert_eq!(r, "[teleport]\nbaseurl=x\nexcludepkgs=foo, bar\n");
        // A section at the end of a file without a final newline.
        let t = "[teleport]\nbaseurl=x";
        assert_eq!(
            edit_exclude(t, "teleport", "teleport-ent", true).unwrap(),
            "[teleport]\nbaseurl=x\nexclude=teleport-ent\n"
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("teleport*", "teleport-ent"));
        assert!(glob_match("teleport-ent", "teleport-ent"));
        assert!(!glob_match("teleport", "teleport-ent"));
        assert!(glob_match("tele?ort-*", "teleport-ent"));
    }

    #[test]
    fn choosing_prefers_the_tool_then_teleport_then_enabled() {
        let text = "[a]\nbaseurl=http://x/\n[teleport-old]\nenabled=0\nbaseurl=http://y/\n[b]\nbaseurl=https://rpm.releases.teleport.dev/x\n";
        let s = parse_ini(Path::new("/etc/yum.repos.d/vendor.repo"), text);
        // The release host wins, whatever a cache says.
        assert_eq!(choose_section(&s, &[]).unwrap().unwrap().id, "b");
        assert_eq!(choose_section(&s, &["a".into()]).unwrap().unwrap().id, "b");
        // Without one: the single offering candidate, else the named one.
        let s = parse_ini(
            Path::new("/etc/yum.repos.d/vendor.repo"),
            "[a]\nbaseurl=http://x/\n[teleport-old]\nenabled=0\nbaseurl=http://y/\n[c]\nbaseurl=http://z/\n",
        );
        assert_eq!(choose_section(&s, &["a".into()]).unwrap().unwrap().id, "a");
        assert_eq!(choose_section(&s, &[]).unwrap().unwrap().id, "teleport-old");
        let several = choose_section(&s, &["a".into(), "c".into()]).unwrap_err();
        assert_eq!(several.len(), 2);
        let none = parse_ini(
            Path::new("/etc/yum.repos.d/os.repo"),
            "[os]\nbaseurl=http://x/\n",
        );
        assert_eq!(choose_section(&none, &[]).unwrap(), None);
    }

    #[test]
    fn trust_failures_are_recognised() {
        let t = "Importing...\nError: Failed to download metadata for repo 'teleport': repomd.xml GPG signature verification error: Bad GPG signature\n";
        assert!(trust_failure_line(t).unwrap().contains("Bad GPG signature"));
        assert!(trust_failure_line("Error: Unable to find a match: teleport-ent-99").is_none());
        let z = "Do you want to reject the key, trust temporarily, or trust always? [r/t/a/?] (r): r\n - Signature verification failed for repomd.xml\n";
        assert_eq!(
            trust_failure_line(z).unwrap(),
            "- Signature verification failed for repomd.xml"
        );
        assert!(trust_failure_line("Do you want to reject the key? (r): r").is_some());
    }
}
