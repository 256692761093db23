//! Channel moves with the real apt-get, dnf and zypper: a root on
//! `stable/v15` with 15.4.3 installed is moved to `stable/v16`, found again,
//! refreshed and updated to 16.0.0; a move to `stable/v17` (not served)
//! fails and `restore()` brings the definition back byte for byte, and the
//! old channel works again.

mod site;

use std::path::Path;

use backends::{Backend, Channel, Error, Source};
use site::*;

/// A Teleport definition with company: comments, a `deb-src` line, and an
/// entry of another repository that also says `stable/v15`, none of which
/// may change except Teleport's own channel. Returns (old, expected new).
fn decorate(env: &Env) -> (String, String) {
    let s = site();
    match env.pm {
        Pm::Apt if env.repo_file.ends_with(".sources") => {
            let old = format!(
                "# Teleport, channel stable/v15\nTypes: deb\nURIs: {url}\nSuites: bookworm\nComponents: stable/v15\nSigned-By: {KEYRING}\n\n# Not Teleport\nTypes: deb\nURIs: http://127.0.0.1:9/other\nSuites: bookworm\nComponents: stable/v15\nSigned-By: {KEYRING}\nEnabled: no\n",
                url = s.apt_url()
            );
            let new = old.replacen("Components: stable/v15", "Components: stable/v16", 1);
            (old, new)
        }
        Pm::Apt => {
            let line = |c: &str| {
                format!(
                    "deb [signed-by={KEYRING}]   {} bookworm {c}  # Teleport {c}",
                    s.apt_url()
                )
            };
            let other = "# deb [signed-by=/usr/share/keyrings/other.gpg] http://127.0.0.1:9/other bookworm stable/v15\n";
            let old = format!(
                "# Teleport (stable/v15)\n{}\n{other}deb-src [signed-by={KEYRING}] {} bookworm stable/v15\n",
                line("stable/v15"),
                s.apt_url()
            );
            let new = format!(
                "# Teleport (stable/v15)\n{}\n{other}deb-src [signed-by={KEYRING}] {} bookworm stable/v16\n",
                line("stable/v15").replacen("bookworm stable/v15", "bookworm stable/v16", 1),
                s.apt_url()
            );
            (old, new)
        }
        Pm::Dnf | Pm::Zypper => {
            let base = env.read(&env.repo_file);
            let old = format!(
                "# Teleport, stable/v15\n{base}\n[other]\nname=Not Teleport (stable/v15)\nbaseurl=http://127.0.0.1:9/other/stable/v15/\nenabled=0\ngpgcheck=1\n"
            );
            let new = old.replacen(&s.rpm_url("stable/v15"), &s.rpm_url("stable/v16"), 1);
            (old, new)
        }
    }
}

/// The root's definition decorated (see [`decorate`]), and the source found
/// for it after a first refresh (as on a host that has run apt-get update).
fn prepared(env: &Env) -> (Box<dyn Backend>, Source, String, String) {
    let b = env.backend();
    let first = b.locate_source(&pkg()).unwrap();
    b.refresh(&first).unwrap();
    let (old, new) = decorate(env);
    env.write(&env.repo_file, &old);
    let src = b.locate_source(&pkg()).unwrap();
    b.audit_trust(&src).unwrap();
    (b, src, old, new)
}

fn move_to_16_and_update(pm: Pm, deb822: bool) {
    let env = Env::new(pm, "15.4.3", deb822);
    let (b, src, old, new) = prepared(&env);
    assert_eq!(b.channel(&src).unwrap(), Some(Channel::Stable(15)));
    assert_eq!(src.file, env.file(&env.repo_file));

    // Planning writes nothing; already there is nothing to do.
    assert_eq!(b.plan_channel_move(&src, 15).unwrap(), None);
    let planned = b.plan_channel_move(&src, 16).unwrap().unwrap();
    assert_eq!(
        planned.describe(),
        format!("{}: stable/v15 -> stable/v16", env.repo_file)
    );
    assert_eq!(env.read(&env.repo_file), old);
    assert!(!planned.backup.exists());

    let m = b.move_channel(&src, 16).unwrap().unwrap();
    assert_eq!(m.file, Path::new(&env.repo_file));
    assert_eq!(m.real_path, src.file);
    assert_eq!(
        m.backup,
        env.file(&format!("{}.teleport-upgrade.bak", env.repo_file))
    );
    assert_eq!(
        (m.from.clone(), m.to.clone()),
        (Channel::Stable(15), Channel::Stable(16))
    );
    assert_eq!(std::fs::read_to_string(&m.backup).unwrap(), old);
    assert_eq!(
        env.read(&env.repo_file),
        new,
        "only Teleport's channel changes"
    );
    assert_eq!(
        (m.old_text.as_str(), m.new_text.as_str()),
        (old.as_str(), new.as_str())
    );

    // Found again, by discovery and by re-reading the same definition.
    let src2 = b.locate_source(&pkg()).unwrap();
    assert_eq!(b.reload_source(&src).unwrap(), src2);
    assert_eq!(b.channel(&src2).unwrap(), Some(Channel::Stable(16)));
    assert_eq!(src2.file, src.file);
    if pm != Pm::Apt {
        assert_eq!(src2.uris, vec![site().rpm_url("stable/v16")]);
    }
    b.audit_trust(&src2).unwrap();
    let now = b.update_to(&src2, &pkg(), &v("16.0.0")).unwrap();
    assert_eq!(now.version.as_str(), reported(pm, "16.0.0"));
    assert_eq!(
        env.version().as_deref(),
        Some(reported(pm, "16.0.0").as_str())
    );
    assert_eq!(
        env.teleport_output().as_deref(),
        Some("Teleport v16.0.0 git: go1.22")
    );
    assert!(b.is_held(&src2, &pkg()).unwrap());
    // Nothing more to move.
    assert_eq!(b.move_channel(&src2, 16).unwrap(), None);
    m.remove_backup().unwrap();
    assert!(!m.backup.exists());
    env.end_gpg_agents();
}

all_backends!(a_move_to_16_is_found_refreshed_and_installed, |pm| {
    move_to_16_and_update(pm, false)
});

#[test]
fn apt_deb822_move_to_16() {
    move_to_16_and_update(Pm::Apt, true)
}

all_backends!(a_move_to_an_unserved_channel_is_restored, |pm| {
    let env = Env::new(pm, "15.4.3", false);
    let (b, src, old, _) = prepared(&env);
    let original = std::fs::read(env.file(&env.repo_file)).unwrap();
    let m = b.move_channel(&src, 17).unwrap().unwrap();
    assert_eq!(
        m.describe(),
        format!("{}: stable/v15 -> stable/v17", env.repo_file)
    );
    let src17 = b.reload_source(&src).unwrap();
    assert_eq!(b.channel(&src17).unwrap(), Some(Channel::Stable(17)));
    // Every backend fails at the refresh (apt's own exit code would not
    // say it: see the apt backend's refresh).
    let err = b.refresh(&src17).expect_err("stable/v17 is not served");
    eprintln!("{pm:?} on stable/v17: {err}");
    assert!(!err.is_untrusted(), "{err:?}");
    assert_eq!(
        env.version().as_deref(),
        Some(reported(pm, "15.4.3").as_str())
    );

    m.restore().unwrap();
    let restored = std::fs::read(env.file(&env.repo_file)).unwrap();
    assert!(
        restored == original,
        "not restored byte for byte:\n{}",
        String::from_utf8_lossy(&restored)
    );
    assert_eq!(env.read(&env.repo_file), old);
    // The old channel works: found, refreshed, and it installs.
    let back = b.locate_source(&pkg()).unwrap();
    assert_eq!(b.channel(&back).unwrap(), Some(Channel::Stable(15)));
    assert_eq!(back, b.reload_source(&src).unwrap());
    let now = b.update_to(&back, &pkg(), &v("15.4.2")).unwrap();
    assert_eq!(now.version.as_str(), reported(pm, "15.4.2"));
    // 16.0.0 is not on stable/v15.
    let err = b.update_to(&back, &pkg(), &v("16.0.0")).unwrap_err();
    assert!(matches!(err, Error::VersionNotFound { .. }), "{err:?}");
    env.end_gpg_agents();
});

all_backends!(cloud_and_rolling_are_left_alone, |pm| {
    let env = Env::new(pm, "15.4.3", false);
    let b = env.backend();
    let src = b.locate_source(&pkg()).unwrap();
    for (token, ch) in [
        ("stable/cloud", Channel::Cloud),
        ("stable/rolling", Channel::Rolling),
    ] {
        let text = env.read(&env.repo_file).replace("stable/v15", token);
        env.write(&env.repo_file, &text);
        let src = b.reload_source(&src).unwrap();
        assert_eq!(b.channel(&src).unwrap(), Some(ch));
        assert_eq!(b.move_channel(&src, 16).unwrap(), None);
        assert_eq!(env.read(&env.repo_file), text);
        let text = text.replace(token, "stable/v15");
        env.write(&env.repo_file, &text);
    }
    let bak = env.file(&format!("{}.teleport-upgrade.bak", env.repo_file));
    assert!(!bak.exists());
});
