//! Text → the one pod-bearing Kubernetes object in it, decoded strictly into
//! the k8s-openapi types: every field that the types do not know is reported
//! with its path, as `kubectl apply --validate=strict` does.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::field::{FieldError, FieldPath};
use super::{ManifestError, Objects, reading};

/// The kinds of object podrun runs a pod from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Pod,
    Job,
    Deployment,
}

impl Workload {
    pub fn kind(self) -> &'static str {
        match self {
            Workload::Pod => "Pod",
            Workload::Job => "Job",
            Workload::Deployment => "Deployment",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Workload::Pod => "v1",
            Workload::Job => "batch/v1",
            Workload::Deployment => "apps/v1",
        }
    }

    fn from_kind(kind: &str) -> Option<Workload> {
        [Workload::Pod, Workload::Job, Workload::Deployment]
            .into_iter()
            .find(|w| w.kind() == kind)
    }
}

#[derive(Debug, Clone)]
pub enum Object {
    Pod(Box<Pod>),
    Job(Box<Job>),
    Deployment(Box<Deployment>),
}

pub use k8s_openapi::api::core::v1::{ConfigMap, Secret};

impl Object {
    pub fn workload(&self) -> Workload {
        match self {
            Object::Pod(_) => Workload::Pod,
            Object::Job(_) => Workload::Job,
            Object::Deployment(_) => Workload::Deployment,
        }
    }
}

/// One pod-bearing object of the file, decoded.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub object: Object,
    /// Its document's 1-based number in the file.
    pub document: usize,
    /// The object's `metadata.name` as written, for error headers.
    pub name: String,
    /// Fields the Kubernetes types do not have, reported with validation's
    /// errors so that all of a manifest's problems come at once.
    pub unknown_fields: Vec<FieldError>,
}

/// What a file holds, as `kubectl apply -f` takes it: its Pods, Jobs and
/// Deployments in order, its ConfigMaps and Secrets, and what was
/// noticed on the way.
#[derive(Debug)]
pub struct DecodedFile {
    pub pods: Vec<Result<Decoded, ManifestError>>,
    pub objects: Objects,
    pub warnings: Vec<String>,
}

/// Kinds that carry pods which podrun does not run (yet): refused, not
/// ignored, since the user means them to run.
const OTHER_WORKLOADS: [(&str, &str); 6] = [
    ("DaemonSet", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("ReplicationController", "v1"),
    ("CronJob", "batch/v1"),
    ("PodTemplate", "v1"),
];

/// A top-level document of the file, with its 1-based position.
struct Document {
    number: usize,
    value: Value,
    api_version: String,
    kind: String,
    name: String,
}

impl Document {
    fn describe(&self) -> String {
        let name = if self.name.is_empty() {
            String::new()
        } else {
            format!(" {:?}", self.name)
        };
        format!(
            "{} {}{name} (document {})",
            self.api_version, self.kind, self.number
        )
    }
}

/// The file's documents and what reading them noticed.
struct Documents {
    documents: Vec<Document>,
    warnings: Vec<String>,
}

pub fn decode(text: &str) -> Result<DecodedFile, ManifestError> {
    let Documents {
        documents,
        mut warnings,
    } = split_documents(text)?;
    let mut pods = Vec::new();
    let mut objects = Objects::default();
    let mut refused = Vec::new();
    let mut ignored = Vec::new();
    // The objects read, for the message of a file without pods.
    let mut read = Vec::new();
    for doc in documents {
        if let Some(w) = Workload::from_kind(&doc.kind) {
            if doc.api_version != w.api_version() {
                return Err(ManifestError::UnsupportedVersion {
                    document: doc.number,
                    kind: doc.kind,
                    api_version: doc.api_version,
                    expected: w.api_version(),
                });
            }
            pods.push(decode_strict(w, &doc));
            continue;
        }
        match (doc.kind.as_str(), doc.api_version.as_str()) {
            ("ConfigMap", "v1") => {
                objects.config_maps.push(config_map(&doc)?);
                read.push(doc);
            }
            ("Secret", "v1") => {
                objects.secrets.push(secret(&doc)?);
                read.push(doc);
            }
            (kind, _) if OTHER_WORKLOADS.iter().any(|(k, _)| *k == kind) => {
                refused.push(format!(
                    "{}: podrun does not run {kind}s (yet): it runs Pods, Jobs and Deployments",
                    doc.describe()
                ));
            }
            _ => ignored.push(doc),
        }
    }
    if !refused.is_empty() {
        return Err(ManifestError::Unrunnable(refused.join("\n")));
    }
    if pods.is_empty() {
        let found: Vec<String> = read
            .iter()
            .chain(&ignored)
            .map(Document::describe)
            .collect();
        return Err(ManifestError::NoPod(if found.is_empty() {
            "the file holds no Kubernetes object".to_owned()
        } else {
            format!("found {}", found.join(", "))
        }));
    }
    for other in &ignored {
        warnings.push(format!(
            "ignoring {}: podrun runs Pods, Jobs and Deployments, and reads ConfigMaps and Secrets",
            other.describe()
        ));
    }
    Ok(DecodedFile {
        pods,
        objects,
        warnings,
    })
}

/// A file of ConfigMaps or of Secrets only (`podrun up --configmap FILE`,
/// `--secret FILE`), and what reading it noticed.
pub fn decode_objects(
    text: &str,
    kind: &'static str,
) -> Result<(Objects, Vec<String>), ManifestError> {
    let Documents {
        documents,
        warnings,
    } = split_documents(text)?;
    let mut objects = Objects::default();
    for doc in documents {
        match (doc.kind.as_str(), doc.api_version.as_str()) {
            ("ConfigMap", "v1") if kind == "ConfigMap" => {
                objects.config_maps.push(config_map(&doc)?)
            }
            ("Secret", "v1") if kind == "Secret" => objects.secrets.push(secret(&doc)?),
            _ => {
                return Err(ManifestError::NotObjects {
                    kind,
                    found: doc.describe(),
                });
            }
        }
    }
    Ok((objects, warnings))
}

/// A v1 ConfigMap, decoded strictly (the caller validates it).
fn config_map(doc: &Document) -> Result<ConfigMap, ManifestError> {
    let mut errors = Vec::new();
    let map = strict::<ConfigMap>(&doc.value, &mut errors);
    match map {
        Some(map) if errors.is_empty() => Ok(map),
        _ => Err(ManifestError::Invalid {
            kind: "ConfigMap",
            name: doc.name.clone(),
            errors,
        }),
    }
}

/// A v1 Secret, decoded strictly, `stringData` folded into `data` as the
/// API server does (the caller validates it).
fn secret(doc: &Document) -> Result<Secret, ManifestError> {
    let mut errors = Vec::new();
    let mut secret = strict::<Secret>(&doc.value, &mut errors);
    if let Some(secret) = &mut secret
        && let Some(string_data) = secret.string_data.take()
    {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in string_data {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    match secret {
        Some(secret) if errors.is_empty() => Ok(secret),
        _ => Err(ManifestError::Invalid {
            kind: "Secret",
            name: doc.name.clone(),
            errors,
        }),
    }
}

/// The object and its unknown fields, or the shape error that stopped it.
fn decode_strict(workload: Workload, doc: &Document) -> Result<Decoded, ManifestError> {
    let mut errors = Vec::new();
    let result = match workload {
        Workload::Pod => strict::<Pod>(&doc.value, &mut errors).map(|p| Object::Pod(Box::new(p))),
        Workload::Job => strict::<Job>(&doc.value, &mut errors).map(|j| Object::Job(Box::new(j))),
        Workload::Deployment => {
            strict::<Deployment>(&doc.value, &mut errors).map(|d| Object::Deployment(Box::new(d)))
        }
    };
    match result {
        Some(object) => Ok(Decoded {
            object,
            document: doc.number,
            name: doc.name.clone(),
            unknown_fields: errors,
        }),
        None => Err(ManifestError::Invalid {
            kind: workload.kind(),
            name: doc.name.clone(),
            errors,
        }),
    }
}

/// Deserializes `value` as `T`, pushing every unknown field and the first
/// shape error (serde stops there) onto `errors`.
fn strict<T: de::DeserializeOwned>(value: &Value, errors: &mut Vec<FieldError>) -> Option<T> {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let mut on_ignored = |path: serde_ignored::Path| unknown.push(ignored_path(&path));
        let ignored = serde_ignored::Deserializer::new(value, &mut on_ignored);
        T::deserialize(serde_path_to_error::Deserializer::new(ignored, &mut track))
    };
    errors.extend(unknown.into_iter().map(FieldError::unknown_field));
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(shape_error(&track.path(), &e.to_string()));
            None
        }
    }
}

fn ignored_path(path: &serde_ignored::Path) -> FieldPath {
    match path {
        serde_ignored::Path::Root => FieldPath::new(""),
        serde_ignored::Path::Seq { parent, index } => ignored_path(parent).index(*index),
        serde_ignored::Path::Map { parent, key } => ignored_path(parent).child(key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

fn tracked_path(path: &serde_path_to_error::Path) -> FieldPath {
    let mut out = FieldPath::new("");
    for segment in path {
        out = match segment {
            serde_path_to_error::Segment::Seq { index } => out.index(*index),
            serde_path_to_error::Segment::Map { key } => out.child(key),
            serde_path_to_error::Segment::Enum { variant } => out.child(variant),
            serde_path_to_error::Segment::Unknown => out.child("?"),
        };
    }
    out
}

/// Turns serde's message into the API server's wording where one exists.
fn shape_error(path: &serde_path_to_error::Path, message: &str) -> FieldError {
    let path = tracked_path(path);
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return FieldError::required(&path.child(field));
    }
    FieldError::wrong_type(path, message.to_owned())
}

fn split_documents(text: &str) -> Result<Documents, ManifestError> {
    let (values, warnings) = if looks_like_json(text) {
        reading::read(|| parse_json(text))
    } else {
        parse_yaml(text)
    };
    let mut documents = Vec::new();
    for (i, value) in values?.into_iter().enumerate() {
        expand_list(value, i + 1, &mut documents)?;
    }
    Ok(Documents {
        documents,
        warnings,
    })
}

type Read = (Result<Vec<Value>, ManifestError>, Vec<String>);

/// YAML as kubectl's go-yaml reads it: YAML 1.1 (010 is octal 8), the
/// last of duplicated keys kept, and `\'` taken as `'` inside a
/// double-quoted string (go-yaml's escape, which YAML itself lacks); with
/// the warnings of the reading that succeeded.
fn parse_yaml(text: &str) -> Read {
    let mut text = std::borrow::Cow::Borrowed(text);
    loop {
        let mut options = serde_saphyr::Options::default();
        options.legacy_octal_numbers = true;
        options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::LastWins;
        let (parsed, warnings) = reading::read(|| {
            serde_saphyr::from_multiple_with_options::<Option<StrictValue>>(&text, options)
        });
        let e = match parsed {
            Ok(values) => {
                let values = values.into_iter().flatten().map(|v| v.0).collect();
                return (Ok(values), warnings);
            }
            Err(e) => e,
        };
        let escapes = e
            .location()
            .map(|at| quote_escapes_at(&text, at.line(), at.column()))
            .unwrap_or_default();
        if escapes.is_empty() {
            return (Err(ManifestError::Syntax(format!("yaml: {e}"))), Vec::new());
        }
        // Each round mends one scalar, so this ends; from the last, so
        // that the offsets before it hold.
        for offset in escapes.into_iter().rev() {
            text.to_mut().replace_range(offset..offset + 2, "'");
        }
    }
}

/// The byte offsets of the `\'`s of the double-quoted scalar that starts
/// at a 1-based line and column (the YAML parser stops there, at the
/// scalar's start, on an escape it does not know); none when the scalar
/// holds another unknown escape, which stays an error.
fn quote_escapes_at(text: &str, line: u64, column: u64) -> Vec<usize> {
    let Some(start) = position(text, line, column) else {
        return Vec::new();
    };
    let mut chars = text[start..].char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Vec::new();
    }
    let mut found = Vec::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return found,
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('\'') => found.push(start + i),
                Some(
                    '0' | 'a' | 'b' | 't' | '\t' | 'n' | 'v' | 'f' | 'r' | 'e' | ' ' | '"' | '/'
                    | '\\' | 'N' | '_' | 'L' | 'P' | 'x' | 'u' | 'U' | '\n' | '\r',
                ) => {}
                _ => return Vec::new(),
            },
            _ => {}
        }
    }
    Vec::new()
}

/// The byte offset of a 1-based line and column (in characters).
fn position(text: &str, line: u64, column: u64) -> Option<usize> {
    let line_start = if line <= 1 {
        0
    } else {
        let skip = usize::try_from(line - 2).ok()?;
        text.match_indices('\n').nth(skip)?.0 + 1
    };
    let column = usize::try_from(column.max(1) - 1).ok()?;
    let at = text[line_start..].char_indices().nth(column)?.0;
    Some(line_start + at)
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with(['{', '['])
}

/// JSON input: one object, or several objects one after another (as
/// `kubectl get -o json` piped together produces).
/// kubectl's reader keeps the last of duplicated keys here too.
fn parse_json(text: &str) -> Result<Vec<Value>, ManifestError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<StrictValue>();
    for item in &mut stream {
        let value = item.map_err(|e| ManifestError::Syntax(format!("json: {e}")))?;
        out.push(value.0);
    }
    Ok(out)
}

/// Flattens `kind: List` and checks that a document is an object with
/// apiVersion and kind, as the API machinery requires.
fn expand_list(value: Value, number: usize, out: &mut Vec<Document>) -> Result<(), ManifestError> {
    let Value::Object(map) = &value else {
        if value.is_null() {
            return Ok(());
        }
        return Err(ManifestError::Syntax(format!(
            "document {number}: expected an object with apiVersion and kind, found {}",
            type_name(&value)
        )));
    };
    let text_field = |name: &str| -> Result<String, ManifestError> {
        match map.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => Err(ManifestError::Syntax(
                format!("document {number}: {name} not set"),
            )),
            Some(other) => Err(ManifestError::Syntax(format!(
                "document {number}: {name} must be a string, found {}",
                type_name(other)
            ))),
        }
    };
    let api_version = text_field("apiVersion")?;
    let kind = text_field("kind")?;
    if kind == "List" && api_version == "v1" {
        let items = match map.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => {
                return Err(ManifestError::Syntax(format!(
                    "document {number}: a v1 List needs an items array"
                )));
            }
        };
        for item in items {
            expand_list(item, number, out)?;
        }
        return Ok(());
    }
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    out.push(Document {
        number,
        api_version,
        kind,
        name,
        value,
    });
    Ok(())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON value whose duplicated keys are noted (kubectl keeps the last
/// silently; podrun keeps it too, and says so).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        // Kubernetes integers are at most 64 bits; bigger ones stay as text so
        // that a quantity keeps its digits and an integer field reports them.
        Ok(i64::try_from(v)
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(v.to_string())))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(u64::try_from(v)
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a number JSON can hold")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let _document = reading::Depth::enter();
        loop {
            let _index = reading::At::index(out.len());
            let Some(StrictValue(v)) = seq.next_element()? else {
                break;
            };
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = BTreeMap::new();
        let _document = reading::Depth::enter();
        while let Some(key) = map.next_key::<MapKey>()? {
            let _key = reading::At::key(&key.0);
            let StrictValue(value) = map.next_value()?;
            if out.insert(key.0, value).is_some() {
                reading::duplicate();
            }
        }
        Ok(Value::Object(out.into_iter().collect()))
    }
}

/// A mapping key. YAML allows non-string keys (`80: x`); JSON, and so
/// Kubernetes, has only strings, so scalars are taken as their text.
struct MapKey(String);

impl<'de> Deserialize<'de> for MapKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(StrictVisitor)? {
            Value::String(s) => Ok(MapKey(s)),
            Value::Number(n) => Ok(MapKey(n.to_string())),
            Value::Bool(b) => Ok(MapKey(b.to_string())),
            Value::Null => Ok(MapKey("null".to_owned())),
            _ => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file's one pod, decoded.
    fn one(text: &str) -> Decoded {
        let mut file = decode(text).unwrap();
        assert_eq!(file.pods.len(), 1);
        file.pods.remove(0).unwrap()
    }

    fn errors_of(text: &str) -> Vec<String> {
        match decode(text).map(|mut f| f.pods.remove(0)) {
            Ok(Err(ManifestError::Invalid { errors, .. })) => {
                errors.iter().map(ToString::to_string).collect()
            }
            Ok(Ok(d)) if !d.unknown_fields.is_empty() => {
                d.unknown_fields.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: i\n";

    #[test]
    fn decodes_a_pod_from_yaml_and_json() {
        let d = one(POD);
        assert_eq!(d.object.workload(), Workload::Pod);
        assert_eq!(d.name, "x");
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},
            "spec":{"containers":[{"name":"a","image":"i"}]}}"#;
        assert_eq!(one(json).name, "x");
    }

    #[test]
    fn reports_every_unknown_field_with_its_path() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: x, lables: {}}\nspec:\n  containers:\n  - name: a\n    image: i\n    comand: [x]\n    resources: {limit: {cpu: 1}}\n";
        assert_eq!(
            errors_of(text),
            [
                "metadata.lables: unknown field",
                "spec.containers[0].comand: unknown field",
                "spec.containers[0].resources.limit: unknown field",
            ]
        );
    }

    #[test]
    fn reports_shape_errors_with_their_path() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: i\n    ports: [{containerPort: eighty}]\n";
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("spec.containers[0].ports[0].containerPort: invalid type"),
            "{errors:?}"
        );
        let missing =
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - image: i\n";
        // k8s-openapi takes a missing name as ""; validation then asks for it.
        match crate::manifest::parse(missing) {
            Err(ManifestError::Invalid { errors, .. }) => assert_eq!(
                errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                ["spec.containers[0].name: Required value"]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicated_keys_keep_the_last_value_with_a_warning() {
        // As kubectl reads them (go-yaml, and encoding/json for JSON).
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: first\n    image: second\n";
        let file = decode(yaml).unwrap();
        assert_eq!(
            file.warnings,
            [
                "document 1: spec.containers[0].image: the key is given twice; the last value is used, as kubectl does"
            ]
        );
        let Ok(Decoded {
            object: Object::Pod(pod),
            ..
        }) = &file.pods[0]
        else {
            panic!("{:?}", file.pods)
        };
        assert_eq!(
            pod.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("second")
        );
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x","name":"y"},"spec":{"containers":[{"name":"a","image":"i"}]}}"#;
        let file = decode(json).unwrap();
        assert_eq!(file.warnings.len(), 1, "{:?}", file.warnings);
        assert!(file.warnings[0].starts_with("document 1: metadata.name:"));
        assert_eq!(file.pods[0].as_ref().unwrap().name, "y");
    }

    #[test]
    fn a_quote_escaped_in_double_quotes_is_a_quote() {
        // go-yaml's `\'`, which the Kubernetes docs' envars-file-container.yaml uses.
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: i\n    command: [\"sh\", \"-c\", \"echo \\'a\\' \\\"b\\\" it\\'s\"]\n";
        let Object::Pod(pod) = one(yaml).object else {
            panic!()
        };
        assert_eq!(
            pod.spec.unwrap().containers[0].command.as_ref().unwrap()[2],
            "echo 'a' \"b\" it's"
        );
        // In single quotes a backslash is text.
        let single = yaml.replace("\"echo \\'a\\' \\\"b\\\" it\\'s\"", "'echo \\a\\ it''s'");
        let Object::Pod(pod) = one(&single).object else {
            panic!()
        };
        assert_eq!(
            pod.spec.unwrap().containers[0].command.as_ref().unwrap()[2],
            "echo \\a\\ it's"
        );
        // Any other unknown escape is still an error, with its place.
        let bad = yaml.replace("\\'a", "\\qa");
        let Err(ManifestError::Syntax(message)) = decode(&bad) else {
            panic!()
        };
        assert!(message.contains("line 8"), "{message}");
    }

    #[test]
    fn warnings_are_those_of_the_reading_that_succeeded() {
        let first = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i, command: [\"it\\'s\", \"\\'x\\'\"]}]}\n";
        let second = "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec:\n  containers:\n  - name: c\n    image: i\n    image: j\n";
        let file = decode(&format!("{first}---\n{second}")).unwrap();
        assert_eq!(
            file.warnings,
            [
                "document 2: spec.containers[0].image: the key is given twice; the last value is used, as kubectl does"
            ]
        );
        let Ok(Decoded {
            object: Object::Pod(pod),
            ..
        }) = &file.pods[0]
        else {
            panic!("{:?}", file.pods)
        };
        assert_eq!(
            pod.spec.as_ref().unwrap().containers[0].command,
            Some(vec!["it's".to_owned(), "'x'".to_owned()])
        );
    }

    #[test]
    fn every_pod_of_a_file_and_its_objects() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n";
        let two = format!("{POD}---\n{cm}---\n{}", POD.replace("name: x", "name: z"));
        let file = decode(&two).unwrap();
        let names: Vec<String> = file.pods.into_iter().map(|p| p.unwrap().name).collect();
        assert_eq!(names, ["x", "z"]);
        assert_eq!(file.objects.config_maps.len(), 1);
        assert!(file.warnings.is_empty());
        let with_service =
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n---\n{POD}");
        let d = decode(&with_service).unwrap();
        assert_eq!(
            d.warnings,
            [
                "ignoring v1 Service \"s\" (document 1): podrun runs Pods, Jobs and Deployments, and reads ConfigMaps and Secrets"
            ]
        );
        assert!(matches!(
            decode("apiVersion: v1\nkind: Service\n"),
            Err(ManifestError::NoPod(_))
        ));
        assert!(matches!(decode(""), Err(ManifestError::NoPod(_))));
        assert!(matches!(decode("---\n---\n"), Err(ManifestError::NoPod(_))));
        let Err(ManifestError::NoPod(found)) = decode(cm) else {
            panic!()
        };
        assert_eq!(found, "found v1 ConfigMap \"cfg\" (document 1)");
        let same = format!("{POD}---\n{cm}---\n{POD}");
        assert_eq!(
            crate::manifest::parse_all(&same).unwrap_err().to_string(),
            "two pods named \"x\" (documents 1 and 3): each pod of a file needs a name of its own"
        );
        let set =
            format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\n---\n{POD}");
        assert!(matches!(
            decode(&set),
            Err(ManifestError::Unrunnable(m)) if m.contains("StatefulSet \"db\" (document 1): podrun does not run StatefulSets")
        ));
    }

    #[test]
    fn config_maps_and_secrets_are_validated() {
        let bad = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{'a b': x, ok: z}}\nbinaryData: {{ok: eg==}}\n---\n{POD}"
        );
        match crate::manifest::parse_all(&bad) {
            Err(ManifestError::Invalid { kind, errors, .. }) => {
                assert_eq!(kind, "ConfigMap");
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                assert_eq!(errors.len(), 2, "{errors:?}");
                assert!(
                    errors[0].starts_with("data[a b]: Invalid value: \"a b\": a valid config key"),
                    "{errors:?}"
                );
                assert_eq!(
                    errors[1],
                    "data[ok]: Invalid value: \"ok\": duplicate of key present in binaryData"
                );
            }
            other => panic!("{other:?}"),
        }
        let tls = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ntype: kubernetes.io/tls\nstringData: {{tls.crt: x}}\n---\n{POD}"
        );
        match crate::manifest::parse_all(&tls) {
            Err(ManifestError::Invalid { kind, errors, .. }) => {
                assert_eq!(kind, "Secret");
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].to_string(), "data[tls.key]: Required value");
            }
            other => panic!("{other:?}"),
        }
        let (objects, _) = decode_objects(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n",
            "Secret",
        )
        .unwrap();
        assert_eq!(objects.secrets[0].data.as_ref().unwrap()["k"].0, b"v");
        assert!(matches!(
            decode_objects(POD, "ConfigMap"),
            Err(ManifestError::NotObjects {
                kind: "ConfigMap",
                ..
            })
        ));
    }

    #[test]
    fn wrong_api_version_for_a_known_kind() {
        let text = POD.replace("apiVersion: v1", "apiVersion: apps/v1");
        assert!(matches!(
            decode(&text),
            Err(ManifestError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn documents_must_be_objects_with_kind() {
        assert!(matches!(decode("[1, 2]"), Err(ManifestError::Syntax(_))));
        assert!(matches!(decode("just text"), Err(ManifestError::Syntax(_))));
        assert!(
            matches!(decode("kind: Pod\n"), Err(ManifestError::Syntax(m)) if m.contains("apiVersion not set"))
        );
        assert!(matches!(decode("{"), Err(ManifestError::Syntax(_))));
    }

    #[test]
    fn lists_are_flattened() {
        let json = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},
            "spec":{"containers":[{"name":"a","image":"i"}]}}]}"#;
        assert_eq!(one(json).name, "x");
    }

    #[test]
    fn numbers_are_accepted_as_quantities() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: i\n    resources: {requests: {cpu: 0.5, memory: 1e3}}\n";
        let Object::Pod(pod) = one(text).object else {
            panic!()
        };
        let c = &pod.spec.unwrap().containers[0];
        let req = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(req["cpu"].0, "0.5");
        assert_eq!(req["memory"].0, "1000");
    }
}
