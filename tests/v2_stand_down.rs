//! Coexisting with Managed Updates v2, through the binary on apt, dnf and
//! zypper: v2's configuration for the agent makes every run stand down.

use testkit::each_backend;
use testkit::world::{Kind, World, CHANNEL};

const V2: &str = "/opt/teleport/default/update.yaml";

/// v2's configuration for the agent makes every run stand down, even a
/// critical one, without asking the version server; `status` says why.
/// `enabled: false` gives the host back.
fn v2_presence_stands_down(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.set_critical("yes");
    w.write(V2,
        "version: v1\nkind: update_config\nspec:\n  proxy: example.teleport.sh:443\n  enabled: true\n",
    );
    w.run(&["run"])
        .expect(0)
        .logs_contain("Managed Updates v2")
        .logs_contain(V2);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.vs_hits(&format!("{CHANNEL}/version")), 0, "no request");
    let s: serde_json::Value =
        serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(s["managed_by_v2"], V2);
    assert_eq!(s["last_run"]["decision"], "stand-down");
    // Control: disabled v2 no longer holds the host.
    w.write(V2, "spec:\n  enabled: false\n");
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}
each_backend!(v2_presence_stands_down);
