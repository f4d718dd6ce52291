//! Imports: everything is staged in `.staging-*` beside the store, checked
//! (every blob's digest and size against its descriptor, every layer's
//! uncompressed digest against the config's diff_ids) and unpacked there;
//! only then renamed into the store, `index.json` last. Any error removes
//! the staging directory, so a failed import leaves the store as it was.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::FlockArg;
use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, ImageManifestBuilder,
    MediaType, Os,
};
use serde::Deserialize;

use super::archive::{Files, clean};
use super::digest::{HashingWriter, sha256, sha256_hex};
use super::source::{DockerRef, Source};
use super::store::{
    MAX_JSON, REF_NAME, SOURCE_ANNOTATION, STAGING_PREFIX, Store, index_bytes, index_entry,
    is_index, read_layer_info, remove_tree, sync_dir, write_atomic_in,
};
use super::unpack::{self, Compression, Options};
use super::{ImageError, content, io_err, normalize};

const CONTAINERD_NAME: &str = "io.containerd.image.name";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// What an import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The full normalised name.
    pub reference: String,
    /// The manifest's digest.
    pub digest: String,
}

/// A staging directory, removed with everything in it when dropped.
pub(super) struct Staging {
    pub(super) dir: PathBuf,
}

impl Staging {
    /// A new staging directory in `store`'s parent; what crashed imports
    /// and pulls left there is removed first.
    pub(super) fn in_store(store: &Store) -> Result<Staging, ImageError> {
        for dir in store.abandoned_staging()? {
            if let Err(e) = remove_tree(&dir) {
                tracing::warn!("removing a crashed import's staging directory: {e}");
            }
        }
        Staging::new(&store.parent)
    }

    fn new(parent: &Path) -> Result<Staging, ImageError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = parent.join(format!("{STAGING_PREFIX}{}-{nanos:09}", std::process::id()));
        // Root's alone, as the store itself.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        let staging = Staging { dir };
        for sub in ["blobs", "layers"] {
            let p = staging.dir.join(sub);
            fs::create_dir(&p).map_err(io_err(&p))?;
        }
        Ok(staging)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.dir) {
            tracing::warn!("removing the staging directory: {e}");
        }
    }
}

/// The manifest an import ends with, ready to be named in the index.
pub(super) struct Staged {
    name: String,
    media_type: MediaType,
    digest: String,
    size: u64,
    /// Said of the image in the index beside its name.
    pub(super) annotations: Vec<(String, String)>,
}

pub(super) struct Job<'a> {
    store: &'a Store,
    staging: &'a Staging,
    spec: String,
    /// Blob hexes and diff_id hexes staged so far.
    pub(super) blobs: Vec<String>,
    layers: Vec<String>,
    /// Every layer (diff_id hex) the image is made of, staged or cached.
    used_layers: Vec<String>,
    options: Options,
}

impl Store {
    /// Imports the image `source` names, as `name` (else the name the
    /// source gives it), and returns its full name and manifest digest.
    pub fn import(&self, source: &Source, name: Option<&str>) -> Result<Imported, ImageError> {
        self.import_with(source, name, Options::for_this_process())
    }

    pub(super) fn import_with(
        &self,
        source: &Source,
        name: Option<&str>,
        options: Options,
    ) -> Result<Imported, ImageError> {
        let name = name.map(normalize).transpose()?;
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let staging = Staging::in_store(self)?;
        let mut job = Job::new(self, &staging, describe(source));
        job.options = options;
        let mut staged = match source {
            Source::Oci { dir, reference } => {
                if !dir.is_dir() {
                    return Err(content(dir.display().to_string(), "no such directory"));
                }
                job.stage_layout(&Files::Dir(dir.clone()), reference.as_deref(), name)?
            }
            Source::OciArchive { file, reference } => {
                let files = Files::tar(file, &staging.dir.join("source.tar"))?;
                job.stage_layout(&files, reference.as_deref(), name)?
            }
            Source::DockerArchive { file, reference } => {
                let files = Files::tar(file, &staging.dir.join("source.tar"))?;
                job.stage_docker(&files, reference.as_ref(), name)?
            }
        };
        staged.annotations = vec![(SOURCE_ANNOTATION.to_owned(), describe(source))];
        job.commit(staged)
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::Oci { dir, reference } => with_ref("oci", dir, reference.as_deref()),
        Source::OciArchive { file, reference } => {
            with_ref("oci-archive", file, reference.as_deref())
        }
        Source::DockerArchive { file, reference } => {
            let r = match reference {
                Some(DockerRef::Name(n)) => Some(n.clone()),
                Some(DockerRef::Index(i)) => Some(format!("@{i}")),
                None => None,
            };
            with_ref("docker-archive", file, r.as_deref())
        }
    }
}

fn with_ref(transport: &str, path: &Path, reference: Option<&str>) -> String {
    match reference {
        Some(r) => format!("{transport}:{}:{r}", path.display()),
        None => format!("{transport}:{}", path.display()),
    }
}

fn annotation<'d>(d: &'d Descriptor, key: &str) -> Option<&'d str> {
    d.annotations().as_ref()?.get(key).map(String::as_str)
}

pub(super) fn parse_json<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| content(what, format!("not valid JSON of its kind: {e}")))
}

fn is_manifest(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageManifest => true,
        MediaType::Other(s) => s == DOCKER_MANIFEST,
        _ => false,
    }
}

fn is_layer(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageLayer
        | MediaType::ImageLayerGzip
        | MediaType::ImageLayerZstd
        | MediaType::ImageLayerNonDistributable
        | MediaType::ImageLayerNonDistributableGzip
        | MediaType::ImageLayerNonDistributableZstd => true,
        MediaType::Other(s) => s == DOCKER_LAYER_GZIP || s == DOCKER_LAYER,
        _ => false,
    }
}

impl<'a> Job<'a> {
    /// A job staging into `staging` for the store; `spec` names the
    /// source in messages.
    pub(super) fn new(store: &'a Store, staging: &'a Staging, spec: String) -> Job<'a> {
        Job {
            store,
            staging,
            spec,
            blobs: Vec::new(),
            layers: Vec::new(),
            used_layers: Vec::new(),
            options: Options::for_this_process(),
        }
    }

    /// A pulled image: its manifest and blobs already downloaded into the
    /// staging directory (or held by the store), checked there.
    pub(super) fn stage_pulled(
        &mut self,
        descriptor: &Descriptor,
        name: String,
    ) -> Result<Staged, ImageError> {
        // Nothing is read from a source: every blob is staged or stored.
        let none = Files::Dir(self.staging.dir.join("source"));
        self.stage_manifest(&none, descriptor, name)
    }

    /// Under the store's lock, before a commit: what this job took to be
    /// in the store already (blobs among `blobs`, the layers it staged
    /// none of) is still there, no prune having run meanwhile.
    pub(super) fn still_there(&self, blobs: &[(String, u64)]) -> Result<(), ImageError> {
        let gone = |what: String| {
            content(
                what,
                "the store lost it while this pull ran (a prune?): pull again",
            )
        };
        for (digest, size) in blobs {
            let hex = sha256_hex(digest).unwrap_or_default();
            let here = self.blobs.iter().any(|b| b == hex)
                || fs::metadata(self.store.blob_dir().join(hex)).is_ok_and(|m| m.len() == *size);
            if !here {
                return Err(gone(format!("blob {digest}")));
            }
        }
        for hex in &self.used_layers {
            let here = self.layers.contains(hex)
                || read_layer_info(&self.store.layer_dir().join(hex)).is_ok();
            if !here {
                return Err(gone(format!("layer sha256:{hex}")));
            }
        }
        Ok(())
    }

    fn stage_layout(
        &mut self,
        files: &Files,
        reference: Option<&str>,
        name: Option<String>,
    ) -> Result<Staged, ImageError> {
        let spec = self.spec.clone();
        let layout = files
            .read("oci-layout", 4096)?
            .ok_or_else(|| content(&spec, "not an OCI image layout: it has no oci-layout file"))?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Layout {
            image_layout_version: String,
        }
        let layout: Layout = parse_json(&layout, "oci-layout")?;
        if !layout.image_layout_version.starts_with("1.") {
            return Err(content(
                "oci-layout",
                format!(
                    "unsupported imageLayoutVersion {:?}",
                    layout.image_layout_version
                ),
            ));
        }
        let index = files
            .read("index.json", MAX_JSON)?
            .ok_or_else(|| content(&spec, "not an OCI image layout: it has no index.json"))?;
        let index: ImageIndex = parse_json(&index, "index.json")?;
        let names = || {
            let names: Vec<&str> = index
                .manifests()
                .iter()
                .filter_map(|d| annotation(d, REF_NAME))
                .collect();
            if names.is_empty() {
                "none is named".to_owned()
            } else {
                format!("it has {}", names.join(", "))
            }
        };
        let descriptor = match reference {
            Some(r) => index
                .manifests()
                .iter()
                .find(|d| annotation(d, REF_NAME) == Some(r))
                .ok_or_else(|| {
                    content(
                        &spec,
                        format!("no image named {r:?} in the layout ({})", names()),
                    )
                })?,
            None => match index.manifests().as_slice() {
                [one] => one,
                [] => return Err(content(&spec, "the layout holds no image")),
                many => {
                    return Err(content(
                        &spec,
                        format!(
                            "the layout holds {} images: name one, as in oci:DIR:REF ({})",
                            many.len(),
                            names()
                        ),
                    ));
                }
            },
        };
        let name = match name {
            Some(n) => Some(n),
            None => match reference {
                Some(r) => Some(normalize(r)?),
                None => [CONTAINERD_NAME, REF_NAME]
                    .iter()
                    .filter_map(|k| annotation(descriptor, k))
                    .find_map(|n| normalize(n).ok()),
            },
        };
        let name = name.ok_or(ImageError::NoName { spec })?;
        let manifest = self.platform_manifest(files, descriptor.clone())?;
        self.stage_manifest(files, &manifest, name)
    }

    /// The manifest for linux/amd64 under `descriptor` (itself, or from an
    /// image index, possibly nested once).
    fn platform_manifest(
        &mut self,
        files: &Files,
        descriptor: Descriptor,
    ) -> Result<Descriptor, ImageError> {
        let mut current = descriptor;
        for _ in 0..3 {
            if is_manifest(current.media_type()) {
                return Ok(current);
            }
            let digest = current.digest().to_string();
            if !is_index(current.media_type()) {
                return Err(content(
                    format!("manifest {digest}"),
                    format!("not a container image: media type {}", current.media_type()),
                ));
            }
            let path = self.ingest(files, &digest, current.size(), "index")?;
            let nested: ImageIndex = parse_json(&read_limited(&path)?, &format!("index {digest}"))?;
            let pick = nested.manifests().iter().find(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == Arch::Amd64)
            });
            current = match pick {
                Some(d) => d.clone(),
                None => {
                    let have: Vec<String> = nested
                        .manifests()
                        .iter()
                        .filter_map(|d| d.platform().as_ref())
                        .map(|p| format!("{}/{}", p.os(), p.architecture()))
                        .collect();
                    return Err(content(
                        format!("index {digest}"),
                        format!("no linux/amd64 image (it has {})", have.join(", ")),
                    ));
                }
            };
        }
        Err(content(&self.spec, "image indexes nested too deep"))
    }

    /// Stages the manifest `descriptor` names, its config and its layers.
    fn stage_manifest(
        &mut self,
        files: &Files,
        descriptor: &Descriptor,
        name: String,
    ) -> Result<Staged, ImageError> {
        let digest = descriptor.digest().to_string();
        let what = format!("manifest {digest}");
        let path = self.ingest(files, &digest, descriptor.size(), "manifest")?;
        let manifest: ImageManifest = parse_json(&read_limited(&path)?, &what)?;
        let config_desc = manifest.config();
        let config_ok = match config_desc.media_type() {
            MediaType::ImageConfig => true,
            MediaType::Other(s) => s == DOCKER_CONFIG,
            _ => false,
        };
        if !config_ok {
            return Err(content(
                &what,
                format!(
                    "not a container image: config media type {}",
                    config_desc.media_type()
                ),
            ));
        }
        let config_digest = config_desc.digest().to_string();
        let config_path = self.ingest(files, &config_digest, config_desc.size(), "config")?;
        let config = self.check_config(&config_path, &config_digest, manifest.layers().len())?;
        for (layer, diff_id) in manifest.layers().iter().zip(config.rootfs().diff_ids()) {
            let layer_digest = layer.digest().to_string();
            if !is_layer(layer.media_type()) {
                return Err(content(
                    format!("layer {layer_digest}"),
                    format!("unsupported media type {}", layer.media_type()),
                ));
            }
            let blob = self.ingest(files, &layer_digest, layer.size(), "layer")?;
            self.layer(&layer_digest, &blob, diff_id)?;
        }
        Ok(Staged {
            name,
            media_type: descriptor.media_type().clone(),
            digest,
            size: descriptor.size(),
            annotations: Vec::new(),
        })
    }

    fn check_config(
        &self,
        path: &Path,
        digest: &str,
        layers: usize,
    ) -> Result<ImageConfiguration, ImageError> {
        let what = format!("config {digest}");
        let config: ImageConfiguration = parse_json(&read_limited(path)?, &what)?;
        if config.rootfs().typ() != "layers" {
            return Err(content(
                &what,
                format!("rootfs.type is {:?}, not \"layers\"", config.rootfs().typ()),
            ));
        }
        let diff_ids = config.rootfs().diff_ids().len();
        if diff_ids != layers {
            return Err(content(
                &what,
                format!("rootfs.diff_ids has {diff_ids} entries for {layers} layers"),
            ));
        }
        if *config.os() != Os::Linux {
            return Err(content(
                &what,
                format!("the image is for {}, not linux", config.os()),
            ));
        }
        Ok(config)
    }

    /// A blob the source must hold at `blobs/sha256/<hex>`, copied into
    /// staging and checked against `digest` and `size`; a blob the store
    /// already has is not read again.
    fn ingest(
        &mut self,
        files: &Files,
        digest: &str,
        size: u64,
        kind: &str,
    ) -> Result<PathBuf, ImageError> {
        let what = format!("{kind} {digest}");
        let hex = sha256_hex(digest)
            .ok_or_else(|| content(&what, "unsupported digest: podrun stores sha256 digests"))?
            .to_owned();
        if kind != "layer" && size > MAX_JSON {
            return Err(content(
                &what,
                format!("{size} bytes is too big for a {kind}"),
            ));
        }
        let stored = self.store.blob_dir().join(&hex);
        if let Ok(meta) = fs::symlink_metadata(&stored)
            && meta.is_file()
        {
            if meta.len() != size {
                return Err(content(
                    &what,
                    format!(
                        "size mismatch: the descriptor says {size} bytes, the blob has {}",
                        meta.len()
                    ),
                ));
            }
            return Ok(stored);
        }
        let staged = self.staging.dir.join("blobs").join(&hex);
        if self.blobs.contains(&hex) {
            return Ok(staged);
        }
        let (mut reader, _) = files
            .open(&format!("blobs/sha256/{hex}"))?
            .ok_or_else(|| content(&what, "the source does not hold this blob"))?;
        // One byte past the promised size is enough to tell it is bigger.
        let (got_digest, got_size) =
            copy_hashed(&mut (&mut reader).take(size + 1), &staged, &what)?;
        if got_size != size {
            let had = if got_size > size {
                "more than that".to_owned()
            } else {
                got_size.to_string()
            };
            return Err(content(
                &what,
                format!("size mismatch: the descriptor says {size} bytes, the blob has {had}"),
            ));
        }
        if got_digest != digest {
            return Err(content(
                &what,
                format!("digest mismatch: the blob's content is {got_digest}"),
            ));
        }
        self.blobs.push(hex);
        Ok(staged)
    }

    /// A blob whose digest the source does not promise (docker archives
    /// name files, not digests): copied into staging, named by its digest.
    fn ingest_named(
        &mut self,
        files: &Files,
        path: &str,
    ) -> Result<(String, u64, PathBuf), ImageError> {
        let (mut reader, _) = files
            .open(path)?
            .ok_or_else(|| content(&self.spec, format!("the archive has no file {path:?}")))?;
        let incoming = self.staging.dir.join("blobs").join(".incoming");
        let (digest, size) = copy_hashed(&mut reader, &incoming, path)?;
        let hex = sha256_hex(&digest).unwrap_or_default().to_owned();
        let stored = self.store.blob_dir().join(&hex);
        if stored.is_file() {
            fs::remove_file(&incoming).map_err(io_err(&incoming))?;
            return Ok((digest, size, stored));
        }
        let staged = self.staging.dir.join("blobs").join(&hex);
        fs::rename(&incoming, &staged).map_err(io_err(&staged))?;
        if !self.blobs.contains(&hex) {
            self.blobs.push(hex);
        }
        Ok((digest, size, staged))
    }

    /// Makes sure the layer `diff_id` is unpacked (in the cache, or staged
    /// now from `blob`), and that `blob` really is that layer.
    fn layer(&mut self, blob_digest: &str, blob: &Path, diff_id: &str) -> Result<(), ImageError> {
        let what = format!("layer {blob_digest}");
        let hex = sha256_hex(diff_id)
            .ok_or_else(|| content(&what, format!("unsupported diff_id {diff_id}")))?
            .to_owned();
        if !self.used_layers.contains(&hex) {
            self.used_layers.push(hex.clone());
        }
        let mismatch = |got: &str| {
            content(
                &what,
                format!(
                    "diff_id mismatch: the config says {diff_id}, the uncompressed layer is {got}"
                ),
            )
        };
        if self.layers.contains(&hex) {
            // Staged in this import, from this blob or one checked to be the same layer.
            let info = read_layer_info(&self.staging.dir.join("layers").join(&hex))
                .map_err(|e| content(&what, e))?;
            if info.blob != blob_digest {
                let got = self.diff_id_of(blob, &what)?;
                if got != diff_id {
                    return Err(mismatch(&got));
                }
            }
            return Ok(());
        }
        let cached = self.store.layer_dir().join(&hex);
        if let Ok(info) = read_layer_info(&cached) {
            // Unpacked before; from another blob, check this one is the same layer.
            if info.blob != blob_digest {
                let got = self.diff_id_of(blob, &what)?;
                if got != diff_id {
                    return Err(mismatch(&got));
                }
            }
            return Ok(());
        }
        let dir = self.staging.dir.join("layers").join(&hex);
        let root = dir.join("root");
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        let f = File::open(blob).map_err(io_err(blob))?;
        let mut info = unpack::unpack(f, blob_digest, &root, self.options)?;
        if info.diff_id != diff_id {
            return Err(mismatch(&info.diff_id));
        }
        info.blob = blob_digest.to_owned();
        let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
        let path = dir.join("layer.json");
        fs::write(&path, json).map_err(io_err(&path))?;
        self.layers.push(hex);
        Ok(())
    }

    fn diff_id_of(&self, blob: &Path, what: &str) -> Result<String, ImageError> {
        let f = File::open(blob).map_err(io_err(blob))?;
        unpack::diff_id(f).map_err(|e| content(what, format!("decompressing: {e}")))
    }

    /// `docker save` output: `manifest.json` lists each image's config
    /// and layer files; it becomes an OCI manifest and config here.
    fn stage_docker(
        &mut self,
        files: &Files,
        reference: Option<&DockerRef>,
        name: Option<String>,
    ) -> Result<Staged, ImageError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let spec = self.spec.clone();
        let bytes = files
            .read("manifest.json", MAX_JSON)?
            .ok_or_else(|| content(&spec, "not a docker archive: it has no manifest.json"))?;
        let entries: Vec<Entry> = parse_json(&bytes, "manifest.json")?;
        let tags = |e: &Entry| e.repo_tags.clone().unwrap_or_default();
        let all_tags = || {
            let t: Vec<String> = entries.iter().flat_map(tags).collect();
            if t.is_empty() {
                "none is tagged".to_owned()
            } else {
                format!("it has {}", t.join(", "))
            }
        };
        let entry = match reference {
            Some(DockerRef::Index(i)) => entries.get(*i).ok_or_else(|| {
                content(
                    &spec,
                    format!(
                        "the archive holds {} images, there is no @{i}",
                        entries.len()
                    ),
                )
            })?,
            Some(DockerRef::Name(n)) => {
                let wanted = normalize(n)?;
                entries
                    .iter()
                    .find(|e| {
                        tags(e)
                            .iter()
                            .any(|t| normalize(t).is_ok_and(|t| t == wanted))
                    })
                    .ok_or_else(|| {
                        content(
                            &spec,
                            format!("no image tagged {n:?} in the archive ({})", all_tags()),
                        )
                    })?
            }
            None => match entries.as_slice() {
                [one] => one,
                [] => return Err(content(&spec, "the archive holds no image")),
                many => {
                    return Err(content(
                        &spec,
                        format!(
                            "the archive holds {} images: choose one, as in docker-archive:FILE:NAME or :@N ({})",
                            many.len(),
                            all_tags()
                        ),
                    ));
                }
            },
        };
        let name = match (name, reference) {
            (Some(n), _) => Some(n),
            (None, Some(DockerRef::Name(n))) => Some(normalize(n)?),
            (None, _) => tags(entry).iter().find_map(|t| normalize(t).ok()),
        };
        let name = name.ok_or_else(|| ImageError::NoName { spec: spec.clone() })?;

        let (config_digest, config_size, config_path) = self.ingest_named(files, &entry.config)?;
        // Docker names the config by its digest: hold it to that.
        let file_hex = clean(&entry.config)
            .and_then(|c| {
                c.rsplit('/')
                    .next()
                    .map(|b| b.trim_end_matches(".json").to_owned())
            })
            .filter(|b| sha256_hex(&format!("sha256:{b}")).is_some());
        if let Some(hex) = file_hex
            && config_digest != format!("sha256:{hex}")
        {
            return Err(content(
                format!("config {}", entry.config),
                format!(
                    "digest mismatch: the file is named sha256:{hex}, its content is {config_digest}"
                ),
            ));
        }
        let config = self.check_config(&config_path, &config_digest, entry.layers.len())?;
        let mut layers = Vec::new();
        for (file, diff_id) in entry.layers.iter().zip(config.rootfs().diff_ids()) {
            let (digest, size, path) = self.ingest_named(files, file)?;
            let media_type = match sniff(&path)? {
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::Zstd => MediaType::ImageLayerZstd,
                Compression::None => MediaType::ImageLayer,
            };
            self.layer(&digest, &path, diff_id)?;
            layers.push(descriptor(media_type, size, &digest)?);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(
                MediaType::ImageConfig,
                config_size,
                &config_digest,
            )?)
            .layers(layers)
            .build()
            .map_err(|e| content(&spec, format!("building the manifest: {e}")))?;
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| content(&spec, format!("writing the manifest: {e}")))?;
        let digest = sha256(&bytes);
        let hex = sha256_hex(&digest).unwrap_or_default().to_owned();
        if !self.store.blob_dir().join(&hex).is_file() {
            let path = self.staging.dir.join("blobs").join(&hex);
            fs::write(&path, &bytes).map_err(io_err(&path))?;
            self.blobs.push(hex);
        }
        Ok(Staged {
            name,
            media_type: MediaType::ImageManifest,
            digest,
            size: bytes.len() as u64,
            annotations: Vec::new(),
        })
    }

    /// Renames what was staged into the store, `index.json` last.
    pub(super) fn commit(self, staged: Staged) -> Result<Imported, ImageError> {
        let store = self.store;
        // One syncfs makes the staged files durable before they are named.
        let dir = File::open(&self.staging.dir).map_err(io_err(&self.staging.dir))?;
        nix::unistd::syncfs(dir.as_fd()).map_err(|e| io_err(&self.staging.dir)(e.into()))?;
        for hex in &self.blobs {
            let from = self.staging.dir.join("blobs").join(hex);
            let to = store.blob_dir().join(hex);
            fs::rename(&from, &to).map_err(io_err(&to))?;
        }
        for hex in &self.layers {
            let from = self.staging.dir.join("layers").join(hex);
            let to = store.layer_dir().join(hex);
            fs::rename(&from, &to).map_err(io_err(&to))?;
        }
        sync_dir(&store.blob_dir())?;
        sync_dir(&store.layer_dir())?;
        let index = store.read_index()?;
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| annotation(d, REF_NAME) != Some(staged.name.as_str()))
            .cloned()
            .collect();
        manifests.push(index_entry(
            &staged.name,
            staged.media_type,
            &staged.digest,
            staged.size,
            &staged.annotations,
        )?);
        write_atomic_in(
            &self.staging.dir,
            &store.images.join("index.json"),
            &index_bytes(&manifests)?,
        )?;
        Ok(Imported {
            reference: staged.name,
            digest: staged.digest,
        })
    }
}

pub(super) fn descriptor(
    media_type: MediaType,
    size: u64,
    digest: &str,
) -> Result<Descriptor, ImageError> {
    let d: oci_spec::image::Digest = digest
        .parse()
        .map_err(|e| content(digest, format!("bad digest: {e}")))?;
    Ok(Descriptor::new(media_type, size, d))
}

fn sniff(path: &Path) -> Result<Compression, ImageError> {
    let mut head = [0u8; 4];
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(io_err(path))? {
            0 => break,
            k => n += k,
        }
    }
    Ok(Compression::sniff(&head[..n]))
}

fn read_limited(path: &Path) -> Result<Vec<u8>, ImageError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_JSON + 1).read_to_end(&mut buf))
        .map_err(io_err(path))?;
    Ok(buf)
}

/// Copies `reader` into a new file `to`, hashing it.
fn copy_hashed(reader: &mut dyn Read, to: &Path, what: &str) -> Result<(String, u64), ImageError> {
    let f = File::create(to).map_err(io_err(to))?;
    let mut w = HashingWriter::new(f);
    io::copy(reader, &mut w).map_err(|e| content(what, format!("reading it: {e}")))?;
    let (_, digest, size) = w.finish();
    Ok((digest, size))
}
