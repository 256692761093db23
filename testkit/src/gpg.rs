//! Throwaway OpenPGP keys made with the real `gpg`, each in its own GNUPGHOME.
//!
//! A [`Key`] owns a private GNUPGHOME (mode 0700, a temporary directory below
//! the `dir` given to the constructor). Dropping the key ends the `gpg-agent`
//! that gpg started for that home and removes the home.
//!
//! Traps avoided here:
//! - Every gpg call gets `--homedir`, `--batch`, `--yes` and, where a secret key
//!   is used, `--pinentry-mode loopback --passphrase ''`: without them gpg asks
//!   questions (overwrite? passphrase?) on a terminal the tests do not have.
//! - Signing names the key explicitly (`--local-user <FPR>!`), so a home that
//!   ever holds two keys cannot sign with the wrong one.
//! - gpg-agent listens on a Unix socket inside GNUPGHOME when `/run/user/<uid>`
//!   does not exist (the case on this machine): such a path must stay below
//!   the 108-byte `sun_path` limit, so very deep `dir`s are refused up front
//!   with a clear message instead of an obscure "socket name too long".
//! - An already-expired key is made with `--faked-system-time` (gpg allows it:
//!   the key is created "in the past" with a short validity). gpg then refuses
//!   to sign with it at the real time ("No secret key", because an expired key
//!   is unusable), so such a key remembers a moment inside its validity and
//!   signs with `--faked-system-time` too. Its signatures are therefore dated in
//!   the past, exactly like signatures made before a real key expired, and
//!   `gpgv`/apt report `EXPKEYSIG`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest GNUPGHOME accepted (the agent's sockets, e.g.
/// `<home>/S.gpg-agent.browser`, must fit in 108 bytes).
const MAX_HOME_LEN: usize = 80;

/// A generated key pair, its GNUPGHOME and its identity.
pub struct Key {
    home: tempfile::TempDir,
    uid: String,
    fingerprint: String,
    /// When set, the epoch second passed to `--faked-system-time` for every
    /// signing operation (used by keys that are already expired).
    sign_time: Option<u64>,
}

impl Key {
    /// An rsa3072 sign-only key that never expires
    /// (`--quick-gen-key UID rsa3072 sign never`).
    pub fn generate(dir: &Path, uid: &str) -> Key {
        Key::generate_at(dir, uid, "never", None)
    }

    /// Same as [`Key::generate`] but expiring after `expire`, in gpg's syntax
    /// (`1d`, `2w`, `seconds=30`, an ISO date, or `never`).
    pub fn generate_expiring(dir: &Path, uid: &str, expire: &str) -> Key {
        Key::generate_at(dir, uid, expire, None)
    }

    /// A key that expired before now: created ten days ago with a one-day
    /// validity. It can still sign (its signatures are dated inside the
    /// validity window), and verifiers report it as expired (`EXPKEYSIG`).
    pub fn generate_expired(dir: &Path, uid: &str) -> Key {
        let ten_days_ago = now_epoch() - 10 * 86_400;
        Key::generate_at(dir, uid, "1d", Some(ten_days_ago))
    }

    /// The general constructor: `created_at` (epoch seconds) makes gpg create
    /// the key at that moment (`--faked-system-time`); signatures are then made
    /// one minute after it, so they stay valid for keys that later expired.
    pub fn generate_at(dir: &Path, uid: &str, expire: &str, created_at: Option<u64>) -> Key {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let home = tempfile::Builder::new()
            .prefix("gnupg-")
            .tempdir_in(dir)
            .unwrap_or_else(|e| panic!("GNUPGHOME below {}: {e}", dir.display()));
        assert!(
            home.path().as_os_str().len() <= MAX_HOME_LEN,
            "GNUPGHOME {} is too long for gpg-agent's socket (max {MAX_HOME_LEN} bytes); \
             use a shorter directory, e.g. tempfile::tempdir()",
            home.path().display()
        );
        set_mode(home.path(), 0o700);

        let mut key = Key {
            home,
            uid: uid.to_string(),
            fingerprint: String::new(),
            sign_time: created_at.map(|t| t + 60),
        };
        let mut cmd = key.command();
        cmd.args(["--pinentry-mode", "loopback", "--passphrase", ""]);
        if let Some(t) = created_at {
            cmd.arg("--faked-system-time").arg(t.to_string());
        }
        cmd.args(["--quick-gen-key", uid, "rsa3072", "sign", expire]);
        run(cmd, "gpg --quick-gen-key");
        key.fingerprint = key.read_fingerprint();
        key
    }

    /// The primary key's fingerprint: 40 upper-case hex digits.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The long key id (last 16 hex digits of the fingerprint), as apt prints
    /// it in `NO_PUBKEY`/`EXPKEYSIG` messages.
    pub fn key_id(&self) -> String {
        self.fingerprint[self.fingerprint.len() - 16..].to_string()
    }

    /// The user id given at creation.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// This key's private GNUPGHOME.
    pub fn gnupghome(&self) -> &Path {
        self.home.path()
    }

    /// A `gpg` command bound to this key's home (`--homedir`, `GNUPGHOME`,
    /// `--batch --yes --no-tty`), for callers that need other operations
    /// (e.g. `rpmsign --define "_gpg_path ..."` can use [`Key::gnupghome`]).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.home.path())
            .env("LC_ALL", "C")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--yes", "--no-tty"]);
        cmd
    }

    /// Revoke this key with the revocation certificate gpg made when it
    /// generated the key (`openpgp-revocs.d/<FPR>.rev`): later exports carry
    /// the revocation, and verifiers report the key as revoked.
    pub fn revoke(&self) {
        let rev = self
            .home
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{}.rev", self.fingerprint));
        let text =
            std::fs::read_to_string(&rev).unwrap_or_else(|e| panic!("read {}: {e}", rev.display()));
        // gpg writes the certificate with its armor header commented out
        // (":-----BEGIN") so that it cannot be imported by accident.
        let cert = text.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        );
        let armored = self.home.path().join("revocation.asc");
        std::fs::write(&armored, cert)
            .unwrap_or_else(|e| panic!("write {}: {e}", armored.display()));
        let mut cmd = self.command();
        cmd.arg("--import").arg(&armored);
        run(cmd, "gpg --import (revocation certificate)");
    }

    /// Writes the ASCII-armored public key to `path`.
    pub fn export_armored(&self, path: &Path) {
        let mut cmd = self.command();
        cmd.arg("--armor")
            .arg("--output")
            .arg(path)
            .arg("--export")
            .arg(&self.fingerprint);
        run(cmd, "gpg --armor --export");
    }

    /// Writes the binary public key to `path` (a keyring usable as apt's
    /// `signed-by=<file>.gpg`).
    pub fn export_binary(&self, path: &Path) {
        let mut cmd = self.command();
        cmd.arg("--output")
            .arg(path)
            .arg("--export")
            .arg(&self.fingerprint);
        run(cmd, "gpg --export");
    }

    /// `gpg --clearsign` of `input` into `output` (apt's `InRelease`).
    pub fn clearsign(&self, input: &Path, output: &Path) {
        let mut cmd = self.signing_command();
        cmd.arg("--clearsign")
            .arg("--output")
            .arg(output)
            .arg(input);
        run(cmd, "gpg --clearsign");
    }

    /// `gpg --detach-sign` of `input` into `output`, armored or binary
    /// (apt's `Release.gpg`, rpm's `repomd.xml.asc`).
    pub fn detach_sign(&self, input: &Path, output: &Path, armor: bool) {
        let mut cmd = self.signing_command();
        if armor {
            cmd.arg("--armor");
        }
        cmd.arg("--detach-sign")
            .arg("--output")
            .arg(output)
            .arg(input);
        run(cmd, "gpg --detach-sign");
    }

    fn signing_command(&self) -> Command {
        let mut cmd = self.command();
        cmd.args(["--pinentry-mode", "loopback", "--passphrase", ""]);
        // `!` pins exactly this (primary) key rather than "a usable subkey of".
        cmd.arg("--local-user")
            .arg(format!("{}!", self.fingerprint));
        if let Some(t) = self.sign_time {
            cmd.arg("--faked-system-time").arg(t.to_string());
        }
        cmd
    }

    fn read_fingerprint(&self) -> String {
        let mut cmd = self.command();
        cmd.args(["--with-colons", "--fixed-list-mode", "--list-secret-keys"]);
        let out = run(cmd, "gpg --list-secret-keys");
        let text = String::from_utf8_lossy(&out.stdout);
        // The first `fpr` record follows the `sec` record of the primary key.
        let fpr = text
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap_or_else(|| panic!("no fingerprint in gpg output:\n{text}"));
        assert!(
            fpr.len() == 40 && fpr.chars().all(|c| c.is_ascii_hexdigit()),
            "unexpected fingerprint {fpr:?}"
        );
        fpr.to_ascii_uppercase()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // gpg starts one agent per GNUPGHOME and leaves it running; `all` also
        // covers a dirmngr/scdaemon, should anything have started one.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "all"])
            .output();
        // The TempDir field then removes the home itself.
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("uid", &self.uid)
            .field("fingerprint", &self.fingerprint)
            .field("gnupghome", &self.home.path())
            .finish()
    }
}

/// Runs `cmd`, panicking with its stderr when it fails (fixtures must not
/// half-succeed).
pub(crate) fn run(mut cmd: Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs()
}
