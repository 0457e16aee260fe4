//! Running the host programs a build needs (debootstrap, gcc, a shell in a
//! chroot) with their output streamed line by line to the progress callback,
//! so a minute-long debootstrap shows what it is doing.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};

/// Lines of output kept for the error message of a failed program.
const TAIL_LINES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "cannot start {program}: {source}; is it installed (see the apt packages in the images crate doc)?"
    )]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the output of {program}: {source}")]
    Output {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} failed ({status}); last output:\n{tail}")]
    Failed {
        program: String,
        status: ExitStatus,
        tail: String,
    },
}

/// Runs `cmd` to completion, with stdin closed and stdout and stderr merged
/// into lines passed to `on_line`. Takes the command by value: it holds the
/// write end of the pipe, which must be closed for the read loop to end.
pub fn run(mut cmd: Command, on_line: &mut dyn FnMut(&str)) -> Result<(), CommandError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    tracing::debug!(?cmd, "running");
    let spawn_err = |source| CommandError::Spawn {
        program: program.clone(),
        source,
    };
    let (reader, writer) = io::pipe().map_err(spawn_err)?;
    let writer2 = writer.try_clone().map_err(spawn_err)?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    drop(cmd);

    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let read_result = loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end();
                on_line(line);
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.to_owned());
            }
            Err(e) => break Err(e),
        }
    };
    // Always reap the child, even when reading failed.
    let status = child.wait().map_err(|source| CommandError::Output {
        program: program.clone(),
        source,
    })?;
    read_result.map_err(|source| CommandError::Output {
        program: program.clone(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(CommandError::Failed {
            program,
            status,
            tail: Vec::from(tail).join("\n"),
        })
    }
}

/// Runs `cmd` to completion with stdin closed and returns what it wrote
/// to stdout; a failure quotes the end of its stderr.
pub fn output(mut cmd: Command) -> Result<Vec<u8>, CommandError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    tracing::debug!(?cmd, "running");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CommandError::Spawn {
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    Err(CommandError::Failed {
        program,
        status: out.status,
        tail: lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n"),
    })
}
