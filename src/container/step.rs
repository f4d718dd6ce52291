//! The steps of a container's mount setup: prepared by the parent
//! (`rootfs`), run by the child between clone and exec (`spawn`), so each
//! holds only what the child needs, as C strings.

use std::ffi::CString;

use nix::libc;

/// One step of the child's mount setup, prepared in the parent.
#[derive(Debug)]
pub enum Step {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// Attaches a detached mount tree (an `open_tree` clone the parent
    /// made of `source`, held open as `tree`) at `target`.
    Attach {
        tree: libc::c_int,
        source: CString,
        target: CString,
    },
    /// Lazily unmounts whatever is at `target`; nothing mounted is fine.
    Detach { target: CString },
    /// Creates a directory; one already there is fine.
    Mkdir { path: CString },
    /// Creates an empty file to bind a file onto; one already there is fine.
    Touch { path: CString },
    /// Creates a symlink; one already there is fine.
    Symlink { target: CString, link: CString },
    /// Makes `root` the root: pivot_root into it and drop the old root.
    Pivot { root: CString },
    /// A step about a path the kernel may not have: ENOENT is fine.
    IfExists(Box<Step>),
}

impl Step {
    /// What the step does, for the message when it fails.
    pub fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Step::Mount {
                source,
                target,
                fstype,
                ..
            } => format!(
                "mount {} on {}",
                source
                    .as_ref()
                    .or(fstype.as_ref())
                    .map_or_else(|| "(flags)".to_owned(), s),
                s(target)
            ),
            Step::Attach { source, target, .. } => {
                format!("mount {} on {}", s(source), s(target))
            }
            Step::Detach { target } => format!("unmount {}", s(target)),
            Step::Mkdir { path } => format!("mkdir {}", s(path)),
            Step::Touch { path } => format!("create {}", s(path)),
            Step::Symlink { link, .. } => format!("symlink {}", s(link)),
            Step::Pivot { root } => format!("pivot_root into {}", s(root)),
            Step::IfExists(step) => step.describe(),
        }
    }
}
