//! Thin wrappers of the system calls podrun needs and nix does not wrap
//! (or wraps in a way that cannot be used here): each `unsafe` is here,
//! small, with what makes it sound.

pub mod pidfd;
pub mod process;
pub mod random;
