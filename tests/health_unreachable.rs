//! "Could not reach" during the health verification (issue 23, item 8):
//! a diagnostic address that refuses connections is waited for, within
//! `health-timeout`, like any bad sample (an agent that opens it late is
//! healthy); one that never accepts a connection is judged at the deadline
//! (bounded: rolled back like any unhealthy version), and the verdict says
//! it could not be reached, not that the agent answered "not ready".

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use testkit::world::{Kind, World};

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_diag_address_never_reached_is_judged_at_the_deadline_and_said_so() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.config("diag-addr", &format!("127.0.0.1:{}", closed_port()));
    w.config("health-timeout", "3");
    let t = Instant::now();
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    // The version put back is checked the same way, and fails the same
    // way here (nothing ever listens): exit 7, the old version installed.
    r.expect(7)
        .logs_contain("diagnostic address http://127.0.0.1:")
        .logs_contain("could not be reached in 3 s")
        .logs_contain("never an HTTP answer")
        .logs_contain("Connection refused");
    assert!(
        !r.stderr().contains("readyz answered HTTP"),
        "not an answer"
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "rolled back");
    assert!(
        t.elapsed() < Duration::from_secs(90),
        "bounded by health-timeout: {:?}",
        t.elapsed()
    );
}

#[test]
fn a_diag_address_that_opens_late_is_waited_for() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let port = closed_port();
    w.config("diag-addr", &format!("127.0.0.1:{port}"));
    w.config("health-timeout", "8");
    // Connections are refused until 1.5 s after dpkg recorded 15.4.3,
    // then /readyz answers 200.
    let status = w.file("/var/lib/dpkg/status");
    let agent = std::thread::spawn(move || {
        let t = Instant::now();
        while !std::fs::read_to_string(&status)
            .unwrap_or_default()
            .contains("Version: 15.4.3")
        {
            assert!(t.elapsed() < Duration::from_secs(240), "never installed");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1500));
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        l.set_nonblocking(false).unwrap();
        for c in l.incoming().take(200) {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(0).logs_contain("the agent is healthy");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(w.state()["failed_target"].is_null());
    drop(agent);
}
