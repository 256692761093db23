//! The old path of `testkit::world::rpm` (see `tests/common/mod.rs`).
#![allow(dead_code, unused_imports)]

pub use testkit::world::rpm::*;
