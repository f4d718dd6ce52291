//! The store on disk:
//!
//! ```text
//! /var/lib/podrun/images/            an OCI image layout (skopeo, umoci read it)
//!     oci-layout  index.json  blobs/sha256/<hex>
//! /var/lib/podrun/layers/sha256/<diff_id hex>/
//!     root/        the unpacked layer, an overlayfs lower
//!     layer.json   what unpacking found (devices, whiteouts, size)
//! /var/lib/podrun/images.lock        flock: exclusive for writers, shared for readers
//! /var/lib/podrun/.staging-*         an import under way (or a crashed one, for prune)
//! ```
//!
//! `index.json` names each image by its full normalised name in the
//! `org.opencontainers.image.ref.name` annotation. Writers stage
//! everything beside the store and rename it in, `index.json` last, so a
//! reader sees the old or the new store and a failed import changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::Serialize;

use super::digest::sha256_hex;
use super::reference::Reference;
use super::tree;
use super::unpack::LayerInfo;
use super::{DeviceNode, Image, ImageError, content, io_err};

pub const DEFAULT_IMAGES: &str = "/var/lib/podrun/images";
pub const DEFAULT_LAYERS: &str = "/var/lib/podrun/layers";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Where an image came from: the registry it was pulled from, or the
/// import's source.
pub const SOURCE_ANNOTATION: &str = "io.podrun.image.source";
/// The digest the registry names a pulled image by (an index's, for a
/// multi-platform image).
pub const TOP_DIGEST_ANNOTATION: &str = "io.podrun.image.repo-digest";
const LAYOUT_VERSION: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
pub const STAGING_PREFIX: &str = ".staging-";
/// Manifests, indexes and configs are small; a bigger one is not an image.
pub const MAX_JSON: u64 = 8 << 20;

pub struct Store {
    pub(super) images: PathBuf,
    pub(super) layers: PathBuf,
    /// Beside `images`, on its filesystem: staging dirs and the lock.
    pub(super) parent: PathBuf,
    lock: PathBuf,
}

/// A pod that uses an image, by the name its manifest gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    pub pod: String,
    pub image: String,
}

/// A held flock on the store's lock file; released on drop.
pub(super) struct Locked(#[allow(dead_code)] Flock<File>);

/// One row of `podrun image ls`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEntry {
    pub reference: String,
    pub repository: String,
    /// Docker's short repository (`busybox` for `docker.io/library/busybox`).
    #[serde(skip)]
    pub familiar: String,
    pub tag: Option<String>,
    pub digest: String,
    /// Unpacked content, in bytes.
    pub size: u64,
    /// The config's `created`, RFC 3339.
    pub created: Option<String>,
    /// Where it came from: the registry (`host[:port]`) it was pulled
    /// from, or the source it was imported from.
    pub source: Option<String>,
}

/// What `rm` removed.
#[derive(Debug, Default)]
pub struct Removed {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

impl Store {
    pub fn open_default() -> Result<Store, ImageError> {
        Store::open(Path::new(DEFAULT_IMAGES), Path::new(DEFAULT_LAYERS))
    }

    /// Opens the store, creating an empty layout if there is none.
    pub fn open(images: &Path, layers: &Path) -> Result<Store, ImageError> {
        let parent = images
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        let name = images.file_name().ok_or_else(|| {
            ImageError::Damaged(format!("{}: not a directory name", images.display()))
        })?;
        let mut lock_name = name.to_owned();
        lock_name.push(".lock");
        let store = Store {
            images: images.to_owned(),
            layers: layers.to_owned(),
            lock: parent.join(lock_name),
            parent,
        };
        let complete = store.images.join("oci-layout").is_file()
            && store.images.join("index.json").is_file()
            && store.blob_dir().is_dir()
            && store.layer_dir().is_dir()
            && store.lock.is_file()
            // A store made before it was kept private is made so now.
            && [&store.images, &store.layers]
                .iter()
                .all(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o077 == 0));
        if !complete {
            store.create()?;
        }
        Ok(store)
    }

    fn create(&self) -> Result<(), ImageError> {
        for dir in [&self.parent, &self.blob_dir(), &self.layer_dir()] {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        // Root's alone, as containerd keeps its snapshots: layers keep their
        // setuid files and owners, which a host user must not reach (a
        // container sees them only through its overlay mount).
        for dir in [&self.images, &self.layers] {
            let private = fs::Permissions::from_mode(0o700);
            fs::set_permissions(dir, private).map_err(io_err(dir))?;
        }
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let layout = self.images.join("oci-layout");
        if !layout.is_file() {
            write_atomic(&layout, LAYOUT_VERSION.as_bytes())?;
        }
        let index = self.images.join("index.json");
        if !index.is_file() {
            write_atomic(&index, &index_bytes(&[])?)?;
        }
        Ok(())
    }

    pub(super) fn lock(&self, how: FlockArg) -> Result<Locked, ImageError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(io_err(&self.lock))?;
        Flock::lock(f, how)
            .map(Locked)
            .map_err(|(_, e)| io_err(&self.lock)(e.into()))
    }

    pub(super) fn blob_dir(&self) -> PathBuf {
        self.images.join("blobs").join("sha256")
    }

    pub(super) fn layer_dir(&self) -> PathBuf {
        self.layers.join("sha256")
    }

    /// The stored blob of `digest`, if its digest is one the store keeps.
    pub(super) fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        sha256_hex(digest).map(|hex| self.blob_dir().join(hex))
    }

    pub(super) fn layer_path(&self, diff_id: &str) -> Option<PathBuf> {
        sha256_hex(diff_id).map(|hex| self.layer_dir().join(hex))
    }

    pub(super) fn read_index(&self) -> Result<ImageIndex, ImageError> {
        let path = self.images.join("index.json");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Damaged(format!("{}: {e}", path.display())))
    }

    pub(super) fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self
            .blob_path(digest)
            .ok_or_else(|| ImageError::Damaged(format!("unsupported digest {digest}")))?;
        let bytes = fs::read(&path)
            .map_err(|e| ImageError::Damaged(format!("blob {digest}: {e}: re-import the image")))?;
        Ok(bytes)
    }

    fn manifest(&self, digest: &str) -> Result<ImageManifest, ImageError> {
        serde_json::from_slice(&self.read_blob(digest)?)
            .map_err(|e| ImageError::Damaged(format!("manifest {digest}: {e}")))
    }

    fn config(&self, manifest: &ImageManifest) -> Result<ImageConfiguration, ImageError> {
        let digest = manifest.config().digest().to_string();
        serde_json::from_slice(&self.read_blob(&digest)?)
            .map_err(|e| ImageError::Damaged(format!("config {digest}: {e}")))
    }

    /// The images by name (the `ref.name` annotation) → manifest digest.
    fn names(&self, index: &ImageIndex) -> Vec<(String, String)> {
        index
            .manifests()
            .iter()
            .filter_map(|d| {
                let name = d.annotations().as_ref()?.get(REF_NAME)?.clone();
                Some((name, d.digest().to_string()))
            })
            .collect()
    }

    /// The entry of the index `name` (short or full form) designates: its
    /// full name and manifest digest. A name with a digest also finds an
    /// image of that repository stored under a tag.
    fn find(&self, index: &ImageIndex, name: &str) -> Result<Option<(String, String)>, ImageError> {
        let wanted = Reference::parse(name)?;
        let full = wanted.to_string();
        let names = self.names(index);
        if let Some(found) = names.iter().find(|(n, _)| *n == full) {
            return Ok(Some(found.clone()));
        }
        if let Some(d) = &wanted.digest {
            let repo = wanted.repository();
            return Ok(names.into_iter().find(|(n, digest)| {
                digest == d && Reference::parse(n).is_ok_and(|r| r.repository() == repo)
            }));
        }
        Ok(None)
    }

    /// The image a pod's `image:` names (short or full form), if the store has it.
    pub fn resolve(&self, name: &str) -> Result<Option<Image>, ImageError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        self.resolve_locked(name)
    }

    /// `resolve` for a caller that must not wait (the supervisor's loop):
    /// while an import or removal holds the store, `ImageError::Busy`.
    pub fn resolve_now(&self, name: &str) -> Result<Option<Image>, ImageError> {
        let _lock = match self.lock(FlockArg::LockSharedNonblock) {
            Err(ImageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock =>
            {
                return Err(ImageError::Busy);
            }
            other => other?,
        };
        self.resolve_locked(name)
    }

    fn resolve_locked(&self, name: &str) -> Result<Option<Image>, ImageError> {
        let index = self.read_index()?;
        let Some((reference, digest)) = self.find(&index, name)? else {
            return Ok(None);
        };
        let manifest = self.manifest(&digest)?;
        let config = self.config(&manifest)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::Damaged(format!(
                "image {reference}: {} layers but {} diff_ids",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        let mut infos = Vec::new();
        for diff_id in diff_ids {
            let dir = self
                .layer_path(diff_id)
                .ok_or_else(|| ImageError::Damaged(format!("unsupported diff_id {diff_id}")))?;
            let info = read_layer_info(&dir).map_err(|e| {
                ImageError::Damaged(format!(
                    "image {reference}: layer {diff_id}: {e}: re-import the image"
                ))
            })?;
            layers.push(dir.join("root"));
            infos.push(info);
        }
        Ok(Some(Image {
            reference,
            digest,
            config,
            layers,
            devices: stack_devices(&infos),
        }))
    }

    /// Every named image, sorted by name.
    pub fn list(&self) -> Result<Vec<ListEntry>, ImageError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let index = self.read_index()?;
        let sources: HashMap<String, String> = index
            .manifests()
            .iter()
            .filter_map(|d| {
                let a = d.annotations().as_ref()?;
                Some((a.get(REF_NAME)?.clone(), a.get(SOURCE_ANNOTATION)?.clone()))
            })
            .collect();
        let mut out = Vec::new();
        for (name, digest) in self.names(&index) {
            let Ok(r) = Reference::parse(&name) else {
                continue;
            };
            let manifest = self.manifest(&digest)?;
            let config = self.config(&manifest)?;
            let size = config
                .rootfs()
                .diff_ids()
                .iter()
                .filter_map(|d| self.layer_path(d))
                .filter_map(|p| read_layer_info(&p).ok())
                .map(|i| i.size)
                .sum();
            out.push(ListEntry {
                source: sources.get(&name).cloned(),
                reference: name,
                repository: r.repository(),
                familiar: r.familiar_repository(),
                tag: r.tag.clone(),
                digest,
                size,
                created: config.created().clone(),
            });
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// The image's config as stored (its exact bytes).
    pub fn config_bytes(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let index = self.read_index()?;
        let (_, digest) = self
            .find(&index, name)?
            .ok_or_else(|| ImageError::NotFound(name.to_owned()))?;
        let manifest = self.manifest(&digest)?;
        self.read_blob(manifest.config().digest().as_ref())
    }

    /// Removes the names, then the blobs and unpacked layers no remaining
    /// image uses. Refuses (removing nothing) a missing name or an image in
    /// use: `in_use` says which pods use which images (the store knows
    /// nothing of pods), asked once the store is locked.
    pub fn remove(
        &self,
        names: &[String],
        in_use: &dyn Fn() -> Vec<ImageUse>,
    ) -> Result<Removed, ImageError> {
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let index = self.read_index()?;
        let pods = in_use();
        let mut doomed: Vec<(String, String)> = Vec::new();
        for name in names {
            let found = self
                .find(&index, name)?
                .ok_or_else(|| ImageError::NotFound(name.clone()))?;
            if let Some(pod) = used_by(&pods, &found.0, &found.1) {
                return Err(ImageError::InUse {
                    image: found.0,
                    pod,
                });
            }
            if !doomed.contains(&found) {
                doomed.push(found);
            }
        }
        let kept: Vec<_> = index
            .manifests()
            .iter()
            .filter(|d| {
                let name = d.annotations().as_ref().and_then(|a| a.get(REF_NAME));
                !doomed.iter().any(|(n, _)| Some(n) == name)
            })
            .cloned()
            .collect();
        let before = self.referenced(&index)?;
        let mut new_index = index.clone();
        new_index.set_manifests(kept);
        let after = self.referenced(&new_index)?;
        // The index goes first: from then on the image is gone, and what is
        // removed below is garbage even if removing it fails halfway.
        write_atomic_in(
            &self.parent,
            &self.images.join("index.json"),
            &index_bytes(new_index.manifests())?,
        )?;
        let mut removed = Removed::default();
        for (name, digest) in &doomed {
            removed.untagged.push(name.clone());
            if !after.blobs.contains(digest) && !removed.deleted.contains(digest) {
                removed.deleted.push(digest.clone());
            }
        }
        for blob in before.blobs.difference(&after.blobs) {
            if let Some(p) = self.blob_path(blob) {
                remove_tree(&p)?;
            }
        }
        let mounted = self.mounted_layers();
        for layer in before.layers.difference(&after.layers) {
            if mounted.contains(layer) {
                continue;
            }
            if let Some(p) = self.layer_path(layer) {
                remove_tree(&p)?;
            }
        }
        Ok(removed)
    }

    /// Removes blobs, unpacked layers and staging directories that nothing
    /// references; returns what it removed (as paths) and the bytes freed.
    pub fn prune(&self) -> Result<(Vec<PathBuf>, u64), ImageError> {
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let index = self.read_index()?;
        let keep = self.referenced(&index)?;
        let mut doomed = Vec::new();
        // Under the exclusive lock no import is committing, but a pull
        // downloads without the lock: only a staging directory whose
        // process is gone is left over.
        doomed.extend(self.abandoned_staging()?);
        for entry in read_dir(&self.blob_dir())? {
            let digest = format!("sha256:{}", entry.to_string_lossy());
            if !keep.blobs.contains(&digest) {
                doomed.push(self.blob_dir().join(entry));
            }
        }
        let mounted = self.mounted_layers();
        for entry in read_dir(&self.layer_dir())? {
            let diff_id = format!("sha256:{}", entry.to_string_lossy());
            if !keep.layers.contains(&diff_id) && !mounted.contains(&diff_id) {
                doomed.push(self.layer_dir().join(entry));
            }
        }
        let mut freed = 0;
        for path in &doomed {
            // Only reported: a tree that cannot be measured is still removed.
            freed += tree::size(path).unwrap_or_else(|e| {
                tracing::warn!("measuring {}: {e}", path.display());
                0
            });
            remove_tree(path)?;
        }
        Ok((doomed, freed))
    }

    /// The blobs (manifests, configs, layers; nested indexes too) and
    /// unpacked layers (by diff_id) the images of `index` use.
    fn referenced(&self, index: &ImageIndex) -> Result<Refs, ImageError> {
        let mut refs = Refs::default();
        let mut todo: Vec<(String, MediaType)> = index
            .manifests()
            .iter()
            .map(|d| (d.digest().to_string(), d.media_type().clone()))
            .collect();
        while let Some((digest, media_type)) = todo.pop() {
            if !refs.blobs.insert(digest.clone()) {
                continue;
            }
            let bytes = self.read_blob(&digest)?;
            if is_index(&media_type) {
                let nested: ImageIndex = serde_json::from_slice(&bytes)
                    .map_err(|e| ImageError::Damaged(format!("index {digest}: {e}")))?;
                todo.extend(
                    nested
                        .manifests()
                        .iter()
                        .map(|d| (d.digest().to_string(), d.media_type().clone())),
                );
                continue;
            }
            let manifest: ImageManifest = serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::Damaged(format!("manifest {digest}: {e}")))?;
            refs.blobs.insert(manifest.config().digest().to_string());
            refs.blobs
                .extend(manifest.layers().iter().map(|l| l.digest().to_string()));
            if let Ok(config) = self.config(&manifest) {
                refs.layers
                    .extend(config.rootfs().diff_ids().iter().cloned());
            }
        }
        Ok(refs)
    }
}

/// The first pod in `uses` that names this image (by normalised name, or
/// by its digest).
fn used_by(uses: &[ImageUse], reference: &str, digest: &str) -> Option<String> {
    uses.iter()
        .find(|u| {
            Reference::parse(&u.image)
                .is_ok_and(|r| r.to_string() == reference || r.digest.as_deref() == Some(digest))
        })
        .map(|u| u.pod.clone())
}

impl Store {
    /// The layers (by diff_id) an overlay mount uses as a lower, in any
    /// mount namespace: a container still running from an image that was
    /// since replaced under its name keeps its layers.
    fn mounted_layers(&self) -> BTreeSet<String> {
        let mut seen_namespaces = BTreeSet::new();
        let mut out = BTreeSet::new();
        let pids = fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()));
        for pid in std::iter::once("self".to_owned()).chain(pids) {
            let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
                continue;
            };
            if !seen_namespaces.insert(ns) {
                continue;
            }
            if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) {
                out.extend(overlay_lowers(&text, &self.layer_dir()));
            }
        }
        out
    }
}

/// The diff_ids of `layer_dir/<hex>/root` directories that overlay mounts
/// in a mountinfo text name as lowers (`lowerdir=a:b`, `lowerdir+=a`).
fn overlay_lowers(mountinfo: &str, layer_dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", layer_dir.display());
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // The fields after " - " are: type, source, super options.
        let Some((_, tail)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = tail.split(' ');
        if fields.next() != Some("overlay") {
            continue;
        }
        let Some(options) = fields.nth(1) else {
            continue;
        };
        for option in options.split(',') {
            let Some((key, value)) = option.split_once('=') else {
                continue;
            };
            if !key.starts_with("lowerdir") {
                continue;
            }
            for dir in value.split(':') {
                let hex = dir
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.split('/').next())
                    .filter(|hex| sha256_hex(&format!("sha256:{hex}")).is_some());
                if let Some(hex) = hex {
                    out.push(format!("sha256:{hex}"));
                }
            }
        }
    }
    out
}

impl Store {
    /// Staging directories (`.staging-<pid>-<nanos>`) of processes that
    /// are gone: an import or pull that crashed or was killed.
    pub(super) fn abandoned_staging(&self) -> Result<Vec<PathBuf>, ImageError> {
        let mut out = Vec::new();
        for entry in read_dir(&self.parent)? {
            let name = entry.to_string_lossy();
            let Some(rest) = name.strip_prefix(STAGING_PREFIX) else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|pid| {
                pid > 0
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                        != Err(nix::errno::Errno::ESRCH)
            });
            if !alive {
                out.push(self.parent.join(&entry));
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
struct Refs {
    blobs: BTreeSet<String>,
    layers: BTreeSet<String>,
}

/// Whether a descriptor's media type is an image index (or a Docker
/// manifest list).
pub(super) fn is_index(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageIndex => true,
        MediaType::Other(s) => s == "application/vnd.docker.distribution.manifest.list.v2+json",
        _ => false,
    }
}

pub(super) fn read_layer_info(dir: &Path) -> Result<LayerInfo, String> {
    let path = dir.join("layer.json");
    let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The device nodes of the stacked layers: an upper layer's whiteouts and
/// opaque directories hide a lower layer's, and a later one at the same
/// path wins.
fn stack_devices(layers: &[LayerInfo]) -> Vec<DeviceNode> {
    let mut devices: Vec<DeviceNode> = Vec::new();
    for layer in layers {
        let under = |path: &str, dir: &str| {
            dir == "/" || path == dir || path.starts_with(&format!("{dir}/"))
        };
        devices.retain(|d| {
            !layer.whiteouts.iter().any(|w| under(&d.path, w))
                && !layer
                    .opaques
                    .iter()
                    .any(|o| d.path != *o && under(&d.path, o))
                && !layer.devices.iter().any(|n| n.path == d.path)
        });
        devices.extend(layer.devices.iter().cloned());
    }
    devices
}

/// index.json with these manifests.
pub(super) fn index_bytes(
    manifests: &[oci_spec::image::Descriptor],
) -> Result<Vec<u8>, ImageError> {
    let index = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests.to_vec())
        .build()
        .map_err(|e| ImageError::Damaged(format!("building index.json: {e}")))?;
    // Through a Value, whose maps are sorted: annotations are a HashMap,
    // and the same index must be the same bytes.
    serde_json::to_value(&index)
        .and_then(|v| serde_json::to_vec(&v))
        .map_err(|e| ImageError::Damaged(format!("writing index.json: {e}")))
}

pub(super) fn index_entry(
    name: &str,
    media_type: MediaType,
    digest: &str,
    size: u64,
    annotations: &[(String, String)],
) -> Result<oci_spec::image::Descriptor, ImageError> {
    let digest: oci_spec::image::Digest = digest
        .parse()
        .map_err(|e| content(digest, format!("bad digest: {e}")))?;
    let mut d = oci_spec::image::Descriptor::new(media_type, size, digest);
    let mut all = HashMap::from([(REF_NAME.to_owned(), name.to_owned())]);
    all.extend(annotations.iter().cloned());
    d.set_annotations(Some(all));
    Ok(d)
}

/// Writes `path` through a temp file in its own directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    write_atomic_in(dir, path, bytes)
}

/// Writes `path` through a temp file in `tmp_dir` (on its filesystem) and a rename.
pub(super) fn write_atomic_in(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tmp_dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn read_dir(dir: &Path) -> Result<Vec<std::ffi::OsString>, ImageError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    Ok(names)
}

/// Removes a file or a directory tree (see [`tree::remove`]): by
/// descriptor, as a layer may nest deeper than PATH_MAX.
pub(super) fn remove_tree(path: &Path) -> Result<(), ImageError> {
    tree::remove(path).map_err(io_err(path))
}

/// docker's "N days ago" is computed from the config's `created`: seconds
/// since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.678Z`,
/// `...+02:00`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:30:15.123456789Z"),
            Some(1_709_209_815)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T14:30:15+02:00"),
            Some(1_709_209_815)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn devices_stack_under_whiteouts() {
        let dev = |p: &str| DeviceNode {
            path: p.to_owned(),
            kind: super::super::DeviceKind::Char,
            major: 1,
            minor: 3,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        let lower = LayerInfo {
            devices: vec![dev("/dev/null"), dev("/dev/zero"), dev("/x/fifo")],
            ..Default::default()
        };
        let upper = LayerInfo {
            whiteouts: vec!["/dev/zero".to_owned()],
            opaques: vec!["/x".to_owned()],
            devices: vec![dev("/dev/tty")],
            ..Default::default()
        };
        let paths: Vec<String> = stack_devices(&[lower, upper])
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(paths, ["/dev/null", "/dev/tty"]);
    }

    #[test]
    fn overlay_lowers_from_mountinfo() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!(
            "1 2 0:5 / / rw - ext4 /dev/sda1 rw\n\
             3 1 0:60 / /run/podrun/web/containers/c/root rw - overlay overlay rw,lowerdir=/var/lib/podrun/layers/sha256/{a}/root:/var/lib/podrun/layers/sha256/{b}/root,upperdir=/u,workdir=/w\n\
             4 1 0:61 / /x rw - overlay overlay rw,lowerdir+=/var/lib/podrun/layers/sha256/{b}/root,lowerdir+=/elsewhere\n"
        );
        let found = overlay_lowers(&text, Path::new("/var/lib/podrun/layers/sha256"));
        assert_eq!(
            found,
            [
                format!("sha256:{a}"),
                format!("sha256:{b}"),
                format!("sha256:{b}")
            ]
        );
    }
}
