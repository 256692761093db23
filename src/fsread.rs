//! Bounded reads of regular files: every configuration, schedule and state
//! file goes through here. The reader lives in the backends crate, so that
//! the package managers' configuration and repository files are read the
//! same way ([`backends::fsread`]).

pub use backends::fsread::*;
