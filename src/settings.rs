//! The one table of settings: every file of the configuration directory,
//! its type, default, limits and meaning. [`crate::config::Config::load`]
//! reads only names of this table (asking for another one panics, and the
//! tests ask for all of them), the numeric limits below are the ones it
//! enforces, and `--help`, the man page and docs/operators/configuration.md
//! are generated from it ([`crate::reference`]).

use std::time::Duration;

/// Who writes a file of the configuration directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The operator (or configuration management): read by `Config::load`.
    Operator,
    /// The Teleport agent writes it; the updater reads it.
    Agent,
    /// The updater writes it itself.
    Updater,
}

/// The kind of value a setting holds, with its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Whole seconds from `min` to `max`; 0 is also accepted when
    /// `zero_off` (it then turns the feature off).
    Seconds {
        min: u64,
        max: u64,
        zero_off: bool,
        default: u64,
    },
    /// `yes`/`true` or `no`/`false`, `no` by default.
    YesNo,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// An absolute path.
    AbsPath,
    /// A format described in words (validated by the owning module).
    Text(&'static str),
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The file's name in the configuration directory.
    pub name: &'static str,
    pub owner: Owner,
    pub value: Value,
    /// The default, in words (a [`Value::Seconds`] row's is its number).
    pub default: &'static str,
    /// One line, for `--help`.
    pub meaning: &'static str,
    /// More, for the man page and the docs ("" when the line says it all).
    pub detail: &'static str,
    /// v1 (Teleport's bash updater) knew this file too.
    pub v1: bool,
    /// A valid value that differs from the default (for the tests).
    pub example: &'static str,
    /// A value `Config::load` refuses, when it validates the setting.
    pub invalid: Option<&'static str>,
}

const fn secs(min: u64, max: u64, zero_off: bool, default: u64) -> Value {
    Value::Seconds {
        min,
        max,
        zero_off,
        default,
    }
}

/// Every file of the configuration directory, in the order the docs list
/// them: the three most hosts set first.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "endpoint",
        owner: Owner::Operator,
        value: Value::Text("host[:port]/path, no scheme"),
        default: "required",
        meaning: "host[:port]/path of the version server (the proxy's channel), no scheme",
        detail:
            "For example teleport.example.com:443/v1/webapi/automaticupgrades/channel/default. \
                 The server answers /version (v15.4.3, 15.4.3 or none) and /critical (yes or no).",
        v1: true,
        example: "proxy.example.com/v1/webapi/automaticupgrades/channel/default",
        invalid: Some("http://proxy.example.com/v1"),
    },
    Setting {
        name: "package",
        owner: Owner::Operator,
        value: Value::OneOf(crate::config::AGENT_PACKAGES),
        default: "the one installed",
        meaning: "the agent package to keep up to date",
        detail: "",
        v1: true,
        example: "teleport-ent",
        invalid: Some("nginx"),
    },
    Setting {
        name: "installer",
        owner: Owner::Operator,
        value: Value::OneOf(&["apt", "yum", "dnf", "zypper", "nop"]),
        default: "detected",
        meaning: "the package manager; nop: decide and log, never install",
        detail: "Detected from /etc/os-release and the tools present when not set.",
        v1: true,
        example: "apt",
        invalid: Some("pacman"),
    },
    Setting {
        name: "insecure",
        owner: Owner::Operator,
        value: Value::YesNo,
        default: "no",
        meaning: "yes: plain http to the version server, for a loopback host only",
        detail: "Honoured only for localhost, 127.0.0.1 and [::1]; with any other host \
                 the run is refused (exit 3).",
        v1: true,
        example: "yes",
        invalid: Some("maybe"),
    },
    Setting {
        name: "debug",
        owner: Owner::Operator,
        value: Value::YesNo,
        default: "no",
        meaning: "yes: debug logs",
        detail: "",
        v1: true,
        example: "yes",
        invalid: Some("loud"),
    },
    Setting {
        name: "restart-mode",
        owner: Owner::Operator,
        value: Value::OneOf(&["reload", "restart"]),
        default: "reload",
        meaning: "reload: a routine update reloads the running agent (sessions kept); \
                  restart: always restart it",
        detail: "With reload, critical and unhealthy updates, a crashed agent, rollbacks \
                 and repairs still restart it (try-restart when it cannot reload).",
        v1: true,
        example: "restart",
        invalid: Some("kill"),
    },
    Setting {
        name: "repository",
        owner: Owner::Operator,
        value: Value::Text("letters, digits, . _ : - (at most 100)"),
        default: "found",
        meaning: "v1's name of the repository: apt list name, or yum/dnf/zypper repo id",
        detail: "The apt list /etc/apt/sources.list.d/<repository>.list (or .sources), or \
                 the id of the .repo file's [<repository>] section. Not together with \
                 source-file.",
        v1: true,
        example: "teleport",
        invalid: Some("-bad"),
    },
    Setting {
        name: "source-file",
        owner: Owner::Operator,
        value: Value::AbsPath,
        default: "found",
        meaning: "the repository definition to use instead of finding it",
        detail: "Not together with repository.",
        v1: false,
        example: "/etc/apt/sources.list.d/teleport.list",
        invalid: Some("teleport.list"),
    },
    Setting {
        name: "ca-file",
        owner: Owner::Operator,
        value: Value::AbsPath,
        default: "system roots only",
        meaning: "an extra CA bundle (PEM) trusted for the version server",
        detail: "",
        v1: false,
        example: "/etc/ssl/private-ca.pem",
        invalid: Some("relative.pem"),
    },
    Setting {
        name: "trusted-keys",
        owner: Owner::Operator,
        value: Value::Text("fingerprints, one per line"),
        default: "no pinning",
        meaning: "pinned Teleport release key fingerprints, one per line",
        detail: "# comments allowed, spaces between groups allowed. The repository's \
                 signing keys must be among them (docs/operators/trust.md).",
        v1: false,
        example: "0C5E8BA5658E320D1B031179C87ED53A6282C411",
        invalid: Some("not-a-fingerprint"),
    },
    Setting {
        name: "lock-timeout",
        owner: Owner::Operator,
        value: secs(0, 3600, false, 120),
        default: "",
        meaning: "seconds to wait for the package manager's lock",
        detail: "A package manager still busy after this exits 5. On apt hosts: dpkg's locks and apt's lists and archives locks (which apt itself does not wait for).",
        v1: false,
        example: "30",
        invalid: Some("forever"),
    },
    Setting {
        name: "health-timeout",
        owner: Owner::Operator,
        value: secs(1, 3600, true, 300),
        default: "",
        meaning: "seconds to wait for a healthy agent after an update before rolling back",
        detail: "0 turns the health verification (and so the rollback) off.",
        v1: false,
        example: "600",
        invalid: Some("3601"),
    },
    Setting {
        name: "diag-addr",
        owner: Owner::Operator,
        value: Value::Text("host:port"),
        default: "diag_addr in /etc/teleport.yaml",
        meaning: "host:port of the agent's diagnostic endpoint (/readyz)",
        detail: "",
        v1: false,
        example: "127.0.0.1:3000",
        invalid: Some("localhost"),
    },
    Setting {
        name: "unhealthy-interval",
        owner: Owner::Operator,
        value: secs(0, 3600, false, 300),
        default: "",
        meaning: "seconds between two unhealthy observations for the second to count",
        detail: "0 is v1's rule: any earlier run counts. Also the time between the two checks that must both advertise a target below the installed version before it is installed (critical and forced updates do not wait); 0: any earlier check counts.",
        v1: false,
        example: "600",
        invalid: Some("-1"),
    },
    Setting {
        name: "recheck-delay",
        owner: Owner::Operator,
        value: secs(60, 3600, true, 300),
        default: "",
        meaning: "seconds after a first unhealthy sighting to look again",
        detail: "0 turns the re-check off (the next timer run looks again).",
        v1: false,
        example: "120",
        invalid: Some("30"),
    },
    Setting {
        name: "mirror-wait",
        owner: Owner::Operator,
        value: secs(0, 7 * 86400, false, 86400),
        default: "",
        meaning: "seconds a target the repository does not offer yet is waited for before a run fails",
        detail: "A mirror lagging behind the version server: until then a timer run that finds the target not offered ends with exit 0 and the result word waiting-for-mirror (counted in teleport_upgrade_mirror_waits_total, shown by status); after it, exit 4 (update-failed). `force` exits 4 at once. 0: exit 4 at once.",
        v1: false,
        example: "21600",
        invalid: Some("604801"),
    },
    Setting {
        name: "verify-interval",
        owner: Owner::Operator,
        value: secs(0, 7 * 86400, false, 86400),
        default: "",
        meaning: "most seconds between two full integrity checks of the agent's files",
        detail: "0 verifies in full (dpkg --verify, rpm -V) every run.",
        v1: false,
        example: "3600",
        invalid: Some("604801"),
    },
    Setting {
        name: "window-margin",
        owner: Owner::Operator,
        value: secs(1, 3600, true, 300),
        default: "",
        meaning: "a routine update does not start with less than this left of the window",
        detail: "At most a quarter of the window is used. Critical, unhealthy and forced \
                 updates ignore it; 0 turns it off, as v1.",
        v1: false,
        example: "600",
        invalid: Some("1h"),
    },
    Setting {
        name: "metrics-dir",
        owner: Owner::Operator,
        value: Value::Text("an absolute directory, or none"),
        default: "/var/lib/prometheus/node-exporter when it exists",
        meaning: "directory for the Prometheus textfile teleport_upgrade.prom, or none",
        detail: "",
        v1: false,
        example: "none",
        invalid: Some("metrics"),
    },
    Setting {
        name: "cluster-guard",
        owner: Owner::Operator,
        value: Value::OneOf(&["best-effort", "required"]),
        default: "best-effort",
        meaning: "required: refuse a target when the cluster's version cannot be learned",
        detail: "best-effort installs a target the guard cannot check and logs why; \
                 a target above the cluster's version, or more than one major below it, \
                 is refused either way (exit 3), and so is one more than one major \
                 below the installed agent when the cluster's version is unknown.",
        v1: false,
        example: "required",
        invalid: Some("strict"),
    },
    Setting {
        name: "fleet-lock",
        owner: Owner::Operator,
        value: Value::Text("https://host[:port][/path]"),
        default: "off",
        meaning: "base URL of a FleetLock server: at most N hosts update at once",
        detail: "Plain http:// only for a loopback host with insecure. See \
                 docs/operators/fleet.md.",
        v1: false,
        example: "https://lock.example.com",
        invalid: None,
    },
    Setting {
        name: "fleet-lock-group",
        owner: Owner::Operator,
        value: Value::Text("letters, digits, . and -"),
        default: "default",
        meaning: "the FleetLock group this host takes its slot in",
        detail: "The protocol's group label, ^[a-zA-Z0-9.-]+$ (as Zincati \
                 checks it); the lock server must know it (airlock: \
                 [[lock.groups]]), or it answers unknown_group.",
        v1: false,
        example: "canary",
        invalid: None,
    },
    Setting {
        name: "fleet-lock-id",
        owner: Owner::Operator,
        value: Value::Text("letters, digits, . _ : and - (at most 253)"),
        default: "derived from /etc/machine-id",
        meaning: "this host's FleetLock id, instead of the one derived from the machine id",
        detail: "For hosts cloned from one image that share a machine id \
                 (they would all hold one slot between them): give each a \
                 unique id, e.g. its host name. At most 253 characters, a \
                 DNS name's length. Changing it leaves a slot held under the \
                 old id to free on the lock server.",
        v1: false,
        example: "web-17.example.com",
        invalid: Some("a b"),
    },
    // Issue 24: the failure-rate halt (fleet-report and its rule).
    Setting {
        name: "fleet-report",
        owner: Owner::Operator,
        value: Value::Text("https://host[:port][/path] of an etcd"),
        default: "off",
        meaning: "etcd URL of the fleet's record of completed updates: halt a rollout on its failure rate",
        detail: "Needs fleet-lock. Each host adds its verified update (ok) or its \
                 rollback on a host healthy before the update (failed) to the key \
                 teleport-upgrade/fleet-report/<group>/<target> through etcd's v3 \
                 JSON gateway (compare-and-swap), and takes no slot for a target \
                 whose failure rate exceeds fleet-halt-rate (result word \
                 rollout-halted). Plain http:// only for a loopback host with \
                 insecure. Unreachable: the slot count alone bounds the rollout \
                 (logged). See docs/operators/fleet.md.",
        v1: false,
        example: "https://etcd.example.com:2379",
        invalid: None,
    },
    Setting {
        name: "fleet-halt-rate",
        owner: Owner::Operator,
        value: Value::Text("a percent, 0.1 to 100"),
        default: "5",
        meaning: "halt the rollout of a target once more than this percent of its completed updates failed",
        detail: "With fleet-report. Counted only once fleet-halt-min-sample \
                 updates of the target completed in the group.",
        v1: false,
        example: "2",
        invalid: Some("0"),
    },
    Setting {
        name: "fleet-halt-min-sample",
        owner: Owner::Operator,
        value: Value::Text("a whole number, 1 to 100000"),
        default: "20",
        meaning: "completed updates of a target before fleet-halt-rate applies",
        detail: "",
        v1: false,
        example: "50",
        invalid: Some("0"),
    },
    Setting {
        name: "update-group",
        owner: Owner::Operator,
        value: Value::Text("letters, digits, . _ and - (at most 64)"),
        default: "none (v2's update.yaml group, else no group)",
        meaning: "the cluster's update group of this host, sent as /webapi/find?group=",
        detail: "Only for a proxy's channel endpoint. The group's agent_version \
                 and agent_auto_update (the cluster's rollout has reached the \
                 group) decide when to update instead of the schedule's \
                 windows; a proxy that answers no auto_update (older, or 404) \
                 leaves /version and the windows in charge. When unset, the \
                 group of a disabled v2 update.yaml is used. A group the \
                 cluster does not know gets its last group's answer. See \
                 docs/operators/update-groups.md.",
        v1: false,
        example: "staging",
        invalid: Some("prod east"),
    },
    Setting {
        name: "schedule",
        owner: Owner::Agent,
        value: Value::Text("maintenance windows, or nop"),
        default: "",
        meaning: "written by the agent: maintenance windows, or nop",
        detail: "The agent writes it when run with TELEPORT_EXT_UPGRADER=unit: \
                 \"# generated by teleport\", then \"<start> <stop>\" Unix times per line; \
                 nop means another updater manages this host.",
        v1: true,
        example: "",
        invalid: None,
    },
    Setting {
        name: "mark-unhealthy",
        owner: Owner::Updater,
        value: Value::Text("a Unix time"),
        default: "",
        meaning: "written by the updater: when a run first saw the agent unhealthy",
        detail: "v1's <state dir>/state-unhealthy counts the same.",
        v1: true,
        example: "",
        invalid: None,
    },
];

/// The row of `name`. Panics for a name not in the table: reading a
/// setting that is not documented is a bug the tests catch.
pub fn row(name: &str) -> &'static Setting {
    SETTINGS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("setting {name:?} is not in settings::SETTINGS"))
}

impl Setting {
    /// The default as shown to people.
    pub fn default_text(&self) -> String {
        match self.value {
            Value::Seconds { default, .. } => default.to_string(),
            _ => self.default.to_string(),
        }
    }

    /// The accepted values, in words.
    pub fn limits_text(&self) -> String {
        match self.value {
            Value::Seconds {
                min, max, zero_off, ..
            } => {
                if zero_off && min > 1 {
                    format!("seconds, {min} to {max}, or 0 (off)")
                } else if zero_off {
                    format!("seconds, 0 (off) to {max}")
                } else {
                    format!("seconds, {min} to {max}")
                }
            }
            Value::YesNo => "yes or no".into(),
            Value::OneOf(words) => words.join(", "),
            Value::AbsPath => "an absolute path".into(),
            Value::Text(t) => t.into(),
        }
    }

    /// Validate a [`Value::Seconds`] value against this row's limits.
    pub fn seconds(&self, v: &str) -> Result<Duration, String> {
        let Value::Seconds {
            min, max, zero_off, ..
        } = self.value
        else {
            panic!("{} is not a seconds setting", self.name)
        };
        v.parse::<u64>()
            .ok()
            .filter(|s| (*s == 0 && (zero_off || min == 0)) || (min..=max).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("expected {}, got {v:?}", self.limits_text()))
    }

    /// A [`Value::Seconds`] row's default.
    pub fn default_duration(&self) -> Duration {
        match self.value {
            Value::Seconds { default, .. } => Duration::from_secs(default),
            _ => panic!("{} is not a seconds setting", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_rows_complete() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert!(
                SETTINGS[..i].iter().all(|o| o.name != s.name),
                "{} twice",
                s.name
            );
            assert!(
                !s.meaning.is_empty() && !s.limits_text().is_empty(),
                "{}",
                s.name
            );
            if s.owner == Owner::Operator {
                assert!(!s.default_text().is_empty(), "{} has no default", s.name);
                assert!(!s.example.is_empty(), "{} has no example", s.name);
            }
        }
    }

    #[test]
    fn seconds_follow_the_row_limits() {
        let r = row("recheck-delay");
        assert_eq!(r.seconds("0").unwrap(), Duration::ZERO);
        assert_eq!(r.seconds("60").unwrap(), Duration::from_secs(60));
        assert!(r.seconds("59").is_err());
        assert!(r.seconds("3601").is_err());
        let r = row("lock-timeout");
        assert!(r.seconds("0").is_ok() && r.seconds("3600").is_ok());
        assert!(r.seconds("3601").is_err() && r.seconds("x").is_err());
        assert_eq!(
            row("verify-interval").seconds("604801").unwrap_err(),
            "expected seconds, 0 to 604800, got \"604801\""
        );
    }

    #[test]
    fn defaults_agree_with_the_modules_that_use_them() {
        assert_eq!(
            row("unhealthy-interval").default_duration(),
            crate::marker::DEFAULT_INTERVAL
        );
        assert_eq!(
            row("verify-interval").default_duration(),
            crate::integrity_cache::DEFAULT_INTERVAL
        );
        assert_eq!(
            row("window-margin").default_duration(),
            crate::config::DEFAULT_WINDOW_MARGIN
        );
        assert_eq!(
            row("fleet-lock-group").default,
            crate::fleetlock::DEFAULT_GROUP
        );
        let rule = crate::fleetlock::report::HaltRule::default();
        assert_eq!(row("fleet-halt-rate").default, rule.rate_text());
        assert_eq!(
            row("fleet-halt-min-sample").default,
            rule.min_sample.to_string()
        );
    }

    #[test]
    #[should_panic(expected = "not in settings::SETTINGS")]
    fn an_unlisted_name_panics() {
        row("no-such-setting");
    }
}
