//! The old path of `testkit::world::multi` (see `tests/common/mod.rs`).
#![allow(dead_code, unused_imports)]

pub use testkit::world::multi::*;

/// `testkit::each_backend!`, for `#[macro_use] mod multi;`.
#[allow(unused_macros)]
macro_rules! each_backend {
    ($name:ident) => {
        testkit::each_backend!($name);
    };
}
