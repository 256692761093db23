//! The options that force verification on, whatever the configuration
//! files say.

/// The options that force verification on for every dnf/yum call: package
/// signatures (`gpgcheck`), metadata signatures (`repo_gpgcheck`) and local
/// package files (`localpkg_gpgcheck`) on globally and for the repository
/// `id`, and a repository that fails to verify fails the run instead of
/// being skipped (`skip_if_unavailable=False`). yum 3 (RHEL 7) reads the
/// same `--setopt=option=value` / `--setopt=repoid.option=value` forms.
pub fn enforcement_args(id: &str) -> Vec<String> {
    let mut v = global_enforcement_args();
    v.extend([
        format!("--setopt={id}.gpgcheck=True"),
        format!("--setopt={id}.repo_gpgcheck=True"),
        format!("--setopt={id}.skip_if_unavailable=False"),
    ]);
    v
}

/// The global part of [`enforcement_args`] (for calls that touch no
/// repository, such as `versionlock`).
pub fn global_enforcement_args() -> Vec<String> {
    vec![
        "--setopt=gpgcheck=True".to_string(),
        "--setopt=repo_gpgcheck=True".into(),
        "--setopt=localpkg_gpgcheck=True".into(),
    ]
}
