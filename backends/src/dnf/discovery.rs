//! Finding the repository: its source, and the ids dnf's
//! variables make (a second `[teleport]` through `[tele$x]`).

use crate::rpmdb::{self, IniSection};
use crate::types::Source;
use crate::{Error, Result};

impl super::Dnf {
    pub(super) fn source_from(&self, sec: &IniSection) -> Source {
        rpmdb::source_from(&self.system, sec)
    }

    /// The variable directories dnf reads (`varsdir=` of the main
    /// configuration, else dnf's defaults), as the target sees them.
    pub(super) fn vars_dirs(&self) -> Vec<String> {
        let configured = self.main_list("varsdir");
        if configured.is_empty() {
            crate::dnf_vars::VARS_DIRS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            configured
        }
    }

    /// Refuse when another section of dnf's effective set becomes
    /// `chosen`'s id once dnf substitutes its variables (`[tele$x]` with
    /// `/etc/dnf/vars/x` = `port`), naming both files.
    pub(super) fn refuse_variable_twins(
        &self,
        all: &[IniSection],
        chosen: &IniSection,
    ) -> Result<()> {
        let vars = crate::dnf_vars::Vars::load(&self.system, &self.vars_dirs());
        let twins: Vec<String> = all
            .iter()
            .filter(|s| crate::dnf_vars::has_vars(&s.id))
            .filter(|s| crate::dnf_vars::may_be(&s.id, &vars, &chosen.id))
            .map(|s| {
                let from: Vec<String> = vars
                    .files_used_by(&s.id)
                    .iter()
                    .map(|f| self.system.display_path(f))
                    .collect();
                format!(
                    "[{}] ({}:{}){}",
                    s.id,
                    self.system.display_path(&s.file),
                    s.line,
                    if from.is_empty() {
                        String::new()
                    } else {
                        format!(" with {}", from.join(", "))
                    }
                )
            })
            .collect();
        if twins.is_empty() {
            return Ok(());
        }
        Err(Error::Untrusted {
            reason: format!(
                "repository [{id}] is defined more than once ({}:{} and {}): {} substitutes its variables in repo ids, so each of these may be [{id}] too; it uses only one definition, which need not be the one audited and pinned; remove or rename the other definitions",
                self.system.display_path(&chosen.file),
                chosen.line,
                twins.join(" and "),
                self.program,
                id = chosen.id,
            ),
        })
    }
}
