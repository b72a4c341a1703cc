//! The `[network]` section: how broadcasts reach the other daemons (`docs/daemon.md`).
//!
//! By default a broadcast is sent to every peer by unicast (N − 1 datagrams). With
//! `multicast = "239.x.y.z:port"` it is sent once to that IPv4 group, which every daemon joins on
//! the interface of its `daemon.listen` address; tokens stay unicast. All daemons of a cluster
//! must use the same group.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// `[network]`: transport options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// IPv4 multicast group and port for broadcasts (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multicast: Option<SocketAddr>,
    /// `IP_MULTICAST_TTL` of the datagrams sent to the group (default 1: this link only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multicast_ttl: Option<u32>,
}

impl NetworkSection {
    /// Whether nothing is set (the section is then not written out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Check the keys against the listen address; the error names the key.
    pub fn validate(&self, listen: SocketAddr) -> Result<(), ConfigError> {
        if let Some(ttl) = self.multicast_ttl {
            if self.multicast.is_none() {
                return Err(invalid("network.multicast_ttl", "needs network.multicast"));
            }
            if !(1..=255).contains(&ttl) {
                return Err(invalid("network.multicast_ttl", "must be between 1 and 255"));
            }
        }
        let Some(group) = self.multicast else {
            return Ok(());
        };
        let key = "network.multicast";
        match group.ip() {
            IpAddr::V4(a) if a.is_multicast() => {}
            _ => {
                return Err(invalid(
                    key,
                    "must be an IPv4 multicast address (224.0.0.0/4) and port",
                ));
            }
        }
        if group.port() == 0 {
            return Err(invalid(key, "needs a non-zero port"));
        }
        if !listen.is_ipv4() {
            return Err(invalid(
                key,
                "needs an IPv4 daemon.listen address (the interface to join on)",
            ));
        }
        Ok(())
    }

    /// The runtime's multicast settings for a daemon listening on `listen` (validated first).
    pub fn multicast_for(&self, listen: SocketAddr) -> Option<crate::udp::Multicast> {
        let group = match self.multicast? {
            SocketAddr::V4(g) => g,
            SocketAddr::V6(_) => return None,
        };
        Some(crate::udp::Multicast {
            group: SocketAddrV4::new(*group.ip(), group.port()),
            interface: crate::udp::interface_of(listen)?,
            ttl: self.multicast_ttl.unwrap_or(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let listen: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let ok = NetworkSection {
            multicast: Some("239.1.2.3:5000".parse().unwrap()),
            multicast_ttl: None,
        };
        assert!(ok.validate(listen).is_ok());
        let m = ok.multicast_for(listen).unwrap();
        assert_eq!((m.interface, m.ttl), ("127.0.0.1".parse().unwrap(), 1));
        for (bad, key) in [
            ("10.0.0.1:5000", "network.multicast"),
            ("239.1.2.3:0", "network.multicast"),
            ("[ff02::1]:5000", "network.multicast"),
        ] {
            let n = NetworkSection {
                multicast: Some(bad.parse().unwrap()),
                multicast_ttl: None,
            };
            let e = n.validate(listen).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        let n = NetworkSection {
            multicast: None,
            multicast_ttl: Some(2),
        };
        assert!(
            n.validate(listen)
                .unwrap_err()
                .to_string()
                .contains("network.multicast_ttl")
        );
        assert!(NetworkSection::default().is_default());
    }
}
