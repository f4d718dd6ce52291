//! Registry credentials where users keep them: containers-auth.json(5)
//! and Docker's config.json (`auths`), the legacy .dockercfg, and pull
//! secrets of those two types; matched to an image as the kubelet's
//! credential keyring matches them. `login` and `logout` edit an auth file.

use std::cmp::Reverse;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::{Map, Value};

/// Never says a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{origin}: {reason}")]
    Invalid { origin: Origin, reason: String },
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Docker's `identitytoken`: an OAuth2 refresh token for the
    /// registry's token server.
    pub identity_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |set: bool| if set { "<hidden>" } else { "" };
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &hidden(!self.password.is_empty()))
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

/// Where credentials came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    PullSecret(String),
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::PullSecret(name) => write!(f, "pull secret {name:?}"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub credentials: Credentials,
    pub origin: Origin,
}

/// A registry key or an image, reduced to what matching compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    /// Lower case; a key's labels may hold `*`.
    host: String,
    port: Option<String>,
    /// Without leading or trailing '/'.
    path: String,
}

impl Key {
    /// `[https://|http://]host[:port][/v1/|/v2/][path][/]`, as the kubelet
    /// reads a key; Docker Hub's other names are docker.io.
    fn parse(raw: &str) -> Option<Key> {
        let s = raw.trim();
        let s = (s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://")))
        .unwrap_or(s);
        let (host_port, path) = s.split_once('/').unwrap_or((s, ""));
        // The API's version names the registry, not a repository.
        let path = (path
            .strip_prefix("v1/")
            .or_else(|| path.strip_prefix("v2/")))
        .unwrap_or(path);
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
            _ => (host_port, None),
        };
        if host.is_empty() {
            return None;
        }
        let host = host.to_ascii_lowercase();
        let host = match (host.as_str(), port) {
            ("index.docker.io" | "registry-1.docker.io", None) => "docker.io".to_owned(),
            _ => host,
        };
        Some(Key {
            host,
            port: port.map(str::to_owned),
            path: path.trim_matches('/').to_owned(),
        })
    }

    /// The length of `host[:port][/path]`: longer is more specific.
    fn specificity(&self) -> usize {
        let port = self.port.as_ref().map_or(0, |p| p.len() + 1);
        let path = self.path.len() + usize::from(!self.path.is_empty());
        self.host.len() + port + path
    }

    /// The same port (or none on both), the same number of host labels
    /// each matching its glob, and the key's path a prefix of the image's
    /// at a component boundary.
    fn matches(&self, image: &Key) -> bool {
        let (globs, labels) = (self.host.split('.'), image.host.split('.'));
        self.port == image.port
            && globs.clone().count() == labels.clone().count()
            && globs
                .zip(labels)
                .all(|(g, l)| glob(g.as_bytes(), l.as_bytes()))
            && (self.path.is_empty()
                || (image.path.strip_prefix(&self.path))
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }
}

/// `*` matches any run of characters within a label.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    candidate: Candidate,
}

/// Credentials by registry key, in the order they were added.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    entries: Vec<Entry>,
}

impl Keyring {
    /// config.json or containers-auth.json: `{"auths": {KEY: {"auth":
    /// base64(user:password)} or {"username", "password"}}}`, other keys
    /// (`credHelpers`, `credsStore`) ignored.
    pub fn from_docker_config_json(bytes: &[u8], origin: Origin) -> Result<Keyring, AuthError> {
        match parse_json(bytes, &origin)?.get("auths") {
            None | Some(Value::Null) => Ok(Keyring::default()),
            Some(auths) => Self::from_auths(auths, origin),
        }
    }

    /// The legacy .dockercfg: `{KEY: {"auth": ...}}`.
    pub fn from_dockercfg(bytes: &[u8], origin: Origin) -> Result<Keyring, AuthError> {
        Self::from_auths(&parse_json(bytes, &origin)?, origin)
    }

    fn from_auths(auths: &Value, origin: Origin) -> Result<Keyring, AuthError> {
        let Some(auths) = auths.as_object() else {
            return Err(invalid(&origin, "the credentials are not a JSON object"));
        };
        let mut entries = Vec::new();
        for (raw, entry) in auths {
            let credentials = credentials(entry)
                .map_err(|why| invalid(&origin, &format!("credentials for {raw:?}: {why}")))?;
            // An entry without credentials is a credential helper's.
            if let (Some(key), Some(credentials)) = (Key::parse(raw), credentials) {
                let origin = origin.clone();
                entries.push(Entry {
                    key,
                    candidate: Candidate {
                        credentials,
                        origin,
                    },
                });
            }
        }
        Ok(Keyring { entries })
    }

    /// Appends `other`'s credentials: among equally specific matches, they
    /// come after this keyring's.
    pub fn add(&mut self, other: Keyring) {
        self.entries.extend(other.entries);
    }

    /// As containers/image: `$REGISTRY_AUTH_FILE` alone when set; else this
    /// user's /run/containers/UID/auth.json, $HOME/.config/containers/auth.json
    /// and Docker's config.json (in `$DOCKER_CONFIG`, else $HOME/.docker).
    pub fn default_files() -> Vec<PathBuf> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        default_files_from(
            var("REGISTRY_AUTH_FILE"),
            nix::unistd::getuid().as_raw(),
            var("DOCKER_CONFIG"),
            var("HOME"),
        )
    }

    /// Each file's `auths`, in order; a missing file is skipped.
    pub fn load_files(paths: &[PathBuf]) -> Result<Keyring, AuthError> {
        let mut keyring = Keyring::default();
        for path in paths {
            match fs::read(path) {
                Ok(bytes) => keyring.add(Self::from_docker_config_json(
                    &bytes,
                    Origin::File(path.clone()),
                )?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    let path = path.clone();
                    return Err(AuthError::Io { path, source });
                }
            }
        }
        Ok(keyring)
    }

    /// Every credential matching this image (normalised, without tag or
    /// digest: `docker.io/library/alpine`, `127.0.0.1:5000/x`), the most
    /// specific key first, then in the order they were added; the caller
    /// tries them in turn, as the kubelet does.
    pub fn lookup(&self, image_repository: &str) -> Vec<Candidate> {
        let Some(image) = Key::parse(image_repository) else {
            return Vec::new();
        };
        let mut found: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.key.matches(&image))
            .collect();
        found.sort_by_key(|e| Reverse(e.key.specificity()));
        found.into_iter().map(|e| e.candidate.clone()).collect()
    }
}

fn default_files_from(
    auth_file: Option<PathBuf>,
    uid: u32,
    docker_config: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Vec<PathBuf> {
    if let Some(file) = auth_file {
        return vec![file];
    }
    let mut files = vec![PathBuf::from(format!("/run/containers/{uid}/auth.json"))];
    if let Some(home) = &home {
        files.push(home.join(".config/containers/auth.json"));
    }
    match (docker_config, home) {
        (Some(dir), _) => files.push(dir.join("config.json")),
        (None, Some(home)) => files.push(home.join(".docker/config.json")),
        (None, None) => {}
    }
    files
}

fn invalid(origin: &Origin, reason: &str) -> AuthError {
    AuthError::Invalid {
        origin: origin.clone(),
        reason: reason.to_owned(),
    }
}

/// serde_json's syntax errors say where, never what: no secret leaks.
fn parse_json(bytes: &[u8], origin: &Origin) -> Result<Value, AuthError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(origin, &e.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(invalid(origin, "not a JSON object"))
    }
}

/// One entry's credentials, or none when it has none; errors name fields,
/// never their values.
fn credentials(entry: &Value) -> Result<Option<Credentials>, String> {
    let Some(fields) = entry.as_object() else {
        return Err("not a JSON object".to_owned());
    };
    let field = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{name:?} is not a string")),
    };
    let (mut username, mut password) = (field("username")?, field("password")?);
    let identity_token = Some(field("identitytoken")?).filter(|t| !t.is_empty());
    let auth = field("auth")?;
    if !auth.is_empty() {
        let bad = || "\"auth\" is not the base64 of user:password".to_owned();
        // Padding optional: some tools write it, some do not.
        let decoded = (STANDARD.decode(auth.trim()))
            .or_else(|_| STANDARD_NO_PAD.decode(auth.trim()))
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
        (username, password) = (user.to_owned(), pass.to_owned());
    }
    if username.is_empty() && password.is_empty() && identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username,
        password,
        identity_token,
    }))
}

/// Adds or replaces `auths[registry]` in a containers-auth.json, keeping
/// its other entries and keys; written whole beside it and renamed in,
/// mode 0600, its directory made 0700 when missing.
pub fn login(path: &Path, registry: &str, username: &str, password: &str) -> Result<(), AuthError> {
    let origin = Origin::File(path.to_owned());
    if registry.is_empty() {
        return Err(invalid(&origin, "no registry to log in to"));
    }
    if username.contains(':') {
        return Err(invalid(&origin, "a user name must not contain ':'"));
    }
    let mut doc = read_doc(path)?.unwrap_or_default();
    let auths = doc
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(auths) = auths.as_object_mut() else {
        return Err(invalid(&origin, "\"auths\" is not a JSON object"));
    };
    let auth = STANDARD.encode(format!("{username}:{password}"));
    let mut entry = Map::new();
    entry.insert("auth".to_owned(), Value::String(auth));
    auths.insert(registry.to_owned(), Value::Object(entry));
    write_doc(path, &doc)
}

/// Removes `auths[registry]`; false when there was none.
pub fn logout(path: &Path, registry: &str) -> Result<bool, AuthError> {
    let Some(mut doc) = read_doc(path)? else {
        return Ok(false);
    };
    let removed = doc
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|auths| auths.remove(registry))
        .is_some();
    if removed {
        write_doc(path, &doc)?;
    }
    Ok(removed)
}

/// Where `login` writes: `$REGISTRY_AUTH_FILE`, else
/// /run/containers/UID/auth.json.
pub fn default_login_file() -> PathBuf {
    match std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        Some(file) => PathBuf::from(file),
        None => default_files_from(None, nix::unistd::getuid().as_raw(), None, None)[0].clone(),
    }
}

fn read_doc(path: &Path) -> Result<Option<Map<String, Value>>, AuthError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            let path = path.to_owned();
            return Err(AuthError::Io { path, source });
        }
    };
    match parse_json(&bytes, &Origin::File(path.to_owned()))? {
        Value::Object(map) => Ok(Some(map)),
        _ => Ok(None), // parse_json returns objects only
    }
}

fn write_doc(path: &Path, doc: &Map<String, Value>) -> Result<(), AuthError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| AuthError::Io { path, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let origin = Origin::File(path.to_owned());
    let mut text = serde_json::to_vec_pretty(doc).map_err(|e| invalid(&origin, &e.to_string()))?;
    text.push(b'\n');
    let written = (|| {
        // A crashed login's leftover would make create_new fail.
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode above is filtered by the umask; this one is not.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(&text)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `{"auths": {KEY: {"auth": base64(USER:PASSWORD)}}}`.
    fn auths(entries: &[(&str, &str)]) -> Value {
        let entry = |(key, user_pass): &(&str, &str)| {
            (key.to_string(), json!({"auth": STANDARD.encode(user_pass)}))
        };
        json!({"auths": entries.iter().map(entry).collect::<Map<_, _>>()})
    }

    fn keyring(doc: &Value, origin: &str) -> Keyring {
        let origin = Origin::File(origin.into());
        Keyring::from_docker_config_json(doc.to_string().as_bytes(), origin).unwrap()
    }

    /// The user names that match, in order.
    fn users(keyring: &Keyring, image: &str) -> String {
        let found = keyring
            .lookup(image)
            .into_iter()
            .map(|c| c.credentials.username);
        found.collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn keys_match_as_the_kubelet_matches_them() {
        let mut doc = auths(&[
            ("https://index.docker.io/v1/", "hub:p"),
            ("registry.example.com/team", "team:p"),
            ("http://registry.example.com/team/app/", "app:p:with:colons"),
            ("*.corp.example.com", "corp:p"),
            ("127.0.0.1:5000", "local:p"),
        ]);
        doc["auths"]["registry.example.com"] = json!({"username": "host", "password": "p"});
        doc["auths"]["127.0.0.1:5000"]["identitytoken"] = json!("tok");
        doc["auths"]["helper.example.com"] = json!({});
        doc["credsStore"] = json!("desktop");
        let k = keyring(&doc, "/a.json");
        let table = [
            ("docker.io/library/alpine", "hub"),
            ("registry.example.com/team/app/x", "app team host"),
            ("registry.example.com/teamwork", "host"),
            ("registry.example.com:5000/team", ""),
            ("a.corp.example.com/x", "corp"),
            ("a.b.corp.example.com/x", ""),
            ("helper.example.com/x", ""),
        ];
        for (image, want) in table {
            assert_eq!(users(&k, image), want, "{image}");
        }
        let local = &k.lookup("127.0.0.1:5000/x")[0];
        assert_eq!(local.credentials.identity_token.as_deref(), Some("tok"));
        assert_eq!(local.origin, Origin::File("/a.json".into()));
        let app = &k.lookup("registry.example.com/team/app")[0].credentials;
        assert_eq!(app.password, "p:with:colons");
        let shown = format!("{app:?}");
        assert!(
            !shown.contains("p:with") && shown.contains("app"),
            "{shown}"
        );
    }

    #[test]
    fn docker_hub_aliases_and_order_of_adding() {
        let mut k = keyring(&auths(&[("registry-1.docker.io", "first:p")]), "/1");
        let two = &auths(&[
            ("index.docker.io", "second:p"),
            ("docker.io/library", "lib:p"),
        ]);
        let origin = Origin::PullSecret("s".into());
        k.add(Keyring::from_dockercfg(two["auths"].to_string().as_bytes(), origin).unwrap());
        assert_eq!(users(&k, "docker.io/library/alpine"), "lib first second");
        assert_eq!(users(&k, "docker.io/user/app"), "first second");
    }

    #[test]
    fn bad_entries_name_the_origin_and_key_not_the_secret() {
        let no_colon = STANDARD.encode("s3cr3t");
        let cases = [
            (
                json!({"r.io": {"auth": "!!s3cr3t"}}),
                "credentials for \"r.io\": \"auth\" is not",
            ),
            (json!({"r.io": {"auth": no_colon}}), "user:password"),
            (
                json!({"r.io": {"password": ["s3cr3t"]}}),
                "\"password\" is not a string",
            ),
            (json!({"r.io": "s3cr3t"}), "\"r.io\": not a JSON object"),
            (json!(["s3cr3t"]), "not a JSON object"),
        ];
        let mut texts: Vec<_> = cases
            .iter()
            .map(|(a, w)| (json!({"auths": a}).to_string(), *w))
            .collect();
        texts.push((r#"{"auths": {"r.io": {"auth": "s3cr3t"#.to_owned(), "EOF"));
        for (json, want) in &texts {
            let origin = Origin::PullSecret("pull".into());
            let e = Keyring::from_docker_config_json(json.as_bytes(), origin).unwrap_err();
            let e = e.to_string();
            assert!(
                e.starts_with("pull secret \"pull\": ") && e.contains(want),
                "{e}"
            );
            assert!(!e.contains("s3cr3t") && !e.contains(&no_colon), "{e}");
        }
    }

    #[test]
    fn files_missing_skipped_bad_named() {
        let dir = tempfile::tempdir().unwrap();
        let [good, bad, missing] =
            ["good.json", "bad.json", "missing.json"].map(|f| dir.path().join(f));
        fs::write(&good, auths(&[("r.io", "u:p")]).to_string()).unwrap();
        fs::write(&bad, "{").unwrap();
        let k = Keyring::load_files(&[missing.clone(), good.clone()]).unwrap();
        assert_eq!(k.lookup("r.io/x")[0].origin, Origin::File(good));
        let e = Keyring::load_files(&[missing, bad.clone()]).unwrap_err();
        assert!(e.to_string().starts_with(&bad.display().to_string()), "{e}");
        let files = |auth_file: Option<&str>, uid, docker: Option<&str>, home: Option<&str>| {
            let files = default_files_from(
                auth_file.map(Into::into),
                uid,
                docker.map(Into::into),
                home.map(Into::into),
            );
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            files(None, 0, None, Some("/h")),
            "/run/containers/0/auth.json /h/.config/containers/auth.json /h/.docker/config.json"
        );
        assert_eq!(
            files(None, 7, Some("/d"), None),
            "/run/containers/7/auth.json /d/config.json"
        );
        assert_eq!(files(Some("/a"), 0, Some("/d"), Some("/h")), "/a");
    }

    #[test]
    fn login_logout_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/containers/auth.json");
        login(&path, "r.io", "u", "p:w").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        let mut doc = auths(&[("other.io", "other:p")]);
        doc["credHelpers"] = json!({"x.io": "pass"});
        fs::write(&path, doc.to_string()).unwrap();
        login(&path, "r.io", "u", "p:w").unwrap();
        login(&path, "r.io", "u2", "p2").unwrap();
        let k = Keyring::load_files(std::slice::from_ref(&path)).unwrap();
        assert_eq!(
            (users(&k, "r.io/x"), users(&k, "other.io/x")),
            ("u2".into(), "other".into())
        );
        assert_eq!(mode(&path), 0o600);
        assert!(logout(&path, "r.io").unwrap());
        assert!(!logout(&path, "r.io").unwrap());
        assert!(!logout(&dir.path().join("absent.json"), "r.io").unwrap());
        let now: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(now, doc, "other entries and keys kept");
        let left = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(left, 1, "no temporary file left");
        assert!(login(&path, "r.io", "a:b", "p").is_err());
    }
}
