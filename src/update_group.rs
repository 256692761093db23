//! The cluster's update groups (Managed Updates v2, RFD 184): this host's
//! group name, sent to the proxy as `/webapi/find?group=<name>`, and what
//! `status` shows of the cluster's answer for it.
//!
//! What a real proxy does with the group (Teleport's `lib/web/apiserver.go`
//! `find` handler and `lib/web/autoupdate_common.go`): it answers
//! `auto_update.agent_version` and `agent_auto_update` for the group from
//! the `autoupdate_agent_rollout` (the version: the rollout's start or
//! target version by the group's state; update now: the group is active,
//! or rolled back, or done under halt-on-error); without a rollout, from
//! the RFD 109 channels and the cluster's maintenance window. A group the
//! rollout does not know gets the answer of the *default* group, the last
//! one of the schedule (`getGroup`); a channel it does not know, the
//! default channel. No error either way: an unknown group cannot be told
//! from a known one in the answer, and a misspelt name makes the host
//! update with the last group (never before the groups ahead of it).

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::AppError;

/// The longest group name accepted here.
pub const MAX_LEN: usize = 64;

/// Validate an update group name.
///
/// Teleport itself only requires a group of `autoupdate_config` to be
/// non-empty and unique (`api/types/autoupdate/config.go`,
/// `checkAgentSchedules`), and `teleport-update enable --group` takes any
/// string (`tool/teleport-update/main.go`). This updater is stricter, on
/// purpose: the name is read from a file, sent in a URL and written to
/// logs, so it is 1 to [`MAX_LEN`] ASCII letters, digits, `.`, `_` and
/// `-`, starting with a letter or digit (Teleport's documented examples
/// are `dev`, `staging`, `prod`). A group named otherwise in the cluster
/// cannot be used from this updater. The cap is this updater's, not
/// Teleport's.
pub fn parse(v: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if v.is_empty() || v.len() > MAX_LEN {
        return Err(format!(
            "{v:?}: an update group name is 1 to {MAX_LEN} characters"
        ));
    }
    if !v.chars().all(ok_char) || !v.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{v:?}: expected ASCII letters, digits, '.', '_' and '-', starting with a letter or digit (the name of a group of the cluster's autoupdate_config, e.g. prod)"
        ));
    }
    Ok(v.to_string())
}

/// The `spec.group` of a Managed Updates v2 `update.yaml`, when it has
/// one: `None` when absent or empty, else the value (unquoted), still to
/// be validated with [`parse`]. The file is read line by line as the v2
/// stand-down reads it: a `group:` key indented under `spec:`.
pub fn from_v2_yaml(text: &str) -> Option<String> {
    let mut in_spec = false;
    for line in text.lines() {
        if !line.starts_with([' ', '\t']) {
            in_spec = line.trim_end() == "spec:";
            continue;
        }
        if !in_spec {
            continue;
        }
        if let Some(v) = line.trim().strip_prefix("group:") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v);
            return (!v.is_empty()).then(|| v.to_string());
        }
    }
    None
}

/// This host's update group and where it comes from: the `update-group`
/// setting wins; when it is unset and v2's `update.yaml` is present but
/// disabled (so this updater, not `teleport-update`, manages the agent),
/// that file's `spec.group`. An invalid name there is refused like one in
/// the setting (exit 2, naming the file); the setting overrides it.
pub fn resolve(
    config: &Config,
    system: &backends::System,
) -> Result<Option<(String, &'static str)>, AppError> {
    if let Some(g) = &config.update_group {
        return Ok(Some((g.clone(), "update-group")));
    }
    if crate::run::managed_by_v2(system).is_some() {
        return Ok(None);
    }
    let file = system.path(crate::run::V2_CONFIG);
    let text = crate::fsread::read_text(&file, crate::fsread::CONFIG_CAP)
        .ok()
        .flatten();
    let Some(raw) = text.as_deref().and_then(from_v2_yaml) else {
        return Ok(None);
    };
    let group = parse(&raw).map_err(|m| AppError::Config {
        file: file.clone(),
        message: format!(
            "spec.group {m}; set update-group in the configuration directory to override it"
        ),
    })?;
    Ok(Some((group, "update.yaml")))
}

/// What the cluster said for the group on the last run, for `status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GroupAnswer {
    /// The group sent as `?group=`.
    pub group: String,
    /// Where the name came from: the `update-group` setting or v2's
    /// `update.yaml`.
    pub from: String,
    /// Whether the proxy answered with `auto_update` (the group's answer
    /// decided); `false`: an older proxy (404, or no `auto_update`), and
    /// `/version` decided as without a group.
    pub answered: bool,
    /// The group's `agent_version`.
    pub version: Option<String>,
    /// The group's `agent_auto_update`: the cluster's rollout has reached
    /// the group (its window is open).
    pub update_now: Option<bool>,
    /// Unix seconds of the run that asked.
    pub asked: i64,
}

impl GroupAnswer {
    /// One line for `status`.
    pub fn describe(&self) -> String {
        let when = crate::schedule::rfc3339(self.asked);
        if !self.answered {
            return format!(
                "{} (from {}): the proxy gave no answer for groups at {when} (older proxy); /version decided",
                self.group, self.from
            );
        }
        format!(
            "{} (from {}): the cluster said {}, update now: {} (asked {when})",
            self.group,
            self.from,
            self.version.as_deref().unwrap_or("-"),
            if self.update_now == Some(true) {
                "yes"
            } else {
                "no"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "prod",
            "dev",
            "staging-eu.1",
            "a",
            "Group_2",
            &"x".repeat(64),
        ] {
            assert_eq!(parse(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "",
            "-prod",
            ".x",
            "_x",
            "prod east",
            "prod&group=dev",
            "pröd",
            "a/b",
            "a\tb",
            "a\u{0}",
            &"x".repeat(65),
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn v2_yaml_group() {
        let y = "version: v1\nkind: update_config\nspec:\n  proxy: p.example.com:443\n  group: staging\n  enabled: false\nstatus:\n  group: nope\n";
        assert_eq!(from_v2_yaml(y).as_deref(), Some("staging"));
        let q = "spec:\n  group: \"prod\"\n";
        assert_eq!(from_v2_yaml(q).as_deref(), Some("prod"));
        assert_eq!(from_v2_yaml("spec:\n  group: ''\n"), None);
        assert_eq!(from_v2_yaml("spec:\n  enabled: false\n"), None);
        assert_eq!(from_v2_yaml("group: top\nspec:\n  path: /x\n"), None);
        assert_eq!(
            from_v2_yaml("spec:\n  group: a b\n").map(|g| parse(&g).is_err()),
            Some(true)
        );
    }
}
