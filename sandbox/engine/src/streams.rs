//! A process's output as the engine keeps it: a bounded log of chunks
//! tagged with their stream and time (what `docker logs` reads, like
//! `json-file` with a max size) and a broadcast that attached clients
//! follow. Memory stays bounded whatever a container prints. A container's
//! log is also written to a file, so a restarted engine shows it again;
//! the file is rewritten from the kept chunks whenever it grows past twice
//! the limit, so disk stays bounded too.

use std::collections::VecDeque;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::broadcast;

/// Which stream a chunk came from; the numbers are stdcopy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 1,
    Stderr = 2,
}

#[derive(Debug, Clone)]
pub struct Chunk {
    pub stream: Stream,
    pub time: SystemTime,
    pub bytes: Bytes,
}

/// What a live follower receives.
#[derive(Debug, Clone)]
pub enum Event {
    Output(Chunk),
    /// The process ended: no more output.
    End,
}

/// Chunks a follower may fall behind before it misses some.
const FOLLOW_QUEUE: usize = 1024;

pub struct Output {
    log: Mutex<Log>,
    events: broadcast::Sender<Event>,
}

struct Log {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    limit: usize,
    ended: bool,
    file: Option<LogFile>,
}

/// The on-disk copy of a log: records of stream (1 byte), time (u64
/// nanoseconds since the epoch), length (u32) and bytes, little-endian.
struct LogFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
}

impl LogFile {
    fn record(chunk: &Chunk) -> Vec<u8> {
        let nanos = chunk
            .time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut out = Vec::with_capacity(13 + chunk.bytes.len());
        out.push(chunk.stream as u8);
        out.extend_from_slice(&nanos.to_le_bytes());
        out.extend_from_slice(&(chunk.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&chunk.bytes);
        out
    }

    /// The chunks a log file holds; a torn last record (a crash midway)
    /// ends the reading.
    fn read(path: &std::path::Path) -> Vec<Chunk> {
        let bytes = std::fs::read(path).unwrap_or_default();
        let mut chunks = Vec::new();
        let mut rest = bytes.as_slice();
        while rest.len() >= 13 {
            let stream = match rest[0] {
                1 => Stream::Stdout,
                2 => Stream::Stderr,
                _ => break,
            };
            let nanos = u64::from_le_bytes(rest[1..9].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(rest[9..13].try_into().unwrap_or_default()) as usize;
            let Some(data) = rest.get(13..13 + len) else {
                break;
            };
            chunks.push(Chunk {
                stream,
                time: std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos),
                bytes: Bytes::copy_from_slice(data),
            });
            rest = &rest[13 + len..];
        }
        chunks
    }

    /// A fresh file holding exactly `chunks`, replacing the old one whole.
    fn rewrite(path: &std::path::Path, chunks: &VecDeque<Chunk>) -> std::io::Result<LogFile> {
        use std::io::Write;
        let tmp = path.with_extension("log.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        let mut size = 0;
        for chunk in chunks {
            let record = LogFile::record(chunk);
            file.write_all(&record)?;
            size += record.len() as u64;
        }
        std::fs::rename(&tmp, path)?;
        Ok(LogFile {
            path: path.to_owned(),
            file,
            size,
        })
    }
}

impl Log {
    fn keep(&mut self, chunk: Chunk) {
        self.bytes += chunk.bytes.len();
        self.chunks.push_back(chunk);
        while self.bytes > self.limit {
            match self.chunks.pop_front() {
                Some(old) => self.bytes -= old.bytes.len(),
                None => break,
            }
        }
    }

    /// Appends `chunk` to the file, or rewrites the file from the kept
    /// chunks once it has grown past twice the limit.
    fn write(&mut self, chunk: &Chunk) {
        use std::io::Write;
        let limit = self.limit as u64;
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let written = if file.size > 2 * limit {
            LogFile::rewrite(&file.path.clone(), &self.chunks).map(|f| *file = f)
        } else {
            let record = LogFile::record(chunk);
            file.file
                .write_all(&record)
                .map(|()| file.size += record.len() as u64)
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "a container's log stays in memory only from now on");
            self.file = None;
        }
    }
}

impl Output {
    /// An output log keeping at most `limit` bytes (the oldest go first).
    pub fn new(limit: usize) -> Output {
        Output {
            log: Mutex::new(Log {
                chunks: VecDeque::new(),
                bytes: 0,
                limit,
                ended: false,
                file: None,
            }),
            events: broadcast::channel(FOLLOW_QUEUE).0,
        }
    }

    /// An output log kept in memory and in the file at `path`, starting
    /// with what that file holds (a restarted engine's view of a log), and
    /// already `ended` for a process that is gone. The log is in memory
    /// alone if the file cannot be written.
    pub fn persistent(limit: usize, path: &std::path::Path, ended: bool) -> Output {
        let output = Output::new(limit);
        {
            let mut log = output.log.lock().unwrap_or_else(|p| p.into_inner());
            for chunk in LogFile::read(path) {
                log.keep(chunk);
            }
            log.ended = ended;
            match LogFile::rewrite(path, &log.chunks) {
                Ok(file) => log.file = Some(file),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "a container's log stays in memory only");
                }
            }
        }
        output
    }

    pub fn push(&self, stream: Stream, bytes: Bytes) {
        let chunk = Chunk {
            stream,
            time: SystemTime::now(),
            bytes,
        };
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.keep(chunk.clone());
        log.write(&chunk);
        // No follower is fine: the log keeps it.
        let _ = self.events.send(Event::Output(chunk));
    }

    /// Marks the end of output (the process exited).
    pub fn end(&self) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.ended = true;
        let _ = self.events.send(Event::End);
    }

    /// A new run of the process (`docker start` again) may print more.
    pub fn reopen(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).ended = false;
    }

    /// The kept log, whether output has ended, and a subscription that
    /// continues exactly after it (taken under one lock).
    pub fn snapshot(&self) -> (Vec<Chunk>, bool, broadcast::Receiver<Event>) {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        (
            log.chunks.iter().cloned().collect(),
            log.ended,
            self.events.subscribe(),
        )
    }

    /// A subscription from now on (attach before start).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

/// A blocking reader over chunks an async task receives, so a stream
/// (a pulled blob, a `docker load` archive) reaches the store's blocking
/// code without being held in memory.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A blocking writer whose bytes an async response streams (`docker
/// save`); it fails once the client has gone.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl ChannelWriter {
    pub fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> ChannelWriter {
        ChannelWriter { tx }
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// stdcopy's frame header: stream, three zero bytes, the length as a u32
/// in big-endian order.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The size a container's or an exec's terminal starts with, until the
/// client sends its own.
pub const INITIAL_TTY: runtime::WindowSize = runtime::WindowSize { cols: 80, rows: 24 };

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// An async reader over a pipe's read end or a PTY master, polled by the
/// runtime's reactor: a silent container holds no thread.
pub fn reader(fd: OwnedFd) -> std::io::Result<tokio::net::unix::pipe::Receiver> {
    set_nonblocking(&fd)?;
    // Unchecked because a PTY master is no pipe, though epoll treats it
    // the same.
    tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd)
}

/// An async writer over a pipe's write end or a PTY master.
pub fn writer(fd: OwnedFd) -> std::io::Result<tokio::net::unix::pipe::Sender> {
    set_nonblocking(&fd)?;
    tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdcopy_frames_carry_stream_and_big_endian_length() {
        assert_eq!(frame(1, b"hi"), vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        assert_eq!(&frame(2, &[0; 300])[..8], &[2, 0, 0, 0, 0, 0, 1, 44]);
    }

    #[test]
    fn the_log_keeps_the_newest_bytes_within_its_limit() {
        let out = Output::new(10);
        out.push(Stream::Stdout, Bytes::from_static(b"12345"));
        out.push(Stream::Stderr, Bytes::from_static(b"67890"));
        out.push(Stream::Stdout, Bytes::from_static(b"abc"));
        let (chunks, ended, _) = out.snapshot();
        let kept: Vec<&[u8]> = chunks.iter().map(|c| &c.bytes[..]).collect();
        assert_eq!(kept, vec![&b"67890"[..], b"abc"]);
        assert!(!ended);
        out.end();
        assert!(out.snapshot().1);
    }
}
