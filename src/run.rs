//! What `run` and `status` share: the environment of a command, and the
//! observations both make (schedule, v2, backend, installed agent, trust
//! audit). The update itself is [`crate::update`].

use std::path::PathBuf;

use backends::{Backend, Installed, Options, PkgName, Runner, System};

use crate::config::{Config, Installer, AGENT_PACKAGES};
use crate::error::AppError;
use crate::health::Clock;
use crate::pinning;
use crate::schedule::Schedule;

pub use crate::update::update_command;

/// What a command needs from the outside world.
pub struct Env<'a> {
    pub system: System,
    pub config_dir: PathBuf,
    pub clock: &'a dyn Clock,
    pub runner: Runner,
    /// `-v`: `dry-run` shows every command line in full.
    pub verbose: bool,
}

/// Read the schedule file: a missing file is `Missing`, an unreadable one
/// `Unparseable`.
pub fn read_schedule(config: &Config) -> Schedule {
    match crate::fsread::read_text(&config.schedule_path(), crate::fsread::CONFIG_CAP) {
        Ok(Some(t)) => {
            let (schedule, warnings) = Schedule::parse_with_warnings(&t);
            for w in warnings {
                tracing::warn!(file = %config.schedule_path().display(), "{w}");
            }
            schedule
        }
        Ok(None) => Schedule::Missing,
        Err(e) => Schedule::Unparseable(e.to_string()),
    }
}

/// Managed Updates v2's configuration for the default agent.
pub const V2_CONFIG: &str = "/opt/teleport/default/update.yaml";

/// Why Managed Updates v2 (`teleport-update`) manages the agent, as the
/// target sees it: its configuration file exists and does not say
/// `enabled: false`; or, whatever that file says, `/usr/local/bin/teleport`
/// is v2's link (into `/opt/teleport/`, not the system package's
/// `/opt/teleport/system/`): v2 installed its own binaries and systemd runs
/// them, so a package update here would change nothing that runs.
pub fn managed_by_v2(system: &System) -> Option<String> {
    if let Some(link) = crate::layout::v2_linked(system) {
        return Some(link);
    }
    let text = crate::fsread::read_text(&system.path(V2_CONFIG), crate::fsread::CONFIG_CAP)
        .ok()
        .flatten()?;
    let disabled = text.lines().any(|l| {
        let l = l.trim();
        l.strip_prefix("enabled:")
            .is_some_and(|v| v.trim().trim_matches('"') == "false")
    });
    (!disabled).then(|| V2_CONFIG.to_string())
}

/// The repository definition v1's `repository` names (as the target
/// sees it): apt's `/etc/apt/sources.list.d/<name>.list` (or
/// `<name>.sources`), or the `.repo` file that defines the yum/dnf/zypper
/// repository id `[<name>]`.
pub fn repository_file(
    system: &System,
    kind: backends::BackendKind,
    name: &str,
    config: &Config,
) -> Result<PathBuf, AppError> {
    use backends::BackendKind as K;
    let err = |message: String| AppError::Config {
        file: config.dir.join("repository"),
        message,
    };
    let dirs: &[&str] = match kind {
        K::Apt => {
            for ext in ["list", "sources"] {
                let p = format!("/etc/apt/sources.list.d/{name}.{ext}");
                if system.path(&p).is_file() {
                    return Ok(PathBuf::from(p));
                }
            }
            return Err(err(format!(
                "no /etc/apt/sources.list.d/{name}.list (or {name}.sources)"
            )));
        }
        K::Zypper => &["/etc/zypp/repos.d"],
        _ => &[
            "/etc/yum.repos.d",
            "/etc/yum/repos.d",
            "/etc/distro.repos.d",
        ],
    };
    let header = format!("[{name}]");
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(system.path(d)) else {
            continue;
        };
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".repo"))
            .collect();
        files.sort();
        for f in files {
            let p = format!("{d}/{f}");
            let text = crate::fsread::read_text(&system.path(&p), crate::fsread::CONFIG_CAP)
                .map_err(|e| err(e.to_string()))?
                .unwrap_or_default();
            if text.lines().any(|l| l.trim() == header) {
                return Ok(PathBuf::from(p));
            }
        }
    }
    Err(err(format!(
        "no .repo file under {} defines the repository {header}",
        dirs.join(", ")
    )))
}

/// How Teleport's repository is recognised without `source-file`, from
/// configuration alone: a URL on Teleport's release host, else `teleport`
/// in its id or file name (the backends know no product's names).
pub fn repo_hints() -> backends::RepoHints {
    backends::RepoHints {
        release_hosts: vec!["releases.teleport.dev".into()],
        words: vec!["teleport".into()],
    }
}

/// The backend named by `installer`, or detected; `None` for `nop` when no
/// package manager can be found for read-only queries.
pub fn select_backend(
    env: &Env,
    config: &Config,
) -> Result<(Option<Box<dyn Backend>>, Installer), AppError> {
    if let Some(p) = &config.source_file {
        if !env.system.path(p).is_file() {
            return Err(AppError::Config {
                file: config.dir.join("source-file"),
                message: format!(
                    "names {}, which is not a file here: name the repository definition that serves the agent",
                    p.display()
                ),
            });
        }
    }
    let opts = Options {
        lock_wait: config.lock_wait,
        source_file: config.source_file.clone(),
        hold_record: Some(crate::state::dir(&env.system).join("versionlock-own.list")),
        hints: repo_hints(),
        ..Options::default()
    };
    let build = |k| {
        let mut opts = opts.clone();
        if let Some(name) = &config.repository {
            opts.source_file = Some(repository_file(&env.system, k, name, config)?);
        }
        backends::backend_for(k, env.system.clone(), opts).map_err(AppError::from_backend)
    };
    match config.installer {
        Some(Installer::Backend(k)) => Ok((Some(build(k)?), Installer::Backend(k))),
        Some(Installer::Nop) => {
            let b = backends::detect(&env.system, &env.runner)
                .ok()
                .and_then(|k| build(k).ok());
            Ok((b, Installer::Nop))
        }
        None => {
            let k = backends::detect(&env.system, &env.runner)
                .map_err(|e| AppError::Usage(e.to_string()))?;
            tracing::debug!(installer = %k, "detected the package manager");
            Ok((Some(build(k)?), Installer::Backend(k)))
        }
    }
}

/// The agent package and its installed version.
pub fn installed_agent(backend: &dyn Backend, config: &Config) -> Result<Installed, AppError> {
    let candidates: Vec<PkgName> = match &config.package {
        Some(p) => vec![p.clone()],
        None => AGENT_PACKAGES
            .iter()
            .map(|n| PkgName::parse(n).unwrap())
            .collect(),
    };
    backend
        .first_installed(&candidates)
        .map_err(AppError::from_backend)?
        .ok_or_else(|| {
            AppError::Usage(format!(
                "no Teleport agent package is installed (looked for {}); install the agent first, or name it in {}",
                candidates.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
                config.dir.join("package").display()
            ))
        })
}

/// What the trust audit found: the package manager's configuration, and
/// the pinned key when `trusted-keys` is set.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Audit {
    pub checked: Vec<String>,
    pub warnings: Vec<String>,
    /// When the pinned key in use expires (Unix seconds).
    pub pinned_key_expires: Option<i64>,
}

/// The proof that the trust audit (and the key pin, when `trusted-keys`
/// is set) of a source passed in this run: only [`audit`] makes one, and a
/// plan that installs cannot be built without it
/// ([`crate::update::plan::Plan::update`]).
#[derive(Debug, Clone)]
pub struct Trusted {
    audit: Audit,
}

impl Trusted {
    /// What the audit checked and warned about.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// A proof for the plan's own unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Trusted {
        Trusted {
            audit: Audit::default(),
        }
    }
}

/// The preflight trust audit of `source`: refused (exit 3) when the
/// configuration weakens verification or the pinned key is missing,
/// expired or revoked. What the command line neutralises is a warning.
pub fn audit(
    env: &Env,
    backend: &dyn Backend,
    source: &backends::Source,
    config: &Config,
    now: i64,
) -> Result<Trusted, AppError> {
    let report = backend
        .audit_trust(source)
        .map_err(AppError::from_backend)?;
    // The pin judges the key the package manager will use.
    let resolved;
    let source = match report.keyrings {
        Some(k) => {
            resolved = backends::Source {
                keyrings: k,
                ..source.clone()
            };
            &resolved
        }
        None => source,
    };
    let mut a = Audit {
        checked: report.checked,
        warnings: report.warnings.iter().map(|w| w.to_string()).collect(),
        ..Audit::default()
    };
    if let Some(pins) = &config.trusted_keys {
        let pinned =
            pinning::check(backend, source, &env.runner, pins, now).map_err(AppError::Refused)?;
        a.checked.extend(pinned.checked);
        a.warnings.extend(pinned.warnings);
        a.pinned_key_expires = pinned.expires;
    }
    Ok(Trusted { audit: a })
}
