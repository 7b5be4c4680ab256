//! A device in memory.

use super::{split_invalid, DevError, Device, DeviceInfo, DeviceKind};
use crate::io::{IoKind, IoReq};
use std::sync::RwLock;

/// A device backed by a byte vector; flush is a no-op.
#[derive(Debug)]
pub struct MemDevice {
    data: RwLock<Vec<u8>>,
    info: DeviceInfo,
}

impl MemDevice {
    /// A zeroed device of `size` bytes with the given sector size.
    pub fn new(size: u64, sector: u32) -> Self {
        Self::from_image(vec![0; size as usize], sector)
    }

    /// A device holding `image`.
    pub fn from_image(image: Vec<u8>, sector: u32) -> Self {
        let sector = sector.max(512);
        let info = DeviceInfo::in_memory(DeviceKind::Memory, image.len() as u64, sector);
        Self {
            data: RwLock::new(image),
            info,
        }
    }

    /// A copy of the whole image.
    pub fn image(&self) -> Vec<u8> {
        self.data.read().map(|d| d.clone()).unwrap_or_default()
    }
}

impl Device for MemDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn submit(&self, mut reqs: Vec<IoReq>) -> Vec<IoReq> {
        split_invalid(&self.info, &mut reqs);
        let mut data = crate::lock::write(&self.data);
        for r in reqs.iter_mut().filter(|r| r.result.is_none()) {
            // check_req in split_invalid guarantees the range is inside the image.
            let off = r.offset as usize;
            let len = r.buf.len();
            match r.kind {
                IoKind::Read => r.buf.copy_from_slice(&data[off..off + len]),
                IoKind::Write => data[off..off + len].copy_from_slice(&r.buf),
            }
            r.result = Some(Ok(()));
        }
        reqs
    }

    fn write_bytes(&self, offset: u64, data: &[u8]) -> Option<Result<(), DevError>> {
        Some((|| {
            if self.info.read_only {
                return Err(DevError::ReadOnly {
                    device: self.info.name(),
                });
            }
            let mut image = crate::lock::write(&self.data);
            let dst = usize::try_from(offset)
                .ok()
                .and_then(|o| Some(o..o.checked_add(data.len())?))
                .and_then(|r| image.get_mut(r))
                .ok_or_else(|| {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "past the end of the device",
                    );
                    super::io_err(&self.info, "write", offset, e)
                })?;
            dst.copy_from_slice(data);
            Ok(())
        })())
    }

    fn flush(&self) -> Result<(), DevError> {
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DevError> {
        super::check_req(&self.info, offset, len as usize)?;
        let mut data = crate::lock::write(&self.data);
        data[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory takes writes of any bytes at any offset inside it; one that
    /// runs past the end is refused whole, nothing written.
    #[test]
    fn takes_writes_of_any_bytes_and_refuses_past_the_end() {
        let d = MemDevice::new(8192, 4096);
        d.write_bytes(4093, b"abcdef").expect("byte-addressable").unwrap();
        let img = d.image();
        assert_eq!(&img[4093..4099], b"abcdef");
        assert!(img[..4093].iter().chain(&img[4099..]).all(|&b| b == 0));
        assert!(matches!(
            d.write_bytes(8190, b"xyz"),
            Some(Err(DevError::Io { .. }))
        ));
        assert!(matches!(
            d.write_bytes(u64::MAX, b"x"),
            Some(Err(DevError::Io { .. }))
        ));
        assert_eq!(d.image(), img, "a refused write changed bytes");
    }
}
