//! Part of `tests/rows.rs` (see there): the package managers, driven
//! inside the container.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pm {
    Apt,
    Dnf,
    Zypper,
}

pub(crate) const APT_KEYRING: &str = "/usr/share/keyrings/teleport-archive-keyring.asc";
pub(crate) const RPM_KEY: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-teleport";

impl Pm {
    pub(crate) fn repo_file(self) -> &'static str {
        match self {
            Pm::Apt => "/etc/apt/sources.list.d/teleport.list",
            Pm::Dnf => "/etc/yum.repos.d/teleport.repo",
            Pm::Zypper => "/etc/zypp/repos.d/teleport.repo",
        }
    }

    /// The `installer` file, or `None` to let the updater detect it (apt on
    /// Debian's os-release: detection is exercised in the apt rows). The
    /// rpm images are Debian underneath, so their os-release says Debian:
    /// they name their package manager, as the README documents.
    pub(crate) fn installer(self) -> Option<&'static str> {
        match self {
            Pm::Apt => None,
            Pm::Dnf => Some("dnf"),
            Pm::Zypper => Some("zypper"),
        }
    }

    /// Teleport's repository as its docs set it up, served on loopback.
    pub(crate) fn configure(self, c: &Container, fx: &Fixtures, url: &str) -> Result<(), String> {
        let key = std::fs::read(&fx.key_asc).map_err(|e| e.to_string())?;
        match self {
            Pm::Apt => {
                c.write(APT_KEYRING, key)?;
                c.write(
                    self.repo_file(),
                    format!("deb [signed-by={APT_KEYRING}] {url} {APT_SUITE} {APT_COMPONENT}\n"),
                )
            }
            Pm::Dnf | Pm::Zypper => {
                c.write(RPM_KEY, key)?;
                let mut settings = vec![
                    ("gpgcheck", "1"),
                    ("repo_gpgcheck", "1"),
                    ("gpgkey", "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-teleport"),
                ];
                if self == Pm::Zypper {
                    // zypper never imports a key itself: the release key is
                    // imported beforehand, as Teleport's docs do.
                    settings.extend([("autorefresh", "0"), ("pkg_gpgcheck", "1")]);
                    c.ok(&["rpm", "--import", RPM_KEY])?;
                }
                c.write(
                    self.repo_file(),
                    testkit::rpm::RpmRepo::repo_file("teleport", url, &settings),
                )
            }
        }
    }

    pub(crate) fn run_all(c: &Container, cmds: &[&[&str]]) -> Result<(), String> {
        for cmd in cmds {
            c.ok(cmd)?;
        }
        Ok(())
    }

    pub(crate) fn install_agent(self, c: &Container, version: &str) -> Result<(), String> {
        match self {
            Pm::Apt => Pm::run_all(
                c,
                &[
                    &["apt-get", "update", "-q"],
                    &[
                        "apt-get",
                        "install",
                        "-y",
                        "-q",
                        &format!("{AGENT}={version}"),
                    ],
                ],
            ),
            Pm::Dnf => Pm::run_all(
                c,
                &[&["dnf", "-y", "install", &format!("{AGENT}-{version}")]],
            ),
            Pm::Zypper => Pm::run_all(
                c,
                &[
                    &["zypper", "-n", "refresh"],
                    &["zypper", "-n", "install", &format!("{AGENT}={version}")],
                ],
            ),
        }
    }

    pub(crate) fn install_updater(self, c: &Container) -> Result<(), String> {
        match self {
            Pm::Apt => Pm::run_all(c, &[&["apt-get", "install", "-y", "-q", UPDATER]]),
            Pm::Dnf => Pm::run_all(c, &[&["dnf", "-y", "install", UPDATER]]),
            Pm::Zypper => Pm::run_all(c, &[&["zypper", "-n", "install", UPDATER]]),
        }
    }

    /// What an operator's routine upgrade of the whole host runs.
    pub(crate) fn routine_upgrade(self, c: &Container) -> Result<(), String> {
        match self {
            Pm::Apt => Pm::run_all(
                c,
                &[
                    &["apt-get", "update", "-q"],
                    &["apt-get", "upgrade", "-y", "-q"],
                ],
            ),
            Pm::Dnf => Pm::run_all(c, &[&["dnf", "-y", "upgrade", "--refresh"]]),
            Pm::Zypper => Pm::run_all(
                c,
                &[&["zypper", "-n", "refresh"], &["zypper", "-n", "update"]],
            ),
        }
    }

    pub(crate) fn remove_updater(self, c: &Container) -> Result<(), String> {
        match self {
            Pm::Apt => Pm::run_all(c, &[&["apt-get", "remove", "-y", "-q", UPDATER]]),
            Pm::Dnf => Pm::run_all(c, &[&["dnf", "-y", "remove", UPDATER]]),
            Pm::Zypper => Pm::run_all(c, &[&["zypper", "-n", "remove", UPDATER]]),
        }
    }

    /// The installed upstream version of `pkg` (no Debian revision, no rpm
    /// release), from the package database.
    pub(crate) fn installed(self, c: &Container, pkg: &str) -> Result<Option<String>, String> {
        match self {
            Pm::Apt => {
                let o = c.exec(&["dpkg-query", "-W", "-f=${db:Status-Abbrev}|${Version}", pkg])?;
                Ok(o.stdout
                    .split_once('|')
                    // "ii " or "hi " (held): the second letter is the state.
                    .filter(|(status, _)| status.as_bytes().get(1) == Some(&b'i'))
                    // Without the epoch (the updater's 1:), as rpm's %{VERSION}.
                    .map(|(_, v)| {
                        let v = v.trim();
                        v.split_once(':').map_or(v, |x| x.1).to_string()
                    }))
            }
            Pm::Dnf | Pm::Zypper => {
                let o = c.exec(&["rpm", "-q", "--qf", "%{VERSION}", pkg])?;
                Ok(o.ok().then(|| o.stdout.trim().to_string()))
            }
        }
    }

    /// Is the agent held (apt-mark hold; dnf exclude=/versionlock; zypper
    /// lock)?
    pub(crate) fn held(self, c: &Container) -> Result<bool, String> {
        Ok(match self {
            Pm::Apt => c
                .ok(&["apt-mark", "showhold"])?
                .lines()
                .any(|l| l.trim() == AGENT),
            Pm::Dnf => {
                let repo = c.read(self.repo_file()).unwrap_or_default();
                let excluded = repo
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .any(|(k, v)| {
                        k.trim() == "exclude" && v.split([' ', ',']).any(|w| w.trim() == AGENT)
                    });
                let locked = c
                    .exec(&["dnf", "-q", "-C", "versionlock", "list"])
                    .map(|o| o.ok() && o.stdout.contains(AGENT))
                    .unwrap_or(false);
                excluded || locked
            }
            Pm::Zypper => c.ok(&["zypper", "-n", "locks"])?.contains(AGENT),
        })
    }
}
