//! dnf's own view of a repository's configuration: dnf's library (the
//! Python `dnf` module the `dnf` command is made of, run by the
//! interpreter named in the command's `#!` line) reads the main
//! configuration, substitutes dnf's variables from the system's vars
//! directories and loads the repositories, as the command does, for the
//! same root, configuration file and repository directory as the
//! updater's own calls; it prints how it resolves `gpgcheck`,
//! `repo_gpgcheck` and `gpgkey`. The trust audit judges the checks and
//! the keys from it (naming the file and line they come from), the key
//! pin reads the key files it expands, and in an alternate root the
//! updater hands dnf those expanded files (dnf substitutes the variables
//! of a key URL when it fetches it, even of a `--setopt` value). dnf5 is
//! asked with `--dump-repo-config=<id>` instead (its `pkg_gpgcheck` read
//! as `gpgcheck`). Where there is no such library (yum 3, a `dnf` that is
//! neither a Python script nor dnf5) the audit judges the files alone and
//! says so.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cmd::CommandLine;
use crate::types::Source;
use crate::{Error, Result};

/// What dnf's library is asked: `ROOT CONFIG REPOSDIR ID` in argv.
const SCRIPT: &str = r#"import sys, dnf
root, cfg, reposdir, repoid = sys.argv[1:5]
b = dnf.Base()
c = b.conf
if root != "/":
    c.installroot = root
c.config_file_path = cfg
c.read()
c.substitutions.update_from_etc(c.installroot, varsdir=c._get_value("varsdir"))
for k, v in list(c.substitutions.items()):
    if v is None:
        del c.substitutions[k]
c.reposdir = [reposdir]
b.read_all_repos()
r = b.repos.get(repoid)
if r is None:
    print("repo=absent")
else:
    print("repo=present")
    print("gpgcheck=%d" % bool(r.gpgcheck))
    print("repo_gpgcheck=%d" % bool(r.repo_gpgcheck))
    print("gpgkey=%s" % " ".join(r.gpgkey))
"#;

/// The options of one repository as dnf resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// How they were asked (for messages).
    pub asked: String,
    pub options: BTreeMap<String, String>,
}

impl Effective {
    /// The `gpgkey` URLs as dnf expands them; `None` when the repository
    /// is absent from dnf's view.
    pub fn gpgkeys(&self) -> Option<Vec<String>> {
        self.options
            .get("gpgkey")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
    }

    /// A boolean option (`1`/`0`); `None` when absent.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.options.get(key).map(String::as_str) {
            Some("1") => Some(true),
            Some("0") => Some(false),
            _ => None,
        }
    }
}

impl super::Dnf {
    /// The Python interpreter of the `dnf` command (its `#!` line), when
    /// it is one.
    fn dnf_python(&self) -> Option<PathBuf> {
        if self.program != "dnf" {
            return None;
        }
        let dnf = self.runner.find("dnf")?;
        let mut head = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(&dnf).ok()?, 128),
            &mut head,
        )
        .ok()?;
        python_of_shebang(head.split(|b| *b == b'\n').next()?)
    }

    /// The question to dnf's library for `source`, when there is one.
    pub(super) fn view_cmd(&self, source: &Source) -> Option<CommandLine> {
        if self.is_dnf5() {
            let base = self.cmd().args(self.root_args(None));
            return Some(super::dnf5::view_cmd(
                base,
                source.file.parent()?,
                &source.id,
            ));
        }
        let py = self.dnf_python()?;
        let root = self
            .system
            .root()
            .map(|r| r.display().to_string())
            .unwrap_or_else(|| "/".into());
        let reposdir = source.file.parent()?.display().to_string();
        Some(
            CommandLine::new(py.display().to_string())
                .env("HOME", crate::RPM_HOME)
                .args(["-I".to_string(), "-c".into(), SCRIPT.into()])
                .args([
                    root,
                    self.config_file().display().to_string(),
                    reposdir,
                    source.id.clone(),
                ]),
        )
    }

    /// dnf's view of `source`, or `None` when there is no dnf library to
    /// ask.
    /// Asked once per repository and run (the answer is kept).
    pub(super) fn effective(&self, source: &Source) -> Result<Option<Effective>> {
        let key = (source.file.clone(), source.id.clone());
        let mut kept = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, v)) = kept.as_ref() {
            if *k == key {
                return Ok(v.clone());
            }
        }
        let v = self.ask_effective(source)?;
        *kept = Some((key, v.clone()));
        Ok(v)
    }

    fn ask_effective(&self, source: &Source) -> Result<Option<Effective>> {
        let Some(cl) = self.view_cmd(source) else {
            return Ok(None);
        };
        let fin = self.run_dnf(&cl, self.opts.lock_wait)?;
        if !fin.success() {
            return Err(crate::classify::command_failed(&cl, &fin));
        }
        let (asked, parsed) = if self.is_dnf5() {
            let a = format!("{} --dump-repo-config={}", cl.program, source.id);
            (a, super::dnf5::parse_dump(&fin.stdout, &source.id))
        } else {
            let a = format!("dnf's library, through {}", cl.program);
            (a, parse_view(&fin.stdout))
        };
        parsed
            .map(|options| Some(Effective { asked, options }))
            .map_err(|detail| Error::Parse {
                what: format!("the answer of dnf's library ({})", cl.program),
                detail,
            })
    }
}

/// The interpreter of a `#!` line when it is a Python one, named by an
/// absolute path with no arguments (`/usr/bin/python3`, RHEL 8's
/// `/usr/libexec/platform-python`).
pub fn python_of_shebang(first_line: &[u8]) -> Option<PathBuf> {
    let interp = std::str::from_utf8(first_line.strip_prefix(b"#!")?)
        .ok()?
        .trim();
    let name = interp.rsplit('/').next()?;
    (interp.starts_with('/') && !interp.contains(char::is_whitespace) && name.contains("python"))
        .then(|| PathBuf::from(interp))
}

/// The script's answer: `repo=present` then `gpgcheck=0|1`,
/// `repo_gpgcheck=0|1`, `gpgkey=<urls>`; or `repo=absent` alone. Strict:
/// anything else is an error.
pub fn parse_view(text: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("not key=value: {line:?}"))?;
        let ok = match k {
            "repo" => v == "present" || v == "absent",
            "gpgcheck" | "repo_gpgcheck" => v == "0" || v == "1",
            "gpgkey" => true,
            _ => false,
        };
        if !ok {
            return Err(format!("unexpected: {line:?}"));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("{k} printed twice"));
        }
    }
    let want = match out.get("repo").map(String::as_str) {
        Some("absent") => 1,
        Some("present") => 4,
        _ => return Err("no repo= line".into()),
    };
    if out.len() != want {
        return Err(format!("{} lines, expected {want}", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_interpreters_of_shebangs() {
        for (line, want) in [
            ("#!/usr/bin/python3", Some("/usr/bin/python3")),
            (
                "#!/usr/libexec/platform-python",
                Some("/usr/libexec/platform-python"),
            ),
            ("#!/usr/bin/python3 -s", None),
            ("#!/usr/bin/env python3", None),
            ("#!python3", None),
            ("#!/bin/sh", None),
            ("\x7fELF", None),
        ] {
            assert_eq!(
                python_of_shebang(line.as_bytes()),
                want.map(PathBuf::from),
                "{line}"
            );
        }
    }

    #[test]
    fn view_parsed_strictly() {
        let m =
            parse_view("repo=present\ngpgcheck=1\nrepo_gpgcheck=0\ngpgkey=file:///k https://x/k\n")
                .unwrap();
        assert_eq!(m["gpgcheck"], "1");
        assert_eq!(m["repo_gpgcheck"], "0");
        assert_eq!(m["gpgkey"], "file:///k https://x/k");
        assert_eq!(parse_view("repo=absent\n").unwrap().len(), 1);
        for bad in [
            "",
            "gpgcheck=1\n",
            "repo=present\ngpgcheck=1\n",
            "repo=present\ngpgcheck=yes\nrepo_gpgcheck=1\ngpgkey=\n",
            "repo=present\ngpgcheck=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=\n",
            "repo=present\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=\nextra=1\n",
            "repo=absent\ngpgcheck=1\n",
        ] {
            assert!(parse_view(bad).is_err(), "{bad:?}");
        }
    }
}
