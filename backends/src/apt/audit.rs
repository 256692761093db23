//! The trust audit: apt's effective configuration (`apt-config dump`) and
//! the source's options keep verification on.

use super::*;

impl Apt {
    pub(super) fn audit(&self, source: &Source) -> Result<TrustReport> {
        let mut report = TrustReport::default();
        let mut refusals: Vec<TrustFinding> = Vec::new();
        let (entries, _) = sources::parse_file(&source.file)
            .map_err(|e| Error::io(format!("reading {}", source.file.display()), e))?;
        let ours: Vec<&AptEntry> = entries
            .iter()
            .filter(|e| source.uris.contains(&e.uri))
            .collect();
        let skip = config_audit_skipped();
        if skip {
            tracing::warn!("{SKIP_CONFIG_AUDIT_ENV}=1 (a test build): apt's configuration and source options are not audited");
        }
        for e in &ours {
            let shown = PathBuf::from(self.system.display_path(&e.file));
            for opt in apt_trust::WEAKENING_SOURCE_OPTIONS {
                if let Some(v) = e.option(opt) {
                    if !skip && apt_trust::apt_bool(v.trim()) == Some(true) {
                        refusals.push(TrustFinding {
                            file: shown.clone(),
                            line: Some(e.line),
                            setting: format!("{opt}={v}"),
                            message: redact(&format!(
                                "switches signature verification off for {} (apt reads {v:?} as true); remove it",
                                e.uri
                            )),
                        });
                    }
                }
            }
            for (k, v) in &e.options {
                if !apt_trust::SAFE_SOURCE_OPTIONS.contains(&k.as_str())
                    && !apt_trust::WEAKENING_SOURCE_OPTIONS.contains(&k.as_str())
                {
                    report.warnings.push(TrustFinding {
                        file: shown.clone(),
                        line: Some(e.line),
                        setting: format!("{k}={v}"),
                        message: "not carried into the updater's single-source list (only signed-by, arch, lang, target, pdiffs, by-hash are)".into(),
                    });
                }
            }
            let inline = e
                .option("signed-by")
                .is_some_and(|v| v.contains("BEGIN PGP"));
            let paths = e.signed_by_paths();
            if paths.is_empty() && !inline {
                refusals.push(TrustFinding {
                    file: shown.clone(),
                    line: Some(e.line),
                    setting: "signed-by".into(),
                    message: redact(&format!(
                        "{} is not restricted to a keyring; add [signed-by=/usr/share/keyrings/teleport-archive-keyring.asc]{}",
                        e.uri,
                        if e.uri.starts_with("http://") { " (it is also plain http)" } else { "" }
                    )),
                });
            }
            for p in paths {
                let host = self.keyring_host_path(&p);
                if !host.is_file() {
                    refusals.push(TrustFinding {
                        file: shown.clone(),
                        line: Some(e.line),
                        setting: format!("signed-by={p}"),
                        message: "the keyring file does not exist; install the Teleport release key there".into(),
                    });
                }
            }
            report.checked.push(redact(&format!(
                "{} is restricted to its keyring",
                e.describe()
            )));
        }
        if !skip {
            let (r, w) = self.weakening_config_findings()?;
            refusals.extend(r);
            report.warnings.extend(w);
        }
        crate::audit_verdict(
            report,
            refusals,
            "apt's configuration keeps verification on".into(),
        )
    }

    /// Settings that weaken verification in the configuration apt really
    /// reads (`apt-config dump`, under the same environment as the refresh,
    /// without the enforcement), judged with apt's boolean rules. Returns
    /// (refusals, warnings).
    pub(super) fn weakening_config_findings(
        &self,
    ) -> Result<(Vec<TrustFinding>, Vec<TrustFinding>)> {
        let cl = self.apt_tool_unenforced("apt-config")?.arg("dump");
        let fin = self.runner.run(&cl)?;
        if !fin.success() {
            // apt cannot read its own configuration: neither can we judge
            // it, and the refresh would fail the same way.
            return Err(Error::Untrusted {
                reason: format!(
                    "apt cannot read its configuration (`{cl}`, {}): {}",
                    fin.status_text(),
                    fin.tail(3)
                ),
            });
        }
        let dump = apt_trust::parse_dump(&fin.stdout);
        let files = apt_trust::config_files(
            self.work()?.apt_config.as_deref(),
            &self.etc_apt().join("apt.conf.d"),
            &self.etc_apt().join("apt.conf"),
        );
        let shown = |p: &Path| -> PathBuf {
            if self.work.get().and_then(|w| w.apt_config.as_deref()) == Some(p) {
                PathBuf::from("the updater's APT_CONFIG")
            } else {
                PathBuf::from(self.system.display_path(p))
            }
        };
        let at = |key: &str| -> (PathBuf, Option<usize>) {
            match apt_trust::locate(&files, key) {
                Some((f, l)) => (shown(&f), Some(l)),
                None => (PathBuf::from("apt's configuration (apt-config dump)"), None),
            }
        };
        let mut refusals = Vec::new();
        let mut warnings = Vec::new();
        for key in apt_trust::REFUSED_WHEN_TRUE {
            if apt_trust::find_b(&dump, key, false) {
                let (file, line) = at(key);
                refusals.push(TrustFinding {
                    file,
                    line,
                    setting: format!(
                        "{key} \"{}\"",
                        apt_trust::lookup(&dump, key).unwrap_or_default()
                    ),
                    message: "switches apt's signature verification off (apt reads this value as true); remove this line".into(),
                });
            }
        }
        let mut warn = |key: &str, message: &str| {
            let (file, line) = at(key);
            warnings.push(TrustFinding {
                file,
                line,
                setting: format!(
                    "{key} \"{}\"",
                    apt_trust::lookup(&dump, key).unwrap_or_default()
                ),
                message: message.to_string(),
            });
        };
        for key in apt_trust::WARNED_WHEN_TRUE {
            if apt_trust::find_b(&dump, key, false) {
                warn(
                    key,
                    "trusts unsigned sources; the updater turns it off for its own calls",
                );
            }
        }
        for key in apt_trust::WARNED_WHEN_FALSE {
            if !apt_trust::find_b(&dump, key, true) {
                warn(key, "turns off the replay protection of signed metadata; the updater turns it on for its own calls");
            }
        }
        for key in apt_trust::CLEARED {
            let items = apt_trust::children(&dump, key);
            let own = apt_trust::lookup(&dump, key).filter(|v| !v.is_empty());
            let changed = match *key {
                "Dir::Bin::Methods" => {
                    own.is_some_and(|v| v.trim_end_matches('/') != apt_trust::METHODS_DIR)
                        || !items.is_empty()
                }
                _ => own.is_some() || !items.is_empty(),
            };
            if changed {
                warn(
                    key,
                    "can weaken signature checks; the updater clears it for its own calls",
                );
            }
        }
        Ok((refusals, warnings))
    }
}
