//! The outbound guard: webhook URLs are `https://` and never reach an internal address.
//!
//! This module holds the pure part: which addresses are refused and which URLs are acceptable.
//! The address table is built from the IANA IPv4 and IPv6 Special-Purpose Address Registries, one
//! row per entry ([`IPV4_RULES`], [`IPV6_RULES`]); an IPv6 address that carries an IPv4 address
//! (IPv4-mapped, IPv4-compatible, NAT64, 6to4) is judged by the IPv4 address, because a
//! translator or tunnel delivers to it (`64:ff9b::a9fe:a9fe` is the metadata service).
//! The dispatcher resolves the host, checks every address with [`check_ip`], and connects only
//! to an address it checked, so a DNS answer that changes between check and connect (rebinding)
//! cannot slip through.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
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
    /// The IPv6 address carries an IPv4 address (NAT64, 6to4, IPv4-compatible) in a class
    /// never contacted: a translator or tunnel would deliver to that IPv4 address.
    #[error("{ip} carries {v4}, a {class} address")]
    Embedded {
        /// The IPv6 address.
        ip: Ipv6Addr,
        /// The IPv4 address it carries.
        v4: Ipv4Addr,
        /// The class of the IPv4 address.
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
    /// fec0::/10, deprecated site-local addresses (RFC 3879), still routed inside some sites.
    SiteLocal,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255, the limited broadcast address.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20: examples only.
    Documentation,
    /// 198.18/15, 2001:2::/48: benchmarking networks.
    Benchmarking,
    /// 100::/64: packets to it are discarded (RTBH).
    DiscardOnly,
    /// 2001::/32: Teredo, tunnels through NATs to addresses the guard cannot see.
    Teredo,
    /// 192.0.0/24, 240/4, 2001::/23, 5f00::/16 and other ranges not routed on the Internet.
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
            Self::SiteLocal => "site-local",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::DiscardOnly => "discard-only",
            Self::Teredo => "Teredo",
            Self::Reserved => "reserved",
        })
    }
}

/// What the guard does with the addresses of one [`Rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Refused: the addresses are in this class.
    Block(AddressClass),
    /// Accepted: the registry marks the block globally reachable (anycast services such as
    /// AS112 and AMT, and identifier blocks): public addresses like any other.
    Allow,
    /// Judged by the IPv4 address the IPv6 address carries, with the IPv4 rules: a translator
    /// or tunnel delivers the packet to that IPv4 address.
    Embedded(Embedding),
}

/// Where an IPv6 address carries an IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Embedding {
    /// The last 32 bits (IPv4-mapped, IPv4-compatible, NAT64 with the well-known /96 prefix).
    Last32,
    /// Any of the RFC 6052 formats a /48 prefix allows (/48, /56, /64 or /96): the local-use
    /// NAT64 prefix does not say which one its translator uses, so each that is well-formed
    /// (the `u` octet and the suffix zero) is judged, and one blocked reading blocks.
    Rfc6052From48,
    /// Bits 16 to 47 (6to4, RFC 3056).
    SixToFour,
}

/// One row of the address table: a block, where it comes from, and the verdict on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule<N> {
    /// The block.
    pub net: N,
    /// Its name in the IANA Special-Purpose Address Registry (or where else it comes from).
    pub name: &'static str,
    /// The RFC that defines it.
    pub reference: &'static str,
    /// What the guard does with it.
    pub verdict: Verdict,
}

#[allow(clippy::too_many_arguments)]
const fn v4(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    len: u8,
    name: &'static str,
    reference: &'static str,
    verdict: Verdict,
) -> Rule<Ipv4Net> {
    Rule {
        net: Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len),
        name,
        reference,
        verdict,
    }
}

const fn v6(
    segments: [u16; 8],
    len: u8,
    name: &'static str,
    reference: &'static str,
    verdict: Verdict,
) -> Rule<Ipv6Net> {
    let [a, b, c, d, e, f, g, h] = segments;
    Rule {
        net: Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len),
        name,
        reference,
        verdict,
    }
}

use AddressClass as C;
use Verdict::{Allow, Block, Embedded};

/// The IPv4 table: every entry of the IANA IPv4 Special-Purpose Address Registry, plus the
/// multicast block (which has a registry of its own). The most specific row containing an
/// address decides; an address in no row is public and accepted.
#[rustfmt::skip]
pub const IPV4_RULES: &[Rule<Ipv4Net>] = &[
    v4(0, 0, 0, 0, 8, "\"This network\"", "RFC 791, section 3.2", Block(C::Unspecified)),
    v4(0, 0, 0, 0, 32, "\"This host on this network\"", "RFC 1122, section 3.2.1.3", Block(C::Unspecified)),
    v4(10, 0, 0, 0, 8, "Private-Use", "RFC 1918", Block(C::Private)),
    v4(100, 64, 0, 0, 10, "Shared Address Space", "RFC 6598", Block(C::SharedNat)),
    v4(127, 0, 0, 0, 8, "Loopback", "RFC 1122, section 3.2.1.3", Block(C::Loopback)),
    v4(169, 254, 0, 0, 16, "Link Local", "RFC 3927", Block(C::LinkLocal)),
    v4(172, 16, 0, 0, 12, "Private-Use", "RFC 1918", Block(C::Private)),
    v4(192, 0, 0, 0, 24, "IETF Protocol Assignments", "RFC 6890, section 2.1", Block(C::Reserved)),
    v4(192, 0, 0, 0, 29, "IPv4 Service Continuity Prefix", "RFC 7335", Block(C::Reserved)),
    v4(192, 0, 0, 8, 32, "IPv4 dummy address", "RFC 7600", Block(C::Reserved)),
    // Globally reachable per the registry, but an anycast service near the sender, never a
    // webhook: refused with the rest of 192.0.0.0/24.
    v4(192, 0, 0, 9, 32, "Port Control Protocol Anycast", "RFC 7723", Block(C::Reserved)),
    v4(192, 0, 0, 10, 32, "Traversal Using Relays around NAT Anycast", "RFC 8155", Block(C::Reserved)),
    v4(192, 0, 0, 170, 32, "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050", Block(C::Reserved)),
    v4(192, 0, 0, 171, 32, "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050", Block(C::Reserved)),
    v4(192, 0, 2, 0, 24, "Documentation (TEST-NET-1)", "RFC 5737", Block(C::Documentation)),
    v4(192, 31, 196, 0, 24, "AS112-v4", "RFC 7535", Allow),
    v4(192, 52, 193, 0, 24, "AMT", "RFC 7450", Allow),
    v4(192, 88, 99, 0, 24, "Deprecated (6to4 Relay Anycast)", "RFC 7526", Block(C::Reserved)),
    v4(192, 168, 0, 0, 16, "Private-Use", "RFC 1918", Block(C::Private)),
    v4(192, 175, 48, 0, 24, "Direct Delegation AS112 Service", "RFC 7534", Allow),
    v4(198, 18, 0, 0, 15, "Benchmarking", "RFC 2544", Block(C::Benchmarking)),
    v4(198, 51, 100, 0, 24, "Documentation (TEST-NET-2)", "RFC 5737", Block(C::Documentation)),
    v4(203, 0, 113, 0, 24, "Documentation (TEST-NET-3)", "RFC 5737", Block(C::Documentation)),
    v4(240, 0, 0, 0, 4, "Reserved", "RFC 1112, section 4", Block(C::Reserved)),
    v4(255, 255, 255, 255, 32, "Limited Broadcast", "RFC 8190, RFC 919 section 7", Block(C::Broadcast)),
    // Not in the special-purpose registry: the IPv4 Multicast Address Space Registry.
    v4(224, 0, 0, 0, 4, "Multicast", "RFC 5771", Block(C::Multicast)),
];

/// The IPv6 table: every entry of the IANA IPv6 Special-Purpose Address Registry, plus the
/// IPv4-compatible, site-local and multicast blocks (from the IPv6 Address Space registry). The
/// most specific row containing an address decides; an address in no row is accepted.
#[rustfmt::skip]
pub const IPV6_RULES: &[Rule<Ipv6Net>] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "Loopback Address", "RFC 4291", Block(C::Loopback)),
    v6([0; 8], 128, "Unspecified Address", "RFC 4291", Block(C::Unspecified)),
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped Address", "RFC 4291", Embedded(Embedding::Last32)),
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, "IPv4-IPv6 Translat.", "RFC 6052", Embedded(Embedding::Last32)),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "IPv4-IPv6 Translat.", "RFC 8215", Embedded(Embedding::Rfc6052From48)),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "Discard-Only Address Block", "RFC 6666", Block(C::DiscardOnly)),
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "Dummy IPv6 Prefix", "RFC 9780", Block(C::Reserved)),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "IETF Protocol Assignments", "RFC 2928", Block(C::Reserved)),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "TEREDO", "RFC 4380, RFC 8190", Block(C::Teredo)),
    // Globally reachable per the registry, but anycast services near the sender, never a
    // webhook: refused with the rest of 2001::/23 (as 192.0.0.9 and 192.0.0.10 are).
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, "Port Control Protocol Anycast", "RFC 7723", Block(C::Reserved)),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, "Traversal Using Relays around NAT Anycast", "RFC 8155", Block(C::Reserved)),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, "DNS-SD Service Registration Protocol Anycast", "RFC 9665", Block(C::Reserved)),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "Benchmarking", "RFC 5180", Block(C::Benchmarking)),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "AMT", "RFC 7450", Allow),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, "AS112-v6", "RFC 7535", Allow),
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, "Deprecated (previously ORCHID)", "RFC 4843", Block(C::Reserved)),
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2", "RFC 7343", Allow),
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", Allow),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "Documentation", "RFC 3849", Block(C::Documentation)),
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4", "RFC 3056", Embedded(Embedding::SixToFour)),
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, "Direct Delegation AS112 Service", "RFC 7534", Allow),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "Documentation", "RFC 9637", Block(C::Documentation)),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "Segment Routing (SRv6) SIDs", "RFC 9602", Block(C::Reserved)),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "Unique-Local", "RFC 4193, RFC 8190", Block(C::UniqueLocal)),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "Link-Local Unicast", "RFC 4291", Block(C::LinkLocal)),
    // Not in the special-purpose registry: from the IPv6 Address Space registry.
    v6([0; 8], 96, "IPv4-compatible Address (deprecated)", "RFC 4291, section 2.5.5.1", Embedded(Embedding::Last32)),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "Site-Local (deprecated)", "RFC 3879", Block(C::SiteLocal)),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "Multicast", "RFC 4291", Block(C::Multicast)),
];

/// The most specific row of [`IPV4_RULES`] holding `ip`, if any.
pub fn rule_v4(ip: Ipv4Addr) -> Option<&'static Rule<Ipv4Net>> {
    IPV4_RULES
        .iter()
        .filter(|rule| rule.net.contains(&ip))
        .max_by_key(|rule| rule.net.prefix_len())
}

/// The most specific row of [`IPV6_RULES`] holding `ip`, if any.
pub fn rule_v6(ip: Ipv6Addr) -> Option<&'static Rule<Ipv6Net>> {
    IPV6_RULES
        .iter()
        .filter(|rule| rule.net.contains(&ip))
        .max_by_key(|rule| rule.net.prefix_len())
}

/// The address as IPv4 when it is an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`), so that the
/// IPv4 rules apply to it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The IPv4 addresses `ip` may carry under `embedding` (one, or for the local-use NAT64 prefix
/// one per well-formed RFC 6052 reading).
pub fn embedded(ip: Ipv6Addr, embedding: Embedding) -> Vec<Ipv4Addr> {
    let o = ip.octets();
    let four = |a: u8, b: u8, c: u8, d: u8| Ipv4Addr::new(a, b, c, d);
    match embedding {
        Embedding::Last32 => vec![four(o[12], o[13], o[14], o[15])],
        Embedding::SixToFour => vec![four(o[2], o[3], o[4], o[5])],
        Embedding::Rfc6052From48 => {
            // RFC 6052, section 2.2: bits 64-71 (the `u` octet) are zero, and so is the suffix
            // after the IPv4 address.
            let zero = |from: usize| o[8] == 0 && o[from..].iter().all(|&b| b == 0);
            let mut found = vec![four(o[12], o[13], o[14], o[15])];
            if zero(13) {
                found.push(four(o[9], o[10], o[11], o[12]));
            }
            if zero(12) {
                found.push(four(o[7], o[9], o[10], o[11]));
            }
            if zero(11) {
                found.push(four(o[6], o[7], o[9], o[10]));
            }
            found
        }
    }
}

fn class_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    match rule_v4(ip)?.verdict {
        Block(class) => Some(class),
        Allow | Embedded(_) => None,
    }
}

/// Checks one resolved address: refused when it is in a blocked class, unless it lies inside one
/// of the `allowed` networks (the sender's explicit allow-list, for local testing). An IPv6
/// address carrying an IPv4 one (IPv4-mapped, IPv4-compatible, NAT64, 6to4) is judged by that
/// IPv4 address, allow-list included.
pub fn check_ip(ip: IpAddr, allowed: &[IpNet]) -> Result<(), Blocked> {
    let ip = canonical(ip);
    let is_allowed = |ip: IpAddr| allowed.iter().any(|net| net.contains(&ip));
    if is_allowed(ip) {
        return Ok(());
    }
    match ip {
        IpAddr::V4(v4) => class_v4(v4).map_or(Ok(()), |class| Err(Blocked::Address { ip, class })),
        IpAddr::V6(v6) => match rule_v6(v6).map(|rule| rule.verdict) {
            None | Some(Allow) => Ok(()),
            Some(Block(class)) => Err(Blocked::Address { ip, class }),
            Some(Embedded(embedding)) => {
                for v4 in embedded(v6, embedding) {
                    if is_allowed(IpAddr::V4(v4)) {
                        continue;
                    }
                    if let Some(class) = class_v4(v4) {
                        return Err(Blocked::Embedded { ip: v6, v4, class });
                    }
                }
                Ok(())
            }
        },
    }
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

/// `url` fit to show: a user name and password become `***`, and so does every query value
/// (names stay, so the URL is still recognisable) and the fragment, since SIEMs often take a
/// token in the query (`https://***@siem.example.com/evo?token=***`). Used wherever a webhook
/// URL could reach a log line, an error or an API answer other than the settings themselves.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        // Only URLs without a host refuse a user name; those carry none to hide.
        let _ = shown.set_password(None);
        let _ = shown.set_username("***");
    }
    if url.query().is_some() {
        let names: Vec<String> = url
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        shown.set_query(None);
        if !names.is_empty() {
            shown
                .query_pairs_mut()
                .extend_pairs(names.iter().map(|name| (name.as_str(), "***")));
        } else {
            shown.set_query(Some("***"));
        }
    }
    if url.fragment().is_some() {
        shown.set_fragment(Some("***"));
    }
    shown.into()
}

/// [`redact_url`] for a URL not parsed yet; one that does not parse is not shown at all.
pub fn redact_url_str(url: &str) -> String {
    Url::parse(url).map_or_else(|_| "<not a URL>".to_owned(), |url| redact_url(&url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(ip: &str) -> Option<AddressClass> {
        match check_ip(ip.parse().unwrap(), &[]) {
            Ok(()) => None,
            Err(Blocked::Address { class, .. } | Blocked::Embedded { class, .. }) => Some(class),
            Err(other) => panic!("{other:?}"),
        }
    }

    /// One address per row of both tables (the test fails if a row has none), then public
    /// addresses, bare and embedded.
    #[test]
    fn every_address_class() {
        use AddressClass::*;
        let table: &[(&str, Option<AddressClass>)] = &[
            // IPv4, one per registry entry.
            ("0.1.2.3", Some(Unspecified)),
            ("0.0.0.0", Some(Unspecified)),
            ("10.1.2.3", Some(Private)),
            ("100.64.0.1", Some(SharedNat)),
            ("127.0.0.1", Some(Loopback)),
            ("169.254.169.254", Some(LinkLocal)),
            ("172.16.0.1", Some(Private)),
            ("192.0.0.100", Some(Reserved)),
            ("192.0.0.1", Some(Reserved)),
            ("192.0.0.8", Some(Reserved)),
            ("192.0.0.9", Some(Reserved)),
            ("192.0.0.10", Some(Reserved)),
            ("192.0.0.170", Some(Reserved)),
            ("192.0.0.171", Some(Reserved)),
            ("192.0.2.1", Some(Documentation)),
            ("192.31.196.1", None),
            ("192.52.193.1", None),
            ("192.88.99.1", Some(Reserved)),
            ("192.168.1.100", Some(Private)),
            ("192.175.48.1", None),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.7", Some(Documentation)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("224.0.0.1", Some(Multicast)),
            // IPv6, one per registry entry.
            ("::1", Some(Loopback)),
            ("::", Some(Unspecified)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("64:ff9b:1::a00:1", Some(Private)),
            ("100::1", Some(DiscardOnly)),
            ("100:0:0:1::1", Some(Reserved)),
            ("2001:100::1", Some(Reserved)),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(Teredo)),
            ("2001:1::1", Some(Reserved)),
            ("2001:1::2", Some(Reserved)),
            ("2001:1::3", Some(Reserved)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001:3::1", None),
            ("2001:4:112::1", None),
            ("2001:10::1", Some(Reserved)),
            ("2001:20::1", None),
            ("2001:30::1", None),
            ("2001:db8::1", Some(Documentation)),
            ("2002:a9fe:a9fe::1", Some(LinkLocal)),
            ("2620:4f:8000::1", None),
            ("3fff::1", Some(Documentation)),
            ("5f00::1", Some(Reserved)),
            ("fd00:ec2::254", Some(UniqueLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("::127.0.0.1", Some(Loopback)),
            ("fec0::1", Some(SiteLocal)),
            ("ff02::1", Some(Multicast)),
            // More of the same rows, at their edges.
            ("127.255.255.254", Some(Loopback)),
            ("172.31.255.255", Some(Private)),
            ("100.127.255.255", Some(SharedNat)),
            ("fc00::1", Some(UniqueLocal)),
            ("239.255.255.255", Some(Multicast)),
            ("3fff:fff:ffff::1", Some(Documentation)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::10.0.0.1", Some(Private)),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:c0a8:101::1", Some(Private)),
            ("::10.0.0.1", Some(Private)),
            ("::0.0.0.2", Some(Unspecified)),
            // The local-use NAT64 prefix in its /48 and /64 formats (RFC 6052): 169.254.169.254
            // and 10.0.0.1, the last of which reads as public 1.0.0.0 in the /96 format.
            ("64:ff9b:1:a9fe:a9:fe00::", Some(Unspecified)),
            ("64:ff9b:1:0:a:0:100:0", Some(Private)),
            // Public addresses, including ones next to the blocked ranges, bare and embedded.
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("172.15.255.255", None),
            ("172.32.0.1", None),
            ("100.63.255.255", None),
            ("100.128.0.1", None),
            ("192.0.1.1", None),
            ("198.20.0.1", None),
            ("223.255.255.255", None),
            ("2001:4860:4860::8888", None),
            ("2001:200::1", None),
            ("2606:4700:4700::1111", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
            ("64:ff9b::1.1.1.1", None),
            ("64:ff9b:1::808:808", None),
            ("64:ff9b:1:0:8:808:800:0", None),
            ("2002:808:808::1", None),
            ("2002:101:101:1::1", None),
            ("::8.8.8.8", None),
        ];
        for &(ip, expected) in table {
            assert_eq!(class_of(ip), expected, "{ip}");
        }

        // Every row decides at least one address of the table.
        let decided = |net: String| {
            table.iter().any(|(ip, _)| match canonical_or_raw(ip) {
                IpAddr::V4(v4) => rule_v4(v4).is_some_and(|r| r.net.to_string() == net),
                IpAddr::V6(v6) => rule_v6(v6).is_some_and(|r| r.net.to_string() == net),
            })
        };
        for rule in IPV4_RULES {
            assert!(
                decided(rule.net.to_string()),
                "no test address for {}",
                rule.net
            );
        }
        for rule in IPV6_RULES {
            assert!(
                decided(rule.net.to_string()),
                "no test address for {}",
                rule.net
            );
        }
    }

    /// IPv4-mapped addresses stand for their IPv4 row, every other address for its own.
    fn canonical_or_raw(ip: &str) -> IpAddr {
        let ip: IpAddr = ip.parse().unwrap();
        match ip {
            IpAddr::V6(v6) if rule_v6(v6).is_some_and(|r| r.name == "IPv4-mapped Address") => ip,
            _ => canonical(ip),
        }
    }

    #[test]
    fn blocked_embedded_addresses_say_what_they_carry() {
        assert_eq!(
            check_ip("64:ff9b::a9fe:a9fe".parse().unwrap(), &[])
                .unwrap_err()
                .to_string(),
            "64:ff9b::a9fe:a9fe carries 169.254.169.254, a link-local address"
        );
        assert!(matches!(
            check_url("https://[64:ff9b::a9fe:a9fe]/latest/meta-data", &[]),
            Err(Blocked::Embedded {
                class: AddressClass::LinkLocal,
                ..
            })
        ));
        // The allow-list admits an embedded address by its IPv4 form or its own.
        let allowed: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert_eq!(
            check_ip("64:ff9b::a00:1".parse().unwrap(), &allowed),
            Ok(())
        );
        assert_eq!(check_ip("2001:db8::1".parse().unwrap(), &allowed), Ok(()));
        // An allowed private network does not admit a link-local address through NAT64.
        assert!(matches!(
            check_ip("64:ff9b::a9fe:a9fe".parse().unwrap(), &allowed),
            Err(Blocked::Embedded {
                class: AddressClass::LinkLocal,
                ..
            })
        ));
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
    fn redacted_urls_keep_no_credential_nor_query_value() {
        for (url, shown) in [
            (
                "https://user:pass@siem.example.com/evo?token=secret&channel=c1#frag",
                "https://***@siem.example.com/evo?token=***&channel=***#***",
            ),
            (
                "https://user@siem.example.com/",
                "https://***@siem.example.com/",
            ),
            (
                "https://:pass@siem.example.com/",
                "https://***@siem.example.com/",
            ),
            (
                "https://siem.example.com/evo?secret",
                "https://siem.example.com/evo?secret=***",
            ),
            (
                "https://siem.example.com/evo?",
                "https://siem.example.com/evo?***",
            ),
            (
                "https://siem.example.com/evo",
                "https://siem.example.com/evo",
            ),
            (
                "http://127.0.0.1:8080/hook?a%20b=c%20d",
                "http://127.0.0.1:8080/hook?a+b=***",
            ),
        ] {
            assert_eq!(redact_url(&Url::parse(url).unwrap()), shown, "{url}");
        }
        assert_eq!(redact_url_str("not a url?token=secret"), "<not a URL>");
    }

    /// A user name alone, or a password alone, is a credential in the URL too: refused.
    #[test]
    fn any_credential_in_the_url_is_refused() {
        for url in [
            "https://user@siem.example.com/",
            "https://:pw@siem.example.com/",
            "https://user:pw@siem.example.com/",
        ] {
            assert_eq!(check_url(url, &[]), Err(Blocked::Credentials), "{url}");
        }
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
