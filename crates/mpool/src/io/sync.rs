//! The pread/pwrite engine.

use super::{IoKind, IoReq};
use std::io;
use std::os::fd::BorrowedFd;

/// Perform each request in turn with positioned system calls.
pub(super) fn submit(fd: BorrowedFd<'_>, reqs: &mut [IoReq], done: &mut dyn FnMut(usize, &IoReq)) {
    for (i, r) in reqs.iter_mut().enumerate() {
        r.result = Some(match r.kind {
            IoKind::Read => read_full(fd, r.offset, &mut r.buf),
            IoKind::Write => write_full(fd, r.offset, &r.buf),
        });
        done(i, r);
    }
}

fn read_full(fd: BorrowedFd<'_>, mut off: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pread(fd, &mut *buf, off) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read past end of device at offset {off}"),
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn write_full(fd: BorrowedFd<'_>, mut off: u64, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::pwrite(fd, buf, off) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("device accepted no bytes at offset {off}"),
                ))
            }
            Ok(n) => {
                buf = &buf[n..];
                off += n as u64;
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// fdatasync, retried on EINTR.
pub(super) fn fdatasync(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        match rustix::fs::fdatasync(fd) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(Into::into),
        }
    }
}
