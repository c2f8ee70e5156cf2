//! Addresses, at the bottom of the crate (it depends on nothing else in
//! it): which part of the network an address belongs to, and address
//! ranges.
//!
//! Addresses are compared and classified in canonical form, with
//! [`IpAddr::to_canonical`](std::net::IpAddr::to_canonical): a dual-stack
//! socket reports an IPv4 end as an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`), which is the IPv4 address it carries.
//!
//! - [`scope`]: loopback / private / public.
//! - [`cidr`]: address ranges (`198.51.100.0/24`).

pub mod cidr;
pub mod scope;

pub use cidr::{Cidr, CidrError};
pub use scope::{classify, Scope};
