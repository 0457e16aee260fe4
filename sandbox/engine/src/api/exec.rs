//! `docker exec`: `POST /containers/{id}/exec` registers a command,
//! `POST /exec/{id}/start` runs it on a hijacked stream, and
//! `GET /exec/{id}/json` tells its exit code, which the CLI reads after
//! the stream ends, so the code is recorded before the stream closes.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::area::{Handled, only};
use super::body::{MAX_JSON_BODY, json, read_json};
use super::error::{ApiError, ApiResult};
use super::execs::Exec;
use super::hijack;
use super::query::Query;
use super::types::{ExecCreate, ExecStart};
use crate::Engine;
use crate::containers::Container;
use crate::error::Error;
use crate::stamps::random_id;
use crate::streams::{self, Stream};

pub(super) async fn create(
    engine: &Arc<Engine>,
    container: &Arc<Container>,
    request: Request,
) -> ApiResult {
    let config: ExecCreate = read_json(request).await?;
    if config.cmd.as_ref().is_none_or(Vec::is_empty) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    engine.containers.running_sandbox(container)?;
    // Checked now, so a user it cannot become is the CLI's error message
    // rather than a failed upgrade of the start request.
    if !config.user.is_empty() {
        let (c, u) = (container.clone(), config.user.clone());
        engine
            .blocking(move |e| e.containers.user_of(&c, &u))
            .await?;
    }
    let exec = Arc::new(Exec {
        id: random_id(),
        container: container.clone(),
        config,
        state: Mutex::default(),
    });
    engine.execs.insert(exec.clone())?;
    Ok(json(StatusCode::CREATED, &json!({ "Id": exec.id })))
}

pub(super) async fn handle(
    engine: &Arc<Engine>,
    method: &Method,
    path: &str,
    request: Request,
) -> Handled {
    let Some(rest) = path.strip_prefix("/exec/") else {
        return Handled::No(request);
    };
    let Some((id, action)) = rest.split_once('/') else {
        return Handled::No(request);
    };
    let answer = async {
        let exec = engine.execs.find(id)?;
        match action {
            "json" => {
                only(method, &[Method::GET])?;
                Ok(json(StatusCode::OK, &inspect(&exec)))
            }
            "start" => {
                only(method, &[Method::POST])?;
                start(engine, exec, request).await
            }
            "resize" => {
                only(method, &[Method::POST])?;
                let pty = exec.state.lock().ok().and_then(|s| s.pty.clone());
                hijack::resize_tty(pty, &Query::parse(request.uri())?)
            }
            _ => Err(ApiError::not_found()),
        }
    };
    Handled::Yes(answer.await)
}

fn inspect(exec: &Exec) -> serde_json::Value {
    let state = exec.state.lock().unwrap_or_else(|p| p.into_inner());
    let argv = exec.config.cmd.clone().unwrap_or_default();
    json!({
        "ID": exec.id,
        "Running": state.running,
        "ExitCode": state.exit_code,
        "ProcessConfig": {
            "tty": exec.config.tty,
            "entrypoint": argv.first(),
            "arguments": argv.get(1..).unwrap_or_default(),
            "privileged": exec.config.privileged,
        },
        "OpenStdin": exec.config.attach_stdin,
        "OpenStderr": exec.config.attach_stderr,
        "OpenStdout": exec.config.attach_stdout,
        "CanRemove": false,
        "ContainerID": exec.container.id,
        "DetachKeys": exec.config.detach_keys,
        "Pid": state.pid,
    })
}

async fn start(engine: &Arc<Engine>, exec: Arc<Exec>, request: Request) -> ApiResult {
    let (parts, raw) = request.into_parts();
    let bytes = axum::body::to_bytes(raw, MAX_JSON_BODY)
        .await
        .map_err(|_| ApiError::bad_request("request body is over 1 MiB or broken"))?;
    let start: ExecStart = if bytes.iter().all(u8::is_ascii_whitespace) {
        ExecStart::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))?
    };
    {
        let mut state = exec.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.started {
            return Err(Error::Conflict(format!(
                "Error: Exec command {} has already run",
                exec.id
            ))
            .into());
        }
        state.started = true;
        state.running = true;
    }
    let sandbox = engine.containers.running_sandbox(&exec.container)?;
    let record = exec.container.record();
    let mut spec = runtime::ExecSpec::new(exec.config.cmd.clone().unwrap_or_default());
    let asked = if exec.config.user.is_empty() {
        record.config.user.clone()
    } else {
        exec.config.user.clone()
    };
    let (c, a) = (exec.container.clone(), asked);
    let user = engine
        .blocking(move |e| e.containers.user_of(&c, &a))
        .await?;
    spec.env = record
        .config
        .env
        .iter()
        .flatten()
        .chain(exec.config.env.iter().flatten())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    spec.cwd = [
        exec.config.working_dir.as_str(),
        record.config.working_dir.as_str(),
    ]
    .into_iter()
    .find(|d| !d.is_empty())
    .unwrap_or("/")
    .to_owned();
    if let Some(user) = user {
        spec.uid = user.uid;
        spec.gid = user.gid;
        spec.env.entry("HOME".into()).or_insert(user.home);
    }
    let tty = start.tty || exec.config.tty;
    let runtime = engine.containers.runtime().clone();
    let (mut command, reply) = if tty {
        let (command, reply) = runtime.terminal_command(&sandbox, &spec, streams::INITIAL_TTY)?;
        (tokio::process::Command::from(command), Some(reply))
    } else {
        let argv = runtime.exec_command(&sandbox, &spec)?;
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).env_clear();
        (command, None)
    };
    command.kill_on_drop(false);
    let mut reader_fds: Vec<(std::os::fd::OwnedFd, Stream)> = Vec::new();
    let mut stdin_fd = None;
    let io = |e: std::io::Error| {
        ApiError::from(Error::InvalidArgument(format!(
            "cannot start the exec: {e}"
        )))
    };
    if !tty {
        if exec.config.attach_stdin {
            let (r, w) = streams::pipe().map_err(io)?;
            command.stdin(Stdio::from(r));
            stdin_fd = Some(w);
        } else {
            command.stdin(Stdio::null());
        }
        let (out_r, out_w) = streams::pipe().map_err(io)?;
        let (err_r, err_w) = streams::pipe().map_err(io)?;
        command
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        reader_fds.push((out_r, Stream::Stdout));
        reader_fds.push((err_r, Stream::Stderr));
    }
    let mut child = command.spawn().map_err(io)?;
    // The spawned command holds its ends now; ours must close for EOF.
    drop(command);
    if let Some(reply) = reply {
        // The helper joins the container before it answers: off the reactor.
        let pid = child.id().unwrap_or_default();
        let received = tokio::task::spawn_blocking(move || reply.receive(pid))
            .await
            .map_err(Error::from)
            .and_then(|r| r.map_err(Error::from))
            .and_then(|pty| {
                let reader = pty.try_clone()?;
                let writer = pty.try_clone()?;
                Ok((pty, reader, writer))
            });
        let (pty, reader, writer) = match received {
            Ok(ends) => ends,
            Err(e) => {
                let _ = child.kill().await;
                let mut state = exec.state.lock().unwrap_or_else(|p| p.into_inner());
                state.running = false;
                state.exit_code = Some(126);
                return Err(e.into());
            }
        };
        stdin_fd = Some(writer.into());
        reader_fds.push((reader.into(), Stream::Stdout));
        exec.state.lock().unwrap_or_else(|p| p.into_inner()).pty = Some(Arc::new(pty));
    }
    exec.state.lock().unwrap_or_else(|p| p.into_inner()).pid = child.id().map_or(0, |p| p as i32);
    let detached = start.detach;
    let request = axum::extract::Request::from_parts(parts, axum::body::Body::empty());
    let finish = {
        let exec = exec.clone();
        move |code: i32| {
            let mut state = exec.state.lock().unwrap_or_else(|p| p.into_inner());
            state.running = false;
            state.exit_code = Some(code);
            state.pty = None;
        }
    };
    if detached {
        tokio::spawn(async move {
            let code = exit_code(&mut child).await;
            finish(code);
        });
        return Ok(StatusCode::OK.into_response());
    }
    let with_stdin = exec.config.attach_stdin;
    Ok(hijack::upgrade(request, move |stream| async move {
        let (mut input, mut output) = hijack::split(stream);
        if let (true, Some(fd)) = (with_stdin, stdin_fd)
            && let Ok(mut sink) = streams::writer(fd)
        {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n @ 1..) = input.read(&mut buf).await {
                    if sink.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Stream, Vec<u8>)>(64);
        for (fd, stream) in reader_fds {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut reader) = streams::reader(fd) else {
                    return;
                };
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n @ 1..) = reader.read(&mut buf).await {
                    if tx.send((stream, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut client_gone = false;
        while let Some((stream, bytes)) = rx.recv().await {
            let out = if tty {
                bytes
            } else {
                streams::frame(stream as u8, &bytes)
            };
            if !client_gone && output.write_all(&out).await.is_err() {
                client_gone = true;
            }
        }
        let code = exit_code(&mut child).await;
        finish(code);
        let _ = output.flush().await;
        let _ = output.shutdown().await;
    }))
}

/// The exec helper's exit code, which mirrors the command's (128 + signal
/// when one ended it: the helper dies of it too); 137 when even that is
/// unknown.
async fn exit_code(child: &mut tokio::process::Child) -> i32 {
    child
        .wait()
        .await
        .map_or(137, |s| runtime::ExitStatus::from(s).shell_code())
}
