//! The README's quick start: its first command, `scripts/demo`, run by its
//! second. `scripts/demo` installs the demo's tools (`scripts/deps --demo`,
//! a subset of what `scripts/deps` installs for the suite) and builds in
//! the `demo` profile; this runs the same demo (`tools/demo`) with the
//! binary the suite tests.

use std::path::Path;

#[test]
fn the_demo_updates_the_agent_from_the_signed_repository() {
    demo::demo(Path::new(env!("CARGO_BIN_EXE_teleport-upgrade"))).unwrap();
}
