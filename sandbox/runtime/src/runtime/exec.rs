//! Commands inside a running sandbox: captured, or with whatever stdio the
//! caller gives them, or on a terminal of the sandbox's own.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command as StdCommand, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::error::{Error, Result};
use crate::helper;
use crate::paths::check_id;
use crate::spec::{ExecOutput, ExecSpec};
use crate::state::Status;
use crate::tty::{PtyReply, WindowSize};

use super::{Runtime, wait_readable};

/// How long `exec` keeps reading output after its command exited, for
/// background processes that still hold the pipes.
const PIPE_DRAIN: Duration = Duration::from_millis(200);

/// Bytes of each of stdout and stderr that [`Runtime::exec`] keeps.
pub const MAX_CAPTURE: usize = 4 << 20;

impl Runtime {
    /// Runs a command in a running sandbox with captured output; kills it
    /// after `spec.timeout`. Only in status Running (`NotRunning` otherwise).
    pub fn exec(&self, id: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        let argv = self.exec_command(id, spec)?;
        let mut child = StdCommand::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io("run helper", &self.config.helper_exe))?;
        // Background processes of the command may keep the pipes open
        // forever: collect into shared buffers and stop waiting for EOF a
        // moment after the helper exits.
        let out = Pump::start(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err = Pump::start(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let deadline = spec.timeout.map(|t| Instant::now() + t);
        let pidfd = crate::sys::pidfd_open(child.id() as i32).ok();
        let pidfd_raw = pidfd.as_ref().map_or(-1, |f| f.as_raw_fd());
        let mut timed_out = false;
        let status = loop {
            match child
                .try_wait()
                .map_err(Error::sys("wait for exec helper"))?
            {
                Some(s) => break s,
                None if deadline.is_some_and(|d| Instant::now() >= d) => {
                    // The command dies with its helper (PR_SET_PDEATHSIG).
                    let _ = child.kill();
                    timed_out = true;
                    break child.wait().map_err(Error::sys("wait for exec helper"))?;
                }
                None => wait_readable(pidfd_raw, Duration::from_millis(50)),
            }
        };
        let drain_until = Instant::now() + PIPE_DRAIN;
        let stdout = out.finish(drain_until);
        let stderr = err.finish(drain_until);
        if timed_out {
            debug!(id, argv = ?spec.argv, "exec timed out; killed");
            return Err(Error::Timeout(spec.timeout.unwrap_or_default()));
        }
        Ok(ExecOutput {
            status: status.into(),
            stdout,
            stderr,
        })
    }

    /// The command line that runs `spec` inside sandbox `id` with whatever
    /// stdio it is started with: `[helper, "__layerlab-runtime-exec", …,
    /// id, "--", argv…]`, where `helper` is the sealed copy of the helper
    /// executable as a `/proc/<our pid>/fd/<n>` path, valid while this
    /// process lives. `spec.timeout` does not apply (the caller owns the
    /// process). For a terminal use [`Runtime::terminal_command`]: one made
    /// by the caller would not be the sandbox's.
    pub fn exec_command(&self, id: &str, spec: &ExecSpec) -> Result<Vec<OsString>> {
        self.exec_argv(id, spec, None)
    }

    /// `spec` ready to run inside sandbox `id` on a new terminal of the
    /// sandbox's own devpts, `size` big, as the command's controlling
    /// terminal and stdio (the slave belongs to `spec.uid`, group tty, mode
    /// 0620). Spawn the command (with std or tokio), drop it, then
    /// [`PtyReply::receive`] the terminal's master. The helper's exit
    /// status mirrors the command's; killing the helper kills the command.
    /// Running only; `spec.timeout` does not apply.
    pub fn terminal_command(
        &self,
        id: &str,
        spec: &ExecSpec,
        size: WindowSize,
    ) -> Result<(StdCommand, PtyReply)> {
        let argv = self.exec_argv(id, spec, Some(size.validate()?))?;
        let (ours, theirs) = crate::process::channel::pair()?;
        let mut cmd = StdCommand::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .process_group(0)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok((cmd, PtyReply::new(ours, &self.config.helper_exe, id)))
    }

    fn exec_argv(
        &self,
        id: &str,
        spec: &ExecSpec,
        tty: Option<WindowSize>,
    ) -> Result<Vec<OsString>> {
        check_id(id)?;
        spec.validate()?;
        let st = self.load(id)?;
        if !self.alive(&st) {
            return Err(Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what: "exec",
            });
        }
        let _ = self.touch(id);
        let mut v: Vec<OsString> = vec![
            self.helper.path().into(),
            helper::EXEC.into(),
            "--state-dir".into(),
            self.layout.root().into(),
            "--cwd".into(),
            spec.cwd.clone().into(),
            "--uid".into(),
            spec.uid.to_string().into(),
            "--gid".into(),
            spec.gid.to_string().into(),
        ];
        for (k, val) in &spec.env {
            v.push("--env".into());
            v.push(format!("{k}={val}").into());
        }
        if let Some(size) = tty {
            v.push("--tty".into());
            v.push(size.arg().into());
        }
        v.push(id.into());
        v.push("--".into());
        v.extend(spec.argv.iter().map(OsString::from));
        Ok(v)
    }
}

/// Reads a pipe on its own thread into a shared buffer.
struct Pump {
    buf: Arc<Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Pump {
    fn start(r: Option<Box<dyn Read + Send>>) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = std::sync::mpsc::channel();
        let b = Arc::clone(&buf);
        std::thread::spawn(move || {
            if let Some(mut r) = r {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    // Keep reading past the cap so the command never
                    // blocks on a full pipe, but keep no more: output is
                    // whatever the sandbox wants it to be.
                    if let Ok(mut v) = b.lock() {
                        let room = MAX_CAPTURE.saturating_sub(v.len());
                        v.extend_from_slice(&chunk[..n.min(room)]);
                    }
                }
            }
            let _ = tx.send(());
        });
        Self { buf, done }
    }

    fn finish(self, until: Instant) -> Vec<u8> {
        let _ = self
            .done
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        self.buf.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
