//! Where an import comes from, in the containers-transports forms skopeo
//! users know: `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
//! `docker-archive:FILE[:REF]` (REF a name or `@N`, the N-th image).

use std::path::PathBuf;

use super::ImageError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCI image layout directory, and the `ref.name` to take from it.
    Oci {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// A tar of an OCI image layout.
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `docker save` / `podman save` output.
    DockerArchive {
        file: PathBuf,
        reference: Option<DockerRef>,
    },
}

/// Which image of a docker archive: one of its RepoTags, or by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerRef {
    Name(String),
    Index(usize),
}

impl Source {
    pub fn parse(spec: &str) -> Result<Source, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidSource {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (transport, rest) = spec.split_once(':').ok_or_else(|| {
            invalid("expected oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]")
        })?;
        // As in skopeo, the path ends at the first ':'; the rest is the reference.
        let (path, reference) = match rest.split_once(':') {
            Some((path, reference)) => (path, Some(reference.to_owned())),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(invalid("no path"));
        }
        if reference.as_deref() == Some("") {
            return Err(invalid("empty reference after ':'"));
        }
        let path = PathBuf::from(path);
        match transport {
            "oci" => Ok(Source::Oci {
                dir: path,
                reference,
            }),
            "oci-archive" => Ok(Source::OciArchive {
                file: path,
                reference,
            }),
            "docker-archive" => {
                let reference = match reference {
                    None => None,
                    Some(r) => match r.strip_prefix('@') {
                        Some(n) => {
                            Some(DockerRef::Index(n.parse().map_err(|_| {
                                invalid("@N must be an image's position, from 0")
                            })?))
                        }
                        None => Some(DockerRef::Name(r)),
                    },
                };
                Ok(Source::DockerArchive {
                    file: path,
                    reference,
                })
            }
            "docker" | "docker-daemon" | "containers-storage" | "dir" => Err(invalid(&format!(
                "the {transport}: transport is not supported here: copy the image to oci-archive: or docker-archive: with skopeo first"
            ))),
            other => Err(invalid(&format!(
                "unknown transport {other:?}: use oci:, oci-archive: or docker-archive:"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(
            Source::parse("oci:/tmp/x").unwrap(),
            Source::Oci {
                dir: "/tmp/x".into(),
                reference: None
            }
        );
        assert_eq!(
            Source::parse("oci:/tmp/x:busybox:1.36").unwrap(),
            Source::Oci {
                dir: "/tmp/x".into(),
                reference: Some("busybox:1.36".into())
            }
        );
        assert_eq!(
            Source::parse("oci-archive:img.tar:v1").unwrap(),
            Source::OciArchive {
                file: "img.tar".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            Source::parse("docker-archive:a.tar:@1").unwrap(),
            Source::DockerArchive {
                file: "a.tar".into(),
                reference: Some(DockerRef::Index(1))
            }
        );
        assert_eq!(
            Source::parse("docker-archive:a.tar:busybox").unwrap(),
            Source::DockerArchive {
                file: "a.tar".into(),
                reference: Some(DockerRef::Name("busybox".into()))
            }
        );
        for bad in [
            "busybox",
            "oci:",
            "oci:dir:",
            "docker://busybox",
            "tarball:x",
            "docker-archive:a:@x",
        ] {
            let e = Source::parse(bad).unwrap_err();
            assert!(matches!(e, ImageError::InvalidSource { .. }), "{bad}: {e}");
        }
    }
}
