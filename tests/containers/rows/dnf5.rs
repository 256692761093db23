//! Part of `tests/rows.rs` (see there): the dnf5 row's own scenarios, after
//! the rpm-dnf scenarios it shares have run with dnf5 as `dnf`.
//!
//! Design under test (backends/src/dnf/dnf5.rs, dnf5lock.rs): the hold is
//! dnf5's built-in versionlock (`/etc/dnf/versionlock.toml`), an entry of
//! exactly the installed version; every call forces the signature checks
//! (`pkg_gpgcheck` too) and runs without libdnf5's plugins; the audit
//! judges the checks as dnf5 resolves them (`--dump-repo-config`), which
//! sees `repos.override.d`.

use super::*;

const LOCK_FILE: &str = "/etc/dnf/versionlock.toml";
const OVERRIDE: &str = "/etc/dnf/repos.override.d/99-operator.repo";
const UNSIGNED: &str = "16.1.0";

pub(crate) fn dnf5_scenarios(
    rec: &mut Recorder,
    sut: &mut Sut,
    fx: &Fixtures,
    repo: &mut Repo,
) -> Result<(), String> {
    rec.step(Scenario::Dnf5Held, || held(sut))?;
    rec.step(Scenario::Dnf5Unsigned, || unsigned(sut, fx, repo))?;
    rec.step(Scenario::Dnf5PinGpgme2, || pin_with_gpgme2(sut, fx))?;
    Ok(())
}

/// The `[[packages]]` entries of the versionlock file: (name, comparator,
/// value) of each single-condition entry, or an error for any other.
fn lock_entries(c: &Container) -> Result<Vec<(String, String, String)>, String> {
    let text = c.read(LOCK_FILE).ok_or(format!("no {LOCK_FILE}"))?;
    let mut out = Vec::new();
    for block in text.split("[[packages]]").skip(1) {
        let value = |k: &str| -> Option<String> {
            block.lines().find_map(|l| {
                let (a, b) = l.split_once('=')?;
                (a.trim() == k).then(|| b.trim().trim_matches('"').to_string())
            })
        };
        if block.matches("[[packages.conditions]]").count() != 1 {
            return Err(format!("an entry with other than one condition:\n{text}"));
        }
        let (Some(n), Some(cmp), Some(v)) = (value("name"), value("comparator"), value("value"))
        else {
            return Err(format!("an entry the test cannot read:\n{text}"));
        };
        out.push((n, cmp, v));
    }
    Ok(out)
}

fn installed_vr(c: &Container) -> Result<String, String> {
    Ok(
        c.ok(&["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", AGENT])?
            .trim()
            .to_string(),
    )
}

fn held(sut: &mut Sut) -> Result<String, String> {
    let c = sut.c;
    let vr = installed_vr(c)?;
    let entries = lock_entries(c)?;
    let want = vec![(AGENT.to_string(), "=".to_string(), vr.clone())];
    if entries != want {
        return Err(format!(
            "{LOCK_FILE} has {entries:?}, expected exactly {want:?}"
        ));
    }
    let repo_file = c.read(Pm::Dnf.repo_file()).unwrap_or_default();
    if repo_file
        .lines()
        .any(|l| l.trim_start().starts_with("exclude"))
    {
        return Err(format!("an exclude= in the repository file:\n{repo_file}"));
    }
    // The whole journal of the updater's runs (sut.journal() is the tail).
    let journal = sut.journal_since(0)?;
    if !journal.contains("judged as dnf resolves them (dnf --dump-repo-config=teleport)")
        || journal.contains("view of the repository could not be read")
    {
        return Err(format!("the audit did not use dnf5's view:\n{journal}"));
    }
    for want in [
        "--no-plugins",
        "--setopt=disable_excludes=*",
        "--setopt=teleport.pkg_gpgcheck=True",
        "--repo=teleport",
    ] {
        if !journal
            .lines()
            .any(|l| l.contains("dnf -y") && l.contains(want))
        {
            return Err(format!(
                "no dnf command with {want} in the journal:\n{journal}"
            ));
        }
    }
    if journal.contains("--disableexcludes") || journal.contains("exit_on_lock") {
        return Err(format!("dnf 4's syntax in the journal:\n{journal}"));
    }
    let pid = sut.show(AGENT_UNIT, "MainPID")?;
    c.ok(&["dnf", "-y", "upgrade", "--refresh"])?;
    if installed_vr(c)? != vr || sut.show(AGENT_UNIT, "MainPID")? != pid {
        return Err(format!("dnf upgrade moved or restarted the agent ({vr})"));
    }
    Ok(format!(
        "one versionlock entry, {AGENT} = {vr}; commands in dnf5's syntax; dnf upgrade (16.0.1 offered) keeps it"
    ))
}

/// A refused run: exit 3, the agent, its process and the lock unchanged,
/// and `needle` in the run's error.
fn refused_run(sut: &Sut, needle: &str) -> Result<String, String> {
    let c = sut.c;
    let (vr, lock) = (installed_vr(c)?, c.read(LOCK_FILE));
    let pid = sut.show(AGENT_UNIT, "MainPID")?;
    let (result, status) = sut.run_service()?;
    if status != "3" {
        return Err(format!(
            "{SERVICE} ended with Result={result}, status {status}, expected 3{}",
            sut.diagnostics()
        ));
    }
    let error = sut.last_run("error")?;
    if !error.contains(needle) {
        return Err(format!(
            "the run's error ({error:?}) does not say {needle:?}{}",
            sut.diagnostics()
        ));
    }
    if installed_vr(c)? != vr
        || c.read(LOCK_FILE) != lock
        || sut.show(AGENT_UNIT, "MainPID")? != pid
    {
        return Err("the refused run changed the agent, its process or the lock".into());
    }
    Ok(error)
}

fn unsigned(sut: &mut Sut, fx: &Fixtures, repo: &mut Repo) -> Result<String, String> {
    let (c, vs) = (sut.c, sut.vs);
    let Repo::Rpm { repo: rpm_repo, .. } = repo else {
        return Err("the dnf5 row's repository is not an rpm repository".into());
    };
    let program = std::fs::read(&fx.agent_program).map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = testkit::agent::rpm_spec(&program, AGENT, UNSIGNED);
    let rpm = testkit::rpm::build_rpm(&spec, tmp.path());
    let in_repo = rpm_repo.dir().join(rpm.file_name().unwrap());
    std::fs::copy(&rpm, &in_repo).map_err(|e| e.to_string())?;
    rpm_repo.reindex(Some(&fx.key));
    let before = sut.agent_version()?.unwrap_or_default();
    vs.set(UNSIGNED, true);
    let first = refused_run(sut, "Signature verification failed")?;

    // An operator's override turns the package check off: dnf5 resolves
    // it so (the .repo file alone still reads gpgcheck=1).
    c.write(OVERRIDE, "[teleport]\npkg_gpgcheck=0\n")?;
    let dump = c.ok(&["dnf", "--dump-repo-config=teleport"])?;
    if !dump.lines().any(|l| l.trim() == "pkg_gpgcheck = 0") {
        return Err(format!("dnf5 does not resolve the override:\n{dump}"));
    }
    let second = refused_run(sut, "dnf resolves it to 0")?;
    c.remove(OVERRIDE)?;
    std::fs::remove_file(&in_repo).map_err(|e| e.to_string())?;
    rpm_repo.reindex(Some(&fx.key));
    vs.set(&before, false);
    Ok(format!(
        "unsigned {UNSIGNED}: exit 3 ({first}); with {OVERRIDE} pkg_gpgcheck=0: exit 3 ({second}); {AGENT} stays {before}, lock unchanged"
    ))
}

/// gpgme 1.x's library, moved out of the loader's way and back.
const GPGME1_MOVED: &str = "/root/gpgme1-moved";

/// Key pinning with gpgme 2 alone: forky's dnf5 brought `libgpgme.so.45`;
/// trixie's `libgpgme.so.11` is moved away for the step (and back). The
/// pin of the real release key passes through gpgme 2, a wrong pin is
/// refused: gpgme 2 really read the keys.
fn pin_with_gpgme2(sut: &mut Sut, fx: &Fixtures) -> Result<String, String> {
    let (c, vs) = (sut.c, sut.vs);
    let libdir = c.ok(&[
        "sh",
        "-c",
        "dirname \"$(readlink -f /usr/lib/*/libgpgme.so.45)\"",
    ])?;
    let libdir = libdir.trim().to_string();
    c.ok(&["mkdir", "-p", GPGME1_MOVED])?;
    c.ok(&[
        "sh",
        "-c",
        &format!("mv {libdir}/libgpgme.so.11* {GPGME1_MOVED}/ && ldconfig"),
    ])?;
    let result = pinned_dry_runs(sut, fx);
    let restored = c.ok(&[
        "sh",
        "-c",
        &format!("mv {GPGME1_MOVED}/* {libdir}/ && ldconfig"),
    ]);
    let _ = c.remove(&format!("{CONFIG_DIR}/trusted-keys"));
    vs.set(&sut.agent_version()?.unwrap_or_default(), false);
    restored?;
    result
}

fn pinned_dry_runs(sut: &mut Sut, fx: &Fixtures) -> Result<String, String> {
    let left = sut
        .c
        .ok(&["sh", "-c", "ldconfig -p | grep libgpgme || true"])?;
    if left.contains("libgpgme.so.11") || !left.contains("libgpgme.so.45") {
        return Err(format!("not a gpgme 2 only host:\n{left}"));
    }
    let (code, trust) = sut.pinned_dry_run("16.0.1", &fx.key.fingerprint())?;
    if code != Some(0) || !trust.contains("pinned key") || !trust.contains("(libgpgme.so.45)") {
        return Err(format!(
            "the pinned dry-run with gpgme 2 (exit {code:?}):\n{trust}"
        ));
    }
    let (code, said) = sut.pinned_dry_run("16.0.1", "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678")?;
    if code != Some(3) || !said.contains("none of the fingerprints") {
        return Err(format!(
            "a wrong pin with gpgme 2: exit {code:?}, expected 3:\n{said}"
        ));
    }
    let last = trust.rsplit("; ").next().unwrap_or("");
    let gpgme = last.strip_suffix(')').unwrap_or(last);
    Ok(format!(
        "release key pinned: dry-run exit 0, {gpgme}; a wrong pin: exit 3"
    ))
}
