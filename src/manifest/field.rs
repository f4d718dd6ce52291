//! Field paths and field errors in the API server's shape
//! (`spec.containers[0].image: Required value`).

use std::fmt;

/// A path into a manifest, rendered as the API server renders it:
/// `spec.initContainers[1].resources.limits[memory]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn new(root: &str) -> FieldPath {
        FieldPath(root.to_owned())
    }

    pub fn child(&self, name: &str) -> FieldPath {
        if self.0.is_empty() {
            FieldPath(name.to_owned())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> FieldPath {
        FieldPath(format!("{}[{i}]", self.0))
    }

    pub fn key(&self, key: &str) -> FieldPath {
        FieldPath(format!("{}[{key}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `path['key']` → (`path`, `key`), as apimachinery's
/// `fieldpath.SplitMaybeSubscriptedPath` splits a downward API field path.
pub fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let inner = field_path.strip_suffix("']")?;
    let (path, key) = inner.split_once("['")?;
    (!path.is_empty()).then_some((path, key))
}

/// The offending value, printed as the API server prints it: strings quoted,
/// numbers bare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    Str(String),
    Int(i64),
    /// Already rendered (a map or object, as JSON).
    Json(String),
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_owned())
    }
}

impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::Str(s.clone())
    }
}

impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}

impl From<bool> for BadValue {
    fn from(b: bool) -> Self {
        BadValue::Json(b.to_string())
    }
}

impl From<i64> for BadValue {
    fn from(n: i64) -> Self {
        BadValue::Int(n)
    }
}

impl From<i32> for BadValue {
    fn from(n: i32) -> Self {
        BadValue::Int(n.into())
    }
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Str(s) => write!(f, "{s:?}"),
            BadValue::Int(n) => write!(f, "{n}"),
            BadValue::Json(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Required(Option<String>),
    Invalid(BadValue, String),
    NotSupported(BadValue, Vec<&'static str>),
    Duplicate(BadValue),
    NotFound(BadValue),
    Forbidden(String),
    TooLong(usize),
    UnknownField,
    /// The document does not have the shape the field requires (a string
    /// where a list belongs, a number out of range for its type).
    WrongType(String),
}

/// One problem with one field of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: FieldPath,
    pub kind: ErrorKind,
}

impl FieldError {
    pub fn required(path: &FieldPath) -> FieldError {
        FieldError::new(path, ErrorKind::Required(None))
    }

    pub fn required_because(path: &FieldPath, detail: impl Into<String>) -> FieldError {
        FieldError::new(path, ErrorKind::Required(Some(detail.into())))
    }

    pub fn invalid(
        path: &FieldPath,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::new(path, ErrorKind::Invalid(value.into(), detail.into()))
    }

    pub fn not_supported(
        path: &FieldPath,
        value: impl Into<BadValue>,
        supported: &[&'static str],
    ) -> FieldError {
        FieldError::new(
            path,
            ErrorKind::NotSupported(value.into(), supported.to_vec()),
        )
    }

    pub fn duplicate(path: &FieldPath, value: impl Into<BadValue>) -> FieldError {
        FieldError::new(path, ErrorKind::Duplicate(value.into()))
    }

    pub fn not_found(path: &FieldPath, value: impl Into<BadValue>) -> FieldError {
        FieldError::new(path, ErrorKind::NotFound(value.into()))
    }

    pub fn forbidden(path: &FieldPath, detail: impl Into<String>) -> FieldError {
        FieldError::new(path, ErrorKind::Forbidden(detail.into()))
    }

    pub fn too_long(path: &FieldPath, max: usize) -> FieldError {
        FieldError::new(path, ErrorKind::TooLong(max))
    }

    pub fn unknown_field(path: FieldPath) -> FieldError {
        FieldError {
            path,
            kind: ErrorKind::UnknownField,
        }
    }

    pub fn wrong_type(path: FieldPath, detail: impl Into<String>) -> FieldError {
        FieldError {
            path,
            kind: ErrorKind::WrongType(detail.into()),
        }
    }

    fn new(path: &FieldPath, kind: ErrorKind) -> FieldError {
        FieldError {
            path: path.clone(),
            kind,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        match &self.kind {
            ErrorKind::Required(None) => write!(f, "{path}: Required value"),
            ErrorKind::Required(Some(detail)) => write!(f, "{path}: Required value: {detail}"),
            ErrorKind::Invalid(value, detail) => {
                write!(f, "{path}: Invalid value: {value}: {detail}")
            }
            ErrorKind::NotSupported(value, supported) => {
                let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                write!(
                    f,
                    "{path}: Unsupported value: {value}: supported values: {}",
                    list.join(", ")
                )
            }
            ErrorKind::Duplicate(value) => write!(f, "{path}: Duplicate value: {value}"),
            ErrorKind::NotFound(value) => write!(f, "{path}: Not found: {value}"),
            ErrorKind::Forbidden(detail) => write!(f, "{path}: Forbidden: {detail}"),
            ErrorKind::TooLong(max) => {
                write!(f, "{path}: Too long: may not be more than {max} bytes")
            }
            ErrorKind::UnknownField => write!(f, "{path}: unknown field"),
            ErrorKind::WrongType(detail) => write!(f, "{path}: {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_the_api_server() {
        let c = FieldPath::new("spec").child("containers").index(0);
        assert_eq!(
            FieldError::required(&c.child("image")).to_string(),
            "spec.containers[0].image: Required value"
        );
        assert_eq!(
            FieldError::invalid(&c.child("name"), "Web", "must be lower case").to_string(),
            "spec.containers[0].name: Invalid value: \"Web\": must be lower case"
        );
        assert_eq!(
            FieldError::not_supported(&c.child("restartPolicy"), "Never", &["Always"]).to_string(),
            "spec.containers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        );
        assert_eq!(
            FieldError::invalid(&c.child("ports").index(0).child("containerPort"), 0, "x")
                .to_string(),
            "spec.containers[0].ports[0].containerPort: Invalid value: 0: x"
        );
        assert_eq!(
            c.child("resources").child("limits").key("memory").as_str(),
            "spec.containers[0].resources.limits[memory]"
        );
    }
}
