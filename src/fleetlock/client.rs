//! The FleetLock client: `POST <base>/v1/pre-reboot` (take a slot) and
//! `POST <base>/v1/steady-state` (give it back), with the header
//! `fleet-lock-protocol: true` and `{"client_params":{"id","group"}}`
//! (the protocol: Zincati's `docs/development/fleetlock/protocol.md`).
//! 200 means done (both operations are idempotent on the server: a holder
//! taking again still holds one slot, releasing a slot not held is a
//! no-op); anything else is an error, whose body is
//! `{"kind": ..., "value": ...}`.
//!
//! airlock's answers (`internal/server`, `internal/lock` of
//! github.com/coreos/airlock) are told apart ([`Error`]): a full semaphore
//! and a write conflict are both its 500 `failed_lock` (told apart by the
//! value), an unconfigured group is 400 `unknown_group`, a request it
//! cannot read 400 `invalid_client_identity`, its etcd not answering 500
//! `failed_sem_init`.

use std::time::Duration;

use super::Settings;

/// Per request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest error body read.
const MAX_BODY: usize = 4096;

/// Why an operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No answer (connection refused or dropped, timeout, TLS failure):
    /// the server may have done it.
    Unreachable(String),
    /// Every slot of the group is taken (airlock: 500 `failed_lock`, "all
    /// N semaphore slots currently locked").
    Full(String),
    /// The server's write met another client's (airlock: 500
    /// `failed_lock`, "conflict on semaphore detected, aborting": etcd's
    /// compare-and-swap failed, nothing was written).
    Conflict(String),
    /// The server does not know the group (airlock: 400 `unknown_group`).
    UnknownGroup(String),
    /// The server could not read the request (airlock: 400
    /// `invalid_client_identity`).
    InvalidIdentity(String),
    /// The server cannot reach its store (airlock: 500 `failed_sem_init`,
    /// before any slot is read or written).
    StoreDown(String),
    /// Any other answer.
    Other {
        status: u16,
        kind: String,
        value: String,
    },
}

impl Error {
    /// The server answered that nothing was done: no slot was granted by
    /// this request (everything but no answer, and an unknown server
    /// failure, which may have come after its write).
    pub fn definite(&self) -> bool {
        match self {
            Error::Unreachable(_) => false,
            Error::Other { status, .. } => *status < 500,
            _ => true,
        }
    }

    /// The same request may succeed if made again soon.
    pub fn transient(&self) -> bool {
        match self {
            Error::Unreachable(_) | Error::Conflict(_) | Error::StoreDown(_) => true,
            Error::Other { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// A short word for the kind, for metrics and the record.
    pub fn word(&self) -> &'static str {
        match self {
            Error::Unreachable(_) => "unreachable",
            Error::Full(_) => "full",
            Error::Conflict(_) => "conflict",
            Error::UnknownGroup(_) => "unknown-group",
            Error::InvalidIdentity(_) => "invalid-identity",
            Error::StoreDown(_) => "store-down",
            Error::Other { .. } => "other",
        }
    }

    /// The answer of a server, classified.
    pub fn from_answer(status: u16, kind: &str, value: &str) -> Error {
        let value = value.to_string();
        match (status, kind) {
            (500, "failed_lock") if value.contains("semaphore slots currently locked") => {
                Error::Full(value)
            }
            (500, "failed_lock") if value.contains("conflict on semaphore") => {
                Error::Conflict(value)
            }
            (400, "unknown_group") => Error::UnknownGroup(value),
            (400, "invalid_client_identity") => Error::InvalidIdentity(value),
            (500, "failed_sem_init") => Error::StoreDown(value),
            _ => Error::Other {
                status,
                kind: kind.into(),
                value,
            },
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreachable(e) => write!(f, "the lock server is unreachable: {e}"),
            Error::Full(v) => write!(
                f,
                "every slot of the group is taken (hosts updating now, or keeping their slot after a rollback: a halted rollout) [lock server: {v}]"
            ),
            Error::Conflict(v) => write!(
                f,
                "the lock server's write met another host's at the same moment and was not made (a compare-and-swap conflict in its store) [lock server: {v}]"
            ),
            Error::UnknownGroup(v) => write!(
                f,
                "the lock server does not know this group: add it to the server's groups (airlock: [[lock.groups]]) or correct fleet-lock-group [lock server: {v}]"
            ),
            Error::InvalidIdentity(v) => write!(
                f,
                "the lock server could not read this host's request (invalid_client_identity) [lock server: {v}]"
            ),
            Error::StoreDown(v) => write!(
                f,
                "the lock server cannot reach its store (airlock: etcd) [lock server: {v}]"
            ),
            Error::Other {
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
        let b = reqwest::Client::builder();
        // The proxy as for the version server (Teleport's rules).
        let http = crate::proxy::apply(b, &crate::proxy::ProxyEnv::from_env())
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
            // The protocol's JSON `{"kind", "value"}` (airlock sends it as
            // text/plain, with a newline); anything else is kept as text.
            let e: ErrBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrBody {
                kind: "error".into(),
                value: String::from_utf8_lossy(&bytes)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect(),
            });
            Err(Error::from_answer(status, &e.kind, &e.value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// airlock's answers (`internal/server/pre_reboot.go`,
    /// `steady_state.go`, `internal/lock`), each told apart.
    #[test]
    fn airlock_answers_are_classified() {
        let c = |s, k, v| Error::from_answer(s, k, v);
        let full = c(500, "failed_lock", "all 3 semaphore slots currently locked");
        assert_eq!(full.word(), "full");
        assert!(full.definite() && !full.transient());
        let conflict = c(
            500,
            "failed_lock",
            "conflict on semaphore detected, aborting",
        );
        assert_eq!(conflict.word(), "conflict");
        assert!(conflict.definite() && conflict.transient());
        let group = c(400, "unknown_group", "unknown group \"x\"");
        assert_eq!(group.word(), "unknown-group");
        assert!(group.definite() && !group.transient());
        let ident = c(
            400,
            "invalid_client_identity",
            "failed to validate client identity: empty client ID",
        );
        assert_eq!(ident.word(), "invalid-identity");
        assert!(ident.definite() && !ident.transient());
        let store = c(
            500,
            "failed_sem_init",
            "failed to initialize semaphore manager: context deadline exceeded",
        );
        assert_eq!(store.word(), "store-down");
        assert!(store.definite() && store.transient());
        // A failure after the write may have granted the slot.
        let late = c(500, "failed_lock", "context deadline exceeded");
        assert_eq!(late.word(), "other");
        assert!(!late.definite() && late.transient());
        assert!(!Error::Unreachable("x".into()).definite());
        // Every kind says something different.
        let texts: std::collections::BTreeSet<String> = [full, conflict, group, ident, store, late]
            .iter()
            .map(|e| e.to_string().split(" [").next().unwrap().to_string())
            .collect();
        assert_eq!(texts.len(), 6);
    }

    /// The body is the protocol's: `id` and `group`, nothing else (airlock
    /// read `node_uuid` only before its commit 7ac0fa1, 2019-09-24, which
    /// renamed it `id` in the server, the spec and the example).
    #[test]
    fn the_body_is_the_protocols() {
        let b = Body {
            client_params: Params {
                id: "abc",
                group: "default",
            },
        };
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"client_params":{"id":"abc","group":"default"}}"#
        );
    }
}
