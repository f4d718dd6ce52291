//! A registry's TLS material, as containers-certs.d(5) lays it out: in
//! DIR/HOST[:PORT]/, each `*.crt` holds CA certificates to trust besides
//! the system's, and `NAME.cert` with `NAME.key` is a client certificate
//! and its key. Of the directories, the first that has one for the host
//! is used alone, as containers/image does.

use std::path::{Path, PathBuf};
use std::{env, fs, io};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const DIRS: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];
/// Debian's bundle, then Fedora's.
const BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];
const CERTS_DIR: &str = "/etc/ssl/certs";

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("invalid registry {0:?}: expected HOST[:PORT]")]
    Host(String),
}

#[derive(Debug, Default)]
pub struct HostCerts {
    /// CA certificates to trust for this host, besides the system's.
    pub roots: Vec<CertificateDer<'static>>,
    /// A client certificate chain and its key: the first pair by file
    /// name when there are several.
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// The files read, for messages.
    pub from: Vec<PathBuf>,
}

/// `$PODRUN_CERTS_D` (when set), /etc/containers/certs.d, /etc/docker/certs.d.
pub fn default_dirs() -> Vec<PathBuf> {
    let own = env::var_os("PODRUN_CERTS_D").filter(|v| !v.is_empty());
    (own.map(PathBuf::from).into_iter())
        .chain(DIRS.iter().map(PathBuf::from))
        .collect()
}

/// What the first of `dirs` that has a `host_port` directory holds for it
/// (nothing when none has one). A directory that cannot be read is passed
/// over, as containers/image passes it.
pub fn for_host(host_port: &str, dirs: &[PathBuf]) -> Result<HostCerts, CertsError> {
    if host_port.is_empty() || host_port.starts_with('.') || host_port.contains(['/', '\0']) {
        return Err(CertsError::Host(host_port.to_owned()));
    }
    for dir in dirs {
        let dir = dir.join(host_port);
        match fs::read_dir(&dir) {
            Ok(entries) => return read_host_dir(&dir, entries),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) => {}
            Err(source) => return Err(CertsError::Io { path: dir, source }),
        }
    }
    Ok(HostCerts::default())
}

fn read_host_dir(dir: &Path, entries: fs::ReadDir) -> Result<HostCerts, CertsError> {
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CertsError::Io {
            path: dir.to_owned(),
            source,
        })?;
        // Non-UTF-8 names end in none of the extensions read.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    let has = |name: &str| names.iter().any(|n| n == name);
    let mut certs = HostCerts::default();
    for name in &names {
        let path = dir.join(name);
        if name.ends_with(".crt") {
            certs.roots.extend(read_certs(&path)?);
            certs.from.push(path);
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !has(&key) {
                let reason = format!(
                    "no key {key} beside this client certificate (a CA certificate takes the extension .crt)"
                );
                return Err(invalid(&path, reason));
            }
            if certs.identity.is_none() {
                let chain = read_certs(&path)?;
                let key_path = dir.join(&key);
                let key = PrivateKeyDer::from_pem_file(&key_path)
                    .map_err(|e| pem_error(&key_path, e, "no PEM private key in it"))?;
                certs.identity = Some((chain, key));
                certs.from.extend([path, key_path]);
            }
        } else if let Some(stem) = name.strip_suffix(".key")
            && !has(&format!("{stem}.cert"))
        {
            let reason = format!("no client certificate {stem}.cert for this key");
            return Err(invalid(&path, reason));
        }
    }
    Ok(certs)
}

/// The system's CA certificates: `$SSL_CERT_FILE`, else the distribution's
/// bundle, else every *.pem in /etc/ssl/certs.
pub fn system_roots() -> Result<Vec<CertificateDer<'static>>, CertsError> {
    let file = env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty());
    let bundles = BUNDLES.map(Path::new);
    roots_from(
        file.as_deref().map(Path::new),
        &bundles,
        Path::new(CERTS_DIR),
    )
}

fn roots_from(
    file: Option<&Path>,
    bundles: &[&Path],
    dir: &Path,
) -> Result<Vec<CertificateDer<'static>>, CertsError> {
    let missing = |e: &CertsError| matches!(e, CertsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound);
    if let Some(file) = file {
        return read_certs(file);
    }
    for bundle in bundles {
        match read_certs(bundle) {
            Err(e) if missing(&e) => {}
            found => return found,
        }
    }
    let entries = fs::read_dir(dir).map_err(|source| CertsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = (entries.filter_map(Result::ok))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    paths.sort();
    let mut roots = Vec::new();
    for path in &paths {
        match read_certs(path) {
            Ok(certs) => roots.extend(certs),
            // A dangling link: a certificate removed, the links not redone.
            Err(e) if missing(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if roots.is_empty() {
        return Err(invalid(dir, "no CA certificates (*.pem) in it".to_owned()));
    }
    Ok(roots)
}

/// Every certificate of a PEM file; none is an error.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertsError> {
    let none = "no PEM certificate in it";
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e, none))?;
    if certs.is_empty() {
        return Err(invalid(path, none.to_owned()));
    }
    Ok(certs)
}

fn pem_error(path: &Path, e: pem::Error, none: &str) -> CertsError {
    let reason = match e {
        pem::Error::Io(source) => {
            let path = path.to_owned();
            return CertsError::Io { path, source };
        }
        pem::Error::NoItemsFound => none.to_owned(),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a malformed PEM BEGIN line".to_owned(),
        pem::Error::Base64Decode(_) => "bad base64 in a PEM section".to_owned(),
        e => e.to_string(),
    };
    invalid(path, reason)
}

fn invalid(path: &Path, reason: String) -> CertsError {
    CertsError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate's PEM and its key's (rcgen is built
    /// without its PEM feature).
    fn pair() -> (String, String) {
        use base64::Engine;
        let made = rcgen::generate_simple_self_signed(vec!["reg.local".to_owned()]).unwrap();
        let pem = |label: &str, der: &[u8]| {
            let text = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = (0..text.len())
                .step_by(64)
                .map(|i| &text[i..(i + 64).min(text.len())])
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                lines.join("\n")
            )
        };
        let key = made.signing_key.serialize_der();
        (
            pem("CERTIFICATE", made.cert.der()),
            pem("PRIVATE KEY", &key),
        )
    }

    #[test]
    fn first_directory_with_the_host_wins() {
        let top = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["own", "containers", "docker"]
            .map(|d| top.path().join(d))
            .into();
        let host = |i: usize, h: &str| {
            let d = dirs[i].join(h);
            fs::create_dir_all(&d).unwrap();
            d
        };
        let ((ca1, _), (ca2, _), (client, key)) = (pair(), pair(), pair());
        let reg = host(1, "reg.local:5000");
        fs::write(reg.join("ca.crt"), format!("{ca1}{ca2}")).unwrap();
        fs::write(reg.join("client.cert"), &client).unwrap();
        fs::write(reg.join("client.key"), &key).unwrap();
        fs::write(reg.join("notes.txt"), "ignored").unwrap();
        fs::write(host(2, "reg.local:5000").join("other.crt"), "not read").unwrap();
        let got = for_host("reg.local:5000", &dirs).unwrap();
        assert_eq!(got.roots.len(), 2);
        assert_eq!(got.identity.as_ref().map(|(chain, _)| chain.len()), Some(1));
        let names: Vec<_> = got
            .from
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["ca.crt", "client.cert", "client.key"]);
        // Another port is another directory; an empty one still wins.
        assert!(for_host("reg.local", &dirs).unwrap().from.is_empty());
        host(0, "reg.local:5000");
        assert!(for_host("reg.local:5000", &dirs).unwrap().from.is_empty());
        assert!(matches!(for_host("../x", &dirs), Err(CertsError::Host(_))));
    }

    #[test]
    fn half_pairs_and_bad_files_are_named() {
        let top = tempfile::tempdir().unwrap();
        let dirs = vec![top.path().to_owned()];
        let d = top.path().join("r.io");
        fs::create_dir(&d).unwrap();
        let (cert, key) = pair();
        fs::write(d.join("client.cert"), &cert).unwrap();
        let e = for_host("r.io", &dirs).unwrap_err().to_string();
        assert!(e.contains("r.io/client.cert: no key client.key"), "{e}");
        fs::rename(d.join("client.cert"), d.join("ca.crt")).unwrap();
        fs::write(d.join("lone.key"), &key).unwrap();
        let e = for_host("r.io", &dirs).unwrap_err().to_string();
        assert!(
            e.contains("r.io/lone.key: no client certificate lone.cert"),
            "{e}"
        );
        fs::remove_file(d.join("lone.key")).unwrap();
        fs::write(d.join("bad.crt"), "no certificate here").unwrap();
        let e = for_host("r.io", &dirs).unwrap_err().to_string();
        assert!(e.contains("r.io/bad.crt: no PEM certificate"), "{e}");
    }

    #[test]
    fn system_roots_from_a_file_a_bundle_or_a_directory() {
        let top = tempfile::tempdir().unwrap();
        let p = |name: &str| top.path().join(name);
        let ((a, _), (b, _)) = (pair(), pair());
        fs::write(p("bundle.crt"), format!("{a}{b}")).unwrap();
        fs::create_dir(p("certs")).unwrap();
        fs::write(p("certs/a.pem"), &a).unwrap();
        fs::write(p("certs/README"), "not a certificate").unwrap();
        std::os::unix::fs::symlink(p("gone.crt"), p("certs/gone.pem")).unwrap();
        let (bundle, absent) = (p("bundle.crt"), p("absent.crt"));
        let roots = |file: Option<&Path>, bundles: &[&Path]| roots_from(file, bundles, &p("certs"));
        assert_eq!(roots(None, &[&absent, &bundle]).unwrap().len(), 2);
        assert_eq!(roots(Some(&p("certs/a.pem")), &[&bundle]).unwrap().len(), 1);
        assert_eq!(roots(None, &[&absent]).unwrap().len(), 1);
        assert!(roots(Some(&absent), &[&bundle]).is_err());
        fs::remove_file(p("certs/a.pem")).unwrap();
        let e = roots(None, &[&absent]).unwrap_err().to_string();
        assert!(
            e.ends_with("certs: no CA certificates (*.pem) in it"),
            "{e}"
        );
    }
}
