//! Layer compression: detection by magic bytes, and the limits that stop
//! decompression bombs while the stream is read.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::ScopedJoinHandle;

use crate::digest::{Digest, Hashing};
use crate::media_types;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// From the first bytes of a blob; anything unrecognised is plain tar
    /// (whose first block is a file name).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// What a layer media type claims, if it is a layer media type at all.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        use media_types::*;
        match media_type {
            OCI_LAYER | DOCKER_LAYER => Some(Compression::None),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP => {
                Some(Compression::Gzip)
            }
            OCI_LAYER_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => media_types::OCI_LAYER,
            Compression::Gzip => media_types::OCI_LAYER_GZIP,
            Compression::Zstd => media_types::OCI_LAYER_ZSTD,
        }
    }
}

/// Bounds on what one layer may expand to. Every bound is checked while
/// reading, before the bytes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total uncompressed tar bytes.
    pub max_expanded: u64,
    /// Uncompressed bytes per compressed byte, checked once `ratio_floor`
    /// bytes have been expanded (small layers may compress very well).
    pub max_ratio: u64,
    pub ratio_floor: u64,
    /// Size of one file.
    pub max_entry_size: u64,
    /// Number of tar entries.
    pub max_entries: u64,
}

impl Default for Limits {
    /// Generous for real images (a Debian layer expands about 3:1), far
    /// below what a bomb needs.
    fn default() -> Limits {
        Limits {
            max_expanded: 32 << 30,
            max_ratio: 200,
            ratio_floor: 64 << 20,
            max_entry_size: 16 << 30,
            max_entries: 2_000_000,
        }
    }
}

/// Why a stream was cut off; kept beside the stream because the tar reader
/// wraps the I/O error it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    Expanded(u64),
    Ratio { expanded: u64, compressed: u64 },
}

pub(crate) type ViolationSlot = Rc<Cell<Option<Violation>>>;

/// Counts the compressed bytes read; shared with the decompressed side,
/// which may run on another thread.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The decompressed side, enforcing [`Limits::max_expanded`] and the ratio.
pub(crate) struct Bounded<R> {
    inner: R,
    compressed: Arc<AtomicU64>,
    expanded: u64,
    limits: Limits,
    violation: ViolationSlot,
}

impl<R> Bounded<R> {
    pub(crate) fn violation(&self) -> ViolationSlot {
        self.violation.clone()
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.expanded += n as u64;
        let compressed = self.compressed.load(Ordering::Relaxed).max(1);
        let v = if self.expanded > self.limits.max_expanded {
            Some(Violation::Expanded(self.expanded))
        } else if self.expanded > self.limits.ratio_floor
            && self.expanded / compressed > self.limits.max_ratio
        {
            Some(Violation::Ratio {
                expanded: self.expanded,
                compressed,
            })
        } else {
            None
        };
        if let Some(v) = v {
            self.violation.set(Some(v));
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "layer exceeds expansion limits",
            ));
        }
        Ok(n)
    }
}

type Decoder<'a> = Box<dyn Read + Send + 'a>;

/// Detects the compression from the magic bytes and returns the decoder
/// and the shared compressed-byte counter.
fn decoder<'a>(
    raw: impl Read + Send + 'a,
) -> io::Result<(Decoder<'a>, Compression, Arc<AtomicU64>)> {
    let compressed = Arc::new(AtomicU64::new(0));
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        CountingReader {
            inner: raw,
            count: compressed.clone(),
        },
    );
    let compression = Compression::detect(buffered.fill_buf()?);
    let inner: Decoder<'a> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    Ok((inner, compression, compressed))
}

/// The bounded decompressed stream of a raw blob, decoded on this thread.
pub(crate) fn decompress<'a>(
    raw: impl Read + Send + 'a,
    limits: Limits,
) -> io::Result<(Bounded<Decoder<'a>>, Compression)> {
    let (inner, compression, compressed) = decoder(raw)?;
    Ok((
        Bounded {
            inner,
            compressed,
            expanded: 0,
            limits,
            violation: Rc::new(Cell::new(None)),
        },
        compression,
    ))
}

const CHUNK: usize = 256 * 1024;

/// Joins to the sha256 and length of the decoded stream, or `None` if the
/// decoder stopped early (its error went down the channel).
pub(crate) type DecoderHandle<'scope> = ScopedJoinHandle<'scope, Option<(Digest, u64)>>;

/// The decompressed stream of a raw blob, decoded and hashed on a helper
/// thread of `scope` so that decompression overlaps with writing files (as
/// `tar -xz` overlaps with its `gzip` child). The channel holds a few
/// chunks, so a consumer that stops reading stops the decoder too. The
/// thread's result is the sha256 and length of everything it decoded.
pub(crate) fn decompress_pipelined<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    raw: impl Read + Send + 'scope,
    limits: Limits,
) -> io::Result<(Bounded<ChannelReader>, Compression, DecoderHandle<'scope>)> {
    let (mut inner, compression, compressed) = decoder(raw)?;
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(8);
    let handle = scope.spawn(move || {
        let mut hashing = Hashing::new(io::sink());
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match inner.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return None;
                    }
                }
            }
            if filled == 0 {
                return Some(hashing.into_inner()).map(|(_, d, n)| (d, n));
            }
            buf.truncate(filled);
            // Writing to a sink cannot fail.
            let _ = hashing.write_all(&buf);
            if tx.send(Ok(buf)).is_err() {
                return None;
            }
        }
    });
    let reader = ChannelReader {
        rx,
        chunk: Vec::new(),
        pos: 0,
    };
    Ok((
        Bounded {
            inner: reader,
            compressed,
            expanded: 0,
            limits,
            violation: Rc::new(Cell::new(None)),
        },
        compression,
        handle,
    ))
}

/// Reads the chunks a decoder thread sends.
pub(crate) struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The decoder finished (or died after reporting its error).
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
