//! Which `Host` names the gateway answers for: its guard against DNS rebinding.
//!
//! A page on `http://evil.example` whose name is re-pointed to 127.0.0.1 reaches the gateway
//! with `Host: evil.example` and, being same-origin with itself, could read every answer.
//! So the gateway serves only requests for hosts it knows: loopback names and addresses, the
//! address it listens on (any address of this machine when it listens on all of them), and
//! names given with `--allowed-host`. An address literal cannot be rebound (no DNS is
//! involved), which is why any local address is safe when listening on `0.0.0.0`.

use std::net::{IpAddr, SocketAddr};

/// The hosts a gateway answers for.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    /// Lower-case names given with `--allowed-host` (without port); `*` allows any.
    names: Vec<String>,
    /// The listen address: its IP is allowed, and with an unspecified IP every IP literal.
    listen: Option<SocketAddr>,
}

impl AllowedHosts {
    /// Hosts allowed for a gateway listening on `listen`, plus `names` (each `host` or
    /// `host:port`; the port is ignored).
    pub fn new(names: &[String], listen: Option<SocketAddr>) -> AllowedHosts {
        let names = names
            .iter()
            .map(|n| split_host(n.trim()).0.to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        AllowedHosts { names, listen }
    }

    /// Whether a request for `host` (a `Host` header or `:authority`, with optional port)
    /// may be served.
    pub fn permits(&self, host: &str) -> bool {
        let (name, _port) = split_host(host.trim());
        if name.is_empty() {
            return false;
        }
        let name = name.to_ascii_lowercase();
        if name == "localhost" || self.names.iter().any(|n| n == "*" || *n == name) {
            return true;
        }
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => true,
            Ok(ip) => self
                .listen
                .is_some_and(|listen| listen.ip().is_unspecified() || listen.ip() == ip),
            Err(_) => false,
        }
    }
}

/// `host[:port]` or `[v6]:port` split into the host and the port text.
fn split_host(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((v6, tail)) => (
                &authority[..v6.len() + 2],
                tail.strip_prefix(':').filter(|p| !p.is_empty()),
            ),
            None => ("", None),
        };
    }
    match authority.rsplit_once(':') {
        // A bare IPv6 address without brackets is not a valid Host; treat it as a name.
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_served_and_rebinding_names_are_not() {
        let hosts = AllowedHosts::new(&[], Some("127.0.0.1:51023".parse().unwrap()));
        for ok in [
            "localhost",
            "LOCALHOST:51023",
            "127.0.0.1:51023",
            "127.0.0.2",
            "[::1]:51023",
        ] {
            assert!(hosts.permits(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:51023",
            "localhost.evil.example",
            "192.168.1.5:51023",
            "",
            "[::1",
        ] {
            assert!(!hosts.permits(refused), "{refused}");
        }
    }

    #[test]
    fn named_hosts_and_the_listen_address_are_served() {
        let hosts = AllowedHosts::new(
            &["Render-Box.lan:443".to_owned()],
            Some("192.168.1.5:51023".parse().unwrap()),
        );
        assert!(hosts.permits("render-box.lan"));
        assert!(hosts.permits("192.168.1.5:51023"));
        assert!(!hosts.permits("192.168.1.6:51023"));
        let any_address = AllowedHosts::new(&[], Some("0.0.0.0:51023".parse().unwrap()));
        assert!(any_address.permits("10.1.2.3:51023"));
        assert!(!any_address.permits("render-box.lan:51023"));
    }
}
