//! Registries: what podrun reads before it talks to one, from files only
//! (registries.conf(5)'s mirrors, rewritten locations, insecure and
//! blocked registries; credentials from auth files and pull secrets; each
//! registry's TLS material from certs.d), and the OCI distribution client
//! that pulls from them.

pub mod auth;
pub mod certs;
pub mod client;
pub mod config;
pub mod http;
pub mod tls;
