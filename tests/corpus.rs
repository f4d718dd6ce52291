//! `podrun validate` over a corpus of public manifests (the Kubernetes
//! docs' examples and kubernetes/examples; sources and licences in
//! tests/corpus/SOURCES.md). Each file's outcome — valid, or the error
//! that refuses it — must be the one recorded in tests/corpus/expected.tsv,
//! so that a change in what podrun accepts is seen, and the record says
//! why each refused file is refused. The files that hold only ConfigMaps
//! or Secrets are given to every validation of their source with
//! `--configmap`/`--secret`, as a user applies the docs' objects first.
//!
//! `PODRUN_CORPUS_BLESS=1 cargo test --test corpus` rewrites the record
//! from what podrun says now (read the diff before committing it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const RECORD: &str = "tests/corpus/expected.tsv";

/// What `podrun validate` said of one file.
fn outcome(file: &Path, objects: &[(&'static str, PathBuf)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_podrun"));
    // A node of its own, so that what fits is the same on every machine.
    command
        .arg("validate")
        .arg(file)
        .args(["--node-memory", "16Gi", "--node-cpus", "4"]);
    for (flag, path) in objects {
        command.arg(flag).arg(path);
    }
    let out = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("podrun runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => format!("valid\t{}", stdout.lines().count()),
        Some(code) => {
            // The first error, and its first reason when it lists them.
            let mut lines = stderr.lines().filter(|l| !l.starts_with("warning: "));
            let first = lines.next().unwrap_or_default();
            let reason = lines.find(|l| l.starts_with("* ")).unwrap_or_default();
            format!("refused {code}\t{}", format!("{first} {reason}").trim_end())
        }
        None => panic!("{}: podrun validate was killed", file.display()),
    }
}

/// Which kind of objects a file holds, when it holds nothing else.
fn objects_only(text: &str) -> Option<&'static str> {
    ["ConfigMap", "Secret"]
        .into_iter()
        .find(|kind| podrun::manifest::parse_objects(text, kind).is_ok())
}

#[test]
fn the_corpus_validates_as_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    sources.sort();
    let mut seen = BTreeMap::new();
    for source in sources {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&source)
            .expect("source dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        let mut objects = Vec::new();
        let mut manifests = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            match objects_only(&text) {
                Some("ConfigMap") => objects.push(("--configmap", file)),
                Some(_) => objects.push(("--secret", file)),
                None => manifests.push(file),
            }
        }
        for file in manifests {
            let relative = file
                .strip_prefix(&root)
                .expect("under the corpus")
                .display()
                .to_string();
            seen.insert(relative, outcome(&file, &objects));
        }
    }
    assert!(
        seen.len() > 200,
        "the corpus is there: {} files",
        seen.len()
    );
    let now: String = seen.iter().map(|(f, o)| format!("{f}\t{o}\n")).collect();
    let record_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORD);
    if std::env::var_os("PODRUN_CORPUS_BLESS").is_some() {
        std::fs::write(&record_path, &now).expect("write the record");
        return;
    }
    let record = std::fs::read_to_string(&record_path).expect("tests/corpus/expected.tsv");
    let recorded: BTreeMap<&str, &str> =
        record.lines().filter_map(|l| l.split_once('\t')).collect();
    let mut differences = Vec::new();
    for (file, said) in &seen {
        match recorded.get(file.as_str()) {
            Some(r) if r == said => {}
            Some(r) => differences.push(format!("{file}\n  recorded: {r}\n  now:      {said}")),
            None => differences.push(format!("{file}: not recorded; now: {said}")),
        }
    }
    for file in recorded.keys() {
        if !seen.contains_key(*file) {
            differences.push(format!("{file}: recorded, but not in the corpus"));
        }
    }
    let valid = seen.values().filter(|o| o.starts_with("valid")).count();
    assert!(
        differences.is_empty(),
        "{} of {} files differ from {RECORD} ({valid} valid now):\n{}",
        differences.len(),
        seen.len(),
        differences.join("\n")
    );
}
