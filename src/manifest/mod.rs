//! Manifest text → a validated pod: Kubernetes' Pod, Job and Deployment
//! objects, decoded strictly, defaulted and validated as the API server does.
//! Pure: the caller reads the file.

mod decode;
pub mod defaults;
pub mod field;
mod model;
pub mod quantity;
mod validate;

use std::fmt;

pub use decode::{Secret, Workload};
pub use field::{FieldError, FieldPath};
pub use model::{ContainerInfo, ContainerKind, Pod, ResourceList, Resources};
pub use quantity::Quantity;
pub use validate::pod_name as validate_pod_name;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Syntax(String),
    #[error("no Pod, Job or Deployment to run: {0}")]
    NoPod(String),
    #[error("a secrets file holds v1 Secrets only: found {0}")]
    NotSecrets(String),
    #[error("more than one Pod, Job or Deployment in one file ({0}): podrun runs one pod per file")]
    ManyPods(String),
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

/// The pod a manifest describes, and the notes made while reading it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub workload: Workload,
    pub pod: Pod,
    pub warnings: Vec<String>,
    /// The Secrets given in the same file.
    pub secrets: Vec<Secret>,
}

/// Parses, defaults and validates a manifest; every field error of the
/// manifest is reported at once.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let decoded = decode::decode(text)?;
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
    let pod = model::finish(extracted.pod);
    Ok(Manifest {
        workload,
        pod,
        warnings: decoded.warnings,
        secrets: decoded.secrets,
    })
}

/// Parses a file of v1 Secrets.
pub fn parse_secrets(text: &str) -> Result<Vec<Secret>, ManifestError> {
    decode::decode_secrets(text)
}
