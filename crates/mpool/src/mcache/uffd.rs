//! userfaultfd(2): the descriptor, its ioctls (MISSING mode: register,
//! copy, wake, poison) and the fault messages. The kernel ABI is in
//! `include/uapi/linux/userfaultfd.h`; the libc crate does not carry it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How faults in mapped ranges are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Every fault, including those the kernel takes on the process' behalf
    /// (a mapped slice passed to `write(2)`), is served by the fault
    /// handler: root (`CAP_SYS_PTRACE`), `vm.unprivileged_userfaultfd=1`, or
    /// read-write access to `/dev/userfaultfd`.
    Full,
    /// `UFFD_USER_MODE_ONLY` (any user): faults the kernel takes are not
    /// served, so every slice the map hands out is loaded first and kept
    /// resident while it is in use (see the module documentation).
    UserOnly,
}

const UFFD_API: u64 = 0xAA;
const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
/// Fault messages name the faulting thread.
const UFFD_FEATURE_THREAD_ID: u64 = 1 << 8;
pub(super) const UFFD_EVENT_PAGEFAULT: u8 = 0x12;

const fn ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | (0xAA << 8) | nr
}
const IOWR: u64 = 3;
const IOR: u64 = 2;
const UFFDIO_API: u64 = ioc(IOWR, 0x3F, 24);
const UFFDIO_REGISTER: u64 = ioc(IOWR, 0x00, 32);
const UFFDIO_WAKE: u64 = ioc(IOR, 0x02, 16);
const UFFDIO_COPY: u64 = ioc(IOWR, 0x03, 40);
const UFFDIO_POISON: u64 = ioc(IOWR, 0x08, 32);
const USERFAULTFD_IOC_NEW: u64 = 0xAA << 8;

#[repr(C)]
struct Api {
    api: u64,
    features: u64,
    ioctls: u64,
}
#[repr(C)]
struct Range {
    start: u64,
    len: u64,
}
#[repr(C)]
struct Register {
    range: Range,
    mode: u64,
    ioctls: u64,
}
#[repr(C)]
struct Copy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}
#[repr(C)]
struct Poison {
    range: Range,
    mode: u64,
    updated: i64,
}

/// One message read from the descriptor (`struct uffd_msg`, 32 bytes).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(super) struct Msg([u8; 32]);

impl Msg {
    pub(super) const ZERO: Msg = Msg([0; 32]);
    pub(super) fn event(&self) -> u8 {
        self.0[0]
    }
    /// The faulting thread of a page fault (`UFFD_FEATURE_THREAD_ID`).
    pub(super) fn thread(&self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[24..28]);
        u32::from_ne_bytes(b)
    }
    /// The faulting address of a page fault.
    pub(super) fn address(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[16..24]);
        u64::from_ne_bytes(b)
    }
}

/// A userfaultfd and the mode it serves.
#[derive(Debug)]
pub(super) struct Uffd {
    fd: OwnedFd,
    pub(super) mode: FaultMode,
}

fn ioctl<T>(fd: libc::c_int, req: u64, arg: &mut T) -> io::Result<libc::c_int> {
    // SAFETY: `arg` is a live, exclusively borrowed `repr(C)` struct of the
    // size the request number encodes; the kernel reads and writes only it.
    let r = unsafe { libc::ioctl(fd, req as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn syscall_uffd(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: userfaultfd(2) takes an int of flags and returns a new
    // descriptor or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn dev_uffd() -> io::Result<OwnedFd> {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/userfaultfd")?;
    // SAFETY: USERFAULTFD_IOC_NEW takes the new descriptor's flags as an
    // integer argument and returns the descriptor.
    let fd = unsafe { libc::ioctl(dev.as_raw_fd(), USERFAULTFD_IOC_NEW as _, libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Uffd {
    /// The strongest userfaultfd this process may have: full (the system
    /// call, then `/dev/userfaultfd`), else user mode only. `force_user`
    /// asks for user mode only (`MPOOL_MCACHE_UFFD=user`, for tests).
    pub(super) fn open(force_user: bool) -> io::Result<Uffd> {
        let full = if force_user {
            None
        } else {
            syscall_uffd(libc::O_CLOEXEC).or_else(|_| dev_uffd()).ok()
        };
        let (fd, mode) = match full {
            Some(fd) => (fd, FaultMode::Full),
            None => (
                syscall_uffd(libc::O_CLOEXEC | UFFD_USER_MODE_ONLY)?,
                FaultMode::UserOnly,
            ),
        };
        let mut api = Api {
            api: UFFD_API,
            features: UFFD_FEATURE_THREAD_ID,
            ioctls: 0,
        };
        ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api)?;
        Ok(Uffd { fd, mode })
    }

    /// Serve missing-page faults of `start..start+len`.
    pub(super) fn register(&self, start: usize, len: usize) -> io::Result<()> {
        let mut r = Register {
            range: Range {
                start: start as u64,
                len: len as u64,
            },
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        ioctl(self.fd.as_raw_fd(), UFFDIO_REGISTER, &mut r).map(|_| ())
    }

    /// Install `len` bytes at `src` as the pages at `dst` (waking threads
    /// waiting on them). Stops at a page already present: `Err(EEXIST,
    /// bytes copied)`.
    pub(super) fn copy(&self, dst: usize, src: &[u8]) -> Result<(), (io::Error, usize)> {
        let mut c = Copy {
            dst: dst as u64,
            src: src.as_ptr() as u64,
            len: src.len() as u64,
            mode: 0,
            copy: 0,
        };
        match ioctl(self.fd.as_raw_fd(), UFFDIO_COPY, &mut c) {
            Ok(_) => Ok(()),
            Err(e) => Err((e, usize::try_from(c.copy).unwrap_or(0))),
        }
    }

    /// Wake threads waiting on `start..start+len` (to fault again).
    pub(super) fn wake(&self, start: usize, len: usize) -> io::Result<()> {
        let mut r = Range {
            start: start as u64,
            len: len as u64,
        };
        ioctl(self.fd.as_raw_fd(), UFFDIO_WAKE, &mut r).map(|_| ())
    }

    /// Mark `start..start+len` poisoned: an access raises SIGBUS (a
    /// kernel access fails with EFAULT) until the range is zapped.
    pub(super) fn poison(&self, start: usize, len: usize) -> io::Result<()> {
        let mut p = Poison {
            range: Range {
                start: start as u64,
                len: len as u64,
            },
            mode: 0,
            updated: 0,
        };
        ioctl(self.fd.as_raw_fd(), UFFDIO_POISON, &mut p).map(|_| ())
    }

    /// Poison `start..start+len`; where the kernel cannot (before Linux
    /// 6.6), send SIGBUS to the faulting thread `tid` instead, so that it
    /// never goes on with bytes that failed their checksum (nor waits
    /// forever).
    pub(super) fn poison_or_kill(&self, start: usize, len: usize, tid: u32) -> io::Result<()> {
        let Err(e) = self.poison(start, len) else {
            return Ok(());
        };
        // SAFETY: tgkill(2) of a thread of this process; no memory passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                tid as libc::pid_t,
                libc::SIGBUS,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Err(e)
    }

    /// Block until messages arrive; how many were read into `msgs`.
    pub(super) fn read(&self, msgs: &mut [Msg]) -> io::Result<usize> {
        // SAFETY: `msgs` is a live, exclusively borrowed array of 32-byte
        // plain-data messages; read(2) writes at most its byte length.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr().cast(),
                std::mem::size_of_val(msgs),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize / std::mem::size_of::<Msg>())
    }
}
