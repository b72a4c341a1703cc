//! `sgc-daemon`: the runtime around the sans-IO ring machine of `sgc-model`.
//!
//! ```text
//!   peers ◄──UDP (transport: header + postcard)──► runtime ◄──TCP loopback JSON lines──► admin
//!                                                    │  owns Daemon (sgc_model::ring)
//!                                       config (TOML)┘  store: durable record (atomic file)
//! ```
//!
//! - [`config`]: the TOML file, validated with errors naming the key;
//! - [`transport`]: the datagram codec and its rejections;
//! - [`controlled`]: TESTING: the controlled mode in which a harness is the network and clock;
//! - [`protection`]: Three-Step packet protection (sealed and signed datagram formats);
//! - [`store`]: the durable record (incarnation, ring-seq high-water mark);
//! - [`admin`]: the admin protocol, its server and a blocking client;
//! - [`clients`]: client connections (TCP, mutual TLS and Unix socket): authentication,
//!   framing, reader/writer tasks;
//! - [`policy`]: access control (which identity may join, send to, receive from which group);
//! - [`sessions`]: the group-layer machine and its sessions' I/O;
//! - [`keys`]: the servers' key agreement and group keys (`sgc_model::keys` engine with real
//!   providers) between the group layer and the sessions, with security on;
//! - [`udp`]: the ring sockets (unicast, optional IP multicast) with batched system calls;
//! - [`runtime`]: the event loop translating bytes, timers and admin requests into events and
//!   commands into I/O. No protocol decision is taken here.

pub mod admin;
pub mod clients;
pub mod config;
pub mod controlled;
pub mod keys;
pub mod policy;
pub mod protection;
pub mod runtime;
pub mod sessions;
pub mod store;
pub mod transport;
pub mod udp;

pub use config::{ConfigError, DaemonConfig};
pub use runtime::{DaemonError, Runtime, run_blocking};
