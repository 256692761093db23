//! A fake Teleport agent that restarts gracefully like Teleport does
//! (testkit::agent builds it with plain `rustc`, std only, statically
//! linked, and patches its version into [`IDENT`] per package).
//!
//! `teleport start`:
//! - listens on 127.0.0.1:[`PORT`] (or the port in [`PORT_FILE`]; or takes the listening socket from
//!   fd 3 when started by a graceful restart, `FAKE_TELEPORT_LISTEN_FD=3`);
//! - appends `start version=<v> upgrader=<TELEPORT_EXT_UPGRADER> pid=<pid>
//!   via=<start|reload>` to [`START_LOG`];
//! - a *broken* build exits 1 a second later (a crash loop under
//!   `Restart=on-failure`, or a graceful restart that never takes over);
//! - writes its pid to [`PID_FILE`] (the unit's `PIDFile=`), and, when it
//!   was started by a graceful restart, says `ready` to its parent;
//! - answers each line `version` on a connection with its version, `pid`
//!   with its pid;
//! - on SIGHUP (the unit's `ExecReload=/bin/kill -HUP $MAINPID`): starts
//!   the binary now on disk (`/proc/self/exe` without " (deleted)", as Go's
//!   `os.Executable` does) with the listening socket; once the new process
//!   is ready, stops accepting, serves the connections it has until they
//!   close (at most [`DRAIN_SECS`]), then exits 0 (systemd then reads the
//!   new main PID from the PID file). If the new process fails before it
//!   is ready, this one logs it and keeps serving, as Teleport does.
//!
//! `teleport` (no argument) or `teleport version`: `Teleport v<v> git: go1.22`.
//!
//! `teleport probe <out> <go-file>` (a client, for the tests): connects,
//! asks `version`, writes `before=<v>` to `<out>`; once `<go-file>` exists
//! asks again on the same connection (`after=<v>`) and on a new one
//! (`new=<v>`), then writes `done`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default port; [`PORT_FILE`], when present, names another (the
/// containers of the tests share the host's loopback).
const PORT: u16 = 3025;
const PORT_FILE: &str = "/etc/fake-teleport/port";
const START_LOG: &str = "/var/lib/teleport/agent-starts.log";
const PID_FILE: &str = "/run/teleport.pid";
const DRAIN_SECS: u64 = 300;

/// `FAKE-TELEPORT-IDENT:<version>;broken=<0|1>`, space padded; patched in
/// the binary by testkit::agent.
static IDENT: [u8; 64] = *b"FAKE-TELEPORT-IDENT:0.0.0;broken=0                              ";

static HUP: AtomicBool = AtomicBool::new(false);

extern "C" {
    fn signal(sig: i32, handler: extern "C" fn(i32)) -> usize;
    fn dup2(old: i32, new: i32) -> i32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
}
const SIGHUP: i32 = 1;
const F_SETFD: i32 = 2;

fn port() -> u16 {
    match std::fs::read_to_string(PORT_FILE) {
        Ok(t) => t.trim().parse().unwrap_or_else(|_| {
            log(&format!("{PORT_FILE}: not a port: {t:?}"));
            std::process::exit(2)
        }),
        Err(_) => PORT,
    }
}

extern "C" fn on_hup(_: i32) {
    HUP.store(true, Ordering::SeqCst);
}

fn ident() -> (String, bool) {
    // Read through a volatile pointer: the bytes are patched after the
    // build, so the compiler must not fold them.
    let bytes: [u8; 64] = unsafe { std::ptr::read_volatile(&IDENT) };
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let payload = text.strip_prefix("FAKE-TELEPORT-IDENT:").unwrap_or("?");
    let (version, rest) = payload.split_once(';').unwrap_or((payload, ""));
    (version.to_string(), rest == "broken=1")
}

fn log(msg: &str) {
    eprintln!("fake-teleport[{}]: {msg}", std::process::id());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (version, broken) = ident();
    match args.get(1).map(String::as_str) {
        Some("start") => start(&version, broken),
        Some("probe") if args.len() == 4 => probe(&args[2], &args[3]),
        None | Some("version") => println!("Teleport v{version} git: go1.22"),
        Some(other) => {
            eprintln!("fake-teleport: unknown command {other:?}");
            std::process::exit(2);
        }
    }
}

fn start(version: &str, broken: bool) {
    let inherited = std::env::var("FAKE_TELEPORT_LISTEN_FD").ok();
    let listener = match inherited.as_deref() {
        Some(fd) => {
            let fd: i32 = fd.parse().expect("FAKE_TELEPORT_LISTEN_FD");
            unsafe { TcpListener::from_raw_fd(fd) }
        }
        None => TcpListener::bind(("127.0.0.1", port())).unwrap_or_else(|e| {
            log(&format!("cannot listen on 127.0.0.1:{}: {e}", port()));
            std::process::exit(1)
        }),
    };
    std::env::remove_var("FAKE_TELEPORT_LISTEN_FD");
    let pid = std::process::id();
    let upgrader = std::env::var("TELEPORT_EXT_UPGRADER").unwrap_or_else(|_| "none".into());
    let via = if inherited.is_some() { "reload" } else { "start" };
    let _ = std::fs::create_dir_all("/var/lib/teleport");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(START_LOG)
        .expect("start log");
    writeln!(f, "start version={version} upgrader={upgrader} pid={pid} via={via}").unwrap();
    drop(f);
    if broken {
        std::thread::sleep(Duration::from_secs(1));
        log("broken build, exiting");
        std::process::exit(1);
    }
    let tmp = format!("{PID_FILE}.{pid}");
    std::fs::write(&tmp, format!("{pid}\n")).expect("pid file");
    std::fs::rename(&tmp, PID_FILE).expect("pid file");
    if inherited.is_some() {
        // Our stdout is the parent's pipe.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    unsafe {
        signal(SIGHUP, on_hup);
    }
    let at = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    log(&format!("Teleport v{version} serving on {at} ({via})"));
    serve(listener, version.to_string());
}

fn serve(listener: TcpListener, version: String) {
    listener.set_nonblocking(true).expect("nonblocking");
    let active = Arc::new(AtomicUsize::new(0));
    let handed_over = Arc::new(AtomicBool::new(false));
    let mut listener = Some(listener);
    let mut drain_since: Option<Instant> = None;
    loop {
        if handed_over.load(Ordering::SeqCst) && drain_since.is_none() {
            // The new process accepts from now on.
            listener = None;
            drain_since = Some(Instant::now());
            log(&format!(
                "the new process is ready: draining {} connection(s)",
                active.load(Ordering::SeqCst)
            ));
        }
        if let Some(since) = drain_since {
            if active.load(Ordering::SeqCst) == 0 || since.elapsed() > Duration::from_secs(DRAIN_SECS) {
                log("drained, exiting");
                std::process::exit(0);
            }
        }
        if HUP.swap(false, Ordering::SeqCst) && drain_since.is_none() {
            if let Some(l) = &listener {
                graceful_restart(l, handed_over.clone());
            }
        }
        match listener.as_ref().map(|l| l.accept()) {
            Some(Ok((conn, _))) => {
                let active = active.clone();
                let version = version.clone();
                active.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = conn.set_nonblocking(false);
                    handle(conn, &version);
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn handle(conn: TcpStream, version: &str) {
    let mut out = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let reply = match line.trim() {
            "version" => version.to_string(),
            "pid" => std::process::id().to_string(),
            other => format!("unknown {other}"),
        };
        if writeln!(out, "{reply}").is_err() {
            return;
        }
    }
}

fn graceful_restart(listener: &TcpListener, handed_over: Arc<AtomicBool>) {
    let exe = std::fs::read_link("/proc/self/exe")
        .map(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_suffix(" (deleted)").unwrap_or(&s).to_string()
        })
        .unwrap_or_else(|_| "/usr/bin/teleport".into());
    let fd = listener.as_raw_fd();
    log(&format!("SIGHUP: starting {exe} with the listening socket"));
    let mut cmd = Command::new(&exe);
    cmd.arg("start")
        .env("FAKE_TELEPORT_LISTEN_FD", "3")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    unsafe {
        cmd.pre_exec(move || {
            if dup2(fd, 3) < 0 || fcntl(3, F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            log(&format!("cannot start {exe}: {e}; keeping this process"));
            return;
        }
    };
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() == "ready" {
            handed_over.store(true, Ordering::SeqCst);
            // The child runs on; it is reaped by init once we exit.
        } else {
            let status = child.wait();
            log(&format!(
                "the new process exited before it was ready ({status:?}): this one keeps serving"
            ));
        }
    });
}

fn probe(out: &str, go: &str) {
    let write = |line: &str| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .expect("probe output");
        writeln!(f, "{line}").unwrap();
    };
    let ask = |conn: &mut TcpStream, reader: &mut BufReader<TcpStream>| -> String {
        if writeln!(conn, "version").is_err() {
            return "write-failed".into();
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => "closed".into(),
            Ok(_) => line.trim().to_string(),
            Err(e) => format!("error:{}", e.kind()),
        }
    };
    let connect = || -> Result<(TcpStream, BufReader<TcpStream>), String> {
        let c = TcpStream::connect(("127.0.0.1", port())).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = BufReader::new(c.try_clone().map_err(|e| e.to_string())?);
        Ok((c, r))
    };
    let (mut conn, mut reader) = match connect() {
        Ok(x) => x,
        Err(e) => {
            write(&format!("before=connect-failed:{e}"));
            std::process::exit(1);
        }
    };
    write(&format!("before={}", ask(&mut conn, &mut reader)));
    let deadline = Instant::now() + Duration::from_secs(600);
    while !std::path::Path::new(go).exists() {
        if Instant::now() > deadline {
            write("timeout");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    write(&format!("after={}", ask(&mut conn, &mut reader)));
    match connect() {
        Ok((mut c, mut r)) => write(&format!("new={}", ask(&mut c, &mut r))),
        Err(e) => write(&format!("new=connect-failed:{e}")),
    }
    drop(conn);
    write("done");
}
