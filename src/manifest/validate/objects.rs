//! ConfigMaps and Secrets, as the API server validates them: their
//! metadata, their keys, their size, and what a Secret's `type` requires.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::{invalid_each, meta, names};
use crate::manifest::field::{FieldError, FieldPath};

/// The most data one object may hold (the API server's 1 MiB).
const MAX_DATA_BYTES: usize = 1024 * 1024;

pub fn config_map(map: &ConfigMap, errors: &mut Vec<FieldError>) {
    meta::object(&map.metadata, &FieldPath::new("metadata"), true, errors);
    let mut total = 0;
    let data_path = FieldPath::new("data");
    for (key, value) in map.data.iter().flatten() {
        let path = data_path.key(key);
        invalid_each(errors, &path, key, names::config_map_key(key));
        if map
            .binary_data
            .as_ref()
            .is_some_and(|b| b.contains_key(key))
        {
            errors.push(FieldError::invalid(
                &path,
                key,
                "duplicate of key present in binaryData",
            ));
        }
        total += value.len();
    }
    let binary_path = FieldPath::new("binaryData");
    for (key, value) in map.binary_data.iter().flatten() {
        invalid_each(
            errors,
            &binary_path.key(key),
            key,
            names::config_map_key(key),
        );
        total += value.0.len();
    }
    if total > MAX_DATA_BYTES {
        errors.push(FieldError::too_long(&FieldPath::new(""), MAX_DATA_BYTES));
    }
}

pub fn secret(secret: &Secret, errors: &mut Vec<FieldError>) {
    meta::object(&secret.metadata, &FieldPath::new("metadata"), true, errors);
    let data_path = FieldPath::new("data");
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let mut total = 0;
    for (key, value) in data {
        invalid_each(errors, &data_path.key(key), key, names::config_map_key(key));
        total += value.0.len();
    }
    if total > MAX_DATA_BYTES {
        errors.push(FieldError::too_long(&data_path, MAX_DATA_BYTES));
    }
    let require = |errors: &mut Vec<FieldError>, key: &str| {
        if !data.contains_key(key) {
            errors.push(FieldError::required(&data_path.key(key)));
        }
    };
    match secret.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/service-account-token" => {
            let annotation = "kubernetes.io/service-account.name";
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(annotation))
                .is_some_and(|n| !n.is_empty());
            if !named {
                errors.push(FieldError::required(
                    &FieldPath::new("metadata")
                        .child("annotations")
                        .key(annotation),
                ));
            }
        }
        "kubernetes.io/dockercfg" => json_key(data, ".dockercfg", &data_path, errors),
        "kubernetes.io/dockerconfigjson" => json_key(data, ".dockerconfigjson", &data_path, errors),
        // Either may be empty, but one must be there.
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            require(errors, "username");
            require(errors, "password");
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|k| k.0.is_empty()) => {
            errors.push(FieldError::required(&data_path.key("ssh-privatekey")));
        }
        "kubernetes.io/tls" => {
            require(errors, "tls.crt");
            require(errors, "tls.key");
        }
        _ => {}
    }
}

/// A key that must be there and hold a JSON object.
fn json_key(
    data: &BTreeMap<String, ByteString>,
    key: &str,
    data_path: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    let path = data_path.key(key);
    match data.get(key) {
        None => errors.push(FieldError::required(&path)),
        Some(value) => {
            let parsed =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&value.0);
            if let Err(e) = parsed {
                errors.push(FieldError::invalid(
                    &path,
                    "<secret contents redacted>",
                    e.to_string(),
                ));
            }
        }
    }
}
