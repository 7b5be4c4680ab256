//! The bytes of the catalog: the pointer record in the pool's root MDC and
//! the records of the catalog's own MDC (docs/format.md, "Object-store
//! catalog"). All integers little endian; strings are a `u32` length and
//! UTF-8 bytes.

use mpool::MblockId;

/// First bytes of the pointer record in the root MDC.
pub const POINTER_MAGIC: &[u8; 8] = b"MPOBJST1";

/// Record kinds of the catalog MDC.
pub const KIND_PUT: u8 = 1;
/// A path removed.
pub const KIND_DELETE: u8 = 2;
/// A copy sharing the source's mblocks.
pub const KIND_COPY: u8 = 3;
/// A rename (copy, then the source removed), in one record.
pub const KIND_RENAME: u8 = 4;
/// The first record of a compacted log: the version counter.
pub const KIND_STATE: u8 = 5;
/// mblocks no object refers to whose delete may not be durable yet.
pub const KIND_PENDING: u8 = 6;
/// A small object whose content is in the record itself.
pub const KIND_PUT_INLINE: u8 = 7;

/// Attribute kinds (object_store's `Attribute`).
pub const ATTR_CONTENT_DISPOSITION: u8 = 1;
/// `Content-Encoding`.
pub const ATTR_CONTENT_ENCODING: u8 = 2;
/// `Content-Language`.
pub const ATTR_CONTENT_LANGUAGE: u8 = 3;
/// `Content-Type`.
pub const ATTR_CONTENT_TYPE: u8 = 4;
/// `Cache-Control`.
pub const ATTR_CACHE_CONTROL: u8 = 5;
/// Storage class.
pub const ATTR_STORAGE_CLASS: u8 = 6;
/// User metadata: a key follows.
pub const ATTR_METADATA: u8 = 7;

/// One piece of an object: `len` bytes at the start of an mblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// The mblock.
    pub id: MblockId,
    /// Bytes of the object it holds (from its offset 0).
    pub len: u64,
}

/// An attribute as stored: its kind, the key (metadata only) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// One of the `ATTR_*` kinds.
    pub kind: u8,
    /// The metadata key (empty for the other kinds).
    pub key: String,
    /// The value.
    pub value: String,
}

/// An object as a PUT record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRec {
    /// Unique across the store (the e_tag is made from it).
    pub version: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Object size: the sum of the extents' lengths.
    pub size: u64,
    /// The object's path.
    pub path: String,
    /// The mblocks, in order (none for an inline object).
    pub extents: Vec<Extent>,
    /// The content of a small object kept in the record itself.
    pub inline: Option<Vec<u8>>,
    /// User attributes.
    pub attrs: Vec<Attr>,
}

/// A decoded catalog record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The object at `path` is now this one.
    Put(PutRec),
    /// `path` no longer names an object.
    Delete {
        /// The path.
        path: String,
    },
    /// `to` now names the object at `from` (sharing its mblocks), as a new
    /// version; with `rename`, `from` is removed.
    Copy {
        /// Remove the source (a rename).
        rename: bool,
        /// The new version of `to`.
        version: u64,
        /// Its modification time.
        mtime_ns: i64,
        /// Source path.
        from: String,
        /// Destination path.
        to: String,
    },
    /// The version counter, at the start of a compacted log.
    State {
        /// The next version to give.
        next_version: u64,
    },
    /// mblocks no object refers to any more: deleted at the next
    /// read-write open if they still exist.
    Pending {
        /// Their IDs.
        ids: Vec<MblockId>,
    },
}

/// A record that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("bad catalog record: {0}")]
pub struct DecodeError(pub String);

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        // Lengths come from paths, attributes and lists held in memory;
        // none reaches 4 GiB (object_store paths and values are strings).
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn attrs(&mut self, attrs: &[Attr]) {
        self.len(attrs.len());
        for a in attrs {
            self.u8(a.kind);
            if a.kind == ATTR_METADATA {
                self.str(&a.key);
            }
            self.str(&a.value);
        }
    }
}

struct R<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| DecodeError(format!("truncated at byte {}", self.pos)))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn count(&mut self, min_each: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        // A count cannot promise more items than bytes left.
        if n.saturating_mul(min_each) > self.b.len() - self.pos {
            return Err(DecodeError(format!("count {n} exceeds the record")));
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("a string is not UTF-8".into()))
    }
    fn attrs(&mut self) -> Result<Vec<Attr>, DecodeError> {
        let n = self.count(5)?;
        let mut attrs = Vec::with_capacity(n);
        for _ in 0..n {
            let kind = self.u8()?;
            if !(ATTR_CONTENT_DISPOSITION..=ATTR_METADATA).contains(&kind) {
                return Err(DecodeError(format!("unknown attribute kind {kind}")));
            }
            let key = if kind == ATTR_METADATA {
                self.str()?
            } else {
                String::new()
            };
            let value = self.str()?;
            attrs.push(Attr { kind, key, value });
        }
        Ok(attrs)
    }
    fn id(&mut self) -> Result<MblockId, DecodeError> {
        let v = self.u64()?;
        mpool::ObjectId::from_raw(v)
            .and_then(|o| MblockId::try_from(o).ok())
            .ok_or_else(|| DecodeError(format!("{v:#018x} is not an mblock ID")))
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.pos == self.b.len() {
            Ok(())
        } else {
            Err(DecodeError(format!(
                "{} bytes after the record",
                self.b.len() - self.pos
            )))
        }
    }
}

/// The u64 of an mblock ID.
pub fn id_u64(id: MblockId) -> u64 {
    id.object_id().raw()
}

impl Record {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(64));
        match self {
            Record::Put(PutRec {
                inline: Some(data), ..
            }) => {
                let Record::Put(p) = self else { return w.0 };
                w.u8(KIND_PUT_INLINE);
                w.u64(p.version);
                w.i64(p.mtime_ns);
                w.str(&p.path);
                w.bytes(data);
                w.attrs(&p.attrs);
            }
            Record::Put(p) => {
                w.u8(KIND_PUT);
                w.u64(p.version);
                w.i64(p.mtime_ns);
                w.u64(p.size);
                w.str(&p.path);
                w.len(p.extents.len());
                for e in &p.extents {
                    w.u64(id_u64(e.id));
                    w.u64(e.len);
                }
                w.attrs(&p.attrs);
            }
            Record::Delete { path } => {
                w.u8(KIND_DELETE);
                w.str(path);
            }
            Record::Copy {
                rename,
                version,
                mtime_ns,
                from,
                to,
            } => {
                w.u8(if *rename { KIND_RENAME } else { KIND_COPY });
                w.u64(*version);
                w.i64(*mtime_ns);
                w.str(from);
                w.str(to);
            }
            Record::State { next_version } => {
                w.u8(KIND_STATE);
                w.u64(*next_version);
            }
            Record::Pending { ids } => {
                w.u8(KIND_PENDING);
                w.len(ids.len());
                for id in ids {
                    w.u64(id_u64(*id));
                }
            }
        }
        w.0
    }

    /// Decode one record; any defect is an error, never a panic.
    pub fn decode(b: &[u8]) -> Result<Record, DecodeError> {
        let mut r = R { b, pos: 0 };
        let rec = match r.u8()? {
            KIND_PUT => {
                let version = r.u64()?;
                let mtime_ns = r.i64()?;
                let size = r.u64()?;
                let path = r.str()?;
                let n = r.count(16)?;
                let mut extents = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = r.id()?;
                    let len = r.u64()?;
                    extents.push(Extent { id, len });
                }
                let total = extents
                    .iter()
                    .try_fold(0u64, |a, e| a.checked_add(e.len))
                    .ok_or_else(|| DecodeError("extent lengths overflow".into()))?;
                if total != size {
                    return Err(DecodeError(format!(
                        "size {size} is not the sum of the extents ({total})"
                    )));
                }
                let attrs = r.attrs()?;
                Record::Put(PutRec {
                    version,
                    mtime_ns,
                    size,
                    path,
                    extents,
                    inline: None,
                    attrs,
                })
            }
            KIND_PUT_INLINE => {
                let version = r.u64()?;
                let mtime_ns = r.i64()?;
                let path = r.str()?;
                let n = r.u32()? as usize;
                let data = r.take(n)?.to_vec();
                let attrs = r.attrs()?;
                Record::Put(PutRec {
                    version,
                    mtime_ns,
                    size: data.len() as u64,
                    path,
                    extents: Vec::new(),
                    inline: Some(data),
                    attrs,
                })
            }
            KIND_DELETE => Record::Delete { path: r.str()? },
            k @ (KIND_COPY | KIND_RENAME) => Record::Copy {
                rename: k == KIND_RENAME,
                version: r.u64()?,
                mtime_ns: r.i64()?,
                from: r.str()?,
                to: r.str()?,
            },
            KIND_STATE => Record::State {
                next_version: r.u64()?,
            },
            KIND_PENDING => {
                let n = r.count(8)?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(r.id()?);
                }
                Record::Pending { ids }
            }
            k => return Err(DecodeError(format!("unknown record kind {k}"))),
        };
        r.end()?;
        Ok(rec)
    }
}

/// The pointer record in the root MDC: the store `name`'s catalog MDC.
pub fn encode_pointer(name: &str, mdc: u64) -> Vec<u8> {
    let mut w = W(POINTER_MAGIC.to_vec());
    w.str(name);
    w.u64(mdc);
    w.0
}

/// Decode a root-MDC record: `None` when it is not an object-store
/// pointer (the root MDC is shared with other clients).
pub fn decode_pointer(b: &[u8]) -> Option<(String, u64)> {
    let rest = b.strip_prefix(POINTER_MAGIC.as_slice())?;
    let mut r = R { b: rest, pos: 0 };
    let name = r.str().ok()?;
    let id = r.u64().ok()?;
    r.end().ok()?;
    Some((name, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncations() {
        let id = MblockId::try_from(mpool::ObjectId::new(mpool::ObjType::Mblock, 3, 99)).unwrap();
        let recs = vec![
            Record::Put(PutRec {
                version: 7,
                mtime_ns: -3,
                size: 10,
                path: "a/b".into(),
                extents: vec![Extent { id, len: 10 }],
                inline: None,
                attrs: vec![
                    Attr {
                        kind: ATTR_CONTENT_TYPE,
                        key: String::new(),
                        value: "text/plain".into(),
                    },
                    Attr {
                        kind: ATTR_METADATA,
                        key: "k".into(),
                        value: "v".into(),
                    },
                ],
            }),
            Record::Put(PutRec {
                version: 8,
                mtime_ns: 5,
                size: 3,
                path: "small".into(),
                extents: Vec::new(),
                inline: Some(b"abc".to_vec()),
                attrs: Vec::new(),
            }),
            Record::Delete { path: "x".into() },
            Record::Copy {
                rename: true,
                version: 9,
                mtime_ns: 1,
                from: "f".into(),
                to: "t".into(),
            },
            Record::State { next_version: 5 },
            Record::Pending { ids: vec![id, id] },
        ];
        for rec in recs {
            let b = rec.encode();
            assert_eq!(Record::decode(&b).unwrap(), rec);
            for n in 0..b.len() {
                assert!(Record::decode(&b[..n]).is_err(), "{rec:?} cut at {n}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert!(Record::decode(&longer).is_err());
        }
        let p = encode_pointer("default", 42);
        assert_eq!(decode_pointer(&p), Some(("default".into(), 42)));
        assert_eq!(decode_pointer(b"something else"), None);
    }
}
