//! zypper's own view of a repository's signature settings: `zypper
//! --xmlout lr` for the system's zypp.conf and the directory of the
//! repository's file, as an operator's zypper reads them (libzypp's
//! parser: `[main]` sections merged, an indented `key=value` line a
//! setting of its own, keys case-sensitive; zypp.conf's defaults applied).
//!
//! What the listing shows, measured with zypper 1.14.42: `gpgcheck` is
//! the resolved umbrella; `repo_gpgcheck` and `pkg_gpgcheck` are shown
//! as "`gpgcheck` or explicitly on". A 0 there is a check zypper will not
//! make; a 1 is not proof: with `gpgcheck=1`, an explicit
//! `repo_gpgcheck=0` is listed as 1, yet zypper installs from unsigned
//! metadata (tests/effective_config.rs). The audit therefore refuses a 0
//! in the listing and, as before, an explicit off in the files.

use std::collections::BTreeMap;

use super::*;

/// The three signature settings of one repository as zypper lists them.
pub type Listed = BTreeMap<&'static str, bool>;

/// The keys read from the listing.
pub const KEYS: [&str; 3] = ["gpgcheck", "repo_gpgcheck", "pkg_gpgcheck"];

impl Zypper {
    /// `zypper --xmlout lr` as the operator's zypper would run it for
    /// this system: the system's zypp.conf, the directory of `source`'s
    /// file, no refresh.
    pub(super) fn view_cmd(&self, source: &Source) -> CommandLine {
        let dir = source
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.repos_dir());
        let mut cl = CommandLine::new("zypper")
            .env(
                "ZYPP_LOCK_TIMEOUT",
                self.opts.lock_wait.as_secs().to_string(),
            )
            .env("PAGER", "cat")
            .env("ZYPP_CONF", self.zypp_conf().display().to_string())
            .env("HOME", crate::RPM_HOME)
            .arg("--non-interactive");
        if let Some(root) = self.system.root() {
            cl = cl.arg("--root").arg(root.display().to_string());
        }
        cl.arg("--reposd-dir").arg(dir.display().to_string()).args([
            "--no-refresh",
            "--xmlout",
            "lr",
        ])
    }

    /// zypper's listing of `source`'s signature settings; `None` when
    /// zypper does not list the alias.
    pub(super) fn listed(&self, source: &Source) -> Result<Option<Listed>> {
        let cl = self.view_cmd(source);
        let fin = self.runner.run(&cl)?;
        // 6: no repositories at all (the list is then empty).
        if !fin.success() && fin.code != Some(6) {
            return Err(crate::classify::command_failed(&cl, &fin));
        }
        parse_listing(&fin.stdout, &source.id).map_err(|detail| Error::Parse {
            what: "zypper's repository list (zypper --xmlout lr)".into(),
            detail,
        })
    }
}

/// The `<repo>` element of `alias` in `zypper --xmlout lr` output, its
/// `gpgcheck`, `repo_gpgcheck` and `pkg_gpgcheck` (each `0` or `1`).
/// Strict: a missing or non-boolean attribute, or the alias listed
/// twice, is an error; `None` when the alias is not listed.
pub fn parse_listing(xml: &str, alias: &str) -> std::result::Result<Option<Listed>, String> {
    let mut found: Option<Listed> = None;
    for tag in xml.split("<repo ").skip(1) {
        let tag = format!(" {}", tag.split('>').next().unwrap_or(""));
        if exec::xml_attr(&tag, "alias").as_deref() != Some(alias) {
            continue;
        }
        if found.is_some() {
            return Err(format!("the alias {alias} is listed twice"));
        }
        let mut m = Listed::new();
        for k in KEYS {
            let v = match exec::xml_attr(&tag, k).as_deref() {
                Some("1") => true,
                Some("0") => false,
                other => return Err(format!("{k} of {alias} is {other:?}, not 0 or 1")),
            };
            m.insert(k, v);
        }
        found = Some(m);
    }
    if found.is_none() && !xml.contains("<repo-list") {
        return Err("no <repo-list> in the answer".into());
    }
    Ok(found)
}

/// The `gpgkey` attribute of `alias`'s `<repo>` element (zypper lists
/// its first key, variables expanded); `None` when absent.
pub fn listed_gpgkey(xml: &str, alias: &str) -> Option<String> {
    xml.split("<repo ").skip(1).find_map(|tag| {
        let tag = format!(" {}", tag.split('>').next().unwrap_or(""));
        (exec::xml_attr(&tag, "alias").as_deref() == Some(alias))
            .then(|| exec::xml_attr(&tag, "gpgkey"))
            .flatten()
            .filter(|k| !k.is_empty())
    })
}

impl Zypper {
    /// The repository's gpgkey URLs as zypper expands them: a value with
    /// a variable (`$basearch`, `$releasever`, a `vars.d` variable) is
    /// taken from zypper's listing (which names the first key; the file's
    /// other keys, without variables, as written); else the file's text.
    /// zypper reads `vars.d` from the host's `/etc/zypp` even with
    /// `--root` (measured, zypper 1.14.42): its listing says what it uses.
    pub(super) fn resolved_gpgkeys(&self, source: &Source, sec: &IniSection) -> Vec<String> {
        let keys = sec.gpgkeys();
        if !keys.iter().any(|k| k.contains('$')) {
            return keys;
        }
        let cl = self.view_cmd(source);
        let listed = self
            .runner
            .run(&cl)
            .ok()
            .filter(|f| f.success())
            .and_then(|f| listed_gpgkey(&f.stdout, &source.id));
        match listed {
            Some(first) => {
                tracing::info!(repo = %source.id, "gpgkey of [{}] as zypper expands it: {first}", source.id);
                let mut v = vec![first];
                v.extend(keys.into_iter().skip(1).filter(|k| !k.contains('$')));
                v
            }
            None => {
                tracing::warn!(repo = %source.id, "zypper does not list the gpgkey of [{}]: judged as written", source.id);
                keys
            }
        }
    }

    /// Refuse what zypper's listing of `source` says it will not check,
    /// unless the files already refuse it (`refused`: the keys refused
    /// from the files); say so when zypper does not list the repository.
    pub(super) fn judge_listing(
        &self,
        source: &Source,
        sec: &IniSection,
        refused: &[&str],
        report: &mut TrustReport,
        refusals: &mut Vec<TrustFinding>,
    ) {
        let file = self.shown(&sec.file);
        let listed = match self.listed(source) {
            Ok(Some(l)) => l,
            Ok(None) => {
                refusals.push(TrustFinding {
                    file,
                    line: Some(sec.line),
                    setting: format!("[{}]", sec.id),
                    message: "zypper does not list this repository (zypper --xmlout lr), though the file defines it: zypper reads the file otherwise; write the section header as [alias] alone on its line".into(),
                });
                return;
            }
            Err(e) => {
                tracing::warn!("zypper's view of the repository could not be read ({e}): the checks are judged from the files");
                report.checked.push("zypper's view of the repository could not be read: the checks are judged from the files".into());
                return;
            }
        };
        report.checked.push(format!(
            "the checks of [{}] are judged as zypper lists them (zypper --xmlout lr) and from the files",
            sec.id
        ));
        for k in KEYS {
            // A check off because gpgcheck is off is not said twice.
            let follows_gpgcheck = k != "gpgcheck" && !listed["gpgcheck"];
            if listed[k] || refused.contains(&k) || follows_gpgcheck {
                continue;
            }
            let line = sec.get(k).map(|e| e.line).unwrap_or(sec.line);
            refusals.push(TrustFinding {
                file: file.clone(),
                line: Some(line),
                setting: match sec.value(k) {
                    Some(v) => format!("{k}={v}"),
                    None => k.to_string(),
                },
                message: format!(
                    "zypper resolves {k} to 0 for [{}] (zypper --xmlout lr), though the files read on: to libzypp every [main] section of {ZYPP_CONF} counts and an indented key=value line is a setting of its own; set {k}=1 in the repository's section and remove any {k} = off",
                    sec.id
                ),
            });
        }
    }
}
