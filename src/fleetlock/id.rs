//! The host's FleetLock id: stable per host, derived from
//! `/etc/machine-id` (inside `--root`) as systemd's
//! `sd_id128_get_machine_app_specific()` derives an app-specific id (and
//! as Zincati does with its own app id): HMAC-SHA256 keyed with the
//! machine id, over this application's id, truncated to 128 bits and
//! marked as a version 4 UUID. The raw machine id never leaves the host.

use std::path::Path;

use ring::hmac;

/// This application's id (random, fixed forever: changing it changes every
/// host's FleetLock id and so orphans the slots they hold).
pub const APP_ID: [u8; 16] = [
    0x5b, 0x0e, 0x3a, 0x91, 0xc4, 0x27, 0x4f, 0x8d, 0x9a, 0x61, 0x0c, 0xd3, 0x7e, 0x42, 0xb8, 0x15,
];

pub const MACHINE_ID_FILE: &str = "/etc/machine-id";

/// The machine id as its file holds it: 32 lowercase or uppercase hex
/// digits and a newline.
pub fn parse_machine_id(text: &str) -> Result<[u8; 16], String> {
    let t = text.trim_end_matches('\n');
    if t.len() != 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected 32 hexadecimal digits".into());
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).expect("hex checked");
    }
    if out == [0u8; 16] {
        return Err("the machine id is all zeros".into());
    }
    Ok(out)
}

/// The app-specific id of `machine` (32 lowercase hex digits).
pub fn app_specific(machine: &[u8; 16]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, machine);
    let tag = hmac::sign(&key, &APP_ID);
    let mut id = [0u8; 16];
    id.copy_from_slice(&tag.as_ref()[..16]);
    // A version 4 (random) UUID, variant 1, as systemd marks it.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host's id, from the machine id file at `path`.
pub fn host_id(path: &Path) -> Result<String, String> {
    let text = crate::fsread::read_text(path, crate::fsread::CONFIG_CAP)
        .map_err(|e| e.to_string())
        .and_then(|t| t.ok_or_else(|| "it does not exist".to_string()))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let m = parse_machine_id(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(app_specific(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_distinct_and_not_the_machine_id() {
        let a = parse_machine_id("0123456789abcdef0123456789abcdef\n").unwrap();
        let b = parse_machine_id("0123456789ABCDEF0123456789ABCDEE").unwrap();
        let ia = app_specific(&a);
        assert_eq!(ia, app_specific(&a), "stable");
        assert_ne!(ia, app_specific(&b), "distinct per machine");
        assert_eq!(ia.len(), 32);
        assert!(!ia.contains("0123456789abcdef"), "never the raw machine id");
        assert_eq!(&ia[12..13], "4", "UUID version 4: {ia}");
        for bad in [
            "",
            "xyz",
            "0123456789abcdef0123456789abcde",
            &"0".repeat(32),
        ] {
            assert!(parse_machine_id(bad).is_err(), "{bad}");
        }
    }

    /// A known answer, computed independently (Python's `hmac` module:
    /// HMAC-SHA256 keyed with the machine id's 16 bytes over APP_ID, first
    /// 16 bytes, UUID v4 bits set): pins the construction, so a change of
    /// key or algorithm (which would orphan every host's slot) fails here.
    #[test]
    fn known_answer() {
        let m = parse_machine_id("0123456789abcdef0123456789abcdef\n").unwrap();
        assert_eq!(app_specific(&m), "f02b56f4aefa47caa07473ec51aa5fb9");
    }
}
