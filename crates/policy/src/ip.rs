//! Address triggers (RPZ-IP, RPZ-CLIENT-IP): the longest prefix that holds an address.
//!
//! A policy zone's address rules are few next to its names (the hub publishes none
//! today; partner zones carry hundreds or thousands), so this is the plain structure:
//! one hash map from truncated prefix to response, and the prefix lengths present per
//! family, probed longest first. An update copies the map; a names update never does.

use std::collections::HashMap;
use std::net::IpAddr;

use indicator::IpNet;

use crate::Response;

#[derive(Debug, Clone)]
pub(crate) struct IpRules {
    map: HashMap<IpNet, Response>,
    /// Prefix lengths present, longest first.
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
    /// Rules per prefix length.
    v4_counts: [u32; 33],
    v6_counts: [u32; 129],
}

impl Default for IpRules {
    fn default() -> IpRules {
        IpRules {
            map: HashMap::new(),
            v4_lens: Vec::new(),
            v6_lens: Vec::new(),
            v4_counts: [0; 33],
            v6_counts: [0; 129],
        }
    }
}

impl IpRules {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn get(&self, net: &IpNet) -> Option<&Response> {
        self.map.get(&net.trunc())
    }

    /// Sets or clears the response of a prefix; returns the previous one.
    pub(crate) fn set(&mut self, net: IpNet, response: Option<Response>) -> Option<Response> {
        let net = net.trunc();
        let old = match response {
            Some(r) => self.map.insert(net, r),
            None => self.map.remove(&net),
        };
        let added = self.map.contains_key(&net);
        let len = net.prefix_len();
        let (counts, lens) = if net.addr().is_ipv4() {
            (&mut self.v4_counts[..], &mut self.v4_lens)
        } else {
            (&mut self.v6_counts[..], &mut self.v6_lens)
        };
        let Some(count) = counts.get_mut(usize::from(len)) else {
            return old;
        };
        match (old.is_some(), added) {
            (false, true) => *count += 1,
            (true, false) => *count -= 1,
            _ => {}
        }
        match (*count > 0, lens.binary_search_by(|l| len.cmp(l))) {
            (true, Err(at)) => lens.insert(at, len),
            (false, Ok(at)) => {
                lens.remove(at);
            }
            _ => {}
        }
        old
    }

    /// The longest prefix holding `addr`, and its response.
    pub(crate) fn lookup(&self, addr: IpAddr) -> Option<(IpNet, &Response)> {
        if self.map.is_empty() {
            return None;
        }
        let lens = if addr.is_ipv4() {
            &self.v4_lens
        } else {
            &self.v6_lens
        };
        lens.iter().find_map(|&len| {
            let net = IpNet::new(addr, len).ok()?.trunc();
            self.map.get(&net).map(|r| (net, r))
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&IpNet, &Response)> {
        self.map.iter()
    }

    /// Bytes held on the heap (the map's table, estimated from its capacity).
    pub(crate) fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(IpNet, Response)>() + 1;
        self.map.capacity() * slot + self.v4_lens.capacity() + self.v6_lens.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn longest_prefix_wins_and_removal_forgets_lengths() {
        let mut rules = IpRules::default();
        rules.set(net("192.0.2.0/24"), Some(Response::Nxdomain));
        rules.set(net("192.0.2.128/25"), Some(Response::Passthru));
        rules.set(net("2001:db8::/32"), Some(Response::Drop));
        let found = |rules: &IpRules, a: &str| rules.lookup(ip(a)).map(|(n, r)| format!("{n} {r}"));
        assert_eq!(
            found(&rules, "192.0.2.1").as_deref(),
            Some("192.0.2.0/24 nxdomain")
        );
        assert_eq!(
            found(&rules, "192.0.2.200").as_deref(),
            Some("192.0.2.128/25 passthru")
        );
        assert_eq!(
            found(&rules, "2001:db8::1").as_deref(),
            Some("2001:db8::/32 drop")
        );
        assert_eq!(found(&rules, "198.51.100.1"), None);
        rules.set(net("192.0.2.128/25"), None);
        assert_eq!(rules.v4_lens, vec![24]);
        assert_eq!(
            found(&rules, "192.0.2.200").as_deref(),
            Some("192.0.2.0/24 nxdomain")
        );
    }
}
