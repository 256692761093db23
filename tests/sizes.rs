//! The project's size rule: no function over 120 lines, no file over 800,
//! in all the Rust code (product, tests, test kit, tools), as
//! `scripts/fn-lengths` checks it.

use std::path::Path;
use std::process::Command;

#[test]
fn no_function_over_120_lines_and_no_file_over_800() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(repo.join("scripts/fn-lengths"))
        .current_dir(repo)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "scripts/fn-lengths exited {:?}:\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
