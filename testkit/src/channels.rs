//! A release site laid out like Teleport's, with one repository channel per
//! major version, for apt and rpm, signed with one throwaway key and served
//! on loopback:
//!
//! ```text
//! apt/                       one apt repository, codename bookworm,
//!   dists/bookworm/stable/v15/...   components stable/v15 (15.4.2, 15.4.3)
//!   dists/bookworm/stable/v16/...   and stable/v16 (16.0.0)
//! rpm/stable/v15/            rpm-md repository: 15.4.2-1, 15.4.3-1
//! rpm/stable/v16/            rpm-md repository: 16.0.0-1
//! ```
//!
//! No `stable/v17` anywhere: a definition moved there fails to refresh.
//!
//! Every package is the fake agent ([`DebSpec::agent`], [`RpmSpec::agent`])
//! plus a configuration file [`AGENT_CONFFILE`] (a dpkg conffile, an rpm
//! `%config(noreplace)`) and an executable outside `bin` directories
//! ([`AGENT_HELPER`], mode 0755), so that integrity checks can tell
//! executables from configuration. rpm packages are signed.

use std::path::{Path, PathBuf};

use crate::aptrepo::AptRepo;
use crate::deb::{build_deb, DebSpec};
use crate::gpg::Key;
use crate::http::Server;
use crate::rpm::{build_rpm, sign_rpm, RpmRepo, RpmSpec};

/// The package name.
pub const AGENT: &str = "teleport-ent";
/// The agent's configuration file in every package of the site.
pub const AGENT_CONFFILE: &str = "/etc/default/teleport";
/// An executable outside any `bin` directory, in every package of the site.
pub const AGENT_HELPER: &str = "/usr/lib/teleport/teleport-helper";
/// The channels served, and their versions.
pub const CHANNELS: &[(&str, &[&str])] = &[
    ("stable/v15", &["15.4.2", "15.4.3"]),
    ("stable/v16", &["16.0.0"]),
];

/// The site: packages, repositories, the release key and the server.
pub struct ChannelSite {
    /// The release key, armored (what `signed-by=`, `gpgkey=` and `rpm
    /// --import` take).
    pub release_key: PathBuf,
    pub apt: AptRepo,
    debs: Vec<(String, PathBuf)>,
    rpms: Vec<(String, PathBuf)>,
    pub server: Server,
}

impl ChannelSite {
    /// Build everything below `dir` (emptied first) and serve `dir/site`.
    pub fn build(dir: &Path) -> ChannelSite {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        // The key lives only while the site is built: dropping it ends its
        // gpg-agent. Its home is short-lived and short (gpg-agent's socket
        // path must fit in 108 bytes, which a deep `dir` may not allow).
        let keys = tempfile::tempdir().expect("key directory");
        let key = Key::generate(keys.path(), "Teleport test release <release@example.com>");
        let release_key = dir.join("teleport-release-key.asc");
        key.export_armored(&release_key);
        let conf = |v: &str| format!("# teleport-ent {v}\nTELEPORT_ARGS=\"\"\n").into_bytes();

        let site = dir.join("site");
        let mut debs = Vec::new();
        let mut rpms = Vec::new();
        let mut apt_components: Vec<(String, Vec<PathBuf>)> = Vec::new();
        for (channel, versions) in CHANNELS {
            let mut chan_debs = Vec::new();
            let mut chan_rpms = Vec::new();
            for v in *versions {
                let helper = (
                    AGENT_HELPER.to_string(),
                    format!("#!/bin/sh\necho helper {v}\n").into_bytes(),
                    0o755,
                );
                let mut deb = DebSpec::agent(AGENT, v).with_conffile(AGENT_CONFFILE, &conf(v));
                deb.files.push(helper.clone());
                let mut rpm = RpmSpec::agent(AGENT, v).with_config_file(AGENT_CONFFILE, &conf(v));
                rpm.files.push(helper);
                let deb = build_deb(&deb, &dir.join("build/deb"));
                let rpm = build_rpm(&rpm, &dir.join("build/rpm"));
                sign_rpm(&key, &rpm);
                chan_debs.push(deb.clone());
                chan_rpms.push(rpm.clone());
                debs.push((v.to_string(), deb));
                rpms.push((v.to_string(), rpm));
            }
            RpmRepo::build(&site.join("rpm").join(channel), &chan_rpms, Some(&key));
            apt_components.push((channel.to_string(), chan_debs));
        }
        let apt = AptRepo::build_multi(&site.join("apt"), "bookworm", &apt_components, Some(&key));
        drop(key);
        let server = Server::start(&site);
        ChannelSite {
            release_key,
            apt,
            debs,
            rpms,
            server,
        }
    }

    /// The apt repository's URL (`deb [signed-by=...] <url> bookworm stable/v15`).
    pub fn apt_url(&self) -> String {
        format!("{}/apt/", self.server.url())
    }

    /// The baseurl of an rpm channel, e.g. `rpm_url("stable/v15")`; any
    /// channel name, served or not.
    pub fn rpm_url(&self, channel: &str) -> String {
        format!("{}/rpm/{channel}/", self.server.url())
    }

    /// The .deb of `version`.
    pub fn deb(&self, version: &str) -> &Path {
        &self
            .debs
            .iter()
            .find(|(v, _)| v == version)
            .unwrap_or_else(|| panic!("no deb {version}"))
            .1
    }

    /// The .rpm of `version`.
    pub fn rpm(&self, version: &str) -> &Path {
        &self
            .rpms
            .iter()
            .find(|(v, _)| v == version)
            .unwrap_or_else(|| panic!("no rpm {version}"))
            .1
    }
}
