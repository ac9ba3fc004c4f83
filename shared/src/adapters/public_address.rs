//! Which addresses the server may contact on a third party's say-so (provider result URLs,
//! webhook targets): the public internet only. Private, loopback, link-local (the metadata
//! service), shared (carrier NAT), documentation and reserved ranges are refused, IPv4 embedded in
//! IPv6 included; a name is refused if any address it resolves to is, and the caller connects to
//! the address checked here, so a second lookup cannot swap it (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why a host may not be contacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It did not resolve (perhaps for now).
    Unresolved(String),
    /// It is, or resolves to, an address that is not public.
    Forbidden(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unresolved(m) | Refusal::Forbidden(m) => f.write_str(m),
        }
    }
}

/// Whether an address may never be contacted: anything that is not the public internet.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local (fc00::/7, includes AWS's fd00:ec2::254)
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (embeds IPv4)
                || (s[0] == 0x2002) // 6to4 (embeds IPv4)
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0) // IPv4-compatible
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local() // 169.254.0.0/16, the metadata service included
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// Resolves `host` (a name or an address literal) and checks every address: the first one to
/// connect to. `allow_loopback` (tests only, never from the environment) lets loopback through.
pub async fn resolve_public(host: &str, port: u16, allow_loopback: bool) -> Result<SocketAddr, Refusal> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((literal, port))
            .await
            .map_err(|e| Refusal::Unresolved(format!("{host} could not be resolved: {e}")))?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(Refusal::Unresolved(format!("{host} resolved to no address.")));
    }
    for address in &addresses {
        let loopback_ok = allow_loopback && address.ip().is_loopback();
        if forbidden_ip(address.ip()) && !loopback_ok {
            return Err(Refusal::Forbidden(format!(
                "{host} resolves to {}, which is not a public address.",
                address.ip()
            )));
        }
    }
    Ok(addresses[0])
}
