//! Reading a `/etc/cron.d` file the way Debian's cron does, to run its job
//! exactly as cron would: `$SHELL -c <command>` (default `/bin/sh`), as the
//! named user, with only the file's variable assignments plus `HOME`,
//! `LOGNAME`, `USER` and `SHELL` in the environment.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJob {
    /// `NAME=value` lines of the file, in order.
    pub vars: Vec<(String, String)>,
    /// The five time fields.
    pub schedule: String,
    pub user: String,
    pub command: String,
}

impl CronJob {
    /// What cron puts in the job's environment (for root).
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("HOME".to_string(), "/root".to_string()),
            ("LOGNAME".to_string(), self.user.clone()),
            ("USER".to_string(), self.user.clone()),
            ("SHELL".to_string(), "/bin/sh".to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ];
        for (k, v) in &self.vars {
            env.retain(|(name, _)| name != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    pub fn shell(&self) -> String {
        self.environment()
            .into_iter()
            .find(|(k, _)| k == "SHELL")
            .map(|(_, v)| v)
            .unwrap()
    }
}

/// The single job of a cron.d file (more than one is an error here).
pub fn parse(text: &str) -> Result<CronJob, String> {
    let mut vars = Vec::new();
    let mut jobs = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        // A variable assignment: NAME=value before any whitespace-separated
        // field that could be a time field.
        if let Some((k, v)) = l.split_once('=') {
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                vars.push((k.to_string(), v.trim().trim_matches('"').to_string()));
                continue;
            }
        }
        jobs.push(l.to_string());
    }
    let [job] = jobs.as_slice() else {
        return Err(format!("expected one job line, found {}", jobs.len()));
    };
    // Five time fields, the user, then the command (the rest of the line).
    let mut rest = job.as_str();
    let mut fields = Vec::new();
    for _ in 0..6 {
        rest = rest.trim_start();
        let end = rest
            .find(char::is_whitespace)
            .ok_or(format!("short job line: {job:?}"))?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let command = rest.trim().to_string();
    if command.contains('%') {
        // cron turns an unescaped % into a newline (stdin of the command).
        return Err(format!(
            "the command holds a %, which cron would rewrite: {command:?}"
        ));
    }
    Ok(CronJob {
        vars,
        schedule: fields[..5].join(" "),
        user: fields[5].to_string(),
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_cron_file_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/teleport-upgrade.cron"
        ))
        .unwrap();
        let job = parse(&text).unwrap();
        assert_eq!(job.user, "root");
        assert_eq!(job.schedule, "7,37 * * * *");
        assert!(
            job.command.contains("/usr/sbin/teleport-upgrade run"),
            "{job:?}"
        );
        assert_eq!(job.shell(), "/bin/sh");
        assert!(job
            .environment()
            .iter()
            .any(|(k, v)| k == "PATH" && v.starts_with("/usr/local/sbin:/usr/local/bin:")));
    }

    #[test]
    fn job_lines() {
        let j = parse("SHELL=/bin/bash\n*/5  *\t* * *  nobody   echo  a  b\n").unwrap();
        assert_eq!(j.schedule, "*/5 * * * *");
        assert_eq!(j.user, "nobody");
        assert_eq!(j.command, "echo  a  b");
        assert_eq!(j.shell(), "/bin/bash");
        assert!(parse("* * * * * root date +%s\n").is_err());
        assert!(parse("# nothing\n").is_err());
    }
}
