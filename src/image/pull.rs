//! Pulls: an image from a registry into the store, as containerd and
//! podman pull. The endpoints registries.conf gives (mirrors, then the
//! registry itself) are tried in turn for the manifest; the one that
//! answers serves the blobs. Everything is downloaded into a staging
//! directory (checked by size and digest as it streams, a bounded number
//! of layers at once, none the store already holds), then unpacked and
//! committed as an import is: a failed pull leaves the store as it was.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::FlockArg;
use oci_spec::image::{ImageIndex, ImageManifest, MediaType};

use super::import::{Job, Staged, Staging, parse_json};
use super::reference::Reference;
use super::registry::auth::Keyring;
use super::registry::client::{Fetched, RegistryError, Repository};
use super::registry::config::RegistriesConf;
use super::registry::http::Http;
use super::registry::tls::TlsPolicy;
use super::store::{MAX_JSON, SOURCE_ANNOTATION, Store, TOP_DIGEST_ANNOTATION, is_index};
use super::{ImageError, content, io_err};

/// Layers downloaded at once (containerd's default).
pub const MAX_CONCURRENT_DOWNLOADS: usize = 3;

/// The platform an image is pulled for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's, in OCI's names.
    pub fn this_machine() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// `os/arch[/variant]`, as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(ImageError::InvalidName {
                name: s.to_owned(),
                reason: "a platform is OS/ARCH or OS/ARCH/VARIANT, as linux/arm64/v8".to_owned(),
            }),
        }
    }

    /// Whether an index entry's platform is this one. An entry's variant
    /// counts only when one is asked for, with arm64's v8 its default.
    fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        let norm = |arch: &str, v: Option<&str>| match (arch, v) {
            ("arm64", None | Some("")) => Some("v8".to_owned()),
            (_, v) => v.filter(|v| !v.is_empty()).map(str::to_owned),
        };
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.architecture
            && match &self.variant {
                None => true,
                Some(v) => {
                    norm(&self.architecture, Some(v))
                        == norm(&self.architecture, p.variant().as_deref())
                }
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What a pull tells as it goes.
pub trait Progress: Send + Sync {
    /// The manifest was found at `source`.
    fn resolved(&self, reference: &str, source: &str, digest: &str);
    /// A layer: `done` of `total` bytes; `cached` when the store has it.
    fn layer(&self, digest: &str, done: u64, total: u64, cached: bool);
    /// Unpacking and storing, after every download.
    fn storing(&self);
}

/// Where the registries' settings come from.
pub struct PullSettings {
    pub registries: RegistriesConf,
    /// A pod's pull secrets: every match among them is tried before any
    /// of the machine's, as the kubelet does.
    pub pull_secrets: Keyring,
    /// The machine's credential files.
    pub keyring: Keyring,
    pub cert_dirs: Vec<PathBuf>,
}

impl PullSettings {
    /// Where this machine keeps them: registries.conf, certs.d and the
    /// credential files, after `pull_secrets` (a pod's, tried first, as
    /// the kubelet does).
    pub fn of_this_machine(pull_secrets: Keyring) -> Result<PullSettings, ImageError> {
        let registries =
            RegistriesConf::load_default().map_err(|e| ImageError::Registries(e.to_string()))?;
        let files = Keyring::load_files(&Keyring::default_files())
            .map_err(|e| ImageError::Credentials(e.to_string()))?;
        Ok(PullSettings {
            registries,
            pull_secrets,
            keyring: files,
            cert_dirs: super::registry::certs::default_dirs(),
        })
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The full normalised name it is stored under.
    pub reference: String,
    /// The platform manifest's digest.
    pub digest: String,
    /// What the registry names the image by: the index's digest for a
    /// multi-platform image, else the manifest's.
    pub repo_digest: String,
    /// The endpoint it came from, `host[:port]`.
    pub source: String,
    /// Config and layers, compressed, in bytes.
    pub size: u64,
    /// Bytes downloaded (what the store held already was not).
    pub downloaded: u64,
    /// The store held this very image already: nothing was written.
    pub unchanged: bool,
}

impl Store {
    /// Pulls `name` for `platform`.
    pub fn pull(
        &self,
        name: &str,
        platform: &Platform,
        settings: &PullSettings,
        progress: &dyn Progress,
    ) -> Result<Pulled, ImageError> {
        let reference = Reference::parse(name)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err("the pull's event loop"))?;
        runtime.block_on(self.pull_async(&reference, platform, settings, progress))
    }

    async fn pull_async(
        &self,
        reference: &Reference,
        platform: &Platform,
        settings: &PullSettings,
        progress: &dyn Progress,
    ) -> Result<Pulled, ImageError> {
        let full = reference.to_string();
        if let Some(d) = &reference.digest
            && !d.starts_with("sha256:")
        {
            return Err(ImageError::InvalidName {
                name: full,
                reason: format!(
                    "podrun verifies and stores sha256 digests only, not {}",
                    d.split(':').next().unwrap_or(d)
                ),
            });
        }
        let repository = reference.repository();
        let resolved = settings
            .registries
            .resolve(&repository, reference.digest.is_some())
            .map_err(|e| ImageError::Registries(e.to_string()))?;
        let insecure = resolved
            .endpoints
            .iter()
            .filter(|e| e.insecure)
            .map(|e| host_of(&e.location).to_owned())
            .collect();
        let http = Http {
            tls: std::sync::Arc::new(TlsPolicy::new(settings.cert_dirs.clone(), insecure)),
        };
        let wanted = reference
            .digest
            .clone()
            .or_else(|| reference.tag.clone())
            .unwrap_or_else(|| "latest".to_owned());
        let mut failures: Vec<(String, RegistryError)> = Vec::new();
        for endpoint in &resolved.endpoints {
            let (host, path) = endpoint.host_and_path(&resolved.remainder);
            let at = format!("{host}/{path}");
            let mut candidates = settings.pull_secrets.lookup(&at);
            candidates.extend(settings.keyring.lookup(&at));
            let attempt = async {
                let mut repo = Repository::new(&http, api_host(host), &path, candidates)?;
                repo.connect(endpoint.insecure).await?;
                let top = repo.manifest(&wanted).await?;
                Ok::<_, RegistryError>((repo, top))
            };
            match attempt.await {
                Ok((repo, top)) => {
                    return self
                        .fetch(&repo, &full, top, platform, progress)
                        .await
                        .map_err(|e| match e {
                            Fail::Registry(e) => pull_error(&full, e, &failures),
                            Fail::Image(e) => e,
                        });
                }
                Err(e) => failures.push((host.to_owned(), e)),
            }
        }
        match failures.pop() {
            Some((_, last)) => Err(pull_error(&full, last, &failures)),
            None => Err(ImageError::Registries(format!(
                "no registry to pull {full} from"
            ))),
        }
    }

    /// Everything under the manifest `top`, from `repo`, into the store.
    async fn fetch(
        &self,
        repo: &Repository<'_>,
        full: &str,
        top: Fetched,
        platform: &Platform,
        progress: &dyn Progress,
    ) -> Result<Pulled, Fail> {
        let repo_digest = top.digest.clone();
        progress.resolved(full, &repo.authority(), &repo_digest);
        let manifest = if is_index(&MediaType::from(top.media_type.as_str())) {
            let index: ImageIndex = parse_json(&top.bytes, &format!("index {}", top.digest))?;
            let pick = index
                .manifests()
                .iter()
                .find(|d| d.platform().as_ref().is_some_and(|p| platform.matches(p)));
            let Some(pick) = pick else {
                let have: Vec<String> = index
                    .manifests()
                    .iter()
                    .filter_map(|d| d.platform().as_ref())
                    .map(|p| {
                        let mut s = format!("{}/{}", p.os(), p.architecture());
                        if let Some(v) = p.variant() {
                            s = format!("{s}/{v}");
                        }
                        s
                    })
                    .collect();
                return Err(Fail::Image(content(
                    format!("index {}", top.digest),
                    format!("no {platform} image (it has {})", have.join(", ")),
                )));
            };
            let m = repo.manifest(pick.digest().as_ref()).await?;
            if m.bytes.len() as u64 != pick.size() {
                return Err(Fail::Image(content(
                    format!("manifest {}", m.digest),
                    format!(
                        "size mismatch: the index says {} bytes, the registry sent {}",
                        pick.size(),
                        m.bytes.len()
                    ),
                )));
            }
            m
        } else {
            top
        };
        let what = format!("manifest {}", manifest.digest);
        let parsed: ImageManifest = parse_json(&manifest.bytes, &what)?;
        if parsed.config().size() > MAX_JSON {
            return Err(Fail::Image(content(
                format!("config {}", parsed.config().digest()),
                format!("{} bytes is too big for a config", parsed.config().size()),
            )));
        }
        let blobs: Vec<(String, u64)> = std::iter::once(parsed.config())
            .chain(parsed.layers().iter())
            .map(|d| (d.digest().to_string(), d.size()))
            .collect();
        let size = blobs.iter().map(|(_, s)| s).sum();

        // The very image, stored under this name already: nothing to do.
        if self.holds(full, &manifest.digest, &blobs)? {
            for (digest, s) in &blobs[1..] {
                progress.layer(digest, *s, *s, true);
            }
            return Ok(Pulled {
                reference: full.to_owned(),
                digest: manifest.digest,
                repo_digest,
                source: repo.authority(),
                size,
                downloaded: 0,
                unchanged: true,
            });
        }

        let staging = Staging::in_store(self)?;
        let blob_dir = staging.dir.join("blobs");
        let manifest_hex = hex(&manifest.digest);
        let path = blob_dir.join(&manifest_hex);
        std::fs::write(&path, &manifest.bytes).map_err(io_err(&path))?;
        let mut staged = vec![manifest_hex];

        // What the store lacks, config first; then the layers, a few at once.
        let mut wanted = Vec::new();
        for (i, (digest, s)) in blobs.iter().enumerate() {
            let h = hex(digest);
            if h.is_empty() {
                return Err(Fail::Image(content(
                    format!("blob {digest}"),
                    "unsupported digest: podrun stores sha256 digests",
                )));
            }
            let stored = self.blob_dir().join(&h);
            if std::fs::metadata(&stored).is_ok_and(|m| m.is_file() && m.len() == *s) {
                if i > 0 {
                    progress.layer(digest, *s, *s, true);
                }
                continue;
            }
            if !staged.contains(&h) && !wanted.iter().any(|(d, _)| d == digest) {
                wanted.push((digest.clone(), *s));
                staged.push(h);
            }
        }
        let downloaded = AtomicU64::new(0);
        let queue = Mutex::new(wanted.into_iter());
        let worker = || async {
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some((digest, s)) = next else {
                    return Ok::<(), RegistryError>(());
                };
                let file = blob_dir.join(hex(&digest));
                let is_layer = digest != blobs[0].0;
                if is_layer {
                    progress.layer(&digest, 0, s, false);
                }
                repo.blob(&digest, s, &file, &|done| {
                    if is_layer {
                        progress.layer(&digest, done, s, false);
                    }
                })
                .await?;
                downloaded.fetch_add(s, Ordering::Relaxed);
            }
        };
        tokio::try_join!(worker(), worker(), worker())?;
        progress.storing();

        // Checked and unpacked in staging without the store's lock, so
        // that other pods' containers can be made meanwhile; the lock is
        // for the commit, once what the store held is known to be there.
        let mut job = Job::new(self, &staging, format!("{} ({})", full, repo.authority()));
        job.blobs = staged;
        let descriptor = super::import::descriptor(
            MediaType::from(manifest.media_type.as_str()),
            manifest.bytes.len() as u64,
            &manifest.digest,
        )?;
        let mut done: Staged = job.stage_pulled(&descriptor, full.to_owned())?;
        done.annotations = vec![
            (SOURCE_ANNOTATION.to_owned(), repo.authority()),
            (TOP_DIGEST_ANNOTATION.to_owned(), repo_digest.clone()),
        ];
        let _lock = self.lock(FlockArg::LockExclusive)?;
        job.still_there(&blobs)?;
        let imported = job.commit(done)?;
        Ok(Pulled {
            reference: imported.reference,
            digest: imported.digest,
            repo_digest,
            source: repo.authority(),
            size,
            downloaded: downloaded.into_inner(),
            unchanged: false,
        })
    }

    /// Whether `name` is stored as the manifest `digest` with all its blobs.
    fn holds(&self, name: &str, digest: &str, blobs: &[(String, u64)]) -> Result<bool, ImageError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let index = self.read_index()?;
        let named = index.manifests().iter().any(|d| {
            d.digest().to_string() == digest
                && d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(super::store::REF_NAME))
                    .is_some_and(|n| n == name)
        });
        Ok(named
            && blobs.iter().all(|(d, s)| {
                std::fs::metadata(self.blob_dir().join(hex(d))).is_ok_and(|m| m.len() == *s)
            }))
    }
}

/// Logs in to `registry` (`host[:port]`) with `candidate` as podman
/// login does: the registry's `/v2/` must accept it.
pub fn verify_login(
    registry: &str,
    candidate: super::registry::auth::Candidate,
    settings: &PullSettings,
) -> Result<(), ImageError> {
    let resolved = settings
        .registries
        .resolve(&format!("{registry}/x"), false)
        .map_err(|e| ImageError::Registries(e.to_string()))?;
    let insecure = resolved
        .endpoints
        .iter()
        .any(|e| e.insecure && !e.mirror && host_of(&e.location) == registry);
    let http = Http {
        tls: std::sync::Arc::new(TlsPolicy::new(
            settings.cert_dirs.clone(),
            if insecure {
                [registry.to_owned()].into()
            } else {
                Default::default()
            },
        )),
    };
    let failed = |e: RegistryError| ImageError::Login {
        registry: registry.to_owned(),
        unreachable: e.is_unreachable(),
        reason: e.to_string(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("the login's event loop"))?;
    runtime
        .block_on(async {
            let mut repo = Repository::new(&http, api_host(registry), "", vec![candidate])?;
            repo.connect(insecure).await?;
            repo.ping().await
        })
        .map_err(failed)
}

/// Why fetching an image failed: the registry, or what it sent.
enum Fail {
    Registry(RegistryError),
    Image(ImageError),
}

impl From<RegistryError> for Fail {
    fn from(e: RegistryError) -> Fail {
        Fail::Registry(e)
    }
}

impl From<ImageError> for Fail {
    fn from(e: ImageError) -> Fail {
        Fail::Image(e)
    }
}

fn pull_error(image: &str, error: RegistryError, others: &[(String, RegistryError)]) -> ImageError {
    let tried = others
        .iter()
        .map(|(host, e)| format!("mirror {host}: {e}"))
        .collect::<Vec<_>>();
    ImageError::Pull {
        image: image.to_owned(),
        reason: error.to_string(),
        unreachable: error.is_unreachable(),
        also: if tried.is_empty() {
            String::new()
        } else {
            format!(" (also tried {})", tried.join("; "))
        },
    }
}

fn hex(digest: &str) -> String {
    super::digest::sha256_hex(digest)
        .unwrap_or_default()
        .to_owned()
}

/// Where a registry's API is: Docker Hub's is not at `docker.io`.
fn api_host(host: &str) -> &str {
    if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

fn host_of(location: &str) -> &str {
    location.split('/').next().unwrap_or(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(Platform::this_machine().os, "linux");
        let p = Platform::parse("linux/arm64").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().variant.as_deref(),
            Some("v7")
        );
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux/am d64",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        let entry = |arch: &str, variant: Option<&str>| {
            let mut p = oci_spec::image::Platform::default();
            p.set_os(oci_spec::image::Os::Linux);
            p.set_architecture(arch.into());
            p.set_variant(variant.map(str::to_owned));
            p
        };
        let arm64v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm64v8.matches(&entry("arm64", None)));
        assert!(arm64v8.matches(&entry("arm64", Some("v8"))));
        assert!(!arm64v8.matches(&entry("arm64", Some("v9"))));
        assert!(
            Platform::parse("linux/arm64")
                .unwrap()
                .matches(&entry("arm64", Some("v8")))
        );
        assert!(
            !Platform::parse("linux/arm/v6")
                .unwrap()
                .matches(&entry("arm", Some("v7")))
        );
        assert!(
            !Platform::parse("linux/amd64")
                .unwrap()
                .matches(&entry("arm64", None))
        );
    }
}
