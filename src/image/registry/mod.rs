//! What podrun reads before it talks to a registry, from files only (no
//! network here): registries.conf(5) (mirrors, rewritten locations,
//! insecure and blocked registries), credentials (auth files, pull
//! secrets) and each registry's TLS material (certs.d).

pub mod auth;
pub mod certs;
pub mod config;
