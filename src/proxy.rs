//! The egress proxy of the updater's own requests (version server, the
//! cluster's proxy, the FleetLock server), chosen as Teleport chooses it
//! (Go's `golang.org/x/net/http/httpproxy`): `HTTPS_PROXY` for https URLs,
//! `HTTP_PROXY` for http ones (upper case first, then lower case), none for
//! `localhost` and loopback addresses, none for a host `NO_PROXY` names.
//! `NO_PROXY` entries, comma separated: `*` (everything), an IP address or
//! CIDR (`10.0.0.0/8`), a name (`example.com`: itself and its subdomains),
//! a leading dot or `*.` (`.example.com`: subdomains only), each name or
//! address optionally with `:port` (only that port).
//!
//! The package managers get the same variables from the environment (see
//! `backends::cmd`); the systemd unit reads them from
//! `/etc/default/teleport-upgrade`.

use std::net::IpAddr;

/// The file the systemd unit reads the updater's proxy settings from.
pub const UPDATER_ENV_FILE: &str = "/etc/default/teleport-upgrade";
/// Where Teleport documents the agent's proxy settings.
pub const AGENT_ENV_FILE: &str = "/etc/default/teleport";

/// The proxy settings, as read from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxy {
    All,
    Cidr(IpAddr, u8),
    Ip(IpAddr, Option<u16>),
    /// `.example.com`; `with_apex`: `example.com` itself matches too.
    Domain {
        suffix: String,
        with_apex: bool,
        port: Option<u16>,
    },
}

impl ProxyEnv {
    /// From this process's environment.
    pub fn from_env() -> ProxyEnv {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From `get` (a variable's value by name): upper case before lower
    /// case, empty values ignored, as Go's `FromEnvironment`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        let any = |a: &str, b: &str| {
            get(a)
                .filter(|v| !v.is_empty())
                .or_else(|| get(b).filter(|v| !v.is_empty()))
        };
        ProxyEnv {
            http: any("HTTP_PROXY", "http_proxy"),
            https: any("HTTPS_PROXY", "https_proxy"),
            no_proxy: any("NO_PROXY", "no_proxy").unwrap_or_default(),
        }
    }

    /// Whether any proxy is set at all.
    pub fn is_set(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    /// The proxy URL for a request to `scheme://host:port`, or `None` for
    /// a direct connection. A proxy value without a scheme is `http://`.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<String> {
        let p = match scheme {
            "https" => self.https.as_ref()?,
            "http" => self.http.as_ref()?,
            _ => return None,
        };
        if !self.use_proxy(host, port) {
            return None;
        }
        Some(if p.contains("://") {
            p.clone()
        } else {
            format!("http://{p}")
        })
    }

    fn use_proxy(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if host == "localhost" {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        !entries(&self.no_proxy)
            .iter()
            .any(|e| e.matches(&host, ip, port))
    }
}

impl NoProxy {
    fn matches(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.map_or(true, |p| p == port);
        match (self, ip) {
            (NoProxy::All, _) => true,
            (NoProxy::Cidr(net, bits), Some(ip)) => in_cidr(ip, *net, *bits),
            (NoProxy::Ip(a, p), Some(ip)) => *a == ip && port_ok(p),
            (
                NoProxy::Domain {
                    suffix,
                    with_apex,
                    port: p,
                },
                None,
            ) => {
                (host.ends_with(suffix.as_str()) || (*with_apex && host == &suffix[1..]))
                    && port_ok(p)
            }
            _ => false,
        }
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (a, b, len) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.to_bits() as u128, b.to_bits() as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = len - u32::from(bits);
    (a >> shift) == (b >> shift)
}

/// The entries of a `NO_PROXY` value; malformed ones are skipped (as Go
/// skips them).
fn entries(raw: &str) -> Vec<NoProxy> {
    let mut out = Vec::new();
    for e in raw.split(',') {
        let e = e.trim().to_ascii_lowercase();
        if e.is_empty() {
            continue;
        }
        if e == "*" {
            return vec![NoProxy::All];
        }
        if let Some((net, bits)) = e.split_once('/') {
            let max = if net.contains(':') { 128 } else { 32 };
            if let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u8>()) {
                if bits <= max {
                    out.push(NoProxy::Cidr(net, bits));
                }
            }
            continue;
        }
        let (host, port) = split_host_port(&e);
        if host.is_empty() {
            continue;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            out.push(NoProxy::Ip(ip, port));
            continue;
        }
        let host = if host.starts_with("*.") {
            &host[1..]
        } else {
            host
        };
        let with_apex = !host.starts_with('.');
        let suffix = if with_apex {
            format!(".{host}")
        } else {
            host.to_string()
        };
        if suffix.len() > 1 {
            out.push(NoProxy::Domain {
                suffix,
                with_apex,
                port,
            });
        }
    }
    out
}

/// `host:port`, `[v6]:port`, or a bare host (`port` None). A bare IPv6
/// address stays whole.
fn split_host_port(e: &str) -> (&str, Option<u16>) {
    if let Some(rest) = e.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h, port);
        }
    }
    match e.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(p) => (h, Some(p)),
            Err(_) => ("", None),
        },
        _ => (e, None),
    }
}

/// `b` with the proxy of `env` for every request (and none of reqwest's
/// own choice from the environment).
pub fn apply(b: reqwest::ClientBuilder, env: &ProxyEnv) -> reqwest::ClientBuilder {
    if !env.is_set() {
        return b.no_proxy();
    }
    let env = env.clone();
    b.proxy(reqwest::Proxy::custom(move |url| {
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let p = env.proxy_for(url.scheme(), host, port)?;
        reqwest::Url::parse(&p).ok()
    }))
}

/// What an operator is told when `host:port` (over `scheme`) could not be
/// reached: the proxy the updater used, that `NO_PROXY` kept it from the
/// proxy, or that none is configured (and where the agent's is, when
/// `agent_env` — the text of [`AGENT_ENV_FILE`] — sets one).
pub fn unreachable_hint(
    env: &ProxyEnv,
    (scheme, host, port): (&str, &str, u16),
    agent_env: Option<&str>,
) -> String {
    if let Some(p) = env.proxy_for(scheme, host, port) {
        return format!("tried through the updater's proxy {}", backends::redact(&p));
    }
    if env.is_set() {
        return format!("tried directly: the updater's NO_PROXY (or a loopback address) keeps {host}:{port} from its proxy");
    }
    let agent_has = agent_env.is_some_and(|t| {
        t.lines().any(|l| {
            let l = l.trim().trim_start_matches("export ").trim_start();
            ["HTTPS_PROXY=", "https_proxy=", "HTTP_PROXY=", "http_proxy="]
                .iter()
                .any(|k| {
                    l.strip_prefix(k)
                        .is_some_and(|v| !v.trim().trim_matches(['"', '\'']).is_empty())
                })
        })
    });
    if agent_has {
        format!("no proxy is configured for the updater; the agent's is in {AGENT_ENV_FILE} (set it in {UPDATER_ENV_FILE} too)")
    } else {
        format!("no proxy is configured for the updater (set HTTPS_PROXY in {UPDATER_ENV_FILE} if this host reaches the network through one)")
    }
}

#[cfg(test)]
mod tests;
