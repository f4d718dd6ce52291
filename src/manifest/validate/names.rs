//! Name and format rules of apimachinery's `util/validation`, with its
//! messages. Each check returns every message that applies.

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
pub const ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist only of printable ASCII characters other than '='";

pub fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_label_body(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push(max_len(63));
    }
    if !is_label_body(s) {
        if dns1123_subdomain(s).is_empty() {
            out.push("must not contain dots".to_owned());
        } else {
            out.push(DNS1123_LABEL_MSG.to_owned());
        }
    }
    out
}

pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push(max_len(253));
    }
    if !s.split('.').all(is_label_body) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_owned());
    }
    out
}

fn is_qualified_body(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Label and annotation keys, resource names: `[prefix/]name`.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_owned());
            } else {
                out.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            out.push(format!("a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
            return out;
        }
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > 63 {
            out.push(format!("name part {}", max_len(63)));
        }
        if !is_qualified_body(name) {
            out.push(QUALIFIED_NAME_MSG.to_owned());
        }
    }
    out
}

pub fn label_value(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push(max_len(63));
    }
    if !s.is_empty() && !is_qualified_body(s) {
        out.push(LABEL_VALUE_MSG.to_owned());
    }
    out
}

/// IANA_SVC_NAME, for port names.
pub fn port_name(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 15 {
        out.push(max_len(15));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        out.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_owned(),
        );
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".to_owned());
    }
    if s.contains("--") {
        out.push("must not contain consecutive hyphens".to_owned());
    }
    if s.starts_with('-') || s.ends_with('-') {
        out.push("must not begin or end with a hyphen".to_owned());
    }
    out
}

/// The relaxed rule, the default since Kubernetes 1.32.
pub fn env_var_name(s: &str) -> Vec<String> {
    if s.chars().all(|c| (' '..='~').contains(&c) && c != '=') {
        Vec::new()
    } else {
        vec![ENV_VAR_NAME_MSG.to_owned()]
    }
}

pub const SYSCTL_REGEX: &str =
    "^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";

/// Sysctl names: dot- or slash-separated segments of `[a-z0-9_-]` that
/// start and end alphanumeric, at most 253 characters.
pub fn sysctl_name(s: &str) -> bool {
    let segment = |seg: &str| {
        let b = seg.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    };
    s.len() <= 253 && s.split(['.', '/']).all(segment)
}

pub const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

pub fn port_number(n: i64) -> Option<&'static str> {
    (!(1..=65535).contains(&n)).then_some(PORT_RANGE_MSG)
}

/// A ConfigMap or Secret key (apimachinery's `IsConfigMapKey`).
pub fn config_map_key(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push(max_len(253));
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        out.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_owned());
    }
    if s == "." {
        out.push("must not be '.'".to_owned());
    } else if s == ".." {
        out.push("must not be '..'".to_owned());
    } else if s.starts_with("..") {
        out.push("must not start with '..'".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(dns1123_label("web-1").is_empty());
        assert!(dns1123_label("1web").is_empty());
        assert_eq!(dns1123_label("a.b"), ["must not contain dots"]);
        assert_eq!(dns1123_label("Web").len(), 1);
        assert_eq!(dns1123_label("-a").len(), 1);
        assert_eq!(dns1123_label(""), [DNS1123_LABEL_MSG]);
        assert_eq!(dns1123_label(&"a".repeat(64)), [max_len(63)]);
    }

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("my.pod-1").is_empty());
        assert!(!dns1123_subdomain("my..pod").is_empty());
        assert!(!dns1123_subdomain("My").is_empty());
        assert!(!dns1123_subdomain("a_b").is_empty());
        assert_eq!(dns1123_subdomain(&"a".repeat(254)), [max_len(253)]);
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name("app").is_empty());
        assert!(qualified_name("example.com/My_Name").is_empty());
        assert!(!qualified_name("/x").is_empty());
        assert!(!qualified_name("a/b/c").is_empty());
        assert!(!qualified_name("Example.com/x").is_empty());
        assert!(!qualified_name("-x").is_empty());
    }

    #[test]
    fn port_names() {
        assert!(port_name("http").is_empty());
        assert!(port_name("h2c-1").is_empty());
        assert_eq!(port_name("80").len(), 1);
        assert_eq!(port_name("a--b").len(), 1);
        assert_eq!(port_name("Http").len(), 1);
        assert_eq!(port_name("a-very-long-port-name").len(), 1);
    }

    #[test]
    fn env_names() {
        assert!(env_var_name("MY_VAR.x-1").is_empty());
        assert!(env_var_name("1abc").is_empty());
        assert!(!env_var_name("A=B").is_empty());
        assert!(!env_var_name("tab\t").is_empty());
    }
}
