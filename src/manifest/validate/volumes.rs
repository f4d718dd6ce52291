//! `spec.volumes`: names, exactly one source, and the sources podrun
//! mounts: hostPath, emptyDir, and the files of configMap, secret,
//! downwardAPI and projected volumes (`validateVolumeSource` and the
//! functions it calls).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume, VolumeProjection};

use super::container::{self, relative_path};
use super::{invalid_each, names, resources};
use crate::manifest::field::{FieldError, FieldPath};

/// Validates the volumes and returns the set of declared names.
pub fn validate(
    volumes: &[Volume],
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) -> BTreeSet<String> {
    let mut declared = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let v_path = path.index(i);
        sources(v, &v_path, errors);
        let name_path = v_path.child("name");
        if v.name.is_empty() {
            errors.push(FieldError::required(&name_path));
        } else {
            invalid_each(errors, &name_path, &v.name, names::dns1123_label(&v.name));
            if !declared.insert(v.name.clone()) {
                errors.push(FieldError::duplicate(&name_path, &v.name));
            }
        }
    }
    declared
}

/// The source fields a volume sets, in the API's order (one, when valid).
pub fn source_kinds(v: &Volume) -> Vec<&'static str> {
    let set = [
        ("hostPath", v.host_path.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("configMap", v.config_map.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("projected", v.projected.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    set.into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect()
}

fn sources(v: &Volume, path: &FieldPath, errors: &mut Vec<FieldError>) {
    let kinds = source_kinds(v);
    for field in kinds.iter().skip(1) {
        errors.push(FieldError::forbidden(
            &path.child(field),
            "may not specify more than 1 volume type",
        ));
    }
    if kinds.is_empty() {
        errors.push(FieldError::required_because(
            path,
            "must specify a volume type",
        ));
    }
    if let Some(e) = &v.empty_dir {
        let e_path = path.child("emptyDir");
        if let Some(medium) = e.medium.as_deref()
            && !(medium.is_empty() || medium == "Memory" || medium.starts_with("HugePages"))
        {
            // The API server lets any medium through and the kubelet then
            // fails to mount it; say so now.
            errors.push(FieldError::not_supported(
                &e_path.child("medium"),
                medium,
                &["", "Memory", "HugePages"],
            ));
        }
        if let Some(size) = &e.size_limit {
            let mut list = std::collections::BTreeMap::new();
            list.insert("sizeLimit".to_owned(), size.clone());
            let mut size_errors = Vec::new();
            resources::parse_list(Some(&list), &e_path, &mut size_errors);
            if !size_errors.is_empty() {
                errors.push(FieldError::forbidden(
                    &e_path.child("sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
    }
    if let Some(h) = &v.host_path {
        let h_path = path.child("hostPath");
        if h.path.is_empty() {
            errors.push(FieldError::required(&h_path.child("path")));
        } else if h.path.split('/').any(|part| part == "..") {
            errors.push(FieldError::invalid(
                &h_path.child("path"),
                &h.path,
                "must not contain '..'",
            ));
        }
        if let Some(t) = h.type_.as_deref()
            && !matches!(
                t,
                "" | "BlockDevice"
                    | "CharDevice"
                    | "Directory"
                    | "DirectoryOrCreate"
                    | "File"
                    | "FileOrCreate"
                    | "Socket"
            )
        {
            errors.push(FieldError::not_supported(
                &h_path.child("type"),
                t,
                &[
                    "",
                    "BlockDevice",
                    "CharDevice",
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                ],
            ));
        }
    }
    if let Some(s) = &v.secret {
        let s_path = path.child("secret");
        if s.secret_name.as_deref().is_none_or(str::is_empty) {
            errors.push(FieldError::required(&s_path.child("secretName")));
        }
        file_mode(s.default_mode, &s_path.child("defaultMode"), errors);
        key_to_paths(s.items.as_deref(), &s_path.child("items"), None, errors);
        alpha_user(s.default_user, &s_path.child("defaultUser"), errors);
    }
    if let Some(c) = &v.config_map {
        let c_path = path.child("configMap");
        if c.name.is_empty() {
            errors.push(FieldError::required(&c_path.child("name")));
        }
        file_mode(c.default_mode, &c_path.child("defaultMode"), errors);
        key_to_paths(c.items.as_deref(), &c_path.child("items"), None, errors);
        alpha_user(c.default_user, &c_path.child("defaultUser"), errors);
    }
    if let Some(d) = &v.downward_api {
        let d_path = path.child("downwardAPI");
        file_mode(d.default_mode, &d_path.child("defaultMode"), errors);
        for file in d.items.iter().flatten() {
            downward_api_file(file, &d_path, errors);
        }
        alpha_user(d.default_user, &d_path.child("defaultUser"), errors);
    }
    if let Some(p) = &v.projected {
        let p_path = path.child("projected");
        file_mode(p.default_mode, &p_path.child("defaultMode"), errors);
        projection_sources(p.sources.as_deref().unwrap_or_default(), &p_path, errors);
        alpha_user(p.default_user, &p_path.child("defaultUser"), errors);
    }
    if let Some(g) = &v.git_repo
        && let Some(dir) = g.directory.as_deref()
    {
        relative_path(dir, &path.child("gitRepo").child("directory"), errors);
    }
}

const FILE_MODE_MESSAGE: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// A file's permission bits: 0 to 0777.
fn file_mode(mode: Option<i32>, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if let Some(mode) = mode
        && !(0..=0o777).contains(&mode)
    {
        errors.push(FieldError::invalid(path, mode, FILE_MODE_MESSAGE));
    }
}

/// `user` and `defaultUser` belong to the alpha AtomicWriteVolumeUserFields
/// feature, which a cluster's API server drops unless enabled; podrun
/// does not set files' owners, and says so rather than ignore them.
fn alpha_user(user: Option<i64>, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if user.is_some() {
        errors.push(FieldError::forbidden(
            path,
            "file owners (the alpha AtomicWriteVolumeUserFields feature) are not supported by podrun",
        ));
    }
}

/// A path inside the volume (`ValidateLocalNonReservedPath`): relative,
/// no `..` element, and not starting with `..` (the atomic writer's own
/// names).
fn local_non_reserved_path(p: &str, path: &FieldPath, errors: &mut Vec<FieldError>) {
    relative_path(p, path, errors);
    if p.starts_with("..") && !p.starts_with("../") {
        errors.push(FieldError::invalid(path, p, "must not start with '..'"));
    }
}

/// The `items` of a configMap or secret (`validateKeyToPath`); with
/// `seen`, a projection's paths so far, each path is also one no other
/// source of the projection has (`name` in the error).
fn key_to_paths(
    items: Option<&[KeyToPath]>,
    path: &FieldPath,
    mut seen: Option<(&mut BTreeSet<String>, &FieldPath, &str)>,
    errors: &mut Vec<FieldError>,
) {
    for (i, item) in items.into_iter().flatten().enumerate() {
        let item_path = path.index(i);
        if item.key.is_empty() {
            errors.push(FieldError::required(&item_path.child("key")));
        }
        if item.path.is_empty() {
            errors.push(FieldError::required(&item_path.child("path")));
        }
        local_non_reserved_path(&item.path, &item_path.child("path"), errors);
        file_mode(item.mode, &item_path.child("mode"), errors);
        alpha_user(item.user, &item_path.child("user"), errors);
        if let Some((seen, projected, name)) = seen.as_mut()
            && !item.path.is_empty()
            && !seen.insert(item.path.clone())
        {
            errors.push(FieldError::invalid(
                projected,
                *name,
                "conflicting duplicate paths",
            ));
        }
    }
}

/// One file of a downwardAPI volume or projection
/// (`validateDownwardAPIVolumeFile`). As the API server's, its errors name
/// the volume's path, not the item's.
fn downward_api_file(file: &DownwardAPIVolumeFile, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if file.path.is_empty() {
        errors.push(FieldError::required(&path.child("path")));
    }
    local_non_reserved_path(&file.path, &path.child("path"), errors);
    match (&file.field_ref, &file.resource_field_ref) {
        (Some(r), resource) => {
            container::object_field_selector(
                r,
                container::VOLUME_FIELD_PATHS,
                &path.child("fieldRef"),
                errors,
            );
            if resource.is_some() {
                errors.push(FieldError::invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                ));
            }
        }
        (None, Some(r)) => {
            container::resource_field_selector(r, true, &path.child("resourceFieldRef"), errors)
        }
        (None, None) => errors.push(FieldError::required_because(
            path,
            "one of fieldRef and resourceFieldRef is required",
        )),
    }
    file_mode(file.mode, &path.child("mode"), errors);
    alpha_user(file.user, &path.child("user"), errors);
}

/// A projected volume's sources (`validateProjectionSources`): one kind
/// each, and no path two sources' items name.
fn projection_sources(
    sources: &[VolumeProjection],
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    let mut seen = BTreeSet::new();
    for (i, source) in sources.iter().enumerate() {
        let src_path = path.child("sources").index(i);
        let mut kinds = 0;
        if let Some(s) = &source.secret {
            kinds += 1;
            let s_path = src_path.child("secret");
            if s.name.is_empty() {
                errors.push(FieldError::required(&s_path.child("name")));
            }
            let seen = Some((&mut seen, path, s.name.as_str()));
            key_to_paths(s.items.as_deref(), &s_path.child("items"), seen, errors);
        }
        if let Some(c) = &source.config_map {
            kinds += 1;
            let c_path = src_path.child("configMap");
            if c.name.is_empty() {
                errors.push(FieldError::required(&c_path.child("name")));
            }
            let seen = Some((&mut seen, path, c.name.as_str()));
            key_to_paths(c.items.as_deref(), &c_path.child("items"), seen, errors);
        }
        if let Some(d) = &source.downward_api {
            kinds += 1;
            let d_path = src_path.child("downwardAPI");
            for file in d.items.iter().flatten() {
                downward_api_file(file, &d_path, errors);
                if !file.path.is_empty() && !seen.insert(file.path.clone()) {
                    errors.push(FieldError::invalid(
                        path,
                        &file.path,
                        "conflicting duplicate paths",
                    ));
                }
            }
        }
        if let Some(t) = &source.service_account_token {
            kinds += 1;
            let t_path = src_path.child("serviceAccountToken");
            let expiration = t
                .expiration_seconds
                .unwrap_or(crate::manifest::defaults::TOKEN_EXPIRATION_SECONDS);
            if expiration < 10 * 60 {
                errors.push(FieldError::invalid(
                    &t_path.child("expirationSeconds"),
                    expiration,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if expiration > 1 << 32 {
                errors.push(FieldError::invalid(
                    &t_path.child("expirationSeconds"),
                    expiration,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            // As the API server's, these name the projection's path.
            if t.path.is_empty() {
                errors.push(FieldError::required(&path.child("path")));
            } else {
                local_non_reserved_path(&t.path, &path.child("path"), errors);
            }
            alpha_user(t.user, &t_path.child("user"), errors);
        }
        if let Some(b) = &source.cluster_trust_bundle {
            kinds += 1;
            let b_path = src_path.child("clusterTrustBundle");
            if b.path.is_empty() {
                errors.push(FieldError::required(&b_path.child("path")));
            }
            local_non_reserved_path(&b.path, &b_path.child("path"), errors);
            if !b.path.is_empty() && !seen.insert(b.path.clone()) {
                errors.push(FieldError::invalid(
                    path,
                    &b.path,
                    "conflicting duplicate paths",
                ));
            }
        }
        // A podCertificate source is refused when the pod is compiled
        // (podrun has no API server to issue it); its fields are not
        // checked here.
        if source.pod_certificate.is_some() {
            kinds += 1;
        }
        if kinds > 1 {
            errors.push(FieldError::forbidden(
                &src_path,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::{ManifestError, parse};

    fn errors(volumes: &str, containers: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n{containers}\n  volumes:\n{volumes}\n"
        );
        match parse(&text) {
            Err(ManifestError::Invalid { errors, .. }) => {
                errors.iter().map(ToString::to_string).collect()
            }
            Ok(_) => Vec::new(),
            Err(other) => panic!("not a field error: {other}"),
        }
    }

    const APP: &str = "  - {name: a, image: busybox}";

    #[test]
    fn modes_are_between_0_and_0777() {
        assert_eq!(
            errors(
                "  - {name: c, configMap: {name: x, defaultMode: 01000, items: [{key: k, path: p, mode: -1}]}}\n  - {name: s, secret: {secretName: x, defaultMode: 0777}}\n  - {name: d, downwardAPI: {defaultMode: 512}}\n  - {name: j, projected: {defaultMode: 0400, sources: []}}",
                APP
            ),
            [
                "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[0].configMap.items[0].mode: Invalid value: -1: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[2].downwardAPI.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
            ]
        );
    }

    #[test]
    fn items_need_a_key_and_a_path_inside_the_volume() {
        assert_eq!(
            errors(
                "  - name: c\n    configMap:\n      name: x\n      items: [{key: '', path: ''}, {key: k, path: /abs}, {key: k, path: a/../b}, {key: k, path: ..data}, {key: k, path: ../x}, {key: k, path: a/..b}]",
                APP
            ),
            [
                "spec.volumes[0].configMap.items[0].key: Required value",
                "spec.volumes[0].configMap.items[0].path: Required value",
                "spec.volumes[0].configMap.items[1].path: Invalid value: \"/abs\": must be a relative path",
                "spec.volumes[0].configMap.items[2].path: Invalid value: \"a/../b\": must not contain '..'",
                "spec.volumes[0].configMap.items[3].path: Invalid value: \"..data\": must not start with '..'",
                "spec.volumes[0].configMap.items[4].path: Invalid value: \"../x\": must not contain '..'",
            ]
        );
    }

    #[test]
    fn downward_api_files_name_one_supported_field() {
        assert_eq!(
            errors(
                r#"  - name: d
    downwardAPI:
      items:
      - {path: a, fieldRef: {fieldPath: spec.nodeName}}
      - {path: b, fieldRef: {fieldPath: metadata.name}, resourceFieldRef: {containerName: a, resource: limits.cpu}}
      - {path: c}
      - {path: d, resourceFieldRef: {resource: limits.cpu}}
      - {path: e, resourceFieldRef: {containerName: a, resource: limits.nvidia.com/gpu}}
      - {path: f, fieldRef: {fieldPath: "metadata.labels['-bad']"}}
      - {path: g, fieldRef: {fieldPath: spec.bogus}}
      - {path: h, fieldRef: {fieldPath: metadata.labels, apiVersion: v2}}
      - {path: i, resourceFieldRef: {containerName: a, resource: limits.memory, divisor: 1024}}
      - {path: j, fieldRef: {fieldPath: "metadata.annotations['Example.com/Key']"}}
      - {path: k, resourceFieldRef: {containerName: a, resource: requests.hugepages-2Mi, divisor: 1Mi}}"#,
                APP
            ),
            [
                "spec.volumes[0].downwardAPI.fieldRef.fieldPath: Unsupported value: \"spec.nodeName\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\"",
                "spec.volumes[0].downwardAPI: Invalid value: \"resource\": fieldRef and resourceFieldRef can not be specified simultaneously",
                "spec.volumes[0].downwardAPI: Required value: one of fieldRef and resourceFieldRef is required",
                "spec.volumes[0].downwardAPI.resourceFieldRef.containerName: Required value",
                "spec.volumes[0].downwardAPI.resourceFieldRef.resource: Unsupported value: \"limits.nvidia.com/gpu\": supported values: \"limits.cpu\", \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \"requests.ephemeral-storage\", \"requests.memory\"",
                "spec.volumes[0].downwardAPI.fieldRef: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.volumes[0].downwardAPI.fieldRef.fieldPath: Invalid value: \"spec.bogus\": error converting fieldPath: field label not supported: spec.bogus",
                "spec.volumes[0].downwardAPI.fieldRef.fieldPath: Invalid value: \"metadata.labels\": error converting fieldPath: unsupported pod version: v2",
                "spec.volumes[0].downwardAPI.resourceFieldRef.divisor: Invalid value: \"limits.memory\": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
            ]
        );
    }

    #[test]
    fn projections_have_one_kind_per_source_and_distinct_paths() {
        assert_eq!(
            errors(
                r#"  - name: p
    projected:
      sources:
      - configMap: {name: c, items: [{key: k, path: same}]}
        secret: {name: s}
      - secret: {name: s, items: [{key: k, path: same}]}
      - downwardAPI: {items: [{path: same, fieldRef: {fieldPath: metadata.name}}]}
      - serviceAccountToken: {path: token, expirationSeconds: 60}
      - {}"#,
                APP
            ),
            [
                "spec.volumes[0].projected.sources[0]: Forbidden: may not specify more than 1 volume type per source",
                "spec.volumes[0].projected: Invalid value: \"s\": conflicting duplicate paths",
                "spec.volumes[0].projected: Invalid value: \"same\": conflicting duplicate paths",
                "spec.volumes[0].projected.sources[3].serviceAccountToken.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes",
            ]
        );
    }

    #[test]
    fn file_owners_are_refused() {
        assert_eq!(
            errors(
                "  - {name: c, configMap: {name: x, defaultUser: 1000, items: [{key: k, path: p, user: 7}]}}",
                APP
            ),
            [
                "spec.volumes[0].configMap.items[0].user: Forbidden: file owners (the alpha AtomicWriteVolumeUserFields feature) are not supported by podrun",
                "spec.volumes[0].configMap.defaultUser: Forbidden: file owners (the alpha AtomicWriteVolumeUserFields feature) are not supported by podrun",
            ]
        );
    }

    #[test]
    fn valid_sources_pass_and_are_defaulted() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: busybox}]\n  volumes:\n  - {name: c, configMap: {name: x, items: [{key: k, path: dir/file}]}}\n  - {name: d, downwardAPI: {items: [{path: l, fieldRef: {fieldPath: \"metadata.labels['app']\"}}, {path: m, resourceFieldRef: {containerName: a, resource: limits.memory, divisor: 1000000m}}]}}\n  - {name: p, projected: {sources: [{serviceAccountToken: {path: t}}, {downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}]}}\n";
        let pod = parse(text).unwrap_or_else(|e| panic!("{e}")).pod;
        let volumes = pod.spec.volumes.unwrap();
        assert_eq!(
            volumes[0].config_map.as_ref().unwrap().default_mode,
            Some(0o644)
        );
        let d = volumes[1].downward_api.as_ref().unwrap();
        assert_eq!(d.default_mode, Some(0o644));
        let items = d.items.as_ref().unwrap();
        assert_eq!(
            items[0].field_ref.as_ref().unwrap().api_version.as_deref(),
            Some("v1")
        );
        let p = volumes[2].projected.as_ref().unwrap();
        assert_eq!(p.default_mode, Some(0o644));
        let sources = p.sources.as_ref().unwrap();
        assert_eq!(
            sources[0]
                .service_account_token
                .as_ref()
                .unwrap()
                .expiration_seconds,
            Some(3600)
        );
        let file = &sources[1]
            .downward_api
            .as_ref()
            .unwrap()
            .items
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            file.field_ref.as_ref().unwrap().api_version.as_deref(),
            Some("v1")
        );
    }
}
