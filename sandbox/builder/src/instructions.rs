//! [`Node`]s → typed [`Instruction`]s, refusing what Docker refuses, in its
//! words (`dockerfile parse error line 3: unknown instruction: RUNN`).
//! Variables are left as written: a step expands them with the build's
//! environment at that point ([`crate::shell`]).

use crate::parser::{Args, Dockerfile, Node, ParseError};

/// A command in shell form (run by the stage's `SHELL`) or exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Sources then destination, as written (the exec form's list, or the
    /// shell form's words, not yet expanded).
    pub paths: Args,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        stage: Option<String>,
        platform: Option<String>,
    },
    Run(Command),
    Cmd(Command),
    Entrypoint(Command),
    /// `SHELL ["/bin/bash", "-c"]`: exec form only.
    Shell(Vec<String>),
    /// The raw `KEY=VALUE …` (or `KEY VALUE`) text.
    Env(String),
    Label(String),
    Arg(String),
    Expose(String),
    Volume(Args),
    Workdir(String),
    User(String),
    StopSignal(String),
    Maintainer(String),
    Healthcheck {
        flags: Vec<(String, String)>,
        /// `None` for `HEALTHCHECK NONE`.
        test: Option<Command>,
    },
    /// The trigger's own text, parsed when an image built on this one runs it.
    Onbuild(String),
    Copy(Copy),
    Add(Copy),
}

/// One instruction and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub instruction: Instruction,
    pub node: Node,
}

/// Types every node of `file`. The first instruction other than `ARG`
/// must be `FROM`.
pub fn parse(file: &Dockerfile) -> Result<Vec<Step>, ParseError> {
    let mut steps = Vec::with_capacity(file.nodes.len());
    let mut in_stage = false;
    for node in &file.nodes {
        let instruction = typed(node)?;
        match instruction {
            Instruction::From { .. } => in_stage = true,
            Instruction::Arg(_) => {}
            _ if !in_stage => {
                return Err(error(node, "no build stage in current context".into()));
            }
            _ => {}
        }
        steps.push(Step {
            instruction,
            node: node.clone(),
        });
    }
    Ok(steps)
}

fn error(node: &Node, message: String) -> ParseError {
    ParseError::Line {
        line: node.start_line,
        message,
    }
}

pub fn typed(node: &Node) -> Result<Instruction, ParseError> {
    let name = node.instruction.to_uppercase();
    let shell = || match &node.args {
        Args::Shell(s) => s.clone(),
        Args::Exec(list) => list.join(" "),
    };
    let required = |what: &str| -> Result<String, ParseError> {
        let text = shell();
        if text.trim().is_empty() {
            Err(error(node, format!("{name} requires {what}")))
        } else {
            Ok(text)
        }
    };
    let command = || -> Result<Command, ParseError> {
        match &node.args {
            Args::Exec(list) => Ok(Command::Exec(list.clone())),
            Args::Shell(s) => Ok(Command::Shell(s.clone())),
        }
    };
    check_flags(node)?;
    Ok(match node.instruction.as_str() {
        "from" => {
            let text = required("either one or three arguments")?;
            let words: Vec<&str> = text.split_whitespace().collect();
            let stage = match words.as_slice() {
                [_] => None,
                [_, kw, stage] if kw.eq_ignore_ascii_case("as") => Some(stage.to_string()),
                _ => {
                    return Err(error(
                        node,
                        "FROM requires either one or three arguments".into(),
                    ));
                }
            };
            Instruction::From {
                image: words[0].to_owned(),
                stage,
                platform: flag(node, "platform"),
            }
        }
        "run" => {
            required("at least one argument")?;
            Instruction::Run(command()?)
        }
        "cmd" => Instruction::Cmd(command()?),
        "entrypoint" => Instruction::Entrypoint(command()?),
        "shell" => match &node.args {
            Args::Exec(list) if !list.is_empty() => Instruction::Shell(list.clone()),
            _ => {
                return Err(error(
                    node,
                    "SHELL requires the arguments to be in JSON form".into(),
                ));
            }
        },
        "env" => Instruction::Env(pairs(node, &required("at least one argument")?)?),
        "label" => Instruction::Label(pairs(node, &required("at least one argument")?)?),
        "arg" => Instruction::Arg(required("exactly one argument")?),
        "expose" => Instruction::Expose(required("at least one argument")?),
        "volume" => {
            required("at least one argument")?;
            Instruction::Volume(node.args.clone())
        }
        "workdir" => Instruction::Workdir(required("exactly one argument")?),
        "user" => Instruction::User(required("exactly one argument")?),
        "stopsignal" => Instruction::StopSignal(required("exactly one argument")?),
        "maintainer" => Instruction::Maintainer(required("exactly one argument")?),
        "healthcheck" => {
            let text = required("at least one argument")?;
            let (word, rest) = text
                .split_once(char::is_whitespace)
                .map_or((text.as_str(), ""), |(w, r)| (w, r.trim_start()));
            let test = match word.to_ascii_uppercase().as_str() {
                "NONE" if rest.is_empty() => None,
                "CMD" if !rest.is_empty() => {
                    Some(match serde_json::from_str::<Vec<String>>(rest) {
                        Ok(list) => Command::Exec(list),
                        Err(_) => Command::Shell(rest.to_owned()),
                    })
                }
                _ => {
                    return Err(error(
                        node,
                        "HEALTHCHECK takes NONE, or CMD and a command".into(),
                    ));
                }
            };
            Instruction::Healthcheck {
                flags: node.flags.clone(),
                test,
            }
        }
        "onbuild" => {
            let text = required("at least one argument")?;
            let trigger = text.split_whitespace().next().unwrap_or_default();
            match trigger.to_ascii_uppercase().as_str() {
                t @ ("ONBUILD" | "FROM" | "MAINTAINER") => {
                    return Err(error(
                        node,
                        format!("{t} isn't allowed as an ONBUILD trigger"),
                    ));
                }
                _ => Instruction::Onbuild(text),
            }
        }
        "copy" | "add" => {
            let count = match &node.args {
                Args::Exec(list) => list.len(),
                Args::Shell(s) => s.split_whitespace().count(),
            };
            if count < 2 {
                return Err(error(
                    node,
                    format!(
                        "{name} requires at least two arguments, but only one was provided. Destination could not be determined."
                    ),
                ));
            }
            let copy = Copy {
                paths: node.args.clone(),
                from: flag(node, "from"),
                chown: flag(node, "chown"),
                chmod: flag(node, "chmod"),
            };
            if node.instruction == "add" && copy.from.is_some() {
                return Err(error(node, "Unknown flag: from".into()));
            }
            if node.instruction == "add" {
                Instruction::Add(copy)
            } else {
                Instruction::Copy(copy)
            }
        }
        _ => {
            return Err(error(
                node,
                format!("unknown instruction: {}", node.instruction.to_uppercase()),
            ));
        }
    })
}

/// `KEY=VALUE …`, or the older `KEY VALUE`; keys must not be blank.
fn pairs(node: &Node, text: &str) -> Result<String, ParseError> {
    let first = text.split_whitespace().next().unwrap_or_default();
    if first.starts_with('=') {
        return Err(error(
            node,
            format!("{} names can not be blank", node.instruction.to_uppercase()),
        ));
    }
    if !first.contains('=') && text.split_whitespace().count() < 2 {
        return Err(error(
            node,
            format!(
                "{} must have two arguments",
                node.instruction.to_uppercase()
            ),
        ));
    }
    Ok(text.to_owned())
}

/// Flags each instruction knows; anything else is Docker's `Unknown flag`.
fn check_flags(node: &Node) -> Result<(), ParseError> {
    let known: &[&str] = match node.instruction.as_str() {
        "from" => &["platform"],
        "copy" => &["from", "chown", "chmod"],
        "add" => &["chown", "chmod"],
        "healthcheck" => &["interval", "timeout", "start-period", "retries"],
        _ => &[],
    };
    match node
        .flags
        .iter()
        .find(|(name, _)| !known.contains(&name.as_str()))
    {
        Some((name, _)) => Err(error(node, format!("Unknown flag: {name}"))),
        None => Ok(()),
    }
}

fn flag(node: &Node, name: &str) -> Option<String> {
    node.flags
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(text: &str) -> Result<Vec<Step>, ParseError> {
        parse(&crate::parser::parse(text.as_bytes())?)
    }

    #[test]
    fn every_instruction_types() {
        let all = steps(
            "ARG BASE=debian\nFROM $BASE AS build\nRUN make\nCMD [\"app\"]\nENTRYPOINT app\nSHELL [\"/bin/bash\", \"-c\"]\nENV A=1 B=\"two words\"\nENV OLD style value\nLABEL a=b\nARG V\nEXPOSE 80/tcp\nVOLUME /data\nWORKDIR /src\nUSER app\nSTOPSIGNAL SIGQUIT\nMAINTAINER me\nHEALTHCHECK --interval=5s CMD curl -f localhost\nHEALTHCHECK NONE\nONBUILD RUN echo hi\nCOPY --from=build --chown=1:1 /out /app/\nADD --chmod=644 a.tar /x/\n",
        )
        .expect("every instruction");
        assert_eq!(all.len(), 21);
        assert_eq!(
            all[1].instruction,
            Instruction::From {
                image: "$BASE".into(),
                stage: Some("build".into()),
                platform: None
            }
        );
        assert_eq!(
            all[3].instruction,
            Instruction::Cmd(Command::Exec(vec!["app".into()]))
        );
        assert_eq!(
            all[16].instruction,
            Instruction::Healthcheck {
                flags: vec![("interval".into(), "5s".into())],
                test: Some(Command::Shell("curl -f localhost".into()))
            }
        );
        match &all[19].instruction {
            Instruction::Copy(c) => {
                assert_eq!(
                    (c.from.as_deref(), c.chown.as_deref()),
                    (Some("build"), Some("1:1"))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_docker_refuses_is_refused_with_its_message() {
        for (text, message) in [
            ("FROM a\nRUNN x\n", "line 2: unknown instruction: RUNN"),
            ("RUN x\n", "line 1: no build stage in current context"),
            ("FROM a b\n", "FROM requires either one or three arguments"),
            (
                "FROM a\nCOPY onlyone\n",
                "COPY requires at least two arguments",
            ),
            ("FROM a\nCOPY --nope=1 a b\n", "Unknown flag: nope"),
            ("FROM a\nADD --from=x a b\n", "Unknown flag: from"),
            (
                "FROM a\nONBUILD FROM b\n",
                "FROM isn't allowed as an ONBUILD trigger",
            ),
            (
                "FROM a\nSHELL /bin/sh -c\n",
                "SHELL requires the arguments to be in JSON form",
            ),
            ("FROM a\nENV =x\n", "ENV names can not be blank"),
            ("FROM a\nENV lonely\n", "ENV must have two arguments"),
            ("FROM a\nWORKDIR\n", "WORKDIR requires exactly one argument"),
            ("FROM a\nHEALTHCHECK CMD\n", "HEALTHCHECK takes NONE"),
        ] {
            let e = steps(text).expect_err(text).to_string();
            assert!(e.contains(message), "{text:?}: {e}");
            assert!(e.starts_with("dockerfile parse error line"), "{e}");
        }
    }

    /// Arbitrary bytes never panic the parser, the instruction typing or
    /// the word lexer (a cheap, deterministic fuzz).
    #[test]
    fn random_input_never_panics() {
        let alphabet: &[u8] = b"FROMRUNCOPY \\`#=\n\t[]\",--$:{}-+ab\r";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 50)) as usize + i) % alphabet.len()])
                .collect();
            if let Ok(file) = crate::parser::parse(&bytes) {
                let _ = parse(&file);
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = crate::shell::words(text, '\\', &|_| Some("v".into()));
            }
        }
    }
}
