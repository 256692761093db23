//! FleetLock rollout control (optional, off by default): before the first
//! change of a non-critical update the run takes a slot of a fleet-wide
//! semaphore served by a FleetLock server (airlock over etcd, as Zincati
//! uses), and gives it back only once the new version verified healthy. A
//! host whose update was rolled back keeps its slot, so a broken release
//! stops spreading once the group's slots are used up.
//!
//! Settings: `fleet-lock` (the server's base URL, `https://...`; plain
//! `http://` only for a loopback host with `insecure`, as the version
//! server) and `fleet-lock-group` (default `default`). The host's id is
//! [`id::host_id`] (never the raw machine id).

pub mod client;
pub mod id;
pub mod report;
pub mod retry;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::AppError;

pub const DEFAULT_GROUP: &str = "default";

/// The validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Ends with `/` (the operations are joined to it).
    pub base: reqwest::Url,
    pub group: String,
    /// `fleet-lock-id`: this host's id, instead of the derived one.
    pub id: Option<String>,
}

/// A slot this host keeps (the state file and `status --json` key
/// `fleet_lock`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Kept {
    pub group: String,
    pub id: String,
    /// Unix seconds since when the slot is kept.
    pub since: i64,
    /// Why it is kept (the rolled-back version and its failure).
    pub why: String,
}

/// A group and an id: where a slot is (or is not) held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlotId {
    pub group: String,
    pub id: String,
}

/// What this host's record says of its slot, for the current group and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRecord {
    /// It keeps one (after a rollback, or a release the server missed).
    Kept,
    /// The lock server was last told it holds none.
    Clear,
    /// No record: a new or re-imaged host, a lost state file, a changed
    /// id or group. The protocol's client starts by releasing.
    Unknown,
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

/// The `fleet-lock` value as a base URL.
pub fn parse_url(raw: &str, insecure: bool) -> Result<reqwest::Url, String> {
    if raw.len() > 512 {
        return Err("the URL is too long".into());
    }
    let url = reqwest::Url::parse(raw).map_err(|e| {
        format!("{raw:?} is not a URL (write it as https://host[:port][/path]): {e}")
    })?;
    let host = url.host_str().unwrap_or("").to_string();
    if host.is_empty() {
        return Err(format!("{raw:?} has no host"));
    }
    match url.scheme() {
        "https" => {}
        "http" if insecure && is_loopback(&host) => {}
        "http" if is_loopback(&host) => {
            return Err(format!(
                "{raw:?}: plain http needs insecure=yes (loopback only); otherwise use https"
            ))
        }
        "http" => {
            return Err(format!(
                "{raw:?}: plain http is honoured only for localhost, 127.0.0.1 or [::1] with insecure=yes; use https"
            ))
        }
        s => return Err(format!("{raw:?}: scheme {s} is not https")),
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "{raw:?} must not hold credentials, a query or a fragment"
        ));
    }
    let mut url = url;
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// A group label as the protocol defines it and Zincati checks it
/// (`^[a-zA-Z0-9.-]+$`, `validate_group_label` in Zincati's
/// `src/identity/mod.rs`): no length limit there; the file's own read cap
/// bounds it here.
pub fn valid_group(g: &str) -> bool {
    !g.is_empty()
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// The longest `fleet-lock-id`: a DNS name's 253 characters (a host name
/// is the override the protocol suggests: "node name or UUID").
pub const MAX_ID: usize = 253;

/// A `fleet-lock-id` value: the protocol's id is any non-empty,
/// case-sensitive label; this takes letters, digits, `.`, `_`, `:` and `-`
/// (a host name, a UUID), at most [`MAX_ID`] characters.
pub fn parse_id(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > MAX_ID {
        return Err(format!("expected 1 to {MAX_ID} characters"));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(format!(
            "{v:?}: expected letters, digits, '.', '_', ':' and '-' (a host name or a UUID)"
        ));
    }
    Ok(v.to_string())
}

/// The settings, `None` when `fleet-lock` is not set.
pub fn settings(config: &Config) -> Result<Option<Settings>, AppError> {
    let Some(raw) = &config.fleet_lock else {
        if let Some(g) = &config.fleet_lock_group {
            tracing::warn!(group = %g, "fleet-lock-group is set but fleet-lock is not: no rollout control");
        }
        return Ok(None);
    };
    let base = parse_url(raw, config.insecure).map_err(|message| AppError::Config {
        file: config.dir.join("fleet-lock"),
        message,
    })?;
    let group = config
        .fleet_lock_group
        .clone()
        .unwrap_or_else(|| DEFAULT_GROUP.into());
    if !valid_group(&group) {
        return Err(AppError::Config {
            file: config.dir.join("fleet-lock-group"),
            message: format!("{group:?}: expected letters, digits, '.' and '-'"),
        });
    }
    Ok(Some(Settings {
        base,
        group,
        id: config.fleet_lock_id.clone(),
    }))
}

/// The fleet's record (`fleet-report`) and the halt rule, `None` when
/// `fleet-report` is not set (or `fleet-lock` is not: logged).
pub fn report_settings(
    config: &Config,
) -> Result<Option<(reqwest::Url, report::HaltRule)>, AppError> {
    let Some(raw) = &config.fleet_report else {
        return Ok(None);
    };
    let base = parse_url(raw, config.insecure).map_err(|message| AppError::Config {
        file: config.dir.join("fleet-report"),
        message,
    })?;
    if config.fleet_lock.is_none() {
        tracing::warn!(
            "fleet-report is set but fleet-lock is not: no rollout control, nothing recorded"
        );
        return Ok(None);
    }
    let d = report::HaltRule::default();
    Ok(Some((
        base,
        report::HaltRule {
            rate: config.fleet_halt_rate.unwrap_or(d.rate),
            min_sample: config.fleet_halt_min_sample.unwrap_or(d.min_sample),
        },
    )))
}

/// This host's id: `fleet-lock-id`, else derived from the machine id file
/// `machine_id` ([`id::host_id`]).
pub fn host_id(s: &Settings, machine_id: &std::path::Path) -> Result<String, AppError> {
    if let Some(id) = &s.id {
        return Ok(id.clone());
    }
    id::host_id(machine_id).map_err(|message| AppError::Config {
        file: machine_id.to_path_buf(),
        message: format!("the FleetLock host id comes from it (or set fleet-lock-id): {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("https://lock.example.com", false).unwrap();
        assert_eq!(
            u.join("v1/pre-reboot").unwrap().as_str(),
            "https://lock.example.com/v1/pre-reboot"
        );
        let u = parse_url("https://lock.example.com:8443/fleet", false).unwrap();
        assert_eq!(
            u.join("v1/steady-state").unwrap().as_str(),
            "https://lock.example.com:8443/fleet/v1/steady-state"
        );
        assert!(parse_url("http://127.0.0.1:9/", true).is_ok());
        for (bad, insecure) in [
            ("http://127.0.0.1:9/", false),
            ("http://lock.example.com/", true),
            ("ftp://lock.example.com/", false),
            ("https://u:p@lock.example.com/", false),
            ("https://lock.example.com/?x=1", false),
            ("lock.example.com", false),
        ] {
            assert!(parse_url(bad, insecure).is_err(), "{bad}");
        }
        assert!(valid_group("default") && valid_group("eu-west.1"));
        assert!(!valid_group("") && !valid_group("a b") && !valid_group("a_b"));
        assert!(
            valid_group(&"a".repeat(65)),
            "no length limit in the protocol"
        );
        assert_eq!(
            parse_id("web-17.example.com").unwrap(),
            "web-17.example.com"
        );
        assert!(parse_id("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").is_ok());
        assert!(parse_id(&"a".repeat(253)).is_ok());
        for bad in ["", "a b", "a/b", "é", &"a".repeat(254)] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
