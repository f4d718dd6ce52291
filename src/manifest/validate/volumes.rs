//! `spec.volumes`: names, exactly one source, and the sources podrun mounts.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Volume;

use super::{container::relative_path, invalid_each, names, resources};
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

fn sources(v: &Volume, path: &FieldPath, errors: &mut Vec<FieldError>) {
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
    let mut count = 0;
    for (field, present) in set {
        if present {
            count += 1;
            if count > 1 {
                errors.push(FieldError::forbidden(
                    &path.child(field),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    if count == 0 {
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
    if let Some(s) = &v.secret
        && s.secret_name.as_deref().is_none_or(str::is_empty)
    {
        errors.push(FieldError::required(
            &path.child("secret").child("secretName"),
        ));
    }
    if let Some(c) = &v.config_map
        && c.name.is_empty()
    {
        errors.push(FieldError::required(&path.child("configMap").child("name")));
    }
    if let Some(g) = &v.git_repo
        && let Some(dir) = g.directory.as_deref()
    {
        relative_path(dir, &path.child("gitRepo").child("directory"), errors);
    }
}
