use super::tokens::url_channel;
use super::*;
use crate::types::System;

fn uris(u: &[&str]) -> Vec<String> {
    u.iter().map(|s| s.to_string()).collect()
}

const TP: &str = "https://apt.releases.teleport.dev/debian";

#[test]
fn channels_parse_and_print() {
    assert_eq!(Channel::parse("stable/v15"), Channel::Stable(15));
    assert_eq!(Channel::parse("stable/cloud"), Channel::Cloud);
    assert_eq!(Channel::parse("stable/rolling"), Channel::Rolling);
    for other in [
        "stable/v015",
        "stable/v",
        "stable/v15.1",
        "stable/v-1",
        "main",
        "stable/V15",
        "stable/v99999999999999999999999",
    ] {
        assert_eq!(
            Channel::parse(other),
            Channel::Other(other.into()),
            "{other}"
        );
        assert_eq!(Channel::parse(other).to_string(), other);
    }
    for t in ["stable/v15", "stable/cloud", "stable/rolling", "stable/v0"] {
        assert_eq!(Channel::parse(t).to_string(), t);
    }
    assert_eq!(Channel::Stable(16).major(), Some(16));
    assert_eq!(Channel::Cloud.major(), None);
}

#[test]
fn list_lines_change_only_the_component_of_teleport_entries() {
    let u = uris(&[TP]);
    let text = "# Teleport (stable/v15)\n\
        deb [signed-by=/usr/share/keyrings/teleport-archive-keyring.asc arch=amd64]  https://apt.releases.teleport.dev/debian/\tbookworm   stable/v15 # pinned to stable/v15\r\n\
        deb-src [signed-by=/k.asc] https://apt.releases.teleport.dev/debian bookworm stable/v15\n\
        deb http://deb.debian.org/debian bookworm main stable/v15\n\
        #deb https://apt.releases.teleport.dev/debian bookworm stable/v15\n\
        deb https://apt.releases.teleport.dev/debian bookworm stable/v15";
    let f = Format::AptList { uris: &u };
    assert_eq!(find_channel(text, f), Some(Channel::Stable(15)));
    let new = rewrite_channel(text, f, 16).unwrap().unwrap();
    let want = text
        .replacen("bookworm   stable/v15", "bookworm   stable/v16", 1)
        .replacen(
            "debian bookworm stable/v15\ndeb http",
            "debian bookworm stable/v16\ndeb http",
            1,
        )
        .replace(
            "\ndeb https://apt.releases.teleport.dev/debian bookworm stable/v15",
            "\ndeb https://apt.releases.teleport.dev/debian bookworm stable/v16",
        );
    assert_eq!(new, want);
    // Comment, other repository, commented-out line: untouched.
    assert!(new.contains("# pinned to stable/v15\r\n"));
    assert!(new.contains("deb http://deb.debian.org/debian bookworm main stable/v15\n"));
    assert!(new.contains("#deb https://apt.releases.teleport.dev/debian bookworm stable/v15\n"));
    assert_eq!(find_channel(&new, f), Some(Channel::Stable(16)));
    // Back again: byte for byte.
    assert_eq!(rewrite_channel(&new, f, 15).unwrap().unwrap(), text);
    // Already there.
    assert_eq!(rewrite_channel(text, f, 15).unwrap(), None);
}

#[test]
fn cloud_rolling_and_others_are_left_alone() {
    let u = uris(&[TP]);
    let f = Format::AptList { uris: &u };
    for (comp, ch) in [
        ("stable/cloud", Channel::Cloud),
        ("stable/rolling", Channel::Rolling),
        ("main", Channel::Other("main".into())),
    ] {
        let text = format!("deb [signed-by=/k] {TP} bookworm {comp}\n");
        assert_eq!(find_channel(&text, f), Some(ch));
        assert_eq!(rewrite_channel(&text, f, 16).unwrap(), None, "{comp}");
    }
}

#[test]
fn disagreeing_entries_are_left_alone() {
    let u = uris(&[TP]);
    let f = Format::AptList { uris: &u };
    for text in [
        format!("deb {TP} bookworm stable/v15\ndeb {TP} bookworm stable/v16\n"),
        format!("deb {TP} bookworm stable/v15 stable/v16\n"),
        format!("deb {TP} bookworm stable/v15\ndeb {TP} bookworm stable/cloud\n"),
        format!("deb {TP} ./\n"),
    ] {
        assert_eq!(find_channel(&text, f), None, "{text}");
        assert_eq!(rewrite_channel(&text, f, 17).unwrap(), None, "{text}");
    }
    // Several components, one of them the channel.
    let text = format!("deb {TP} bookworm extras stable/v15\n");
    assert_eq!(find_channel(&text, f), Some(Channel::Stable(15)));
    assert_eq!(
        rewrite_channel(&text, f, 16).unwrap().unwrap(),
        format!("deb {TP} bookworm extras stable/v16\n")
    );
}

#[test]
fn a_file_without_the_entry_is_an_error() {
    let u = uris(&["http://elsewhere/"]);
    let text = format!("deb {TP} bookworm stable/v15\n");
    let f = Format::AptList { uris: &u };
    assert_eq!(find_channel(&text, f), None);
    assert!(rewrite_channel(&text, f, 16).is_err());
    let u = uris(&[TP]);
    assert!(rewrite_channel(&text, Format::AptList { uris: &u }, 0).is_err());
}

#[test]
fn deb822_components() {
    let u = uris(&[TP]);
    let text = "# Teleport\n\
        Types: deb\n\
        URIs: https://apt.releases.teleport.dev/debian\n\
        Suites: bookworm\n\
        Components:   stable/v15\n\
        Signed-By: /usr/share/keyrings/teleport-archive-keyring.asc\n\
        \n\
        Types: deb\n\
        URIs: http://deb.debian.org/debian\n\
        Suites: bookworm\n\
        Components: stable/v15\n\
        \n\
        Types: deb\n\
        URIs: https://apt.releases.teleport.dev/debian\n\
        Suites: bookworm\n\
        Components: stable/v15\n\
        Enabled: no\n";
    let f = Format::AptDeb822 { uris: &u };
    assert_eq!(find_channel(text, f), Some(Channel::Stable(15)));
    let new = rewrite_channel(text, f, 16).unwrap().unwrap();
    assert_eq!(
        new,
        text.replacen("Components:   stable/v15", "Components:   stable/v16", 1)
    );
    assert_eq!(rewrite_channel(&new, f, 15).unwrap().unwrap(), text);
}

#[test]
fn deb822_continued_components_and_inline_keys() {
    let u = uris(&[TP]);
    let text = "Types: deb deb-src\n\
        URIs: http://mirror.example.com/teleport https://apt.releases.teleport.dev/debian/\n\
        Suites: bookworm\n\
        Components:\n stable/v15\n\
        Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n stable/v15\n -----END PGP PUBLIC KEY BLOCK-----\n";
    let f = Format::AptDeb822 { uris: &u };
    assert_eq!(find_channel(text, f), Some(Channel::Stable(15)));
    let new = rewrite_channel(text, f, 16).unwrap().unwrap();
    assert_eq!(
        new,
        text.replacen("Components:\n stable/v15", "Components:\n stable/v16", 1)
    );
}

const REPO: &str = "# Teleport, stable/v15\n\
    [teleport]\n\
    name=Gravitational Teleport packages (stable/v15)\n\
    baseurl=https://yum.releases.teleport.dev/rhel/9/Teleport/x86_64/stable/v15\n\
    enabled=1\n\
    gpgcheck=1\n\
    repo_gpgcheck=1\n\
    gpgkey=https://yum.releases.teleport.dev/gpg\n\
    \n\
    [other]\n\
    baseurl=https://example.com/stable/v15\n";

#[test]
fn repo_baseurl() {
    let f = Format::Repo { id: "teleport" };
    assert_eq!(find_channel(REPO, f), Some(Channel::Stable(15)));
    let new = rewrite_channel(REPO, f, 16).unwrap().unwrap();
    assert_eq!(
        new,
        REPO.replacen("x86_64/stable/v15\n", "x86_64/stable/v16\n", 1)
    );
    assert_eq!(rewrite_channel(&new, f, 15).unwrap().unwrap(), REPO);
    assert_eq!(
        find_channel(REPO, Format::Repo { id: "other" }),
        Some(Channel::Stable(15))
    );
    assert!(rewrite_channel(REPO, Format::Repo { id: "nosuch" }, 16).is_err());
}

#[test]
fn repo_multi_line_and_variables() {
    let text = "[teleport]\r\n\
        baseurl = https://zypper.releases.teleport.dev/sles/15/Teleport/$basearch/stable/v15/,https://m.example.com/t/stable/v15\r\n\
        \thttps://m2.example.com/stable/v15?x=stable/v1\r\n\
        gpgcheck=1\r\n";
    let f = Format::Repo { id: "teleport" };
    assert_eq!(find_channel(text, f), Some(Channel::Stable(15)));
    let new = rewrite_channel(text, f, 16).unwrap().unwrap();
    assert_eq!(new, text.replace("stable/v15", "stable/v16"));
    // One URL without a channel: no single channel.
    let text = "[teleport]\nbaseurl=https://yum.releases.teleport.dev/x/stable/v15\n  https://mirror.example.com/teleport\n";
    assert_eq!(find_channel(text, f), None);
    assert_eq!(rewrite_channel(text, f, 16).unwrap(), None);
    // Cloud.
    let text = "[teleport]\nbaseurl=https://yum.releases.teleport.dev/rhel/9/Teleport/x86_64/stable/cloud\n";
    assert_eq!(find_channel(text, f), Some(Channel::Cloud));
    assert_eq!(rewrite_channel(text, f, 16).unwrap(), None);
}

#[test]
fn url_channels() {
    assert_eq!(
        url_channel("http://127.0.0.1:8000/stable/v15/").map(|x| x.2),
        Some("stable/v15".into())
    );
    assert_eq!(url_channel("http://h/stable/").map(|x| x.2), None);
    assert_eq!(url_channel("http://stable/v15").map(|x| x.2), None);
    assert_eq!(
        url_channel("file:///srv/stable/v15").map(|x| x.2),
        Some("stable/v15".into())
    );
    let u = "https://h/a/stable/v1/stable/v15";
    let (a, b, _) = url_channel(u).unwrap();
    assert_eq!(&u[a..b], "v15");
}

#[test]
fn an_interrupted_move_is_found_and_undone_only_when_untouched() {
    let d = tempfile::tempdir().unwrap();
    let sys = System::rooted(d.path()).unwrap();
    let real = sys.path("/etc/yum.repos.d/teleport.repo");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, REPO).unwrap();
    let f = Format::Repo { id: "teleport" };
    assert_eq!(ChannelMove::interrupted(&sys, &real, f).unwrap(), None);
    // A run applied a move and died before restoring or dropping it.
    let m = ChannelMove::plan(&sys, &real, f, 16).unwrap().unwrap();
    m.apply().unwrap();
    let Some(Interrupted::Undo(u)) = ChannelMove::interrupted(&sys, &real, f).unwrap() else {
        panic!("not found as an undoable move");
    };
    assert_eq!(u, m);
    u.restore().unwrap();
    // ... or died after restoring, before removing the backup.
    let Some(Interrupted::Undo(again)) = ChannelMove::interrupted(&sys, &real, f).unwrap() else {
        panic!("a restored file with its backup left is not undoable");
    };
    assert_eq!(
        (&again.from, &again.to),
        (&Channel::Stable(15), &Channel::Stable(15))
    );
    again.restore().unwrap();
    again.remove_backup().unwrap();
    assert_eq!(std::fs::read_to_string(&real).unwrap(), REPO);
    assert_eq!(ChannelMove::interrupted(&sys, &real, f).unwrap(), None);
    // Edited since the move (here: by hand to another channel): left.
    m.apply().unwrap();
    let edited = REPO.replace("stable/v15", "stable/cloud");
    std::fs::write(&real, &edited).unwrap();
    assert_eq!(
        ChannelMove::interrupted(&sys, &real, f).unwrap(),
        Some(Interrupted::Edited {
            file: "/etc/yum.repos.d/teleport.repo".into(),
            backup: m.backup.clone()
        })
    );
    std::fs::write(&real, format!("{}# a comment\n", m.new_text)).unwrap();
    assert!(matches!(
        ChannelMove::interrupted(&sys, &real, f).unwrap(),
        Some(Interrupted::Edited { .. })
    ));
}

#[test]
fn moves_apply_and_restore_with_mode_kept() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let sys = System::rooted(d.path()).unwrap();
    let real = sys.path("/etc/yum.repos.d/teleport.repo");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, REPO).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = Format::Repo { id: "teleport" };
    assert!(ChannelMove::plan(&sys, &real, f, 15).unwrap().is_none());
    let m = ChannelMove::plan(&sys, &real, f, 16).unwrap().unwrap();
    assert_eq!(
        m.describe(),
        "/etc/yum.repos.d/teleport.repo: stable/v15 -> stable/v16"
    );
    assert_eq!(m.to_string(), m.describe());
    // Planning wrote nothing.
    assert!(!m.backup.exists());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), REPO);
    m.apply().unwrap();
    m.apply().unwrap();
    assert_eq!(std::fs::read_to_string(&m.backup).unwrap(), REPO);
    assert_eq!(std::fs::read_to_string(&real).unwrap(), m.new_text);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&real), 0o600);
    assert_eq!(mode(&m.backup), 0o600);
    m.restore().unwrap();
    m.restore().unwrap();
    assert_eq!(std::fs::read(&real).unwrap(), REPO.as_bytes());
    assert_eq!(mode(&real), 0o600);
    m.remove_backup().unwrap();
    m.remove_backup().unwrap();
    assert!(!m.backup.exists());
    // Someone else's edit is never overwritten.
    m.apply().unwrap();
    std::fs::write(&real, "edited\n").unwrap();
    assert!(m.restore().is_err());
    assert!(m.apply().is_err());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "edited\n");
}
