//! Bounded reads of regular files: every configuration, schedule and state
//! file goes through here.
//!
//! A file is opened non-blocking (so a FIFO planted where a value is
//! expected cannot hang a run), checked to be a regular file after the open
//! (`fstat` on the open descriptor, so no race between the check and the
//! read), and read up to `cap + 1` bytes: one byte more than allowed is
//! enough to know a file is too large, and `/dev/zero` or a huge file is
//! never read whole. Symbolic links are followed: configuration management
//! commonly links these files, and the final target must still be a regular
//! file.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The cap for one-value configuration files, lists and the schedule.
pub const CONFIG_CAP: u64 = 64 * 1024;
/// The cap for the state file and the journal.
pub const STATE_CAP: u64 = 1024 * 1024;
/// The cap for package-manager files that grow with the host (dpkg's
/// `status`, a package's `md5sums`, a keyring): generous, but bounded.
pub const DB_CAP: u64 = 256 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("larger than {} KiB", .0 / 1024)]
    TooLarge(u64),
    #[error("cannot read it: {0}")]
    Io(String),
}

fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Read `path` whole if it is a regular file of at most `cap` bytes.
/// `Ok(None)` when it does not exist.
pub fn read_bounded(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, ReadError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| ReadError::Io(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    let mut buf = Vec::with_capacity(meta.len().min(cap + 1) as usize);
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(Some(buf))
}

/// `read_bounded` for UTF-8 text.
pub fn read_text(path: &Path, cap: u64) -> Result<Option<String>, ReadError> {
    match read_bounded(path, cap)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| ReadError::Io("not UTF-8 text".into())),
    }
}

/// `std::fs::read` for a package manager's configuration or repository
/// file: a regular file of at most [`STATE_CAP`] bytes, else an error that
/// says why (`NotFound` when it does not exist).
pub fn read(path: impl AsRef<Path>) -> std::io::Result<Vec<u8>> {
    read_capped(path.as_ref(), STATE_CAP)
}

/// `std::fs::read_to_string`, bounded like [`read`].
pub fn read_to_string(path: impl AsRef<Path>) -> std::io::Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// `std::fs::read_to_string` for a file that grows with the host
/// (dpkg's `status`, a package's `md5sums`): bounded by [`DB_CAP`].
pub fn read_db_text(path: impl AsRef<Path>) -> std::io::Result<String> {
    String::from_utf8(read_capped(path.as_ref(), DB_CAP)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    match read_bounded(path, cap) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "it does not exist",
        )),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

fn libc_flags() -> i32 {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer. O_NOCTTY: a terminal device never becomes our controlling
    // terminal. O_CLOEXEC is set by std.
    libc::O_NONBLOCK | libc::O_NOCTTY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_cap_are_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_bounded(&p, 5).unwrap().unwrap(), b"hello");
        assert_eq!(read_bounded(&p, 4), Err(ReadError::TooLarge(4)));
        assert_eq!(read_bounded(&d.path().join("absent"), 5), Ok(None));
    }

    #[test]
    fn a_symlink_to_a_regular_file_is_followed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        assert_eq!(
            read_bounded(&d.path().join("link"), 5).unwrap().unwrap(),
            b"x"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(
            read_bounded(&p, 5),
            Err(ReadError::NotRegular("a FIFO (named pipe)"))
        );
    }

    #[test]
    fn devices_and_directories_are_refused() {
        assert_eq!(
            read_bounded(Path::new("/dev/zero"), 5),
            Err(ReadError::NotRegular("a character device"))
        );
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            read_bounded(d.path(), 5),
            Err(ReadError::NotRegular("a directory"))
        );
    }
}
