//! Containers from the image store. Before a pod is created, each image it
//! names must be in the store, as its `imagePullPolicy` allows (podrun
//! cannot pull yet); at each start, the container's run gets an overlay
//! root of the image's layers and the image's config as its defaults.

use oci_spec::image::ImageConfiguration;

use super::launch::Launcher;
use crate::container::config::{ImageDefaults, ImageRun};
use crate::container::rootfs::Root;
use crate::image::Store;
use crate::manifest::Pod;
use crate::sandbox::overlay;

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

/// Why the image of a container cannot be used, as the kubelet would say
/// it (and how to get it into the store), or `None` when it can. With
/// `wait: false` (in the supervisor's loop) a store busy with an import is
/// a refusal too. `image` is one of the store's (not `rootfs:`).
pub fn refusal(store: &Store, image: &str, policy: Option<&str>, wait: bool) -> Option<String> {
    let import = format!("import it with `podrun image import SOURCE {image}`");
    if policy == Some("Always") {
        return Some(format!(
            "image {image:?}: imagePullPolicy is Always (the default for a :latest or untagged image) and podrun cannot pull images yet: {import} and set imagePullPolicy: IfNotPresent or Never"
        ));
    }
    let found = if wait {
        store.resolve(image)
    } else {
        store.resolve_now(image)
    };
    match found {
        Ok(Some(_)) => None,
        Ok(None) if policy == Some("Never") => Some(format!(
            "ErrImageNeverPull: Container image {image:?} is not present with pull policy of Never: {import}"
        )),
        Ok(None) => Some(format!(
            "image {image:?} is not in podrun's image store and podrun cannot pull images yet: {import}"
        )),
        Err(e) => Some(format!("image {image:?}: {e}")),
    }
}

/// One line per container whose image cannot be used.
pub fn refusals(pod: &Pod) -> Vec<String> {
    let images: Vec<(&str, &str, Option<&str>)> = pod
        .containers
        .iter()
        .filter_map(|info| pod.container(info))
        .map(|c| {
            (
                c.name.as_str(),
                c.image.as_deref().unwrap_or_default(),
                c.image_pull_policy.as_deref(),
            )
        })
        .filter(|(_, image, _)| !Root::is_rootfs(image))
        .collect();
    if images.is_empty() {
        return Vec::new();
    }
    let store = match Store::open_default() {
        Ok(store) => store,
        Err(e) => return vec![format!("the image store: {e}")],
    };
    images
        .into_iter()
        .filter_map(|(name, image, policy)| {
            refusal(&store, image, policy, true).map(|r| format!("container {name:?}: {r}"))
        })
        .collect()
}

/// A new run's root from `image`: the previous run's root goes, the new
/// one is mounted over the image's layers.
pub fn image_run(
    l: &Launcher,
    name: &str,
    image: &str,
    restart_count: u32,
) -> Result<ImageRun, String> {
    let store = l.store()?;
    // Never waits on an import: a busy store is a create error, retried
    // with back-off.
    let found = store
        .resolve_now(image)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("image {image:?} is not in podrun's image store"))?;
    if let Some(previous) = restart_count.checked_sub(1) {
        overlay::remove(&l.dirs.image_root(name, previous)).map_err(|e| e.to_string())?;
    }
    let rootfs = overlay::mount_root(&found.layers, &l.dirs.image_root(name, restart_count))
        .map_err(|e| e.to_string())?;
    Ok(ImageRun {
        rootfs,
        defaults: defaults_of(&found.config),
    })
}
