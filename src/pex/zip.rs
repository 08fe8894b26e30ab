//! Just enough ZIP for PEX files: read an archive's central directory (PEX-INFO, the entries of
//! a template PEX), copy entries raw (no recompression) and write new ones, behind a shebang
//! line. Python's `zipimport` and `zipfile` read the result; offsets are from the start of the
//! file, shebang included, as pex writes them.
//!
//! No ZIP64: an archive or entry of 4 GiB or more is refused (with the file that caused it).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::DeflateEncoder;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
/// 1980-01-01 00:00, the earliest DOS date: entries carry no build time, so the same input
/// gives the same bytes.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;

/// One entry of an archive being read.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    method: u16,
    crc: u32,
    compressed: u32,
    size: u32,
    local_offset: u32,
    external_attr: u32,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn bad(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} is not a readable ZIP/PEX file: {why}", path.display()),
    )
}

/// An archive open for reading.
pub struct Archive {
    file: File,
    pub entries: Vec<Entry>,
}

impl Archive {
    pub fn open(path: &Path) -> std::io::Result<Archive> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        // The end record is in the last 64 KiB + 22 bytes (its comment is at most 64 KiB).
        let tail_len = len.min(65_557);
        file.seek(SeekFrom::Start(len - tail_len))?;
        let mut tail = vec![0u8; tail_len as usize];
        file.read_exact(&mut tail)?;
        let end = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| u32_at(&tail, i) == END_SIG)
            .ok_or_else(|| bad(path, "no end of central directory"))?;
        let count = u16_at(&tail, end + 10) as usize;
        let cd_size = u32_at(&tail, end + 12) as u64;
        let cd_offset = u32_at(&tail, end + 16) as u64;
        // Archives written behind a prefix without fixing offsets: find the directory right
        // before the end record.
        let end_pos = len - tail_len + end as u64;
        let shift = end_pos
            .checked_sub(cd_size + cd_offset)
            .ok_or_else(|| bad(path, "central directory out of range"))?;
        file.seek(SeekFrom::Start(cd_offset + shift))?;
        let mut cd = vec![0u8; cd_size as usize];
        file.read_exact(&mut cd)?;
        let mut entries = Vec::with_capacity(count);
        let mut i = 0;
        while i + 46 <= cd.len() && u32_at(&cd, i) == CENTRAL_SIG {
            let name_len = u16_at(&cd, i + 28) as usize;
            let extra_len = u16_at(&cd, i + 30) as usize;
            let comment_len = u16_at(&cd, i + 32) as usize;
            let name = cd
                .get(i + 46..i + 46 + name_len)
                .ok_or_else(|| bad(path, "truncated entry name"))?;
            entries.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                method: u16_at(&cd, i + 10),
                crc: u32_at(&cd, i + 16),
                compressed: u32_at(&cd, i + 20),
                size: u32_at(&cd, i + 24),
                local_offset: (u32_at(&cd, i + 42) as u64 + shift) as u32,
                external_attr: u32_at(&cd, i + 38),
            });
            i += 46 + name_len + extra_len + comment_len;
        }
        Ok(Archive { file, entries })
    }

    /// The stored (possibly compressed) bytes of an entry.
    fn raw(&mut self, e: &Entry) -> std::io::Result<Vec<u8>> {
        let mut header = [0u8; 30];
        self.file.seek(SeekFrom::Start(e.local_offset as u64))?;
        self.file.read_exact(&mut header)?;
        let skip = u16_at(&header, 26) as i64 + u16_at(&header, 28) as i64;
        self.file.seek(SeekFrom::Current(skip))?;
        let mut data = vec![0u8; e.compressed as usize];
        self.file.read_exact(&mut data)?;
        Ok(data)
    }

    /// An entry's content, decompressed.
    pub fn read(&mut self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        let Some(e) = self.entries.iter().find(|e| e.name == name).cloned() else {
            return Ok(None);
        };
        let raw = self.raw(&e)?;
        match e.method {
            0 => Ok(Some(raw)),
            8 => {
                let mut out = Vec::with_capacity(e.size as usize);
                flate2::read::DeflateDecoder::new(&raw[..]).read_to_end(&mut out)?;
                Ok(Some(out))
            }
            m => Err(std::io::Error::other(format!(
                "{name}: unsupported compression method {m}"
            ))),
        }
    }
}

/// An archive being written.
pub struct Writer {
    out: BufWriter<File>,
    offset: u64,
    central: Vec<u8>,
    count: usize,
}

fn too_big(what: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "{what} would make the archive 4 GiB or larger, which this writer does not support; \
         leave large data files out (.gitignore) and load them at run time instead"
    ))
}

impl Writer {
    /// Starts `path` with `prefix` (the shebang line).
    pub fn create(path: &Path, prefix: &[u8]) -> std::io::Result<Writer> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(prefix)?;
        Ok(Writer {
            out,
            offset: prefix.len() as u64,
            central: Vec::new(),
            count: 0,
        })
    }

    fn put(
        &mut self,
        name: &str,
        method: u16,
        crc: u32,
        data: &[u8],
        size: u64,
        external_attr: u32,
    ) -> std::io::Result<()> {
        let compressed = data.len() as u64;
        if self.offset + compressed + 1024 >= u32::MAX as u64 || size >= u32::MAX as u64 {
            return Err(too_big(name));
        }
        let name_bytes = name.as_bytes();
        let mut local = Vec::with_capacity(30 + name_bytes.len());
        local.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes()); // version needed
        local.extend_from_slice(&0x0800u16.to_le_bytes()); // flags: UTF-8 names
        local.extend_from_slice(&method.to_le_bytes());
        local.extend_from_slice(&DOS_TIME.to_le_bytes());
        local.extend_from_slice(&DOS_DATE.to_le_bytes());
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&(compressed as u32).to_le_bytes());
        local.extend_from_slice(&(size as u32).to_le_bytes());
        local.extend_from_slice(&(name_bytes.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(name_bytes);

        let c = &mut self.central;
        c.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        c.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by: Unix
        c.extend_from_slice(&20u16.to_le_bytes());
        c.extend_from_slice(&0x0800u16.to_le_bytes());
        c.extend_from_slice(&method.to_le_bytes());
        c.extend_from_slice(&DOS_TIME.to_le_bytes());
        c.extend_from_slice(&DOS_DATE.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&(compressed as u32).to_le_bytes());
        c.extend_from_slice(&(size as u32).to_le_bytes());
        c.extend_from_slice(&(name_bytes.len() as u16).to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes()); // extra
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        c.extend_from_slice(&external_attr.to_le_bytes());
        c.extend_from_slice(&(self.offset as u32).to_le_bytes());
        c.extend_from_slice(name_bytes);

        self.out.write_all(&local)?;
        self.out.write_all(data)?;
        self.offset += local.len() as u64 + compressed;
        self.count += 1;
        Ok(())
    }

    /// Copies an entry of `from` as it is stored there.
    pub fn copy(&mut self, from: &mut Archive, e: &Entry) -> std::io::Result<()> {
        let raw = from.raw(e)?;
        self.put(
            &e.name,
            e.method,
            e.crc,
            &raw,
            e.size as u64,
            e.external_attr,
        )
    }

    /// A directory entry (`name` ends with `/`).
    pub fn dir(&mut self, name: &str) -> std::io::Result<()> {
        self.put(name, 0, 0, &[], 0, (0o40755u32 << 16) | 0x10)
    }

    /// A file, deflated (stored when that is not smaller).
    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> std::io::Result<()> {
        let crc = crc32fast::hash(data);
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data)?;
        let deflated = enc.finish()?;
        let attr = (0o100000 | (mode & 0o777)) << 16;
        if deflated.len() < data.len() {
            self.put(name, 8, crc, &deflated, data.len() as u64, attr)
        } else {
            self.put(name, 0, crc, data, data.len() as u64, attr)
        }
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        if self.count >= u16::MAX as usize {
            return Err(too_big(&format!("{} files", self.count)));
        }
        let cd_offset = self.offset;
        let cd_size = self.central.len() as u64;
        if cd_offset + cd_size >= u32::MAX as u64 {
            return Err(too_big("the file list"));
        }
        let central = std::mem::take(&mut self.central);
        self.out.write_all(&central)?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&END_SIG.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        end.extend_from_slice(&(self.count as u16).to_le_bytes());
        end.extend_from_slice(&(self.count as u16).to_le_bytes());
        end.extend_from_slice(&(cd_size as u32).to_le_bytes());
        end.extend_from_slice(&(cd_offset as u32).to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        self.out.write_all(&end)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_archives_read_back_and_copy_raw() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.zip");
        let mut w = Writer::create(&a, b"#!/usr/bin/env python3\n").unwrap();
        w.dir("pkg/").unwrap();
        w.file("pkg/__init__.py", b"x = 1\n", 0o644).unwrap();
        let big = "print('hello')\n".repeat(1000);
        w.file("pkg/big.py", big.as_bytes(), 0o755).unwrap();
        w.finish().unwrap();

        let mut r = Archive::open(&a).unwrap();
        let names: Vec<_> = r.entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["pkg/", "pkg/__init__.py", "pkg/big.py"]);
        assert_eq!(r.read("pkg/big.py").unwrap().unwrap(), big.as_bytes());

        let b = dir.path().join("b.zip");
        let mut w = Writer::create(&b, b"").unwrap();
        for e in r.entries.clone() {
            w.copy(&mut r, &e).unwrap();
        }
        w.finish().unwrap();
        let mut r2 = Archive::open(&b).unwrap();
        assert_eq!(r2.read("pkg/__init__.py").unwrap().unwrap(), b"x = 1\n");
    }
}
