//! A terminal over a websocket: the relay between a [`TerminalHub`] and a
//! client's messages. Generic over the socket's halves (a `Sink` of
//! messages and a `Stream` of them), so the HTTP handlers give it axum's
//! websocket and the tests below give it channels.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
// tokio's, so that tests on a paused clock reach the timeouts at once.
use tokio::time::Instant;

use crate::labs::terminal::{
    Catchup, Control, Event, TerminalError, TerminalHub, exit_message, parse_control,
};

/// Largest message or frame a browser may send: keystrokes and pastes are
/// a few KiB (a larger paste arrives in several messages).
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Output is written out once this much is buffered for a socket, and a
/// socket never buffers more than a batch on top of it.
pub const WRITE_BUFFER_BYTES: usize = 64 * 1024;
pub const MAX_WRITE_BUFFER_BYTES: usize = WRITE_BUFFER_BYTES + 2 * BATCH_BYTES;
/// Most output sent in one websocket frame.
const BATCH_BYTES: usize = 256 * 1024;
/// Output waiting at once that marks a flood (a PTY read is at most 4 KiB).
const FLOOD_BYTES: usize = 4096;
/// How long a flood's first bytes wait for the rest.
const FLOOD_PAUSE: Duration = Duration::from_millis(1);

/// Replays the terminal's kept output, then relays both ways until either
/// side ends. Input counts as activity (it keeps an idle lab alive). While
/// the browser has paused the stream, output is left to the ring and sent
/// from there on resume, so a flood never queues up in the server. While
/// the shell's input queue is full, one message waits here and the socket
/// is not read, so a client typing into a shell that does not read is
/// held back by TCP, and output still flows.
pub async fn relay<Si, St>(
    socket: &mut Socket<Si, St>,
    hub: Arc<TerminalHub>,
    activity: impl Fn(),
    read_only: bool,
) -> Result<(), RelayError>
where
    Si: Sink<Message, Error = axum::Error> + Unpin,
    St: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let mut catchup = hub.catch_up(0)?;
    let mut seen = catchup.end;
    let mut paused = false;
    let mut pending: Option<Vec<u8>> = None;
    let mut heard = Instant::now();
    let mut ping = tokio::time::interval(socket.timeout / 3);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if send_catchup(socket, &mut catchup).await? {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = ping.tick() => {
                // A client held back by a full input queue is not being
                // read, so its pongs wait too: that is not silence.
                if pending.is_some() {
                    heard = Instant::now();
                }
                if heard.elapsed() >= socket.timeout {
                    return Err(RelayError::Silent(socket.timeout));
                }
                socket.send(Message::Ping(Default::default())).await?;
            }
            event = catchup.events.recv(), if !paused => {
                let mut batch = Vec::new();
                let mut exit = gather(Some(event), &hub, &mut catchup, &mut seen, &mut batch)?;
                // This much at once means a command is flooding: wait a
                // moment and take what follows along, so the flood travels
                // in few large frames. Typing never waits.
                if exit.is_none() && (FLOOD_BYTES..BATCH_BYTES).contains(&batch.len()) {
                    tokio::time::sleep(FLOOD_PAUSE).await;
                    exit = gather(None, &hub, &mut catchup, &mut seen, &mut batch)?;
                }
                if !batch.is_empty() {
                    socket.send(Message::Binary(batch.into())).await?;
                }
                if let Some(code) = exit {
                    socket.send(Message::Text(exit_message(code).into())).await?;
                    return Ok(());
                }
            }
            slot = hub.input_slot(), if pending.is_some() => {
                if let Some(bytes) = pending.take() {
                    slot?.send(bytes);
                }
            }
            message = socket.stream.next(), if pending.is_none() => match message {
                None => return Ok(()),
                Some(message) => match message.inspect(|m| {
                    heard = Instant::now();
                    crate::metrics::websocket_received(message_len(m));
                })? {
                    Message::Binary(_) if read_only => {}
                    Message::Binary(bytes) => {
                        activity();
                        pending = Some(bytes.to_vec());
                    }
                    Message::Text(text) => match parse_control(&text) {
                        Ok(Control::Resize(_)) if read_only => {}
                        Ok(Control::Resize(size)) => hub.resize(size)?,
                        Ok(Control::Pause) => paused = true,
                        Ok(Control::Resume) if paused => {
                            paused = false;
                            catchup = hub.catch_up(seen)?;
                            seen = catchup.end;
                            if send_catchup(socket, &mut catchup).await? {
                                return Ok(());
                            }
                        }
                        Ok(Control::Resume) => {}
                        Err(message) => {
                            let error = serde_json::json!({ "type": "error", "message": message });
                            socket.send(Message::Text(error.to_string().into())).await?;
                        }
                    },
                    Message::Close(_) => return Ok(()),
                    Message::Ping(_) | Message::Pong(_) => {}
                },
            },
        }
    }
}

/// Appends `first` (or, without it, the next waiting event) and every
/// event already waiting after it to `batch`, up to [`BATCH_BYTES`]; a
/// client that fell behind is resynced from the ring. Returns the shell's
/// exit code once it ended.
fn gather(
    first: Option<Result<Event, RecvError>>,
    hub: &TerminalHub,
    catchup: &mut Catchup,
    seen: &mut u64,
    batch: &mut Vec<u8>,
) -> Result<Option<u32>, TerminalError> {
    let mut next = first.or_else(|| waiting(catchup));
    while let Some(event) = next.take() {
        match event {
            Ok(Event::Output { end, bytes }) => {
                // Output already covered by a resync arrives again; skip it.
                let fresh = end.saturating_sub(*seen).min(bytes.len() as u64) as usize;
                batch.extend_from_slice(&bytes[bytes.len() - fresh..]);
                *seen = (*seen).max(end);
            }
            Ok(Event::Exit(code)) => return Ok(Some(code)),
            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                *catchup = hub.catch_up(*seen)?;
                *seen = catchup.end;
                batch.append(&mut catchup.bytes);
                if catchup.exit.is_some() {
                    return Ok(catchup.exit);
                }
            }
        }
        if batch.len() < BATCH_BYTES {
            next = waiting(catchup);
        }
    }
    Ok(None)
}

/// The next event if one is already waiting.
fn waiting(catchup: &mut Catchup) -> Option<Result<Event, RecvError>> {
    match catchup.events.try_recv() {
        Ok(event) => Some(Ok(event)),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
    }
}

/// Sends a catch-up's bytes, then the exit message if the shell ended;
/// true when it did (the socket is done).
async fn send_catchup<Si, St>(
    socket: &mut Socket<Si, St>,
    catchup: &mut Catchup,
) -> Result<bool, RelayError>
where
    Si: Sink<Message, Error = axum::Error> + Unpin,
{
    if !catchup.bytes.is_empty() {
        socket
            .send(Message::Binary(std::mem::take(&mut catchup.bytes).into()))
            .await?;
    }
    if let Some(code) = catchup.exit {
        socket
            .send(Message::Text(exit_message(code).into()))
            .await?;
        return Ok(true);
    }
    Ok(false)
}

/// A terminal's websocket, in halves, and how long it may stay silent or
/// stuck.
pub struct Socket<Si, St> {
    sink: Si,
    stream: St,
    /// Without a message from the client (pongs count) for this long, or
    /// unable to take a message for this long, the socket is closed.
    timeout: Duration,
}

impl<Si, St> Socket<Si, St>
where
    Si: Sink<Message, Error = axum::Error> + Unpin,
{
    pub fn new(sink: Si, stream: St, timeout: Duration) -> Self {
        Self {
            sink,
            stream,
            timeout,
        }
    }

    pub async fn send(&mut self, message: Message) -> Result<(), RelayError> {
        crate::metrics::websocket_sent(message_len(&message));
        match tokio::time::timeout(self.timeout, self.sink.send(message)).await {
            Ok(sent) => Ok(sent?),
            Err(_) => Err(RelayError::Stuck(self.timeout)),
        }
    }
}

/// A message's payload, as the byte counters count it.
fn message_len(message: &Message) -> usize {
    match message {
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Text(text) => text.len(),
        Message::Close(_) => 0,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    #[error("websocket: {0}")]
    Socket(#[from] axum::Error),
    #[error("no answer to pings for {0:?}")]
    Silent(Duration),
    #[error("the client read nothing for {0:?}")]
    Stuck(Duration),
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_channel::mpsc;
    use host::{FakeHost, SandboxHost, SandboxSpec, TerminalSize};

    use super::*;

    type ToRelay = mpsc::UnboundedSender<Result<Message, axum::Error>>;

    /// The client's end of a relay running on a fake node's terminal.
    struct Client {
        to_relay: ToRelay,
        from_relay: mpsc::UnboundedReceiver<Message>,
        typed: Arc<AtomicUsize>,
        hub: Arc<TerminalHub>,
        relay: tokio::task::JoinHandle<Result<(), RelayError>>,
    }

    fn start(read_only: bool, timeout: Duration) -> Client {
        let host = FakeHost::new();
        host.create_sandbox(SandboxSpec::new("relay"))
            .expect("create");
        let terminal = host
            .open_terminal("relay", TerminalSize { cols: 80, rows: 24 })
            .expect("terminal");
        let hub = TerminalHub::start("relay/node1".into(), terminal).expect("hub");
        let (to_relay, stream) = mpsc::unbounded();
        let (sink, from_relay) = mpsc::unbounded::<Message>();
        let typed = Arc::new(AtomicUsize::new(0));
        let relay = tokio::spawn({
            let (hub, typed) = (hub.clone(), typed.clone());
            async move {
                let sink = sink.sink_map_err(axum::Error::new);
                let mut socket = Socket::new(sink, stream, timeout);
                let activity = move || {
                    typed.fetch_add(1, Ordering::SeqCst);
                };
                relay(&mut socket, hub, activity, read_only).await
            }
        });
        Client {
            to_relay,
            from_relay,
            typed,
            hub,
            relay,
        }
    }

    impl Client {
        fn send(&self, message: Message) {
            self.to_relay
                .unbounded_send(Ok(message))
                .expect("the relay reads");
        }

        fn type_line(&self, line: &str) {
            self.send(Message::Binary(format!("{line}\r").into_bytes().into()));
        }

        /// Output frames until `want` shows; text frames are returned
        /// too, prefixed with "text:".
        async fn until(&mut self, want: &str) -> String {
            let mut seen = String::new();
            while !seen.contains(want) {
                let next = tokio::time::timeout(Duration::from_secs(10), self.from_relay.next());
                match next.await {
                    Ok(Some(Message::Binary(bytes))) => {
                        seen.push_str(&String::from_utf8_lossy(&bytes))
                    }
                    Ok(Some(Message::Text(text))) => {
                        seen.push_str(&format!("text:{}", text.as_str()))
                    }
                    Ok(Some(_)) => {}
                    other => panic!("no {want:?} ({other:?}); saw {seen:?}"),
                }
            }
            seen
        }
    }

    #[tokio::test]
    async fn typing_reaches_the_shell_and_output_and_the_exit_come_back() {
        let mut client = start(false, Duration::from_secs(30));
        client.until("# ").await;
        client.type_line("echo relayed");
        client.until("relayed\r\nrelayed").await;
        assert_eq!(
            client.typed.load(Ordering::SeqCst),
            1,
            "input counts as activity"
        );
        client.type_line("exit 3");
        client.until(r#"text:{"code":3,"type":"exit"}"#).await;
        client
            .relay
            .await
            .expect("join")
            .expect("the relay ends cleanly");
    }

    #[tokio::test]
    async fn a_watcher_sees_output_but_neither_types_nor_resizes() {
        let mut client = start(true, Duration::from_secs(30));
        client.until("# ").await;
        client.type_line("echo from-the-watcher");
        client.send(Message::Text(
            r#"{"type":"resize","cols":10,"rows":5}"#.into(),
        ));
        client
            .hub
            .input_slot()
            .await
            .expect("the shell reads")
            .send(b"echo from-the-student\r".to_vec());
        let seen = client.until("from-the-student\r\nfrom-the-student").await;
        assert!(!seen.contains("watcher"), "a watcher typed: {seen:?}");
        assert_eq!(client.typed.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_bad_control_message_is_answered_and_the_relay_goes_on() {
        let mut client = start(false, Duration::from_secs(30));
        client.send(Message::Text(r#"{"type":"launch"}"#.into()));
        let seen = client
            .until(r#"text:{"message":"control messages are JSON"#)
            .await;
        assert!(seen.contains(r#""type":"error""#), "{seen}");
        client.type_line("echo still-here");
        client.until("still-here\r\nstill-here").await;
    }

    #[tokio::test]
    async fn a_paused_client_gets_nothing_until_it_resumes() {
        let mut client = start(false, Duration::from_secs(30));
        client.until("# ").await;
        client.send(Message::Text(r#"{"type":"pause"}"#.into()));
        client.type_line("echo while-paused");
        // The shell ran it: its output is in the ring, not on the socket.
        let wall = std::time::Instant::now();
        while !String::from_utf8_lossy(&client.hub.catch_up(0).expect("ring").bytes)
            .contains("while-paused\r\nwhile-paused")
        {
            assert!(
                wall.elapsed() < Duration::from_secs(10),
                "the shell never answered"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while let Ok(message) = client.from_relay.try_recv() {
            assert!(
                matches!(message, Message::Ping(_)),
                "a paused client got {message:?}"
            );
        }
        client.send(Message::Text(r#"{"type":"resume"}"#.into()));
        client.until("while-paused\r\nwhile-paused").await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_after_the_timeout() {
        let client = start(false, Duration::from_secs(30));
        let ended = client.relay.await.expect("join");
        assert!(
            matches!(ended, Err(RelayError::Silent(t)) if t == Duration::from_secs(30)),
            "{ended:?}"
        );
    }
}
