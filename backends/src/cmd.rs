//! Running package-manager commands: an argument vector (never a shell
//! string), no standard input, captured output, and a deadline.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A command line to run, or to show in a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Bytes fed to standard input (otherwise it is /dev/null).
    pub stdin: Option<Vec<u8>>,
}

impl CommandLine {
    pub fn new(program: impl Into<String>) -> Self {
        CommandLine {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, it: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,~@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl fmt::Display for CommandLine {
    /// Shell-quoted, for humans only: commands are never run through a shell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            write!(f, "{}={} ", k, quote(v))?;
        }
        f.write_str(&quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        if self.stdin.is_some() {
            f.write_str(" <<< (input)")?;
        }
        Ok(())
    }
}

/// What a finished command left.
#[derive(Debug, Clone)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr (or stdout when stderr is empty), for an
    /// error message.
    pub fn tail(&self, lines: usize) -> String {
        let src = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let all: Vec<&str> = src.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = all.len().saturating_sub(lines);
        all[start..].join(" | ")
    }

    pub fn status_text(&self) -> String {
        match self.code {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".into(),
        }
    }

    /// Both streams, for pattern matching on tool messages.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs commands with a deadline. The PATH used to find programs can be
/// overridden (tests put wrappers first; production uses the default).
#[derive(Debug, Clone)]
pub struct Runner {
    pub timeout: Duration,
    pub path: Option<OsString>,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            timeout: Duration::from_secs(900),
            path: None,
        }
    }
}

impl Runner {
    pub fn with_timeout(timeout: Duration) -> Self {
        Runner {
            timeout,
            path: None,
        }
    }

    /// Find `program` on PATH.
    pub fn find(&self, program: &str) -> Option<PathBuf> {
        match &self.path {
            Some(p) => which::which_in(program, Some(p), "/").ok(),
            None => which::which(program).ok(),
        }
    }

    /// Run `cl` and return what it left, whatever its exit code. Errors only
    /// when it cannot be started or does not finish in time.
    pub fn run(&self, cl: &CommandLine) -> Result<Finished> {
        let program = self.find(&cl.program).ok_or_else(|| Error::ToolMissing {
            tool: cl.program.clone(),
            detail: "not found on PATH".into(),
        })?;
        tracing::debug!(command = %cl, "running");
        let mut expr = duct::cmd(program, &cl.args)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .env("LC_ALL", "C");
        expr = match &cl.stdin {
            Some(bytes) => expr.stdin_bytes(bytes.clone()),
            None => expr.stdin_null(),
        };
        for (k, v) in &cl.env {
            expr = expr.env(k, v);
        }
        // Its own process group: a terminal's Ctrl-C (SIGINT to the
        // foreground group) reaches the updater only, which lets a running
        // dpkg/rpm transaction finish before it stops.
        expr = expr.before_spawn(|c| {
            std::os::unix::process::CommandExt::process_group(c, 0);
            Ok(())
        });
        let started = Instant::now();
        let handle = expr
            .start()
            .map_err(|e| Error::io(format!("could not start `{cl}`"), e))?;
        let out = match handle
            .wait_timeout(self.timeout)
            .map_err(|e| Error::io(format!("waiting for `{cl}`"), e))?
        {
            Some(out) => out.clone(),
            None => {
                let _ = handle.kill();
                return Err(Error::Timeout {
                    command: cl.to_string(),
                    seconds: self.timeout.as_secs(),
                });
            }
        };
        let fin = Finished {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        tracing::debug!(command = %cl, status = %fin.status_text(), ms = fin.elapsed.as_millis() as u64, "finished");
        Ok(fin)
    }

    /// Run `cl` and fail unless it exits 0.
    pub fn run_ok(&self, cl: &CommandLine) -> Result<Finished> {
        let fin = self.run(cl)?;
        if fin.success() {
            Ok(fin)
        } else {
            Err(Error::CommandFailed {
                command: cl.to_string(),
                status: fin.status_text(),
                tail: fin.tail(6),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_for_humans() {
        let cl = CommandLine::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "teleport-ent=15.4.3", "a b", "it's"]);
        assert_eq!(
            cl.to_string(),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y teleport-ent=15.4.3 'a b' 'it'\\''s'"
        );
    }

    #[test]
    fn arguments_are_not_interpreted_by_a_shell() {
        let r = Runner::default();
        let out = r
            .run_ok(&CommandLine::new("echo").arg("$(id); rm -rf /tmp/x"))
            .unwrap();
        assert_eq!(out.stdout, "$(id); rm -rf /tmp/x\n");
    }

    #[test]
    fn failures_carry_the_command_and_exit_code() {
        let r = Runner::default();
        let err = r
            .run_ok(&CommandLine::new("sh").args(["-c", "echo boom >&2; exit 3"]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit 3") && msg.contains("boom"), "{msg}");
    }

    #[test]
    fn a_hanging_command_is_stopped() {
        let r = Runner::with_timeout(Duration::from_millis(300));
        let t = Instant::now();
        let err = r.run(&CommandLine::new("sleep").arg("30")).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn missing_tools_are_reported() {
        let r = Runner::default();
        let err = r.run(&CommandLine::new("no-such-tool-xyz")).unwrap_err();
        assert!(matches!(err, Error::ToolMissing { .. }));
    }
}
