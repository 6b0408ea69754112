//! The outbound guard: webhook URLs are `https://` and never reach an internal address.
//!
//! This module holds the pure part: which addresses are refused and which URLs are acceptable.
//! The dispatcher resolves the host, checks every address with [`check_ip`], and connects only
//! to an address it checked, so a DNS answer that changes between check and connect (rebinding)
//! cannot slip through.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::Url;

/// Why an address or URL is refused. Messages name the address class, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Blocked {
    /// Not `https://` (plain `http://` only inside the allow-list).
    #[error("webhook URLs must use https")]
    NotHttps,
    /// Not a URL, or one without a host.
    #[error("not a valid webhook URL: {0}")]
    BadUrl(String),
    /// The URL carries a user name or password; credentials belong in the authorization headers.
    #[error("webhook URLs may not carry credentials")]
    Credentials,
    /// The address is in a class never contacted.
    #[error("{ip} is a {class} address")]
    Address {
        /// The address, canonical (an IPv4-mapped IPv6 address shown as IPv4).
        ip: IpAddr,
        /// The class it belongs to.
        class: AddressClass,
    },
}

/// Classes of addresses the sender never posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 169.254/16 (cloud metadata lives here), fe80::/10.
    LinkLocal,
    /// 100.64/10, carrier-grade NAT.
    SharedNat,
    /// fc00::/7.
    UniqueLocal,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// 224/4, ff00::/8, 255.255.255.255.
    Multicast,
    /// 192.0.0/24, 198.18/15, 240/4 and other ranges not routed on the Internet.
    Reserved,
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedNat => "shared (carrier-grade NAT)",
            Self::UniqueLocal => "unique-local",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast or broadcast",
            Self::Reserved => "reserved",
        })
    }
}

/// The address as IPv4 when it is an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`), so that the
/// IPv4 rules apply to it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn class_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => AddressClass::Unspecified,
        (127, ..) => AddressClass::Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => AddressClass::Private,
        (169, 254, _) => AddressClass::LinkLocal,
        (100, 64..=127, _) => AddressClass::SharedNat,
        (224..=239, ..) => AddressClass::Multicast,
        _ if ip.is_broadcast() => AddressClass::Multicast,
        (192, 0, 0) | (198, 18..=19, _) | (240..=255, ..) => AddressClass::Reserved,
        _ => return None,
    })
}

fn class_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let first = ip.segments()[0];
    Some(match () {
        () if ip.is_unspecified() => AddressClass::Unspecified,
        () if ip.is_loopback() => AddressClass::Loopback,
        () if first & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        () if first & 0xfe00 == 0xfc00 => AddressClass::UniqueLocal,
        () if first & 0xff00 == 0xff00 => AddressClass::Multicast,
        _ => return None,
    })
}

/// Checks one resolved address: refused when it is in a blocked class, unless it lies inside one
/// of the `allowed` networks (the sender's explicit allow-list, for local testing).
pub fn check_ip(ip: IpAddr, allowed: &[IpNet]) -> Result<(), Blocked> {
    let ip = canonical(ip);
    if allowed.iter().any(|net| net.contains(&ip)) {
        return Ok(());
    }
    let class = match ip {
        IpAddr::V4(v4) => class_v4(v4),
        IpAddr::V6(v6) => class_v6(v6),
    };
    class.map_or(Ok(()), |class| Err(Blocked::Address { ip, class }))
}

/// Checks a webhook URL before any lookup: it parses, has a host, carries no credentials, and is
/// `https://`, or `http://` with a literal address inside the allow-list. An IP literal host is
/// checked with [`check_ip`] at once; host names are checked after resolution.
pub fn check_url(url: &str, allowed: &[IpNet]) -> Result<Url, Blocked> {
    let parsed = Url::parse(url).map_err(|e| Blocked::BadUrl(e.to_string()))?;
    let host = parsed
        .host()
        .ok_or_else(|| Blocked::BadUrl("no host".into()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Blocked::Credentials);
    }
    let literal = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if literal.is_some_and(|ip| allowed.iter().any(|n| n.contains(&canonical(ip)))) => {}
        _ => return Err(Blocked::NotHttps),
    }
    if let Some(ip) = literal {
        check_ip(ip, allowed)?;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(ip: &str) -> Option<AddressClass> {
        match check_ip(ip.parse().unwrap(), &[]) {
            Ok(()) => None,
            Err(Blocked::Address { class, .. }) => Some(class),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_address_class() {
        use AddressClass::*;
        let table: &[(&str, Option<AddressClass>)] = &[
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("::1", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.100", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("100.64.0.1", Some(SharedNat)),
            ("100.127.255.255", Some(SharedNat)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd00:ec2::254", Some(UniqueLocal)),
            ("0.0.0.0", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("224.0.0.1", Some(Multicast)),
            ("255.255.255.255", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("198.18.0.1", Some(Reserved)),
            ("192.0.0.8", Some(Reserved)),
            // IPv4-mapped forms get the IPv4 rules.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            // Public addresses, including ones next to the blocked ranges.
            ("8.8.8.8", None),
            ("172.15.255.255", None),
            ("172.32.0.1", None),
            ("100.63.255.255", None),
            ("100.128.0.1", None),
            ("2001:4860:4860::8888", None),
            ("::ffff:8.8.8.8", None),
        ];
        for &(ip, expected) in table {
            assert_eq!(class_of(ip), expected, "{ip}");
        }
    }

    #[test]
    fn the_allow_list_admits_its_networks_only() {
        let allowed: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(check_ip("127.0.0.1".parse().unwrap(), &allowed), Ok(()));
        assert_eq!(
            check_ip("::ffff:127.0.0.1".parse().unwrap(), &allowed),
            Ok(())
        );
        assert!(matches!(
            check_ip("127.0.0.2".parse().unwrap(), &allowed),
            Err(Blocked::Address {
                class: AddressClass::Loopback,
                ..
            })
        ));
    }

    #[test]
    fn urls() {
        let allowed: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(
            check_url("https://siem.example.com/evo", &[]).map(|u| u.to_string()),
            Ok("https://siem.example.com/evo".into())
        );
        assert_eq!(
            check_url("http://siem.example.com/evo", &[]),
            Err(Blocked::NotHttps)
        );
        assert_eq!(
            check_url("ftp://siem.example.com/", &[]),
            Err(Blocked::NotHttps)
        );
        assert_eq!(
            check_url("https://user:pw@siem.example.com/", &[]),
            Err(Blocked::Credentials)
        );
        assert!(matches!(
            check_url("not a url", &[]),
            Err(Blocked::BadUrl(_))
        ));
        assert!(matches!(
            check_url("https://169.254.169.254/latest/meta-data", &[]),
            Err(Blocked::Address {
                class: AddressClass::LinkLocal,
                ..
            })
        ));
        assert!(matches!(
            check_url("https://[::ffff:10.0.0.1]/", &[]),
            Err(Blocked::Address {
                class: AddressClass::Private,
                ..
            })
        ));
        assert!(check_url("http://127.0.0.1:8080/webhook", &allowed).is_ok());
        assert_eq!(
            check_url("http://localhost:8080/webhook", &allowed),
            Err(Blocked::NotHttps)
        );
    }
}
