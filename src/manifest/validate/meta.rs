//! `metadata`: name, namespace, labels, annotations.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{invalid_each, names};
use crate::manifest::field::{FieldError, FieldPath};

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

pub fn object(meta: &ObjectMeta, path: &FieldPath, needs_name: bool, errors: &mut Vec<FieldError>) {
    let name_path = path.child("name");
    match meta.name.as_deref() {
        None | Some("") if needs_name => {
            let detail = if meta.generate_name.is_some() {
                "podrun needs a fixed name: generateName is not supported"
            } else {
                "name or generateName is required"
            };
            errors.push(FieldError::required_because(&name_path, detail));
        }
        None | Some("") => {}
        Some(name) => invalid_each(errors, &name_path, name, names::dns1123_subdomain(name)),
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        invalid_each(
            errors,
            &path.child("namespace"),
            ns,
            names::dns1123_label(ns),
        );
    }
    let labels_path = path.child("labels");
    for (key, value) in meta.labels.iter().flatten() {
        invalid_each(errors, &labels_path, key, names::qualified_name(key));
        invalid_each(errors, &labels_path, value, names::label_value(value));
    }
    let annotations_path = path.child("annotations");
    let mut total = 0;
    for (key, value) in meta.annotations.iter().flatten() {
        invalid_each(errors, &annotations_path, key, names::qualified_name(key));
        total += key.len() + value.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(FieldError::too_long(
            &annotations_path,
            TOTAL_ANNOTATION_SIZE_LIMIT,
        ));
    }
}
