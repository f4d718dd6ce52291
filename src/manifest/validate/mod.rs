//! The API server's validation of what podrun accepts, every error with its
//! field path; errors accumulate so that a manifest's problems are all
//! reported at once.

mod container;
mod meta;
mod names;
mod objects;

/// The problems with `name` as a pod's name (a DNS-1123 subdomain), none
/// when it is one.
pub fn pod_name(name: &str) -> Vec<String> {
    names::dns1123_subdomain(name)
}
mod pod;
mod resources;
mod volumes;
mod workload;

use super::field::{FieldError, FieldPath};
use super::model::{Extracted, Paths, Pod};

pub use objects::{config_map, secret};
pub use volumes::source_kinds as volume_source_kinds;

pub fn workload(extracted: &Extracted, errors: &mut Vec<FieldError>) {
    workload::validate(extracted, errors);
}

pub fn pod(pod: &Pod, paths: &Paths, errors: &mut Vec<FieldError>) {
    meta::object(&pod.metadata, &FieldPath::new("metadata"), true, errors);
    if let (Some(template), Some(path)) = (&pod.template_metadata, &paths.template_metadata) {
        meta::object(template, path, false, errors);
    }
    pod::validate(pod, &paths.spec, errors);
}

/// Pushes one Invalid per message.
fn invalid_each(
    errors: &mut Vec<FieldError>,
    path: &FieldPath,
    value: &str,
    messages: Vec<String>,
) {
    errors.extend(
        messages
            .into_iter()
            .map(|m| FieldError::invalid(path, value, m)),
    );
}

fn non_negative(errors: &mut Vec<FieldError>, path: &FieldPath, value: Option<i64>) {
    if let Some(v) = value
        && v < 0
    {
        errors.push(FieldError::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

#[cfg(test)]
mod tests;
