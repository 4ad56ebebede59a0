//! A render run in a child process with a ceiling on its memory: minijinja
//! bounds steps and repeated strings, but not what joining strings (`~`)
//! can build, and an allocation that fails aborts the whole process. The
//! child gets at most [`RENDER_MEMORY`] of address space beyond what it
//! inherited; past that it dies alone, and the parent reports it.

use std::io::{Read as _, Write as _};
use std::os::fd::{FromRawFd as _, OwnedFd};

use super::{MAX_RENDERED, TemplateError};

/// Address space a render may add to what the process already maps.
pub const RENDER_MEMORY: u64 = 1024 * 1024 * 1024;

/// Runs `render` in a forked child limited to [`RENDER_MEMORY`] more
/// address space, and returns what it returned. Where fork is refused
/// (no process left, say), the render runs here, still bounded in steps
/// and output.
pub fn isolated(
    render: impl FnOnce() -> Result<String, TemplateError>,
) -> Result<String, TemplateError> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return render();
    }
    // SAFETY: both descriptors were just made by pipe2 and are owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child only computes, writes to its pipe and `_exit`s; it
    // returns to no caller and runs no destructor of the parent's state.
    // glibc's fork keeps malloc consistent in the child.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return render();
    }
    if pid == 0 {
        drop(read);
        child(render, write);
    }
    drop(write);
    let mut bytes = Vec::new();
    let _ = std::fs::File::from(read)
        .take(MAX_RENDERED as u64 + 64 * 1024)
        .read_to_end(&mut bytes);
    let mut status = 0i32;
    let reaped = loop {
        // SAFETY: waits for the child made above; `status` is a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break true;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break false;
        }
    };
    // Only a child seen to exit 0 wrote all it had to say.
    let exited = reaped && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    match (exited, bytes.split_first()) {
        (true, Some((b'O', out))) => String::from_utf8(out.to_vec()).map_err(|_| TemplateError {
            line: 0,
            column: 0,
            message: "the rendered file is not UTF-8".into(),
        }),
        (true, Some((b'E', rest))) if rest.len() >= 16 => {
            let (nums, message) = rest.split_at(16);
            let num = |b: &[u8]| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_le_bytes(a) as usize
            };
            Err(TemplateError {
                line: num(&nums[..8]),
                column: num(&nums[8..]),
                message: String::from_utf8_lossy(message).into_owned(),
            })
        }
        _ if reaped && libc::WIFSIGNALED(status) => Err(TemplateError {
            line: 0,
            column: 0,
            message: format!(
                "rendering it needed more than {} MiB of memory (a template that builds ever larger strings), and was stopped",
                RENDER_MEMORY / (1024 * 1024)
            ),
        }),
        _ => Err(TemplateError {
            line: 0,
            column: 0,
            message:
                "rendering it failed inside bale (the renderer's process ended without a result)"
                    .into(),
        }),
    }
}

/// The child's side: a ceiling on memory, the render, its result on the
/// pipe, and `_exit`.
fn child(render: impl FnOnce() -> Result<String, TemplateError>, write: OwnedFd) -> ! {
    // The runtime's "memory allocation failed" message is the parent's
    // to word: the child's stderr goes nowhere.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd as _;
        // SAFETY: both descriptors are open; dup2 replaces stderr.
        unsafe { libc::dup2(null.as_raw_fd(), 2) };
    }
    let mapped = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    let limit = libc::rlimit {
        rlim_cur: mapped + RENDER_MEMORY,
        rlim_max: mapped + RENDER_MEMORY,
    };
    // SAFETY: `limit` is a valid rlimit for this process alone.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    // A panic must end the child here: unwinding would carry it back into
    // the parent's code, running the rest of the install a second time.
    let Ok(result) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(render)) else {
        // SAFETY: as below.
        unsafe { libc::_exit(2) }
    };
    let mut out = Vec::new();
    match result {
        Ok(text) => {
            out.push(b'O');
            out.extend_from_slice(text.as_bytes());
        }
        Err(e) => {
            out.push(b'E');
            out.extend_from_slice(&(e.line as u64).to_le_bytes());
            out.extend_from_slice(&(e.column as u64).to_le_bytes());
            out.extend_from_slice(e.message.as_bytes());
        }
    }
    let ok = std::fs::File::from(write).write_all(&out).is_ok();
    // SAFETY: ends the child at once, running none of the parent's
    // destructors or atexit handlers.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}
