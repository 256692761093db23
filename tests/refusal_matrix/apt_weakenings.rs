//! Part of `tests/refusal_matrix.rs` (see there).

use super::*;

// ---- apt: weakenings in ordinary apt syntax, seen as apt reads them, and
// enforced away on the command line ----
//
// Each row makes the repository unsigned, applies one weakening, and first
// proves that the plain apt-get in the same root does install the unsigned
// 15.4.3 (so the weakening is real); the root is then put back (15.4.2,
// lists and archives emptied) and the updater must refuse: exit 3, the
// agent and dpkg status unchanged, a message naming the cause.

/// One apt weakening: a label, the change (it returns the environment the
/// caller sets, for both the plain apt-get and the updater), what the audit
/// must name, and whether the audit refuses before any package operation.
pub(crate) struct AptWeakening {
    label: &'static str,
    apply: fn(&AptWorld) -> Vec<(String, String)>,
    needles: fn(&AptWorld) -> Vec<String>,
    before_any_fetch: bool,
}

pub(crate) const WEAK_ON: &str =
    "Acquire::AllowInsecureRepositories \"on\";\nAPT::Get::AllowUnauthenticated \"on\";\n";

pub(crate) fn weak_conf(w: &AptWorld, text: &str) {
    w.root.write("/etc/apt/apt.conf.d/99weak", text.as_bytes());
}

/// A file outside the root's apt.conf.d holding `text` (host path).
pub(crate) fn outside_file(w: &AptWorld, text: &str) -> PathBuf {
    let p = w.dir.path().join("elsewhere/weak.conf");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

pub(crate) fn apt_weakenings() -> Vec<AptWeakening> {
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    vec![
        AptWeakening {
            label: "\"on\" spelling",
            apply: |w| {
                weak_conf(w, WEAK_ON);
                vec![]
            },
            needles: |_| {
                s(&[
                    "99weak:1",
                    "Acquire::AllowInsecureRepositories \"on\"",
                    "99weak:2",
                    "APT::Get::AllowUnauthenticated \"on\"",
                ])
            },
            before_any_fetch: true,
        },
        AptWeakening {
            label: "\"enable\" spelling",
            apply: |w| {
                weak_conf(
                    w,
                    "Acquire::AllowInsecureRepositories \"enable\";\nAPT::Get::AllowUnauthenticated \"Enable\";\n",
                );
                vec![]
            },
            needles: |_| {
                s(&[
                    "99weak:1",
                    "\"enable\"",
                    "99weak:2",
                    "AllowUnauthenticated \"Enable\"",
                ])
            },
            before_any_fetch: true,
        },
        AptWeakening {
            label: "block syntax",
            apply: |w| {
                weak_conf(
                    w,
                    "Acquire {\n  AllowInsecureRepositories \"true\";\n};\nAPT { Get { AllowUnauthenticated \"true\"; }; };\n",
                );
                vec![]
            },
            needles: |_| {
                s(&[
                    "99weak:2",
                    "AllowInsecureRepositories",
                    "99weak:4",
                    "AllowUnauthenticated",
                ])
            },
            before_any_fetch: true,
        },
        AptWeakening {
            label: "#include from outside apt.conf.d",
            apply: |w| {
                let f = outside_file(w, WEAK_ON);
                weak_conf(
                    w,
                    &format!("// local settings\n#include \"{}\";\n", f.display()),
                );
                vec![]
            },
            needles: |w| {
                let f = w.dir.path().join("elsewhere/weak.conf");
                vec![
                    format!("{}:1", f.display()),
                    "AllowInsecureRepositories".into(),
                    format!("{}:2", f.display()),
                ]
            },
            before_any_fetch: true,
        },
        AptWeakening {
            label: "trusted=on on the source",
            apply: |w| {
                w.root.write(
                    "/etc/apt/sources.list.d/teleport.list",
                    format!(
                        "deb [signed-by={KEYRING} trusted=on] {}/ bookworm stable/v15\n",
                        w.repo_server.url()
                    )
                    .as_bytes(),
                );
                vec![]
            },
            needles: |_| s(&["teleport.list:1", "trusted=on", "reads \"on\" as true"]),
            before_any_fetch: true,
        },
        AptWeakening {
            label: "the caller's APT_CONFIG",
            apply: |w| {
                // The caller's APT_CONFIG: the root's own settings plus the
                // weakening, as an operator's shell might export it.
                let base = std::fs::read_to_string(w.root.config_path()).unwrap();
                let f = outside_file(w, &format!("{base}{WEAK_ON}"));
                vec![("APT_CONFIG".into(), f.display().to_string())]
            },
            // The updater's children never see it: apt (with a clean
            // environment) refuses the unsigned repository itself.
            needles: |_| {
                s(&[
                    "APT_CONFIG",
                    "from the environment: package managers run with a clean environment",
                    "is not signed",
                ])
            },
            before_any_fetch: false,
        },
    ]
}

/// The plain apt-get, in the same root and with the caller's environment
/// `env`, installs the unsigned 15.4.3; then the root is put back.
pub(crate) fn prove_plain_apt_installs_unsigned(
    w: &AptWorld,
    env: &[(String, String)],
    label: &str,
) {
    let apt = |args: &[&str]| {
        let mut c = w.root.command("apt-get");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.args(args).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let up = apt(&["update"]);
    let inst = apt(&["install", "-y", "teleport-ent=15.4.3"]);
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{label}: the weakening is not real: plain apt-get did not install the unsigned package\n{up}\n{inst}"
    );
    // Back to the state the updater must find and leave.
    w.root.dpkg_install(&world::apt::deb("15.4.2"));
    for d in ["/var/lib/apt/lists", "/var/cache/apt/archives"] {
        for e in std::fs::read_dir(w.root.file(d)).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

/// Run the updater (with `env`, plus `extra`), and check the refusal.
pub(crate) fn expect_apt_refusal(
    w: &AptWorld,
    env: &[(String, String)],
    needles: &[String],
    label: &str,
    before_any_fetch: bool,
) {
    let db = w.package_db();
    let requests = w.repo_server.requests().len();
    let mut c = w.cmd(&["run"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let r = world::Run(out);
    eprintln!("{label}:\n{}", r.stderr());
    assert_eq!(r.code(), 3, "{label}: exit\n{}", r.stderr());
    for n in needles {
        assert!(
            r.stderr().contains(n.as_str()),
            "{label}: the logs do not name {n:?}\n{}",
            r.stderr()
        );
    }
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "{label}: the agent moved"
    );
    assert_eq!(w.package_db(), db, "{label}: the dpkg status changed");
    assert!(!w.held(), "{label}: a hold appeared");
    if before_any_fetch {
        assert_eq!(
            w.repo_server.requests().len(),
            requests,
            "{label}: refused before any package operation"
        );
    }
    assert_eq!(w.state()["last_run"]["result"], "refused", "{label}");
}

/// The audit sees weakening `i` as apt reads it and refuses, naming it.
pub(crate) fn audit_refuses(i: usize) {
    let row = &apt_weakenings()[i];
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.repo.sign_with(None);
    let env = (row.apply)(&w);
    prove_plain_apt_installs_unsigned(&w, &env, row.label);
    expect_apt_refusal(
        &w,
        &env,
        &(row.needles)(&w),
        row.label,
        row.before_any_fetch,
    );
}

/// With the audit switched off (the debug-build-only
/// `TELEPORT_UPGRADE_TEST_SKIP_APT_CONFIG_AUDIT=1`), the options the
/// updater forces on apt's command line (and the source options it does
/// not carry) alone stop the unsigned install of weakening `i`: apt itself
/// refuses the repository.
pub(crate) fn enforcement_refuses(i: usize) {
    let row = &apt_weakenings()[i];
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.repo.sign_with(None);
    let mut env = (row.apply)(&w);
    prove_plain_apt_installs_unsigned(&w, &env, row.label);
    env.push((backends::apt::SKIP_CONFIG_AUDIT_ENV.into(), "1".into()));
    // apt itself refuses (not the updater's second look at apt's output).
    let needles = vec![
        "apt reported a signature or integrity failure".to_string(),
        "is not signed".to_string(),
    ];
    expect_apt_refusal(&w, &env, &needles, row.label, false);
}

/// `<name>::audit` and `<name>::enforcement` for row `i` of
/// [`apt_weakenings`].
macro_rules! apt_weakening {
    ($name:ident, $i:expr) => {
        mod $name {
            #[test]
            fn audit() {
                super::audit_refuses($i)
            }
            #[test]
            fn enforcement() {
                super::enforcement_refuses($i)
            }
        }
    };
}

apt_weakening!(apt_on_spelling, 0);
apt_weakening!(apt_enable_spelling, 1);
apt_weakening!(apt_block_syntax, 2);
apt_weakening!(apt_include_from_outside_apt_conf_d, 3);
apt_weakening!(apt_trusted_on_source, 4);
apt_weakening!(apt_callers_apt_config, 5);

#[test]
pub(crate) fn every_apt_weakening_has_its_rows() {
    assert_eq!(apt_weakenings().len(), 6);
}
