//! The cluster-compatibility guard. Teleport's rule: an agent must never
//! run a newer version than its Proxy or Auth Service, nor more than one
//! major version below them. A version server that advertises a target
//! past the cluster (a self-hosted channel forwarding to the global one, a
//! static file set one release too far) would break every agent at once,
//! so the target is checked against the cluster's own version before it
//! is installed.
//!
//! The cluster's version is the proxy's `server_version`, from
//! `/webapi/find` (already asked when the endpoint is a proxy's channel
//! path), else `/webapi/ping`. The proxy is the endpoint's host when the
//! endpoint is a proxy path, else `proxy_server`, `auth_server` or the
//! first of `auth_servers` in the agent's `/etc/teleport.yaml`.
//!
//! When the version cannot be learned the guard does not apply and says
//! why; `cluster-guard` = `required` makes that a refusal. The installed
//! agent then stands in for the cluster below (`far_below_installed`): an
//! agent that works is at most one major version below its cluster, so a
//! target more than one major version below the installed agent (a
//! `/version` of `0.0.1`, below anything published) can only break it, and
//! is refused (exit 3) before anything changes.

use std::fmt;

use crate::target::TargetVersion;

/// The `cluster-guard` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuardMode {
    /// The default: refuse an incompatible target; proceed (and say why)
    /// when the cluster's version cannot be learned.
    #[default]
    BestEffort,
    /// Also refuse when the cluster's version cannot be learned.
    Required,
}

impl GuardMode {
    pub fn parse(v: &str) -> Result<GuardMode, String> {
        match v {
            "best-effort" => Ok(GuardMode::BestEffort),
            "required" => Ok(GuardMode::Required),
            _ => Err(format!("expected best-effort or required, got {v:?}")),
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            GuardMode::BestEffort => "best-effort",
            GuardMode::Required => "required",
        }
    }
}

/// The rule, as refusals quote it.
pub const RULE: &str = "an agent must never run a newer version than its cluster's Proxy and Auth Service, nor more than one major version below them";

/// The guard's verdict on a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Compatible {
        target: TargetVersion,
        cluster: TargetVersion,
    },
    /// The target is newer than the cluster.
    AboveCluster {
        target: TargetVersion,
        cluster: TargetVersion,
    },
    /// The target is more than one major version below the cluster.
    TooFarBelow {
        target: TargetVersion,
        cluster: TargetVersion,
    },
    /// The cluster's version could not be learned (why).
    Unknown(String),
}

/// The verdict on `target` given the cluster's version (or why it is not
/// known). Pure.
pub fn verdict(target: &TargetVersion, cluster: Result<&TargetVersion, &str>) -> Verdict {
    let cluster = match cluster {
        Ok(c) => c.clone(),
        Err(why) => return Verdict::Unknown(why.to_string()),
    };
    let target = target.clone();
    if target > cluster {
        Verdict::AboveCluster { target, cluster }
    } else if cluster.major() > target.major() + 1 {
        Verdict::TooFarBelow { target, cluster }
    } else {
        Verdict::Compatible { target, cluster }
    }
}

impl Verdict {
    /// A word for `status` and the state file.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Compatible { .. } => "compatible",
            Verdict::AboveCluster { .. } => "above-cluster",
            Verdict::TooFarBelow { .. } => "too-far-below-cluster",
            Verdict::Unknown(_) => "unknown",
        }
    }

    pub fn cluster(&self) -> Option<&TargetVersion> {
        match self {
            Verdict::Compatible { cluster, .. }
            | Verdict::AboveCluster { cluster, .. }
            | Verdict::TooFarBelow { cluster, .. } => Some(cluster),
            Verdict::Unknown(_) => None,
        }
    }

    /// The refusal, when the target must not be installed under `mode`.
    pub fn refusal(&self, mode: GuardMode) -> Option<String> {
        match self {
            Verdict::Compatible { .. } => None,
            Verdict::Unknown(_) if mode == GuardMode::BestEffort => None,
            Verdict::Unknown(why) => Some(format!(
                "the cluster's version could not be learned ({why}), and cluster-guard is required: not updating until the cluster-compatibility guard can apply"
            )),
            _ => Some(format!("{self}: not updating")),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Compatible { target, cluster } => write!(
                f,
                "target {target} is compatible with the cluster's version {cluster}"
            ),
            Verdict::AboveCluster { target, cluster } => write!(
                f,
                "target {target} is newer than the cluster's version {cluster} ({RULE})"
            ),
            Verdict::TooFarBelow { target, cluster } => write!(
                f,
                "target {target} is more than one major version below the cluster's version {cluster} ({RULE})"
            ),
            Verdict::Unknown(why) => write!(
                f,
                "the cluster-compatibility guard could not apply: {why}"
            ),
        }
    }
}

/// The refusal of a target more than one major version below the
/// installed agent's version (its upstream part, `15.4.2` of `15.4.2-1`):
/// the installed agent's cluster is at least its own major, so such a
/// target breaks Teleport's rule whatever the cluster. `None` when the
/// installed version has no leading major number. Pure.
pub fn far_below_installed(target: &TargetVersion, installed: &str) -> Option<String> {
    let digits: String = installed
        .split(':')
        .next_back()
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let major: u64 = digits.parse().ok()?;
    (major > target.major().saturating_add(1)).then(|| {
        format!(
            "target {target} is more than one major version below the installed agent {installed}, and the cluster's version is not known: an agent that works is at most one major version below its cluster, so this target could only break it ({RULE}); not updating (check the version the channel publishes)"
        )
    })
}

/// Where the cluster's proxy is, from the agent's `teleport.yaml`:
/// (`key`, `host:port`) of `proxy_server`, else `auth_server`, else the
/// first of `auth_servers` (inline `[a, b]` or a `- a` list).
pub fn proxy_from_teleport_yaml(text: &str) -> Option<(&'static str, String)> {
    fn clean(v: &str) -> Option<String> {
        let v = v
            .split('#')
            .next()?
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        crate::verify::valid_addr(v).then(|| v.to_string())
    }
    let lines: Vec<&str> = text.lines().collect();
    let value = |key: &str| {
        lines.iter().find_map(|l| {
            l.trim()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(clean)
        })
    };
    if let Some(a) = value("proxy_server") {
        return Some(("proxy_server", a));
    }
    if let Some(a) = value("auth_server") {
        return Some(("auth_server", a));
    }
    let i = lines
        .iter()
        .position(|l| l.trim().starts_with("auth_servers:"))?;
    let rest = lines[i].trim().strip_prefix("auth_servers:")?.trim();
    if let Some(inner) = rest.strip_prefix('[') {
        let first = inner.trim_end_matches(']').split(',').next()?;
        return clean(first).map(|a| ("auth_servers", a));
    }
    lines[i + 1..]
        .iter()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with('-') || l.is_empty())
        .find_map(|l| l.strip_prefix('-').and_then(clean))
        .map(|a| ("auth_servers", a))
}

/// The `server_version` of a `/webapi/find` or `/webapi/ping` body:
/// `Ok(None)` when absent, `Err` when it is not a version.
pub fn server_version_of(body: &[u8]) -> Result<Option<TargetVersion>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(default)]
        server_version: String,
    }
    let Ok(doc) = serde_json::from_slice::<Doc>(body) else {
        return Ok(None);
    };
    if doc.server_version.is_empty() {
        return Ok(None);
    }
    TargetVersion::parse(&doc.server_version)
        .map(Some)
        .map_err(|e| format!("server_version: {e}"))
}

/// The agent's configuration file, as the target sees it.
pub const TELEPORT_YAML: &str = "/etc/teleport.yaml";

/// Learn the cluster's version: from the `/webapi/find` body the run
/// already has (a proxy endpoint), else by asking the proxy's
/// `/webapi/find` and `/webapi/ping`. `Err` says why it is unknown.
pub fn learn(
    system: &backends::System,
    endpoint: &crate::config::Endpoint,
    insecure: bool,
    client: &crate::client::Client,
    rt: &tokio::runtime::Runtime,
    find_body: Option<&[u8]>,
) -> Result<TargetVersion, String> {
    if endpoint.find_url(insecure).is_some() {
        if let Some(body) = find_body {
            if let Some(v) = server_version_of(body)? {
                tracing::debug!(cluster = %v, "the cluster's version from /webapi/find");
                return Ok(v);
            }
        }
        let base = endpoint.origin(insecure);
        return rt.block_on(client.cluster_version(&base, &["webapi/ping"]));
    }
    let yaml = system.path(TELEPORT_YAML);
    let text = crate::fsread::read_text(&yaml, crate::fsread::CONFIG_CAP)
        .map_err(|e| e.to_string())
        .and_then(|t| t.ok_or_else(|| "it does not exist".to_string()))
        .map_err(|e| {
            format!("the endpoint {endpoint} is a static version server, not a proxy's channel path, and {TELEPORT_YAML} cannot be read ({e}) to find the proxy")
        })?;
    let (key, addr) = proxy_from_teleport_yaml(&text).ok_or_else(|| {
        format!("the endpoint {endpoint} is a static version server, not a proxy's channel path, and {TELEPORT_YAML} names no proxy_server or auth_server as host:port")
    })?;
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    let scheme = if insecure && loopback {
        "http"
    } else {
        "https"
    };
    let base = format!("{scheme}://{addr}");
    tracing::debug!(proxy = %base, "asking the proxy named by {key} in {TELEPORT_YAML} for the cluster's version");
    rt.block_on(client.cluster_version(&base, &["webapi/find", "webapi/ping"]))
        .map_err(|e| format!("{key} {addr} in {TELEPORT_YAML}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> TargetVersion {
        TargetVersion::parse(s).unwrap()
    }

    /// (target, cluster or why unknown, verdict word, refused best-effort,
    /// refused required).
    type Row = (
        &'static str,
        Result<&'static str, &'static str>,
        &'static str,
        bool,
        bool,
    );

    #[test]
    fn verdict_table() {
        let rows: &[Row] = &[
            ("15.4.3", Ok("15.4.3"), "compatible", false, false),
            ("15.4.2", Ok("15.4.3"), "compatible", false, false),
            ("15.0.0", Ok("16.2.0"), "compatible", false, false),
            ("14.9.9", Ok("16.0.0"), "too-far-below-cluster", true, true),
            ("13.0.0", Ok("16.0.0"), "too-far-below-cluster", true, true),
            ("15.4.4", Ok("15.4.3"), "above-cluster", true, true),
            ("16.0.0", Ok("15.4.3"), "above-cluster", true, true),
            ("15.5.0", Ok("15.4.3"), "above-cluster", true, true),
            // A release is newer than its own pre-release.
            ("16.0.0", Ok("16.0.0-rc.1"), "above-cluster", true, true),
            ("16.0.0-rc.1", Ok("16.0.0"), "compatible", false, false),
            ("16.0.0", Err("proxy unreachable"), "unknown", false, true),
        ];
        for (target, cluster, word, best, req) in rows {
            let c = cluster.map(v);
            let verdict = verdict(&v(target), c.as_ref().map_err(|e| *e));
            assert_eq!(verdict.word(), *word, "{target} vs {cluster:?}");
            assert_eq!(
                verdict.refusal(GuardMode::BestEffort).is_some(),
                *best,
                "{target} vs {cluster:?}: best-effort"
            );
            assert_eq!(
                verdict.refusal(GuardMode::Required).is_some(),
                *req,
                "{target} vs {cluster:?}: required"
            );
            if let Some(r) = verdict.refusal(GuardMode::Required) {
                if let Ok(c) = cluster {
                    assert!(r.contains(target) && r.contains(c), "{r}");
                    assert!(r.contains(RULE), "{r}");
                }
            }
        }
    }

    #[test]
    fn far_below_the_installed_agent() {
        for (target, installed, refused) in [
            ("0.0.1", "15.4.2", true),
            ("13.4.0", "15.4.2-1", true),
            ("13.4.0", "1:15.4.2-1", true),
            ("14.0.0", "15.4.2", false),
            ("15.4.1", "15.4.2", false),
            ("16.0.0", "15.4.2", false),
            ("0.0.1", "1.0.0", false),
            ("0.0.1", "weird", false),
        ] {
            let r = far_below_installed(&v(target), installed);
            assert_eq!(r.is_some(), refused, "{target} vs {installed}");
            if let Some(r) = r {
                assert!(r.contains(target) && r.contains(installed), "{r}");
            }
        }
    }

    #[test]
    fn proxy_address_from_teleport_yaml() {
        for (yaml, want) in [
            (
                "version: v3\nteleport:\n  proxy_server: \"tele.example.com:443\" # x\n  auth_server: a:3025\n",
                Some(("proxy_server", "tele.example.com:443")),
            ),
            (
                "teleport:\n  auth_server: 10.0.0.1:3025\n",
                Some(("auth_server", "10.0.0.1:3025")),
            ),
            (
                "teleport:\n  auth_servers:\n    - tele.example.com:3080\n    - b:3025\n",
                Some(("auth_servers", "tele.example.com:3080")),
            ),
            (
                "teleport:\n  auth_servers: [\"p.example.com:443\", b:3025]\n",
                Some(("auth_servers", "p.example.com:443")),
            ),
            ("teleport:\n  proxy_server: \"\"\n", None),
            ("teleport:\n  nodename: x\n", None),
        ] {
            let got = proxy_from_teleport_yaml(yaml);
            assert_eq!(
                got.as_ref().map(|(k, a)| (*k, a.as_str())),
                want,
                "{yaml}"
            );
        }
    }

    #[test]
    fn server_versions() {
        assert_eq!(
            server_version_of(br#"{"server_version":"15.4.3","proxy":{}}"#),
            Ok(Some(v("15.4.3")))
        );
        assert_eq!(server_version_of(br#"{"proxy":{}}"#), Ok(None));
        assert_eq!(server_version_of(b"<html>"), Ok(None));
        assert!(server_version_of(br#"{"server_version":"latest"}"#).is_err());
    }
}
