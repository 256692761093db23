use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use backends::{Runner, System};
use teleport_upgrade::cli::{Cli, Command};
use teleport_upgrade::config::{self, Config, ENV_DIR};
use teleport_upgrade::decision::Mode;
use teleport_upgrade::error::Exit;
use teleport_upgrade::health::SystemClock;
use teleport_upgrade::run::{update_command, Env};
use teleport_upgrade::status::status_command;

fn init_logging(verbose: u8, debug_file: bool) {
    let level = match (verbose, debug_file) {
        (0, false) => "info",
        (0, true) | (1, _) => "debug",
        _ => "trace",
    };
    // Under systemd the journal adds its own timestamps.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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

    let clock = SystemClock;
    let env = Env {
        system,
        config_dir,
        clock: &clock,
        runner: Runner::default(),
    };
    let mut out = std::io::stdout().lock();
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
        Command::Man => match clap_mangen::Man::new(Cli::command())
            .section("8")
            .render(&mut out)
        {
            Ok(()) => Exit::Ok,
            Err(_) => Exit::Usage,
        },
    };
    let _ = out.flush();
    ExitCode::from(exit as u8)
}
