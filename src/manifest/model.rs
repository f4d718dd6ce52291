//! The pod podrun runs, taken out of whichever object carried it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::decode::Object;
use super::field::{FieldError, FieldPath};
use super::quantity::Quantity;

pub type ResourceList = BTreeMap<String, Quantity>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// A regular init container: runs to completion before the next entry.
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    /// An entry of `spec.containers`.
    App,
}

impl ContainerKind {
    /// An entry of `spec.initContainers`: a sidecar when it has
    /// `restartPolicy: Always`.
    pub fn of_init(c: &Container) -> ContainerKind {
        if c.restart_policy.as_deref() == Some("Always") {
            ContainerKind::Sidecar
        } else {
            ContainerKind::Init
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Init => "init",
            ContainerKind::Sidecar => "sidecar",
            ContainerKind::App => "app",
        }
    }
}

/// One container, in start order, with its resources parsed (requests
/// already defaulted from limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub kind: ContainerKind,
    /// Position in `spec.initContainers` or `spec.containers`.
    pub index: usize,
    pub resources: Resources,
}

/// A validated, defaulted pod.
#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The object's own metadata (a Job's or Deployment's for those kinds).
    pub metadata: ObjectMeta,
    /// The pod template's metadata, for Jobs and Deployments.
    pub template_metadata: Option<ObjectMeta>,
    pub spec: PodSpec,
    /// Init containers (regular and sidecar) in order, then app containers.
    pub containers: Vec<ContainerInfo>,
    pub overhead: ResourceList,
}

impl Pod {
    pub fn init_containers(&self) -> &[Container] {
        self.spec.init_containers.as_deref().unwrap_or_default()
    }

    pub fn container(&self, info: &ContainerInfo) -> Option<&Container> {
        match info.kind {
            ContainerKind::App => self.spec.containers.get(info.index),
            _ => self.init_containers().get(info.index),
        }
    }

    /// Container name → image, for init and app containers.
    pub fn images(&self) -> BTreeMap<String, String> {
        self.init_containers()
            .iter()
            .chain(&self.spec.containers)
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect()
    }

    /// Whether `new` differs from this pod in its containers' images at
    /// most: the only update of a running pod's spec podrun makes (as
    /// the API server allows for what podrun runs).
    pub fn differs_only_in_images(&self, new: &Pod) -> bool {
        fn without_images(spec: &PodSpec) -> PodSpec {
            let mut spec = spec.clone();
            for c in spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(&mut spec.containers)
            {
                c.image = None;
            }
            spec
        }
        without_images(&self.spec) == without_images(&new.spec)
    }
}

/// Where the pod's parts sit in the document, for error paths.
#[derive(Debug, Clone)]
pub struct Paths {
    pub spec: FieldPath,
    pub template_metadata: Option<FieldPath>,
}

/// The pod and, for Jobs and Deployments, the rest of the object's spec.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub pod: Pod,
    pub paths: Paths,
    pub owner: Owner,
}

#[derive(Debug, Clone)]
pub enum Owner {
    Pod,
    Job(Box<JobSpec>),
    Deployment(Box<DeploymentSpec>),
}

pub fn extract(object: Object, errors: &mut Vec<FieldError>) -> Option<Extracted> {
    let (metadata, template, spec, owner, spec_path) = match object {
        Object::Pod(pod) => {
            let pod = *pod;
            (
                pod.metadata,
                None,
                pod.spec,
                Owner::Pod,
                FieldPath::new("spec"),
            )
        }
        Object::Job(job) => {
            let job = *job;
            let Some(mut spec) = job.spec else {
                errors.push(FieldError::required(
                    &FieldPath::new("spec").child("template"),
                ));
                return None;
            };
            let template = std::mem::take(&mut spec.template);
            (
                job.metadata,
                Some(template.metadata.unwrap_or_default()),
                template.spec,
                Owner::Job(Box::new(spec)),
                FieldPath::new("spec").child("template").child("spec"),
            )
        }
        Object::Deployment(deployment) => {
            let deployment = *deployment;
            let mut spec = deployment.spec;
            let template = std::mem::take(&mut spec.template);
            (
                deployment.metadata,
                Some(template.metadata.unwrap_or_default()),
                template.spec,
                Owner::Deployment(Box::new(spec)),
                FieldPath::new("spec").child("template").child("spec"),
            )
        }
    };
    let Some(spec) = spec else {
        errors.push(FieldError::required(&spec_path.child("containers")));
        return None;
    };
    let pod_meta = template.as_ref().unwrap_or(&metadata);
    let pod = Pod {
        name: metadata.name.clone().unwrap_or_default(),
        namespace: metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        labels: pod_meta.labels.clone().unwrap_or_default(),
        annotations: pod_meta.annotations.clone().unwrap_or_default(),
        template_metadata: template.clone(),
        metadata,
        spec,
        containers: Vec::new(),
        overhead: ResourceList::new(),
    };
    let template_metadata = template
        .is_some()
        .then(|| FieldPath::new("spec").child("template").child("metadata"));
    Some(Extracted {
        pod,
        paths: Paths {
            spec: spec_path,
            template_metadata,
        },
        owner,
    })
}

/// Fills in the parsed container list once validation has passed.
pub fn finish(mut pod: Pod) -> Pod {
    let mut containers = Vec::new();
    for (index, c) in pod.init_containers().iter().enumerate() {
        containers.push(info(c, ContainerKind::of_init(c), index));
    }
    for (index, c) in pod.spec.containers.iter().enumerate() {
        containers.push(info(c, ContainerKind::App, index));
    }
    pod.overhead = parse_list(pod.spec.overhead.as_ref());
    pod.containers = containers;
    pod
}

fn info(c: &Container, kind: ContainerKind, index: usize) -> ContainerInfo {
    ContainerInfo {
        name: c.name.clone(),
        kind,
        index,
        resources: resources(c.resources.as_ref()),
    }
}

pub fn resources(r: Option<&ResourceRequirements>) -> Resources {
    Resources {
        requests: parse_list(r.and_then(|r| r.requests.as_ref())),
        limits: parse_list(r.and_then(|r| r.limits.as_ref())),
    }
}

/// Parses a validated resource list; entries that do not parse were already
/// reported by validation, so they are simply absent here.
fn parse_list(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(name, q)| Quantity::parse(&q.0).ok().map(|q| (name.clone(), q)))
        .collect()
}
