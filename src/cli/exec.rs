//! `podrun exec NAME [-c CONTAINER] [-i] [-t] -- CMD...`: runs a command in
//! a running container's namespaces, cgroup and root, as the container runs
//! (its user, capabilities, environment and working directory), through the
//! pod's socket API, and exits with the command's code. Without a tty the
//! command gets this process's own stdin (with `-i`), stdout and stderr;
//! with one, it gets a terminal of the supervisor's whose other end comes
//! back here and is relayed to this one.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{Context, anyhow};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::{isatty, pipe2, read, write};
use podrun::api::client::{CallError, Client};
use podrun::api::{self, Reply};

use super::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The pod's name
    name: String,
    /// The container (default: the pod's first app container)
    #[arg(short, long)]
    container: Option<String>,
    /// Pass this command's standard input to the process
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Give the process a terminal (when standard input is one)
    #[arg(short, long)]
    tty: bool,
    /// The command and its arguments
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// One of this process's standard descriptors.
fn standard(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: 0, 1 and 2 stay open for the whole life of the process.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn stdin() -> BorrowedFd<'static> {
    standard(0)
}

pub fn run(args: Args) -> Result<(), Failure> {
    // A pipe whose command has gone is an error to handle, not a death.
    // SAFETY: signal(2) with the ignore disposition.
    unsafe { nix::libc::signal(nix::libc::SIGPIPE, nix::libc::SIG_IGN) };
    let mut client = super::connect(&super::load(&args.name)?)?;
    let tty = args.tty && isatty(stdin()).unwrap_or(false);
    if args.tty && !tty {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let request = serde_json::json!({
        "version": api::VERSION,
        "op": "exec",
        "container": args.container,
        "command": args.command,
        "tty": tty,
    });
    let code = if tty {
        let (_, mut fds) = client.call(&request, &[]).map_err(not_started)?;
        let master = fds
            .pop()
            .ok_or_else(|| anyhow!("the supervisor sent no terminal"))?;
        relay(&mut client, master, args.stdin)?
    } else {
        let null = std::fs::File::open("/dev/null").context("/dev/null")?;
        let wanted = [
            if args.stdin { stdin() } else { null.as_fd() },
            standard(1),
            standard(2),
        ];
        // A terminal of this process is never handed to the container (a
        // process left behind could read what is typed afterwards, or push
        // keys back): a pipe stands in for it and its bytes are copied here.
        let mut passed = Vec::new();
        let mut copies = Vec::new();
        for (i, fd) in wanted.into_iter().enumerate() {
            let own = fd.try_clone_to_owned().context("dup")?;
            if !isatty(fd).unwrap_or(false) {
                passed.push(own);
                continue;
            }
            let (r, w) = pipe2(OFlag::O_CLOEXEC).context("pipe")?;
            let (theirs, copy) = if i == 0 {
                (r, Copy { from: own, to: w })
            } else {
                (w, Copy { from: r, to: own })
            };
            passed.push(theirs);
            copies.push(copy);
        }
        let fds: Vec<BorrowedFd> = passed.iter().map(|f| f.as_fd()).collect();
        client.call(&request, &fds).map_err(not_started)?;
        // Only the command holds its ends now: its exit closes them.
        drop(fds);
        drop(passed);
        pump(&mut client, copies)?
    };
    if code == 0 {
        Ok(())
    } else {
        Err(Failure::Code(code.clamp(1, 255) as u8))
    }
}

/// A command that could not start exits as a shell's would (126 or 127).
fn not_started(e: CallError) -> Failure {
    match e {
        CallError::Refused {
            message,
            exit_code: Some(code),
        } => {
            eprintln!("error: {message}");
            Failure::Code(code.clamp(1, 255) as u8)
        }
        other => other.into(),
    }
}

/// Reads replies until the one with the command's exit code.
fn exit_code(client: &mut Client) -> Result<i32, Failure> {
    loop {
        match client.reply().map_err(anyhow::Error::from)? {
            Some((
                Reply {
                    exit_code: Some(code),
                    ..
                },
                _,
            )) => return Ok(code),
            Some(_) => continue,
            None => return Err(anyhow::Error::from(CallError::Gone).into()),
        }
    }
}

/// Polls `fds`; which of them have something, or `None` when the timeout
/// passed with nothing.
fn ready(mut fds: Vec<PollFd>, timeout: PollTimeout) -> Result<Option<Vec<bool>>, Failure> {
    match poll(&mut fds, timeout) {
        Ok(0) => return Ok(None),
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(anyhow!("poll: {e}").into()),
    }
    Ok(Some(
        fds.iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect(),
    ))
}

/// Bytes copied between a terminal of this process and a pipe of the
/// command's.
struct Copy {
    from: OwnedFd,
    to: OwnedFd,
}

/// Copies until the command has exited and its output is read; returns its
/// exit code.
fn pump(client: &mut Client, mut copies: Vec<Copy>) -> Result<i32, Failure> {
    let mut code = None;
    let mut buf = [0u8; 8192];
    while code.is_none() || !copies.is_empty() {
        // Once the command has exited, what its pipes still hold is read
        // without waiting (a process it left may keep them open).
        let replied = client.has_reply();
        let timeout = if code.is_some() || replied {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        let mut fds: Vec<PollFd> = copies
            .iter()
            .map(|c| PollFd::new(c.from.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(client.fd(), PollFlags::POLLIN));
        let Some(ready) = ready(fds, timeout)? else {
            if replied && code.is_none() {
                code = Some(exit_code(client)?);
                continue;
            }
            break;
        };
        if (ready[copies.len()] || replied) && code.is_none() {
            code = Some(exit_code(client)?);
        }
        let mut done = Vec::new();
        for (i, c) in copies.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            match read(&c.from, &mut buf) {
                Ok(0) => done.push(i),
                Ok(n) => {
                    if write_all(&c.to, &buf[..n]).is_err() {
                        done.push(i);
                    }
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => done.push(i),
            }
        }
        for i in done.into_iter().rev() {
            // Closing the copy of stdin gives the command its end of file.
            copies.remove(i);
        }
    }
    match code {
        Some(code) => Ok(code),
        None => exit_code(client),
    }
}

/// This terminal in raw mode until dropped: keys go to the container's
/// terminal as they are typed.
struct Raw {
    saved: Termios,
}

impl Raw {
    fn enter() -> nix::Result<Raw> {
        let saved = termios::tcgetattr(stdin())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin(), SetArg::TCSANOW, &raw)?;
        Ok(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Gives the container's terminal this one's size.
fn copy_size(master: &OwnedFd) {
    let mut size: nix::libc::winsize =
        // SAFETY: a plain C struct of integers; all zeros is valid.
        unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize given, TIOCSWINSZ reads it.
    unsafe {
        if nix::libc::ioctl(1, nix::libc::TIOCGWINSZ, &mut size) == 0
            || nix::libc::ioctl(0, nix::libc::TIOCGWINSZ, &mut size) == 0
        {
            nix::libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(master),
                nix::libc::TIOCSWINSZ,
                &size,
            );
        }
    }
}

/// Copies keys to the container's terminal and its output here until the
/// command has exited; returns its exit code.
fn relay(client: &mut Client, master: OwnedFd, input: bool) -> Result<i32, Failure> {
    let (winch_r, winch_w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).context("pipe")?;
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGWINCH, winch_w)
        .context("SIGWINCH")?;
    copy_size(&master);
    let _raw = Raw::enter().context("the terminal's raw mode")?;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 8192];
    let mut input = input;
    let mut code = None;
    let mut output_open = true;
    while output_open {
        // Once the command has exited, what its terminal still holds is
        // read without waiting (a background process may keep it open).
        let replied = client.has_reply();
        let timeout = if code.is_some() || replied {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(client.fd(), PollFlags::POLLIN),
            PollFd::new(winch_r.as_fd(), PollFlags::POLLIN),
        ];
        if input {
            fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
        }
        let Some(ready) = ready(fds, timeout)? else {
            if replied && code.is_none() {
                code = Some(exit_code(client)?);
                continue;
            }
            break;
        };
        if ready[0] {
            match read(&master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => output_open = false,
                Ok(n) => {
                    out.write_all(&buf[..n]).context("writing")?;
                    out.flush().context("writing")?;
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => return Err(anyhow!("reading the terminal: {e}").into()),
            }
        }
        if (ready[1] || replied) && code.is_none() {
            code = Some(exit_code(client)?);
        }
        if ready[2] {
            while read(&winch_r, &mut buf).is_ok_and(|n| n > 0) {}
            copy_size(&master);
        }
        if input && ready[3] {
            match read(stdin(), &mut buf) {
                Ok(0) => input = false,
                Ok(n) => {
                    // The command is gone: its input does not matter any more.
                    let _ = write_all(&master, &buf[..n]);
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => input = false,
            }
        }
    }
    match code {
        Some(code) => Ok(code),
        None => exit_code(client),
    }
}

/// Writes all of `bytes`; an error once the other end is gone.
fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                // The terminal is full (its descriptor is non-blocking).
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
