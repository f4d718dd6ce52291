//! What a Job or Deployment adds around its pod template, and what podrun,
//! running one pod, can honour of it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::non_negative;
use crate::manifest::field::{BadValue, FieldError, FieldPath};
use crate::manifest::model::{Extracted, Owner};

pub fn validate(e: &Extracted, errors: &mut Vec<FieldError>) {
    match &e.owner {
        Owner::Pod => {}
        Owner::Job(job) => validate_job(e, job, errors),
        Owner::Deployment(d) => validate_deployment(e, d, errors),
    }
}

fn validate_job(e: &Extracted, job: &JobSpec, errors: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let pod_spec = &e.paths.spec;
    let restart = e.pod.spec.restart_policy.as_deref().unwrap_or("Always");
    let policy_path = pod_spec.child("restartPolicy");
    match restart {
        "OnFailure" | "Never" => {}
        "Always" | "" => errors.push(FieldError::required_because(
            &policy_path,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        other => errors.push(FieldError::not_supported(
            &policy_path,
            other,
            &["OnFailure", "Never"],
        )),
    }
    for (field, value) in [
        ("parallelism", job.parallelism.map(i64::from)),
        ("completions", job.completions.map(i64::from)),
        ("backoffLimit", job.backoff_limit.map(i64::from)),
        ("activeDeadlineSeconds", job.active_deadline_seconds),
        (
            "ttlSecondsAfterFinished",
            job.ttl_seconds_after_finished.map(i64::from),
        ),
    ] {
        non_negative(errors, &spec.child(field), value);
    }
    for (field, value) in [
        ("parallelism", job.parallelism),
        ("completions", job.completions),
    ] {
        if let Some(n) = value
            && n > 1
        {
            errors.push(FieldError::invalid(
                &spec.child(field),
                n,
                "podrun runs a single pod: only 1 is supported",
            ));
        }
    }
    for (i, rule) in job
        .pod_failure_policy
        .iter()
        .flat_map(|p| p.rules.iter())
        .enumerate()
    {
        if !matches!(
            rule.action.as_str(),
            "FailJob" | "FailIndex" | "Ignore" | "Count"
        ) {
            errors.push(FieldError::not_supported(
                &spec
                    .child("podFailurePolicy")
                    .child("rules")
                    .index(i)
                    .child("action"),
                rule.action.as_str(),
                &["Count", "FailIndex", "FailJob", "Ignore"],
            ));
        }
    }
    if let Some(selector) = &job.selector
        && job.manual_selector != Some(true)
    {
        errors.push(FieldError::invalid(
            &spec.child("selector"),
            render_selector(selector),
            "`selector` not auto-generated",
        ));
    } else if let Some(selector) = &job.selector
        && !matches(selector, &e.pod.labels)
    {
        errors.push(labels_mismatch(e));
    }
}

fn validate_deployment(e: &Extracted, d: &DeploymentSpec, errors: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let pod_spec = &e.paths.spec;
    let restart = e.pod.spec.restart_policy.as_deref().unwrap_or("Always");
    if restart != "Always" {
        errors.push(FieldError::not_supported(
            &pod_spec.child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if e.pod.spec.active_deadline_seconds.is_some() {
        errors.push(FieldError::forbidden(
            &pod_spec.child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    let replicas = d.replicas.unwrap_or(1);
    non_negative(errors, &spec.child("replicas"), Some(replicas.into()));
    if replicas != 1 && replicas >= 0 {
        errors.push(FieldError::invalid(
            &spec.child("replicas"),
            replicas,
            "podrun runs one pod per Deployment: only 1 replica is supported for now",
        ));
    }
    let selector = &d.selector;
    let empty = selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty);
    if empty {
        errors.push(FieldError::invalid(
            &spec.child("selector"),
            render_selector(selector),
            "empty selector is invalid for deployment",
        ));
    } else if !matches(selector, &e.pod.labels) {
        errors.push(labels_mismatch(e));
    }
    if let Some(strategy) = &d.strategy {
        let strategy_path = spec.child("strategy");
        match strategy.type_.as_deref() {
            None | Some("RollingUpdate") => {}
            Some("Recreate") if strategy.rolling_update.is_some() => {
                errors.push(FieldError::forbidden(
                    &strategy_path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ))
            }
            Some("Recreate") => {}
            Some(other) => errors.push(FieldError::not_supported(
                &strategy_path.child("type"),
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    non_negative(
        errors,
        &spec.child("minReadySeconds"),
        d.min_ready_seconds.map(i64::from),
    );
    non_negative(
        errors,
        &spec.child("revisionHistoryLimit"),
        d.revision_history_limit.map(i64::from),
    );
}

fn labels_mismatch(e: &Extracted) -> FieldError {
    let labels = serde_json::to_string(&e.pod.labels).unwrap_or_default();
    FieldError::invalid(
        &FieldPath::new("spec")
            .child("template")
            .child("metadata")
            .child("labels"),
        BadValue::Json(labels),
        "`selector` does not match template `labels`",
    )
}

fn render_selector(selector: &LabelSelector) -> BadValue {
    BadValue::Json(serde_json::to_string(selector).unwrap_or_default())
}

/// A label selector against a label set (matchLabels and matchExpressions).
fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let value = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}
