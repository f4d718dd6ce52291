//! Running one CNI plugin as the CNI specification says: its binary found
//! in the plugin directories, the command and the pod in `CNI_*`
//! variables, the network configuration on stdin, a result or an error
//! object on stdout.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::Value;

/// How long one plugin may take (containerd's CNI calls have none of
/// their own; a hung plugin must not hang `up` or `down` for ever).
pub const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {kind:?} not found in {dirs}")]
    NotFound { kind: String, dirs: String },
    #[error("cannot run plugin {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {kind:?} gave no answer in {} s", TIMEOUT.as_secs())]
    Timeout { kind: String },
    #[error("plugin {kind:?} failed: {message}")]
    Failed { kind: String, message: String },
    #[error("plugin {kind:?} answered what is not a CNI result: {reason}")]
    BadResult { kind: String, reason: String },
}

/// The binary of plugin `kind`: the first of `dirs` that has it.
pub fn find(kind: &str, dirs: &[PathBuf]) -> Result<PathBuf, PluginError> {
    dirs.iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| PluginError::NotFound {
            kind: kind.to_owned(),
            dirs: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// What a plugin is asked, besides its configuration.
pub struct Call<'a> {
    /// `ADD` or `DEL`.
    pub command: &'static str,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub args: &'a str,
    pub bin_dirs: &'a [PathBuf],
    /// A network namespace (an open descriptor) to run the plugin in,
    /// instead of this process's.
    pub enter: Option<i32>,
}

/// The plugin's error object's words: `msg`, and `details` when it adds
/// something.
fn error_message(stdout: &[u8], stderr: &[u8], status: std::process::ExitStatus) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or_default();
        let details = v.get("details").and_then(Value::as_str).unwrap_or_default();
        match (msg.is_empty(), details.is_empty()) {
            (false, false) if !msg.contains(details) => return format!("{msg}: {details}"),
            (false, _) => return msg.to_owned(),
            (true, false) => return details.to_owned(),
            (true, true) => {}
        }
    }
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        status.to_string()
    } else {
        stderr.to_owned()
    }
}

/// `poll` on `fds` until `deadline`: `None` once it has passed (or passes
/// with nothing ready).
fn poll_before(fds: &mut [PollFd], deadline: Instant) -> Option<nix::Result<i32>> {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
    if ms == 0 {
        return None;
    }
    match poll(fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
        Ok(0) => None,
        ready => Some(ready),
    }
}

/// One read of a ready pipe into `into`; `open` goes false at its end.
fn read_some(from: impl AsFd, into: &mut Vec<u8>, open: &mut bool) {
    let mut buf = [0u8; 16 * 1024];
    match nix::unistd::read(from.as_fd(), &mut buf) {
        Ok(0) => *open = false,
        Ok(n) => into.extend_from_slice(&buf[..n]),
        Err(nix::errno::Errno::EINTR) => {}
        Err(_) => *open = false,
    }
}

/// Reads the child's stdout and stderr together to their ends (a plugin
/// that fills one pipe while the other is read must not stall), or until
/// `deadline`: `None` then.
fn read_both(
    out: &std::process::ChildStdout,
    err: &std::process::ChildStderr,
    deadline: Instant,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut got = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let mut fds = Vec::new();
        if out_open {
            fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
        }
        if err_open {
            fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
        }
        match poll_before(&mut fds, deadline)? {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Some(got),
        }
        let mut ready = fds
            .iter()
            .map(|f| f.any().unwrap_or(true))
            .collect::<Vec<_>>()
            .into_iter();
        if out_open && ready.next() == Some(true) {
            read_some(out, &mut got.0, &mut out_open);
        }
        if err_open && ready.next() == Some(true) {
            read_some(err, &mut got.1, &mut err_open);
        }
    }
    Some(got)
}

/// Writes all of `data` to the child's stdin, or gives up at `deadline`
/// (false); a plugin that closed its stdin early is not an error here.
fn write_until(to: &std::process::ChildStdin, data: &[u8], deadline: Instant) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        let mut fds = [PollFd::new(to.as_fd(), PollFlags::POLLOUT)];
        match poll_before(&mut fds, deadline) {
            None => return false,
            Some(Ok(_) | Err(nix::errno::Errno::EINTR)) => {}
            Some(Err(_)) => return true,
        }
        // At most PIPE_BUF at once: a write that poll said fits never
        // blocks.
        match nix::unistd::write(to, &rest[..rest.len().min(4096)]) {
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => return true,
        }
    }
    true
}

/// The child's exit, or `None` once `deadline` passes.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Runs `binary` (plugin `kind`) with `config` on its stdin; its result
/// (JSON; `null` for a DEL, which answers nothing).
pub fn run(binary: &Path, kind: &str, call: &Call, config: &Value) -> Result<Value, PluginError> {
    let path = std::env::join_paths(call.bin_dirs).unwrap_or_default();
    // The plugins inherit the environment (portmap and firewall find
    // iptables through PATH), as libcni gives it.
    let mut command = Command::new(binary);
    if let Some(fd) = call.enter {
        // SAFETY: setns is async-signal-safe; the child only calls it
        // between fork and exec, on a descriptor the parent keeps open.
        unsafe {
            command.pre_exec(move || {
                if nix::libc::setns(fd, nix::libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = command
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_ARGS", call.args)
        .env("CNI_PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| PluginError::Spawn {
            path: binary.to_owned(),
            source,
        })?;
    let deadline = Instant::now() + TIMEOUT;
    let timed_out = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
        PluginError::Timeout {
            kind: kind.to_owned(),
        }
    };
    let input = serde_json::to_vec(config).unwrap_or_default();
    if let Some(stdin) = child.stdin.take() {
        // A plugin reads its whole configuration before it acts; one that
        // does not read it fails below with what it says, or times out.
        if !write_until(&stdin, &input, deadline) {
            drop(stdin);
            return Err(timed_out(&mut child));
        }
    }
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let read = match (&out, &err) {
        (Some(out), Some(err)) => read_both(out, err, deadline),
        _ => Some((Vec::new(), Vec::new())),
    };
    let Some((stdout, stderr)) = read else {
        return Err(timed_out(&mut child));
    };
    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => return Err(timed_out(&mut child)),
        Err(source) => {
            return Err(PluginError::Spawn {
                path: binary.to_owned(),
                source,
            });
        }
    };
    if !status.success() {
        return Err(PluginError::Failed {
            kind: kind.to_owned(),
            message: error_message(&stdout, &stderr, status),
        });
    }
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&stdout).map_err(|e| PluginError::BadResult {
        kind: kind.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn plugin(dir: &Path, name: &str, script: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn call<'a>(dirs: &'a [PathBuf]) -> Call<'a> {
        Call {
            command: "ADD",
            container_id: "c1",
            netns: Path::new("/run/x/ns/net"),
            ifname: "eth0",
            args: "IgnoreUnknown=1;K8S_POD_NAME=p",
            bin_dirs: dirs,
            enter: None,
        }
    }

    #[test]
    fn a_plugin_gets_the_call_and_its_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![dir.path().join("none"), dir.path().to_owned()];
        let bin = plugin(
            dir.path(),
            "echo",
            r#"conf=$(cat); printf '{"cmd":"%s","id":"%s","ns":"%s","if":"%s","args":"%s","conf":%s}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$conf""#,
        );
        assert_eq!(find("echo", &dirs).unwrap(), bin);
        let out = run(&bin, "echo", &call(&dirs), &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"cmd": "ADD", "id": "c1", "ns": "/run/x/ns/net", "if": "eth0",
                "args": "IgnoreUnknown=1;K8S_POD_NAME=p", "conf": {"a": 1}})
        );
        let e = find("nope", &dirs).unwrap_err().to_string();
        assert!(e.starts_with("plugin \"nope\" not found in "), "{e}");
    }

    #[test]
    fn a_plugins_error_is_its_own_words() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![dir.path().to_owned()];
        let bin = plugin(
            dir.path(),
            "bad",
            r#"cat >/dev/null; echo '{"code":11,"msg":"failed to allocate","details":"no IP addresses available"}'; exit 1"#,
        );
        let e = run(&bin, "bad", &call(&dirs), &Value::Null).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugin \"bad\" failed: failed to allocate: no IP addresses available"
        );
        let bin = plugin(dir.path(), "crash", "echo oops >&2; exit 3");
        let e = run(&bin, "crash", &call(&dirs), &Value::Null).unwrap_err();
        assert_eq!(e.to_string(), "plugin \"crash\" failed: oops");
        let bin = plugin(dir.path(), "junk", "echo '{'");
        assert!(matches!(
            run(&bin, "junk", &call(&dirs), &Value::Null),
            Err(PluginError::BadResult { .. })
        ));
        let bin = plugin(dir.path(), "quiet", "true");
        assert_eq!(
            run(&bin, "quiet", &call(&dirs), &Value::Null).unwrap(),
            Value::Null
        );
    }
}
