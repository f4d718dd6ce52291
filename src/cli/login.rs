//! `podrun login|logout REGISTRY`: credentials in containers-auth.json(5),
//! where podman, skopeo and buildah keep them (REGISTRY_AUTH_FILE, else
//! /run/containers/0/auth.json).

use std::io::Read;
use std::path::PathBuf;

use podrun::image::registry::auth::{self, Candidate, Credentials, Keyring, Origin};
use podrun::image::{self, PullSettings};

use super::Failure;

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The registry, host[:port]
    registry: String,
    #[arg(short, long)]
    username: String,
    /// Read the password from standard input
    #[arg(long, required = true)]
    password_stdin: bool,
    /// The containers-auth.json to write (default: REGISTRY_AUTH_FILE, else /run/containers/0/auth.json)
    #[arg(long)]
    authfile: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// The registry, host[:port]
    registry: String,
    /// The containers-auth.json to change (default: REGISTRY_AUTH_FILE, else /run/containers/0/auth.json)
    #[arg(long)]
    authfile: Option<PathBuf>,
}

/// A registry as the credentials name it: `host[:port]`, no scheme or path.
fn registry(name: &str) -> Result<String, Failure> {
    let bare = name
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let ok = !bare.is_empty()
        && !bare.contains('/')
        && image::normalize(&format!("{bare}/x")).is_ok_and(|n| n.starts_with(bare));
    if ok {
        Ok(
            if bare == "index.docker.io" || bare == "registry-1.docker.io" {
                "docker.io".to_owned()
            } else {
                bare.to_owned()
            },
        )
    } else {
        Err(Failure::Input(format!(
            "invalid registry {name:?}: give a host and port, as in 127.0.0.1:5000 or quay.io"
        )))
    }
}

pub fn login(args: LoginArgs) -> Result<(), Failure> {
    let registry = registry(&args.registry)?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| Failure::Input(format!("reading the password from stdin: {e}")))?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(Failure::Input("the password on stdin is empty".to_owned()));
    }
    let path = args.authfile.unwrap_or_else(auth::default_login_file);
    let candidate = Candidate {
        credentials: Credentials {
            username: args.username.clone(),
            password: password.clone(),
            identity_token: None,
        },
        origin: Origin::File(path.clone()),
    };
    let settings = PullSettings::of_this_machine(Keyring::default()).map_err(input)?;
    image::pull::verify_login(&registry, candidate, &settings).map_err(input)?;
    auth::login(&path, &registry, &args.username, &password)
        .map_err(|e| Failure::Other(e.into()))?;
    println!("Login Succeeded!");
    Ok(())
}

pub fn logout(args: LogoutArgs) -> Result<(), Failure> {
    let registry = registry(&args.registry)?;
    let path = args.authfile.unwrap_or_else(auth::default_login_file);
    match auth::logout(&path, &registry) {
        Ok(true) => {
            println!("Removed login credentials for {registry}");
            Ok(())
        }
        Ok(false) => Err(Failure::Input(format!(
            "not logged into {registry} (no entry in {})",
            path.display()
        ))),
        Err(e) => Err(Failure::Other(e.into())),
    }
}

fn input(e: image::ImageError) -> Failure {
    if e.is_input() {
        Failure::Input(e.to_string())
    } else {
        Failure::Other(e.into())
    }
}
