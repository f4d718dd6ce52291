//! Reading a manifest named on the command line (`-` is standard input).

use std::io::Read;

use podrun::manifest::{self, Manifest};

use super::Failure;

pub fn read(file: &str) -> Result<String, Failure> {
    let mut text = String::new();
    let result = if file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    result.map_err(|e| {
        let what = if file == "-" { "standard input" } else { file };
        Failure::Input(format!("cannot read {what}: {e}"))
    })?;
    Ok(text)
}

/// Reads, parses and validates; warnings go to stderr.
pub fn load(file: &str) -> Result<Manifest, Failure> {
    let text = read(file)?;
    let manifest = manifest::parse(&text)?;
    for w in &manifest.warnings {
        eprintln!("warning: {w}");
    }
    Ok(manifest)
}
