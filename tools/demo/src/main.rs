//! The built-in demo (`scripts/demo`): see the library, `demo::demo`.
//!
//! Usage: demo --updater PATH/teleport-upgrade

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let updater = match (args.next().as_deref(), args.next()) {
        (Some("--updater"), Some(p)) => PathBuf::from(p),
        _ => {
            eprintln!("usage: demo --updater PATH/teleport-upgrade");
            std::process::exit(2);
        }
    };
    if let Err(e) = demo::demo(&updater) {
        println!("{e}");
        std::process::exit(1);
    }
}
