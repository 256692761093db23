//! One classifier for the failures of apt, dnf and zypper: each adapter
//! says how its tool reports a trust failure, a lock held by another
//! process and a version that is not offered ([`Signs`]); the order of the
//! judgement is the same for all ([`classify`]).
//!
//! First of all, a repository that refused access (HTTP 401, 403, 407).
//! Such a failure says nothing about signatures: apt follows a 401 on
//! `InRelease` with "The repository ... is not signed", which must not
//! turn a wrong password into a trust refusal. It is reported as a failed
//! command with the HTTP status shown.

use crate::cmd::{CommandLine, Finished};
use crate::types::{PkgName, Source};
use crate::Error;

/// How one tool reports what [`classify`] tells apart. Each gets the
/// finished command and its combined output.
pub struct Signs<'a> {
    /// The reason of a trust refusal, when the output reports one.
    pub untrusted: &'a dyn Fn(&Finished, &str) -> Option<String>,
    /// The detail of a lock held by another process, when that is why.
    pub locked: &'a dyn Fn(&Finished, &str) -> Option<String>,
    /// The detail of "the version is not offered", when that is why
    /// (asked only for a command that installs a given version).
    pub not_offered: &'a dyn Fn(&Finished, &str) -> Option<String>,
}

/// The error for a failed command: an access refusal, else a trust
/// failure, else another process's lock, else a version not offered (when
/// `pkg` names the package, version and source asked for), else
/// `otherwise` (given the output).
pub fn classify(
    signs: &Signs<'_>,
    cl: &CommandLine,
    fin: &Finished,
    pkg: Option<(&PkgName, &str, &Source)>,
    otherwise: &dyn Fn(&str) -> Error,
) -> Error {
    if let Some(e) = access_failure(cl, fin) {
        return e;
    }
    let text = fin.combined();
    if let Some(reason) = (signs.untrusted)(fin, &text) {
        return Error::Untrusted { reason };
    }
    if let Some(detail) = (signs.locked)(fin, &text) {
        return Error::Locked { detail };
    }
    if let Some((pkg, version, source)) = pkg {
        if let Some(detail) = (signs.not_offered)(fin, &text) {
            return Error::VersionNotFound {
                package: pkg.to_string(),
                version: version.to_string(),
                source_desc: source.description.clone(),
                detail,
            };
        }
    }
    otherwise(&text)
}

/// The plain failure: the command, its status and the tail of its output.
pub fn command_failed(cl: &CommandLine, fin: &Finished) -> Error {
    Error::CommandFailed {
        command: cl.to_string(),
        status: fin.status_text(),
        tail: fin.tail(6),
    }
}

/// HTTP statuses that mean "not allowed to read", with their reason
/// phrases as the tools print them.
const ACCESS_STATUSES: &[(&str, &str)] = &[
    ("401", "Unauthorized"),
    ("403", "Forbidden"),
    ("407", "Proxy Authentication Required"),
];

/// How the tools introduce an HTTP status: apt (`401  Unauthorized`),
/// librepo/dnf (`Status code: 401 for ...`, `The requested URL returned
/// error: 401`), libzypp (`HTTP response: 401`).
const STATUS_MARKERS: &[&str] = &["Status code:", "returned error:", "HTTP response:"];

/// The line of `text` that reports an access refusal by the server, if
/// any.
pub fn access_failure_line(text: &str) -> Option<String> {
    text.lines()
        .find(|l| {
            ACCESS_STATUSES.iter().any(|(code, phrase)| {
                let with_phrase = l.contains(phrase) && l.contains(code);
                let with_marker = STATUS_MARKERS.iter().any(|m| {
                    l.split(m)
                        .nth(1)
                        .is_some_and(|rest| rest.trim_start().starts_with(code))
                });
                with_phrase || with_marker
            })
        })
        .map(|l| l.trim().to_string())
}

/// The error for a command whose output says the server refused access:
/// a failed command (not a trust refusal) naming the HTTP status.
pub fn access_failure(cl: &CommandLine, fin: &Finished) -> Option<Error> {
    let line = access_failure_line(&fin.combined())?;
    Some(Error::CommandFailed {
        command: cl.to_string(),
        status: fin.status_text(),
        tail: crate::redact::redact(&format!(
            "the repository refused access (check the credentials or the proxy's): {line}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tools_access_refusal_is_recognised() {
        for l in [
            "E: Failed to fetch http://127.0.0.1:9/dists/bookworm/InRelease  401  Unauthorized [IP: 127.0.0.1 9]",
            "Err:1 http://h/ bookworm InRelease\n  403  Forbidden [IP: 127.0.0.1 9]",
            "Curl error (22): HTTP response code said error for http://h/repodata/repomd.xml [The requested URL returned error: 401]",
            "Status code: 403 for http://h/repodata/repomd.xml (IP: 127.0.0.1)",
            "Download (curl) error for 'http://h/repodata/repomd.xml': Error code: Curl error 22 Error message: HTTP response: 401",
        ] {
            assert!(access_failure_line(l).is_some(), "{l}");
        }
    }

    #[test]
    fn other_failures_and_numbers_are_not() {
        for l in [
            "E: The repository 'http://h bookworm Release' is not signed.",
            "Status code: 404 for http://h/repodata/repomd.xml",
            "teleport-ent-15.4.401 is not available",
            "Get:1 http://h/401/ bookworm InRelease [1401 B]",
        ] {
            assert_eq!(access_failure_line(l), None, "{l}");
        }
    }
}
