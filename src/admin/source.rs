//! Where an admin request comes from, as refusals are counted and throttled:
//! the TCP peer's address (never a header a client writes), an IPv6 peer
//! by its /64, since one host commonly holds a whole /64.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(std::net::Ipv4Addr),
    /// The first 64 bits of the address.
    V6Prefix(Ipv6Addr),
    /// Sources that found the table full share this one entry.
    Others,
}

impl Source {
    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Prefix(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
            },
        }
    }

    /// The peer of a request. The listeners always record it; a router
    /// driven without them (none today) would count as one source.
    pub fn of(parts: &Parts) -> Self {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(Self::Others, |ConnectInfo(peer)| Self::from_ip(peer.ip()))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(ip) => write!(f, "{ip}"),
            Self::V6Prefix(prefix) => write!(f, "{prefix}/64"),
            Self::Others => f.write_str("others"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_addresses_and_ipv6_prefixes() {
        let show = |ip: &str| Source::from_ip(ip.parse().expect("address")).to_string();
        assert_eq!(show("192.0.2.7"), "192.0.2.7");
        assert_eq!(show("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(show("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            Source::from_ip("2001:db8:1:2::9".parse().expect("address")),
            Source::from_ip("2001:db8:1:2:ffff::1".parse().expect("address"))
        );
    }
}
