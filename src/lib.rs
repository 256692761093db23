//! `teleport-upgrade`: keeps a Teleport agent on the version its cluster
//! advertises, through the system's package manager.
//!
//! Functional core, imperative shell: [`decision::decide`] is a pure
//! function of what [`run`] observed; [`backends`] does the package work.

pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod decision;
pub mod error;
pub mod exit_table;
pub mod fleetlock;
pub mod fsread;
pub mod health;
pub mod integrity_cache;
pub mod layout;
pub mod lock;
pub mod marker;
pub mod metrics;
pub mod observe;
pub mod pinning;
pub mod proxy;
pub mod reference;
pub mod run;
pub mod schedule;
pub mod settings;
pub mod state;
pub mod status;
pub mod target;
pub mod update;
pub mod update_group;
pub mod verify;
