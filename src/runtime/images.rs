//! The runtime's images (CRI's ImageService over podrun's local store):
//! an image's status, a pull, and a container run's root from an image: an
//! overlay of its layers, with its config as the container's defaults.

use std::cell::OnceCell;
use std::path::Path;

use oci_spec::image::ImageConfiguration;

use crate::container::config::{ImageDefaults, ImageRun};
use crate::image::registry::auth::Keyring;
use crate::image::{Image, ImageError, Platform, Progress, PullSettings, Pulled, Store};
use crate::sandbox::overlay::{self, OverlayError};

/// Why a run's root could not be made from its image.
#[derive(Debug, thiserror::Error)]
pub enum ImageRunError {
    #[error("image {0:?} is not in podrun's image store")]
    NotInStore(String),
    #[error(transparent)]
    Store(#[from] ImageError),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
}

/// The image store, opened when first needed.
#[derive(Default)]
pub struct ImageService {
    store: OnceCell<Store>,
}

impl ImageService {
    pub fn store(&self) -> Result<&Store, ImageError> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let store = Store::open_default()?;
        Ok(self.store.get_or_init(|| store))
    }

    /// ImageStatus: the image `name` resolves to, if the store has it.
    /// With `wait: false` (in the supervisor's loop) a store busy with an
    /// import is an error rather than a wait.
    pub fn image_status(&self, name: &str, wait: bool) -> Result<Option<Image>, ImageError> {
        let store = self.store()?;
        if wait {
            store.resolve(name)
        } else {
            store.resolve_now(name)
        }
    }
}

impl ImageService {
    /// PullImage: `image` for this machine's platform, with `credentials`
    /// (a pod's pull secrets, CRI's AuthConfig) tried before the machine's
    /// own; registries.conf, certs.d and the auth files are read anew.
    pub fn pull_image(
        &self,
        image: &str,
        credentials: Keyring,
        progress: &dyn Progress,
    ) -> Result<Pulled, ImageError> {
        let settings = PullSettings::of_this_machine(credentials)?;
        self.store()?
            .pull(image, &Platform::this_machine(), &settings, progress)
    }
}

/// The defaults an image's config gives a container.
pub fn defaults_of(config: &ImageConfiguration) -> ImageDefaults {
    let Some(c) = config.config() else {
        return ImageDefaults::default();
    };
    ImageDefaults {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c
            .env()
            .iter()
            .flatten()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (e.clone(), String::new()),
            })
            .collect(),
        working_dir: c.working_dir().clone().filter(|d| !d.is_empty()),
        user: c.user().clone().filter(|u| !u.is_empty()),
    }
}

/// A new run's root from `image`, mounted at `root` over the image's
/// layers. Never waits on an import: a busy store is a create error,
/// retried with back-off.
pub fn image_run(store: &Store, image: &str, root: &Path) -> Result<ImageRun, ImageRunError> {
    let found = store
        .resolve_now(image)?
        .ok_or_else(|| ImageRunError::NotInStore(image.to_owned()))?;
    let rootfs = overlay::mount_root(&found.layers, root)?;
    Ok(ImageRun {
        rootfs,
        defaults: defaults_of(&found.config),
    })
}
