//! CNI network configurations: the first file of the configuration
//! directory, picked as libcni and containerd pick it (`.conf`,
//! `.conflist` and `.json` files in name order), or podrun's own default
//! network when the directory has none.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where users keep their network configurations and plugins.
pub const CONF_DIR: &str = "/etc/cni/net.d";
pub const BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a CNI network configuration: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Where podrun looks for networks and plugins: `PODRUN_CNI_CONF_DIR` and
/// `PODRUN_CNI_PATH` (a `:`-separated list, as `CNI_PATH` is) override
/// the places users keep them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
}

impl Settings {
    pub fn from_env() -> Settings {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Settings {
            conf_dir: var("PODRUN_CNI_CONF_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(CONF_DIR)),
            bin_dirs: match var("PODRUN_CNI_PATH") {
                // An empty entry would be the working directory.
                Some(list) => std::env::split_paths(&list)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect(),
                None => BIN_DIRS.iter().map(PathBuf::from).collect(),
            },
        }
    }
}

/// A network: its plugins in the order ADD runs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    /// Each plugin's configuration, `type` included, as the file has it.
    pub plugins: Vec<Map<String, Value>>,
    /// The file it was read from; none for podrun's default network.
    pub file: Option<PathBuf>,
}

impl NetworkList {
    /// Where the network comes from, for messages.
    pub fn origin(&self) -> String {
        match &self.file {
            Some(f) => f.display().to_string(),
            None => "podrun's default network".to_owned(),
        }
    }

    /// Each plugin's `type`: the name of its binary.
    pub fn plugin_type(plugin: &Map<String, Value>) -> &str {
        plugin.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether some plugin declares the capability `name`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.plugins.iter().any(|p| capability(p, name))
    }
}

/// Whether `plugin` declares `"capabilities": {name: true}`.
pub fn capability(plugin: &Map<String, Value>, name: &str) -> bool {
    plugin
        .get("capabilities")
        .and_then(|c| c.get(name))
        .and_then(Value::as_bool)
        == Some(true)
}

/// The newest CNI version podrun speaks.
const NEWEST: (u32, u32, u32) = (1, 1, 0);

/// `1.0.0` → (1, 0, 0).
fn version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Whether CNI version `v` is `min` or newer (an unreadable one is not).
pub fn at_least(v: &str, min: (u32, u32, u32)) -> bool {
    version(v).is_some_and(|v| v >= min)
}

/// Reads one configuration file: a `.conflist` is a list; a `.conf` or
/// `.json` is a single plugin's network (or a list, as go-cni takes it).
pub fn parse(path: &Path, text: &[u8]) -> Result<NetworkList, ConfError> {
    let invalid = |reason: String| ConfError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_slice(text).map_err(|e| invalid(e.to_string()))?;
    let Value::Object(mut top) = value else {
        return Err(invalid("not a JSON object".to_owned()));
    };
    let name = match top.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        Some(_) => return Err(invalid("`name` is not a non-empty string".to_owned())),
        None => return Err(invalid("no `name`".to_owned())),
    };
    let cni_version = match (top.get("cniVersions"), top.get("cniVersion")) {
        // CNI 1.1's list: the newest podrun speaks, as libcni picks it.
        (Some(Value::Array(list)), _) => list
            .iter()
            .filter_map(Value::as_str)
            .filter(|v| version(v).is_some_and(|v| v <= NEWEST))
            .max_by_key(|v| version(v))
            .map(str::to_owned)
            .ok_or_else(|| {
                invalid(format!(
                    "no version of `cniVersions` is one podrun speaks (up to {}.{}.{})",
                    NEWEST.0, NEWEST.1, NEWEST.2
                ))
            })?,
        (Some(_), _) => return Err(invalid("`cniVersions` is not a list".to_owned())),
        (None, Some(Value::String(v))) => v.clone(),
        (None, None) => "0.2.0".to_owned(),
        (None, Some(_)) => return Err(invalid("`cniVersion` is not a string".to_owned())),
    };
    let is_list = path.extension().and_then(|e| e.to_str()) == Some("conflist");
    let plugins = match top.remove("plugins") {
        Some(Value::Array(list)) => list
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::Object(p) => Ok(p),
                _ => Err(invalid(format!("plugins[{i}] is not an object"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid("`plugins` is not a list".to_owned())),
        None if is_list => return Err(invalid("no `plugins`".to_owned())),
        None => vec![top],
    };
    if plugins.is_empty() {
        return Err(invalid("`plugins` is empty".to_owned()));
    }
    for (i, p) in plugins.iter().enumerate() {
        let kind = NetworkList::plugin_type(p);
        if kind.is_empty() || kind.contains('/') || kind == "." || kind == ".." {
            return Err(invalid(format!(
                "plugins[{i}]: `type` must name a plugin binary, not {:?}",
                p.get("type").unwrap_or(&Value::Null)
            )));
        }
    }
    Ok(NetworkList {
        name,
        cni_version,
        plugins,
        file: Some(path.to_owned()),
    })
}

/// The network of `conf_dir`: its first configuration file in name order;
/// none when it has none (or is not there).
pub fn load(conf_dir: &Path) -> Result<Option<NetworkList>, ConfError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ConfError::Read { path, source }
    };
    let entries = match fs::read_dir(conf_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(conf_dir)(e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conf" | "conflist" | "json")
            ) && p.is_file()
        })
        .collect();
    files.sort();
    let Some(first) = files.first() else {
        return Ok(None);
    };
    let text = fs::read(first).map_err(read_err(first))?;
    parse(first, &text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_and_a_single_plugin_network() {
        let list = parse(
            Path::new("/x/10-a.conflist"),
            br#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge","bridge":"b0"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        assert_eq!(list.name, "a");
        assert_eq!(list.plugins.len(), 2);
        assert!(list.has_capability("portMappings"));
        assert!(!list.has_capability("bandwidth"));
        assert_eq!(list.origin(), "/x/10-a.conflist");

        let single = parse(
            Path::new("/x/20-b.conf"),
            br#"{"cniVersion":"0.4.0","name":"b","type":"ptp","ipam":{}}"#,
        )
        .unwrap();
        assert_eq!(single.plugins.len(), 1);
        assert_eq!(NetworkList::plugin_type(&single.plugins[0]), "ptp");
        assert!(single.plugins[0].contains_key("ipam"));
    }

    #[test]
    fn what_is_not_a_network_is_named() {
        let bad = |text: &str| match parse(Path::new("/x/a.conflist"), text.as_bytes()) {
            Err(ConfError::Invalid { path, reason }) => {
                assert_eq!(path, Path::new("/x/a.conflist"));
                reason
            }
            other => panic!("{other:?}"),
        };
        assert!(bad("{").contains("EOF"));
        assert_eq!(bad("[]"), "not a JSON object");
        assert_eq!(bad(r#"{"plugins":[{"type":"x"}]}"#), "no `name`");
        assert_eq!(bad(r#"{"name":"n","plugins":[]}"#), "`plugins` is empty");
        assert!(bad(r#"{"name":"n","plugins":[{"type":"../x"}]}"#).contains("must name a plugin"));
        assert!(bad(r#"{"name":"n","plugins":[{}]}"#).contains("must name a plugin"));
        assert_eq!(
            bad(r#"{"name":"n","plugins":[1]}"#),
            "plugins[0] is not an object"
        );
        assert_eq!(bad(r#"{"name":"n","type":"bridge"}"#), "no `plugins`");
        assert!(
            bad(r#"{"name":"n","cniVersions":["2.0.0"],"plugins":[{"type":"x"}]}"#)
                .contains("cniVersions")
        );
    }

    #[test]
    fn versions() {
        let list = parse(
            Path::new("/x/a.conflist"),
            br#"{"cniVersions":["0.4.0","1.0.0","9.0.0"],"cniVersion":"0.3.1","name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(list.cni_version, "1.0.0");
        assert!(at_least("0.4.0", (0, 4, 0)) && at_least("1.0.0", (0, 4, 0)));
        assert!(!at_least("0.3.1", (0, 4, 0)) && !at_least("x", (0, 1, 0)));
    }

    #[test]
    fn the_first_file_in_name_order_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(&dir.path().join("none")).unwrap(), None);
        assert_eq!(load(dir.path()).unwrap(), None);
        fs::write(dir.path().join("README"), "not a config").unwrap();
        fs::write(
            dir.path().join("20-b.conflist"),
            r#"{"name":"b","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        fs::write(dir.path().join("10-a.conf"), r#"{"name":"a","type":"ptp"}"#).unwrap();
        let net = load(dir.path()).unwrap().unwrap();
        assert_eq!(net.name, "a");
        assert_eq!(net.cni_version, "0.2.0");
        fs::write(dir.path().join("05-bad.json"), "{").unwrap();
        assert!(matches!(load(dir.path()), Err(ConfError::Invalid { .. })));
    }
}
