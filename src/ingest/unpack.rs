//! A request body that is a compressed file: a `.csv.gz` or a `.csv.zip`
//! uploaded as it was downloaded, without `Content-Encoding`. The first
//! bytes decide (gzip and zip magic numbers; no text format Varsel reads
//! starts with either), so neither the file name nor the client's headers
//! need to be right.
//!
//! A zip is read as a stream, from its local headers, since the body cannot
//! seek to the central directory at the end; the `zip` crate's stream reader
//! borrows its source and refuses members written with a data descriptor
//! (what streaming zip writers produce), so the few fields needed are read
//! here. The archive must hold one file (folders and macOS `__MACOSX/`
//! entries aside), stored or deflated, and its CRC-32 is checked.

use std::io::{self, BufRead, BufReader, Read};

use flate2::Crc;
use flate2::bufread::{DeflateDecoder, MultiGzDecoder};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;

/// The body, gunzipped or unzipped when its first bytes say so, else as it
/// came. Decides on the first read, so building it reads nothing.
pub struct Unpacked {
    state: Unpacking,
}

enum Unpacking {
    Start(Box<dyn Read + Send>),
    Reading(Box<dyn Read + Send>),
    Failed,
}

impl Unpacked {
    pub fn new(body: Box<dyn Read + Send>) -> Self {
        Self {
            state: Unpacking::Start(body),
        }
    }
}

impl Read for Unpacked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if matches!(self.state, Unpacking::Start(_)) {
            let Unpacking::Start(body) = std::mem::replace(&mut self.state, Unpacking::Failed)
            else {
                return Ok(0);
            };
            self.state = Unpacking::Reading(sniff(body)?);
        }
        match &mut self.state {
            Unpacking::Reading(r) => r.read(buf),
            Unpacking::Start(_) | Unpacking::Failed => Err(invalid("the body could not be read")),
        }
    }
}

fn sniff(body: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut body = BufReader::with_capacity(64 * 1024, body);
    let mut head = Vec::with_capacity(4);
    // One fill_buf may hold fewer than 4 bytes; look until there are 4 or
    // the body ends, keeping them for the reader after.
    while head.len() < 4 {
        let available = body.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let take = available.len().min(4 - head.len());
        head.extend_from_slice(&available[..take]);
        body.consume(take);
    }
    // Both halves are buffered, so the whole is a BufRead without a copy.
    let whole = io::Cursor::new(head.clone()).chain(body);
    Ok(if head.starts_with(&GZIP_MAGIC) {
        Box::new(MultiGzDecoder::new(whole))
    } else if head == LOCAL_HEADER.to_le_bytes() {
        Box::new(ZipMember::new(whole))
    } else {
        Box::new(whole)
    })
}

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

/// The one file of a zip archive, read from a stream.
struct ZipMember<R: BufRead> {
    state: Member<R>,
}

enum Member<R: BufRead> {
    /// Before the first local header.
    Start(R),
    Stored {
        data: io::Take<R>,
        entry: Entry,
        crc: Crc,
    },
    Deflated {
        data: DeflateDecoder<R>,
        entry: Entry,
        crc: Crc,
    },
    Done,
    Failed,
}

/// What a local header says about its file.
struct Entry {
    name: String,
    flags: u16,
    crc: u32,
    zip64: bool,
}

impl<R: BufRead> ZipMember<R> {
    fn new(archive: R) -> Self {
        Self {
            state: Member::Start(archive),
        }
    }
}

impl<R: BufRead> Read for ZipMember<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = match &mut self.state {
                Member::Start(_) => {
                    let Member::Start(mut archive) =
                        std::mem::replace(&mut self.state, Member::Failed)
                    else {
                        return Ok(0);
                    };
                    self.state = open_first_file(&mut archive)?.into_member(archive)?;
                    continue;
                }
                Member::Stored { data, crc, .. } => {
                    let n = data.read(buf)?;
                    crc.update(&buf[..n]);
                    n
                }
                Member::Deflated { data, crc, .. } => {
                    let n = data.read(buf)?;
                    crc.update(&buf[..n]);
                    n
                }
                Member::Done => return Ok(0),
                Member::Failed => return Err(invalid("the zip archive could not be read")),
            };
            if n > 0 {
                return Ok(n);
            }
            self.finish()?;
        }
    }
}

impl<R: BufRead> ZipMember<R> {
    /// At the end of the file's data: checks its CRC-32 and that no other
    /// file follows.
    fn finish(&mut self) -> io::Result<()> {
        let (mut archive, entry, crc) = match std::mem::replace(&mut self.state, Member::Failed) {
            Member::Stored { data, .. } if data.limit() > 0 => return Err(truncated()),
            Member::Stored { data, entry, crc } => (data.into_inner(), entry, crc),
            Member::Deflated { data, entry, crc } => (data.into_inner(), entry, crc),
            _ => return Ok(()),
        };
        let expected = if entry.flags & FLAG_DATA_DESCRIPTOR != 0 {
            read_descriptor_crc(&mut archive, entry.zip64)?
        } else {
            entry.crc
        };
        if crc.sum() != expected {
            return Err(invalid(format!(
                "{} in the zip archive is damaged (CRC-32 {:08x}, expected {expected:08x})",
                entry.name,
                crc.sum()
            )));
        }
        loop {
            match read_u32_or_end(&mut archive)? {
                Some(LOCAL_HEADER) => {
                    let next = read_local_header(&mut archive)?;
                    if !next.skippable() {
                        return Err(invalid(format!(
                            "the zip archive holds more than one file ({} and {}); send one \
                             report per request",
                            entry.name, next.entry.name
                        )));
                    }
                    next.skip(&mut archive)?;
                }
                // The central directory and what follows repeat what was read.
                Some(CENTRAL_HEADER | END_OF_CENTRAL) | None => break,
                Some(other) => {
                    return Err(invalid(format!(
                        "the zip archive has unexpected data after {} (signature {other:08x})",
                        entry.name
                    )));
                }
            }
        }
        self.state = Member::Done;
        Ok(())
    }
}

/// A local header and what its file needs to be read or skipped.
struct Header {
    entry: Entry,
    method: u16,
    compressed_size: u64,
}

impl Header {
    /// Folders and the `__MACOSX/` metadata macOS adds are not reports.
    fn skippable(&self) -> bool {
        let name = &self.entry.name;
        name.ends_with('/')
            || name.starts_with("__MACOSX/")
            || name.rsplit('/').next() == Some(".DS_Store")
    }

    fn into_member<R: BufRead>(self, archive: R) -> io::Result<Member<R>> {
        let Header {
            entry,
            method,
            compressed_size,
        } = self;
        match method {
            STORED if entry.flags & FLAG_DATA_DESCRIPTOR != 0 => Err(invalid(format!(
                "{} in the zip archive is stored with its size after the data, which cannot be \
                 read as a stream; deflate it, or send the CSV itself",
                entry.name
            ))),
            STORED => Ok(Member::Stored {
                data: archive.take(compressed_size),
                entry,
                crc: Crc::new(),
            }),
            DEFLATED => Ok(Member::Deflated {
                data: DeflateDecoder::new(archive),
                entry,
                crc: Crc::new(),
            }),
            other => Err(invalid(format!(
                "{} in the zip archive uses compression method {other}; only stored (0) and \
                 deflate (8) are read",
                entry.name
            ))),
        }
    }

    /// Reads past the file's data.
    fn skip<R: BufRead>(self, archive: &mut R) -> io::Result<()> {
        let (descriptor, zip64) = (
            self.entry.flags & FLAG_DATA_DESCRIPTOR != 0,
            self.entry.zip64,
        );
        if descriptor && self.method == DEFLATED {
            io::copy(&mut DeflateDecoder::new(&mut *archive), &mut io::sink())?;
        } else if descriptor {
            return Err(invalid(format!(
                "cannot skip {} in the zip archive",
                self.entry.name
            )));
        } else {
            let skipped = io::copy(
                &mut archive.by_ref().take(self.compressed_size),
                &mut io::sink(),
            )?;
            if skipped != self.compressed_size {
                return Err(truncated());
            }
        }
        if descriptor {
            read_descriptor_crc(archive, zip64)?;
        }
        Ok(())
    }
}

/// The first file's header, past folders and macOS metadata.
fn open_first_file<R: BufRead>(archive: &mut R) -> io::Result<Header> {
    loop {
        match read_u32_or_end(archive)? {
            Some(LOCAL_HEADER) => {
                let header = read_local_header(archive)?;
                if !header.skippable() {
                    return Ok(header);
                }
                header.skip(archive)?;
            }
            _ => return Err(invalid("the zip archive holds no file")),
        }
    }
}

/// The local header after its signature (APPNOTE 4.3.7).
fn read_local_header<R: BufRead>(archive: &mut R) -> io::Result<Header> {
    let mut fixed = [0u8; 26];
    archive.read_exact(&mut fixed).map_err(eof_is_truncation)?;
    let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
    let flags = u16_at(2);
    let method = u16_at(4);
    let crc = u32_at(10);
    let compressed = u32_at(14);
    let uncompressed = u32_at(18);
    let mut name = vec![0u8; usize::from(u16_at(22))];
    archive.read_exact(&mut name).map_err(eof_is_truncation)?;
    let mut extra = vec![0u8; usize::from(u16_at(24))];
    archive.read_exact(&mut extra).map_err(eof_is_truncation)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    if flags & FLAG_ENCRYPTED != 0 {
        return Err(invalid(format!(
            "{name} in the zip archive is encrypted; send it unencrypted"
        )));
    }
    let zip64 = zip64_sizes(&extra);
    let compressed_size = match (compressed, &zip64) {
        (u32::MAX, Some(sizes)) => {
            // The ZIP64 field lists the sizes that did not fit, in order.
            let index = usize::from(uncompressed == u32::MAX);
            sizes.get(index).copied().ok_or_else(|| {
                invalid(format!(
                    "{name} in the zip archive has a broken ZIP64 field"
                ))
            })?
        }
        (size, _) => u64::from(size),
    };
    Ok(Header {
        entry: Entry {
            name,
            flags,
            crc,
            zip64: zip64.is_some(),
        },
        method,
        compressed_size,
    })
}

/// The 8-byte values of the ZIP64 extra field (id 1), if there is one.
fn zip64_sizes(mut extra: &[u8]) -> Option<Vec<u64>> {
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let body = extra.get(4..4 + len)?;
        if id == 1 {
            return Some(
                body.chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            );
        }
        extra = &extra[4 + len..];
    }
    None
}

/// The CRC-32 of a data descriptor (signature optional; sizes of 4 bytes,
/// or 8 with ZIP64).
fn read_descriptor_crc<R: BufRead>(archive: &mut R, zip64: bool) -> io::Result<u32> {
    let mut first = read_u32_or_end(archive)?.ok_or_else(truncated)?;
    if first == DATA_DESCRIPTOR {
        first = read_u32_or_end(archive)?.ok_or_else(truncated)?;
    }
    let mut sizes = vec![0u8; if zip64 { 16 } else { 8 }];
    archive.read_exact(&mut sizes).map_err(eof_is_truncation)?;
    Ok(first)
}

fn read_u32_or_end<R: BufRead>(archive: &mut R) -> io::Result<Option<u32>> {
    let mut bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match archive.read(&mut bytes[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(truncated()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(u32::from_le_bytes(bytes)))
}

fn truncated() -> io::Error {
    invalid("the zip archive ends early")
}

fn eof_is_truncation(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        truncated()
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::DeflateEncoder;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/formats/shadowserver")
                .join(name),
        )
        .unwrap()
    }

    /// Reads the body the way the pipeline does: in small pieces.
    fn unpack(bytes: Vec<u8>) -> io::Result<String> {
        let body = BufReader::with_capacity(3, io::Cursor::new(bytes));
        let mut out = String::new();
        Unpacked::new(Box::new(body)).read_to_string(&mut out)?;
        Ok(out)
    }

    fn entry(name: &str, data: &[u8], method: u16, descriptor: bool) -> (Vec<u8>, Vec<u8>) {
        let mut crc = Crc::new();
        crc.update(data);
        let packed = if method == DEFLATED {
            let mut e = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            data.to_vec()
        };
        let flags: u16 = if descriptor { FLAG_DATA_DESCRIPTOR } else { 0 };
        let (crc_field, size_field, len_field) = if descriptor {
            (0, 0, 0)
        } else {
            (crc.sum(), packed.len() as u32, data.len() as u32)
        };
        let mut local = Vec::new();
        local.extend(LOCAL_HEADER.to_le_bytes());
        local.extend(20u16.to_le_bytes());
        local.extend(flags.to_le_bytes());
        local.extend(method.to_le_bytes());
        local.extend([0u8; 4]);
        local.extend(crc_field.to_le_bytes());
        local.extend(size_field.to_le_bytes());
        local.extend(len_field.to_le_bytes());
        local.extend((name.len() as u16).to_le_bytes());
        local.extend(0u16.to_le_bytes());
        local.extend(name.as_bytes());
        local.extend(&packed);
        if descriptor {
            local.extend(crc.sum().to_le_bytes());
            local.extend((packed.len() as u32).to_le_bytes());
            local.extend((data.len() as u32).to_le_bytes());
        }
        // Enough of a central directory entry to end the stream on.
        let mut central = CENTRAL_HEADER.to_le_bytes().to_vec();
        central.extend([0u8; 42]);
        (local, central)
    }

    fn archive(entries: &[(&str, &[u8], u16, bool)]) -> Vec<u8> {
        let mut locals = Vec::new();
        let mut centrals = Vec::new();
        for &(name, data, method, descriptor) in entries {
            let (l, c) = entry(name, data, method, descriptor);
            locals.extend(l);
            centrals.extend(c);
        }
        locals.extend(centrals);
        locals.extend(END_OF_CENTRAL.to_le_bytes());
        locals.extend([0u8; 18]);
        locals
    }

    const CSV: &[u8] = b"timestamp,ip\n2024-06-14 00:00:00,192.0.2.1\n";

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(unpack(CSV.to_vec()).unwrap().as_bytes(), CSV);
        assert_eq!(unpack(Vec::new()).unwrap(), "");
        assert_eq!(unpack(b"P".to_vec()).unwrap(), "P");
        assert_eq!(
            unpack(b"PK".to_vec()).unwrap(),
            "PK",
            "too short to be a zip"
        );
    }

    #[test]
    fn gzip_file_is_gunzipped() {
        let text = unpack(fixture("event4_sinkhole_http.csv.gz")).unwrap();
        assert_eq!(
            text,
            String::from_utf8(fixture("event4_sinkhole_http.csv")).unwrap()
        );
    }

    #[test]
    fn zip_files_with_and_without_a_data_descriptor() {
        let text = unpack(fixture("compromised_iot.csv.zip")).unwrap();
        assert_eq!(
            text,
            String::from_utf8(fixture("compromised_iot.csv")).unwrap()
        );
        let text = unpack(fixture("special_streamed.csv.zip")).unwrap();
        assert_eq!(text, String::from_utf8(fixture("special.csv")).unwrap());
        for (method, descriptor) in [(STORED, false), (DEFLATED, false), (DEFLATED, true)] {
            let zip = archive(&[("r.csv", CSV, method, descriptor)]);
            assert_eq!(
                unpack(zip).unwrap().as_bytes(),
                CSV,
                "{method} {descriptor}"
            );
        }
    }

    #[test]
    fn folders_and_macos_metadata_are_skipped() {
        let zip = archive(&[
            ("reports/", b"", STORED, false),
            ("reports/2024-06-14-special-no.csv", CSV, DEFLATED, true),
            (
                "__MACOSX/reports/._2024-06-14-special-no.csv",
                b"\0\x05\x16\x07",
                DEFLATED,
                false,
            ),
        ]);
        assert_eq!(unpack(zip).unwrap().as_bytes(), CSV);
    }

    #[test]
    fn refused_archives_say_why() {
        let message = |zip: Vec<u8>| unpack(zip).unwrap_err().to_string();
        let two = archive(&[
            ("a.csv", CSV, DEFLATED, false),
            ("b.csv", CSV, DEFLATED, false),
        ]);
        assert!(message(two).contains("more than one file (a.csv and b.csv)"));
        let empty = archive(&[("only/", b"", STORED, false)]);
        assert!(message(empty).contains("holds no file"));
        let streamed_stored = archive(&[("a.csv", CSV, STORED, true)]);
        assert!(message(streamed_stored).contains("stored with its size after the data"));
        let mut bzip = archive(&[("a.csv", CSV, STORED, false)]);
        bzip[8] = 12;
        assert!(message(bzip).contains("compression method 12"));
        let mut encrypted = archive(&[("a.csv", CSV, DEFLATED, false)]);
        encrypted[6] |= 1;
        assert!(message(encrypted).contains("encrypted"));
        let mut damaged = archive(&[("a.csv", CSV, STORED, false)]);
        damaged[31 + 5] ^= 0x20;
        assert!(message(damaged).contains("damaged"));
        let whole = fixture("compromised_iot.csv.zip");
        let cut = whole[..whole.len() / 2].to_vec();
        assert!(unpack(cut).is_err());
    }
}
