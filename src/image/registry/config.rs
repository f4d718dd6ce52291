//! containers-registries.conf(5), version 2, as containers/image reads it:
//! which endpoints serve a repository (its mirrors, then its registry's
//! location), which of them are insecure, which registries are blocked.
//!
//! `unqualified-search-registries` and `short-name-mode` are parsed and
//! kept, though podrun normalises short names to docker.io as Docker does;
//! `[aliases]`, `credential-helpers` and `additional-layer-store-auth-helper`
//! are read (so that podman's files are accepted) but not used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::{env, fs, io};

use serde::Deserialize;
use serde::de::IgnoredAny;

const MAIN: &str = "/etc/containers/registries.conf";
const DROP_INS: &str = "/etc/containers/registries.conf.d";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// `at` is a key's path (`registry[0].mirror[1].location`) or a line.
    #[error("{path}: {at}: {reason}")]
    Invalid {
        path: PathBuf,
        at: String,
        reason: String,
    },
    #[error(
        "{path}: this is the v1 format of registries.conf ([registries.search] and the like): use the v2 format ([[registry]] tables, see containers-registries.conf(5))"
    )]
    V1 { path: PathBuf },
    #[error("{repository}: pulls from {prefix} are blocked by {path}")]
    Blocked {
        repository: String,
        prefix: String,
        path: PathBuf,
    },
    #[error("invalid repository {0:?}: expected HOST/PATH")]
    Repository(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShortNameMode {
    Disabled,
    Enforcing,
    Permissive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PullFromMirror {
    All,
    DigestOnly,
    TagOnly,
}

/// One file. The keys podrun does not use are read, to check their types.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)]
struct FileToml {
    registry: Vec<Registry>,
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<ShortNameMode>,
    aliases: BTreeMap<String, String>,
    credential_helpers: Vec<String>,
    additional_layer_store_auth_helper: String,
    /// The v1 format's table: refused.
    registries: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Registry {
    prefix: String,
    location: String,
    insecure: bool,
    blocked: bool,
    mirror_by_digest_only: bool,
    mirror: Vec<Mirror>,
    /// A mirror's setting; refused on a registry, as containers/image does.
    pull_from_mirror: Option<PullFromMirror>,
    #[serde(skip)]
    origin: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Mirror {
    location: String,
    insecure: bool,
    pull_from_mirror: Option<PullFromMirror>,
}

/// The merged configuration: a main file and its drop-ins.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    /// One per prefix.
    registries: Vec<Registry>,
    unqualified_search_registries: Option<Vec<String>>,
    short_name_mode: Option<ShortNameMode>,
}

/// Where to send a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port][/path]`, e.g. `127.0.0.1:5000/library`.
    pub location: String,
    /// Plain HTTP allowed and TLS verification skipped: the client decides
    /// how it uses that.
    pub insecure: bool,
    pub mirror: bool,
}

impl Endpoint {
    /// The `host[:port]` to connect to and the repository's path there.
    pub fn host_and_path(&self, remainder: &str) -> (&str, String) {
        let (host, path) = self
            .location
            .split_once('/')
            .unwrap_or((&self.location, ""));
        let path = match (path, remainder) {
            ("", r) => r.to_owned(),
            (p, "") => p.to_owned(),
            (p, r) => format!("{p}/{r}"),
        };
        (host, path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// In the order to try: mirrors first, then the primary location.
    pub endpoints: Vec<Endpoint>,
    /// The repository's path after the matched prefix (each endpoint's
    /// location takes the prefix's place); empty when the prefix named the
    /// whole repository.
    pub remainder: String,
}

impl RegistriesConf {
    /// One file's configuration; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<RegistriesConf, ConfigError> {
        let line = |span: Option<std::ops::Range<usize>>| {
            let n = 1 + text
                .bytes()
                .take(span.map_or(0, |s| s.start))
                .filter(|&b| b == b'\n')
                .count();
            format!("line {n}")
        };
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| invalid(origin, line(e.span()), e.message().to_owned()))?;
        let file: FileToml = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let e = e.into_inner();
            let reason = match e.span() {
                Some(span) => format!("{} ({})", e.message(), line(Some(span))),
                None => e.message().to_owned(),
            };
            invalid(origin, at, reason)
        })?;
        if file.registries.is_some() {
            return Err(ConfigError::V1 {
                path: origin.to_owned(),
            });
        }
        let mut registries: Vec<Registry> = Vec::new();
        for (i, mut reg) in file.registry.into_iter().enumerate() {
            let at = |(key, reason)| invalid(origin, format!("registry[{i}]{key}"), reason);
            check(&mut reg).map_err(at)?;
            // Entries for one physical registry must agree on its security.
            let physical = |r: &Registry| {
                [&r.location, &r.prefix]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .cloned()
            };
            if let Some(other) = registries.iter().find(|o| physical(o) == physical(&reg))
                && (other.insecure != reg.insecure || other.blocked != reg.blocked)
            {
                let reason =
                    "the same location as an earlier entry, with other insecure or blocked";
                return Err(at((String::new(), reason.to_owned())));
            }
            // As containers/image: a repeated prefix in one file is ignored.
            if !registries.iter().any(|r| r.prefix == reg.prefix) {
                reg.origin = origin.to_owned();
                registries.push(reg);
            }
        }
        Ok(RegistriesConf {
            registries,
            unqualified_search_registries: file.unqualified_search_registries,
            short_name_mode: file.short_name_mode,
        })
    }

    /// `main` (a missing file is an empty one), then `drop_in_dir/*.conf`
    /// in lexical order: a drop-in's `[[registry]]` replaces the one with
    /// the same prefix, and its other keys override those set before.
    pub fn load(main: &Path, drop_in_dir: &Path) -> Result<RegistriesConf, ConfigError> {
        Self::load_from(main, false, drop_in_dir)
    }

    /// `$CONTAINERS_REGISTRIES_CONF` in place of /etc/containers/registries.conf
    /// (then it must exist), with the drop-ins of
    /// /etc/containers/registries.conf.d in both cases, as containers/image
    /// does.
    pub fn load_default() -> Result<RegistriesConf, ConfigError> {
        match env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|v| !v.is_empty()) {
            Some(file) => Self::load_from(Path::new(&file), true, Path::new(DROP_INS)),
            None => Self::load(Path::new(MAIN), Path::new(DROP_INS)),
        }
    }

    fn load_from(main: &Path, required: bool, dir: &Path) -> Result<RegistriesConf, ConfigError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ConfigError::Io { path, source }
        };
        let mut conf = match fs::read_to_string(main) {
            Ok(text) => Self::parse(&text, main)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !required => Self::default(),
            Err(e) => return Err(io(main)(e)),
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(conf),
            Err(e) => return Err(io(dir)(e)),
        };
        let mut drop_ins = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(dir))?;
            let is_dir = entry.file_type().map_err(io(&entry.path()))?.is_dir();
            if !is_dir && entry.file_name().as_encoded_bytes().ends_with(b".conf") {
                drop_ins.push(entry.path());
            }
        }
        drop_ins.sort();
        for path in drop_ins {
            match fs::read_to_string(&path) {
                Ok(text) => conf.merge(Self::parse(&text, &path)?),
                // Removed since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Ok(conf)
    }

    fn merge(&mut self, later: RegistriesConf) {
        for reg in later.registries {
            match self.registries.iter_mut().find(|r| r.prefix == reg.prefix) {
                Some(r) => *r = reg,
                None => self.registries.push(reg),
            }
        }
        if later.unqualified_search_registries.is_some() {
            self.unqualified_search_registries = later.unqualified_search_registries;
        }
        if later.short_name_mode.is_some() {
            self.short_name_mode = later.short_name_mode;
        }
    }

    pub fn unqualified_search_registries(&self) -> &[String] {
        self.unqualified_search_registries.as_deref().unwrap_or(&[])
    }

    pub fn short_name_mode(&self) -> Option<ShortNameMode> {
        self.short_name_mode
    }

    /// Where to pull `repository` (normalised, without tag or digest:
    /// `docker.io/library/alpine`) from, named by digest or by tag. The
    /// registry with the longest matching prefix decides; with none, the
    /// repository's own host, secure. `[aliases]` and `credential-helpers`
    /// play no part: they are read, not used.
    pub fn resolve(&self, repository: &str, by_digest: bool) -> Result<Resolved, ConfigError> {
        let Some(host_end) = (repository.find('/')).filter(|&i| i > 0 && i + 1 < repository.len())
        else {
            return Err(ConfigError::Repository(repository.to_owned()));
        };
        let matched = (self.registries.iter())
            .filter_map(|r| prefix_match(repository, &r.prefix).map(|end| (r, end)))
            // Longest prefix; of equal lengths, the literal one.
            .max_by_key(|(r, _)| (r.prefix.len(), !r.prefix.starts_with('*')));
        // No match: as a registry without a location, the repository's own host.
        let unmatched = Registry::default();
        let (reg, end) = matched.unwrap_or((&unmatched, host_end));
        if reg.blocked {
            return Err(ConfigError::Blocked {
                repository: repository.to_owned(),
                prefix: reg.prefix.clone(),
                path: reg.origin.clone(),
            });
        }
        let wanted = |m: &&Mirror| match (reg.mirror_by_digest_only, m.pull_from_mirror) {
            (true, _) | (false, Some(PullFromMirror::DigestOnly)) => by_digest,
            (false, Some(PullFromMirror::TagOnly)) => !by_digest,
            _ => true,
        };
        let endpoint = |location: &str, insecure, mirror| Endpoint {
            location: location.to_owned(),
            insecure,
            mirror,
        };
        let mut endpoints: Vec<Endpoint> = (reg.mirror.iter().filter(wanted))
            .map(|m| endpoint(&m.location, m.insecure, true))
            .collect();
        let location = Some(&reg.location[..]).filter(|l| !l.is_empty());
        endpoints.push(endpoint(
            location.unwrap_or(&repository[..end]),
            reg.insecure,
            false,
        ));
        let rest = &repository[end..];
        Ok(Resolved {
            endpoints,
            remainder: rest.strip_prefix('/').unwrap_or(rest).to_owned(),
        })
    }
}

fn invalid(path: &Path, at: String, reason: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        at,
        reason,
    }
}

/// Checks and completes one `[[registry]]`; an error is (".key", reason).
fn check(reg: &mut Registry) -> Result<(), (String, String)> {
    let bad = |key: &str, reason: &str| Err((format!(".{key}"), reason.to_owned()));
    reg.location = location(&reg.location).map_err(|r| (".location".to_owned(), r))?;
    if let Some(domain) = reg.prefix.strip_prefix("*.") {
        if domain.is_empty() || domain.contains(['/', ':', '@', '*']) {
            return bad(
                "prefix",
                "a wildcard prefix is *.DOMAIN, without port or path",
            );
        }
    } else if reg.prefix.is_empty() {
        reg.prefix = reg.location.clone();
    } else {
        reg.prefix = location(&reg.prefix).map_err(|r| (".prefix".to_owned(), r))?;
    }
    if reg.location.is_empty() && !reg.prefix.starts_with("*.") {
        return bad("location", "must be set unless the prefix is *.DOMAIN");
    }
    if reg.pull_from_mirror.is_some() {
        return bad("pull-from-mirror", "only a mirror may set it");
    }
    for (j, m) in reg.mirror.iter_mut().enumerate() {
        let at = |key: &str| format!(".mirror[{j}].{key}");
        m.location = location(&m.location).map_err(|r| (at("location"), r))?;
        if m.location.is_empty() {
            return Err((at("location"), "must be set".to_owned()));
        }
        if reg.mirror_by_digest_only && m.pull_from_mirror.is_some() {
            let reason = "cannot be set when the registry sets mirror-by-digest-only";
            return Err((at("pull-from-mirror"), reason.to_owned()));
        }
    }
    Ok(())
}

/// `host[:port][/path]`, a trailing '/' dropped; empty stays empty.
fn location(raw: &str) -> Result<String, String> {
    let s = raw.trim_end_matches('/');
    if s.starts_with("http://") || s.starts_with("https://") {
        return Err(format!(
            "{raw:?}: give host[:port][/path], without a scheme"
        ));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._-:/[]".contains(&b);
    if s.starts_with('/') || s.contains("//") || !s.bytes().all(allowed) {
        return Err(format!("{raw:?} is not host[:port][/path]"));
    }
    Ok(s.to_owned())
}

/// Where the prefix's match ends in `repository`: at a path-component
/// boundary, or for `*.example.com` at the end of a subdomain's host[:port].
fn prefix_match(repository: &str, prefix: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        let end = repository.find('/').unwrap_or(repository.len());
        let host = &repository[..end];
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        return (name.len() > domain.len() && name.ends_with(domain)).then_some(end);
    }
    let rest = repository.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(prefix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RegistriesConf, String> {
        RegistriesConf::parse(text, Path::new("/t.conf")).map_err(|e| e.to_string())
    }

    /// Each endpoint as `host/path`, `!` when insecure, `~` for a mirror.
    fn plan(conf: &RegistriesConf, repository: &str, by_digest: bool) -> String {
        let Ok(r) = conf.resolve(repository, by_digest) else {
            return "refused".to_owned();
        };
        let show = |e: &Endpoint| {
            let (host, path) = e.host_and_path(&r.remainder);
            let marks = ["", "!"][e.insecure as usize].to_owned() + ["", "~"][e.mirror as usize];
            format!("{host}/{path}{marks}")
        };
        r.endpoints.iter().map(show).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn resolves_prefixes_wildcards_and_mirrors() {
        let c = parse(
            r#"
            [[registry]]
            prefix = "example.com"
            location = "b.local:5000"
            [[registry]]
            prefix = "example.com/foo"
            location = "a.local/x/"
            insecure = true
            [[registry]]
            prefix = "a.example.com"
            location = "lit.local"
            [[registry]]
            prefix = "*.example.com"
            insecure = true
            [[registry]]
            prefix = "*.corp.example.com"
            location = "corp.local/ns"
            [[registry]]
            prefix = "example.com/evil"
            location = "example.com/evil"
            blocked = true
            [[registry]]
            location = "docker.io"
            [[registry.mirror]]
            location = "any.local"
            insecure = true
            [[registry.mirror]]
            location = "digests.local"
            pull-from-mirror = "digest-only"
            [[registry.mirror]]
            location = "tags.local/hub"
            pull-from-mirror = "tag-only"
            [[registry]]
            location = "quay.io"
            mirror-by-digest-only = true
            mirror = [{ location = "q.local" }]
            "#,
        )
        .unwrap();
        let table = [
            ("example.com/foo/bar", false, "a.local/x/bar!"),
            ("example.com/foo", false, "a.local/x!"),
            ("example.com/foobar", false, "b.local:5000/foobar"),
            ("example.com:5000/x", false, "example.com:5000/x"),
            ("reg.example.com/x/y", false, "reg.example.com/x/y!"),
            ("a.b.example.com:5000/x", false, "a.b.example.com:5000/x!"),
            ("r.corp.example.com/x", false, "corp.local/ns/x"),
            ("a.example.com/x", false, "lit.local/x"),
            ("badexample.com/x", false, "badexample.com/x"),
            ("example.com/evil/x", true, "refused"),
            ("example.com/evilx", true, "b.local:5000/evilx"),
            (
                "docker.io/x/y",
                false,
                "any.local/x/y!~ tags.local/hub/x/y~ docker.io/x/y",
            ),
            (
                "docker.io/x/y",
                true,
                "any.local/x/y!~ digests.local/x/y~ docker.io/x/y",
            ),
            ("quay.io/a/b", false, "quay.io/a/b"),
            ("quay.io/a/b", true, "q.local/a/b~ quay.io/a/b"),
        ];
        for (repository, by_digest, want) in table {
            assert_eq!(plan(&c, repository, by_digest), want, "{repository}");
        }
        let e = c
            .resolve("example.com/evil/x", false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "example.com/evil/x: pulls from example.com/evil are blocked by /t.conf"
        );
        assert!(matches!(
            c.resolve("alpine", false),
            Err(ConfigError::Repository(_))
        ));
    }

    #[test]
    fn refusals_name_the_file_and_the_key() {
        let table = [
            (
                "[registries.search]\nregistries = []",
                "/t.conf: this is the v1 format",
            ),
            ("bogus = 1", "/t.conf: bogus: unknown field `bogus`"),
            ("[[registry]", "/t.conf: line 1: "),
            (
                "registry = [{ location = 'x.io', secure = true }]",
                "/t.conf: registry[0].secure",
            ),
            (
                "registry = [{ location = 'https://x.io' }]",
                "/t.conf: registry[0].location",
            ),
            (
                "registry = [{ prefix = '*.x.io/a', location = 'x' }]",
                "/t.conf: registry[0].prefix",
            ),
            (
                "registry = [{ insecure = true }]",
                "/t.conf: registry[0].location",
            ),
            (
                "registry = [{ prefix = 'x.io' }]",
                "/t.conf: registry[0].location",
            ),
            (
                "registry = [{ location = 'x', pull-from-mirror = 'all' }]",
                "registry[0].pull-from-mirror",
            ),
            (
                "registry = [{ location = 'x', mirror = [{}] }]",
                "registry[0].mirror[0].location",
            ),
            (
                "short-name-mode = 'sometimes'",
                "/t.conf: short-name-mode: unknown variant",
            ),
        ];
        for (text, want) in table {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(want) || e.contains(want), "{text}: {e}");
        }
        let mirror = |extra: &str, value: &str| {
            let m = "[[registry.mirror]]\nlocation = 'm'\npull-from-mirror";
            parse(&format!(
                "[[registry]]\nlocation = 'x'\n{extra}\n{m} = '{value}'"
            ))
            .unwrap_err()
        };
        for e in [
            mirror("", "some"),
            mirror("mirror-by-digest-only = true", "all"),
        ] {
            assert!(
                e.starts_with("/t.conf: registry[0].mirror[0].pull-from-mirror: "),
                "{e}"
            );
        }
        let two = "registry = [{ location = 'x.io' }, { prefix = 'y', location = 'x.io', blocked = true }]";
        let e = parse(two).unwrap_err();
        assert!(e.starts_with("/t.conf: registry[1]: "), "{e}");
    }

    #[test]
    fn keeps_what_it_does_not_use() {
        let c = parse(
            r#"
            unqualified-search-registries = ["docker.io", "quay.io"]
            short-name-mode = "enforcing"
            credential-helpers = ["containers-auth.json"]
            [aliases]
            "fedora" = "registry.fedoraproject.org/fedora"
            "#,
        )
        .unwrap();
        assert_eq!(c.unqualified_search_registries(), ["docker.io", "quay.io"]);
        assert_eq!(c.short_name_mode(), Some(ShortNameMode::Enforcing));
    }

    #[test]
    fn drop_ins_override_in_lexical_order() {
        let dir = tempfile::tempdir().unwrap();
        let (main, d) = (dir.path().join("registries.conf"), dir.path().join("d"));
        fs::create_dir(&d).unwrap();
        let write = |name: &str, text: &str| fs::write(d.join(name), text).unwrap();
        let main_text = "unqualified-search-registries = ['a.io']\nregistry = [{ location = 'docker.io', blocked = true }, { location = 'quay.io', insecure = true }]";
        fs::write(&main, main_text).unwrap();
        write(
            "20-b.conf",
            "short-name-mode = 'permissive'\nregistry = [{ location = 'docker.io', mirror = [{ location = 'hub.local' }] }]",
        );
        write(
            "10-a.conf",
            "unqualified-search-registries = []\nregistry = [{ location = 'docker.io', blocked = true }]",
        );
        write("30-c.txt", "not toml at all [");
        fs::create_dir(d.join("40-d.conf")).unwrap();
        let c = RegistriesConf::load(&main, &d).unwrap();
        assert_eq!(
            plan(&c, "docker.io/x/y", false),
            "hub.local/x/y~ docker.io/x/y"
        );
        assert_eq!(plan(&c, "quay.io/x", false), "quay.io/x!");
        assert!(c.unqualified_search_registries().is_empty());
        assert_eq!(c.short_name_mode(), Some(ShortNameMode::Permissive));
        // A missing main file is an empty one, unless it was named.
        let absent = dir.path().join("absent.conf");
        let c = RegistriesConf::load(&absent, &d).unwrap();
        assert_eq!(plan(&c, "quay.io/x", false), "quay.io/x");
        let e = RegistriesConf::load_from(&absent, true, &d).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }), "{e}");
        write("50-e.conf", "[registries.block]\nregistries = []");
        let e = RegistriesConf::load(&main, &d).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: this is the v1",
                d.join("50-e.conf").display()
            )),
            "{e}"
        );
    }
}
