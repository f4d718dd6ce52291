//! What `up` and `apply` refuse of a pod's images before anything is made:
//! a `rootfs:` root that podrun cannot run. Any other image is the
//! kubelet's to get when its container starts (pulled as its
//! `imagePullPolicy` says; a failure is the container's ErrImagePull or
//! ErrImageNeverPull, not the pod's).

use crate::api::runtime::is_rootfs;
use crate::container::rootfs::Root;
use crate::pod::PodPlan;

/// Why a container cannot run `image`, or `None` when it can.
pub fn refusal(image: &str) -> Option<String> {
    if is_rootfs(image) {
        return Root::from_image(image).err().map(|e| e.to_string());
    }
    None
}

/// One line per container whose image cannot be used.
pub fn refusals(plan: &PodPlan) -> Vec<String> {
    plan.containers
        .iter()
        .filter_map(|c| refusal(&c.image).map(|r| format!("container {:?}: {r}", c.name)))
        .collect()
}
