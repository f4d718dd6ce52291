//! Keeping a pod's supervisor to the memory it uses. The process that
//! becomes the supervisor first parses, validates and plans the pod and
//! builds its sandbox: megabytes of code it never runs again, whose clean
//! pages stay mapped (and counted in its RSS) for the pod's whole life.
//! Once the pod runs, the supervisor unmaps them from its page tables; the
//! few its loop needs come back from the page cache on first use.

use std::fs;
use std::sync::OnceLock;

use nix::libc;

/// Drops this process's mappings of its executable's code and read-only
/// data (`r-xp`, and `r--p` that holds no anonymous page: never written,
/// so its pages are the file's, and fault back in when used). Best
/// effort: nothing depends on it.
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

/// The executable's never-written mappings, read once: they never move,
/// and the supervisor releases them after every quiet spell.
fn code_ranges() -> &'static [(usize, usize)] {
    static RANGES: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        let (Ok(exe), Ok(smaps)) = (
            fs::read_link("/proc/self/exe"),
            fs::read_to_string("/proc/self/smaps"),
        ) else {
            return Vec::new();
        };
        clean_ranges(&smaps, &exe)
    })
}

/// The read-only private mappings of `exe` in `smaps` that no write ever
/// touched: code, and data with no anonymous (copied-on-write) page. The
/// RELRO data the loader relocated is read-only too, but written: its
/// pages are anonymous, and dropping them would lose the relocations.
fn clean_ranges(smaps: &str, exe: &std::path::Path) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [range, "r-xp" | "r--p", _, _, _, path]
                if range.contains('-') && std::path::Path::new(path) == exe =>
            {
                current = range.split_once('-').and_then(|(s, e)| {
                    Some((
                        usize::from_str_radix(s, 16).ok()?,
                        usize::from_str_radix(e, 16).ok()?,
                    ))
                });
            }
            [range, ..] if range.contains('-') && !range.ends_with(':') => current = None,
            // A written page is anonymous, or swapped out: either keeps
            // the mapping (Swap: comes after Anonymous:).
            ["Anonymous:", kb, "kB"] if kb != "0" => current = None,
            ["Swap:", kb, "kB"] => {
                if let Some(r) = current.take()
                    && kb == "0"
                {
                    out.push(r);
                }
            }
            _ => {}
        }
    }
    out
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

    #[test]
    fn only_never_written_mappings_of_the_binary_are_released() {
        let smaps = "\
5600-5700 r--p 00000000 fe:00 1 /bin/podrun
Rss:                 384 kB
Anonymous:             0 kB
Swap:                  0 kB
5700-5800 r-xp 00001000 fe:00 1 /bin/podrun
Anonymous:             0 kB
Swap:                  0 kB
5800-5900 r--p 00002000 fe:00 1 /bin/podrun
Anonymous:            64 kB
Swap:                  0 kB
5880-5890 r--p 00002000 fe:00 1 /bin/podrun
Anonymous:             0 kB
Swap:                  8 kB
5900-5a00 rw-p 00003000 fe:00 1 /bin/podrun
Anonymous:             4 kB
Swap:                  0 kB
7f00-7f10 r-xp 00000000 fe:00 2 /usr/lib/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
";
        let got = clean_ranges(smaps, std::path::Path::new("/bin/podrun"));
        assert_eq!(got, [(0x5600, 0x5700), (0x5700, 0x5800)]);
    }
}
