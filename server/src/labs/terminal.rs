//! A terminal that outlives its websocket: a reader thread pumps the PTY's
//! output into a bounded ring (for replay on reconnect) and a broadcast
//! channel (for live clients). Memory stays bounded however fast the shell
//! writes: the ring drops its oldest bytes, and a client that falls behind
//! the broadcast resyncs from the ring.
//!
//! Input goes the other way through a bounded queue to a writer thread of
//! the terminal's own: a shell that stops reading blocks only that thread,
//! and once the queue is full the sockets typing into it wait without
//! holding any thread at all.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use host::{Killer, Resizer, Terminal, TerminalSize};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

/// Output kept for replay: a few screens of scrollback.
pub const RING_BYTES: usize = 256 * 1024;
/// Size until the browser reports its own.
pub const INITIAL_SIZE: TerminalSize = TerminalSize { cols: 80, rows: 24 };
/// Output chunks a live client may fall behind before it resyncs.
const CHANNEL_CHUNKS: usize = 256;
const MAX_CELLS: u16 = 1000;
/// Input messages queued for a shell that is not reading; a websocket
/// message is at most a few KiB, so this stays small however many sockets
/// type at once.
const INPUT_CHUNKS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("a lab may have at most {0} terminals open; close one first")]
    TooMany(usize),
    #[error("terminal state lock poisoned")]
    Poisoned,
    #[error("cannot start a terminal thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the terminal no longer takes input; its shell ended")]
    InputClosed,
    #[error("cannot resize the terminal: {0}")]
    Resize(#[from] host::Error),
}

/// What a live client receives.
#[derive(Debug, Clone)]
pub enum Event {
    /// Output whose last byte is at stream offset `end`.
    Output { end: u64, bytes: Arc<[u8]> },
    /// The shell ended with this code.
    Exit(u32),
}

/// The last [`RING_BYTES`] of output and the offset just past them.
struct Ring {
    bytes: VecDeque<u8>,
    end: u64,
    exit: Option<u32>,
}

impl Ring {
    fn start(&self) -> u64 {
        self.end - self.bytes.len() as u64
    }

    fn push(&mut self, chunk: &[u8]) {
        self.end += chunk.len() as u64;
        let chunk = &chunk[chunk.len().saturating_sub(RING_BYTES)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(RING_BYTES);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    /// The kept output from `from` on (from the oldest kept byte when
    /// `from` was already dropped).
    fn since(&self, from: u64) -> Vec<u8> {
        let skip = from
            .saturating_sub(self.start())
            .min(self.bytes.len() as u64) as usize;
        self.bytes.range(skip..).copied().collect()
    }
}

/// A catch-up for a (re)connecting or lagging client: output it has not
/// seen, the subscription to follow with, and the exit code if the shell
/// already ended.
pub struct Catchup {
    pub bytes: Vec<u8>,
    pub end: u64,
    pub exit: Option<u32>,
    pub events: broadcast::Receiver<Event>,
}

pub struct TerminalHub {
    name: String,
    ring: Arc<Mutex<Ring>>,
    events: broadcast::Sender<Event>,
    /// Feeds the writer thread.
    input: mpsc::Sender<Vec<u8>>,
    resizer: Resizer,
    killer: Killer,
}

impl TerminalHub {
    pub fn start(name: String, term: Terminal) -> Result<Arc<TerminalHub>, TerminalError> {
        let Terminal {
            reader,
            writer,
            resizer,
            mut process,
        } = term;
        let (events, _) = broadcast::channel(CHANNEL_CHUNKS);
        let ring = Arc::new(Mutex::new(Ring {
            bytes: VecDeque::new(),
            end: 0,
            exit: None,
        }));
        let (input, queue) = mpsc::channel(INPUT_CHUNKS);
        std::thread::Builder::new()
            .name(format!("pty-in {name}"))
            .spawn({
                let name = name.clone();
                move || feed(writer, queue, &name)
            })
            .map_err(TerminalError::Thread)?;
        let hub = Arc::new(TerminalHub {
            name: name.clone(),
            ring: ring.clone(),
            events: events.clone(),
            input,
            resizer,
            killer: process.killer(),
        });
        std::thread::Builder::new()
            .name(format!("pty {name}"))
            .spawn(move || {
                pump(reader, &ring, &events);
                let code = process.wait().unwrap_or_else(|err| {
                    tracing::warn!(terminal = %name, error = %err, "cannot read the shell's exit code");
                    255
                });
                if let Ok(mut ring) = ring.lock() {
                    ring.exit = Some(code);
                    let _ = events.send(Event::Exit(code));
                }
                tracing::debug!(terminal = %name, code, "shell ended");
            })
            .map_err(TerminalError::Thread)?;
        Ok(hub)
    }

    /// Everything after `from`, and a subscription that continues exactly
    /// where it ends (both taken under the ring's lock).
    pub fn catch_up(&self, from: u64) -> Result<Catchup, TerminalError> {
        let ring = self.ring.lock().map_err(|_| TerminalError::Poisoned)?;
        Ok(Catchup {
            bytes: ring.since(from),
            end: ring.end,
            exit: ring.exit,
            events: self.events.subscribe(),
        })
    }

    pub fn exited(&self) -> bool {
        self.ring.lock().map(|r| r.exit.is_some()).unwrap_or(true)
    }

    /// Room for one input message in the queue to the shell; waits
    /// (asynchronously) while the shell is not reading and the queue is
    /// full.
    pub async fn input_slot(&self) -> Result<mpsc::Permit<'_, Vec<u8>>, TerminalError> {
        self.input
            .reserve()
            .await
            .map_err(|_| TerminalError::InputClosed)
    }

    pub fn resize(&self, size: TerminalSize) -> Result<(), TerminalError> {
        Ok(self.resizer.resize(size)?)
    }

    /// Ends the shell; the reader thread then sees EOF and exits.
    pub fn kill(&self) {
        if let Err(err) = self.killer.kill() {
            tracing::debug!(terminal = %self.name, error = %err, "shell already gone");
        }
    }
}

/// The writer thread: hands queued input to the PTY until the hub is gone
/// or the PTY refuses (its shell ended).
fn feed(mut writer: Box<dyn Write + Send>, mut queue: mpsc::Receiver<Vec<u8>>, name: &str) {
    while let Some(bytes) = queue.blocking_recv() {
        if let Err(err) = writer.write_all(&bytes).and_then(|()| writer.flush()) {
            tracing::debug!(terminal = %name, error = %err, "terminal input closed");
            return;
        }
    }
}

fn pump(mut reader: Box<dyn Read + Send>, ring: &Mutex<Ring>, events: &broadcast::Sender<Event>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // EIO is how Linux reports that the last process left the PTY.
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Ok(mut ring) = ring.lock() else { return };
        ring.push(&buf[..n]);
        // No receivers is fine: the ring keeps the output for later.
        let _ = events.send(Event::Output {
            end: ring.end,
            bytes: Arc::from(&buf[..n]),
        });
    }
}

/// A control message from the browser (a websocket text frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Resize(TerminalSize),
    /// The browser has more output queued than it can draw: send nothing
    /// until `Resume`. The shell keeps running; its output goes to the ring.
    Pause,
    /// Send again, starting with what was missed (from the ring).
    Resume,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawControl {
    Resize { cols: u32, rows: u32 },
    // Braces, so that deny_unknown_fields applies to them too.
    Pause {},
    Resume {},
}

/// Parses a text frame; the error says what a valid message looks like.
pub fn parse_control(text: &str) -> Result<Control, String> {
    let raw: RawControl = serde_json::from_str(text).map_err(|e| {
        format!(
            "control messages are JSON like {{\"type\":\"resize\",\"cols\":80,\"rows\":24}}: {e}"
        )
    })?;
    match raw {
        RawControl::Resize { cols, rows } => {
            let valid = 1..=u32::from(MAX_CELLS);
            if !valid.contains(&cols) || !valid.contains(&rows) {
                return Err(format!(
                    "terminal size {cols}x{rows} is out of range; cols and rows must be 1 to {MAX_CELLS}"
                ));
            }
            Ok(Control::Resize(TerminalSize {
                cols: cols as u16,
                rows: rows as u16,
            }))
        }
        RawControl::Pause {} => Ok(Control::Pause),
        RawControl::Resume {} => Ok(Control::Resume),
    }
}

/// The server's message when the shell ends.
pub fn exit_message(code: u32) -> String {
    serde_json::json!({ "type": "exit", "code": code }).to_string()
}

/// Terminal names are short and URL-safe: `[a-z0-9-]{1,32}`.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_pause_and_resume_messages_parse() {
        assert_eq!(
            parse_control(r#"{"type":"resize","cols":120,"rows":40}"#),
            Ok(Control::Resize(TerminalSize {
                cols: 120,
                rows: 40
            }))
        );
        assert_eq!(parse_control(r#"{"type":"pause"}"#), Ok(Control::Pause));
        assert_eq!(parse_control(r#"{"type":"resume"}"#), Ok(Control::Resume));
    }

    #[test]
    fn bad_control_messages_are_errors_not_panics() {
        for bad in [
            "",
            "null",
            "resize",
            r#"{"type":"resize"}"#,
            r#"{"type":"resize","cols":0,"rows":24}"#,
            r#"{"type":"resize","cols":80,"rows":70000}"#,
            r#"{"type":"resize","cols":-1,"rows":24}"#,
            r#"{"type":"resize","cols":99999999999,"rows":24}"#,
            r#"{"type":"launch","argv":["rm"]}"#,
            r#"{"cols":80,"rows":24}"#,
            r#"{"type":"pause","for":10}"#,
        ] {
            assert!(parse_control(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn names_are_short_lowercase_and_url_safe() {
        for good in ["node1", "a", "shell-2", &"x".repeat(32)] {
            assert!(valid_name(good), "{good:?}");
        }
        for bad in ["", "Node1", "a/b", "..", "a b", "é", &"x".repeat(33)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_bytes_and_their_offsets() {
        let mut ring = Ring {
            bytes: VecDeque::new(),
            end: 0,
            exit: None,
        };
        ring.push(b"hello ");
        ring.push(b"world");
        assert_eq!(ring.since(0), b"hello world");
        assert_eq!(ring.since(6), b"world");
        assert_eq!(ring.since(99), b"");
        let flood = vec![b'y'; RING_BYTES + 10];
        ring.push(&flood);
        assert_eq!(ring.bytes.len(), RING_BYTES);
        assert_eq!(ring.end, 11 + RING_BYTES as u64 + 10);
        assert_eq!(ring.start(), ring.end - RING_BYTES as u64);
        ring.push(b"tail");
        assert_eq!(ring.bytes.len(), RING_BYTES);
        assert!(ring.since(0).ends_with(b"ytail"));
        assert_eq!(ring.since(ring.end - 4), b"tail");
    }
}
