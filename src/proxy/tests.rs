//! `NO_PROXY` and the proxy variables as Go's `httpproxy` reads them (its
//! own test table, ports made explicit).

use super::*;

fn env(pairs: &[(&str, &str)]) -> ProxyEnv {
    ProxyEnv::from_lookup(|k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
}

const GO_NO_PROXY: &str = "foobar.com, .barbaz.net, *.wildcard.io, 192.168.1.1, 192.168.1.2:81, 192.168.1.3:80, 10.0.0.0/30, 2001:db8::52:0:1, [2001:db8::52:0:3]:443, [2001:db8::52:0:2]:443, 2002:db8:a::45/64, Proxy.Example:8443";

#[test]
fn no_proxy_as_go_reads_it() {
    let e = env(&[
        ("HTTPS_PROXY", "http://egress:3128"),
        ("HTTP_PROXY", "egress:3128"),
        ("NO_PROXY", GO_NO_PROXY),
    ]);
    // (host, port, proxied)
    let table: &[(&str, u16, bool)] = &[
        ("localhost", 443, false),
        ("127.0.0.1", 443, false),
        ("127.0.0.2", 443, false),
        ("[::1]", 443, false),
        ("[::2]", 443, true),
        ("192.168.1.1", 443, false),
        ("192.168.1.2", 443, true),
        ("192.168.1.2", 81, false),
        ("192.168.1.3", 80, false),
        ("192.168.1.3", 443, true),
        ("192.168.1.4", 443, true),
        ("10.0.0.2", 443, false),
        ("10.0.0.4", 443, true),
        ("[2001:db8::52:0:1]", 443, false),
        ("[2001:db8::52:0:2]", 443, false),
        ("[2001:db8::52:0:2]", 80, true),
        ("[2001:db8::52:0:3]", 443, false),
        ("[2002:db8:a::123]", 443, false),
        ("[fe80::424b:c8be:1643:a1b6]", 443, true),
        ("barbaz.net", 443, true),
        ("www.barbaz.net", 443, false),
        ("foobar.com", 443, false),
        ("www.foobar.com", 443, false),
        ("FooBar.com", 443, false),
        ("foofoobar.com", 443, true),
        ("baz.com", 443, true),
        ("localhost.net", 443, true),
        ("local.localhost", 443, true),
        ("wildcard.io", 443, true),
        ("nested.wildcard.io", 443, false),
        ("awildcard.io", 443, true),
        ("proxy.example", 8443, false),
        ("a.proxy.example", 8443, false),
        ("proxy.example", 443, true),
    ];
    for (host, port, proxied) in table {
        let got = e.proxy_for("https", host, *port);
        assert_eq!(got.is_some(), *proxied, "{host}:{port}: {got:?}");
    }
    assert_eq!(
        e.proxy_for("http", "teleport.example", 80).as_deref(),
        Some("http://egress:3128"),
        "a value without a scheme is http://"
    );
}

#[test]
fn star_and_precedence() {
    let e = env(&[("https_proxy", "http://p:1"), ("no_proxy", "*")]);
    assert_eq!(e.proxy_for("https", "teleport.example", 443), None);
    let e = env(&[
        ("HTTPS_PROXY", "http://upper:1"),
        ("https_proxy", "http://lower:1"),
    ]);
    assert_eq!(
        e.proxy_for("https", "teleport.example", 443).as_deref(),
        Some("http://upper:1")
    );
    let e = env(&[("HTTPS_PROXY", ""), ("https_proxy", "http://lower:1")]);
    assert_eq!(
        e.proxy_for("https", "teleport.example", 443).as_deref(),
        Some("http://lower:1"),
        "an empty value is unset"
    );
    // HTTP_PROXY is not used for https, nor HTTPS_PROXY for http.
    let e = env(&[("HTTP_PROXY", "http://p:1")]);
    assert_eq!(e.proxy_for("https", "teleport.example", 443), None);
    let e = env(&[("HTTPS_PROXY", "http://p:1")]);
    assert_eq!(e.proxy_for("http", "teleport.example", 80), None);
    assert!(!env(&[]).is_set());
}

#[test]
fn unreachable_hint_names_the_agents_proxy() {
    let none = ProxyEnv::default();
    let to = ("https", "teleport.example", 443);
    let h = unreachable_hint(
        &none,
        to,
        Some("# HTTPS_PROXY=x\nHTTPS_PROXY=http://egress:3128\n"),
    );
    assert!(
        h.contains(
            "no proxy is configured for the updater; the agent's is in /etc/default/teleport"
        ),
        "{h}"
    );
    let h = unreachable_hint(&none, to, Some("# HTTPS_PROXY=http://egress:3128\nFOO=1\n"));
    assert!(
        h.starts_with("no proxy is configured for the updater ("),
        "{h}"
    );
    let h = unreachable_hint(&none, to, None);
    assert!(h.contains("/etc/default/teleport-upgrade"), "{h}");
    let set = env(&[("HTTPS_PROXY", "http://user:secret@p:1")]);
    let h = unreachable_hint(&set, to, None);
    assert!(h.contains("through the updater's proxy"), "{h}");
    assert!(!h.contains("secret"), "{h}");
    let set = env(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", ".example")]);
    assert!(unreachable_hint(&set, to, None).contains("NO_PROXY"));
}
