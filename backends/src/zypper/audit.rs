//! The trust audit: zypp.conf and the repository's definition keep
//! metadata and package signatures on, and the key is already trusted.

use super::*;

impl Zypper {
    pub(super) fn audit(&self, source: &Source) -> Result<TrustReport> {
        if crate::test_skip_audit() {
            let mut r = TrustReport::default();
            r.checked.push(
                "TELEPORT_UPGRADE_TEST_SKIP_AUDIT: the zypper audit was skipped (test build)"
                    .into(),
            );
            return Ok(r);
        }
        let sec = self.section(source)?;
        let file = self.shown(&source.file);
        let conf_file = self.zypp_conf();
        // libzypp merges every [main] section of zypp.conf (the last
        // setting of a key wins).
        let conf: Option<IniSection> = rpmdb::read_ini(&conf_file)?
            .into_iter()
            .filter(|s| s.id == "main")
            .reduce(|mut a, b| {
                a.entries.extend(b.entries);
                a
            });
        let mut report = TrustReport::default();
        let mut refusals: Vec<TrustFinding> = Vec::new();

        // Where a setting comes from: the repository, else zypp.conf.
        let lookup = |key: &str| -> Option<(bool, TrustFinding)> {
            if let Some((b, line)) = sec.bool_as(key, rpmdb::parse_bool_zypp) {
                return Some((
                    b,
                    TrustFinding {
                        file: file.clone(),
                        line: Some(line),
                        setting: format!("{key}={}", sec.value(key).unwrap_or("")),
                        message: String::new(),
                    },
                ));
            }
            let c = conf.as_ref()?;
            let (b, line) = c.bool_as(key, rpmdb::parse_bool_zypp)?;
            Some((
                b,
                TrustFinding {
                    file: self.shown(&conf_file),
                    line: Some(line),
                    setting: format!("{key} = {}", c.value(key).unwrap_or("")),
                    message: String::new(),
                },
            ))
        };
        // libzypp: gpgcheck defaults to on; repo_gpgcheck and pkg_gpgcheck
        // default to "according to gpgcheck", and with signed metadata an
        // unset pkg_gpgcheck leaves rpm signatures unchecked (packages are
        // then protected by the checksums in the signed metadata).
        let gpg = lookup("gpgcheck");
        if let Some((false, mut f)) = gpg.clone() {
            f.message = format!("turns signature checks off for [{}]; set gpgcheck=1 in its section and remove any gpgcheck = off from {ZYPP_CONF}", sec.id);
            refusals.push(f);
        }
        let gpg_on = gpg.as_ref().map(|(b, _)| *b).unwrap_or(true);
        match lookup("repo_gpgcheck") {
            Some((false, mut f)) => {
                f.message = format!(
                    "turns the metadata signature check off for [{}]; set repo_gpgcheck=1",
                    sec.id
                );
                refusals.push(f);
            }
            Some((true, _)) => report
                .checked
                .push(format!("repo_gpgcheck is on for [{}]", sec.id)),
            None if gpg_on => report.checked.push(format!(
                "repo_gpgcheck follows gpgcheck (on) for [{}]",
                sec.id
            )),
            None => {}
        }
        match lookup("pkg_gpgcheck") {
            Some((false, mut f)) => {
                f.message = format!("turns the package signature check off for [{}]; set pkg_gpgcheck=1", sec.id);
                refusals.push(f);
            }
            Some((true, _)) => report.checked.push(format!("pkg_gpgcheck is on for [{}]", sec.id)),
            None => report.warnings.push(TrustFinding {
                file: file.clone(),
                line: Some(sec.line),
                setting: "pkg_gpgcheck".into(),
                message: format!("not set: with signed metadata zypper checks package checksums but not package signatures; add pkg_gpgcheck=1 to [{}]", sec.id),
            }),
        }
        self.audit_keys(source, &sec, &mut report, &mut refusals);
        let refused: Vec<&str> = super::view::KEYS
            .into_iter()
            .filter(|k| {
                refusals.iter().any(|f| {
                    f.setting
                        .strip_prefix(k)
                        .is_some_and(|r| r.trim_start().starts_with('='))
                })
            })
            .collect();
        self.judge_listing(source, &sec, &refused, &mut report, &mut refusals);
        crate::audit_verdict(report, refusals, format!("gpgcheck is on for [{}]", sec.id))
    }

    /// The repository names a signing key whose local file exists, and
    /// the rpm database holds signing keys.
    fn audit_keys(
        &self,
        source: &Source,
        sec: &IniSection,
        report: &mut TrustReport,
        refusals: &mut Vec<TrustFinding>,
    ) {
        let file = self.shown(&sec.file);
        let keys = self.resolved_gpgkeys(source, sec);
        if keys.is_empty() {
            refusals.push(TrustFinding {
                file: file.clone(),
                line: Some(sec.line),
                setting: "gpgkey".into(),
                message: format!("[{}] names no signing key; add gpgkey=<the URL of its signing key> and import that key (rpm --import)", sec.id),
            });
        }
        for k in &keys {
            if let Some(p) = rpmdb::file_url_path(k) {
                if !self.system.path(p).is_file() {
                    report.warnings.push(TrustFinding {
                        file: file.clone(),
                        line: sec.get("gpgkey").map(|e| e.line),
                        setting: format!("gpgkey={k}"),
                        message: format!("the key file {p} does not exist"),
                    });
                }
            }
        }
        match rpmdb::has_pubkeys(&self.system, &self.runner) {
            Ok(true) => report.checked.push("the rpm database holds signing keys".into()),
            Ok(false) => report.warnings.push(TrustFinding {
                file: file.clone(),
                line: None,
                setting: "gpgkey".into(),
                message: "no signing key is imported into the rpm database: zypper will refuse the repository until the repository's signing key is imported (rpm --import)".into(),
            }),
            Err(e) => tracing::warn!("cannot list the imported keys: {e}"),
        }
    }
}
