//! `dry-run`'s report: the plan `run` would execute (the same
//! [`Plan`] value, built by the same planner through the same gates), step
//! by step, with the commands each step runs (from the backends' own
//! command builders, [`Backend::plan`] and [`Backend::plan_reinstall`]) and
//! what undoes it. Each command is shown once.

use std::io::Write;

use backends::{Backend, CommandLine, Installed, PkgVersion, Source};

use crate::health::{self, AgentBefore};
use crate::verify::Check;

use super::observation::Seen;
use super::plan::{Plan, Step};
use super::planning::Planned;

/// What the report shows besides the plan.
struct View<'a> {
    backend: &'a dyn Backend,
    source: &'a Source,
    installed: &'a Installed,
    before: AgentBefore,
    check: Option<&'a Check>,
    /// Show command lines in full, enforcement options included.
    verbose: bool,
    /// The version the hold applies to: the one the plan installs, else the
    /// installed one.
    held_at: Option<&'a str>,
}

/// A command line with its enforcement options (apt's `-c` and `-o`,
/// dnf's `--setopt=`) and its environment summarised: they are the same
/// on every line and forced on every call (`-v` shows them).
fn summarise(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let (mut env, mut opts, mut kept, mut i) = (0, 0, Vec::new(), 0);
    while i < words.len() {
        let w = words[i];
        let is_env = kept.is_empty()
            && w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            });
        if is_env {
            env += 1;
        } else if (w == "-o" || w == "-c") && i + 1 < words.len() {
            opts += 1;
            i += 1;
        } else if w.starts_with("--setopt=")
            || w.starts_with("-o") && w.len() > 2 && w.contains('=')
        {
            opts += 1;
        } else {
            kept.push(w);
        }
        i += 1;
    }
    if opts < 3 {
        return line.to_string();
    }
    let mut out = Vec::new();
    out.push(kept[0].to_string());
    out.push(format!(
        "[{opts} enforcement options{}; -v shows them]",
        if env > 0 {
            format!(", {env} environment variables")
        } else {
            String::new()
        }
    ));
    out.extend(kept[1..].iter().map(|w| w.to_string()));
    out.join(" ")
}

/// Print what `run` would do: the trust audit's verdict, the channel move
/// it may need, and its plan.
pub fn print(seen: &Seen, p: &Planned, verbose: bool, out: &mut dyn Write) {
    match &p.trust {
        Some(Ok(t)) => {
            let a = t.audit();
            let _ = writeln!(out, "trust:     ok ({})", a.checked.join("; "));
            for w in &a.warnings {
                let _ = writeln!(out, "trust:     WARNING: {w}");
            }
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "trust:     REFUSED: {e}");
        }
        None => {}
    }
    if let Some(c) = &p.channel {
        let _ = writeln!(out, "channel:   {c}");
    }
    let (Some(plan), Some(source)) = (&p.plan, &p.source) else {
        return;
    };
    let v = View {
        backend: seen.backend.as_ref(),
        source,
        installed: &seen.installed,
        before: seen.observed.agent,
        check: p.check.as_ref(),
        verbose,
        held_at: plan.steps.iter().find_map(|s| match s {
            Step::Install { to, .. } => Some(to.as_str()),
            _ => None,
        }),
    };
    print_plan(&v, plan, out);
}

/// The commands of the backend's update (or reinstall) sequence, split by
/// step: the first is the refresh; those up to the one naming the version
/// belong to the install (zypper lifts its lock first); the rest are the
/// hold.
fn split(cmds: Vec<CommandLine>, version: &str) -> [Vec<CommandLine>; 3] {
    let mut it = cmds.into_iter();
    let refresh: Vec<_> = it.next().into_iter().collect();
    let rest: Vec<_> = it.collect();
    let at = rest
        .iter()
        .position(|c| c.to_string().contains(version))
        .unwrap_or(0);
    let (install, hold) = rest.split_at((at + 1).min(rest.len()));
    [refresh, install.to_vec(), hold.to_vec()]
}

/// The commands step `s` runs, for the report.
fn commands(v: &View, s: &Step) -> Vec<String> {
    let pkg = &v.installed.name;
    let version = |x: &str| PkgVersion::parse(x).unwrap_or_else(|_| v.installed.version.clone());
    let show = |c: &[CommandLine]| {
        c.iter()
            .map(|c| match v.verbose {
                true => c.to_string(),
                false => summarise(&c.to_string()),
            })
            .collect::<Vec<_>>()
    };
    match s {
        Step::Jitter { .. } => Vec::new(),
        Step::FinishTransaction => {
            vec!["(only when a transaction was interrupted: dpkg --configure -a; rpm -e of the older of two versions)".into()]
        }
        Step::Refresh => {
            let [r, _, _] = split(
                v.backend.plan(v.source, pkg, &v.installed.version),
                v.installed.version.as_str(),
            );
            show(&r)
        }
        Step::Install { to, .. } => {
            let [_, i, _] = split(v.backend.plan(v.source, pkg, &version(to)), to);
            show(&i)
        }
        Step::Reinstall { version: x } => {
            let cmds = v.backend.plan_reinstall(v.source, pkg, &version(x));
            show(&cmds[1.min(cmds.len())..])
        }
        Step::Hold => {
            let at = v.held_at.map(version).unwrap_or_else(|| v.installed.version.clone());
            let [_, _, h] = split(v.backend.plan(v.source, pkg, &at), at.as_str());
            let mut out = show(&h);
            out.insert(0, "(when not held already)".into());
            out
        }
        Step::DropOldHolds => vec![
            "(the versionlock lines the updater wrote for other versions, removed from the lock list by exact text; no other line changes)".into(),
        ],
        Step::Restart => match v.before.restart() {
            Some(how) => show(&health::restart_commands(how, false)),
            None => vec![format!(
                "(no restart: {} is not running)",
                health::AGENT_UNIT
            )],
        },
        Step::Reload => vec![
            format!("systemctl reload {}", health::AGENT_UNIT),
            format!(
                "(systemctl try-restart {} when it cannot reload or the reload fails)",
                health::AGENT_UNIT
            ),
        ],
        Step::Verify => match v.check.filter(|c| c.systemd || c.readyz.is_some()) {
            Some(c) => vec![format!("wait for {}", c.describe())],
            None => Vec::new(),
        },
        Step::KeepChannel | Step::DropPrevious => Vec::new(),
        Step::KeepPrevious { .. } => vec![format!(
            "(apt: the installed version's .deb downloaded again, download only, into {}, and checked against the SHA256 of the signed Packages index; other package managers keep nothing)",
            super::kept::dir(v.backend.system()).display()
        )],
        Step::CheckInstall => vec![format!(
            "(the package's state, its {} links and the unit's ExecStart, read; nothing is run)",
            crate::layout::LINK_DIR
        )],
        Step::CheckSpace { .. } => vec![
            "(the package's sizes from the repository's metadata against statvfs of the package cache and the agent's filesystem; nothing is downloaded)".into(),
        ],
        Step::TakeSlot { .. } => vec!["POST <fleet-lock>/v1/pre-reboot (fleet-lock-protocol: true); no slot: nothing is changed, exit 1".into()],
        Step::ReleaseSlot { .. } => vec!["POST <fleet-lock>/v1/steady-state (fleet-lock-protocol: true)".into()],
    }
}

/// Print `plan` as `run` would execute it.
fn print_plan(v: &View, plan: &Plan, out: &mut dyn Write) {
    let _ = writeln!(out, "plan:");
    for (i, s) in plan.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {s}", i + 1);
        for c in commands(v, s) {
            let _ = writeln!(out, "       {c}");
        }
        let undo = plan.undo_for_failure(i);
        if !undo.is_empty() {
            let list = undo.iter().map(|u| u.to_string()).collect::<Vec<_>>();
            let _ = writeln!(out, "       on failure: {}", list.join("; "));
        }
    }
    if let (Some(c), Some(Step::Install { from, .. })) = (
        v.check.filter(|c| c.systemd || c.readyz.is_some()),
        plan.steps
            .iter()
            .find(|s| matches!(s, Step::Install { .. })),
    ) {
        let _ = writeln!(
            out,
            "then:      wait for {}; otherwise roll back to {from}",
            c.describe()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::summarise;

    #[test]
    fn enforcement_options_are_summarised() {
        let apt = "DEBIAN_FRONTEND=noninteractive APT_CONFIG=/tmp/x/apt.conf apt-get -c /tmp/x/enforce.conf -o A=false -o B=true -q -o C=1 update --error-on=any";
        assert_eq!(
            summarise(apt),
            "apt-get [4 enforcement options, 2 environment variables; -v shows them] -q update --error-on=any"
        );
        let dnf = "dnf --setopt=a=1 --setopt=b=2 --setopt=c=3 -y install teleport-ent-15.4.3";
        assert_eq!(
            summarise(dnf),
            "dnf [3 enforcement options; -v shows them] -y install teleport-ent-15.4.3"
        );
        let short = "dpkg --set-selections";
        assert_eq!(summarise(short), short);
    }
}
