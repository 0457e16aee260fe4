//! One student of the class: opens the lesson page, starts a lab, types
//! into its terminal (a keystroke every 200 ms, a command every few
//! seconds), presses Check every 10 s, and stops the lab at the end. When
//! the server is killed under it, the student waits for the restart,
//! reopens its terminal and carries on, and says what became of its lab.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::measure::{Failure, Samples};
use crate::server::Account;

pub const LESSON: &str = "01-what-is-a-container";
/// A file check: what a student's Check costs the server, not the lab.
pub const TASK: &str = "save-hostname";
const KEY_EVERY: Duration = Duration::from_millis(200);
const COMMAND_EVERY: Duration = Duration::from_secs(5);
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Longest any one step may take before it counts as a timeout.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a lab may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(120);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What every student shares: the server's address, one HTTP client and
/// word of a server being killed and restarted.
pub struct Class {
    pub http: reqwest::Client,
    pub url: String,
    pub outage: Outage,
    /// Checks the server answered, per student: counted before the kill,
    /// these must all be in the gradebook after it.
    pub acked_checks: Vec<AtomicU64>,
}

/// Word of the server being killed and restarted, in one value so no
/// student sees half of a change.
#[derive(Default)]
pub struct Outage(tokio::sync::watch::Sender<Downtime>);

#[derive(Default, Clone, Copy)]
struct Downtime {
    /// Killed and not listening again yet.
    down: bool,
    /// Restarts that have ended, and when the last one did.
    restarts: u64,
    back_at: Option<Instant>,
}

impl Outage {
    /// Called just before the server is killed.
    pub fn begin(&self) {
        self.0.send_modify(|d| d.down = true);
    }

    /// Called once the restarted server listens.
    pub fn end(&self) {
        self.0.send_modify(|d| {
            d.down = false;
            d.restarts += 1;
            d.back_at = Some(Instant::now());
        });
    }

    fn mark(&self) -> u64 {
        self.0.borrow().restarts
    }

    /// Whether a failure of something begun at `mark` is the outage's doing.
    fn covers(&self, mark: u64) -> bool {
        let now = *self.0.borrow();
        now.down || now.restarts != mark
    }

    /// Waits until the server is back; when it came back.
    async fn over(&self) -> Instant {
        let mut watch = self.0.subscribe();
        match watch.wait_for(|d| !d.down && d.back_at.is_some()).await {
            Ok(d) => d.back_at.unwrap_or_else(Instant::now),
            Err(_) => Instant::now(),
        }
    }
}

/// Everything one student measured and saw fail.
#[derive(Debug, Default)]
pub struct Report {
    /// From `POST /api/labs` until the lab reported ready.
    pub start: Option<Duration>,
    /// From `POST /api/labs` until its answer (the lab admitted and
    /// recorded, its node not built yet).
    pub admitted: Option<Duration>,
    pub keys: Samples,
    pub commands: Samples,
    pub checks: Samples,
    pub failures: Vec<Failure>,
    /// Failures while the server was down: expected, counted apart.
    pub outage_failures: usize,
    /// From the restarted server listening to the reopened terminal's echo.
    pub reconnect: Option<Duration>,
    /// The lab's state (and reason) as the restarted server reports it.
    pub lab_after_restart: Option<String>,
}

/// What a student does once its lab runs, for `play`.
pub struct Plan {
    pub index: usize,
    pub of: usize,
    pub starts_at: Instant,
    pub play: Duration,
}

pub async fn attend(class: Arc<Class>, account: Account, plan: Plan) -> Report {
    sleep_until(plan.starts_at.into()).await;
    let mut report = Report::default();
    let student = Student {
        class: &class,
        account: &account,
    };
    let lab = match student.start_lab().await {
        Ok(Started {
            lab,
            admitted,
            ready,
        }) => {
            report.admitted = Some(admitted);
            report.start = Some(ready);
            lab
        }
        Err(failure) => {
            report.failures.push(failure);
            return report;
        }
    };
    let until = Instant::now() + plan.play;
    // Students do not move in lockstep: each its own moment in the cycle.
    let phase = |every: Duration| every.mul_f64(plan.index as f64 / plan.of.max(1) as f64);
    let (typing, checking) = tokio::join!(
        student.type_in(&lab, until, phase(COMMAND_EVERY)),
        student.check(&lab, plan.index, until, phase(CHECK_EVERY)),
    );
    report.keys = typing.keys;
    report.commands = typing.commands;
    report.reconnect = typing.reconnect;
    report.lab_after_restart = typing.lab_after_restart;
    report.checks = checking.checks;
    report.outage_failures = typing.outage_failures + checking.outage_failures;
    report.failures.extend(typing.failures);
    report.failures.extend(checking.failures);
    if let Err(failure) = student.stop_lab(&lab).await {
        report.failures.push(failure);
    }
    report
}

/// A lab that started, and how long its start took to be answered and
/// to be ready.
struct Started {
    lab: String,
    admitted: Duration,
    ready: Duration,
}

#[derive(Default)]
struct Typing {
    keys: Samples,
    commands: Samples,
    failures: Vec<Failure>,
    outage_failures: usize,
    reconnect: Option<Duration>,
    lab_after_restart: Option<String>,
}

#[derive(Default)]
struct Checking {
    checks: Samples,
    failures: Vec<Failure>,
    outage_failures: usize,
}

struct Student<'a> {
    class: &'a Class,
    account: &'a Account,
}

impl Student<'_> {
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.class.url)
    }

    /// Sends a request as this student; the answer if it is a success.
    async fn send(
        &self,
        step: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failure> {
        let response = request
            .bearer_auth(&self.account.token)
            .timeout(STEP_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                };
                Failure::new(step, format!("{kind}: {e}"))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(Failure::new(
            step,
            format!("{status}: {}", body.chars().take(200).collect::<String>()),
        ))
    }

    async fn json(
        &self,
        step: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, Failure> {
        self.send(step, request)
            .await?
            .json()
            .await
            .map_err(|e| Failure::new(step, format!("not JSON: {e}")))
    }

    /// Opens the lesson page, then starts its lab as the page's button
    /// does and waits until it is ready.
    async fn start_lab(&self) -> Result<Started, Failure> {
        let http = &self.class.http;
        self.send(
            "lesson page",
            http.get(self.at(&format!("/lessons/{LESSON}"))),
        )
        .await?;
        let began = Instant::now();
        let lab = self
            .json(
                "lab start",
                http.post(self.at("/api/labs"))
                    .json(&serde_json::json!({ "lesson": LESSON })),
            )
            .await?;
        let admitted = began.elapsed();
        let id = lab["id"]
            .as_str()
            .ok_or_else(|| Failure::new("lab start", format!("no lab id in {lab}")))?
            .to_owned();
        // The lab pane answers once the start has ended, as the page sees it.
        self.send(
            "lab start",
            http.get(self.at(&format!("/lessons/{LESSON}/lab"))),
        )
        .await?;
        loop {
            let lab = self.lab_state(&id).await?;
            match lab["state"].as_str() {
                Some("ready") => {
                    return Ok(Started {
                        lab: id,
                        admitted,
                        ready: began.elapsed(),
                    });
                }
                Some("starting") if began.elapsed() < START_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                _ => {
                    return Err(Failure::new(
                        "lab start",
                        format!("the lab did not start: {lab}"),
                    ));
                }
            }
        }
    }

    async fn lab_state(&self, id: &str) -> Result<serde_json::Value, Failure> {
        self.json(
            "lab state",
            self.class.http.get(self.at(&format!("/api/labs/{id}"))),
        )
        .await
    }

    async fn stop_lab(&self, id: &str) -> Result<(), Failure> {
        self.send(
            "lab stop",
            self.class.http.delete(self.at(&format!("/api/labs/{id}"))),
        )
        .await
        .map(drop)
    }

    /// Presses Check every [`CHECK_EVERY`], the first after `offset`.
    async fn check(&self, lab: &str, index: usize, until: Instant, offset: Duration) -> Checking {
        let mut checking = Checking::default();
        let mut next = Instant::now() + offset;
        let url = self.at(&format!("/api/labs/{lab}/tasks/{TASK}/check"));
        while next < until {
            sleep_until(next.into()).await;
            next += CHECK_EVERY;
            let mark = self.class.outage.mark();
            let began = Instant::now();
            match self.json("check", self.class.http.post(&url)).await {
                Ok(outcome) if outcome["passed"].is_boolean() => {
                    checking.checks.push(began.elapsed());
                    self.class.acked_checks[index].fetch_add(1, Ordering::SeqCst);
                }
                Ok(outcome) => checking
                    .failures
                    .push(Failure::new("check", format!("no outcome in {outcome}"))),
                Err(_) if self.class.outage.covers(mark) => {
                    checking.outage_failures += 1;
                    self.class.outage.over().await;
                }
                Err(failure) => checking.failures.push(failure),
            }
        }
        checking
    }

    /// Types into the lab's terminal until `until`: a keystroke every
    /// [`KEY_EVERY`], timed to its echo, and every [`COMMAND_EVERY`] (the
    /// first after `offset`) a command instead, timed to its output's end.
    async fn type_in(&self, lab: &str, until: Instant, offset: Duration) -> Typing {
        let mut typing = Typing::default();
        let mut shell = Shell::default();
        let mut mark = self.class.outage.mark();
        let mut socket = match self.open_terminal(lab, &mut shell).await {
            Ok(socket) => Some(socket),
            Err(failure) => {
                typing.failures.push(failure);
                None
            }
        };
        let mut tick = tokio::time::interval(KEY_EVERY);
        let mut next_command = Instant::now() + offset;
        while Instant::now() < until {
            tick.tick().await;
            let step = match socket.as_mut() {
                None => {
                    mark = self.class.outage.mark();
                    self.open_terminal(lab, &mut shell).await.map(|s| {
                        socket = Some(s);
                    })
                }
                Some(open) if Instant::now() >= next_command => {
                    next_command += COMMAND_EVERY;
                    shell
                        .run(open, "ls /")
                        .await
                        .map(|took| typing.commands.push(took))
                }
                Some(open) => keystroke(open).await.map(|took| typing.keys.push(took)),
            };
            let Err(failure) = step else { continue };
            // Whatever the socket was doing, it is not to be trusted now.
            socket = None;
            if !self.class.outage.covers(mark) {
                typing.failures.push(failure);
                continue;
            }
            typing.outage_failures += 1;
            let back = self.class.outage.over().await;
            match self.reconnect(lab, &mut shell).await {
                Ok(open) => {
                    typing.reconnect = Some(back.elapsed());
                    socket = Some(open);
                }
                Err(failure) => typing.failures.push(failure),
            }
            mark = self.class.outage.mark();
            typing.lab_after_restart = Some(match self.lab_state(lab).await {
                Ok(lab) => match lab["end_reason"].as_str() {
                    Some(reason) => format!("{}: {reason}", lab["state"]),
                    None => lab["state"].as_str().unwrap_or("?").to_owned(),
                },
                Err(failure) => format!("unknown ({})", failure.detail),
            });
        }
        typing
    }

    /// After a restart: the terminal reopened and echoing a keystroke.
    async fn reconnect(&self, lab: &str, shell: &mut Shell) -> Result<Socket, Failure> {
        let mut socket = self.open_terminal(lab, shell).await?;
        keystroke(&mut socket)
            .await
            .map_err(|f| Failure::new("reconnect", f.detail))?;
        Ok(socket)
    }

    /// Opens the terminal's websocket and waits for the shell to answer;
    /// the first time, also leaves the file the Check looks for.
    async fn open_terminal(&self, lab: &str, shell: &mut Shell) -> Result<Socket, Failure> {
        let url = self
            .at(&format!("/api/labs/{lab}/terminals/node1"))
            .replacen("http", "ws", 1);
        let fail = |e: &dyn std::fmt::Display| Failure::new("terminal open", e.to_string());
        let mut request = url.into_client_request().map_err(|e| fail(&e))?;
        let bearer = format!("Bearer {}", self.account.token);
        request
            .headers_mut()
            .insert("authorization", bearer.parse().map_err(|e| fail(&e))?);
        let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
        let (mut socket, _) = tokio::time::timeout(STEP_TIMEOUT, connect)
            .await
            .map_err(|_| fail(&"timeout"))?
            .map_err(|e| fail(&e))?;
        shell
            .run(&mut socket, "hostname > /root/hostname.txt")
            .await
            .map_err(|f| Failure::new("terminal open", f.detail))?;
        Ok(socket)
    }
}

/// Numbers the markers typed into one student's shell, so output replayed
/// on a reconnect never passes for a fresh answer.
#[derive(Default)]
struct Shell {
    commands: u64,
}

impl Shell {
    /// Types `line`, then waits for an end marker that only its run prints
    /// (the typed text holds it as arithmetic, not literally).
    async fn run(&mut self, socket: &mut Socket, line: &str) -> Result<Duration, Failure> {
        self.commands += 1;
        let n = self.commands;
        let typed = format!("\x15{line}; echo done-$(({n}+1000))\r");
        let marker = format!("done-{}", n + 1000);
        let began = Instant::now();
        send(socket, typed.as_bytes(), "command").await?;
        read_until(socket, marker.as_bytes(), "command").await?;
        Ok(began.elapsed())
    }
}

/// Sends one keystroke at the prompt and waits for its echo.
async fn keystroke(socket: &mut Socket) -> Result<Duration, Failure> {
    let began = Instant::now();
    send(socket, b"x", "keystroke echo").await?;
    read_until(socket, b"x", "keystroke echo").await?;
    Ok(began.elapsed())
}

async fn send(socket: &mut Socket, bytes: &[u8], step: &'static str) -> Result<(), Failure> {
    tokio::time::timeout(
        STEP_TIMEOUT,
        socket.send(Message::Binary(bytes.to_vec().into())),
    )
    .await
    .map_err(|_| Failure::new(step, "timeout sending"))?
    .map_err(|e| Failure::new(step, format!("websocket: {e}")))
}

/// Reads terminal output until `marker` has appeared (it may straddle
/// messages).
async fn read_until(socket: &mut Socket, marker: &[u8], step: &'static str) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| Failure::new(step, "timeout waiting for output"))?
            .ok_or_else(|| Failure::new(step, "websocket dropped"))?
            .map_err(|e| Failure::new(step, format!("websocket: {e}")))?;
        match message {
            Message::Binary(bytes) => {
                tail.extend_from_slice(&bytes);
                if tail.windows(marker.len()).any(|w| w == marker) {
                    return Ok(());
                }
                tail.drain(..tail.len().saturating_sub(marker.len()));
            }
            Message::Text(text) => {
                return Err(Failure::new(step, format!("the server said {text}")));
            }
            Message::Close(frame) => {
                return Err(Failure::new(step, format!("websocket closed: {frame:?}")));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}
