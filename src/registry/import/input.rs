//! Opening registry input files: plain or gzip-compressed, decided by the
//! content (the gzip magic bytes `1f 8b`), not by the file name, because
//! operators rename downloads (`ripe.db.inetnum.gz` saved as `.txt` and the
//! other way round).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

/// Buffer handed to parsers: large, because the RIPE dumps are gigabytes of
/// short lines and every refill is a syscall (or a decompression step).
const BUFFER_BYTES: usize = 1 << 20;
/// Buffer between the file and the decompressor.
const COMPRESSED_BUFFER_BYTES: usize = 256 << 10;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Open `path` for reading, gunzipping transparently when it is gzip data.
pub fn open_input(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    open_input_with(file)
}

/// Like [`open_input`] for any reader (the CLI wraps the file in a progress
/// reader first, so progress counts compressed bytes).
///
/// Multi-member gzip (concatenated `.gz` files, bgzip) is read to the end, not
/// just its first member.
pub fn open_input_with<R: Read + Send + 'static>(
    mut reader: R,
) -> io::Result<Box<dyn BufRead + Send>> {
    // Sniff by reading the first bytes ourselves: a single `read` may return
    // fewer than two bytes even when more are coming (pipes, progress
    // wrappers), and a BufReader cannot be asked for "at least two".
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = Cursor::new(magic).take(got as u64);
    let whole = head.chain(reader);

    if got == magic.len() && magic == GZIP_MAGIC {
        let compressed = BufReader::with_capacity(COMPRESSED_BUFFER_BYTES, whole);
        Ok(Box::new(BufReader::with_capacity(
            BUFFER_BYTES,
            MultiGzDecoder::new(compressed),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(BUFFER_BYTES, whole)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// A reader that hands out one byte per call, like a slow pipe.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn read_all(mut r: Box<dyn BufRead + Send>) -> Vec<u8> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn plain_passes_through() {
        let data = b"inetnum: 192.0.2.0 - 192.0.2.255\n".to_vec();
        assert_eq!(
            read_all(open_input_with(Cursor::new(data.clone())).unwrap()),
            data
        );
        assert_eq!(
            read_all(open_input_with(Trickle(data.clone(), 0)).unwrap()),
            data
        );
    }

    #[test]
    fn gzip_is_detected_even_when_trickled() {
        let data = b"role: x\nnic-hdl: X-RIPE\n".repeat(1000);
        let gz = gzip(&data);
        assert_eq!(
            read_all(open_input_with(Cursor::new(gz.clone())).unwrap()),
            data
        );
        assert_eq!(read_all(open_input_with(Trickle(gz, 0)).unwrap()), data);
    }

    #[test]
    fn multi_member_gzip_reads_every_member() {
        let mut gz = gzip(b"first\n");
        gz.extend(gzip(b"second\n"));
        assert_eq!(
            read_all(open_input_with(Cursor::new(gz)).unwrap()),
            b"first\nsecond\n"
        );
    }

    #[test]
    fn tiny_inputs() {
        assert!(read_all(open_input_with(Cursor::new(Vec::new())).unwrap()).is_empty());
        assert_eq!(
            read_all(open_input_with(Cursor::new(vec![0x1f])).unwrap()),
            vec![0x1f]
        );
    }

    #[test]
    fn corrupt_gzip_is_an_error_not_a_panic() {
        let mut gz = gzip(&b"x".repeat(10_000));
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        gz.truncate(gz.len() - 4);
        let mut r = open_input_with(Cursor::new(gz)).unwrap();
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
    }

    #[test]
    fn opens_files() {
        let dir = std::env::temp_dir().join(format!("varsel-input-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain.txt");
        let packed = dir.join("packed.txt"); // misleading name on purpose
        std::fs::write(&plain, b"hello\n").unwrap();
        std::fs::write(&packed, gzip(b"hello\n")).unwrap();
        assert_eq!(read_all(open_input(&plain).unwrap()), b"hello\n");
        assert_eq!(read_all(open_input(&packed).unwrap()), b"hello\n");
        assert!(open_input(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
