//! The worlds live in `testkit::world` (see there); new test files use it
//! directly. This module keeps the paths of the older `mod common;`
//! header working (`common::World` is the apt world) for test files not yet
//! moved over (`tests/converge.rs`).
#![allow(dead_code, unused_imports)]

pub use testkit::world::apt::{deb, deb_spec, debs, AptWorld as World};
pub use testkit::world::{
    now, schedule_in_window, schedule_outside_window, Run, BROKEN, BROKEN_MARKER, CHANNEL, KEYRING,
    PKG, UNPUBLISHED, VERSIONS,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_teleport-upgrade");
