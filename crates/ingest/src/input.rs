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
}

/// Opens a file, transparently decompressing gzip. An empty (0-byte) file is
/// an error: there is not even a header to read.
pub fn open(path: &Path) -> Result<Input> {
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
    let reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    Ok(Input {
        reader,
        file_size: meta.len(),
        consumed,
        gzip,
    })
}
