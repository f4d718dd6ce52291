//! `podrun image import|ls|inspect|rm|prune`: the local image store.

use anyhow::Context;
use podrun::image::{self, ImageError, ListEntry, Source, Store};

use super::progress::human_size;
use super::{Failure, Output};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Import an image: oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]
    Import {
        /// Where the image is, in skopeo's transport:path[:reference] form
        source: String,
        /// The name to store it as (default: the name the source gives it)
        name: Option<String>,
    },
    /// Pull an image from its registry (registries.conf, certs.d and the
    /// credentials of login, REGISTRY_AUTH_FILE or docker's config apply)
    Pull {
        /// The image, short (alpine:3.20) or full (quay.io/org/app@sha256:...)
        name: String,
        /// The platform of a multi-platform image: OS/ARCH[/VARIANT]
        #[arg(long)]
        platform: Option<String>,
    },
    /// List the images, as docker images does
    #[command(alias = "list")]
    Ls {
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print an image's OCI config as JSON
    Inspect {
        /// The image's name, short (busybox:1.36) or full
        name: String,
    },
    /// Remove images (refused for an image a running pod uses)
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove blobs, unpacked layers and leftovers no image uses
    Prune,
}

/// Bad input (a name, a source, an archive, an image in use) exits 2.
fn failure(e: ImageError) -> Failure {
    if e.is_input() {
        Failure::Input(e.to_string())
    } else {
        Failure::Other(e.into())
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    // Names and sources are checked before the store is touched.
    let store = || Store::open_default().map_err(failure);
    match args.verb {
        Verb::Import { source, name } => {
            if let Some(n) = &name {
                image::normalize(n).map_err(failure)?;
            }
            let source = Source::parse(&source).map_err(failure)?;
            let imported = store()?.import(&source, name.as_deref()).map_err(failure)?;
            println!("{} {}", imported.reference, imported.digest);
        }
        Verb::Pull { name, platform } => {
            image::normalize(&name).map_err(failure)?;
            let platform = match platform {
                Some(p) => image::Platform::parse(&p).map_err(failure)?,
                None => image::Platform::this_machine(),
            };
            let settings =
                image::PullSettings::of_this_machine(Default::default()).map_err(failure)?;
            let progress = super::progress::PullProgress::stderr();
            let pulled = store()?
                .pull(&name, &platform, &settings, &progress)
                .map_err(failure)?;
            if pulled.unchanged {
                eprintln!("Image is up to date for {}", pulled.reference);
            }
            if pulled.reference.contains('@') {
                println!("{}", pulled.reference);
            } else {
                println!("{}@{}", pulled.reference, pulled.repo_digest);
            }
        }
        Verb::Ls { output } => {
            let entries = store()?.list().map_err(failure)?;
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&entries).context("encoding")?
                ),
                Output::Text => print!("{}", table(&entries, now())),
            }
        }
        Verb::Inspect { name } => {
            image::normalize(&name).map_err(failure)?;
            let bytes = store()?.config_bytes(&name).map_err(failure)?;
            let config: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("the stored config of {name} is not JSON"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&config).context("encoding")?
            );
        }
        Verb::Rm { names } => {
            for n in &names {
                image::normalize(n).map_err(failure)?;
            }
            // The pods of this machine say which images they use.
            let in_use = || {
                podrun::api::state::images_in_use()
                    .into_iter()
                    .map(|(pod, image)| image::ImageUse { pod, image })
                    .collect()
            };
            let removed = store()?.remove(&names, &in_use).map_err(failure)?;
            for name in removed.untagged {
                println!("Untagged: {name}");
            }
            for digest in removed.deleted {
                println!("Deleted: {digest}");
            }
        }
        Verb::Prune => {
            let (removed, freed) = store()?.prune().map_err(failure)?;
            for path in &removed {
                println!("deleted {}", path.display());
            }
            println!("Total reclaimed space: {}", human_size(freed));
        }
    }
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// REPOSITORY TAG DIGEST SIZE CREATED, as `docker images` prints them,
/// and where each came from.
fn table(entries: &[ListEntry], now: i64) -> String {
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.familiar.clone(),
                e.tag.clone().unwrap_or_else(|| "<none>".to_owned()),
                image::short_digest(&e.digest).to_owned(),
                human_size(e.size),
                e.created
                    .as_deref()
                    .and_then(image::parse_rfc3339)
                    .map_or_else(|| "N/A".to_owned(), |t| ago(now - t)),
                e.source.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED", "SOURCE"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let line = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("   ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// "5 minutes ago", "About an hour ago", "3 weeks ago", as Docker words them.
fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    let text = match s {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_owned(),
        120..=3599 => format!("{} minutes", s / 60),
        _ => {
            let hours = (s + 1800) / 3600;
            match hours {
                1 => "About an hour".to_owned(),
                2..=47 => format!("{hours} hours"),
                48..=335 => format!("{} days", hours / 24),
                336..=1439 => format!("{} weeks", hours / 24 / 7),
                1440..=17519 => format!("{} months", hours / 24 / 30),
                _ => format!("{} years", hours / 24 / 365),
            }
        }
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_262_000), "4.26MB");
        assert_eq!(human_size(4_200_000), "4.2MB");
        assert_eq!(human_size(872_000), "872kB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_size(1_240_000_000), "1.24GB");
    }

    #[test]
    fn ages_as_docker_words_them() {
        assert_eq!(ago(0), "Less than a second ago");
        assert_eq!(ago(30), "30 seconds ago");
        assert_eq!(ago(90), "About a minute ago");
        assert_eq!(ago(600), "10 minutes ago");
        assert_eq!(ago(3600), "About an hour ago");
        assert_eq!(ago(5 * 3600), "5 hours ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(ago(21 * 86400), "3 weeks ago");
        assert_eq!(ago(90 * 86400), "3 months ago");
        assert_eq!(ago(3 * 365 * 86400), "3 years ago");
    }

    #[test]
    fn lists_as_docker_images() {
        let e = ListEntry {
            reference: "docker.io/library/busybox:1.36".to_owned(),
            repository: "docker.io/library/busybox".to_owned(),
            familiar: "busybox".to_owned(),
            tag: Some("1.36".to_owned()),
            digest: "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
                .to_owned(),
            size: 4_262_000,
            created: Some("1970-01-01T00:00:00Z".to_owned()),
            source: Some("registry.example:5000".to_owned()),
        };
        let out = table(&[e], 7200);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "REPOSITORY   TAG    DIGEST                SIZE     CREATED       SOURCE",
                "busybox      1.36   sha256:6c3c624b58db   4.26MB   2 hours ago   registry.example:5000",
            ]
        );
    }
}
