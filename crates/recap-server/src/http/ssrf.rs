//! The SSRF guard for every outbound request to a URL a user supplied (webhooks now; later any
//! integration URL a user types in).
//!
//! A URL must be `http` or `https` and must not reach loopback, private (RFC 1918, `fc00::/7`),
//! shared (CGNAT `100.64.0.0/10`), link-local (`169.254.0.0/16`, `fe80::/10`), multicast,
//! unspecified, reserved or documentation addresses, nor the cloud metadata endpoints
//! (`169.254.169.254`, `fd00:ec2::254`), in any spelling: IPv4-mapped (`::ffff:127.0.0.1`),
//! IPv4-compatible, NAT64 and 6to4 IPv6 forms are judged by the IPv4 address they carry, and the
//! URL parser already turns `http://2130706433/` or `http://0x7f.1/` into `127.0.0.1`.
//!
//! It is checked twice:
//! 1. when the URL is saved ([`Guard::check_url`]): an IP literal, or a name that resolves to a refused
//!    address, is refused with a clear reason (a name that does not resolve yet is accepted);
//! 2. when connecting ([`GuardedClient`]): the client resolves names through a resolver that checks
//!    every address and hands the connector only checked addresses, so a name that resolves to a
//!    public address at save time and to `127.0.0.1` later (DNS rebinding) is refused then. IP
//!    literals skip DNS, so [`GuardedClient::prepare`] checks them before the request is sent.
//!    Proxies from the environment are ignored (a proxy would resolve the name itself) and
//!    redirects are not followed (a redirect could point anywhere).
//!
//! `OUTBOUND_ALLOWLIST` (IP addresses or CIDR networks) lets chosen addresses through anyway, for
//! a receiver on the same host or network (the tests allow `127.0.0.1`).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use ipnet::IpNet;
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};

use crate::config::ConfigError;

/// `OUTBOUND_ALLOWLIST`: networks that outbound requests may reach although they are not public.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundSettings {
    pub allowlist: Vec<IpNet>,
}

impl OutboundSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<OutboundSettings, ConfigError> {
        let mut s = OutboundSettings::default();
        if let Some(v) = get("OUTBOUND_ALLOWLIST") {
            let items = v.trim_start_matches('[').trim_end_matches(']');
            for item in items.split(',').map(|i| i.trim().trim_matches('"')).filter(|i| !i.is_empty()) {
                let net = item.parse::<IpNet>().or_else(|_| item.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                    ConfigError {
                        var: "OUTBOUND_ALLOWLIST",
                        message: format!("{item:?} is not an IP address or CIDR network"),
                    }
                })?;
                s.allowlist.push(net);
            }
        }
        Ok(s)
    }
}

/// Why an address may not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub address: IpAddr,
    pub reason: &'static str,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is a {} address", self.address, self.reason)
    }
}

impl std::error::Error for Refusal {}

/// A URL that may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Not a URL, not http(s), or without a host.
    Invalid(String),
    /// The host is, or resolves to, an address that may not be reached.
    Refused { host: String, refusal: Refusal },
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::Invalid(message) => f.write_str(message),
            UrlError::Refused { host, refusal } if host == &refusal.address.to_string() => {
                write!(f, "URL not allowed: {refusal}")
            }
            UrlError::Refused { host, refusal } => write!(f, "URL not allowed: {host} resolves to {refusal}"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Why `ip` is not a public unicast address, or `None` when it is one.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "cloud metadata",
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, b, _) if (16..32).contains(&b) => "private",
        (100, b, _) if (64..128).contains(&b) => "shared (CGNAT)",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18 | 19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (mapped) is the IPv4 address itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some("cloud metadata");
    }
    // ::a.b.c.d (IPv4-compatible, deprecated): never a real destination.
    if s[..6].iter().all(|&x| x == 0) {
        return Some(classify_v4(embedded(s[6], s[7])).unwrap_or("reserved"));
    }
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address; the local-use prefix is never public.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("reserved");
    }
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return classify_v4(embedded(s[1], s[2]));
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => "private (unique local)",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local",
        x if x & 0xff00 == 0xff00 => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x2001 if s[1] == 0 => "reserved (Teredo)",
        0x0100 if s[1..4] == [0, 0, 0] => "reserved (discard)",
        _ => return None,
    })
}

/// Decides which addresses outbound requests may reach.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowlist: Arc<Vec<IpNet>>,
}

impl Guard {
    pub fn new(settings: &OutboundSettings) -> Guard {
        Guard { allowlist: Arc::new(settings.allowlist.clone()) }
    }

    fn allow_listed(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowlist.iter().any(|net| net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m)))
    }

    /// `Ok` when `ip` may be reached: public, or allow-listed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow_listed(ip) {
            return Ok(());
        }
        match classify(ip) {
            Some(reason) => Err(Refusal { address: ip, reason }),
            None => Ok(()),
        }
    }

    /// Parses `raw` and checks its scheme and host (an IP literal directly, a name by resolving it
    /// now: every address must pass). A name that does not resolve is accepted: it is checked again
    /// whenever a connection is made.
    pub async fn check_url(&self, raw: &str) -> Result<Url, UrlError> {
        let url = parse_http_url(raw)?;
        if let Some(ip) = literal_ip(&url) {
            self.check_ip(ip).map_err(|refusal| UrlError::Refused { host: ip.to_string(), refusal })?;
            return Ok(url);
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        if let Ok(addrs) = tokio::net::lookup_host((host.as_str(), port)).await {
            for addr in addrs {
                self.check_ip(addr.ip()).map_err(|refusal| UrlError::Refused { host: host.clone(), refusal })?;
            }
        }
        Ok(url)
    }
}

/// An `http`/`https` URL with a host, or why not.
pub fn parse_http_url(raw: &str) -> Result<Url, UrlError> {
    let url = Url::parse(raw.trim()).map_err(|e| UrlError::Invalid(format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Invalid("the URL scheme must be http or https".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::Invalid("the URL must have a host".into()));
    }
    Ok(url)
}

/// The host as an IP address when it is one (the URL parser has already normalised `0x7f.1` and
/// friends; IPv6 hosts come in brackets).
fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

/// Resolves names for [`GuardedClient`]: every address must pass the guard, or the name is refused.
struct GuardedResolver {
    guard: Guard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} did not resolve to any address").into());
            }
            for addr in &addrs {
                guard.check_ip(addr.ip()).map_err(|refusal| UrlError::Refused { host: host.clone(), refusal })?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client for user-supplied URLs: guarded DNS, no redirects, no proxies.
#[derive(Clone)]
pub struct GuardedClient {
    guard: Guard,
    client: reqwest::Client,
}

impl GuardedClient {
    pub fn new(guard: Guard, user_agent: &str, connect_timeout: Duration) -> anyhow::Result<GuardedClient> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { guard: guard.clone() }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .user_agent(user_agent)
            .build()?;
        Ok(GuardedClient { guard, client })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Parses a stored URL for a request now. IP literals are checked here (they skip DNS);
    /// names are checked by the resolver when the connection is made.
    pub fn prepare(&self, raw: &str) -> Result<Url, UrlError> {
        let url = parse_http_url(raw)?;
        if let Some(ip) = literal_ip(&url) {
            self.guard.check_ip(ip).map_err(|refusal| UrlError::Refused { host: ip.to_string(), refusal })?;
        }
        Ok(url)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_classified() {
        for (addr, reason) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "private (unique local)"),
            ("fd12:3456::1", "private (unique local)"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:10.1.2.3", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a00:1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(classify(ip(addr)), Some(reason), "{addr}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn the_allowlist_lets_chosen_networks_through() {
        let settings = OutboundSettings::from_lookup(&|k| {
            (k == "OUTBOUND_ALLOWLIST").then(|| "127.0.0.1, 10.1.0.0/16".to_owned())
        })
        .unwrap();
        let guard = Guard::new(&settings);
        assert!(guard.check_ip(ip("127.0.0.1")).is_ok());
        assert!(guard.check_ip(ip("::ffff:127.0.0.1")).is_ok());
        assert!(guard.check_ip(ip("10.1.9.9")).is_ok());
        assert_eq!(guard.check_ip(ip("127.0.0.2")).unwrap_err().reason, "loopback");
        assert!(guard.check_ip(ip("10.2.0.1")).is_err());
        assert!(Guard::default().check_ip(ip("127.0.0.1")).is_err());
        let bad = OutboundSettings::from_lookup(&|_| Some("10.0.0.0/33".to_owned())).unwrap_err();
        assert_eq!(bad.var, "OUTBOUND_ALLOWLIST");
    }

    #[tokio::test]
    async fn urls_are_checked_for_scheme_and_host() {
        let guard = Guard::default();
        for (url, refused) in [
            ("http://127.0.0.1:8080/hook", "127.0.0.1"),
            ("http://[::1]/hook", "::1"),
            ("http://10.0.0.1/", "10.0.0.1"),
            ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
            ("http://localhost:9/", "127.0.0.1"),
        ] {
            match guard.check_url(url).await {
                Err(UrlError::Refused { refusal, .. }) => {
                    assert!(refusal.address.to_string() == refused || refusal.reason == "loopback", "{url}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        for bad in ["ftp://example.com/", "not a url", "file:///etc/passwd", "http://"] {
            assert!(matches!(guard.check_url(bad).await, Err(UrlError::Invalid(_))), "{bad}");
        }
        // A name that does not resolve here is accepted; the connection re-checks it.
        assert!(guard.check_url("https://hooks.invalid/x").await.is_ok());
    }
}
