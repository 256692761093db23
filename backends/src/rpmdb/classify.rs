//! Recognising trust failures and picking the telling line in the output
//! of the rpm-family tools.

/// Messages by which rpm-based tools say a signature, key or checksum
/// failed: such a failure is a trust refusal, never a plain error.
pub const TRUST_FAILURES: &[&str] = &[
    // dnf / librepo / rpm
    "GPG check FAILED",
    "is not signed",
    "Public key for",
    "GPG signature verification error",
    "Bad GPG signature",
    "GPG verification is enabled, but GPG signature is not available",
    "not correct for this package",
    "Failed to retrieve GPG key",
    "Didn't install any keys",
    "checksum doesn't match",
    "Checksum mismatch",
    "NOKEY",
    "BAD (Expected",
    // zypper / libzypp
    "Signature verification failed",
    "Digest verification failed",
    "is unsigned",
    "File is unsigned",
    "public key is not available",
    "Signature does not verify",
    // Last resort: zypper's key prompt (answered "reject" in -n mode).
    "reject the key",
    "has wrong checksum",
    "File has no checksum",
];

/// The line of `text` that best reports a trust failure: the first line
/// matching the earliest marker that matches at all, except that zypper's
/// key prompt is used only when nothing else matched.
pub fn trust_failure_line(text: &str) -> Option<String> {
    let lower: Vec<(String, &str)> = text.lines().map(|l| (l.to_ascii_lowercase(), l)).collect();
    let first_line = |m: &str| {
        let m = m.to_ascii_lowercase();
        lower
            .iter()
            .find(|(l, _)| l.contains(&m))
            .map(|(_, l)| l.trim().to_string())
    };
    // Preference: the first line (in output order) that matches any
    // marker but the prompt; then the prompt.
    let (prompt, rest): (Vec<&str>, Vec<&str>) =
        TRUST_FAILURES.iter().partition(|m| **m == "reject the key");
    let rest_lower: Vec<String> = rest.iter().map(|m| m.to_ascii_lowercase()).collect();
    lower
        .iter()
        .find(|(l, _)| rest_lower.iter().any(|m| l.contains(m.as_str())))
        .map(|(_, l)| l.trim().to_string())
        .or_else(|| prompt.iter().find_map(|m| first_line(m)))
}

/// The first line of `text` containing the first of `needles` that occurs
/// at all, else `fallback`.
pub fn line_with(text: &str, needles: &[&str], fallback: String) -> String {
    needles
        .iter()
        .find_map(|n| text.lines().find(|l| l.contains(n)))
        .map(|l| l.trim().to_string())
        .unwrap_or(fallback)
}
