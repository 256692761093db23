//! Unit tests of the state file.
use super::*;

#[test]
fn words_round_trip_and_unknown_words_are_kept() {
    for r in RunResult::ALL {
        let j = serde_json::to_string(r).unwrap();
        assert_eq!(j, format!("\"{}\"", r.as_str()));
        assert_eq!(&serde_json::from_str::<RunResult>(&j).unwrap(), r);
    }
    for e in [
        crate::error::Exit::Ok,
        crate::error::Exit::Usage,
        crate::error::Exit::Interrupted,
    ] {
        let w = RunResult::from(e);
        assert!(!matches!(w, RunResult::Other(_)), "{e:?}");
    }
    let odd: Decided = serde_json::from_str("\"later-word\"").unwrap();
    assert_eq!(odd, Decided::Other("later-word".into()));
    assert_eq!(serde_json::to_string(&odd).unwrap(), "\"later-word\"");
}

#[test]
fn round_trip_and_garbage() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sub/state.json");
    let s = State {
        last_run: Some(LastRun {
            time: 5,
            result: "ok".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    save(&p, &s).unwrap();
    let back = load(&p);
    assert_eq!(back.last_run, s.last_run);
    assert_eq!(back.schema, 1);
    // no temporary files left behind
    assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
}

fn with_failed(version: &str) -> State {
    State {
        updates_total: 7,
        failed_target: Some(FailedTarget {
            version: version.into(),
            time: 9,
            why: "restart loop".into(),
            critical: false,
        }),
        ..Default::default()
    }
}

fn aside_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect()
}

#[test]
fn a_damaged_file_is_kept_aside_and_its_failed_target_recovered() {
    let good = serde_json::to_string_pretty(&with_failed("15.4.4")).unwrap();
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "truncated",
            good[..good.len() - 3].to_string(),
            Some("15.4.4"),
        ),
        ("garbage", "{not json".into(), None),
        (
            "wrong type",
            good.replace("\"updates_total\": 7", "\"updates_total\": \"seven\""),
            Some("15.4.4"),
        ),
        (
            "newer schema",
            good.replace("\"schema\": 0", "\"schema\": 9"),
            Some("15.4.4"),
        ),
    ];
    for (name, text, want) in cases {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        std::fs::write(&p, &text).unwrap();
        let (peeked, problem) = peek(&p);
        assert_eq!(
            peeked.failed_target.as_ref().map(|f| f.version.as_str()),
            want,
            "{name}: peek"
        );
        assert!(problem.unwrap().contains("could not be used"), "{name}");
        assert!(
            aside_files(d.path()).is_empty(),
            "{name}: peek changes nothing"
        );
        let st = load(&p);
        assert_eq!(
            st.failed_target.as_ref().map(|f| f.version.as_str()),
            want,
            "{name}: load"
        );
        let aside = aside_files(d.path());
        assert_eq!(aside.len(), 1, "{name}: kept aside");
        assert_eq!(
            std::fs::read_to_string(d.path().join(&aside[0])).unwrap(),
            text
        );
        // written back at once: a second load in the same run agrees
        let again = load(&p);
        assert_eq!(again.failed_target, st.failed_target, "{name}: reload");
        assert!(again.recovered.is_some());
        assert_eq!(aside_files(d.path()).len(), 1, "{name}: not moved twice");
        let (_, note) = peek(&p);
        assert!(
            note.unwrap().contains("kept as"),
            "{name}: status reports it"
        );
    }
}

#[test]
fn a_fifo_or_a_huge_file_is_not_read() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("state.json");
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (_, problem) = peek(&p);
    assert!(problem.unwrap().contains("FIFO"));
    let st = load(&p);
    assert!(st.recovered.unwrap().why.contains("FIFO"));
    std::fs::write(&p, vec![b' '; 2 * 1024 * 1024]).unwrap();
    assert!(load(&p).recovered.unwrap().why.contains("larger than"));
}
