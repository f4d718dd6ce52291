//! The local image store: an OCI image layout under
//! `/var/lib/podrun/images` (readable by skopeo and umoci), unpacked layers
//! cached once each under `/var/lib/podrun/layers`, imports from the
//! containers-transports forms (`oci:`, `oci-archive:`, `docker-archive:`)
//! and a layer unpacker that refuses archives that would write outside
//! their root.

mod archive;
mod digest;
mod import;
pub mod pull;
mod reference;
pub mod registry;
mod source;
mod store;
#[cfg(test)]
mod tests;
pub mod tree;
pub mod unpack;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use digest::short as short_digest;
pub use import::Imported;
pub use pull::{Platform, Progress, PullSettings, Pulled};
pub use reference::{Reference, normalize};
pub use source::Source;
pub use store::{ImageUse, ListEntry, Removed, Store, parse_rfc3339};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid image source {spec:?}: {reason}")]
    InvalidSource { spec: String, reason: String },
    #[error(
        "{spec}: the image has no name: give one, as in `podrun image import {spec} NAME[:TAG]`"
    )]
    NoName { spec: String },
    /// The source's content is not what it promises (digests, sizes,
    /// media types, missing blobs).
    #[error("{what}: {reason}")]
    Content { what: String, reason: String },
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    Entry {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("layer {layer}: {reason}")]
    Layer { layer: String, reason: String },
    #[error("no image {0} in the store: import it with `podrun image import`")]
    NotFound(String),
    #[error("image {image} is used by pod {pod:?}: stop it first (`podrun down {pod}`)")]
    InUse { image: String, pod: String },
    /// A pull failed: the registry's answer, or no answer.
    #[error("pulling {image}: {reason}{also}")]
    Pull {
        image: String,
        reason: String,
        /// No registry could be reached at all.
        unreachable: bool,
        /// What the mirrors tried before said.
        also: String,
    },
    #[error("logging in to {registry}: {reason}")]
    Login {
        registry: String,
        reason: String,
        unreachable: bool,
    },
    #[error("registries.conf: {0}")]
    Registries(String),
    #[error("registry credentials: {0}")]
    Credentials(String),
    #[error("the image store is damaged: {0}")]
    Damaged(String),
    #[error("the image store is busy with an import, a pull's commit or a removal: try again")]
    Busy,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ImageError {
    /// The user's input is wrong (a name, a source, an archive's content,
    /// an image in use), as opposed to a failure of this machine.
    pub fn is_input(&self) -> bool {
        !matches!(
            self,
            ImageError::Io { .. }
                | ImageError::Damaged(_)
                | ImageError::Busy
                | ImageError::Pull {
                    unreachable: true,
                    ..
                }
                | ImageError::Login {
                    unreachable: true,
                    ..
                }
        )
    }
}

fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io { path, source }
}

fn content(what: impl Into<String>, reason: impl Into<String>) -> ImageError {
    ImageError::Content {
        what: what.into(),
        reason: reason.into(),
    }
}

/// An image in the store, ready to run.
#[derive(Debug, Clone)]
pub struct Image {
    /// Normalised, e.g. `docker.io/library/busybox:1.36`.
    pub reference: String,
    /// The manifest's digest, `sha256:<hex>`.
    pub digest: String,
    pub config: oci_spec::image::ImageConfiguration,
    /// Unpacked layer directories, bottom (first) to top (last), ready to
    /// be overlayfs lowers.
    pub layers: Vec<PathBuf>,
    /// Device nodes the layers hold, skipped at unpack (to be created
    /// only for privileged pods).
    pub devices: Vec<DeviceNode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// A device node (or FIFO) an image's layers hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Absolute path in the image, e.g. `/dev/null`.
    pub path: String,
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}
