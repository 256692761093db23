//! The fleet's record of completed updates per group and target, and the
//! failure-rate halt (`fleet-report`, `fleet-halt-rate`,
//! `fleet-halt-min-sample`).
//!
//! airlock has no such API, so the record lives in an etcd (the one airlock
//! uses, or any other), spoken to through etcd's v3 JSON gateway
//! (`POST /v3/kv/range`, `/v3/kv/txn`; keys and values base64): one key per
//! group and target, `teleport-upgrade/fleet-report/<group>/<target>`,
//! holding `{"ok": n, "failed": m}`. A host that finished an update under
//! a slot adds itself by compare-and-swap on the key's version (bounded
//! retries): `ok` when the new version verified healthy, `failed` when it
//! was rolled back on a host healthy before the update (a failure of the
//! release). An update made while the agent was unhealthy that does not
//! cure it is not counted: it says nothing of the release.
//!
//! Before taking a slot for a target, the host reads the record (an
//! observation); the decision halts ([`HaltRule::halts`]) when at least
//! `min_sample` updates completed and more than `rate` of them failed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The key prefix in etcd.
pub const PREFIX: &str = "teleport-upgrade/fleet-report/";
/// Compare-and-swap attempts of one increment.
pub const CAS_ATTEMPTS: u32 = 8;
/// `fleet-halt-rate`'s default, in tenths of a percent (5 %).
pub const DEFAULT_RATE: u32 = 50;
/// `fleet-halt-min-sample`'s default.
pub const DEFAULT_MIN_SAMPLE: u64 = 20;

/// Completed updates of one target in one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }
}

/// When the rollout of a target halts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HaltRule {
    /// Tenths of a percent (`fleet-halt-rate` 2 = 20).
    pub rate: u32,
    pub min_sample: u64,
}

impl Default for HaltRule {
    fn default() -> Self {
        HaltRule {
            rate: DEFAULT_RATE,
            min_sample: DEFAULT_MIN_SAMPLE,
        }
    }
}

impl HaltRule {
    /// At least `min_sample` updates completed, and more than `rate` of
    /// them failed.
    pub fn halts(&self, c: &Counts) -> bool {
        c.total() >= self.min_sample.max(1) && c.failed * 1000 > u64::from(self.rate) * c.total()
    }

    /// `rate` as a percent, for people ("2", "2.5").
    pub fn rate_text(&self) -> String {
        rate_text(self.rate)
    }
}

/// Tenths of a percent as text.
pub fn rate_text(tenths: u32) -> String {
    match tenths % 10 {
        0 => format!("{}", tenths / 10),
        d => format!("{}.{d}", tenths / 10),
    }
}

/// A `fleet-halt-rate` value: a percent from 0.1 to 100, at most one
/// decimal (`2`, `2.5`); in tenths of a percent.
pub fn parse_rate(v: &str) -> Result<u32, String> {
    let bad = || format!("{v:?}: expected a percent from 0.1 to 100, at most one decimal (2, 2.5)");
    let (whole, tenth) = v.split_once('.').unwrap_or((v, "0"));
    if whole.is_empty()
        || whole.len() > 3
        || tenth.len() != 1
        || !whole
            .bytes()
            .chain(tenth.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let t =
        whole.parse::<u32>().map_err(|_| bad())? * 10 + tenth.parse::<u32>().map_err(|_| bad())?;
    if !(1..=1000).contains(&t) {
        return Err(bad());
    }
    Ok(t)
}

/// A `fleet-halt-min-sample` value: 1 to 100000.
pub fn parse_min_sample(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (1..=100_000).contains(&n) && !v.starts_with('+') => Ok(n),
        _ => Err(format!("{v:?}: expected a whole number from 1 to 100000")),
    }
}

/// What a run saw of the record (the decision's input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The record of the target, and the rule that applies.
    Read { counts: Counts, rule: HaltRule },
    /// The store did not answer (or answered nonsense): no rate halt,
    /// the slot count alone bounds the rollout.
    Unreachable(String),
}

/// The record's key of `group` and `target`.
pub fn key(group: &str, target: &str) -> String {
    format!("{PREFIX}{group}/{target}")
}

/// The etcd client.
pub struct Store {
    http: reqwest::Client,
    base: reqwest::Url,
}

impl Store {
    /// `base` is validated as `fleet-lock` is ([`super::parse_url`]).
    pub fn new(base: &reqwest::Url) -> Result<Store, String> {
        let loopback_http = base.scheme() == "http";
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .https_only(!loopback_http)
            .tls_built_in_root_certs(!loopback_http)
            .timeout(super::client::REQUEST_TIMEOUT)
            .connect_timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("teleport-upgrade/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the fleet-report client: {e}"))?;
        Ok(Store {
            http,
            base: base.clone(),
        })
    }

    fn call(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        let url = self
            .base
            .join(path)
            .map_err(|e| format!("cannot form the URL: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        rt.block_on(async {
            let resp = self
                .http
                .post(url.clone())
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            if bytes.len() > 65536 {
                return Err(format!("{url}: the answer is too long"));
            }
            if status != 200 {
                return Err(format!(
                    "{url}: HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ));
            }
            serde_json::from_slice(&bytes).map_err(|e| format!("{url}: not JSON: {e}"))
        })
    }

    /// The record and the key's version (0: no record yet).
    pub fn read(&self, group: &str, target: &str) -> Result<(Counts, i64), String> {
        let k = B64.encode(key(group, target));
        let r = self.call("v3/kv/range", serde_json::json!({ "key": k }))?;
        let Some(kv) = r["kvs"].as_array().and_then(|a| a.first()) else {
            return Ok((Counts::default(), 0));
        };
        let raw = B64
            .decode(kv["value"].as_str().unwrap_or(""))
            .map_err(|e| format!("the record {} is not base64: {e}", key(group, target)))?;
        let counts = serde_json::from_slice(&raw).map_err(|e| {
            format!(
                "the record {} is not {{\"ok\",\"failed\"}}: {e}",
                key(group, target)
            )
        })?;
        Ok((counts, int(&kv["version"])))
    }

    /// Add one completed update (`ok`, or a failure of the release) by
    /// compare-and-swap on the key's version, at most [`CAS_ATTEMPTS`]
    /// times; the record afterwards.
    pub fn add(&self, group: &str, target: &str, ok: bool) -> Result<Counts, String> {
        let k = B64.encode(key(group, target));
        for _ in 0..CAS_ATTEMPTS {
            let (mut c, version) = self.read(group, target)?;
            if ok {
                c.ok += 1;
            } else {
                c.failed += 1;
            }
            let value = serde_json::to_vec(&c).expect("counts serialize");
            let r = self.call(
                "v3/kv/txn",
                serde_json::json!({
                    "compare": [{"target": "VERSION", "result": "EQUAL", "key": k, "version": version.to_string()}],
                    "success": [{"request_put": {"key": k, "value": B64.encode(value)}}],
                }),
            )?;
            if r["succeeded"] == true {
                return Ok(c);
            }
        }
        Err(format!(
            "{CAS_ATTEMPTS} compare-and-swap attempts met other hosts' writes"
        ))
    }
}

/// A JSON integer etcd writes as a string (absent: 0).
fn int(v: &serde_json::Value) -> i64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_samples() {
        assert_eq!(parse_rate("2"), Ok(20));
        assert_eq!(parse_rate("2.5"), Ok(25));
        assert_eq!(parse_rate("0.1"), Ok(1));
        assert_eq!(parse_rate("100"), Ok(1000));
        for bad in [
            "0", "0.0", "100.1", "2.55", "-1", "x", "", ".5", "2.", "1e1",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(rate_text(25), "2.5");
        assert_eq!(rate_text(20), "2");
        assert_eq!(parse_min_sample("20"), Ok(20));
        for bad in ["0", "100001", "-1", "+3", "x"] {
            assert!(parse_min_sample(bad).is_err(), "{bad}");
        }
    }

    /// (rate %, min sample, ok, failed) -> halts?
    #[test]
    fn halt_table() {
        let rows: &[(u32, u64, u64, u64, bool)] = &[
            (20, 20, 19, 0, false), // too few
            (20, 20, 18, 1, false), // 19 < 20
            (20, 20, 19, 1, true),  // 5 % > 2 %
            (20, 20, 49, 1, false), // 2 % is not more than 2 %
            (20, 20, 48, 1, true),  // 2.04 %
            (20, 20, 1000, 0, false),
            (50, 20, 0, 20, true),
            (50, 1, 0, 1, true),
            (1000, 1, 0, 5, false), // 100 % is never exceeded
        ];
        for &(rate, min_sample, ok, failed, want) in rows {
            let r = HaltRule { rate, min_sample };
            assert_eq!(
                r.halts(&Counts { ok, failed }),
                want,
                "{rate} {min_sample} {ok} {failed}"
            );
        }
    }
}
