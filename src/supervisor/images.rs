//! The kubelet's image policy: before a pod is created, each image it
//! names must be in the store, as its `imagePullPolicy` allows (podrun
//! cannot pull yet), or be a `rootfs:` root podrun runs.

use crate::api::runtime::is_rootfs;
use crate::container::rootfs::Root;
use crate::pod::{PodPlan, PullPolicy};
use crate::runtime::images::ImageService;

/// Why a container cannot run `image`, as the kubelet would say it (and
/// how to get it into the store), or `None` when it can. With `wait:
/// false` (in the supervisor's loop) a store busy with an import is a
/// refusal too.
pub fn refusal(
    images: &ImageService,
    image: &str,
    policy: PullPolicy,
    wait: bool,
) -> Option<String> {
    if is_rootfs(image) {
        return Root::from_image(image).err().map(|e| e.to_string());
    }
    let import = format!("import it with `podrun image import SOURCE {image}`");
    if policy == PullPolicy::Always {
        return Some(format!(
            "image {image:?}: imagePullPolicy is Always (the default for a :latest or untagged image) and podrun cannot pull images yet: {import} and set imagePullPolicy: IfNotPresent or Never"
        ));
    }
    match images.image_status(image, wait) {
        Ok(Some(_)) => None,
        Ok(None) if policy == PullPolicy::Never => Some(format!(
            "ErrImageNeverPull: Container image {image:?} is not present with pull policy of Never: {import}"
        )),
        Ok(None) => Some(format!(
            "image {image:?} is not in podrun's image store and podrun cannot pull images yet: {import}"
        )),
        Err(e) => Some(format!("image {image:?}: {e}")),
    }
}

/// One line per container whose image cannot be used.
pub fn refusals(plan: &PodPlan) -> Vec<String> {
    let images = ImageService::default();
    plan.containers
        .iter()
        .filter_map(|c| {
            refusal(&images, &c.image, c.pull_policy, true)
                .map(|r| format!("container {:?}: {r}", c.name))
        })
        .collect()
}
