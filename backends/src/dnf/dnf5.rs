//! dnf5 (Fedora 41 and later, where `dnf` is dnf5): the same operations
//! as dnf 4, in dnf5's syntax, measured against Debian's dnf5 5.4.6 (the
//! `dnf5` row of the container matrix; docs/developers/dnf5.md has the map
//! and the evidence):
//! * every call gets `--no-plugins`: libdnf5's plugins are not needed (the
//!   versionlock is built in) and some change the result: Debian's `local`
//!   plugin (enabled by default) runs `createrepo_c` after a transaction
//!   and turns a successful install into exit 1 when it is missing;
//!   `actions` runs commands an operator configured around transactions;
//! * excludes and the versionlock are lifted for the updater's own install
//!   with `--setopt=disable_excludes=*` (dnf5 rejects `--disableexcludes`;
//!   `disable_excludes=<id>` or `main` does not lift the versionlock);
//! * signatures: `pkg_gpgcheck` is the package check (`gpgcheck` an alias
//!   of it); both are forced on, with `repo_gpgcheck` and
//!   `localpkg_gpgcheck`, globally and for the repository;
//! * dnf5 has no `exit_on_lock` (it waits for its lock without end): the
//!   updater waits for dnf5's lock itself (`/var/lib/dnf/system-repo.lock`,
//!   an fcntl lock) up to `lock-timeout` before each call;
//! * the kept package: `dnf5 download --destdir=` (no `--downloadonly
//!   --destdir` on `reinstall`);
//! * dnf5's view of the repository: `--dump-repo-config=<id>`.
//!
//! Not driven: dnf5 in an alternate root (`--root`): refused, it was not
//! measured there.
//!
//! Recognised without starting a process when the program resolves to a
//! file named `dnf5…` (Fedora's `/usr/bin/dnf -> dnf5`); dnf 4's `dnf` is
//! a Python script, so a `dnf` that is not one is asked `--version`
//! (dnf5 answers `dnf5 version 5.…`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cmd::{CommandLine, Runner};
use crate::types::Source;
use crate::{Error, Result};

/// What an operator is told when dnf5 would have to drive an alternate root.
pub const ROOT_REFUSAL: &str = "dnf5 is not supported with --root (an alternate root): its installroot handling was not measured; run the updater on the host itself; nothing was changed";

/// dnf5's lock on the system repository (the rpm database), under its
/// `persistdir`.
pub const SYSTEM_REPO_LOCK: &str = "/var/lib/dnf/system-repo.lock";

/// dnf5's own repository directory (beside dnf 4's).
pub const REPO_DIR: &str = "/usr/share/dnf5/repos.d";

/// dnf5's cache directory for root.
pub const CACHEDIR: &str = "/var/cache/libdnf5";

/// Whether `program`, as `runner` finds it, is dnf5.
pub fn is_dnf5(runner: &Runner, program: &str) -> bool {
    let Some(path) = runner.find(program) else {
        return false;
    };
    let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
    let named = real
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("dnf5"));
    named || (!is_python_script(&real) && says_dnf5(runner, program))
}

/// Whether `p` starts with a `#!` line naming python (dnf 4, yum 4).
fn is_python_script(p: &Path) -> bool {
    let mut head = [0u8; 128];
    let n = std::fs::File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    head.starts_with(b"#!")
        && head
            .split(|b| *b == b'\n')
            .next()
            .is_some_and(|l| l.windows(6).any(|w| w == b"python"))
}

fn says_dnf5(runner: &Runner, program: &str) -> bool {
    let cl = CommandLine::new(program).args(["--version"]);
    runner.run(&cl).is_ok_and(|f| {
        f.stdout
            .lines()
            .next()
            .is_some_and(|l| l.trim_start().starts_with("dnf5"))
    })
}

/// The options every dnf5 call gets before its command: no libdnf5 plugin.
pub fn common_args() -> Vec<String> {
    vec!["--no-plugins".to_string()]
}

/// The signature options of dnf5 beyond dnf 4's (`pkg_gpgcheck`, of which
/// `gpgcheck` is an alias that a section's own `pkg_gpgcheck=` overrides),
/// globally and, with `id`, for the repository.
pub fn extra_enforcement_args(id: Option<&str>) -> Vec<String> {
    let mut v = vec!["--setopt=pkg_gpgcheck=True".to_string()];
    if let Some(id) = id {
        v.push(format!("--setopt={id}.pkg_gpgcheck=True"));
    }
    v
}

/// The option that lifts every exclude and the versionlock for one call.
pub const LIFT_HOLDS: &str = "--setopt=disable_excludes=*";

/// dnf5's view of one repository: `dnf5 --dump-repo-config=<id>`, in the
/// system and repository directory of the updater's calls.
pub fn view_cmd(base: CommandLine, reposdir: &Path, id: &str) -> CommandLine {
    base.args(common_args()).args([
        format!("--setopt=reposdir={}", reposdir.display()),
        format!("--dump-repo-config={id}"),
    ])
}

/// The answer of `--dump-repo-config=<id>` (a line `======== "<id>"
/// repository configuration: ========`, then `key = value` lines; nothing
/// when the repository is not defined) as the audit reads dnf 4's view:
/// `repo=present|absent`, `gpgcheck` (dnf5's `pkg_gpgcheck`),
/// `repo_gpgcheck` (`1`/`0`), `gpgkey` (URLs separated by spaces).
pub fn parse_dump(text: &str, id: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let header = format!("======== \"{id}\" repository configuration: ========");
    let mut raw = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line == header) {
            continue;
        }
        let (k, v) = line
            .split_once(" = ")
            .unwrap_or((line.trim_end_matches(" ="), ""));
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(format!("line {}: {line:?} is not `key = value`", i + 1));
        }
        raw.insert(k.to_string(), v.trim().to_string());
    }
    let mut out = BTreeMap::new();
    if raw.is_empty() {
        out.insert("repo".into(), "absent".into());
        return Ok(out);
    }
    out.insert("repo".into(), "present".into());
    for (ours, theirs) in [
        ("gpgcheck", "pkg_gpgcheck"),
        ("repo_gpgcheck", "repo_gpgcheck"),
    ] {
        let v = raw
            .get(theirs)
            .ok_or_else(|| format!("no {theirs} in the dump"))?;
        if v != "0" && v != "1" {
            return Err(format!("{theirs} = {v:?} is not 0 or 1"));
        }
        out.insert(ours.into(), v.clone());
    }
    let keys: Vec<&str> = raw
        .get("gpgkey")
        .map(|v| v.split([',', ' ']).filter(|k| !k.is_empty()).collect())
        .unwrap_or_default();
    out.insert("gpgkey".into(), keys.join(" "));
    Ok(out)
}

/// The process holding dnf5's system-repository lock `lock` now, as
/// `pid (command line)`.
pub fn lock_holder(lock: &Path) -> Option<String> {
    let (pid, comm) = crate::rpmdb::lock_holder(lock)?;
    if pid <= 0 {
        return Some(crate::rpmdb::describe_holder(pid, None));
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| !s.is_empty())
        .or(comm);
    Some(match cmdline {
        Some(c) => format!("process {pid} ({c})"),
        None => format!("process {pid}"),
    })
}

/// Wait while another process holds dnf5's lock `lock`, up to `wait`
/// (dnf5 itself would wait without end); `Err(Locked)` naming the holder
/// when it still holds it then.
pub fn wait_for_lock(lock: &Path, wait: Duration) -> Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    let mut said = false;
    loop {
        let Some(holder) = lock_holder(lock) else {
            return Ok(());
        };
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::Locked {
                detail: format!(
                    "dnf5's lock {} is held by {holder} (waited {} s)",
                    lock.display(),
                    started.elapsed().as_secs()
                ),
            });
        }
        if !said {
            tracing::info!(
                "dnf5's lock {} is held by {holder}; waiting up to {} s",
                lock.display(),
                left.as_secs()
            );
            said = true;
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

impl super::Dnf {
    /// dnf5's lock file, in the system.
    pub(super) fn dnf5_lock(&self) -> PathBuf {
        self.system.path(SYSTEM_REPO_LOCK)
    }

    /// The operator's versionlock entries of `pkg` that admit none of the
    /// target's forms (`version` with each of `releases`): dnf5 would not
    /// install it (the updater lifts the versionlock for its own install).
    pub(super) fn dnf5_operator_locks_against(
        &self,
        pkg: &crate::types::PkgName,
        version: &str,
        releases: &[&str],
    ) -> Result<Vec<String>> {
        let (file, text) = self.locklist_text()?;
        let list = self.lock_lines()?;
        let own: Vec<String> = self
            .own_lines(&list, pkg)
            .into_iter()
            .map(|l| l.text)
            .collect();
        let candidates: Vec<super::Evr> = releases
            .iter()
            .filter_map(|r| super::Evr::parse(&format!("{version}-{r}")))
            .collect();
        super::dnf5lock::operator_against(
            &text,
            &self.system.display_path(&file),
            &own,
            pkg.as_str(),
            &candidates,
        )
    }

    /// `dnf5 download --destdir=<dir> <pkg>-<version>`, restricted and
    /// verified as the install is (dnf5 checks no signature on a download:
    /// the kept file is checked before it is installed).
    pub(super) fn dnf5_download_cmd(&self, source: &Source, spec: &str, dir: &Path) -> CommandLine {
        self.base(source).args([
            LIFT_HOLDS.to_string(),
            "download".into(),
            format!("--destdir={}", dir.display()),
            spec.to_string(),
        ])
    }
}

#[cfg(test)]
mod tests;
