//! The version server client: `GET <endpoint>/version` and `/critical`,
//! TLS verified, bounded in time and size, redirects to http refused, and
//! a redirect from a loopback endpoint to any other host refused (that host
//! is never asked). Requests go through the proxy of the environment as
//! Teleport's do ([`crate::proxy`]); a loopback endpoint is reached
//! directly, never through a proxy.

use std::path::Path;
use std::time::Duration;

use crate::config::Endpoint;
use crate::error::AppError;
use crate::target::{parse_critical_body, parse_version_body, Target, TargetVersion};

/// The largest body accepted from the version server.
pub const MAX_BODY: usize = 4096;
/// Per request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// For both requests together: a server that accepts and never answers
/// cannot hold a run longer than this.
pub const OVERALL_TIMEOUT: Duration = Duration::from_secs(25);

/// The largest `/webapi/find` document accepted (it carries the proxy's
/// settings, a few KiB).
pub const MAX_FIND_BODY: usize = 64 * 1024;

/// Where the target came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `/version` and `/critical` (v1).
    VersionFiles,
    /// The proxy's `/webapi/find` `auto_update` fields (RFD 184).
    Find,
}

/// What the version server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub target: Target,
    /// `/critical`, or `auto_update.agent_auto_update` from `/webapi/find`:
    /// update now, whatever the window.
    pub critical: bool,
    /// Set when `/critical` could not be read (then `critical` is false).
    pub critical_warning: Option<String>,
    pub via: Via,
    /// The proxy's `/webapi/find` document, when it was asked and answered
    /// (its `server_version` feeds the cluster-compatibility guard, its
    /// `agent_update_jitter_seconds` the jitter).
    pub find_body: Option<Vec<u8>>,
    /// The update group the proxy answered for: set when `/webapi/find`
    /// was asked with `?group=` and its `auto_update` decided (`via` is
    /// [`Via::Find`]); then `critical` is the group's `agent_auto_update`.
    pub group: Option<String>,
}

/// The part of the proxy's `/webapi/find` answer that matters here.
#[derive(Debug, serde::Deserialize)]
struct Find {
    auto_update: Option<FindAutoUpdate>,
}

#[derive(Debug, serde::Deserialize)]
struct FindAutoUpdate {
    #[serde(default)]
    agent_version: String,
    #[serde(default)]
    agent_auto_update: bool,
}

/// The target from a `/webapi/find` body: `Ok(None)` when the proxy does
/// not advertise an agent version (older proxies, or not JSON at all);
/// `Err` when it advertises one that is not a version.
pub fn parse_find_body(body: &[u8]) -> Result<Option<(Target, bool)>, String> {
    let Ok(find) = serde_json::from_slice::<Find>(body) else {
        return Ok(None);
    };
    let Some(au) = find.auto_update else {
        return Ok(None);
    };
    if au.agent_version.is_empty() {
        return Ok(None);
    }
    let target = parse_version_body(au.agent_version.as_bytes())
        .map_err(|e| format!("auto_update.agent_version: {e}"))?;
    Ok(Some((target, au.agent_auto_update)))
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    shown: String,
    find: Option<String>,
    group: Option<String>,
}

impl Client {
    pub fn new(
        endpoint: &Endpoint,
        insecure: bool,
        ca_file: Option<&Path>,
    ) -> Result<Client, AppError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .https_only(!insecure)
            // Plain http to loopback needs no trust roots: skip loading
            // (and scanning) the system's, a third of a no-op run's CPU.
            .tls_built_in_root_certs(!insecure)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("teleport-upgrade/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
                let from_loopback = attempt.previous().first().is_some_and(url_is_loopback);
                if from_https && attempt.url().scheme() != "https" {
                    attempt.error("refusing a redirect from https to a non-https URL")
                } else if from_loopback && !url_is_loopback(attempt.url()) {
                    let to = attempt.url().host_str().unwrap_or_default().to_string();
                    attempt.error(format!(
                        "refusing a redirect from the loopback version server to another host ({})",
                        backends::redact(&to)
                    ))
                } else if attempt.previous().len() >= 3 {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            }));
        // The proxy as Teleport chooses it (HTTPS_PROXY, NO_PROXY with
        // CIDRs and host:port); a loopback endpoint never goes through one.
        b = crate::proxy::apply(b, &crate::proxy::ProxyEnv::from_env());
        if let Some(ca) = ca_file {
            let pem = crate::fsread::read_bounded(ca, crate::fsread::STATE_CAP)
                .and_then(|b| b.ok_or(crate::fsread::ReadError::Io("it does not exist".into())))
                .map_err(|e| AppError::Config {
                    file: ca.to_path_buf(),
                    message: format!("the CA file: {e}"),
                })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| AppError::Config {
                    file: ca.to_path_buf(),
                    message: format!("not a PEM certificate bundle: {e}"),
                })?;
            if certs.is_empty() {
                return Err(AppError::Config {
                    file: ca.to_path_buf(),
                    message: "the CA file holds no PEM certificate (-----BEGIN CERTIFICATE-----): the version server could not be verified against it".into(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| AppError::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: endpoint.base_url(insecure),
            shown: endpoint.base_url(insecure),
            find: endpoint.find_url(insecure),
            group: None,
        })
    }

    /// Ask `/webapi/find` for this update group (`?group=<name>`, the name
    /// URL-encoded as a query value); `None` asks without a query.
    pub fn with_group(mut self, group: Option<&str>) -> Client {
        let (Some(g), Some(find)) = (group, &self.find) else {
            return self;
        };
        if let Ok(mut url) = reqwest::Url::parse(find) {
            url.query_pairs_mut().append_pair("group", g);
            self.find = Some(url.to_string());
            self.group = Some(g.to_string());
        }
        self
    }

    /// `Err(Ok(msg))`: the server could not be read (transport, status);
    /// `Err(Err(msg))`: it answered something no version server would
    /// (an oversized body), which is refused like any hostile answer.
    async fn get(&self, leaf: &str) -> Result<Vec<u8>, Result<String, String>> {
        self.get_url(&format!("{}/{leaf}", self.base), leaf, MAX_BODY)
            .await
    }

    async fn get_url(
        &self,
        url: &str,
        leaf: &str,
        max: usize,
    ) -> Result<Vec<u8>, Result<String, String>> {
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| Ok(describe_reqwest(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Ok(format!("GET /{leaf} answered HTTP {}", status.as_u16())));
        }
        if let Some(len) = resp.content_length() {
            if len as usize > max {
                return Err(Err(format!(
                    "GET /{leaf} answered a body of {len} bytes (at most {max} accepted)"
                )));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| Ok(describe_reqwest(&e)))? {
            body.extend_from_slice(&chunk);
            if body.len() > max {
                return Err(Err(format!(
                    "GET /{leaf} answered a body larger than {max} bytes"
                )));
            }
        }
        Ok(body)
    }

    /// `/webapi/find`'s agent version and update signal, when the proxy
    /// gives them. A proxy that does not answer, or answers without them,
    /// is `Ok(None)`: the v1 files decide.
    #[allow(clippy::type_complexity)]
    async fn find(&self) -> (Result<Option<(Target, bool)>, String>, Option<Vec<u8>>) {
        let Some(url) = &self.find else {
            return (Ok(None), None);
        };
        match self.get_url(url, "webapi/find", MAX_FIND_BODY).await {
            Ok(body) => (parse_find_body(&body), Some(body)),
            Err(e) => {
                tracing::debug!(
                    "no agent version from /webapi/find ({}); using /version",
                    e.unwrap_or_else(|x| x)
                );
                (Ok(None), None)
            }
        }
    }

    /// The cluster's version from the proxy at `base` (`scheme://host:port`):
    /// the `server_version` of the first of `leaves` (`webapi/find`,
    /// `webapi/ping`) that gives one.
    pub async fn cluster_version(
        &self,
        base: &str,
        leaves: &[&str],
    ) -> Result<TargetVersion, String> {
        let mut tried = Vec::new();
        for leaf in leaves {
            let url = format!("{base}/{leaf}");
            let got =
                tokio::time::timeout(REQUEST_TIMEOUT, self.get_url(&url, leaf, MAX_FIND_BODY))
                    .await
                    .unwrap_or_else(|_| Err(Ok("timed out".into())));
            match got {
                Ok(body) => match crate::cluster::server_version_of(&body)? {
                    Some(v) => return Ok(v),
                    None => tried.push(format!("{url} gave no server_version")),
                },
                Err(e) => tried.push(format!("{url}: {}", e.unwrap_or_else(|x| x))),
            }
        }
        Err(tried.join("; "))
    }

    /// Ask for `/version`, `/critical` and (from a proxy) `/webapi/find` at
    /// once. `/webapi/find`'s `auto_update.agent_version`, when present,
    /// wins (RFD 184), with `agent_auto_update` as the update-now signal.
    pub async fn fetch(&self) -> Result<Answer, AppError> {
        let all = async { tokio::join!(self.get("version"), self.get("critical"), self.find()) };
        let (version, critical, (find, find_body)) = tokio::time::timeout(OVERALL_TIMEOUT, all)
            .await
            .map_err(|_| AppError::Target {
                endpoint: self.shown.clone(),
                detail: format!("no answer within {} s", OVERALL_TIMEOUT.as_secs()),
            })?;
        match find {
            Ok(Some((target, now))) => {
                return Ok(Answer {
                    target,
                    critical: now,
                    critical_warning: None,
                    via: Via::Find,
                    find_body,
                    group: self.group.clone(),
                })
            }
            Ok(None) => {}
            Err(hostile) => {
                return Err(AppError::Refused(format!(
                    "{}: {hostile}",
                    self.find.as_deref().unwrap_or_default()
                )))
            }
        }
        let body = version.map_err(|e| match e {
            // A certificate not valid yet is this host's clock (behind),
            // most likely: "could not learn", retried, and said so.
            Ok(detail) if is_clock_failure(&detail) => AppError::Target {
                endpoint: self.shown.clone(),
                detail: clock_detail(&detail, crate::schedule::rfc3339(unix_now())),
            },
            // A certificate that does not verify, or a redirect to plain
            // http, is a trust failure, not an outage.
            Ok(detail) if is_trust_failure(&detail) => {
                AppError::Refused(format!("{}: {detail}", self.shown))
            }
            Ok(detail) => AppError::Target {
                endpoint: self.shown.clone(),
                detail,
            },
            Err(hostile) => AppError::Refused(format!("{}: {hostile}", self.shown)),
        })?;
        let target = parse_version_body(&body)
            .map_err(|d| AppError::Refused(format!("{}/version: {d}", self.shown)))?;
        let critical = critical.map_err(|e| e.unwrap_or_else(|x| x));
        let (critical, critical_warning) = match critical.and_then(|b| parse_critical_body(&b)) {
            Ok(c) => (c, None),
            Err(e) => (
                false,
                Some(format!(
                    "{}/critical unreadable, treating the update as not critical: {e}",
                    self.shown
                )),
            ),
        };
        Ok(Answer {
            target,
            critical,
            critical_warning,
            via: Via::VersionFiles,
            find_body,
            group: None,
        })
    }
}

/// Whether `url`'s host is a loopback address or `localhost`.
fn url_is_loopback(url: &reqwest::Url) -> bool {
    let Some(h) = url.host_str() else {
        return false;
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// Whether a TLS failure says the server's certificate is not valid yet
/// (rustls: `certificate not valid yet`, `NotValidYet`).
fn is_clock_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("not valid yet") || d.contains("notvalidyet")
}

/// The message of a certificate not valid yet: it names the clock.
fn clock_detail(detail: &str, now: String) -> String {
    format!(
        "{detail}: the certificate is not valid yet by this host's clock, which reads {now}; \
         check the clock (timedatectl status, NTP): a clock behind makes every certificate \
         look not yet valid; the next run tries again",
    )
}

/// This host's clock, in seconds since the epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn is_trust_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("certificate")
        || d.contains("non-https")
        || d.contains("loopback version server to another host")
        || d.contains("unknownissuer")
        || d.contains("notvalidforname")
}

/// reqwest errors carry their cause chain; show all of it (TLS failures
/// hide the useful part two levels down).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else if e.is_redirect() {
        "redirect refused".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_not_yet_valid_is_the_clock_not_trust() {
        let d = "could not connect: client error (Connect): invalid peer certificate: certificate not valid yet: verification time 1 (UNIX), but certificate is not valid before 2";
        assert!(is_clock_failure(d));
        assert!(is_clock_failure("invalid peer certificate: NotValidYet"));
        assert!(!is_clock_failure("invalid peer certificate: UnknownIssuer"));
        assert!(!is_clock_failure("invalid peer certificate: Expired"));
        let m = clock_detail(d, crate::schedule::rfc3339(0));
        assert!(
            m.contains("this host's clock, which reads 1970-01-01T00:00:00Z"),
            "{m}"
        );
    }

    #[test]
    fn loopback_hosts() {
        for u in [
            "http://127.0.0.1:1/x",
            "http://localhost/",
            "http://[::1]:8/",
            "http://127.9.9.9/",
        ] {
            assert!(url_is_loopback(&reqwest::Url::parse(u).unwrap()), "{u}");
        }
        for u in [
            "http://10.0.0.1/",
            "http://example.com/",
            "http://localhost.example.com/",
            "http://[::2]/",
        ] {
            assert!(!url_is_loopback(&reqwest::Url::parse(u).unwrap()), "{u}");
        }
    }

    #[test]
    fn find_bodies() {
        let ok = br#"{"server_version":"17.0.0","auto_update":{"tools_version":"17.0.0","agent_version":"17.0.1","agent_auto_update":true,"agent_update_jitter_seconds":60}}"#;
        let (t, now) = parse_find_body(ok).unwrap().unwrap();
        assert_eq!(t.to_string(), "17.0.1");
        assert!(now);
        let later = br#"{"auto_update":{"agent_version":"v17.0.1"}}"#;
        assert!(!parse_find_body(later).unwrap().unwrap().1);
        for absent in [
            &br#"{"server_version":"15.4.3"}"#[..],
            br#"{"auto_update":{"agent_version":""}}"#,
            br#"{"auto_update":null}"#,
            b"<html>not found</html>",
            b"",
        ] {
            assert_eq!(parse_find_body(absent), Ok(None), "{absent:?}");
        }
        for hostile in [
            &br#"{"auto_update":{"agent_version":"latest"}}"#[..],
            br#"{"auto_update":{"agent_version":"--help"}}"#,
            br#"{"auto_update":{"agent_version":"15.4.3; rm -rf /"}}"#,
        ] {
            assert!(parse_find_body(hostile).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn the_group_is_a_query_value_of_find_only() {
        let proxy =
            Endpoint::parse("p.example.com:3080/v1/webapi/automaticupgrades/channel/default")
                .unwrap();
        let c = Client::new(&proxy, false, None).unwrap();
        assert_eq!(
            c.find.as_deref(),
            Some("https://p.example.com:3080/webapi/find")
        );
        let c = c.with_group(Some("staging-eu.1"));
        assert_eq!(
            c.find.as_deref(),
            Some("https://p.example.com:3080/webapi/find?group=staging-eu.1")
        );
        assert_eq!(
            c.base,
            "https://p.example.com:3080/v1/webapi/automaticupgrades/channel/default"
        );
        // Encoded as a query value, whatever reaches it.
        let c = Client::new(&proxy, false, None)
            .unwrap()
            .with_group(Some("a b&c=d"));
        assert!(c.find.unwrap().ends_with("?group=a+b%26c%3Dd"));
        // A static version server is never asked for /webapi/find.
        let fixed = Endpoint::parse("updates.example.com/teleport").unwrap();
        let c = Client::new(&fixed, false, None)
            .unwrap()
            .with_group(Some("prod"));
        assert_eq!(c.find, None);
        assert_eq!(c.group, None);
    }
}
