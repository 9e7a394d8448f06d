//! Process memory: the allocator's trimming policy and the code pages mapped at startup.
//!
//! A node proxy's resident set is mostly not its data. With one binary for every component, the
//! executable's code is 26 MB, and the kernel maps file pages 64 KB at a time around each fault
//! ("fault-around"), so starting up (argument parsing, TLS and xDS setup) leaves some 12 MB of
//! clean, shared code pages counted in RSS, far more than the proxy's own heap (about 2 MB idle).

use std::io;

use super::context;

/// Heap growth at the top of an arena that glibc keeps instead of returning it with
/// `madvise(MADV_DONTNEED)`. The default adapts to the largest freed block and, with bulk
/// transfers allocating and freeing read buffers of 256 KB, kept giving pages back only to fault
/// them in again (about a tenth of a proxy's CPU time in a single-stream transfer).
const TRIM_THRESHOLD: i32 = 4 * 1024 * 1024;
/// Allocations at least this big get their own mapping; smaller ones (every read buffer) come
/// from the arenas and are reused.
const MMAP_THRESHOLD: i32 = 1024 * 1024;

/// Sets glibc's trim and mmap thresholds for a proxy that allocates and frees buffers of up to
/// a few hundred KB at a high rate. Fixed values also turn off glibc's adaptive thresholds.
pub fn tune_allocator() -> io::Result<()> {
    for (param, value, name) in [
        (nix::libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD, "M_TRIM_THRESHOLD"),
        (nix::libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD, "M_MMAP_THRESHOLD"),
    ] {
        // SAFETY: mallopt only adjusts allocator parameters; any value is accepted or refused.
        if unsafe { nix::libc::mallopt(param, value) } != 1 {
            return Err(io::Error::other(format!("mallopt({name}, {value}) refused")));
        }
    }
    Ok(())
}

/// Unmaps the pages of this process's own executable code so that only the code used from now
/// on is mapped again; returns how many bytes of mappings were released. Call once, after
/// start-up. The pages stay in the page cache (shared with every process running the binary),
/// and a later access maps them back from it with a minor fault: nothing is lost.
pub fn release_startup_code_pages() -> io::Result<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| context(e, "read /proc/self/maps"))?;
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| context(e, "read /proc/self/exe"))?;
    let exe = exe.to_string_lossy();
    let mut released = 0;
    for (start, end) in code_mappings(&maps, &exe) {
        // SAFETY: the range is a private, read-only, executable mapping of the executable file,
        // page aligned as the kernel reports it. Such pages are never written (no relocations
        // in position-independent code), so MADV_DONTNEED only drops page-table entries and
        // the next access reads the same bytes from the file. Data mappings, including the
        // relocated read-only data, are never touched here.
        let result =
            unsafe { nix::libc::madvise(start as *mut nix::libc::c_void, end - start, nix::libc::MADV_DONTNEED) };
        if result != 0 {
            let error = io::Error::last_os_error();
            return Err(context(error, format!("madvise(MADV_DONTNEED) on code {start:#x}-{end:#x}")));
        }
        released += (end - start) as u64;
    }
    Ok(released)
}

/// The (start, end) of every `r-xp` mapping of `exe` in a `/proc/PID/maps` text.
pub(crate) fn code_mappings(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?.trim_start();
            if perms != "r-xp" || path != exe {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?))
        })
        .collect()
}
