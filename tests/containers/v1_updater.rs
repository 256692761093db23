//! A package built the way Teleport builds its own shell updater of Managed
//! Updates v1, `teleport-ent-updater`: with fpm, from a root filesystem
//! directory, versioned like the Teleport release (15.4.3), architecture
//! all / noarch, `Depends`/`Requires: teleport-ent`. Its files, where
//! Teleport's package puts them:
//!
//! - `/usr/sbin/teleport-upgrade`, the bash updater (here a stand-in that
//!   only leaves a trace: each run appends a line to `RUNS_LOG`, so a test
//!   can tell whose updater the timer ran; `version` prints `v<version>`,
//!   which the agent asks for under `TELEPORT_EXT_UPGRADER=unit`);
//! - `/lib/systemd/system/teleport-upgrade.service` and `.timer`, the timer
//!   `WantedBy=teleport.service` (OnActiveSec=1m, OnUnitActiveSec=5m,
//!   RandomizedDelaySec=1m);
//! - the agent's drop-in under `/etc`, where it overrides a packaged one of
//!   the same name: `/etc/systemd/system/teleport.service.d/
//!   teleport-upgrader-env.conf`, with `TELEPORT_EXT_UPGRADER=unit`,
//!   `TELEPORT_EXT_UPGRADER_VERSION=<version>` and an `ExecStopPost=` that
//!   records the stop time in `/var/lib/teleport-upgrade/state-last-restart`
//!   (the shell updater's "restarted within 60 s" unhealthy signal);
//! - `/etc/teleport-upgrade.d/package` (`teleport-ent`);
//! - the scripts as fpm wraps them (`--after-install`, `--after-upgrade`,
//!   `--before-remove` inside fpm's own postinst/prerm and %post/%preun
//!   templates). fpm's defaults matter: on deb every file under /etc is a
//!   conffile (`--deb-auto-config-files`), so dpkg keeps the drop-in and
//!   `package` when ours replaces this package; on rpm nothing is
//!   `%config` and no directory is owned, so rpm erases them.
//!
//! Sources: Teleport's enterprise tree `e/assets/systemd-unit-upgrader/`
//! (read in the public code corpus, repository unnamed there): its
//! `rootfs/usr/sbin/teleport-upgrade` (the path its tests in
//! `e/assets/systemd-unit-upgrader-tests/` run), its `install.sh` (the
//! drop-in copied to `/etc/systemd/system/teleport.service.d/`) and the
//! package's after-install ("skip reload and restart when systemd is
//! disabled": daemon-reload, enable and start the timer, never restart
//! the agent) and after-upgrade (daemon-reload, try-restart the timer)
//! scripts; gravitational/teleport `lib/automaticupgrades/` (`EnvUpgrader`,
//! `EnvUpgraderVersion`, `/usr/sbin/teleport-upgrade version`) and
//! `lib/autoupdate/agent/setup.go` (`teleport-upgrade.timer` /
//! `.service`, the timer's values, `WantedBy=teleport.service`); the
//! ExecStopPost and state file from /work/shared/reference/
//! teleport-v1-updater.md. Not found in any public source and so
//! reconstructed: the before-remove script (stop and disable the timer
//! when systemd runs), the exact ExecStopPost command line, and the unit
//! directory (`/lib/systemd/system`; the standalone install.sh used
//! /etc/systemd/system) and the content of `package`, which issue 25
//! reports.
//!
//! Used by tests/packaging.rs (dpkg root) and the container matrix.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NAME: &str = "teleport-ent-updater";
/// Where the shell updater writes a line per run.
pub const RUNS_LOG: &str = "/var/lib/teleport-upgrade/v1-runs.log";
/// The agent drop-in of Teleport's package.
pub const DROPIN: &str = "/etc/systemd/system/teleport.service.d/teleport-upgrader-env.conf";
/// Its `package` file and what it holds.
pub const PACKAGE_FILE: &str = "/etc/teleport-upgrade.d/package";
pub const PACKAGE_VALUE: &str = "teleport-ent\n";
/// What its ExecStopPost= writes.
pub const LAST_RESTART: &str = "/var/lib/teleport-upgrade/state-last-restart";

fn script(version: &str) -> String {
    format!(
        "#!/bin/bash\n# Teleport's shell updater {version} (a test stand-in)\nset -euo pipefail\n\
         if [ \"${{1:-}}\" = version ]; then echo v{version}; exit 0; fi\n\
         mkdir -p /var/lib/teleport-upgrade\n\
         echo \"v1 {version} $*\" >> {RUNS_LOG}\n"
    )
}

const SERVICE: &str = "[Unit]\nDescription=Teleport auto-update service\n\n[Service]\nType=oneshot\nExecStart=/usr/sbin/teleport-upgrade run\n";

const TIMER: &str = "[Unit]\nDescription=Teleport auto-update timer unit\n\n[Timer]\nOnActiveSec=1m\nOnUnitActiveSec=5m\nRandomizedDelaySec=1m\n\n[Install]\nWantedBy=teleport.service\n";

fn dropin(version: &str) -> String {
    format!(
        "[Service]\nEnvironment=\"TELEPORT_EXT_UPGRADER=unit\"\nEnvironment=\"TELEPORT_EXT_UPGRADER_VERSION={version}\"\n\
         ExecStopPost=/bin/bash -c 'mkdir -p /var/lib/teleport-upgrade && date > {LAST_RESTART}'\n"
    )
}

/// Teleport's after-install, after-upgrade and before-remove scripts.
const AFTER_INSTALL: &str = "#!/bin/bash\n\n# this script is run once on initial install of the teleport upgrader package\n\n\
    set -eu\n\n\
    # skip reload and restart when systemd is disabled. This is only relevant when\n# testing in a container.\n\
    if [ -d \"/run/systemd/system\" ]; then\n    systemctl daemon-reload\n\
    \x20   # the agent is not restarted here\n    systemctl enable teleport-upgrade.timer\n    systemctl start teleport-upgrade.timer\nfi\n";
const AFTER_UPGRADE: &str = "#!/bin/bash\n\n# this script is run each time the teleport upgrader package is itself upgraded\n\n\
    set -eu\n\n\
    if [ -d \"/run/systemd/system\" ]; then\n    systemctl daemon-reload\n    systemctl try-restart teleport-upgrade.timer\nfi\n";
const BEFORE_REMOVE: &str = "#!/bin/bash\n\n# reconstructed: stop and disable the timer\n\nset -eu\n\n\
    if [ -d \"/run/systemd/system\" ]; then\n    systemctl stop teleport-upgrade.timer || true\n    systemctl disable teleport-upgrade.timer || true\nfi\n";

/// fpm's deb postinst template around after-upgrade and after-install.
fn deb_postinst() -> String {
    format!(
        "#!/bin/sh\nafter_upgrade() {{\n    :\n{AFTER_UPGRADE}}}\n\nafter_install() {{\n    :\n{AFTER_INSTALL}}}\n\n\
         if [ \"${{1}}\" = \"configure\" -a -z \"${{2}}\" ] || \\\n   [ \"${{1}}\" = \"abort-remove\" ]\nthen\n    after_install\n\
         elif [ \"${{1}}\" = \"configure\" -a -n \"${{2}}\" ]\nthen\n    upgradeFromVersion=\"${{2}}\"\n    after_upgrade \"${{2}}\"\n\
         elif echo \"${{1}}\" | grep -E -q \"(abort|fail)\"\nthen\n    echo \"Failed to install before the post-installation script was run.\" >&2\n    exit 1\nfi\n"
    )
}

/// fpm's deb prerm template around before-remove.
fn deb_prerm() -> String {
    format!(
        "#!/bin/sh\nbefore_remove() {{\n    :\n{BEFORE_REMOVE}}}\n\ndummy() {{\n    :\n}}\n\n\
         if [ \"${{1}}\" = \"remove\" -a -z \"${{2}}\" ]\nthen\n    before_remove\n\
         elif [ \"${{1}}\" = \"upgrade\" ]\nthen\n    dummy\n\
         elif echo \"${{1}}\" | grep -E -q \"(fail|abort)\"\nthen\n    echo \"Failed to install before the pre-removal script was run.\" >&2\n    exit 1\nfi\n"
    )
}

/// fpm's rpm %post and %preun around the same scripts.
fn rpm_scripts() -> String {
    format!(
        "%post\nupgrade() {{\n    :\n{AFTER_UPGRADE}}}\n_install() {{\n    :\n{AFTER_INSTALL}}}\n\
         if [ \"${{1}}\" -eq 1 ]\nthen\n    _install\nelif [ \"${{1}}\" -gt 1 ]\nthen\n    upgrade\nfi\n\n\
         %preun\nif [ \"${{1}}\" -eq 0 ]\nthen\n    :\n{BEFORE_REMOVE}fi\n\n"
    )
}

/// The root filesystem fpm packages (`-s dir`), paths relative to `/`.
fn rootfs(version: &str) -> Vec<(&'static str, String, u32)> {
    vec![
        ("usr/sbin/teleport-upgrade", script(version), 0o755),
        (
            "lib/systemd/system/teleport-upgrade.service",
            SERVICE.into(),
            0o644,
        ),
        (
            "lib/systemd/system/teleport-upgrade.timer",
            TIMER.into(),
            0o644,
        ),
        (&DROPIN[1..], dropin(version), 0o644),
        (&PACKAGE_FILE[1..], PACKAGE_VALUE.into(), 0o644),
    ]
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn run_ok(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In a throwaway dpkg root (`dpkg --root`, scripts run on the host with
/// DPKG_ROOT set) Teleport's scripts would act on the host's systemd: there
/// they only enable or disable the timer inside the root, as the real
/// scripts do on a running system, and stop.
const DPKG_ROOT_POSTINST: &str = "if [ -n \"${DPKG_ROOT:-}\" ]; then\n\
    [ \"$1\" = configure ] && [ -z \"${2:-}\" ] && systemctl --root=\"$DPKG_ROOT\" enable teleport-upgrade.timer || :\n    exit 0\nfi\n";
const DPKG_ROOT_PRERM: &str = "if [ -n \"${DPKG_ROOT:-}\" ]; then\n\
    [ \"$1\" = remove ] && systemctl --root=\"$DPKG_ROOT\" disable teleport-upgrade.timer || :\n    exit 0\nfi\n";

/// The .deb (`teleport-ent-updater_<version>_all.deb`) in `out`.
/// `depends`: e.g. `Some("teleport-ent")`, as Teleport's package has it.
pub fn build_deb(version: &str, depends: Option<&str>, out: &Path) -> PathBuf {
    build_deb_with(version, depends, out, false)
}

/// The same package for a throwaway dpkg root (tests/packaging.rs): its
/// scripts act inside DPKG_ROOT only (see DPKG_ROOT_POSTINST).
pub fn build_deb_for_dpkg_root(version: &str, out: &Path) -> PathBuf {
    build_deb_with(version, None, out, true)
}

fn build_deb_with(version: &str, depends: Option<&str>, out: &Path, in_root: bool) -> PathBuf {
    let root = out.join(format!("v1-deb-{version}"));
    let _ = fs::remove_dir_all(&root);
    let files = rootfs(version);
    for (path, text, mode) in &files {
        write(&root.join(path), text, *mode);
    }
    let mut control = format!(
        "Package: {NAME}\nVersion: {version}\nArchitecture: all\nMaintainer: Teleport stand-in <test@invalid>\n\
         Section: admin\nPriority: optional\nDescription: Teleport auto-updater (test stand-in)\n"
    );
    if let Some(d) = depends {
        control.push_str(&format!("Depends: {d}\n"));
    }
    write(&root.join("DEBIAN/control"), &control, 0o644);
    // fpm's --deb-auto-config-files: everything under /etc.
    let conffiles: String = files
        .iter()
        .filter(|(p, _, _)| p.starts_with("etc/"))
        .map(|(p, _, _)| format!("/{p}\n"))
        .collect();
    write(&root.join("DEBIAN/conffiles"), &conffiles, 0o644);
    let (mut postinst, mut prerm) = (deb_postinst(), deb_prerm());
    if in_root {
        postinst = postinst.replacen(
            "#!/bin/sh\n",
            &format!("#!/bin/sh\n{DPKG_ROOT_POSTINST}"),
            1,
        );
        prerm = prerm.replacen("#!/bin/sh\n", &format!("#!/bin/sh\n{DPKG_ROOT_PRERM}"), 1);
    }
    write(&root.join("DEBIAN/postinst"), &postinst, 0o755);
    write(&root.join("DEBIAN/prerm"), &prerm, 0o755);
    fs::create_dir_all(out).unwrap();
    let deb = out.join(format!("{NAME}_{version}_all.deb"));
    let _ = fs::remove_file(&deb);
    run_ok(
        Command::new("dpkg-deb")
            .arg("--root-owner-group")
            .arg("-Zgzip")
            .arg("--build")
            .arg(&root)
            .arg(&deb),
    );
    deb
}

/// The .rpm (`teleport-ent-updater-<version>-1.noarch.rpm`) in `out`.
pub fn build_rpm(version: &str, requires: Option<&str>, out: &Path) -> PathBuf {
    let top = out.join(format!("v1-rpm-{version}"));
    let _ = fs::remove_dir_all(&top);
    let stage = top.join("stage");
    let files = rootfs(version);
    for (path, text, mode) in &files {
        write(&stage.join(path), text, *mode);
    }
    let req = requires
        .map(|r| format!("Requires: {r}\n"))
        .unwrap_or_default();
    // As fpm: only the files, none %config, no directory owned.
    let listed: String = files.iter().map(|(p, _, _)| format!("/{p}\n")).collect();
    let spec = format!(
        "Name: {NAME}\nVersion: {version}\nRelease: 1\nSummary: Teleport auto-updater (test stand-in)\n\
         License: Apache-2.0\nBuildArch: noarch\nAutoReqProv: no\n{req}\n\
         %description\nA stand-in for Teleport's shell updater package.\n\n\
         %install\nmkdir -p %{{buildroot}}\ncp -a '{stage}/.' %{{buildroot}}/\n\n\
         {scripts}%files\n{listed}",
        stage = stage.display(),
        scripts = rpm_scripts(),
    );
    let spec_file = top.join("v1.spec");
    write(&spec_file, &spec, 0o644);
    run_ok(
        Command::new("rpmbuild")
            .arg("-bb")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("--define")
            .arg(format!("_rpmdir {}", out.display()))
            .arg("--define")
            .arg("_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm")
            .arg("--define")
            .arg("_binary_payload w1.gzdio")
            .arg(&spec_file),
    );
    let rpm = out.join(format!("{NAME}-{version}-1.noarch.rpm"));
    assert!(rpm.is_file(), "rpmbuild did not make {}", rpm.display());
    rpm
}
