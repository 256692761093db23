use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use backends::{Runner, System};
use teleport_upgrade::cli::{Cli, Command};
use teleport_upgrade::config::{self, Config, ENV_DIR};
use teleport_upgrade::decision::Mode;
use teleport_upgrade::error::Exit;
use teleport_upgrade::health::SystemClock;
use teleport_upgrade::reference::man_page;
use teleport_upgrade::run::{update_command, Env};
use teleport_upgrade::status::status_command;

/// A writer that masks credentials in URLs ([`backends::redact`]) line by
/// line: every log line and everything printed goes through it, a last
/// net under the backends' own redaction.
struct Redacting<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    fn new(inner: W) -> Self {
        Redacting {
            inner,
            buf: Vec::new(),
        }
    }

    fn emit(&mut self, upto: usize) -> std::io::Result<()> {
        let chunk: Vec<u8> = self.buf.drain(..upto).collect();
        let text = String::from_utf8_lossy(&chunk);
        self.inner.write_all(backends::redact(&text).as_bytes())
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if let Some(i) = self.buf.iter().rposition(|b| *b == b'\n') {
            self.emit(i + 1)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let n = self.buf.len();
        self.emit(n)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn init_logging(verbose: u8, debug_file: bool) {
    let level = match (verbose, debug_file) {
        (0, false) => "info",
        (0, true) | (1, _) => "debug",
        _ => "trace",
    };
    // Under systemd the journal adds its own timestamps.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_writer(|| Redacting::new(std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_target(false)
        .with_ansi(!journal && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if journal {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let system = match &cli.root {
        Some(dir) => match System::rooted(dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("teleport-upgrade: --root: {e}");
                return ExitCode::from(Exit::Usage as u8);
            }
        },
        None => System::host(),
    };
    let env_dir = std::env::var(ENV_DIR).ok();
    let config_dir = Config::locate(&system, cli.config_dir.as_deref(), env_dir.as_deref());
    let debug_file = matches!(config::read_value(&config_dir.join("debug")), Ok(Some(v)) if v == "yes" || v == "true");
    init_logging(cli.verbose, debug_file);
    let dropped = backends::cmd::dropped_caller_variables();
    if !dropped.is_empty() {
        tracing::warn!(
            "ignoring {} from the environment: package managers run with a clean environment and never see them",
            dropped.join(", ")
        );
    }

    let clock = SystemClock;
    let env = Env {
        system,
        config_dir,
        clock: &clock,
        runner: Runner::default(),
        verbose: cli.verbose > 0,
    };
    let mut out = Redacting::new(std::io::stdout().lock());
    let exit = match cli.command {
        Command::Run => update_command(&env, Mode::Run, false, &mut out),
        Command::Force => update_command(&env, Mode::Force, false, &mut out),
        Command::DryRun => update_command(&env, Mode::Run, true, &mut out),
        Command::Status { json } => status_command(&env, json, &mut out),
        Command::Version { raw } => {
            let v = env!("CARGO_PKG_VERSION");
            let _ = if raw {
                writeln!(out, "{v}")
            } else {
                writeln!(out, "teleport-upgrade {v}")
            };
            Exit::Ok
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "teleport-upgrade", &mut out);
            Exit::Ok
        }
        Command::Man => match out.write_all(man_page(&Cli::command()).as_bytes()) {
            Ok(()) => Exit::Ok,
            Err(_) => Exit::Usage,
        },
    };
    let _ = out.flush();
    ExitCode::from(exit as u8)
}
