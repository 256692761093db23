//! A package built to look like Teleport's own shell updater of Managed
//! Updates v1: name `teleport-ent-updater`, versioned like the Teleport
//! release (15.4.3), architecture all / noarch, a bash
//! `/usr/sbin/teleport-upgrade`, `teleport-upgrade.service` and `.timer`
//! (the timer `WantedBy=teleport.service`, as Teleport ships it), the agent
//! drop-in `teleport.service.d/teleport-upgrader-env.conf`, and maintainer
//! scripts that enable and start the timer on install and stop and disable
//! it on removal (see /work/shared/reference/teleport-v1-updater.md).
//!
//! Its bash updater only leaves a trace: each run appends a line to
//! `/var/lib/teleport-upgrade/v1-runs.log`, so a test can tell whose
//! updater the timer ran.
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

fn script(version: &str) -> String {
    format!(
        "#!/bin/bash\n# Teleport's shell updater {version} (a test stand-in)\nset -euo pipefail\n\
         mkdir -p /var/lib/teleport-upgrade\n\
         echo \"v1 {version} $*\" >> {RUNS_LOG}\n"
    )
}

const SERVICE: &str = "[Unit]\nDescription=Teleport auto-update service\n\n[Service]\nType=oneshot\nExecStart=/usr/sbin/teleport-upgrade run\n";

const TIMER: &str = "[Unit]\nDescription=Teleport auto-update timer unit\n\n[Timer]\nOnActiveSec=1m\nOnUnitActiveSec=5m\nRandomizedDelaySec=1m\n\n[Install]\nWantedBy=teleport.service\n";

fn dropin(version: &str) -> String {
    format!(
        "[Service]\nEnvironment=\"TELEPORT_EXT_UPGRADER=unit\"\nEnvironment=\"TELEPORT_EXT_UPGRADER_VERSION={version}\"\n"
    )
}

/// The scripts, POSIX sh, honouring DPKG_ROOT (chrootless dpkg roots).
const ENABLE: &str = "r=\"${DPKG_ROOT:-}\"\n\
    if command -v systemctl >/dev/null 2>&1; then\n\
      if [ -n \"$r\" ]; then systemctl --root=\"$r\" enable teleport-upgrade.timer || :; else systemctl enable teleport-upgrade.timer || :; fi\n\
      if [ -z \"$r\" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || :; systemctl start teleport-upgrade.timer || :; fi\n\
    fi\n";

const DISABLE: &str = "r=\"${DPKG_ROOT:-}\"\n\
    if command -v systemctl >/dev/null 2>&1; then\n\
      if [ -z \"$r\" ] && [ -d /run/systemd/system ]; then systemctl stop teleport-upgrade.timer || :; fi\n\
      if [ -n \"$r\" ]; then systemctl --root=\"$r\" disable teleport-upgrade.timer || :; else systemctl disable teleport-upgrade.timer || :; fi\n\
    fi\n";

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

/// The .deb (`teleport-ent-updater_<version>_all.deb`) in `out`.
/// `depends`: e.g. `Some("teleport-ent")`, as Teleport's package has it.
pub fn build_deb(version: &str, depends: Option<&str>, out: &Path) -> PathBuf {
    let root = out.join(format!("v1-deb-{version}"));
    let _ = fs::remove_dir_all(&root);
    write(
        &root.join("usr/sbin/teleport-upgrade"),
        &script(version),
        0o755,
    );
    write(
        &root.join("lib/systemd/system/teleport-upgrade.service"),
        SERVICE,
        0o644,
    );
    write(
        &root.join("lib/systemd/system/teleport-upgrade.timer"),
        TIMER,
        0o644,
    );
    write(
        &root.join("lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf"),
        &dropin(version),
        0o644,
    );
    let mut control = format!(
        "Package: {NAME}\nVersion: {version}\nArchitecture: all\nMaintainer: Teleport stand-in <test@invalid>\n\
         Section: admin\nPriority: optional\nDescription: Teleport auto-updater (test stand-in)\n"
    );
    if let Some(d) = depends {
        control.push_str(&format!("Depends: {d}\n"));
    }
    write(&root.join("DEBIAN/control"), &control, 0o644);
    write(
        &root.join("DEBIAN/postinst"),
        &format!("#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n{ENABLE}fi\nexit 0\n"),
        0o755,
    );
    write(
        &root.join("DEBIAN/prerm"),
        &format!("#!/bin/sh\nset -e\nif [ \"$1\" = remove ]; then\n{DISABLE}fi\nexit 0\n"),
        0o755,
    );
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
    write(
        &stage.join("usr/sbin/teleport-upgrade"),
        &script(version),
        0o755,
    );
    write(
        &stage.join("usr/lib/systemd/system/teleport-upgrade.service"),
        SERVICE,
        0o644,
    );
    write(
        &stage.join("usr/lib/systemd/system/teleport-upgrade.timer"),
        TIMER,
        0o644,
    );
    write(
        &stage.join("usr/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf"),
        &dropin(version),
        0o644,
    );
    let req = requires
        .map(|r| format!("Requires: {r}\n"))
        .unwrap_or_default();
    let spec = format!(
        "Name: {NAME}\nVersion: {version}\nRelease: 1\nSummary: Teleport auto-updater (test stand-in)\n\
         License: Apache-2.0\nBuildArch: noarch\nAutoReqProv: no\n{req}\n\
         %description\nA stand-in for Teleport's shell updater package.\n\n\
         %install\nmkdir -p %{{buildroot}}\ncp -a '{stage}/.' %{{buildroot}}/\n\n\
         %post\nif [ \"$1\" -eq 1 ]; then\n{ENABLE}fi\nexit 0\n\n\
         %preun\nif [ \"$1\" -eq 0 ]; then\n{DISABLE}fi\nexit 0\n\n\
         %files\n/usr/sbin/teleport-upgrade\n/usr/lib/systemd/system/teleport-upgrade.service\n\
         /usr/lib/systemd/system/teleport-upgrade.timer\n%dir /usr/lib/systemd/system/teleport.service.d\n\
         /usr/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf\n",
        stage = stage.display()
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
