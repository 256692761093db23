//! Moving a definition to another channel as a transaction: the previous
//! bytes saved to a backup first, each write atomic, and an interrupted
//! move found and finished or undone by a later run.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{find_channel, read_text, rewrite_channel, Channel, Format};
use crate::types::System;
use crate::{Error, Result};

/// A change of the channel of one repository definition file: planned by
/// a backend (`plan_channel_move`), then applied and, if what follows
/// fails, restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMove {
    /// The file as the target system sees it
    /// (`/etc/apt/sources.list.d/teleport.list`).
    pub file: PathBuf,
    /// The file on this machine (inside the alternate root, if any).
    pub real_path: PathBuf,
    /// Where [`ChannelMove::apply`] keeps the previous bytes: `<file>.teleport-upgrade.bak`
    /// beside it (a name apt, dnf and zypper all ignore). Host path.
    pub backup: PathBuf,
    pub from: Channel,
    pub to: Channel,
    pub old_text: String,
    pub new_text: String,
}

/// The suffix of the backup a [`ChannelMove`] writes beside the file.
pub const BACKUP_SUFFIX: &str = ".teleport-upgrade.bak";

fn backup_path(real_path: &Path) -> PathBuf {
    let mut backup = real_path.as_os_str().to_owned();
    backup.push(BACKUP_SUFFIX);
    PathBuf::from(backup)
}

/// What an earlier run left when it stopped between
/// [`ChannelMove::apply`] and restoring the file or removing the backup (a
/// crash, a kill, a power cut): the backup is still beside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// The file is exactly the backup moved to another channel (or already
    /// the backup again): [`ChannelMove::restore`] then
    /// [`ChannelMove::remove_backup`] undo that move.
    Undo(ChannelMove),
    /// The file is not what that move wrote (edited since): neither file is
    /// touched; the operator decides.
    Edited { file: PathBuf, backup: PathBuf },
}

impl ChannelMove {
    /// Plan moving the Teleport entries of `real_path` (a host path of
    /// `system`) to `stable/v<to_major>`. Nothing is written. `None` when
    /// there is nothing to do (see [`rewrite_channel`]).
    pub fn plan(
        system: &System,
        real_path: &Path,
        format: Format<'_>,
        to_major: u64,
    ) -> Result<Option<ChannelMove>> {
        let old_text = read_text(real_path)?;
        let Some(new_text) = rewrite_channel(&old_text, format, to_major)? else {
            return Ok(None);
        };
        let from = find_channel(&old_text, format).ok_or_else(|| Error::Parse {
            what: "a repository definition".into(),
            detail: "the channel vanished while rewriting".into(),
        })?;
        Ok(Some(ChannelMove {
            file: PathBuf::from(system.display_path(real_path)),
            real_path: real_path.to_path_buf(),
            backup: backup_path(real_path),
            from,
            to: Channel::Stable(to_major),
            old_text,
            new_text,
        }))
    }

    /// The move an earlier run left unfinished in `real_path`, if its
    /// backup is there.
    pub fn interrupted(
        system: &System,
        real_path: &Path,
        format: Format<'_>,
    ) -> Result<Option<Interrupted>> {
        let backup = backup_path(real_path);
        let old_text = match crate::fsread::read(&backup) {
            Ok(b) => String::from_utf8(b).map_err(|_| Error::Parse {
                what: backup.display().to_string(),
                detail: "not UTF-8 text".into(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", backup.display()), e)),
        };
        let new_text = read_text(real_path)?;
        let file = PathBuf::from(system.display_path(real_path));
        let (from, to) = (
            find_channel(&old_text, format),
            find_channel(&new_text, format),
        );
        let undo = match (from, to) {
            (Some(from), Some(to)) if new_text == old_text => Some((from, to)),
            (Some(from), Some(Channel::Stable(m)))
                if rewrite_channel(&old_text, format, m)?.as_deref() == Some(&new_text) =>
            {
                Some((from, Channel::Stable(m)))
            }
            _ => None,
        };
        Ok(Some(match undo {
            Some((from, to)) => Interrupted::Undo(ChannelMove {
                file,
                real_path: real_path.to_path_buf(),
                backup,
                from,
                to,
                old_text,
                new_text,
            }),
            None => Interrupted::Edited { file, backup },
        }))
    }

    /// Write the backup (the previous bytes), then the new text, each
    /// atomically and with the file's mode and owner. Fails, writing
    /// nothing, when the file no longer holds the text planned from.
    pub fn apply(&self) -> Result<()> {
        let now = read_text(&self.real_path)?;
        if now == self.new_text {
            return Ok(());
        }
        if now != self.old_text {
            return Err(Error::Parse {
                what: self.file.display().to_string(),
                detail: "the file changed since the channel move was planned; nothing written"
                    .into(),
            });
        }
        let meta = std::fs::metadata(&self.real_path)
            .map_err(|e| Error::io(format!("reading {}", self.real_path.display()), e))?;
        crate::write_atomic_like(&self.backup, self.old_text.as_bytes(), &meta)
            .map_err(|e| Error::io(format!("writing {}", self.backup.display()), e))?;
        crate::write_atomic_in_place(
            &self.real_path,
            self.root().as_deref(),
            self.new_text.as_bytes(),
        )
        .map_err(|e| Error::io(format!("writing {}", self.real_path.display()), e))?;
        tracing::info!(file = %self.file.display(), backup = %self.backup.display(), "{}", self.describe());
        Ok(())
    }

    /// Put the previous bytes back, atomically (mode and owner kept).
    /// Succeeds when they are already there. Refuses, writing nothing, when
    /// the file holds neither the old nor the new text (someone else
    /// edited it since; the backup is still there).
    pub fn restore(&self) -> Result<()> {
        let now = read_text(&self.real_path)?;
        if now == self.old_text {
            return Ok(());
        }
        if now != self.new_text {
            return Err(Error::Parse {
                what: self.file.display().to_string(),
                detail: format!(
                    "the file changed since the channel move; not restored (the previous text is in {})",
                    self.backup.display()
                ),
            });
        }
        crate::write_atomic_in_place(
            &self.real_path,
            self.root().as_deref(),
            self.old_text.as_bytes(),
        )
        .map_err(|e| Error::io(format!("writing {}", self.real_path.display()), e))?;
        tracing::info!(file = %self.file.display(), "restored the channel {}", self.from);
        Ok(())
    }

    /// Remove the backup (after a move that is to stay). Succeeds when it
    /// is already gone.
    pub fn remove_backup(&self) -> Result<()> {
        match std::fs::remove_file(&self.backup) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", self.backup.display()), e)),
        }
    }

    /// One line for a dry run: `/etc/apt/sources.list.d/teleport.list:
    /// stable/v15 -> stable/v16`.
    pub fn describe(&self) -> String {
        format!("{}: {} -> {}", self.file.display(), self.from, self.to)
    }
}

impl ChannelMove {
    /// The alternate root the file lives in (`real_path` is `file` inside
    /// it), `None` on the host.
    fn root(&self) -> Option<PathBuf> {
        let rel = self.file.strip_prefix("/").ok()?;
        let mut root = self.real_path.clone();
        for _ in rel.components() {
            if !root.pop() {
                return None;
            }
        }
        (root != Path::new("/") && self.real_path == root.join(rel)).then_some(root)
    }
}

impl fmt::Display for ChannelMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}
