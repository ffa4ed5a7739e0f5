//! Who a request comes from, as rate limits see it: the client's address
//! (through the proxies the operator trusts, `http.trusted_proxies`) and
//! its network (an IPv4 address, or an IPv6 /64: what one subscriber gets,
//! so rotating addresses inside it buys nothing).
//!
//! `X-Forwarded-For` and `Forwarded` are read only when the TCP peer is a
//! trusted proxy, and from the right: each trusted proxy appends the
//! address it saw, so the rightmost address that is not a trusted proxy is
//! the client; what a client wrote further left is ignored.

use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;
use ipnet::IpNet;

use super::App;

impl App {
    /// The address of the client behind TCP peer `peer` (`None` when the
    /// transport does not know it) sending `headers`.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        peer.map(|peer| client_address(peer, headers, &self.trusted_proxies))
    }
}

/// The client's address: `peer` itself unless it is a trusted proxy, else
/// the rightmost address of the forwarding headers that is not one (the
/// leftmost when all are). An unreadable entry ends the walk at the last
/// proxy that could be believed.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for(headers).into_iter().rev() {
        let Some(ip) = hop else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// The network `ip` belongs to for rate limiting: the address itself for
/// IPv4 (an IPv4-mapped IPv6 address counts as IPv4), its /64 for IPv6.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// The addresses of the forwarding chain, left to right (`None` for an
/// entry that is not an address): every `X-Forwarded-For` header, or when
/// there is none, the `for=` of every `Forwarded` header (RFC 7239).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(|s| s.trim().parse().ok()).collect(),
            Err(_) => vec![None],
        })
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all(http::header::FORWARDED)
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text
                .split(',')
                .filter_map(|element| {
                    element.split(';').find_map(|pair| {
                        let (name, value) = pair.trim().split_once('=')?;
                        name.eq_ignore_ascii_case("for")
                            .then(|| forwarded_node(value))
                    })
                })
                .collect(),
            Err(_) => vec![None],
        })
        .collect()
}

/// The address of a `Forwarded` node: `192.0.2.1`, `"[2001:db8::1]"`, with
/// an optional port; an obfuscated or `unknown` node is `None`.
fn forwarded_node(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let host = match raw.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => raw,
    };
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn trusted() -> Vec<IpNet> {
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.7/32".parse().unwrap(),
        ]
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_proxy() {
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        // An untrusted peer's headers are ignored: it is the client.
        assert_eq!(
            client_address(ip("198.51.100.1"), &spoofed, &trusted()),
            ip("198.51.100.1")
        );
        // Through a trusted proxy, the address it saw.
        assert_eq!(
            client_address(ip("10.1.2.3"), &spoofed, &trusted()),
            ip("203.0.113.9")
        );
        // What the client wrote left of what the proxies appended is ignored.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 192.0.2.7")]);
        assert_eq!(
            client_address(ip("10.1.2.3"), &chain, &trusted()),
            ip("203.0.113.9")
        );
        // Several headers are one list, in order.
        let split = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            client_address(ip("10.1.2.3"), &split, &trusted()),
            ip("203.0.113.9")
        );
        // Garbage stops the walk at the last proxy that can be believed.
        let garbage = headers(&[("x-forwarded-for", "203.0.113.9, not-an-ip")]);
        assert_eq!(
            client_address(ip("10.1.2.3"), &garbage, &trusted()),
            ip("10.1.2.3")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_address(ip("10.1.2.3"), &HeaderMap::new(), &trusted()),
            ip("10.1.2.3")
        );
        // Nobody trusted (the default): always the peer.
        assert_eq!(
            client_address(ip("10.1.2.3"), &spoofed, &[]),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn the_forwarded_header_is_read_when_there_is_no_x_forwarded_for() {
        let forwarded = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=192.0.2.7:80",
        )]);
        assert_eq!(
            client_address(ip("10.1.2.3"), &forwarded, &trusted()),
            ip("2001:db8:cafe::17")
        );
        let hidden = headers(&[("forwarded", "for=_hidden, for=192.0.2.7")]);
        assert_eq!(
            client_address(ip("10.1.2.3"), &hidden, &trusted()),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_64() {
        assert_eq!(
            network(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            network(ip("2001:db8:1:2::1")),
            network(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            network(ip("2001:db8:1:2::1")),
            network(ip("2001:db8:1:3::1"))
        );
        assert_eq!(network(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(network(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
    }
}
