//! Keeping a pod's supervisor to the memory it uses. The process that
//! becomes the supervisor first parses, validates and plans the pod and
//! builds its sandbox: megabytes of code it never runs again, whose clean
//! pages stay mapped (and counted in its RSS) for the pod's whole life.
//! Once the pod runs, the supervisor unmaps them from its page tables; the
//! few its loop needs come back from the page cache on first use.

use std::fs;
use std::sync::OnceLock;

use nix::libc;

/// Drops this process's mappings of its executable's code (`r-xp`, never
/// written: its pages are the file's, and fault back in when used).
/// Best effort: nothing depends on it.
pub fn release_startup_code() {
    for &(start, end) in code_ranges() {
        // SAFETY: MADV_DONTNEED on a private mapping of never-written code
        // only drops page-table entries; the next access maps the same
        // bytes from the file again.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The executable's code mappings, read once: they never move, and the
/// supervisor releases them after every quiet spell.
fn code_ranges() -> &'static [(usize, usize)] {
    static RANGES: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        let (Ok(exe), Ok(maps)) = (
            fs::read_link("/proc/self/exe"),
            fs::read_to_string("/proc/self/maps"),
        ) else {
            return Vec::new();
        };
        maps.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // Only executable, private, read-only code: a written
                // (relocated) mapping would lose its changes.
                let [range, "r-xp", _, _, _, path] = fields[..] else {
                    return None;
                };
                if std::path::Path::new(path) != exe {
                    return None;
                }
                let (start, end) = range.split_once('-')?;
                Some((
                    usize::from_str_radix(start, 16).ok()?,
                    usize::from_str_radix(end, 16).ok()?,
                ))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_released_still_runs() {
        release_startup_code();
        // Code of this binary, mapped again on use.
        assert_eq!(format!("{}", 6 * 7), "42");
        release_startup_code();
        assert!(!code_ranges().is_empty(), "this binary's code is mapped");
    }
}
