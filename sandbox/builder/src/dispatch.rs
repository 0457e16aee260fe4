//! Runs a parsed Dockerfile against a [`Backend`], as moby 20.10's classic
//! builder does (`builder/dockerfile/{builder,evaluator,dispatchers}.go`):
//! stages in order up to the target, one function per instruction, every
//! step's result an image whose `container_config` is its cache key.
//!
//! Every step goes the same way: derive the step's config from the
//! stage's, probe the cache with it (unless `--no-cache`), and on a miss
//! do the work and commit an image recording that config, so history,
//! cache and `Step` lines cannot drift apart. Unlike dockerd, a miss does
//! not stop the probing for the rest of the stage: the image a miss makes
//! is new, so only another lab's build of the same steps at the same time
//! can give it children, and those are what the probes then find. Metadata steps commit without starting anything; the
//! `Running in` they print names the step, as dockerd's never-started
//! container does.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::backend::{Backend, StepContainer};
use crate::config::{Config, Image, short};
use crate::copy::{self, Source};
pub use crate::error::BuildError;
use crate::history;
use crate::instructions::{self, Command, Instruction, Step};
use crate::parser::{self, ParseError};
use crate::progress::Event;
use crate::shell;

/// Triggers an image may make a child run.
const MAX_TRIGGERS: usize = 100;
/// What the build request asks for besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--build-arg K=V`; `None` for `--build-arg K` with `K` unset.
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// Remove a step's container after it succeeds (`--rm`, the default).
    pub remove: bool,
    /// Remove it after it fails too (`--force-rm`).
    pub force_remove: bool,
    /// `--label`s, added as a last LABEL step.
    pub labels: BTreeMap<String, String>,
    /// What images record as `docker_version`.
    pub docker_version: String,
    /// Where sources are spooled (beside the context, never inside it).
    pub scratch: PathBuf,
}

/// A parsed Dockerfile, checked before anything is sent back.
pub struct Build {
    meta_args: Vec<Step>,
    stages: Vec<Vec<Step>>,
    escape: char,
    total: usize,
    options: Options,
}

impl Build {
    /// Parses `dockerfile` and cuts it at the target stage.
    pub fn new(dockerfile: &[u8], options: Options) -> Result<Build, BuildError> {
        let file = parser::parse(dockerfile)?;
        let steps = instructions::parse(&file)?;
        let mut meta_args = Vec::new();
        let mut stages: Vec<Vec<Step>> = Vec::new();
        for step in steps {
            match (&step.instruction, stages.last_mut()) {
                (Instruction::From { .. }, _) => stages.push(vec![step]),
                (_, Some(stage)) => stage.push(step),
                (_, None) => meta_args.push(step),
            }
        }
        if stages.is_empty() {
            return Err(ParseError::Empty.into());
        }
        if let Some(target) = &options.target {
            let at = stages
                .iter()
                .position(|s| stage_name(s).is_some_and(|n| n.eq_ignore_ascii_case(target)))
                .ok_or_else(|| {
                    BuildError::failed(format!(
                        "failed to reach build target {target} in Dockerfile"
                    ))
                })?;
            stages.truncate(at + 1);
        }
        let total = meta_args.len()
            + stages.iter().map(Vec::len).sum::<usize>()
            + usize::from(!options.labels.is_empty());
        Ok(Build {
            meta_args,
            stages,
            escape: file.escape,
            total,
            options,
        })
    }

    /// Runs the build with the context open as `context` (its directory
    /// `context_dir`); the final image.
    pub fn run(
        self,
        context: &File,
        context_dir: &Path,
        backend: &mut dyn Backend,
        progress: &mut dyn FnMut(Event),
    ) -> Result<Image, BuildError> {
        let mut run = Run {
            build: &self,
            context,
            context_dir,
            backend,
            progress,
            step: 0,
            meta: BTreeMap::new(),
            used_args: BTreeSet::new(),
            done: Vec::new(),
        };
        for step in &self.meta_args {
            run.announce(step);
            if let Instruction::Arg(text) = &step.instruction {
                let (key, value) = run.arg(text, &|k| run.meta.get(k).cloned().flatten())?;
                let value = self
                    .options
                    .build_args
                    .get(&key)
                    .cloned()
                    .flatten()
                    .or(value);
                run.used_args.insert(key.clone());
                run.meta.insert(key, value);
            }
        }
        let last = self.stages.len() - 1;
        for (index, steps) in self.stages.iter().enumerate() {
            let mut stage = run.from(&steps[0])?;
            for step in &steps[1..] {
                run.announce(step);
                run.dispatch(&mut stage, &step.instruction)?;
                run.emit_id(&stage);
            }
            if index == last && !self.options.labels.is_empty() {
                let text = self
                    .options
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", quote_label(v)))
                    .collect::<Vec<_>>()
                    .join(" ");
                run.step += 1;
                (run.progress)(Event::Stream(format!(
                    "Step {}/{} : LABEL {text}",
                    run.step, self.total
                )));
                (run.progress)(Event::Stream("\n".into()));
                run.dispatch(&mut stage, &Instruction::Label(text))?;
                run.emit_id(&stage);
            }
            (run.progress)(Event::ImageId(stage.image.id.clone()));
            run.done.push((stage.name.clone(), stage.image.clone()));
        }
        let unused: Vec<&String> = self
            .options
            .build_args
            .keys()
            .filter(|k| !run.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            (run.progress)(Event::Stream(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            )));
        }
        let (_, image) = run.done.pop().expect("a build has a stage");
        Ok(image)
    }

    /// Steps the build counts, as `Step N/M` shows M.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// Proxy variables every build knows without an ARG, never reported as
/// unused.
const PREDEFINED_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

fn stage_name(steps: &[Step]) -> Option<&str> {
    match &steps.first()?.instruction {
        Instruction::From { stage, .. } => stage.as_deref(),
        _ => None,
    }
}

fn quote_label(value: &str) -> String {
    if value.contains(char::is_whitespace) || value.is_empty() {
        format!("{value:?}")
    } else {
        value.to_owned()
    }
}

/// The state of the stage being built.
struct Stage {
    name: Option<String>,
    image: Image,
    config: Config,
    /// ARGs declared in this stage and their values.
    args: BTreeMap<String, Option<String>>,
    cmd_set: bool,
    maintainer: Option<String>,
    /// `--no-cache`: every step is built.
    no_cache: bool,
}

impl Stage {
    fn shell(&self) -> Vec<String> {
        self.config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// What `$VAR` means at this step: the config's `Env`, then the
    /// stage's build arguments.
    fn lookup(&self, key: &str) -> Option<String> {
        self.config
            .env_var(key)
            .map(str::to_owned)
            .or_else(|| self.args.get(key).cloned().flatten())
    }

    /// Build arguments a RUN sees, sorted: those with a value that no ENV
    /// of the same name hides.
    fn run_args(&self) -> Vec<String> {
        self.args
            .iter()
            .filter(|(k, _)| self.config.env_var(k).is_none())
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect()
    }
}

struct Run<'a> {
    build: &'a Build,
    context: &'a File,
    context_dir: &'a Path,
    backend: &'a mut dyn Backend,
    progress: &'a mut dyn FnMut(Event),
    step: usize,
    /// ARGs before the first FROM, with their values.
    meta: BTreeMap<String, Option<String>>,
    used_args: BTreeSet<String>,
    /// Finished stages: their names and images.
    done: Vec<(Option<String>, Image)>,
}

impl Run<'_> {
    fn say(&mut self, text: impl Into<String>) {
        (self.progress)(Event::Stream(text.into()));
    }

    fn announce(&mut self, step: &Step) {
        self.step += 1;
        let line = format!(
            "Step {}/{} : {}",
            self.step, self.build.total, step.node.original
        );
        self.say(line);
        self.say("\n");
    }

    fn emit_id(&mut self, stage: &Stage) {
        let line = format!(" ---> {}\n", stage.image.short_id());
        self.say(line);
    }

    fn expand(
        &self,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, BuildError> {
        Ok(shell::word(text, self.build.escape, lookup)?)
    }

    fn expand_words(
        &self,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, BuildError> {
        Ok(shell::words(text, self.build.escape, lookup)?)
    }

    /// `ARG NAME[=default]`: the name and its default, expanded.
    fn arg(
        &self,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, Option<String>), BuildError> {
        let text = text.trim();
        match text.split_once('=') {
            Some((key, value)) => Ok((key.to_owned(), Some(self.expand(value, lookup)?))),
            None => Ok((text.to_owned(), None)),
        }
    }

    /// `FROM image [AS name]`.
    fn from(&mut self, step: &Step) -> Result<Stage, BuildError> {
        self.announce(step);
        let Instruction::From { image, stage, .. } = &step.instruction else {
            unreachable!("a stage starts with FROM");
        };
        let meta = self.meta.clone();
        let name = self.expand(image, &|k| meta.get(k).cloned().flatten())?;
        if name.is_empty() {
            return Err(BuildError::failed(format!(
                "base name ({image}) should not be blank"
            )));
        }
        let base = if name.eq_ignore_ascii_case("scratch") {
            Image::scratch()
        } else if let Some((_, image)) = self
            .done
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&name)))
        {
            image.clone()
        } else {
            let progress = &mut *self.progress;
            self.backend
                .image(&name, self.build.options.pull, progress)?
        };
        let mut config = base.config();
        let triggers = config.on_build.take().unwrap_or_default();
        let mut stage = Stage {
            name: stage.clone(),
            image: base,
            config,
            args: BTreeMap::new(),
            cmd_set: false,
            maintainer: None,
            no_cache: self.build.options.no_cache,
        };
        self.emit_id(&stage);
        if !triggers.is_empty() {
            if triggers.len() > MAX_TRIGGERS {
                return Err(BuildError::failed(format!(
                    "the base image has {} ONBUILD triggers, more than {MAX_TRIGGERS}",
                    triggers.len()
                )));
            }
            let plural = if triggers.len() == 1 { "" } else { "s" };
            self.say(format!(
                "# Executing {} build trigger{plural}\n",
                triggers.len()
            ));
            for trigger in &triggers {
                let file = parser::parse(trigger.as_bytes())?;
                for node in &file.nodes {
                    let instruction = instructions::typed(node)?;
                    if matches!(
                        instruction,
                        Instruction::From { .. } | Instruction::Onbuild(_)
                    ) {
                        return Err(BuildError::failed(format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            node.instruction.to_uppercase()
                        )));
                    }
                    self.dispatch(&mut stage, &instruction)?;
                }
            }
        }
        Ok(stage)
    }

    fn dispatch(&mut self, stage: &mut Stage, instruction: &Instruction) -> Result<(), BuildError> {
        match instruction {
            Instruction::From { .. } => unreachable!("FROM starts a stage"),
            // ENV A=1 B="two words"
            Instruction::Env(text) => {
                let pairs = self.pairs(text, &|k| stage.lookup(k))?;
                let mut comment = "ENV".to_owned();
                for (k, v) in &pairs {
                    stage.config.set_env(k, v);
                    comment.push_str(&format!(" {k}={v}"));
                }
                self.commit_nop(stage, &comment)
            }
            // LABEL a=b
            Instruction::Label(text) => {
                let pairs = self.pairs(text, &|k| stage.lookup(k))?;
                let mut comment = "LABEL".to_owned();
                let labels = stage.config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in pairs {
                    comment.push_str(&format!(" {k}={v}"));
                    labels.insert(k, v);
                }
                self.commit_nop(stage, &comment)
            }
            // ARG NAME[=default]
            Instruction::Arg(text) => {
                let (key, default) = self.arg(text, &|k| stage.lookup(k))?;
                let value = match self.build.options.build_args.get(&key) {
                    Some(given) => given.clone(),
                    None => default
                        .clone()
                        .or_else(|| self.meta.get(&key).cloned().flatten()),
                };
                self.used_args.insert(key.clone());
                stage.args.insert(key.clone(), value);
                let comment = match default {
                    Some(d) => format!("ARG {key}={d}"),
                    None => format!("ARG {key}"),
                };
                self.commit_nop(stage, &comment)
            }
            // CMD ["executable", "param"] | CMD command param
            Instruction::Cmd(command) => {
                let cmd = self.command(stage, command);
                stage.config.cmd = Some(cmd.clone());
                stage.cmd_set = true;
                self.commit_nop(stage, &format!("CMD {}", history::go_list(&cmd)))
            }
            // ENTRYPOINT ["executable", "param"] | ENTRYPOINT command param
            Instruction::Entrypoint(command) => {
                let entrypoint = self.command(stage, command);
                stage.config.entrypoint = Some(entrypoint.clone());
                if !stage.cmd_set {
                    stage.config.cmd = None;
                }
                self.commit_nop(
                    stage,
                    &format!("ENTRYPOINT {}", history::go_list(&entrypoint)),
                )
            }
            // SHELL ["executable", "param"]
            Instruction::Shell(shell) => {
                stage.config.shell = Some(shell.clone());
                self.commit_nop(stage, &format!("SHELL [{}]", shell.join(" ")))
            }
            // EXPOSE 80/tcp 53/udp 8000-8002
            Instruction::Expose(text) => {
                let ports = self.expand_words(text, &|k| stage.lookup(k))?;
                let exposed = stage.config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for port in &ports {
                    for key in port_keys(port)? {
                        exposed.insert(key, json!({}));
                    }
                }
                self.commit_nop(stage, &format!("EXPOSE {}", ports.join(" ")))
            }
            // VOLUME ["/data"] | VOLUME /data /logs
            Instruction::Volume(args) => {
                let paths = match args {
                    parser::Args::Exec(list) => list
                        .iter()
                        .map(|p| self.expand(p, &|k| stage.lookup(k)))
                        .collect::<Result<Vec<_>, _>>()?,
                    parser::Args::Shell(text) => self.expand_words(text, &|k| stage.lookup(k))?,
                };
                let volumes = stage.config.volumes.get_or_insert_with(BTreeMap::new);
                for path in &paths {
                    if path.trim().is_empty() {
                        return Err(BuildError::failed(
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    volumes.insert(path.clone(), json!({}));
                }
                self.commit_nop(stage, &format!("VOLUME [{}]", paths.join(" ")))
            }
            // USER daemon
            Instruction::User(text) => {
                stage.config.user = self.expand(text, &|k| stage.lookup(k))?;
                let comment = format!("USER {}", stage.config.user);
                self.commit_nop(stage, &comment)
            }
            // STOPSIGNAL SIGQUIT
            Instruction::StopSignal(text) => {
                let signal = self.expand(text, &|k| stage.lookup(k))?;
                if !valid_signal(&signal) {
                    return Err(BuildError::failed(format!("Invalid signal: {signal}")));
                }
                stage.config.stop_signal = signal.clone();
                self.commit_nop(stage, &format!("STOPSIGNAL {signal}"))
            }
            // MAINTAINER name
            Instruction::Maintainer(text) => {
                stage.maintainer = Some(text.clone());
                self.commit_nop(stage, &format!("MAINTAINER {text}"))
            }
            // ONBUILD RUN echo triggered
            Instruction::Onbuild(text) => {
                stage
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(text.clone());
                self.commit_nop(stage, &format!("ONBUILD {text}"))
            }
            // HEALTHCHECK [--interval=5s …] CMD command | HEALTHCHECK NONE
            Instruction::Healthcheck { flags, test } => {
                let health = healthcheck(flags, test.as_ref())?;
                let comment = format!("HEALTHCHECK {}", health.go_value());
                stage.config.healthcheck = Some(health.json());
                self.commit_nop(stage, &comment)
            }
            // WORKDIR /path
            Instruction::Workdir(text) => {
                let dir = self.expand(text, &|k| stage.lookup(k))?;
                let dir = absolute(&stage.config.working_dir, &dir);
                stage.config.working_dir = dir.clone();
                let comment = format!("WORKDIR {dir}");
                self.commit_step(
                    stage,
                    history::nop_word(&stage.shell(), &comment),
                    |run, _, container| Ok(run.backend.make_dirs(container, &dir)?),
                )
            }
            // RUN command | RUN ["executable", "param"]
            Instruction::Run(command) => self.run(stage, command),
            // COPY [--from=stage] [--chown=u:g] [--chmod=644] src… dest
            Instruction::Copy(c) => self.copy(stage, c, "COPY"),
            // ADD [--chown=u:g] [--chmod=644] src… dest
            Instruction::Add(c) => self.copy(stage, c, "ADD"),
        }
    }

    /// `KEY=VALUE …` or `KEY VALUE`, expanded.
    fn pairs(
        &self,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, BuildError> {
        let first = text.split_whitespace().next().unwrap_or_default();
        if !first.contains('=') {
            let (key, value) = text
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or((text, ""));
            return Ok(vec![(key.to_owned(), self.expand(value.trim(), lookup)?)]);
        }
        self.expand_words(text, lookup)?
            .into_iter()
            .map(|word| match word.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                _ => Err(BuildError::failed(format!(
                    "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
                ))),
            })
            .collect()
    }

    fn command(&self, stage: &Stage, command: &Command) -> Vec<String> {
        match command {
            Command::Exec(list) => list.clone(),
            Command::Shell(text) => {
                let mut cmd = stage.shell();
                cmd.push(text.clone());
                cmd
            }
        }
    }

    /// The cached child of the stage's image made by `step`, unless the
    /// cache is off.
    fn probe(&mut self, stage: &mut Stage, step: &Config) -> Result<bool, BuildError> {
        if stage.no_cache {
            return Ok(false);
        }
        match self.backend.probe(&stage.image, step)? {
            Some(hit) => {
                self.say(" ---> Using cache\n");
                stage.image = hit;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The step's config: the stage's, with `cmd` as its Cmd.
    fn step_config(stage: &Stage, cmd: Vec<String>) -> Config {
        let mut config = stage.config.clone();
        config.cmd = Some(cmd);
        config.image = stage.image.id.clone();
        config
    }

    /// A metadata step: probe, else commit an image with no new layer.
    fn commit_nop(&mut self, stage: &mut Stage, comment: &str) -> Result<(), BuildError> {
        let mut step = Run::step_config(stage, history::nop(&stage.shell(), comment));
        if self.probe(stage, &step)? {
            return Ok(());
        }
        let id = new_container_id();
        self.say(format!(" ---> Running in {}\n", short(&id)));
        step.hostname = short(&id).to_owned();
        let json = self.child_json(stage, &step, &id, true);
        stage.image = self.backend.commit(&stage.image, None, json)?;
        if self.build.options.remove {
            self.say(format!("Removing intermediate container {}\n", short(&id)));
        }
        Ok(())
    }

    /// A step that changes files (WORKDIR, COPY, ADD): probe, else make a
    /// container of the stage's image, let `work` change it, commit its
    /// changes as a layer and remove it.
    fn commit_step(
        &mut self,
        stage: &mut Stage,
        cmd: Vec<String>,
        work: impl FnOnce(&mut Self, &Stage, &StepContainer) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let announce = matches!(cmd.last(), Some(c) if c.starts_with("#(nop) WORKDIR"));
        let mut step = Run::step_config(stage, cmd);
        if self.probe(stage, &step)? {
            return Ok(());
        }
        let container = self.backend.create(&stage.image, &step)?;
        if announce {
            self.say(format!(" ---> Running in {}\n", short(&container.id)));
            step.hostname = short(&container.id).to_owned();
        }
        let made = work(self, stage, &container).and_then(|()| {
            let json = self.child_json(stage, &step, &container.id, false);
            Ok(self.backend.commit(&stage.image, Some(&container), json)?)
        });
        let removed = self.backend.remove(&container);
        stage.image = made?;
        removed?;
        if announce && self.build.options.remove {
            self.say(format!(
                "Removing intermediate container {}\n",
                short(&container.id)
            ));
        }
        Ok(())
    }

    /// The config of the image a step makes on the stage's image.
    fn child_json(&self, stage: &Stage, step: &Config, container: &str, empty: bool) -> Value {
        let parent = &stage.image.json;
        let now = now();
        let mut config = stage.config.clone();
        config.image = stage.image.id.clone();
        let mut history = parent["history"].as_array().cloned().unwrap_or_default();
        let mut entry = json!({
            "created": now,
            "created_by": history::created_by(step.cmd.as_deref().unwrap_or_default()),
        });
        if empty {
            entry["empty_layer"] = json!(true);
        }
        history.push(entry);
        let mut json = json!({
            "architecture": parent["architecture"],
            "os": parent["os"],
            "config": config,
            "container": container,
            "container_config": step,
            "created": now,
            "docker_version": self.build.options.docker_version,
            "history": history,
            "rootfs": parent["rootfs"],
        });
        if let Some(variant) = parent.get("variant") {
            json["variant"] = variant.clone();
        }
        if let Some(author) = &stage.maintainer {
            json["author"] = json!(author);
        }
        json
    }

    /// RUN: in a container of the stage's image, with the build arguments
    /// in its environment.
    fn run(&mut self, stage: &mut Stage, command: &Command) -> Result<(), BuildError> {
        if stage.image.is_scratch() {
            return Err(BuildError::failed(
                "RUN needs a base image with a shell: FROM scratch has no files",
            ));
        }
        let cmd = self.command(stage, command);
        let args = stage.run_args();
        let key = if args.is_empty() {
            cmd.clone()
        } else {
            let mut key = vec![format!("|{}", args.len())];
            key.extend(args.iter().cloned());
            key.extend(cmd.iter().cloned());
            key
        };
        let step = Run::step_config(stage, key.clone());
        if self.probe(stage, &step)? {
            return Ok(());
        }
        let mut config = Run::step_config(stage, cmd.clone());
        config.entrypoint = None;
        config.healthcheck = None;
        config.env = Some([config.env.unwrap_or_default(), args].concat());
        let container = self.backend.create(&stage.image, &config)?;
        self.say(format!(" ---> Running in {}\n", short(&container.id)));
        let code = {
            let progress = &mut *self.progress;
            self.backend.run(&container, progress)?
        };
        if code != 0 {
            if self.build.options.force_remove {
                self.backend.remove(&container)?;
                self.say(format!(
                    "Removing intermediate container {}\n",
                    short(&container.id)
                ));
            }
            return Err(BuildError::Failed {
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    cmd.join(" ")
                ),
                code: Some(code),
            });
        }
        let json = self.child_json(stage, &step, &container.id, false);
        stage.image = self.backend.commit(&stage.image, Some(&container), json)?;
        if self.build.options.remove {
            self.backend.remove(&container)?;
            self.say(format!(
                "Removing intermediate container {}\n",
                short(&container.id)
            ));
        }
        Ok(())
    }

    /// COPY and ADD.
    fn copy(
        &mut self,
        stage: &mut Stage,
        c: &instructions::Copy,
        instruction: &str,
    ) -> Result<(), BuildError> {
        let lookup = |k: &str| stage.lookup(k);
        let mut paths = match &c.paths {
            parser::Args::Exec(list) => list
                .iter()
                .map(|p| self.expand(p, &lookup))
                .collect::<Result<Vec<_>, _>>()?,
            parser::Args::Shell(text) => self.expand_words(text, &lookup)?,
        };
        let dest = paths.pop().unwrap_or_default();
        if paths.is_empty() {
            return Err(BuildError::failed(format!(
                "{instruction} requires at least two arguments"
            )));
        }
        let mode = c
            .chmod
            .as_deref()
            .map(|m| {
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| BuildError::failed(format!("invalid chmod parameter: {m}")))
            })
            .transpose()?;
        let is_url = |p: &String| p.contains("://");
        if instruction == "COPY" && paths.iter().any(is_url) {
            return Err(BuildError::failed(
                "COPY failed: source can't be a URL for COPY: use ADD to fetch a file",
            ));
        }
        let scratch = self.build.options.scratch.clone();
        let mut sources: Vec<Source> = match &c.from {
            None => {
                let (urls, local): (Vec<String>, Vec<String>) =
                    paths.iter().cloned().partition(is_url);
                let mut sources =
                    copy::from_context(self.context, self.context_dir, &local, &scratch)?;
                for url in &urls {
                    let backend = &mut *self.backend;
                    sources.push(copy::from_url(url, &scratch, |body| {
                        backend
                            .fetch(url, body)
                            .map_err(|e| BuildError::failed(format!("ADD failed: {e}")))
                    })?);
                }
                sources
            }
            Some(from) => {
                let image = self.source_image(from)?;
                let mut sources = Vec::new();
                for path in &paths {
                    let backend = &mut *self.backend;
                    sources.push(copy::from_image(path, &scratch, |spool| {
                        backend.copy_out(&image, path, spool).map_err(|e| {
                            BuildError::failed(format!("COPY failed: stat {path}: {e}"))
                        })
                    })?);
                }
                sources
            }
        };
        let source = match sources.as_slice() {
            [one] if one.is_dir => format!("dir:{}", one.sum),
            [one] => format!("file:{}", one.sum),
            many => {
                let sums: Vec<&str> = many.iter().map(|s| s.sum.as_str()).collect();
                format!("multi:{}", hex_sha256(sums.join(",").as_bytes()))
            }
        };
        let many = sources.len() > 1;
        if many && !dest.ends_with('/') {
            return Err(BuildError::failed(format!(
                "When using {instruction} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let comment = history::copy(instruction, c.chown.as_deref(), &source, &dest);
        let target = absolute(&stage.config.working_dir, &dest);
        let trailing = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
        let chown = c.chown.clone();
        let unpack = instruction == "ADD";
        self.commit_step(
            stage,
            history::nop_word(&stage.shell(), &comment),
            |run, _, container| {
                let owner = match &chown {
                    Some(spec) => run.owner(container, spec)?,
                    None => (0, 0),
                };
                let into_dir = trailing
                    || many
                    || sources.first().is_some_and(|s| s.is_dir)
                    || run.backend.is_dir(container, &target)? == Some(true);
                for source in &mut sources {
                    if unpack
                        && !source.fetched
                        && let Some(mut archive) = source.archive()?
                    {
                        run.backend.copy_into(container, &target, &mut archive)?;
                        continue;
                    }
                    let (dir, rename) = if into_dir {
                        (target.clone(), None)
                    } else {
                        let path = Path::new(&target);
                        let dir = path
                            .parent()
                            .map_or("/".into(), |p| p.display().to_string());
                        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                        (dir, name)
                    };
                    let mut tar = tempfile::tempfile_in(&run.build.options.scratch)
                        .map_err(|e| BuildError::failed(format!("cannot spool a copy: {e}")))?;
                    source.write_entries(rename.as_deref(), owner, mode, &mut tar)?;
                    use std::io::Seek;
                    tar.seek(std::io::SeekFrom::Start(0))
                        .map_err(|e| BuildError::failed(format!("cannot spool a copy: {e}")))?;
                    run.backend.copy_into(container, &dir, &mut tar)?;
                }
                Ok(())
            },
        )
    }

    /// The image `--from` names: a finished stage by name or index, or an
    /// image.
    fn source_image(&mut self, from: &str) -> Result<Image, BuildError> {
        if let Some((_, image)) = self
            .done
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(from)))
        {
            return Ok(image.clone());
        }
        if let Ok(index) = from.parse::<usize>() {
            return self.done.get(index).map(|(_, i)| i.clone()).ok_or_else(|| {
                BuildError::failed(format!(
                    "invalid from flag value {from}: refers to current or a later build stage"
                ))
            });
        }
        let progress = &mut *self.progress;
        Ok(self
            .backend
            .image(from, self.build.options.pull, progress)?)
    }

    /// `--chown=user:group` as ids, names looked up in the image's
    /// `/etc/passwd` and `/etc/group`.
    fn owner(&mut self, container: &StepContainer, spec: &str) -> Result<(u64, u64), BuildError> {
        let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
        let lookup = |file: &str, name: &str, what: &str| -> Result<u64, BuildError> {
            if let Ok(id) = name.parse::<u64>() {
                return Ok(id);
            }
            file.lines()
                .find_map(|line| {
                    let mut fields = line.split(':');
                    (fields.next() == Some(name))
                        .then(|| fields.nth(1).and_then(|id| id.parse().ok()))
                        .flatten()
                })
                .ok_or_else(|| {
                    BuildError::failed(format!(
                        "unable to convert uid/gid chown string to host mapping: can't find {what} for {what_name} {name}: no such {what_name}: {name}",
                        what_name = if what == "uid" { "user" } else { "group" }
                    ))
                })
        };
        let passwd = self.backend.read_file(container, "/etc/passwd")?;
        let uid = lookup(&passwd, user, "uid")?;
        let gid = if group.is_empty() {
            if user.parse::<u64>().is_ok() {
                uid
            } else {
                passwd
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.first() == Some(&user)).then(|| f.get(3).and_then(|g| g.parse().ok()))
                    })
                    .flatten()
                    .unwrap_or(uid)
            }
        } else {
            let groups = self.backend.read_file(container, "/etc/group")?;
            lookup(&groups, group, "gid")?
        };
        Ok((uid, gid))
    }
}

/// `dir` made absolute against the working directory, `.` and `..`
/// resolved, a trailing `/` dropped.
fn absolute(working_dir: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_owned()
    } else {
        format!(
            "{}/{dir}",
            if working_dir.is_empty() {
                "/"
            } else {
                working_dir
            }
        )
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `80`, `80/udp`, `8000-8002/tcp` as ExposedPorts keys.
fn port_keys(spec: &str) -> Result<Vec<String>, BuildError> {
    let (ports, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let protocol = protocol.to_ascii_lowercase();
    let bad = || BuildError::failed(format!("Invalid containerPort: {spec}"));
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(BuildError::failed(format!("Invalid proto: {protocol}")));
    }
    let (low, high) = ports.split_once('-').unwrap_or((ports, ports));
    let low: u16 = low.parse().map_err(|_| bad())?;
    let high: u16 = high.parse().map_err(|_| bad())?;
    if low > high || high - low > 1024 {
        return Err(bad());
    }
    Ok((low..=high).map(|p| format!("{p}/{protocol}")).collect())
}

fn valid_signal(signal: &str) -> bool {
    if let Ok(n) = signal.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = signal.trim_start_matches("SIG");
    [
        "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "KILL", "PIPE",
        "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN",
        "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ]
    .contains(&name)
        || name.starts_with("RTMIN")
        || name.starts_with("RTMAX")
}

/// A HEALTHCHECK as Docker keeps it.
struct Health {
    test: Vec<String>,
    /// Nanoseconds.
    interval: u64,
    timeout: u64,
    start_period: u64,
    retries: u64,
}

impl Health {
    /// The config's `Healthcheck`: Go's `omitempty` drops zero fields.
    fn json(&self) -> Value {
        let mut value = json!({ "Test": self.test });
        for (key, n) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("Retries", self.retries),
        ] {
            if n != 0 {
                value[key] = json!(n);
            }
        }
        value
    }

    /// What dockerd records, Go's `%q` of the struct pointer:
    /// `&{["CMD-SHELL" "curl -f localhost"] "5s" "0s" "0s" '\x03'}`.
    fn go_value(&self) -> String {
        format!(
            "&{{{} \"{}\" \"{}\" \"{}\" {}}}",
            history::go_list(&self.test),
            go_duration(self.interval),
            go_duration(self.timeout),
            go_duration(self.start_period),
            go_rune(self.retries)
        )
    }
}

fn healthcheck(flags: &[(String, String)], test: Option<&Command>) -> Result<Health, BuildError> {
    let flag = |name: &str| {
        flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let duration = |name: &str| -> Result<u64, BuildError> {
        match flag(name) {
            None => Ok(0),
            Some(text) => {
                let n = parse_duration(text).ok_or_else(|| {
                    BuildError::failed(format!("time: invalid duration \"{text}\""))
                })?;
                if n != 0 && n < 1_000_000 {
                    return Err(BuildError::failed(format!(
                        "Interval \"{name}\" cannot be less than 1ms"
                    )));
                }
                Ok(n)
            }
        }
    };
    let test = match test {
        None => vec!["NONE".to_owned()],
        Some(Command::Shell(text)) => vec!["CMD-SHELL".to_owned(), text.clone()],
        Some(Command::Exec(list)) => [vec!["CMD".to_owned()], list.clone()].concat(),
    };
    let retries = match flag("retries") {
        None => 0,
        Some(r) => r.parse::<u64>().map_err(|_| {
            BuildError::failed(format!("strconv.ParseInt: parsing \"{r}\": invalid syntax"))
        })?,
    };
    Ok(Health {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        retries,
    })
}

/// Go's `time.ParseDuration` for what Dockerfiles use (`30s`, `1m30s`,
/// `500ms`, `1.5h`): nanoseconds.
fn parse_duration(text: &str) -> Option<u64> {
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    (total < 1e18).then_some(total as u64)
}

/// Go's `time.Duration.String`: `1m30s`, `500ms`, `0s`.
fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let trim = |v: f64| {
        let text = format!("{v:.9}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", trim(ns as f64 / 1e3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim(ns as f64 / 1e6));
    }
    let hours = ns / 3_600_000_000_000;
    let minutes = ns / 60_000_000_000 % 60;
    let seconds = (ns % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim(seconds)));
    out
}

/// Go's `%q` of an int: a quoted rune (`'\x03'`, `'a'`).
fn go_rune(n: u64) -> String {
    match char::from_u32(n as u32) {
        Some(c) if n < 0x20 || n == 0x7f => format!("'\\x{:02x}'", c as u32),
        Some('\'') => "'\\''".into(),
        Some('\\') => "'\\\\'".into(),
        Some(c) => format!("'{c}'"),
        None => format!("'\\x{n:02x}'"),
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A container ID as Docker makes them: 64 random hex digits.
pub fn new_container_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    if let Ok(mut random) = File::open("/dev/urandom") {
        let _ = random.read_exact(&mut bytes);
    }
    hex::encode(bytes)
}

/// Now in RFC 3339 with nanoseconds, as Docker writes `created`.
fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_runes_print_as_go_does() {
        assert_eq!(parse_duration("5s"), Some(5_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("5 s"), None);
        assert_eq!(parse_duration("x"), None);
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_rune(3), "'\\x03'");
        assert_eq!(go_rune(0), "'\\x00'");
        let health = healthcheck(
            &[
                ("interval".into(), "5s".into()),
                ("retries".into(), "3".into()),
            ],
            Some(&Command::Shell("echo ok".into())),
        )
        .expect("health");
        // As dockerd 20.10 recorded the same instruction here.
        assert_eq!(
            health.go_value(),
            r#"&{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" '\x03'}"#
        );
        assert_eq!(
            health.json(),
            json!({"Test": ["CMD-SHELL", "echo ok"], "Interval": 5_000_000_000u64, "Retries": 3})
        );
    }

    #[test]
    fn paths_ports_and_signals() {
        assert_eq!(absolute("/app", "sub/../x/"), "/app/x");
        assert_eq!(absolute("", "."), "/");
        assert_eq!(absolute("/app", "/etc/../../srv"), "/srv");
        assert_eq!(port_keys("80").expect("port"), ["80/tcp"]);
        assert_eq!(port_keys("53/UDP").expect("udp"), ["53/udp"]);
        assert_eq!(port_keys("8000-8002").expect("range").len(), 3);
        assert!(port_keys("http").is_err());
        assert!(port_keys("80/icmp").is_err());
        assert!(valid_signal("SIGQUIT") && valid_signal("TERM") && valid_signal("9"));
        assert!(!valid_signal("SIGNOPE") && !valid_signal("99"));
    }
}
