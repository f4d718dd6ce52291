//! Image names, normalised as Docker and containerd do: `busybox` is
//! `docker.io/library/busybox:latest`, a registry is the first component
//! only when it looks like a host (a `.` or `:`, or `localhost`).
//!
//! Written here rather than taken from `oci_spec::distribution`, whose
//! `Reference` follows distribution's older grammar: no IPv6 registry
//! (`[::1]:5000/x`), no refusal of a bare image id, and one error for
//! every malformed name; digests are checked by `oci_spec::image::Digest`.

use super::ImageError;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `quay.io`, ...
    pub domain: String,
    /// `library/busybox`, `org/team/app`, ...
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(name: &str) -> Result<Reference, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("empty name"));
        }
        let (rest, digest) = match name.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|r| invalid(&r))?;
                (rest, Some(digest.to_owned()))
            }
            None => (name, None),
        };
        // A tag follows the last ':' after the last '/'; an earlier ':' is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                check_tag(tag).map_err(|r| invalid(&r))?;
                (&rest[..last_slash + i], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        if repo.is_empty() {
            return Err(invalid("no repository name"));
        }
        let (domain, path) = match repo.split_once('/') {
            Some((first, rest)) if looks_like_domain(first) => (first.to_owned(), rest.to_owned()),
            _ => (DEFAULT_DOMAIN.to_owned(), repo.to_owned()),
        };
        let domain = if domain == LEGACY_DOMAIN {
            DEFAULT_DOMAIN.to_owned()
        } else {
            domain
        };
        check_domain(&domain).map_err(|r| invalid(&r))?;
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path
        };
        check_path(&path).map_err(|r| invalid(&r))?;
        if domain.len() + 1 + path.len() > MAX_NAME {
            return Err(invalid(&format!(
                "repository name must not be longer than {MAX_NAME} characters"
            )));
        }
        // Docker refuses what could be mistaken for an image id.
        if domain == DEFAULT_DOMAIN
            && path.len() == OFFICIAL_PREFIX.len() + 64
            && path[OFFICIAL_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        {
            return Err(invalid(
                "a 64-character hexadecimal string is an image id, not a name",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `docker.io/library/busybox` (without tag or digest).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form Docker prints: `busybox`, `org/app`, `quay.io/x/y`.
    pub fn familiar_repository(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.repository();
        }
        self.path
            .strip_prefix(OFFICIAL_PREFIX)
            .filter(|p| !p.contains('/'))
            .unwrap_or(&self.path)
            .to_owned()
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The full form of an image name: `busybox` → `docker.io/library/busybox:latest`;
/// a digest (`name@sha256:...`) is kept and gets no `:latest`.
pub fn normalize(name: &str) -> Result<String, ImageError> {
    Reference::parse(name).map(|r| r.to_string())
}

fn looks_like_domain(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?}: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ))
    }
}

/// `algorithm:encoded`, as the OCI image spec defines a digest (a
/// registered algorithm's encoding is lower-case hex of its length).
fn check_digest(digest: &str) -> Result<(), String> {
    digest
        .parse::<oci_spec::image::Digest>()
        .map(drop)
        .map_err(|e| format!("invalid digest {digest:?}: {e}"))
}

fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || format!("invalid registry {domain:?}");
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // An IPv6 address in brackets, as in URLs.
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(bad());
        }
        match after {
            "" => return Ok(()),
            p => (None, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "invalid registry {domain:?}: the port must be a number"
        ));
    }
    if let Some(host) = host {
        let component_ok = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        };
        if !host.split('.').all(component_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

/// Path components: lower-case letters and digits, separated inside a
/// component by `.`, `_`, `__` or a run of `-`.
fn check_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("repository name must be lowercase".to_owned());
        }
        if !component_ok(component) {
            return Err(format!(
                "invalid repository component {component:?}: lower-case letters and digits, separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

    #[test]
    fn normalises_as_docker_does() {
        let table = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox:1.36", "docker.io/library/busybox:1.36"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            (
                "docker.io/library/busybox:1.36",
                "docker.io/library/busybox:1.36",
            ),
            ("user/app", "docker.io/user/app:latest"),
            ("quay.io/org/app:v1", "quay.io/org/app:v1"),
            ("quay.io/app", "quay.io/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:1", "localhost:5000/app:1"),
            (
                "registry.local:5000/a/b/c",
                "registry.local:5000/a/b/c:latest",
            ),
            ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
            ("[::1]:5000/x:y", "[::1]:5000/x:y"),
            ("a-b.c-d/e", "a-b.c-d/e:latest"),
            ("my--app_x", "docker.io/library/my--app_x:latest"),
        ];
        for (input, want) in table {
            assert_eq!(normalize(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn keeps_digests() {
        let d = format!("sha256:{HEX}");
        assert_eq!(
            normalize(&format!("busybox@{d}")).unwrap(),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            normalize(&format!("busybox:1.36@{d}")).unwrap(),
            format!("docker.io/library/busybox:1.36@{d}")
        );
        let r = Reference::parse(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.domain, "localhost:5000");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
    }

    #[test]
    fn refuses_invalid_names() {
        let bad = [
            "",
            "Busybox",
            "docker.io/Library/busybox",
            "busybox:",
            "busybox:.tag",
            "busybox:-tag",
            "busybox::1",
            "bad name",
            "busy/box/",
            "/busybox",
            "a..b",
            "a._b",
            "-app",
            "app-",
            "busybox@sha256:abc",
            "busybox@sha256:ABCDEF",
            "busybox@",
            "host:port/x",
            "registry.local:/x",
            "bad_host.io/x",
            "[::1/x",
        ];
        for input in bad {
            let err = normalize(input);
            assert!(err.is_err(), "{input:?} was accepted as {err:?}");
        }
        let long = format!("x/{}", "a".repeat(300));
        assert!(normalize(&long).is_err());
        let tag = format!("x:{}", "t".repeat(129));
        assert!(normalize(&tag).is_err());
        assert!(normalize(HEX).is_err());
        let msg = normalize("Busybox").unwrap_err().to_string();
        assert!(
            msg.contains("\"Busybox\"") && msg.contains("lowercase"),
            "{msg}"
        );
    }

    #[test]
    fn familiar_forms() {
        let r = Reference::parse("busybox:1.36").unwrap();
        assert_eq!(r.familiar_repository(), "busybox");
        assert_eq!(r.repository(), "docker.io/library/busybox");
        let r = Reference::parse("user/app").unwrap();
        assert_eq!(r.familiar_repository(), "user/app");
        let r = Reference::parse("quay.io/a/b").unwrap();
        assert_eq!(r.familiar_repository(), "quay.io/a/b");
    }
}
