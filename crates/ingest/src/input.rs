//! Opening inputs: plain or gzip (detected by magic bytes), with a byte
//! counter for progress bars.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{IngestError, Result};

/// Counts bytes read from the underlying (compressed) file.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input file.
pub struct Input {
    pub reader: Box<dyn BufRead + Send>,
    /// Size of the file on disk (compressed size for gzip).
    pub file_size: u64,
    /// Bytes of the file consumed so far.
    pub consumed: Arc<AtomicU64>,
    pub gzip: bool,
    /// Lines the guard dropped as over-long (see [`LineGuard`]).
    pub long_lines: Arc<std::sync::Mutex<Vec<LongLine>>>,
    /// Where the record being parsed starts, in bytes handed out by the
    /// guard; a CSV reader stores it after each record (see
    /// [`LineGuard::record_start`]). `u64::MAX`: not tracked.
    pub record_start: Arc<AtomicU64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line_bytes: 1 << 20,
            max_ratio: 100,
        }
    }
}

/// Opens a file with the default [`Limits`].
pub fn open(path: &Path) -> Result<Input> {
    open_with(path, Limits::default())
}

/// Opens a file, transparently decompressing gzip, behind a [`LineGuard`]
/// with `limits`. An empty (0-byte) file is an error: there is not even a
/// header to read.
pub fn open_with(path: &Path, limits: Limits) -> Result<Input> {
    let file = File::open(path).map_err(|source| IngestError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| IngestError::Open {
        path: path.display().to_string(),
        source,
    })?;
    if meta.is_dir() {
        return Err(IngestError::Open {
            path: path.display().to_string(),
            source: std::io::Error::other("is a directory"),
        });
    }
    if meta.len() == 0 {
        return Err(IngestError::EmptyInput {
            path: path.display().to_string(),
        });
    }
    let consumed = Arc::new(AtomicU64::new(0));
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: file,
            count: consumed.clone(),
        },
    );
    let head = buffered.fill_buf().map_err(|source| IngestError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let gzip = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    let guard = if gzip {
        LineGuard::new(
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered)) as Box<dyn Read + Send>,
            limits,
            Some(consumed.clone()),
        )
    } else {
        LineGuard::new(Box::new(buffered) as Box<dyn Read + Send>, limits, None)
    };
    let long_lines = guard.long_lines.clone();
    let record_start = guard.record_start.clone();
    Ok(Input {
        reader: Box::new(guard),
        file_size: meta.len(),
        consumed,
        gzip,
        long_lines,
        record_start,
    })
}

/// A line longer than the limit, dropped by [`LineGuard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongLine {
    /// 1-based line number.
    pub line: u64,
    /// Its length in bytes (without the newline).
    pub bytes: u64,
    /// Its first [`EXCERPT_BYTES`] bytes.
    pub excerpt: Vec<u8>,
}

/// Bytes of a dropped line kept in its quarantine record.
pub const EXCERPT_BYTES: usize = 256;

/// Limits on what an input may decompress to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line kept, in bytes; a longer one is dropped (only its
    /// excerpt is kept) and replaced by an empty line, so it never sits in
    /// memory whole and line numbers stay true.
    pub max_line_bytes: usize,
    /// Largest decompressed/compressed ratio of a gzip input, checked once
    /// [`RATIO_GRACE`] bytes are out; beyond it the input is refused as a
    /// compression bomb. 0: no check.
    pub max_ratio: u64,
}

/// Decompressed bytes before the ratio is checked.
pub const RATIO_GRACE: u64 = 64 << 20;

/// Passes whole lines through; drops over-long ones (recording them) and
/// refuses compression bombs. Memory: one buffer of about the line limit.
pub struct LineGuard<R> {
    inner: R,
    limits: Limits,
    /// Buffered bytes [start, end) not yet handed out.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes at `buf[start..ready]` are complete lines, ready to hand out.
    ready: usize,
    /// Inside an over-long line: discarding until its newline.
    skipping: Option<LongLine>,
    line: u64,
    eof: bool,
    decompressed: u64,
    compressed: Option<Arc<AtomicU64>>,
    /// Lines dropped so far.
    pub long_lines: Arc<std::sync::Mutex<Vec<LongLine>>>,
    /// Bytes handed out so far.
    handed: u64,
    /// Where the record a reader is parsing started (bytes handed out), as
    /// the reader last said; `u64::MAX` until it says. A record may span
    /// lines (a quoted CSV field): once it runs past the line limit plus a
    /// reader's read-ahead, the input is refused rather than buffered.
    pub record_start: Arc<AtomicU64>,
}

/// How far a reader may buffer ahead of the record it parses.
pub const READ_AHEAD: u64 = 1 << 20;

impl<R: Read> LineGuard<R> {
    /// `compressed` counts the bytes read from disk when the input is gzip.
    pub fn new(inner: R, limits: Limits, compressed: Option<Arc<AtomicU64>>) -> LineGuard<R> {
        let cap = limits.max_line_bytes.max(1) + 64 * 1024;
        LineGuard {
            inner,
            limits,
            buf: vec![0; cap],
            start: 0,
            end: 0,
            ready: 0,
            skipping: None,
            line: 0,
            eof: false,
            decompressed: 0,
            compressed,
            long_lines: Default::default(),
            handed: 0,
            record_start: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    fn check_record(&self) -> std::io::Result<()> {
        let start = self.record_start.load(Ordering::Relaxed);
        let limit = self.limits.max_line_bytes as u64 + READ_AHEAD;
        if start != u64::MAX && self.handed > start.saturating_add(limit) {
            return Err(std::io::Error::other(format!(
                "a record runs on for more than {} bytes across lines (an unclosed quote?) before line {}: refusing to buffer it (cleaning.max_line_bytes)",
                self.limits.max_line_bytes,
                self.line + 1
            )));
        }
        Ok(())
    }

    fn check_ratio(&self) -> std::io::Result<()> {
        let Some(c) = &self.compressed else {
            return Ok(());
        };
        let c = c.load(Ordering::Relaxed).max(1);
        if self.limits.max_ratio > 0
            && self.decompressed > RATIO_GRACE
            && self.decompressed / c > self.limits.max_ratio
        {
            return Err(std::io::Error::other(format!(
                "the gzip input expands more than {}:1 ({} MB from {} KB): refusing it as a compression bomb (raise cleaning.max_decompression_ratio if the file is genuine)",
                self.limits.max_ratio,
                self.decompressed >> 20,
                c >> 10
            )));
        }
        Ok(())
    }

    /// Makes `ready > start` (or reaches the end): reads, finds line ends,
    /// drops over-long lines.
    fn fill(&mut self) -> std::io::Result<()> {
        loop {
            if self.ready > self.start {
                return Ok(());
            }
            // Scan the unscanned bytes for complete lines.
            if let Some(skip) = &mut self.skipping {
                match memchr(b'\n', &self.buf[self.start..self.end]) {
                    Some(i) => {
                        skip.bytes += i as u64;
                        self.line += 1;
                        let done = self.skipping.take().expect("skipping");
                        self.long_lines
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(done);
                        // The newline stays: an empty line in its place.
                        self.start += i;
                        self.ready = self.start + 1;
                        return Ok(());
                    }
                    None => {
                        skip.bytes += (self.end - self.start) as u64;
                        self.start = self.end;
                    }
                }
            } else {
                // Complete lines from `start`, each checked against the limit.
                let mut pos = self.start;
                while let Some(i) = memchr(b'\n', &self.buf[pos..self.end]) {
                    if i > self.limits.max_line_bytes {
                        if pos > self.start {
                            break;
                        }
                        let n = i.min(EXCERPT_BYTES);
                        self.line += 1;
                        self.long_lines
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(LongLine {
                                line: self.line,
                                bytes: i as u64,
                                excerpt: self.buf[pos..pos + n].to_vec(),
                            });
                        // The newline stays: an empty line in its place.
                        self.start = pos + i;
                        self.ready = self.start + 1;
                        return Ok(());
                    }
                    self.line += 1;
                    pos += i + 1;
                }
                if pos > self.start {
                    self.ready = pos;
                    return Ok(());
                }
                let pending = &self.buf[self.start..self.end];
                if pending.len() > self.limits.max_line_bytes {
                    let n = pending.len().min(EXCERPT_BYTES);
                    self.skipping = Some(LongLine {
                        line: self.line + 1,
                        bytes: pending.len() as u64,
                        excerpt: pending[..n].to_vec(),
                    });
                    self.start = self.end;
                    continue;
                }
            }
            if self.eof {
                if let Some(done) = self.skipping.take() {
                    self.line += 1;
                    self.long_lines
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(done);
                }
                // The last line, without a newline.
                self.ready = self.end;
                return Ok(());
            }
            // Room for more: move pending bytes to the front.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                self.ready = 0;
            }
            let n = loop {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.decompressed += n as u64;
            self.end += n;
            self.check_ratio()?;
        }
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&x| x == b)
}

impl<R: Read> Read for LineGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for LineGuard<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.fill()?;
        self.check_record()?;
        Ok(&self.buf[self.start..self.ready])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.ready - self.start);
        self.start += amt;
        self.handed += amt as u64;
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    fn run(input: &[u8], max_line: usize) -> (Vec<u8>, Vec<LongLine>) {
        let mut g = LineGuard::new(
            input,
            Limits {
                max_line_bytes: max_line,
                max_ratio: 0,
            },
            None,
        );
        let mut out = Vec::new();
        g.read_to_end(&mut out).unwrap();
        let long = g.long_lines.lock().unwrap().clone();
        (out, long)
    }

    #[test]
    fn short_lines_pass_through_unchanged() {
        let text = b"a,b\nc,d\r\n\nlast";
        assert_eq!(run(text, 10).0, text.to_vec());
        assert!(run(text, 10).1.is_empty());
    }

    #[test]
    fn a_long_line_becomes_an_empty_line_with_an_excerpt() {
        let mut text = b"h\nok\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 5000));
        text.extend(b"\nafter\n");
        let (out, long) = run(&text, 100);
        assert!(out == b"h\nok\n\nafter\n", "{} bytes out", out.len());
        assert_eq!(long.len(), 1);
        assert_eq!(long[0].line, 3);
        assert_eq!(long[0].bytes, 5000);
        assert_eq!(long[0].excerpt.len(), EXCERPT_BYTES);
    }

    #[test]
    fn a_long_last_line_without_newline_is_dropped_too() {
        let mut text = b"h\n".to_vec();
        text.extend(std::iter::repeat_n(0u8, 1 << 20));
        let (out, long) = run(&text, 1000);
        assert!(out == b"h\n", "{} bytes out", out.len());
        assert_eq!((long[0].line, long[0].bytes), (2, 1 << 20));
    }

    #[test]
    fn a_compression_bomb_is_refused() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..80 {
            gz.write_all(&zeros).unwrap();
        }
        let bytes = gz.finish().unwrap();
        let counted = Arc::new(AtomicU64::new(0));
        let reader = flate2::read::GzDecoder::new(Counting {
            inner: &bytes[..],
            count: counted.clone(),
        });
        let mut g = LineGuard::new(
            reader,
            Limits {
                max_line_bytes: 1 << 20,
                max_ratio: 100,
            },
            Some(counted),
        );
        let err = std::io::copy(&mut g, &mut std::io::sink()).unwrap_err();
        assert!(err.to_string().contains("compression bomb"), "{err}");
    }
}
