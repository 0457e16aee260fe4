//! [`FakeHost`]: a [`SandboxHost`] in memory, for tests of everything above
//! the seam (HTTP, accounts, grading rules, the lab pane) that must not
//! need root, a kernel with namespaces or a built catalog. It keeps the
//! same rules as the embedded host: which calls each state allows, the
//! error kinds, expiry; [`crate::conformance`] checks both against one
//! suite.
//!
//! A fake node has a file system of plain files in memory and runs a few
//! shell built-ins (`true`, `false`, `echo`, `exit N`, `sleep S`, `touch`,
//! `cat`, `rm`, `test -e/-f`), one per line or `;`, directly or through
//! `sh -c`/`bash -c`/`bash -lc`; anything else exits 127 unless the test
//! answers it with [`FakeHost::on_exec`]. Its terminal echoes what is typed
//! and runs each line the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::http::{HttpError, HttpRequest, HttpResponse};
use crate::terminal::{
    Kill, Killer, Resize, Resizer, Shell, Terminal, TerminalProcess, TerminalSize,
};
use crate::{
    ContainerFacts, ExecOutput, ExitStatus, Expired, Expiry, ImageFacts, SandboxHost, SandboxInfo,
    SandboxSpec, SandboxState, Usage,
};

/// Where a fake host reads the time: the wall clock by default, or a
/// test's own (e.g. one that follows tokio's paused clock).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A test's answer to a command: `Some` to answer it, `None` to let the
/// fake node run it.
type ExecHook = dyn Fn(&str, &[String]) -> Option<ExecOutput> + Send + Sync;

/// The in-memory [`SandboxHost`]; cheap to make, one per test.
pub struct FakeHost {
    clock: Clock,
    images: Mutex<BTreeSet<String>>,
    nodes: Mutex<BTreeMap<String, Arc<Mutex<Node>>>>,
    hook: Mutex<Option<Arc<ExecHook>>>,
    execs: Mutex<Vec<(String, Vec<String>)>>,
}

struct Node {
    info: SandboxInfo,
    files: BTreeMap<String, Vec<u8>>,
    ports: BTreeMap<u16, SocketAddr>,
    images: BTreeMap<String, ImageFacts>,
    containers: Vec<ContainerFacts>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    /// A host on the wall clock that knows the image `workstation`.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemTime::now))
    }

    pub fn with_clock(clock: Clock) -> Self {
        Self {
            clock,
            images: Mutex::new(BTreeSet::from(["workstation".to_owned()])),
            nodes: Mutex::new(BTreeMap::new()),
            hook: Mutex::new(None),
            execs: Mutex::new(Vec::new()),
        }
    }

    /// Makes `image` creatable.
    pub fn add_image(&self, image: &str) {
        lock(&self.images).insert(image.to_owned());
    }

    /// Answers commands before the fake node runs them (setup scripts,
    /// checks, terminal lines): `hook(sandbox id, argv)`.
    pub fn on_exec(
        &self,
        hook: impl Fn(&str, &[String]) -> Option<ExecOutput> + Send + Sync + 'static,
    ) {
        *lock(&self.hook) = Some(Arc::new(hook));
    }

    /// Every command run so far, with its sandbox id, in order.
    pub fn execs(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.execs).clone()
    }

    /// Writes a file into a sandbox's node, as a student's command would.
    pub fn write_file(&self, id: &str, path: &str, content: &[u8]) -> Result<()> {
        lock(&*self.node(id)?)
            .files
            .insert(path.to_owned(), content.to_vec());
        Ok(())
    }

    /// Makes `port` listen in the node, answered by whatever listens on
    /// `target` (a test's own server).
    pub fn forward(&self, id: &str, port: u16, target: SocketAddr) -> Result<()> {
        lock(&*self.node(id)?).ports.insert(port, target);
        Ok(())
    }

    /// What the node's Docker engine holds, as the grader reads it.
    pub fn set_engine(
        &self,
        id: &str,
        images: BTreeMap<String, ImageFacts>,
        containers: Vec<ContainerFacts>,
    ) -> Result<()> {
        let node = self.node(id)?;
        let mut node = lock(&node);
        node.images = images;
        node.containers = containers;
        Ok(())
    }

    /// Ends a sandbox's node on its own (as a crash or its lifetime would):
    /// it stays listed as Exited until destroyed.
    pub fn end(&self, id: &str) -> Result<()> {
        lock(&*self.node(id)?).info.state = SandboxState::Exited;
        Ok(())
    }

    fn node(&self, id: &str) -> Result<Arc<Mutex<Node>>> {
        lock(&self.nodes)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_owned()))
    }

    /// The node of a Running sandbox, for `what`.
    fn running(&self, id: &str, what: &'static str) -> Result<Arc<Mutex<Node>>> {
        let node = self.node(id)?;
        if lock(&node).info.state != SandboxState::Running {
            return Err(Error::WrongState {
                id: id.to_owned(),
                state: "exited",
                what,
                advice: "destroy it and create a new one",
            });
        }
        Ok(node)
    }

    fn run(
        &self,
        id: &str,
        node: &Mutex<Node>,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        lock(&self.execs).push((id.to_owned(), argv.to_vec()));
        lock(node).info.last_activity = Some((self.clock)());
        let hook = lock(&self.hook).clone();
        if let Some(out) = hook.and_then(|hook| hook(id, argv)) {
            return Ok(out);
        }
        let script = match argv {
            [shell, flag, script, ..]
                if matches!(shell.as_str(), "sh" | "bash")
                    && matches!(flag.as_str(), "-c" | "-lc") =>
            {
                script.clone()
            }
            _ => argv.join(" "),
        };
        let mut out = Output::default();
        let code = interpret(&mut lock(node).files, &script, &mut out);
        if out.slept > timeout {
            return Err(Error::Timeout {
                id: id.to_owned(),
                command: argv.join(" "),
                timeout,
            });
        }
        Ok(ExecOutput {
            status: ExitStatus {
                code: Some(code),
                signal: None,
            },
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

impl SandboxHost for FakeHost {
    fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxInfo> {
        crate::check_id(&spec.id)?;
        if !lock(&self.images).contains(&spec.image) {
            return Err(Error::UnknownImage { image: spec.image });
        }
        let now = (self.clock)();
        let node = Arc::new(Mutex::new(Node {
            info: SandboxInfo {
                id: spec.id.clone(),
                state: SandboxState::Running,
                image: spec.image.clone(),
                image_digest: format!("sha256:{:064x}", spec.image.len()),
                hostname: spec.hostname.clone(),
                created: now,
                last_activity: Some(now),
            },
            files: BTreeMap::new(),
            ports: BTreeMap::new(),
            images: BTreeMap::new(),
            containers: Vec::new(),
        }));
        {
            let mut nodes = lock(&self.nodes);
            if nodes.contains_key(&spec.id) {
                return Err(Error::AlreadyExists(spec.id));
            }
            nodes.insert(spec.id.clone(), node.clone());
        }
        if let Some(setup) = &spec.setup {
            let argv = ["bash".to_owned(), "-c".to_owned(), setup.clone()];
            let out = self.run(&spec.id, &node, &argv, spec.setup_timeout);
            let failed = match out {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(Error::SetupFailed {
                    id: spec.id.clone(),
                    status: format!("exit code {}", out.status.shell_code()),
                    output: String::from_utf8_lossy(&[out.stdout, out.stderr].concat())
                        .trim_end()
                        .to_owned(),
                }),
                Err(e) => Some(e),
            };
            if let Some(e) = failed {
                lock(&self.nodes).remove(&spec.id);
                return Err(e);
            }
        }
        let info = lock(&node).info.clone();
        Ok(info)
    }

    fn destroy_sandbox(&self, id: &str) -> Result<()> {
        lock(&self.nodes)
            .remove(id)
            .map(drop)
            .ok_or_else(|| Error::NotFound(id.to_owned()))
    }

    fn open_terminal(&self, id: &str, size: TerminalSize) -> Result<Terminal> {
        let node = self.running(id, "a terminal")?;
        size.checked()?;
        lock(&node).info.last_activity = Some((self.clock)());
        Ok(fake_terminal(node))
    }

    fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput> {
        let node = self.running(id, "exec")?;
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(Error::InvalidSpec("command is empty".into()));
        }
        self.run(id, &node, argv, timeout)
    }

    fn http(&self, id: &str, request: &HttpRequest) -> Result<HttpResponse> {
        self.running(id, "an HTTP request")?;
        crate::http::validate(request)?;
        // Nothing in a fake node serves HTTP; a forwarded port is for
        // `connect`, which hands out the stream itself.
        Err(HttpError::Resolve {
            host: request.host.clone(),
            reason: "a fake node answers no HTTP".into(),
        }
        .into())
    }

    fn listening_ports(&self, id: &str) -> Result<Vec<u16>> {
        let node = self.running(id, "a list of its ports")?;
        let ports = lock(&node).ports.keys().copied().collect();
        Ok(ports)
    }

    fn connect(&self, id: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
        let node = self.running(id, "a connection")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let target = lock(&node).ports.get(&port).copied();
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let stream = match target {
            Some(target) => TcpStream::connect_timeout(&target, timeout),
            None => Err(refused()),
        };
        stream.map_err(|source| HttpError::Connect { addr, source }.into())
    }

    fn engine_image(&self, id: &str, name: &str) -> Result<Option<ImageFacts>> {
        let node = self.running(id, "reading its Docker images")?;
        let image = lock(&node).images.get(name).cloned();
        Ok(image)
    }

    fn engine_containers(&self, id: &str) -> Result<Vec<ContainerFacts>> {
        let node = self.running(id, "reading its Docker containers")?;
        let containers = lock(&node).containers.clone();
        Ok(containers)
    }

    fn touch(&self, id: &str) -> Result<()> {
        let node = self.running(id, "touch")?;
        lock(&node).info.last_activity = Some((self.clock)());
        Ok(())
    }

    fn expire(&self, policy: &Expiry, now: SystemTime) -> Result<Vec<Expired>> {
        let mut expired = Vec::new();
        for info in self.sandboxes()? {
            let Some(reason) = info.expiry_reason(policy, now) else {
                continue;
            };
            if self.destroy_sandbox(&info.id).is_ok() {
                expired.push(Expired {
                    id: info.id,
                    reason,
                });
            }
        }
        Ok(expired)
    }

    fn sandboxes(&self) -> Result<Vec<SandboxInfo>> {
        let nodes: Vec<_> = lock(&self.nodes).values().cloned().collect();
        Ok(nodes.iter().map(|n| lock(n).info.clone()).collect())
    }

    fn sandbox(&self, id: &str) -> Result<SandboxInfo> {
        let info = lock(&*self.node(id)?).info.clone();
        Ok(info)
    }

    fn usage(&self, id: &str) -> Result<Usage> {
        self.running(id, "its usage")?;
        Ok(Usage {
            memory_bytes: 0,
            pids: 1,
        })
    }
}

/// A panic in one test's closure must not poison the fake for the rest.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    slept: Duration,
}

/// Runs the fake node's built-ins, one command per line or `;`; the last
/// command's status, or `exit`'s.
fn interpret(files: &mut BTreeMap<String, Vec<u8>>, script: &str, out: &mut Output) -> i32 {
    let mut status = 0;
    for command in script.split(['\n', ';']) {
        let words = split_words(command);
        let Some((name, args)) = words.split_first() else {
            continue;
        };
        status = match (name.as_str(), args) {
            ("true" | ":", _) => 0,
            ("false", _) => 1,
            ("echo", args) => {
                out.stdout.extend_from_slice(args.join(" ").as_bytes());
                out.stdout.push(b'\n');
                0
            }
            ("exit", []) => return status,
            ("exit", [code]) => return code.parse().unwrap_or(2),
            ("sleep", [secs]) => match secs.parse::<f64>() {
                Ok(secs) if secs >= 0.0 && secs.is_finite() => {
                    out.slept += Duration::from_secs_f64(secs);
                    0
                }
                _ => usage(out, "sleep: invalid time interval"),
            },
            ("touch", paths) if !paths.is_empty() => {
                for path in paths {
                    files.entry(path.clone()).or_default();
                }
                0
            }
            ("cat", paths) if !paths.is_empty() => {
                let mut status = 0;
                for path in paths {
                    match files.get(path) {
                        Some(content) => out.stdout.extend_from_slice(content),
                        None => status = missing(out, "cat", path),
                    }
                }
                status
            }
            ("rm", [path]) => match files.remove(path) {
                Some(_) => 0,
                None => missing(out, "rm", path),
            },
            ("test", [flag, path]) if flag == "-e" || flag == "-f" => {
                i32::from(!files.contains_key(path))
            }
            (name, _) => {
                out.stderr
                    .extend_from_slice(format!("sh: {name}: not found\n").as_bytes());
                127
            }
        };
    }
    status
}

fn usage(out: &mut Output, message: &str) -> i32 {
    out.stderr.extend_from_slice(message.as_bytes());
    out.stderr.push(b'\n');
    2
}

fn missing(out: &mut Output, tool: &str, path: &str) -> i32 {
    usage(out, &format!("{tool}: {path}: No such file or directory"));
    1
}

/// Words of one command: blanks separate them; single or double quotes
/// keep blanks inside one.
fn split_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    words
}

/// How a fake shell ends: its exit code.
type Ended = Arc<Mutex<Option<u32>>>;

/// A terminal whose "shell" echoes input (as a TTY in cooked mode does),
/// runs each line on the node's built-ins and prints `# ` as its prompt.
fn fake_terminal(node: Arc<Mutex<Node>>) -> Terminal {
    let (input, typed) = mpsc::channel::<Input>();
    let (screen, shown) = mpsc::channel::<Vec<u8>>();
    let ended: Ended = Arc::default();
    let (done, finished) = mpsc::channel::<u32>();
    std::thread::spawn({
        let ended = ended.clone();
        move || {
            let code = shell(&node, &typed, &screen);
            *lock(&ended) = Some(code);
            let _ = done.send(code);
        }
    });
    let killer = FakeKiller {
        input: input.clone(),
        killed: Arc::default(),
    };
    Terminal {
        reader: Box::new(Screen {
            shown,
            pending: Vec::new(),
        }),
        writer: Box::new(Keyboard { input }),
        resizer: Resizer::new(FakeResizer),
        process: TerminalProcess::new(FakeShell {
            finished,
            ended,
            killer,
        }),
    }
}

enum Input {
    Bytes(Vec<u8>),
    Kill,
}

fn shell(node: &Mutex<Node>, typed: &Receiver<Input>, screen: &Sender<Vec<u8>>) -> u32 {
    let _ = screen.send(b"# ".to_vec());
    let mut line = Vec::new();
    loop {
        let bytes = match typed.recv() {
            Ok(Input::Bytes(bytes)) => bytes,
            Ok(Input::Kill) => return 128 + 9,
            // Every writer is gone: the terminal was hung up.
            Err(_) => return 128 + 1,
        };
        for byte in bytes {
            if byte != b'\r' && byte != b'\n' {
                line.push(byte);
                let _ = screen.send(vec![byte]);
                continue;
            }
            let _ = screen.send(b"\r\n".to_vec());
            let command = String::from_utf8_lossy(&std::mem::take(&mut line)).into_owned();
            let words = split_words(&command);
            if words.first().is_some_and(|w| w == "exit") {
                return words.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            }
            let mut out = Output::default();
            interpret(&mut lock(node).files, &command, &mut out);
            let shown = [out.stdout, out.stderr].concat();
            let shown = String::from_utf8_lossy(&shown).replace('\n', "\r\n");
            let _ = screen.send(format!("{shown}# ").into_bytes());
        }
    }
}

struct Keyboard {
    input: Sender<Input>,
}

impl Write for Keyboard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.input
            .send(Input::Bytes(buf.to_vec()))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Screen {
    shown: Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl Read for Screen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            match self.shown.recv() {
                Ok(bytes) => self.pending = bytes,
                // The shell ended: EOF, as a PTY without processes gives.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

struct FakeResizer;

impl Resize for FakeResizer {
    fn resize(&self, _size: TerminalSize) -> Result<()> {
        Ok(())
    }
}

struct FakeShell {
    finished: Receiver<u32>,
    ended: Ended,
    killer: FakeKiller,
}

impl Shell for FakeShell {
    fn wait(&mut self) -> Result<u32> {
        // The shell stores its code before it drops the sender.
        let _ = self.finished.recv();
        Ok(lock(&self.ended).unwrap_or(255))
    }

    fn try_wait(&mut self) -> Result<Option<u32>> {
        Ok(*lock(&self.ended))
    }

    fn killer(&self) -> Killer {
        Killer::new(self.killer.clone())
    }
}

#[derive(Clone)]
struct FakeKiller {
    input: Sender<Input>,
    killed: Arc<AtomicBool>,
}

impl Kill for FakeKiller {
    fn kill(&self) -> Result<()> {
        if !self.killed.swap(true, Ordering::SeqCst) {
            // A shell already gone has dropped its receiver: nothing to do.
            let _ = self.input.send(Input::Kill);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_blanks_and_keep_quoted_blanks() {
        assert_eq!(
            split_words(r#"echo "a b" 'c d' e"#),
            ["echo", "a b", "c d", "e"]
        );
        assert_eq!(split_words("  "), Vec::<String>::new());
        assert_eq!(split_words("echo ''"), ["echo", ""]);
    }

    #[test]
    fn built_ins_keep_files_and_report_statuses() {
        let mut files = BTreeMap::new();
        let mut out = Output::default();
        assert_eq!(interpret(&mut files, "touch /a; test -f /a", &mut out), 0);
        assert_eq!(interpret(&mut files, "rm /a; test -e /a", &mut out), 1);
        assert_eq!(interpret(&mut files, "cat /missing", &mut out), 1);
        assert_eq!(interpret(&mut files, "nosuch", &mut out), 127);
        assert_eq!(interpret(&mut files, "exit 3; true", &mut out), 3);
        assert_eq!(interpret(&mut files, "sleep 2.5", &mut out), 0);
        assert_eq!(out.slept, Duration::from_millis(2500));
        assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch: not found"));
    }
}
