//! Part of `tests/rows.rs` (see there): the suse-zypper row's own scenario.
//!
//! A custom zypper variable (`/etc/zypp/vars.d`) in the repository's
//! `gpgkey`: the pin judges the key file zypper expands it to, as zypper
//! lists it. In a `--root` root this cannot be tested: zypper reads
//! `vars.d` from the host's `/etc/zypp` even with `--root`
//! (`tests/zypper_gpgkey_vars.rs` tests `$basearch` only); in the booted
//! container `/etc/zypp` is the container's own.

use super::*;

const VAR: &str = "/etc/zypp/vars.d/teleport_key";
const LITERAL: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-$teleport_key";
const EXPANDED: &str = "/etc/pki/rpm-gpg/RPM-GPG-KEY-elsewhere";

pub(crate) fn zypper_scenarios(
    rec: &mut Recorder,
    sut: &mut Sut,
    fx: &Fixtures,
) -> Result<(), String> {
    rec.step(Scenario::ZypperVarsPinned, || {
        let repo_file = sut
            .c
            .read(Pm::Zypper.repo_file())
            .ok_or("no repository file")?;
        let result = vars_pinned(sut, fx, &repo_file);
        let c = sut.c;
        let restored = c.write(Pm::Zypper.repo_file(), &repo_file);
        for f in [
            VAR,
            LITERAL,
            EXPANDED,
            &format!("{CONFIG_DIR}/trusted-keys"),
        ] {
            let _ = c.remove(f);
        }
        sut.vs.set(&sut.agent_version()?.unwrap_or_default(), false);
        restored?;
        result
    })
}

fn vars_pinned(sut: &mut Sut, fx: &Fixtures, repo_file: &str) -> Result<String, String> {
    let c = sut.c;
    let tmp = tempfile::Builder::new()
        .prefix("zk")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    let foreign = testkit::gpg::Key::generate(tmp.path(), "Not Teleport <other@example.com>");
    let foreign_asc = tmp.path().join("foreign.asc");
    foreign.export_armored(&foreign_asc);
    // The file named literally holds the release key, the expanded one
    // another key: reading the literal name would pass the pin.
    c.write(
        LITERAL,
        std::fs::read(&fx.key_asc).map_err(|e| e.to_string())?,
    )?;
    c.write(
        EXPANDED,
        std::fs::read(&foreign_asc).map_err(|e| e.to_string())?,
    )?;
    c.write(VAR, "elsewhere\n")?;
    let edited: String = repo_file
        .lines()
        .map(|l| {
            if l.starts_with("gpgkey=") {
                format!("gpgkey=file://{LITERAL}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    c.write(Pm::Zypper.repo_file(), &edited)?;
    // Shown real: zypper expands the variable.
    let listed = c.ok(&["zypper", "--xmlout", "lr"])?;
    if !listed.contains("RPM-GPG-KEY-elsewhere") {
        return Err(format!("zypper does not expand $teleport_key:\n{listed}"));
    }
    let pins = fx.key.fingerprint();
    let (code, said) = sut.pinned_dry_run("16.0.1", &pins)?;
    if code != Some(3)
        || !said.contains("RPM-GPG-KEY-elsewhere")
        || !said.contains("none of the fingerprints")
    {
        return Err(format!(
            "gpgkey expanding to another key: exit {code:?}, expected 3 naming {EXPANDED}:\n{said}"
        ));
    }
    let refused = said
        .lines()
        .find(|l| l.contains("RPM-GPG-KEY-elsewhere"))
        .unwrap_or("")
        .trim()
        .to_string();
    // The variable pointing at the release key: the pin passes.
    c.write(
        EXPANDED,
        std::fs::read(&fx.key_asc).map_err(|e| e.to_string())?,
    )?;
    let (code, trust) = sut.pinned_dry_run("16.0.1", &pins)?;
    if code != Some(0) || !trust.contains("pinned key") {
        return Err(format!(
            "the release key behind the variable: exit {code:?}:\n{trust}"
        ));
    }
    Ok(format!(
        "zypper lists RPM-GPG-KEY-elsewhere; another key there: exit 3 ({refused}); the release key there: dry-run exit 0"
    ))
}
