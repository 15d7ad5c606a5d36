//! Keeping what the audio libraries print on stderr off the terminal.
//!
//! ALSA prints messages such as "cannot find card '0'" straight to file
//! descriptor 2 while devices are listed or opened, which would draw over a
//! terminal UI. [`capture_stderr`] points descriptor 2 at a temporary file
//! for the duration of a call and returns what was written, so the caller
//! can log it and show a one-line summary instead.
//!
//! The redirection is process-wide: anything another thread writes to
//! stderr during the call is captured too. Only the device manager thread
//! calls it, so two captures never overlap.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;

/// Runs `work` with stderr redirected to a temporary file and returns its
/// result with the text written meanwhile. When the redirection cannot be
/// set up, `work` runs with stderr untouched and the text is empty.
pub fn capture_stderr<R>(work: impl FnOnce() -> R) -> (R, String) {
    let Ok(mut file) = tempfile::tempfile() else {
        return (work(), String::new());
    };
    let _ = std::io::stderr().flush();

    // SAFETY: `dup` and `dup2` only duplicate descriptors. Descriptor 2
    // exists for the whole process, `saved` is checked before use and
    // closed exactly once, and `file` outlives the redirection.
    let saved = unsafe { libc::dup(2) };
    if saved < 0 {
        return (work(), String::new());
    }
    if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
        unsafe { libc::close(saved) };
        return (work(), String::new());
    }

    let result = work();

    let _ = std::io::stderr().flush();
    // SAFETY: as above; this restores the descriptor saved before `work`.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    (result, read_all(&mut file))
}

fn read_all(file: &mut File) -> String {
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(0)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Returns a one-line summary of captured library output, or `None` when
/// there was none.
pub fn summarize(captured: &str) -> Option<String> {
    let lines: Vec<&str> = captured
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let first = lines.first()?;
    let plural = if lines.len() == 1 { "" } else { "s" };
    Some(format!(
        "the audio library printed {} line{plural} on stderr (hidden; the first: {first})",
        lines.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_lines() {
        assert_eq!(summarize(""), None);
        assert_eq!(summarize("\n  \n"), None);
        let text = "ALSA lib confmisc.c:855: cannot find card '0'\nALSA lib conf.c: error\n";
        assert_eq!(
            summarize(text).unwrap(),
            "the audio library printed 2 lines on stderr (hidden; the first: \
             ALSA lib confmisc.c:855: cannot find card '0')"
        );
    }
}
