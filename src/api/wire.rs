//! Lines with descriptors on a unix stream socket (`SCM_RIGHTS`): what the
//! supervisor and its clients both speak.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// The most descriptors one read takes; more that came with it are closed
/// by the kernel (`MSG_CTRUNC`).
const MAX_FDS_PER_READ: usize = 4;

/// Sends all of `line`, with `fds` attached to its first byte.
pub fn send(socket: BorrowedFd, line: &[u8], fds: &[BorrowedFd]) -> nix::Result<()> {
    let raw: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let mut sent = 0;
    while sent < line.len() {
        let cmsgs: &[ControlMessage] = if sent == 0 && !raw.is_empty() {
            &rights
        } else {
            &[]
        };
        let iov = [IoSlice::new(&line[sent..])];
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One read into `buf`: how many bytes (0 at the end of the stream), and
/// the descriptors that came with them, close-on-exec.
pub fn receive(
    socket: BorrowedFd,
    buf: &mut [u8],
    flags: MsgFlags,
) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([libc::c_int; MAX_FDS_PER_READ]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            flags | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just gave this process these descriptors;
            // nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((msg.bytes, fds))
}
