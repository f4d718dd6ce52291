//! Text → the one pod-bearing Kubernetes object in it, decoded strictly into
//! the k8s-openapi types: every field that the types do not know is reported
//! with its path, as `kubectl apply --validate=strict` does.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::ManifestError;
use super::field::{FieldError, FieldPath};

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

pub use k8s_openapi::api::core::v1::Secret;

impl Object {
    pub fn workload(&self) -> Workload {
        match self {
            Object::Pod(_) => Workload::Pod,
            Object::Job(_) => Workload::Job,
            Object::Deployment(_) => Workload::Deployment,
        }
    }
}

/// The decoded object and what was noticed on the way.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub object: Object,
    /// The object's `metadata.name` as written, for error headers.
    pub name: String,
    /// Fields the Kubernetes types do not have, reported with validation's
    /// errors so that all of a manifest's problems come at once.
    pub unknown_fields: Vec<FieldError>,
    pub warnings: Vec<String>,
    /// The file's v1 Secrets (a pod's imagePullSecrets may name them).
    pub secrets: Vec<Secret>,
}

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

pub fn decode(text: &str) -> Result<Decoded, ManifestError> {
    let documents = split_documents(text)?;
    let mut warnings = Vec::new();
    let mut pods = Vec::new();
    let mut others = Vec::new();
    for doc in documents {
        match Workload::from_kind(&doc.kind) {
            Some(w) if doc.api_version == w.api_version() => pods.push((w, doc)),
            Some(w) => {
                return Err(ManifestError::UnsupportedVersion {
                    document: doc.number,
                    kind: doc.kind,
                    api_version: doc.api_version,
                    expected: w.api_version(),
                });
            }
            None => others.push(doc),
        }
    }
    if pods.len() > 1 {
        let found: Vec<String> = pods.iter().map(|(_, d)| d.describe()).collect();
        return Err(ManifestError::ManyPods(found.join(", ")));
    }
    let Some((workload, doc)) = pods.pop() else {
        let found: Vec<String> = others.iter().map(Document::describe).collect();
        return Err(ManifestError::NoPod(if found.is_empty() {
            "the file holds no Kubernetes object".to_owned()
        } else {
            format!("found {}", found.join(", "))
        }));
    };
    let mut secrets = Vec::new();
    for other in &others {
        if other.kind == "Secret" && other.api_version == "v1" {
            secrets.push(secret(other)?);
            continue;
        }
        warnings.push(format!(
            "ignoring {}: podrun runs only Pods, Jobs and Deployments (and reads Secrets)",
            other.describe()
        ));
    }
    let (object, unknown_fields) = decode_strict(workload, &doc)?;
    Ok(Decoded {
        object,
        name: doc.name,
        unknown_fields,
        warnings,
        secrets,
    })
}

/// A file of Secrets only (`podrun up --secret FILE`).
pub fn decode_secrets(text: &str) -> Result<Vec<Secret>, ManifestError> {
    let mut secrets = Vec::new();
    for doc in split_documents(text)? {
        if doc.kind != "Secret" || doc.api_version != "v1" {
            return Err(ManifestError::NotSecrets(doc.describe()));
        }
        secrets.push(secret(&doc)?);
    }
    Ok(secrets)
}

/// A v1 Secret, decoded strictly; `stringData` folded into `data` as the
/// API server does.
fn secret(doc: &Document) -> Result<Secret, ManifestError> {
    let mut errors = Vec::new();
    let Some(mut secret) = strict::<Secret>(&doc.value, &mut errors).filter(|_| errors.is_empty())
    else {
        return Err(ManifestError::Invalid {
            kind: "Secret",
            name: doc.name.clone(),
            errors,
        });
    };
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in string_data {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    Ok(secret)
}

/// The object and its unknown fields, or the shape error that stopped it.
fn decode_strict(
    workload: Workload,
    doc: &Document,
) -> Result<(Object, Vec<FieldError>), ManifestError> {
    let mut errors = Vec::new();
    let result = match workload {
        Workload::Pod => strict::<Pod>(&doc.value, &mut errors).map(|p| Object::Pod(Box::new(p))),
        Workload::Job => strict::<Job>(&doc.value, &mut errors).map(|j| Object::Job(Box::new(j))),
        Workload::Deployment => {
            strict::<Deployment>(&doc.value, &mut errors).map(|d| Object::Deployment(Box::new(d)))
        }
    };
    match result {
        Some(object) => Ok((object, errors)),
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

fn split_documents(text: &str) -> Result<Vec<Document>, ManifestError> {
    let values = if looks_like_json(text) {
        parse_json(text)?
    } else {
        // kubectl reads YAML 1.1: 010 is octal 8, as it is there.
        let mut options = serde_saphyr::Options::default();
        options.legacy_octal_numbers = true;
        serde_saphyr::from_multiple_with_options::<Option<StrictValue>>(text, options)
            .map_err(|e| ManifestError::Syntax(format!("yaml: {e}")))?
            .into_iter()
            .flatten()
            .map(|v| v.0)
            .collect()
    };
    let mut documents = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        expand_list(value, i + 1, &mut documents)?;
    }
    Ok(documents)
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with(['{', '['])
}

/// JSON input: one object, or several objects one after another (as
/// `kubectl get -o json` piped together produces).
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

/// A JSON value that refuses duplicate keys, as the API server's strict
/// decoder does (`duplicate field "image"`); serde_json's own `Value` keeps
/// the last silently.
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
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<MapKey>()? {
            let StrictValue(value) = map.next_value()?;
            if out.insert(key.0.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate field {:?}", key.0)));
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

    fn errors_of(text: &str) -> Vec<String> {
        match decode(text) {
            Err(ManifestError::Invalid { errors, .. }) => {
                errors.iter().map(ToString::to_string).collect()
            }
            Ok(d) if !d.unknown_fields.is_empty() => {
                d.unknown_fields.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: i\n";

    #[test]
    fn decodes_a_pod_from_yaml_and_json() {
        let d = decode(POD).unwrap();
        assert_eq!(d.object.workload(), Workload::Pod);
        assert_eq!(d.name, "x");
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},
            "spec":{"containers":[{"name":"a","image":"i"}]}}"#;
        assert_eq!(decode(json).unwrap().name, "x");
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
    fn refuses_duplicate_keys() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","kind":"Pod"}"#;
        assert!(
            matches!(decode(json), Err(ManifestError::Syntax(m)) if m.contains("duplicate field \"kind\""))
        );
        let yaml = "apiVersion: v1\nkind: Pod\nkind: Pod\n";
        assert!(matches!(decode(yaml), Err(ManifestError::Syntax(_))));
    }

    #[test]
    fn one_pod_bearing_document_only() {
        let two = format!("{POD}---\n{POD}");
        assert!(matches!(decode(&two), Err(ManifestError::ManyPods(_))));
        let with_service =
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n---\n{POD}");
        let d = decode(&with_service).unwrap();
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(matches!(
            decode("apiVersion: v1\nkind: Service\n"),
            Err(ManifestError::NoPod(_))
        ));
        assert!(matches!(decode(""), Err(ManifestError::NoPod(_))));
        assert!(matches!(decode("---\n---\n"), Err(ManifestError::NoPod(_))));
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
        assert_eq!(decode(json).unwrap().name, "x");
    }

    #[test]
    fn numbers_are_accepted_as_quantities() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: i\n    resources: {requests: {cpu: 0.5, memory: 1e3}}\n";
        let Object::Pod(pod) = decode(text).unwrap().object else {
            panic!()
        };
        let c = &pod.spec.unwrap().containers[0];
        let req = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(req["cpu"].0, "0.5");
        assert_eq!(req["memory"].0, "1000");
    }
}
