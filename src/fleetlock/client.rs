//! The FleetLock client: `POST <base>/v1/pre-reboot` (take a slot) and
//! `POST <base>/v1/steady-state` (give it back), with the header
//! `fleet-lock-protocol: true` and `{"client_params":{"id","group"}}`.
//! 200 means done (both operations are idempotent on the server: a holder
//! taking again still holds one slot, releasing a slot not held is a
//! no-op); anything else is an error, whose body is
//! `{"kind": ..., "value": ...}`.

use std::time::Duration;

use super::Settings;

/// Per request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest error body read.
const MAX_BODY: usize = 4096;

/// Why an operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No answer (connection refused or dropped, timeout, TLS failure).
    Unreachable(String),
    /// The server answered with an error (a full semaphore is one).
    Refused {
        status: u16,
        kind: String,
        value: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreachable(e) => write!(f, "the lock server is unreachable: {e}"),
            Error::Refused {
                status,
                kind,
                value,
            } => write!(f, "the lock server answered HTTP {status}: {kind}: {value}"),
        }
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    client_params: Params<'a>,
}

#[derive(serde::Serialize)]
struct Params<'a> {
    id: &'a str,
    group: &'a str,
    /// The same id under the name early airlock releases read (their
    /// example and `HTTPParams` say `node_uuid`); servers ignore fields
    /// they do not know.
    node_uuid: &'a str,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ErrBody {
    kind: String,
    value: String,
}

pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    id: String,
}

impl Client {
    pub fn new(settings: &Settings, id: &str) -> Result<Client, String> {
        let loopback_http = settings.base.scheme() == "http";
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .https_only(!loopback_http)
            .tls_built_in_root_certs(!loopback_http)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("teleport-upgrade/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the FleetLock client: {e}"))?;
        Ok(Client {
            http,
            settings: settings.clone(),
            id: id.into(),
        })
    }

    /// Take a slot (`pre-reboot`).
    pub fn take(&self) -> Result<(), Error> {
        self.post("v1/pre-reboot")
    }

    /// Give the slot back (`steady-state`).
    pub fn release(&self) -> Result<(), Error> {
        self.post("v1/steady-state")
    }

    fn post(&self, op: &str) -> Result<(), Error> {
        let url = self
            .settings
            .base
            .join(op)
            .map_err(|e| Error::Unreachable(format!("cannot form the URL: {e}")))?;
        let body = Body {
            client_params: Params {
                id: &self.id,
                group: &self.settings.group,
                node_uuid: &self.id,
            },
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Unreachable(format!("cannot start the async runtime: {e}")))?;
        rt.block_on(async {
            let resp = self
                .http
                .post(url.clone())
                .header("fleet-lock-protocol", "true")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).expect("the body serializes"))
                .send()
                .await
                .map_err(|e| Error::Unreachable(format!("{url}: {e}")))?;
            let status = resp.status().as_u16();
            if status == 200 {
                return Ok(());
            }
            let mut bytes = Vec::new();
            let mut resp = resp;
            while let Ok(Some(chunk)) = resp.chunk().await {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_BODY {
                    bytes.truncate(MAX_BODY);
                    break;
                }
            }
            // airlock answers a plain-text error (a full semaphore: "all N
            // semaphore slots currently locked"), the protocol's JSON one
            // `{"kind", "value"}`.
            let e: ErrBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrBody {
                kind: "error".into(),
                value: String::from_utf8_lossy(&bytes)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect(),
            });
            Err(Error::Refused {
                status,
                kind: e.kind,
                value: e.value,
            })
        })
    }
}
