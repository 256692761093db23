//! The version server client: `GET <endpoint>/version` and `/critical`,
//! TLS verified, bounded in time and size, redirects to http refused.

use std::path::Path;
use std::time::Duration;

use crate::config::Endpoint;
use crate::error::AppError;
use crate::target::{parse_critical_body, parse_version_body, Target};

/// The largest body accepted from the version server.
pub const MAX_BODY: usize = 4096;
/// Per request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// For both requests together: a server that accepts and never answers
/// cannot hold a run longer than this.
pub const OVERALL_TIMEOUT: Duration = Duration::from_secs(25);

/// What the version server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub target: Target,
    pub critical: bool,
    /// Set when `/critical` could not be read (then `critical` is false).
    pub critical_warning: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    shown: String,
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
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("teleport-upgrade/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
                if from_https && attempt.url().scheme() != "https" {
                    attempt.error("refusing a redirect from https to a non-https URL")
                } else if attempt.previous().len() >= 3 {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            }));
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca).map_err(|e| AppError::Config {
                file: ca.to_path_buf(),
                message: format!("cannot read the CA file: {e}"),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| AppError::Config {
                    file: ca.to_path_buf(),
                    message: format!("not a PEM certificate bundle: {e}"),
                })?;
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
        })
    }

    /// `Err(Ok(msg))`: the server could not be read (transport, status);
    /// `Err(Err(msg))`: it answered something no version server would
    /// (an oversized body), which is refused like any hostile answer.
    async fn get(&self, leaf: &str) -> Result<Vec<u8>, Result<String, String>> {
        let url = format!("{}/{leaf}", self.base);
        let mut resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| Ok(describe_reqwest(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Ok(format!("GET /{leaf} answered HTTP {}", status.as_u16())));
        }
        if let Some(len) = resp.content_length() {
            if len as usize > MAX_BODY {
                return Err(Err(format!(
                    "GET /{leaf} answered a body of {len} bytes (at most {MAX_BODY} accepted)"
                )));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| Ok(describe_reqwest(&e)))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(Err(format!(
                    "GET /{leaf} answered a body larger than {MAX_BODY} bytes"
                )));
            }
        }
        Ok(body)
    }

    /// Ask for `/version` and `/critical` at once.
    pub async fn fetch(&self) -> Result<Answer, AppError> {
        let both = async { tokio::join!(self.get("version"), self.get("critical")) };
        let (version, critical) =
            tokio::time::timeout(OVERALL_TIMEOUT, both)
                .await
                .map_err(|_| AppError::Target {
                    endpoint: self.shown.clone(),
                    detail: format!("no answer within {} s", OVERALL_TIMEOUT.as_secs()),
                })?;
        let body = version.map_err(|e| match e {
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
        })
    }
}

fn is_trust_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("certificate")
        || d.contains("non-https")
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
