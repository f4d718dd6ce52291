//! Manifest text → a validated pod: Kubernetes' Pod, Job and Deployment
//! objects, decoded strictly, defaulted and validated as the API server does.
//! Pure: the caller reads the file.

mod decode;
pub mod defaults;
pub mod field;
mod model;
pub mod quantity;
mod reading;
mod validate;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use decode::{Secret, Workload};
pub use field::{FieldError, FieldPath};
pub use model::{ContainerInfo, ContainerKind, Pod, ResourceList, Resources};
pub use quantity::Quantity;
pub use validate::pod_name as validate_pod_name;
pub use validate::volume_source_kinds;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Syntax(String),
    #[error("no Pod, Job or Deployment to run: {0}")]
    NoPod(String),
    #[error("a file of {kind}s holds v1 {kind}s only: found {found}")]
    NotObjects { kind: &'static str, found: String },
    #[error("more than one Pod, Job or Deployment ({0}) where one was expected")]
    ManyPods(String),
    #[error("{0}")]
    Unrunnable(String),
    #[error(
        "two pods named {name:?} (documents {first} and {second}): each pod of a file needs a name of its own"
    )]
    SameName {
        name: String,
        first: usize,
        second: usize,
    },
    /// Several objects of the file are invalid: each one's error.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ManifestError>),
    #[error(
        "document {document}: no kind {kind:?} is registered for version {api_version:?}: podrun accepts {kind} from {expected:?}"
    )]
    UnsupportedVersion {
        document: usize,
        kind: String,
        api_version: String,
        expected: &'static str,
    },
    #[error("{}", InvalidDisplay { kind, name, errors })]
    Invalid {
        kind: &'static str,
        name: String,
        errors: Vec<FieldError>,
    },
}

/// kubectl's shape: `The Pod "x" is invalid:` then one `* path: problem` line
/// per error.
struct InvalidDisplay<'a> {
    kind: &'a str,
    name: &'a str,
    errors: &'a [FieldError],
}

impl fmt::Display for InvalidDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "The {} {:?} is invalid:", self.kind, self.name)?;
        for e in self.errors {
            write!(f, "\n* {e}")?;
        }
        Ok(())
    }
}

pub use k8s_openapi::api::core::v1::ConfigMap;

/// The ConfigMaps and Secrets given with a pod (in its file, or by
/// `--configmap`/`--secret`): what its volumes, environment and
/// imagePullSecrets may name. A later object of the same namespace and
/// name replaces an earlier one, as a second `kubectl apply` would.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
}

fn same_object(meta: &ObjectMeta, namespace: &str, name: &str) -> bool {
    meta.name.as_deref() == Some(name)
        && meta.namespace.as_deref().unwrap_or("default") == namespace
}

impl Objects {
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .iter()
            .rev()
            .find(|c| same_object(&c.metadata, namespace, name))
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .rev()
            .find(|s| same_object(&s.metadata, namespace, name))
    }

    pub fn extend(&mut self, other: Objects) {
        self.config_maps.extend(other.config_maps);
        self.secrets.extend(other.secrets);
    }
}

/// One pod of a manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub workload: Workload,
    pub pod: Pod,
}

/// What a manifest file holds, as `kubectl apply -f` takes it: its pods
/// in order, the ConfigMaps and Secrets they may use, and the notes made
/// while reading it (objects ignored, keys given twice).
#[derive(Debug, Clone)]
pub struct Bundle {
    pub pods: Vec<Manifest>,
    pub objects: Objects,
    pub warnings: Vec<String>,
}

/// Parses, defaults and validates every Pod, Job and Deployment of a
/// file (several documents, or a `kind: List`), and reads its ConfigMaps
/// and Secrets; every field error of every object is reported at once.
pub fn parse_all(text: &str) -> Result<Bundle, ManifestError> {
    let file = decode::decode(text)?;
    objects(&file.objects)?;
    let mut pods: Vec<Manifest> = Vec::new();
    // Each pod's document, for the message of a name given twice.
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    for decoded in file.pods {
        let document = decoded.as_ref().map_or(0, |d| d.document);
        match decoded.and_then(pod) {
            Ok(manifest) => {
                if let Some(i) = pods.iter().position(|m| m.pod.name == manifest.pod.name) {
                    errors.push(ManifestError::SameName {
                        name: manifest.pod.name.clone(),
                        first: documents[i],
                        second: document,
                    });
                }
                pods.push(manifest);
                documents.push(document);
            }
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(Bundle {
            pods,
            objects: file.objects,
            warnings: file.warnings,
        }),
        1 => Err(errors.remove(0)),
        _ => Err(ManifestError::Several(errors)),
    }
}

/// Parses a file that holds exactly one pod.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let mut bundle = parse_all(text)?;
    if bundle.pods.len() > 1 {
        let found: Vec<String> = bundle
            .pods
            .iter()
            .map(|m| format!("{} {:?}", m.workload.kind(), m.pod.name))
            .collect();
        return Err(ManifestError::ManyPods(found.join(", ")));
    }
    Ok(bundle.pods.remove(0))
}

/// One decoded pod-bearing object → the validated pod.
fn pod(decoded: decode::Decoded) -> Result<Manifest, ManifestError> {
    let workload = decoded.object.workload();
    let mut errors = decoded.unknown_fields;
    let extracted = model::extract(decoded.object, &mut errors);
    let Some(mut extracted) = extracted else {
        return Err(ManifestError::Invalid {
            kind: workload.kind(),
            name: decoded.name,
            errors,
        });
    };
    defaults::apply(&mut extracted.pod.spec);
    validate::workload(&extracted, &mut errors);
    validate::pod(&extracted.pod, &extracted.paths, &mut errors);
    if !errors.is_empty() {
        return Err(ManifestError::Invalid {
            kind: workload.kind(),
            name: decoded.name,
            errors,
        });
    }
    Ok(Manifest {
        workload,
        pod: model::finish(extracted.pod),
    })
}

/// Parses a file of v1 ConfigMaps (`kind` "ConfigMap") or of v1 Secrets
/// (`kind` "Secret"), with the notes made while reading it.
pub fn parse_objects(
    text: &str,
    kind: &'static str,
) -> Result<(Objects, Vec<String>), ManifestError> {
    let (found, warnings) = decode::decode_objects(text, kind)?;
    objects(&found)?;
    Ok((found, warnings))
}

/// Validates ConfigMaps and Secrets as the API server does: every invalid
/// one is reported.
fn objects(objects: &Objects) -> Result<(), ManifestError> {
    let invalid = |kind, meta: &ObjectMeta, errors: Vec<FieldError>| ManifestError::Invalid {
        kind,
        name: meta.name.clone().unwrap_or_default(),
        errors,
    };
    let mut found = Vec::new();
    for map in &objects.config_maps {
        let mut errors = Vec::new();
        validate::config_map(map, &mut errors);
        if !errors.is_empty() {
            found.push(invalid("ConfigMap", &map.metadata, errors));
        }
    }
    for secret in &objects.secrets {
        let mut errors = Vec::new();
        validate::secret(secret, &mut errors);
        if !errors.is_empty() {
            found.push(invalid("Secret", &secret.metadata, errors));
        }
    }
    match found.len() {
        0 => Ok(()),
        1 => Err(found.remove(0)),
        _ => Err(ManifestError::Several(found)),
    }
}
