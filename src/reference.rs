//! Everything a person reads about settings and exit codes, generated
//! from the two tables ([`crate::settings::SETTINGS`],
//! [`crate::exit_table::EXITS`]): the end of `--help`, the man page, and
//! docs/operators/{configuration,exit-codes}.md. The tests keep the files
//! in the repository equal to what this prints; `scripts/gen-docs`
//! rewrites them.

use std::fmt::Write;

use crate::exit_table::EXITS;
use crate::settings::{Owner, Setting, SETTINGS};

/// The width everything is wrapped to (80-column terminals).
pub const WIDTH: usize = 79;

/// The configuration directory, in words.
const DIR_TEXT: &str = "One value per file in /etc/teleport-upgrade.d/ (or \
$TELEPORT_UPGRADE_CONFIG, or --config-dir), read as v1 reads them: lines \
starting with \"# \" and blank lines are ignored, whitespace is trimmed. An \
invalid value is refused with an error naming the file (exit 2); nothing on \
the host changes.";

const STATE_TEXT: &str = "State: /var/lib/teleport-upgrade (or \
$TELEPORT_UPGRADE_STATE): state.json (the last run, read by status) and \
plan.json (the plan in progress). Lock: /run/teleport-upgrade/lock. Logs go \
to stderr (under systemd: journalctl -u teleport-upgrade).";

/// `text` wrapped to `width` columns, every line indented by `indent`
/// spaces (the first by `first` instead).
pub fn wrap(text: &str, first: usize, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut line = " ".repeat(first);
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// `text` wrapped after `prefix`, the next lines aligned under the text.
fn hang(prefix: &str, text: &str, width: usize) -> String {
    let n = prefix.len();
    let body = wrap(text, n, n, width);
    format!("{prefix}{}", &body[n..])
}

fn sentence(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() || s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

fn operator_rows() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(|s| s.owner == Owner::Operator)
}

fn other_rows() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(|s| s.owner != Owner::Operator)
}

/// The end of `--help`: every setting, the state, every exit code.
pub fn help_after() -> String {
    let mut out = String::from("CONFIGURATION:\n");
    out += &wrap(DIR_TEXT, 4, 4, WIDTH);
    out.push('\n');
    for s in operator_rows() {
        let head = format!(
            "{} = {} (default: {})",
            s.name,
            s.limits_text(),
            s.default_text()
        );
        out += &wrap(&head, 2, 6, WIDTH);
        out += &wrap(s.meaning, 6, 6, WIDTH);
    }
    for s in other_rows() {
        out += &wrap(s.name, 2, 6, WIDTH);
        out += &wrap(s.meaning, 6, 6, WIDTH);
    }
    out += "\nFILES:\n";
    out += &wrap(STATE_TEXT, 4, 4, WIDTH);
    out += "\nEXIT CODES:\n";
    for r in EXITS {
        out += &hang(&format!("    {}  ", r.code()), r.meaning, WIDTH);
    }
    out += &wrap(
        "What to do about each: man teleport-upgrade, or \
         /usr/share/doc/teleport-ent-updater/exit-codes.md.",
        4,
        4,
        WIDTH,
    );
    out.trim_end().to_string()
}

/// Escape text for roff: backslashes, and a leading `.` or `'`.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// Text with `backticked` words in bold, escaped for roff.
fn roff_md(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "\\fB{}\\fR", roff(part));
        } else {
            out += &roff(part);
        }
    }
    if out.starts_with("\\fB") {
        out
    } else if out.starts_with('.') || out.starts_with('\'') {
        format!("\\&{out}")
    } else {
        out
    }
}

/// Lines of one paragraph of prose from `--help` (`  - item` lines become
/// bulleted items).
fn roff_paragraphs(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n") {
        out += ".PP\n";
        for line in para.lines() {
            if let Some(item) = line.trim_start().strip_prefix("- ") {
                out += ".IP \\(bu 2\n";
                out += &roff_md(item);
            } else {
                out += &roff_md(line);
            }
            out.push('\n');
        }
    }
    out
}

fn roff_commands(cmd: &clap::Command, out: &mut String) {
    *out += ".SH COMMANDS\n";
    for sub in cmd.get_subcommands() {
        let mut head = format!("\\fB{}\\fR", roff(sub.get_name()));
        for a in sub.get_arguments() {
            match (a.get_long(), a.get_value_names()) {
                (Some(l), _) => head += &format!(" [\\fB\\-\\-{}\\fR]", roff(l)),
                (None, Some(v)) => head += &format!(" \\fI{}\\fR", roff(&v[0])),
                (None, None) => head += &format!(" \\fI{}\\fR", roff(a.get_id().as_str())),
            }
        }
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(out, ".TP\n{head}\n{}", roff_md(&about));
        for a in sub.get_arguments() {
            if let (Some(l), Some(h)) = (a.get_long(), a.get_help()) {
                let _ = writeln!(
                    out,
                    "\\fB\\-\\-{}\\fR: {}",
                    roff(l),
                    roff_md(&h.to_string())
                );
            }
        }
    }
}

fn roff_options(cmd: &clap::Command, out: &mut String) {
    *out += ".SH OPTIONS\n";
    for a in cmd.get_arguments() {
        let mut names = Vec::new();
        if let Some(s) = a.get_short() {
            names.push(format!("\\fB\\-{s}\\fR"));
        }
        if let Some(l) = a.get_long() {
            let v = a
                .get_value_names()
                .map(|v| format!(" \\fI{}\\fR", roff(&v[0])))
                .unwrap_or_default();
            names.push(format!("\\fB\\-\\-{}\\fR{v}", roff(l)));
        }
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        let _ = writeln!(out, ".TP\n{}\n{}", names.join(", "), roff_md(&help));
    }
}

/// The man page (section 8), one page: commands and options from `cmd`,
/// settings and exit codes from the tables.
pub fn man_page(cmd: &clap::Command) -> String {
    let mut out = String::new();
    let version = cmd.get_version().unwrap_or("");
    let _ = writeln!(
        out,
        ".TH TELEPORT\\-UPGRADE 8 \"\" \"teleport\\-upgrade {version}\" \"System Administration\""
    );
    out += ".SH NAME\nteleport\\-upgrade \\- ";
    out += &roff(
        cmd.get_about()
            .map(|a| a.to_string())
            .unwrap_or_default()
            .trim_end_matches('.'),
    );
    out += "\n.SH SYNOPSIS\n\\fBteleport\\-upgrade\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR\n";
    out += ".SH DESCRIPTION\n";
    out += &roff_paragraphs(
        &cmd.get_long_about()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    );
    roff_commands(cmd, &mut out);
    roff_options(cmd, &mut out);
    out += ".SH CONFIGURATION\n";
    out += &roff(DIR_TEXT);
    out.push('\n');
    for s in SETTINGS {
        let _ = writeln!(out, ".TP\n\\fB{}\\fR", roff(s.name));
        let mut text = sentence(s.meaning);
        if !s.detail.is_empty() {
            text = format!("{text} {}", sentence(s.detail));
        }
        if s.owner == Owner::Operator {
            text = format!(
                "{text} Values: {}. Default: {}.",
                s.limits_text(),
                s.default_text()
            );
        }
        out += &roff(&text);
        out.push('\n');
    }
    out += ".SH FILES\n";
    out += &roff(STATE_TEXT);
    out += "\n.SH EXIT STATUS\n";
    for r in EXITS {
        let _ = writeln!(
            out,
            ".TP\n\\fB{}\\fR (\\fI{}\\fR)\n{}\n.br\nWhat to do: {}",
            r.code(),
            roff(r.word),
            roff(&sentence(r.meaning)),
            roff(&sentence(r.todo))
        );
    }
    out += ".SH SEE ALSO\n\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1); \
            the guides in /usr/share/doc/teleport\\-ent\\-updater/.\n";
    out
}

/// A Markdown table cell: `|` escaped, no line breaks.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const GENERATED: &str = "<!-- Generated from the tables in src/settings.rs and \
src/exit_table.rs by scripts/gen-docs; do not edit by hand (a test \
compares). -->";

/// docs/operators/configuration.md.
pub fn configuration_md() -> String {
    let mut out = format!("# Configuration reference\n\n{GENERATED}\n\n");
    out += &wrap(DIR_TEXT, 0, 0, 78);
    out += "\nThe three settings most hosts need: `endpoint`, then `package` and \
            `installer` only when detection is not what you want.\n\n";
    out += "| file | values | default | meaning | v1 |\n|---|---|---|---|---|\n";
    for s in operator_rows() {
        let meaning = if s.detail.is_empty() {
            sentence(s.meaning)
        } else {
            format!("{} {}", sentence(s.meaning), sentence(s.detail))
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            s.name,
            cell(&s.limits_text()),
            cell(&s.default_text()),
            cell(&meaning),
            if s.v1 { "yes" } else { "new" }
        );
    }
    out += "\nFiles in the same directory that are not settings:\n\n";
    for s in other_rows() {
        let _ = writeln!(
            out,
            "- `{}`: {} {}",
            s.name,
            cell(&sentence(s.meaning)),
            cell(&sentence(s.detail))
        );
    }
    out += "\n";
    out += &wrap(STATE_TEXT, 0, 0, 78);
    out
}

/// docs/operators/exit-codes.md.
pub fn exit_codes_md() -> String {
    let mut out = format!("# Exit codes\n\n{GENERATED}\n\n");
    out += "The word is `last_run.result` in `teleport-upgrade status --json` and \
            the `result` label of the metrics.\n\n";
    out += "| code | word | what happened | what to do |\n|---|---|---|---|\n";
    for r in EXITS {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} |",
            r.code(),
            r.word,
            cell(&sentence(r.meaning)),
            cell(&sentence(r.todo))
        );
    }
    out += "\nBy symptom rather than by code: [troubleshooting.md](troubleshooting.md).\n";
    out
}

/// The generated documents: (path in the repository, content).
pub fn documents() -> Vec<(&'static str, String)> {
    vec![
        ("docs/operators/configuration.md", configuration_md()),
        ("docs/operators/exit-codes.md", exit_codes_md()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The generated documents in the repository are what the tables give
    /// now. `REGENERATE_DOCS=1` (scripts/gen-docs) rewrites them instead.
    #[test]
    fn docs_in_the_repository_are_generated_from_the_tables() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (path, want) in documents() {
            let file = root.join(path);
            if std::env::var_os("REGENERATE_DOCS").is_some() {
                std::fs::write(&file, &want).unwrap();
            }
            let have = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                have == want,
                "{path} differs from the tables: run scripts/gen-docs"
            );
        }
    }

    #[test]
    fn help_names_every_setting_and_exit_code_within_80_columns() {
        let help = crate::cli::Cli::command().render_long_help().to_string();
        for s in SETTINGS {
            assert!(
                help.lines().any(|l| l.trim_start().starts_with(s.name)),
                "--help lacks {}",
                s.name
            );
        }
        for r in EXITS {
            let head = format!("    {}  {}", r.code(), &r.meaning[..10]);
            assert!(help.contains(&head), "--help lacks exit {}", r.code());
        }
        for line in help_after().lines() {
            assert!(line.chars().count() <= 80, "too wide: {line:?}");
        }
    }

    #[test]
    fn the_man_page_has_everything_and_no_subcommand_pages() {
        let man = man_page(&crate::cli::Cli::command());
        for s in SETTINGS {
            assert!(
                man.contains(&format!("\\fB{}\\fR", roff(s.name))),
                "{}",
                s.name
            );
        }
        for r in EXITS {
            assert!(
                man.contains(&format!("\\fB{}\\fR (", r.code())),
                "{}",
                r.code()
            );
            assert!(man.contains(&roff(&sentence(r.todo))), "{}", r.code());
        }
        assert!(
            !man.contains("teleport\\-upgrade\\-"),
            "a subcommand page is referenced"
        );
        for line in man.lines() {
            assert!(
                !line.starts_with('.') || line.starts_with(".TH") || line.len() < 80,
                "{line}"
            );
        }
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("a bb ccc", 2, 4, 8), "  a bb\n    ccc\n");
        assert_eq!(roff(".x - y\\"), "\\&.x \\- y\\e");
    }
}
