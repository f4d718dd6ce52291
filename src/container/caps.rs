//! A container's capability set, as containerd's CRI plugin computes it:
//! the default set (Docker's and containerd's), `ALL` in `add` or `drop`
//! first, then the other adds, then the other drops; `privileged` gives
//! every capability the kernel has.

use std::collections::BTreeSet;

use caps::Capability;

use crate::api::runtime::Security;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    #[error("unknown capability {0:?}")]
    Unknown(String),
    #[error("capability {0} is not available: podrun itself does not hold it on this host")]
    Unavailable(String),
}

/// containerd's (and Docker's) default capabilities.
pub const DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// `NET_ADMIN` or `CAP_NET_ADMIN`, any case, as containerd accepts.
fn parse(name: &str) -> Result<Capability, CapsError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse()
        .map_err(|_| CapsError::Unknown(name.to_owned()))
}

fn is_all(name: &str) -> bool {
    name.eq_ignore_ascii_case("ALL")
}

/// The set as a bit mask (bit N = capability N). `all` is every capability
/// podrun holds and can pass on (for `privileged` and `add: [ALL]`, as
/// containerd's "all current capabilities"); the defaults podrun lacks are
/// left out, an explicit `add` of one is refused.
pub fn effective(sc: &Security, all: u64) -> Result<u64, CapsError> {
    if sc.privileged {
        return Ok(all);
    }
    let (add, drop) = (&sc.add_capabilities, &sc.drop_capabilities);
    let mut set: BTreeSet<u8> = DEFAULT.iter().map(Capability::index).collect();
    if add.iter().any(|a| is_all(a)) {
        set = (0..64).filter(|i| all & (1 << i) != 0).collect();
    }
    if drop.iter().any(|d| is_all(d)) {
        set.clear();
    }
    for name in add.iter().filter(|a| !is_all(a)) {
        let cap = parse(name)?;
        if all & cap.bitmask() == 0 {
            return Err(CapsError::Unavailable(cap.to_string()));
        }
        set.insert(cap.index());
    }
    for name in drop.iter().filter(|d| !is_all(d)) {
        set.remove(&parse(name)?.index());
    }
    Ok(set.into_iter().fold(0, |mask, i| mask | (1u64 << i)) & all)
}

/// The capabilities this process can give its children: its permitted
/// set within its bounding set (from `/proc/self/status`).
pub fn held(status: &str) -> u64 {
    status_field(status, "CapPrm:") & status_field(status, "CapBnd:")
}

fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// What this process can do with capabilities, read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// The kernel's last capability (`cap_last_cap`).
    pub last_cap: u8,
    /// What it can give containers (see [`held`]), within the kernel's.
    pub all: u64,
    /// Its effective set.
    pub effective: u64,
}

/// Reads `/proc/sys/kernel/cap_last_cap` and `/proc/self/status`.
pub fn this_process() -> Holding {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Holding {
        last_cap,
        all: kernel_all(last_cap) & held(&status),
        effective: status_field(&status, "CapEff:"),
    }
}

/// Every capability this kernel supports, from `cap_last_cap`.
pub fn kernel_all(last_cap: u8) -> u64 {
    if last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (last_cap + 1)) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(add: &[&str], drop: &[&str]) -> Security {
        let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        Security {
            add_capabilities: list(add),
            drop_capabilities: list(drop),
            ..Default::default()
        }
    }

    const ALL: u64 = (1 << 41) - 1;

    #[test]
    fn the_default_set_is_dockers() {
        // What `grep CapEff /proc/self/status` shows in a Docker container.
        assert_eq!(
            effective(&Security::default(), ALL).unwrap(),
            0x00000000a80425fb
        );
    }

    #[test]
    fn adds_then_drops_with_all_first() {
        let net_admin = 1 << 12;
        let chown = 1;
        assert_eq!(
            effective(&sc(&["NET_ADMIN"], &["CHOWN"]), ALL).unwrap(),
            0xa80425fb ^ chown | net_admin
        );
        assert_eq!(
            effective(&sc(&["ALL"], &["chown"]), ALL).unwrap(),
            ALL ^ chown
        );
        assert_eq!(
            effective(&sc(&["CAP_NET_ADMIN"], &["ALL"]), ALL).unwrap(),
            net_admin
        );
    }

    #[test]
    fn privileged_gets_everything_and_bad_names_are_refused() {
        let privileged = Security {
            privileged: true,
            ..Default::default()
        };
        assert_eq!(effective(&privileged, ALL).unwrap(), ALL);
        assert_eq!(
            effective(&sc(&["FLY"], &[]), ALL).unwrap_err(),
            CapsError::Unknown("FLY".to_owned())
        );
        assert_eq!(kernel_all(40), ALL);
    }

    #[test]
    fn only_what_podrun_holds_is_given() {
        // A host without CAP_SYS_RESOURCE (24).
        let held = ALL & !(1 << 24);
        let privileged = Security {
            privileged: true,
            ..Default::default()
        };
        assert_eq!(effective(&privileged, held).unwrap(), held);
        assert_eq!(effective(&sc(&["ALL"], &[]), held).unwrap(), held);
        assert_eq!(
            effective(&sc(&["SYS_RESOURCE"], &[]), held)
                .unwrap_err()
                .to_string(),
            "capability CAP_SYS_RESOURCE is not available: podrun itself does not hold it on this host"
        );
        let status =
            "CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(super::held(status), 0x1fffeffffff);
    }
}
