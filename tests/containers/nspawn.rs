//! systemd-nspawn containers on a host that does not run systemd.
//!
//! Every container runs on an overlay of a cached, read-only root
//! filesystem: the overlay (and the tmpfs on `/run/systemd` that
//! systemd-nspawn needs on such a host) is mounted in a private mount
//! namespace made by `unshare`, which then becomes systemd-nspawn itself.
//! When that process ends, the namespace and both mounts go with it;
//! nothing is ever mounted in the host's namespace.
//!
//! Commands run inside with `nsenter` into the container's PID 1 (its
//! mount, UTS, IPC and PID namespaces, root and working directory), as
//! argument vectors. Files are read and written through
//! `/proc/<pid 1>/root`.
//!
//! [`Container`] is a guard: dropping it shuts the container down
//! (SIGTERM to systemd-nspawn, which halts a booted systemd in an orderly
//! way, or kills a plain container), SIGKILLs whatever is left after a
//! grace period, and removes the overlay's directories. systemd-nspawn is
//! also started with a parent-death signal, so a test process that dies
//! does not leave a machine behind; [`reap_stale_runs`] cleans up after
//! one that was SIGKILLed anyway.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The one shell script run by `sh -c`: fixed text, every path a
/// positional argument. `$1` lower (read-only) root, `$2` run directory
/// (with `upper`, `work`, `root`), then systemd-nspawn's own arguments.
const OVERLAY_NSPAWN: &str = r#"set -e
[ -d /run/systemd ] || mkdir -p /run/systemd
mount -t tmpfs tmpfs /run/systemd
mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$2/root"
root="$2/root"
shift 2
exec systemd-nspawn -q --keep-unit --register=no -D "$root" "$@"
"#;

/// The same without an overlay, for building images: `$1` the root.
const PLAIN_NSPAWN: &str = r#"set -e
[ -d /run/systemd ] || mkdir -p /run/systemd
mount -t tmpfs tmpfs /run/systemd
root="$1"
shift
exec systemd-nspawn -q --keep-unit --register=no -D "$root" "$@"
"#;

/// The environment of every command run inside (nothing leaks from the
/// test process).
const INNER_ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LC_ALL=C",
    "DEBIAN_FRONTEND=noninteractive",
    "SYSTEMD_PAGER=",
];

/// Marker written into each container's root, to know when systemd-nspawn
/// has switched into it.
const MARKER: &str = "/etc/teleport-upgrade-test-container";

/// A finished command.
#[derive(Debug, Clone)]
pub struct Out {
    /// `None` when killed by a signal (or by the timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The last `n` lines of stdout and stderr, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let last = |s: &str| {
            let v: Vec<&str> = s.lines().collect();
            v[v.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "--- stdout (last {n} lines)\n{}\n--- stderr (last {n} lines)\n{}",
            last(&self.stdout),
            last(&self.stderr)
        )
    }
}

/// Run `cmd` to completion within `timeout`, its output collected in
/// temporary files (not pipes: a daemon a command leaves behind, such as a
/// gpg-agent, must not keep the reader waiting).
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Out, String> {
    let shown = format!("{cmd:?}");
    let mut out = tempfile::tempfile().map_err(|e| e.to_string())?;
    let mut err = tempfile::tempfile().map_err(|e| e.to_string())?;
    let input = match stdin {
        Some(bytes) => {
            let mut f = tempfile::tempfile().map_err(|e| e.to_string())?;
            f.write_all(bytes).map_err(|e| e.to_string())?;
            f.rewind().map_err(|e| e.to_string())?;
            Stdio::from(f)
        }
        None => Stdio::null(),
    };
    cmd.stdin(input)
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(err.try_clone().map_err(|e| e.to_string())?);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &mut fs::File| {
        let mut s = String::new();
        let _ = f.rewind();
        let _ = f.read_to_string(&mut s);
        s
    };
    let result = Out {
        code: status.and_then(|s| s.code()),
        stdout: read(&mut out),
        stderr: read(&mut err),
    };
    if status.is_none() {
        return Err(format!(
            "{shown} did not finish within {} s\n{}",
            timeout.as_secs(),
            result.tail(20)
        ));
    }
    Ok(result)
}

/// `unshare --mount --propagation private sh -c SCRIPT sh ARGS...`, with a
/// parent-death signal so that systemd-nspawn (which the shell becomes)
/// stops its container if the test process dies.
fn unshare_nspawn(script: &str, args: &[&Path], nspawn_args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .args(args)
    .args(nspawn_args)
    .env_clear()
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    .env("LC_ALL", "C");
    // SAFETY: only an async-signal-safe prctl(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    cmd
}

/// Run one command in `rootfs` (no boot, no overlay: the changes stay), as
/// image recipes do: `systemd-nspawn --as-pid2 --pipe -- ARGV`.
pub fn run_in_rootfs(rootfs: &Path, argv: &[&str], timeout: Duration) -> Result<Out, String> {
    let mut nspawn_args = vec!["--as-pid2", "--pipe"];
    for e in INNER_ENV {
        nspawn_args.push("-E");
        nspawn_args.push(e);
    }
    nspawn_args.push("--");
    nspawn_args.extend_from_slice(argv);
    let mut cmd = unshare_nspawn(PLAIN_NSPAWN, &[rootfs], &nspawn_args);
    let out = run(&mut cmd, None, timeout)?;
    if !out.ok() {
        return Err(format!(
            "in {}: {argv:?} failed ({:?})\n{}",
            rootfs.display(),
            out.code,
            out.tail(30)
        ));
    }
    Ok(out)
}

/// How the container is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// `systemd-nspawn -b`: systemd is PID 1.
    Systemd,
    /// No init system: systemd-nspawn's stub init runs `sleep infinity`.
    None,
}

/// A running container, torn down on drop.
pub struct Container {
    pub name: String,
    run_dir: PathBuf,
    nspawn: Option<Child>,
    leader: u32,
}

impl Container {
    /// Start a container named `name` on an overlay of `image` (a root
    /// filesystem that is never written), with its writable layer in
    /// `runs_dir/<name>-<pid of this process>`.
    pub fn start(
        name: &str,
        image: &Path,
        runs_dir: &Path,
        init: Init,
    ) -> Result<Container, String> {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "bad machine name {name:?}"
        );
        let run_dir = runs_dir.join(format!("{name}-{}", std::process::id()));
        for p in [image, run_dir.as_path()] {
            // The overlay's option string separates with ',' and ':'.
            let s = p.to_string_lossy();
            assert!(!s.contains(',') && !s.contains(':'), "unusable path {s}");
        }
        let _ = fs::remove_dir_all(&run_dir);
        for d in ["upper", "work", "root"] {
            fs::create_dir_all(run_dir.join(d))
                .map_err(|e| format!("create {}: {e}", run_dir.display()))?;
        }
        // The marker is in the upper layer from the start.
        let marker = run_dir.join("upper").join(MARKER.trim_start_matches('/'));
        fs::create_dir_all(marker.parent().unwrap()).map_err(|e| e.to_string())?;
        fs::write(&marker, format!("{name}\n")).map_err(|e| e.to_string())?;

        let console = fs::File::create(run_dir.join("console.log")).map_err(|e| e.to_string())?;
        let mut args: Vec<&str> = vec!["-M", name];
        match init {
            Init::Systemd => args.push("-b"),
            Init::None => args.extend(["--as-pid2", "sleep", "infinity"]),
        }
        let child = unshare_nspawn(OVERLAY_NSPAWN, &[image, run_dir.as_path()], &args)
            .stdin(Stdio::null())
            .stdout(console.try_clone().map_err(|e| e.to_string())?)
            .stderr(console)
            .spawn()
            .map_err(|e| format!("cannot start systemd-nspawn: {e}"))?;
        let mut c = Container {
            name: name.to_string(),
            run_dir,
            nspawn: Some(child),
            leader: 0,
        };
        c.leader = c.wait_for_leader(Duration::from_secs(20))?;
        if init == Init::Systemd {
            c.wait_for_systemd(Duration::from_secs(90))?;
        }
        Ok(c)
    }

    /// systemd-nspawn's child (the container's PID 1), once it runs in the
    /// container's root.
    fn wait_for_leader(&mut self, timeout: Duration) -> Result<u32, String> {
        let nspawn_pid = self.nspawn.as_ref().unwrap().id();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.nspawn.as_mut().unwrap().try_wait().ok().flatten() {
                return Err(format!(
                    "systemd-nspawn for {} exited ({status}) before the container ran:\n{}",
                    self.name,
                    self.console_tail(40)
                ));
            }
            // systemd-nspawn's first child only prepares the root and
            // forks the container's PID 1, then exits: wait for a child that
            // is PID 1 of its own PID namespace and runs in the new root.
            for pid in children_of(nspawn_pid) {
                let marker =
                    PathBuf::from(format!("/proc/{pid}/root")).join(MARKER.trim_start_matches('/'));
                if is_namespace_init(pid)
                    && fs::read_to_string(marker).is_ok_and(|m| m.trim() == self.name)
                {
                    return Ok(pid);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the container {} did not start within {} s:\n{}",
                    self.name,
                    timeout.as_secs(),
                    self.console_tail(40)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Until `systemctl is-system-running` says running (or degraded, then
    /// naming the failed units).
    fn wait_for_systemd(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(o) = self.exec(&["systemctl", "is-system-running"]) {
                last = o.stdout.trim().to_string();
                match last.as_str() {
                    "running" => return Ok(()),
                    "degraded" => {
                        let failed = self
                            .exec(&["systemctl", "--failed", "--no-legend", "--plain"])
                            .map(|o| o.stdout)
                            .unwrap_or_default();
                        eprintln!(
                            "note: {} booted degraded; failed units:\n{failed}",
                            self.name
                        );
                        return Ok(());
                    }
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "systemd in {} was not running after {} s (last state {last:?}):\n{}",
            self.name,
            timeout.as_secs(),
            self.console_tail(40)
        ))
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    fn nsenter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.leader.to_string())
            .args(["--mount", "--uts", "--ipc", "--pid", "--root", "--wd", "--"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        cmd
    }

    /// Run `argv` inside, with a clean environment ([`INNER_ENV`]); default
    /// time limit 5 minutes.
    pub fn exec(&self, argv: &[&str]) -> Result<Out, String> {
        self.exec_timeout(argv, Duration::from_secs(300))
    }

    pub fn exec_timeout(&self, argv: &[&str], timeout: Duration) -> Result<Out, String> {
        let mut cmd = self.nsenter();
        cmd.args(["/usr/bin/env", "-i"]).args(INNER_ENV).args(argv);
        run(&mut cmd, None, timeout)
    }

    /// Run `argv` inside exactly as given (the caller sets the environment,
    /// e.g. `env -i ...` as cron would).
    pub fn exec_raw(&self, argv: &[&str]) -> Result<Out, String> {
        let mut cmd = self.nsenter();
        cmd.args(argv);
        run(&mut cmd, None, Duration::from_secs(300))
    }

    /// Run `argv` inside and require exit 0; returns stdout.
    pub fn ok(&self, argv: &[&str]) -> Result<String, String> {
        let o = self.exec(argv)?;
        if !o.ok() {
            return Err(format!(
                "in {}: {} failed (exit {:?})\n{}",
                self.name,
                argv.join(" "),
                o.code,
                o.tail(25)
            ));
        }
        Ok(o.stdout)
    }

    /// The host path of `path` inside the container. Refuses a path that
    /// goes through an absolute symlink (which would resolve on the host).
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.host_path_guarded(path, true)
    }

    fn host_path_guarded(&self, path: &str, follow_last: bool) -> PathBuf {
        let mut p = PathBuf::from(format!("/proc/{}/root", self.leader));
        let components: Vec<Component> = Path::new(path).components().collect();
        for (i, c) in components.iter().enumerate() {
            match c {
                Component::RootDir => {}
                Component::Normal(s) => {
                    p.push(s);
                    let last = i + 1 == components.len();
                    if last && !follow_last {
                        break;
                    }
                    if let Ok(t) = fs::read_link(&p) {
                        assert!(
                            t.is_relative(),
                            "{path} goes through {} -> {}: use a path without absolute symlinks",
                            p.display(),
                            t.display()
                        );
                    }
                }
                _ => panic!("{path:?} must be absolute and normal"),
            }
        }
        p
    }

    /// The target of the symlink `path` (not followed).
    pub fn read_link(&self, path: &str) -> Option<PathBuf> {
        fs::read_link(self.host_path_guarded(path, false)).ok()
    }

    pub fn read(&self, path: &str) -> Option<String> {
        fs::read_to_string(self.host_path(path)).ok()
    }

    pub fn exists(&self, path: &str) -> bool {
        self.host_path(path).exists()
    }

    /// Write a file inside (parents created, mode 0644).
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<(), String> {
        let p = self.host_path(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        fs::write(&p, contents).map_err(|e| format!("write {path} in {}: {e}", self.name))
    }

    /// Write a file inside with `mode`.
    pub fn write_mode(
        &self,
        path: &str,
        contents: impl AsRef<[u8]>,
        mode: u32,
    ) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        self.write(path, contents)?;
        fs::set_permissions(self.host_path(path), fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {path} in {}: {e}", self.name))
    }

    pub fn remove(&self, path: &str) -> Result<(), String> {
        match fs::remove_file(self.host_path(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("remove {path} in {}: {e}", self.name))
            }
            _ => Ok(()),
        }
    }

    pub fn console_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.run_dir.join("console.log")).unwrap_or_default();
        let v: Vec<&str> = text.lines().collect();
        v[v.len().saturating_sub(n)..].join("\n")
    }

    /// Stop the container and remove its writable layer. Idempotent.
    pub fn shutdown(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            let pid = Pid::from_raw(child.id() as i32);
            if child.try_wait().ok().flatten().is_none() {
                // A booted container halts in an orderly way (systemd-nspawn
                // sends SIGRTMIN+3 to its systemd); a plain one is killed.
                let _ = kill(pid, Signal::SIGTERM);
                if !wait_exit(&mut child, Duration::from_secs(30)) {
                    eprintln!("{}: no orderly shutdown within 30 s, killing it", self.name);
                    if self.leader != 0 {
                        // SIGKILL to a PID namespace's init ends every
                        // process in it.
                        let _ = kill(Pid::from_raw(self.leader as i32), Signal::SIGKILL);
                    }
                    if !wait_exit(&mut child, Duration::from_secs(10)) {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
            }
        }
        if self.run_dir.exists() {
            if let Err(e) = fs::remove_dir_all(&self.run_dir) {
                eprintln!("cannot remove {}: {e}", self.run_dir.display());
            }
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Is `pid` the init (PID 1) of a PID namespace below ours?
fn is_namespace_init(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() >= 2 && ids.last() == Some(&"1")
        })
}

/// The child processes of `pid` (of any of its threads).
fn children_of(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return v;
    };
    for t in tasks.filter_map(|t| t.ok()) {
        let text = fs::read_to_string(t.path().join("children")).unwrap_or_default();
        v.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    v
}

/// Host processes whose command line mentions `needle` (e.g. a run
/// directory): a leftover systemd-nspawn, or anything running inside a
/// leftover container.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let me = std::process::id();
    let Ok(rd) = fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline.trim().to_string()));
        }
    }
    found
}

/// Mount points in the host's mount namespace below `dir`.
pub fn host_mounts_below(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&d))
        .collect()
}

/// Remove the run directories of test processes that no longer exist,
/// first ending any systemd-nspawn still using one.
pub fn reap_stale_runs(runs_dir: &Path) {
    let Ok(rd) = fs::read_dir(runs_dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        for (p, cmd) in processes_mentioning(&dir.to_string_lossy()) {
            if cmd.contains("systemd-nspawn") {
                eprintln!("ending a leftover container (pid {p}): {cmd}");
                // Its child is the container's PID 1: killing it ends every
                // process of the container.
                for c in children_of(p) {
                    let _ = kill(Pid::from_raw(c as i32), Signal::SIGKILL);
                }
                let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let _ = fs::remove_dir_all(&dir);
    }
}
