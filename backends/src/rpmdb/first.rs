//! The first installed of several candidate packages, in one `rpm -q`
//! (a no-op asks which of teleport-ent-fips, teleport-ent and teleport is
//! installed: one rpm process instead of one per candidate).

use super::*;

/// Parse the query's output: the first candidate (in `candidates`' order)
/// with an installed instance, at its last listed instance (multiversion,
/// as [`installed`] does). rpm prints "package X is not installed" for the
/// others; `Ok(None)` when it says that of every candidate, an error when
/// the output is neither.
pub fn parse_first(
    candidates: &[PkgName],
    out: &str,
) -> std::result::Result<Option<Installed>, String> {
    let mut found: Vec<(&str, &str)> = Vec::new();
    let mut missing = 0;
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('\t') {
            Some((name, v)) => found.push((name, v)),
            None if line.ends_with("is not installed") => missing += 1,
            None => return Err(format!("unexpected line {line:?}")),
        }
    }
    for c in candidates {
        if let Some((_, v)) = found.iter().rev().find(|(n, _)| *n == c.as_str()) {
            let v = v.strip_prefix("0:").unwrap_or(v);
            let version = PkgVersion::parse(v).map_err(|_| format!("{c}: the version {v:?}"))?;
            return Ok(Some(Installed {
                name: c.clone(),
                version,
            }));
        }
    }
    if missing == candidates.len() || found.is_empty() && missing > 0 {
        Ok(None)
    } else {
        Err(format!("no candidate in {out:?}"))
    }
}

/// The first of `candidates` that is installed, in one rpm process at
/// most ([`known::rows`]).
pub fn first_installed(
    system: &System,
    runner: &Runner,
    candidates: &[PkgName],
) -> Result<Option<Installed>> {
    if candidates.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = candidates.iter().map(PkgName::as_str).collect();
    let rows = known::rows(system, runner, &names)?;
    let out: String = rows
        .iter()
        .map(|r| format!("{}\t{}\n", r.name, r.evr))
        .chain(
            candidates
                .iter()
                .filter(|c| !rows.iter().any(|r| r.name == c.as_str()))
                .map(|c| format!("package {c} is not installed\n")),
        )
        .collect();
    parse_first(candidates, &out).map_err(|detail| Error::Parse {
        what: "the versions rpm reports".into(),
        detail,
    })
}

#[cfg(test)]
mod first_tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<PkgName> {
        n.iter().map(|s| PkgName::parse(s).unwrap()).collect()
    }

    #[test]
    fn the_first_candidate_installed_in_order() {
        let c = names(&["teleport-ent-fips", "teleport-ent", "teleport"]);
        let out = "package teleport-ent-fips is not installed\nteleport-ent\t15.4.3-1\nteleport\t0:14.0.0-1\n";
        let i = parse_first(&c, out).unwrap().unwrap();
        assert_eq!(
            (i.name.as_str(), i.version.as_str()),
            ("teleport-ent", "15.4.3-1")
        );
        // multiversion: the last listed instance; epoch kept when nonzero
        let out = "package teleport-ent-fips is not installed\nteleport-ent\t15.4.2-1\nteleport-ent\t1:15.4.3-1\npackage teleport is not installed\n";
        let i = parse_first(&c, out).unwrap().unwrap();
        assert_eq!(i.version.as_str(), "1:15.4.3-1");
        let none = "package teleport-ent-fips is not installed\npackage teleport-ent is not installed\npackage teleport is not installed\n";
        assert_eq!(parse_first(&c, none).unwrap(), None);
        assert!(parse_first(&c, "error: rpmdb open failed\n").is_err());
        assert!(parse_first(&c, "").is_err());
    }
}
