//! What podrun reads before it talks to a registry, from files only (no
//! network here): registries.conf(5) (mirrors, rewritten locations,
//! insecure and blocked registries) and credentials (auth files, pull
//! secrets).

pub mod auth;
pub mod config;
