//! The configuration directory (`/etc/teleport-upgrade.d/`): one value per
//! file, read exactly as v1 reads it (lines starting with `# ` and blank
//! lines ignored, surrounding whitespace trimmed), validated into types.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backends::{BackendKind, PkgName, System};

use crate::error::AppError;
use crate::pinning::Pins;

pub const DEFAULT_DIR: &str = "/etc/teleport-upgrade.d";
pub const ENV_DIR: &str = "TELEPORT_UPGRADE_CONFIG";

/// The Teleport agent packages, in detection order.
pub const AGENT_PACKAGES: &[&str] = &["teleport-ent-fips", "teleport-ent", "teleport"];

/// `installer`: a package manager, or `nop` (decide and report, never
/// install).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installer {
    Backend(BackendKind),
    Nop,
}

/// Where the version server is: `host[:port]/path`, no scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: Option<u16>,
    /// Starts with `/`, no trailing `/` (may be empty).
    pub path: String,
}

impl Endpoint {
    pub fn parse(raw: &str) -> Result<Endpoint, String> {
        let s = raw.strip_prefix("https://").unwrap_or(raw);
        if s.starts_with("http://") {
            return Err("write the endpoint without a scheme (host[:port]/path); plain http is chosen with `insecure`, for localhost only".into());
        }
        if s.contains("://") {
            return Err("write the endpoint without a scheme, as host[:port]/path".into());
        }
        if s.is_empty() || s.len() > 512 {
            return Err("the endpoint is empty or too long".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/:[]%".contains(c))
        {
            return Err(format!("{raw:?} holds characters an endpoint cannot have"));
        }
        if s.split('/').any(|seg| seg == ".." || seg == ".") {
            return Err(format!("{raw:?} has a relative path segment"));
        }
        let url = reqwest::Url::parse(&format!("https://{s}"))
            .map_err(|e| format!("{raw:?} is not host[:port]/path: {e}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("{raw:?} has no host"))?
            .to_string();
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(format!(
                "{raw:?} must not hold credentials, a query or a fragment"
            ));
        }
        let path = url.path().trim_end_matches('/').to_string();
        Ok(Endpoint {
            host,
            port: url.port(),
            path,
        })
    }

    pub fn is_loopback(&self) -> bool {
        matches!(
            self.host.as_str(),
            "localhost" | "127.0.0.1" | "[::1]" | "::1"
        )
    }

    /// The proxy's `/webapi/find` URL when the endpoint is a Teleport
    /// proxy's automatic-upgrades channel (`/v1/webapi/automaticupgrades/...`);
    /// `None` for other (static, self-hosted) version servers.
    pub fn find_url(&self, insecure: bool) -> Option<String> {
        if !self.path.starts_with("/v1/webapi/automaticupgrades/") {
            return None;
        }
        let scheme = if insecure { "http" } else { "https" };
        Some(match self.port {
            Some(p) => format!("{scheme}://{}:{p}/webapi/find", self.host),
            None => format!("{scheme}://{}/webapi/find", self.host),
        })
    }

    /// `scheme://host[:port]`, `https://` unless `insecure`.
    pub fn origin(&self, insecure: bool) -> String {
        let scheme = if insecure { "http" } else { "https" };
        match self.port {
            Some(p) => format!("{scheme}://{}:{p}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// The base URL, `https://` unless `insecure`.
    pub fn base_url(&self, insecure: bool) -> String {
        let scheme = if insecure { "http" } else { "https" };
        match self.port {
            Some(p) => format!("{scheme}://{}:{p}{}", self.host, self.path),
            None => format!("{scheme}://{}{}", self.host, self.path),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}{}", self.host, self.path),
            None => write!(f, "{}{}", self.host, self.path),
        }
    }
}

/// The validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory as a path on this machine.
    pub dir: PathBuf,
    pub endpoint: Option<Endpoint>,
    pub package: Option<PkgName>,
    pub installer: Option<Installer>,
    pub insecure: bool,
    pub debug: bool,
    /// New: an extra CA bundle (PEM) trusted for the version server.
    pub ca_file: Option<PathBuf>,
    /// New: the repository definition to use instead of finding it.
    pub source_file: Option<PathBuf>,
    /// New: how long to wait for the package manager's lock (seconds).
    pub lock_wait: Duration,
    /// New: the pinned Teleport release key fingerprints (`trusted-keys`).
    pub trusted_keys: Option<Pins>,
    /// New: where to write the Prometheus textfile (`metrics-dir`).
    pub metrics: Metrics,
    /// New: how long to wait for the agent to be healthy after an update
    /// before rolling back (`health-timeout`, seconds; 0 turns it off).
    pub health_timeout: Duration,
    /// New: the agent's diagnostic address (`diag-addr`, host:port) for
    /// `/readyz`; else read from /etc/teleport.yaml.
    pub diag_addr: Option<String>,
    /// New: how far apart two unhealthy observations must be for the second
    /// to count (`unhealthy-interval`, seconds, 0 to 3600; default 300).
    pub unhealthy_interval: Duration,
    /// New: the longest time between two full verifications of the agent's
    /// executables (`verify-interval`, seconds, 0 to 604800; 0 verifies in
    /// full every run; default 86400).
    pub verify_interval: Duration,
    /// New: the FleetLock server's base URL (`fleet-lock`), validated by
    /// [`crate::fleetlock::settings`].
    pub fleet_lock: Option<String>,
    /// New: the FleetLock group (`fleet-lock-group`, default `default`).
    pub fleet_lock_group: Option<String>,
    /// New: what happens when the cluster's version cannot be learned
    /// (`cluster-guard`: `best-effort`, the default, or `required`).
    pub cluster_guard: crate::cluster::GuardMode,
    /// v1's `restart-mode`: `reload` (the default) or `restart`.
    pub restart_mode: RestartMode,
    /// v1's `repository`: the apt list name
    /// (`sources.list.d/<repository>.list`) or the yum/zypper repo id.
    pub repository: Option<String>,
    /// New: how long after a run first sees the agent unhealthy the
    /// re-check runs (`recheck-delay`, seconds; 0 turns it off).
    pub recheck_delay: Duration,
    /// New: a routine update is not started when less than this is left
    /// of the current maintenance window (`window-margin`, seconds; at
    /// most a quarter of the window; 0 turns it off).
    pub window_margin: Duration,
}

/// `window-margin`'s default: a real agent package (200-500 MB) takes
/// minutes to download and install, and the restart must land inside the
/// window.
pub const DEFAULT_WINDOW_MARGIN: Duration = Duration::from_secs(300);

/// v1's `restart-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartMode {
    /// Reload a running agent (Teleport's graceful restart: open sessions
    /// are kept); critical and unhealthy updates still restart it.
    #[default]
    Reload,
    /// Always restart.
    Restart,
}

/// The `metrics-dir` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metrics {
    /// Not set: node_exporter's textfile directory when it exists.
    Default,
    /// `none`.
    Off,
    /// An absolute path (as the target system sees it).
    Dir(PathBuf),
}

/// Read one v1-style value: lines starting with `# ` and blank lines are
/// ignored; the rest must be a single line.
pub fn read_value(path: &Path) -> Result<Option<String>, AppError> {
    let text = match crate::fsread::read_text(path, crate::fsread::CONFIG_CAP) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(AppError::Config {
                file: path.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    let values: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("# ") && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    match values.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.to_string())),
        _ => Err(AppError::Config {
            file: path.to_path_buf(),
            message: format!("expected one value, found {} lines", values.len()),
        }),
    }
}

/// `trusted-keys`: several lines, unlike the one-value files.
fn read_pins(path: &Path) -> Result<Option<Pins>, AppError> {
    let err = |message: String| AppError::Config {
        file: path.to_path_buf(),
        message,
    };
    match crate::fsread::read_text(path, crate::fsread::CONFIG_CAP) {
        Ok(Some(text)) => Pins::parse(path, &text).map(Some).map_err(err),
        Ok(None) => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

fn yes_no(file: &Path, v: &str) -> Result<bool, AppError> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(AppError::Config {
            file: file.to_path_buf(),
            message: format!("expected yes or no, got {v:?}"),
        }),
    }
}

impl Config {
    /// The directory to read: `--config-dir`, else `$TELEPORT_UPGRADE_CONFIG`,
    /// else the default; resolved inside the system's root.
    pub fn locate(system: &System, flag: Option<&Path>, env: Option<&str>) -> PathBuf {
        let chosen = flag
            .map(Path::to_path_buf)
            .or_else(|| env.filter(|e| !e.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        if chosen.is_absolute() {
            system.path(chosen)
        } else {
            chosen
        }
    }

    pub fn load(dir: &Path) -> Result<Config, AppError> {
        let f = |name: &str| dir.join(name);
        let cfg_err = |name: &str, message: String| AppError::Config {
            file: f(name),
            message,
        };
        let endpoint = read_value(&f("endpoint"))?
            .map(|v| Endpoint::parse(&v).map_err(|m| cfg_err("endpoint", m)))
            .transpose()?;
        let package = read_value(&f("package"))?
            .map(|v| {
                if AGENT_PACKAGES.contains(&v.as_str()) {
                    Ok(PkgName::parse(&v).expect("known names are valid"))
                } else {
                    Err(cfg_err(
                        "package",
                        format!("{v:?} is not a Teleport agent package: expected teleport, teleport-ent or teleport-ent-fips"),
                    ))
                }
            })
            .transpose()?;
        let installer = read_value(&f("installer"))?
            .map(|v| {
                if v == "nop" {
                    Ok(Installer::Nop)
                } else {
                    v.parse::<BackendKind>()
                        .map(Installer::Backend)
                        .map_err(|m| cfg_err("installer", m))
                }
            })
            .transpose()?;
        let insecure = match read_value(&f("insecure"))? {
            Some(v) => yes_no(&f("insecure"), &v)?,
            None => false,
        };
        let debug = match read_value(&f("debug"))? {
            Some(v) => yes_no(&f("debug"), &v)?,
            None => false,
        };
        let path_value = |name: &str| -> Result<Option<PathBuf>, AppError> {
            read_value(&f(name))?
                .map(|v| {
                    let p = PathBuf::from(&v);
                    if p.is_absolute() {
                        Ok(p)
                    } else {
                        Err(cfg_err(name, format!("{v:?} must be an absolute path")))
                    }
                })
                .transpose()
        };
        let ca_file = path_value("ca-file")?;
        let source_file = path_value("source-file")?;
        let lock_wait = match read_value(&f("lock-timeout"))? {
            Some(v) => {
                Duration::from_secs(v.parse::<u64>().ok().filter(|s| *s <= 3600).ok_or_else(
                    || {
                        cfg_err(
                            "lock-timeout",
                            format!("expected seconds from 0 to 3600, got {v:?}"),
                        )
                    },
                )?)
            }
            None => Duration::from_secs(120),
        };
        let trusted_keys = read_pins(&f("trusted-keys"))?;
        let metrics = match read_value(&f("metrics-dir"))? {
            None => Metrics::Default,
            Some(v) if v == "none" => Metrics::Off,
            Some(v) if v.starts_with('/') => Metrics::Dir(PathBuf::from(v)),
            Some(v) => {
                return Err(cfg_err(
                    "metrics-dir",
                    format!("{v:?}: expected an absolute directory, or none"),
                ))
            }
        };
        let health_timeout = match read_value(&f("health-timeout"))? {
            Some(v) => {
                Duration::from_secs(v.parse::<u64>().ok().filter(|s| *s <= 3600).ok_or_else(
                    || {
                        cfg_err(
                            "health-timeout",
                            format!("expected seconds from 0 (off) to 3600, got {v:?}"),
                        )
                    },
                )?)
            }
            None => Duration::from_secs(300),
        };
        let diag_addr = read_value(&f("diag-addr"))?
            .map(|v| {
                if crate::verify::valid_addr(&v) {
                    Ok(v)
                } else {
                    Err(cfg_err(
                        "diag-addr",
                        format!("expected host:port of the agent's diagnostic endpoint, got {v:?}"),
                    ))
                }
            })
            .transpose()?;
        let unhealthy_interval = match read_value(&f("unhealthy-interval"))? {
            Some(v) => {
                Duration::from_secs(v.parse::<u64>().ok().filter(|s| *s <= 3600).ok_or_else(
                    || {
                        cfg_err(
                            "unhealthy-interval",
                            format!("expected seconds from 0 to 3600, got {v:?}"),
                        )
                    },
                )?)
            }
            None => crate::marker::DEFAULT_INTERVAL,
        };
        let verify_interval = match read_value(&f("verify-interval"))? {
            Some(v) => Duration::from_secs(
                v.parse::<u64>()
                    .ok()
                    .filter(|s| *s <= 7 * 86400)
                    .ok_or_else(|| {
                        cfg_err(
                            "verify-interval",
                            format!("expected seconds from 0 to 604800, got {v:?}"),
                        )
                    })?,
            ),
            None => crate::integrity_cache::DEFAULT_INTERVAL,
        };
        let fleet_lock = read_value(&f("fleet-lock"))?;
        let fleet_lock_group = read_value(&f("fleet-lock-group"))?;
        let cluster_guard = read_value(&f("cluster-guard"))?
            .map(|v| crate::cluster::GuardMode::parse(&v).map_err(|m| cfg_err("cluster-guard", m)))
            .transpose()?
            .unwrap_or_default();
        let restart_mode = match read_value(&f("restart-mode"))?.as_deref() {
            None | Some("reload") => RestartMode::Reload,
            Some("restart") => RestartMode::Restart,
            Some(v) => {
                return Err(cfg_err(
                    "restart-mode",
                    format!("expected reload or restart, got {v:?}"),
                ))
            }
        };
        let repository = read_value(&f("repository"))?
            .map(|v| {
                if !v.is_empty()
                    && v.len() <= 100
                    && !v.starts_with(['.', '-'])
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
                {
                    Ok(v)
                } else {
                    Err(cfg_err(
                        "repository",
                        format!("{v:?} is not a repository name (letters, digits, . _ : -)"),
                    ))
                }
            })
            .transpose()?;
        if repository.is_some() && source_file.is_some() {
            return Err(cfg_err(
                "repository",
                "set either repository or source-file, not both".into(),
            ));
        }
        let recheck_delay = match read_value(&f("recheck-delay"))? {
            Some(v) => Duration::from_secs(
                v.parse::<u64>()
                    .ok()
                    .filter(|s| *s == 0 || (60..=3600).contains(s))
                    .ok_or_else(|| {
                        cfg_err(
                            "recheck-delay",
                            format!("expected seconds from 60 to 3600, or 0 (off), got {v:?}"),
                        )
                    })?,
            ),
            None => Duration::from_secs(300),
        };
        let window_margin = match read_value(&f("window-margin"))? {
            Some(v) => {
                Duration::from_secs(v.parse::<u64>().ok().filter(|s| *s <= 3600).ok_or_else(
                    || {
                        cfg_err(
                            "window-margin",
                            format!("expected seconds from 0 (off) to 3600, got {v:?}"),
                        )
                    },
                )?)
            }
            None => DEFAULT_WINDOW_MARGIN,
        };
        Ok(Config {
            dir: dir.to_path_buf(),
            unhealthy_interval,
            verify_interval,
            endpoint,
            package,
            installer,
            insecure,
            debug,
            ca_file,
            source_file,
            lock_wait,
            trusted_keys,
            metrics,
            health_timeout,
            diag_addr,
            fleet_lock,
            fleet_lock_group,
            cluster_guard,
            restart_mode,
            repository,
            recheck_delay,
            window_margin,
        })
    }

    /// The endpoint and scheme to use, refusing plain http to anything but
    /// the loopback host.
    pub fn version_server(&self) -> Result<(Endpoint, bool), AppError> {
        let ep = self.endpoint.clone().ok_or_else(|| AppError::Config {
            file: self.dir.join("endpoint"),
            message: "no version server is configured: write host[:port]/path into it, e.g. teleport.example.com:443/v1/webapi/automaticupgrades/channel/default".into(),
        })?;
        if self.insecure && !ep.is_loopback() {
            return Err(AppError::Refused(format!(
                "{}: insecure=yes is honoured only for localhost, 127.0.0.1 or [::1], not {}; remove it and serve the version over https",
                self.dir.join("insecure").display(),
                ep.host
            )));
        }
        Ok((ep, self.insecure))
    }

    pub fn marker_path(&self) -> PathBuf {
        self.dir.join("mark-unhealthy")
    }

    pub fn schedule_path(&self) -> PathBuf {
        self.dir.join("schedule")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e =
            Endpoint::parse("teleport.example.com:443/v1/webapi/automaticupgrades/channel/default")
                .unwrap();
        assert_eq!(e.host, "teleport.example.com");
        assert_eq!(e.port, None, "443 is https's default");
        assert_eq!(
            e.base_url(false),
            "https://teleport.example.com/v1/webapi/automaticupgrades/channel/default"
        );
        let e = Endpoint::parse("127.0.0.1:8080/v1/webapi/automaticupgrades/channel/stable/cloud/")
            .unwrap();
        assert_eq!(
            e.base_url(true),
            "http://127.0.0.1:8080/v1/webapi/automaticupgrades/channel/stable/cloud"
        );
        assert!(e.is_loopback());
        assert!(Endpoint::parse("https://example.com/x").is_ok());
        assert!(Endpoint::parse("[::1]:9/x").unwrap().is_loopback());
        for bad in [
            "",
            "http://example.com/x",
            "ftp://example.com",
            "user:pw@example.com/x",
            "example.com/x?y=1",
            "example.com/x#f",
            "example.com/../etc",
            "example.com x",
            "example.com/$(id)",
            "example.com:99999/x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_read_as_v1_reads_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("endpoint");
        std::fs::write(&p, "# the proxy\n\n  example.com/v1  \n").unwrap();
        assert_eq!(read_value(&p).unwrap().as_deref(), Some("example.com/v1"));
        std::fs::write(&p, "# only a comment\n").unwrap();
        assert_eq!(read_value(&p).unwrap(), None);
        std::fs::write(&p, "a\nb\n").unwrap();
        assert!(read_value(&p).is_err());
        assert_eq!(read_value(&d.path().join("absent")).unwrap(), None);
    }

    #[test]
    fn a_v1_directory_loads() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, v: &str| std::fs::write(d.path().join(n), v).unwrap();
        w(
            "endpoint",
            "proxy.example.com:443/v1/webapi/automaticupgrades/channel/default\n",
        );
        w("package", "teleport-ent\n");
        w("installer", "apt\n");
        w("schedule", "# generated by teleport\n1 2\n");
        w("mark-unhealthy", "");
        w("metadata", "{\"uuid\":\"x\"}");
        let c = Config::load(d.path()).unwrap();
        assert_eq!(c.package.unwrap().as_str(), "teleport-ent");
        assert_eq!(c.installer, Some(Installer::Backend(BackendKind::Apt)));
        assert!(!c.insecure);
        assert_eq!(c.lock_wait, Duration::from_secs(120));
    }

    #[test]
    fn bad_values_name_their_file() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, v: &str| std::fs::write(d.path().join(n), v).unwrap();
        for (file, value) in [
            ("package", "nginx"),
            ("installer", "pacman"),
            ("insecure", "maybe"),
            ("endpoint", "http://x/y"),
            ("ca-file", "relative.pem"),
            ("lock-timeout", "forever"),
        ] {
            w(file, value);
            let err = Config::load(d.path()).unwrap_err().to_string();
            assert!(err.contains(file), "{file}: {err}");
            std::fs::remove_file(d.path().join(file)).unwrap();
        }
    }

    #[test]
    fn insecure_only_for_loopback() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("insecure"), "yes").unwrap();
        std::fs::write(d.path().join("endpoint"), "example.com/v1").unwrap();
        let err = Config::load(d.path())
            .unwrap()
            .version_server()
            .unwrap_err();
        assert!(matches!(err, AppError::Refused(_)), "{err}");
        std::fs::write(d.path().join("endpoint"), "localhost:8080/v1").unwrap();
        assert!(Config::load(d.path()).unwrap().version_server().unwrap().1);
    }
}
