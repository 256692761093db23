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
    /// New: this host's FleetLock id (`fleet-lock-id`), instead of the one
    /// derived from the machine id.
    pub fleet_lock_id: Option<String>,
    /// New: the etcd of the fleet's record (`fleet-report`), validated by
    /// [`crate::fleetlock::report_settings`].
    pub fleet_report: Option<String>,
    /// New: `fleet-halt-rate`, tenths of a percent.
    pub fleet_halt_rate: Option<u32>,
    /// New: `fleet-halt-min-sample`.
    pub fleet_halt_min_sample: Option<u64>,
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
    /// New: how long a target the repository does not offer yet is waited
    /// for (exit 0, result word waiting-for-mirror) before a run fails
    /// (`mirror-wait`, seconds; 0: fail at once).
    pub mirror_wait: Duration,
    /// New: a routine update is not started when less than this is left
    /// of the current maintenance window (`window-margin`, seconds; at
    /// most a quarter of the window; 0 turns it off).
    pub window_margin: Duration,
    /// New: the cluster's update group this host belongs to
    /// (`update-group`), sent as `/webapi/find?group=`.
    pub update_group: Option<String>,
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

/// Reads the settings of one directory, by their names in the table.
struct Reader<'a> {
    dir: &'a Path,
}

impl Reader<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(crate::settings::row(name).name)
    }

    fn err(&self, name: &str, message: String) -> AppError {
        AppError::Config {
            file: self.path(name),
            message,
        }
    }

    fn value(&self, name: &str) -> Result<Option<String>, AppError> {
        read_value(&self.path(name))
    }

    fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, AppError> {
        self.value(name)?
            .map(|v| parse(&v).map_err(|m| self.err(name, m)))
            .transpose()
    }

    fn yes_no(&self, name: &str) -> Result<bool, AppError> {
        Ok(self.parsed(name, yes_no)?.unwrap_or(false))
    }

    fn abs_path(&self, name: &str) -> Result<Option<PathBuf>, AppError> {
        self.parsed(name, |v| {
            let p = PathBuf::from(v);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(format!("{v:?} must be an absolute path"))
            }
        })
    }

    /// A seconds setting, within its row's limits, else its row's default.
    fn seconds(&self, name: &str) -> Result<Duration, AppError> {
        let row = crate::settings::row(name);
        Ok(self
            .parsed(name, |v| row.seconds(v))?
            .unwrap_or_else(|| row.default_duration()))
    }

    /// `trusted-keys`: several lines, unlike the one-value files.
    fn pins(&self, name: &str) -> Result<Option<Pins>, AppError> {
        let path = self.path(name);
        match crate::fsread::read_text(&path, crate::fsread::CONFIG_CAP) {
            Ok(Some(text)) => Pins::parse(&path, &text)
                .map(Some)
                .map_err(|m| self.err(name, m)),
            Ok(None) => Ok(None),
            Err(e) => Err(self.err(name, e.to_string())),
        }
    }
}

fn yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("expected yes or no, got {v:?}")),
    }
}

fn parse_package(v: &str) -> Result<PkgName, String> {
    if AGENT_PACKAGES.contains(&v) {
        Ok(PkgName::parse(v).expect("known names are valid"))
    } else {
        Err(format!(
            "{v:?} is not a Teleport agent package: expected teleport, teleport-ent or teleport-ent-fips"
        ))
    }
}

fn parse_installer(v: &str) -> Result<Installer, String> {
    if v == "nop" {
        Ok(Installer::Nop)
    } else {
        v.parse::<BackendKind>().map(Installer::Backend)
    }
}

fn parse_metrics(v: &str) -> Result<Metrics, String> {
    match v {
        "none" => Ok(Metrics::Off),
        _ if v.starts_with('/') => Ok(Metrics::Dir(PathBuf::from(v))),
        _ => Err(format!("{v:?}: expected an absolute directory, or none")),
    }
}

fn parse_diag_addr(v: &str) -> Result<String, String> {
    if crate::verify::valid_addr(v) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "expected host:port of the agent's diagnostic endpoint, got {v:?}"
        ))
    }
}

fn parse_restart_mode(v: &str) -> Result<RestartMode, String> {
    match v {
        "reload" => Ok(RestartMode::Reload),
        "restart" => Ok(RestartMode::Restart),
        _ => Err(format!("expected reload or restart, got {v:?}")),
    }
}

fn parse_repository(v: &str) -> Result<String, String> {
    if !v.is_empty()
        && v.len() <= 100
        && !v.starts_with(['.', '-'])
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
    {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{v:?} is not a repository name (letters, digits, . _ : -)"
        ))
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

    /// Read and validate every setting of [`crate::settings::SETTINGS`]
    /// (the table also gives each numeric setting's limits and default).
    pub fn load(dir: &Path) -> Result<Config, AppError> {
        let r = Reader { dir };
        let source_file = r.abs_path("source-file")?;
        let repository = r.parsed("repository", parse_repository)?;
        if repository.is_some() && source_file.is_some() {
            return Err(r.err(
                "repository",
                "set either repository or source-file, not both".into(),
            ));
        }
        Ok(Config {
            dir: dir.to_path_buf(),
            endpoint: r.parsed("endpoint", Endpoint::parse)?,
            package: r.parsed("package", parse_package)?,
            installer: r.parsed("installer", parse_installer)?,
            insecure: r.yes_no("insecure")?,
            debug: r.yes_no("debug")?,
            ca_file: r.abs_path("ca-file")?,
            source_file,
            lock_wait: r.seconds("lock-timeout")?,
            trusted_keys: r.pins("trusted-keys")?,
            metrics: r
                .parsed("metrics-dir", parse_metrics)?
                .unwrap_or(Metrics::Default),
            health_timeout: r.seconds("health-timeout")?,
            diag_addr: r.parsed("diag-addr", parse_diag_addr)?,
            unhealthy_interval: r.seconds("unhealthy-interval")?,
            verify_interval: r.seconds("verify-interval")?,
            // Validated by crate::fleetlock::settings, which needs `insecure`.
            fleet_lock: r.value("fleet-lock")?,
            fleet_lock_group: r.value("fleet-lock-group")?,
            fleet_lock_id: r.parsed("fleet-lock-id", crate::fleetlock::parse_id)?,
            fleet_report: r.value("fleet-report")?,
            fleet_halt_rate: r.parsed("fleet-halt-rate", crate::fleetlock::report::parse_rate)?,
            fleet_halt_min_sample: r.parsed(
                "fleet-halt-min-sample",
                crate::fleetlock::report::parse_min_sample,
            )?,
            cluster_guard: r
                .parsed("cluster-guard", crate::cluster::GuardMode::parse)?
                .unwrap_or_default(),
            restart_mode: r
                .parsed("restart-mode", parse_restart_mode)?
                .unwrap_or_default(),
            repository,
            recheck_delay: r.seconds("recheck-delay")?,
            mirror_wait: r.seconds("mirror-wait")?,
            window_margin: r.seconds("window-margin")?,
            update_group: r.parsed("update-group", crate::update_group::parse)?,
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

    /// Both directions between the table and `load`: every operator row
    /// is read (its example changes the loaded configuration, its invalid
    /// value is refused naming the file), and `load` asks for no name
    /// outside the table (`settings::row` panics on one).
    #[test]
    fn load_reads_exactly_the_settings_of_the_table() {
        use crate::settings::{Owner, SETTINGS};
        let d = tempfile::tempdir().unwrap();
        let blank = format!("{:?}", Config::load(d.path()).unwrap());
        let operator = SETTINGS.iter().filter(|s| s.owner == Owner::Operator);
        for s in operator {
            let file = d.path().join(s.name);
            std::fs::write(&file, s.example).unwrap();
            let got = Config::load(d.path()).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_ne!(format!("{got:?}"), blank, "{} is not read", s.name);
            if let Some(bad) = s.invalid {
                std::fs::write(&file, bad).unwrap();
                let err = Config::load(d.path()).unwrap_err().to_string();
                assert!(err.contains(s.name), "{}: {err}", s.name);
            }
            std::fs::remove_file(&file).unwrap();
        }
    }
}
