//! A class at once: N students against one real release `layerlab serve`
//! on loopback, each with a CLI-made account and token, opening the lesson
//! page, starting a lab, typing into its terminal over the websocket (a
//! keystroke every 200 ms, timed to its echo; `ls /` every 5 s), pressing
//! Check every 10 s, and stopping the lab after a fixed time.
//!
//! Phases: for each class size, starts spread evenly over a minute; then
//! the largest class starting in the same second; then that burst again
//! with the server killed (SIGKILL) in the middle and restarted on the
//! same data directory and store, after which every lab must be adopted
//! or cleaned up with its reason, every account and recorded attempt must
//! still be there, and every student's terminal must reopen and echo.
//!
//! `cargo bench -p server --bench class` (root; `make bench-class`).
//! Labs come from the catalog store in `LAYERLAB_CLASS_STORE` (default
//! the test catalog, /var/tmp/layerlab/test-data/store), which must be
//! built already. `LAYERLAB_CLASS_SIZES` (default 50,100,200),
//! `LAYERLAB_CLASS_PLAY` (how long each student works once its lab is
//! ready, default 60s), `LAYERLAB_CLASS_SPREAD` (default 60s) and
//! `LAYERLAB_CLASS_PHASES` (default spread,burst,crash) change the run.

#[path = "../common/mod.rs"]
mod common;
mod measure;
mod server;
mod student;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use measure::{Failures, Samples, Usage, mib};
use server::{Account, Leftovers, Server, ServerConfig};
use student::{Class, LESSON, Plan, Report};

/// What the environment asks this run to do.
struct Settings {
    sizes: Vec<usize>,
    play: Duration,
    spread: Duration,
    phases: Vec<String>,
    store_dir: PathBuf,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
        let duration = |name: &str, default: &str| {
            humantime::parse_duration(&var(name, default))
                .with_context(|| format!("{name} must be a duration such as 60s"))
        };
        let sizes = var("LAYERLAB_CLASS_SIZES", "50,100,200")
            .split(',')
            .map(|n| n.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .context("LAYERLAB_CLASS_SIZES must be numbers separated by commas, e.g. 50,100,200")?;
        let phases: Vec<String> = var("LAYERLAB_CLASS_PHASES", "spread,burst,crash")
            .split(',')
            .map(|p| p.trim().to_owned())
            .collect();
        if let Some(unknown) = phases
            .iter()
            .find(|p| !["spread", "burst", "crash"].contains(&p.as_str()))
        {
            bail!("LAYERLAB_CLASS_PHASES: {unknown:?} is not spread, burst or crash");
        }
        if sizes.is_empty() || sizes.contains(&0) {
            bail!("LAYERLAB_CLASS_SIZES needs class sizes above 0");
        }
        Ok(Settings {
            sizes,
            play: duration("LAYERLAB_CLASS_PLAY", "60s")?,
            spread: duration("LAYERLAB_CLASS_SPREAD", "60s")?,
            phases,
            store_dir: var("LAYERLAB_CLASS_STORE", "/var/tmp/layerlab/test-data/store").into(),
        })
    }

    fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }

    /// The phases to run, in order.
    fn plan(&self) -> Vec<Phase> {
        let mut plan = Vec::new();
        let wants = |name: &str| self.phases.iter().any(|p| p == name);
        if wants("spread") {
            plan.extend(self.sizes.iter().map(|&n| Phase {
                n,
                starts: Starts::Spread(self.spread),
                crash: false,
            }));
        }
        for (name, crash) in [("burst", false), ("crash", true)] {
            if wants(name) {
                plan.push(Phase {
                    n: self.largest(),
                    starts: Starts::Burst,
                    crash,
                });
            }
        }
        plan
    }
}

#[derive(Debug, Clone, Copy)]
enum Starts {
    /// Evenly over this long.
    Spread(Duration),
    /// All in the same instant.
    Burst,
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    n: usize,
    starts: Starts,
    /// Kill the server with SIGKILL halfway through and restart it.
    crash: bool,
}

impl Phase {
    fn name(&self) -> String {
        let starts = match self.starts {
            Starts::Spread(over) => format!("spread over {}", humantime::format_duration(over)),
            Starts::Burst => "burst".to_owned(),
        };
        let crash = if self.crash { " + kill -9" } else { "" };
        format!("{} labs, {starts}{crash}", self.n)
    }

    fn start_offset(&self, index: usize) -> Duration {
        match self.starts {
            Starts::Spread(over) => over.mul_f64(index as f64 / self.n as f64),
            Starts::Burst => Duration::ZERO,
        }
    }
}

/// One phase's figures.
struct Row {
    phase: Phase,
    started: usize,
    /// `POST /api/sessions` answered.
    admitted: Samples,
    start: Samples,
    /// The server's own start-to-ready time (`took_ms` of "lab ready").
    server_start: Samples,
    keys: Samples,
    commands: Samples,
    checks: Samples,
    failures: Failures,
    usage: Usage,
    server_cpu: Duration,
}

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    if !settings.store_dir.exists() {
        bail!(
            "no catalog store at {}; build it with `layerlab images build --data-dir {}` \
             (make unit does), or set LAYERLAB_CLASS_STORE",
            settings.store_dir.display(),
            settings
                .store_dir
                .parent()
                .unwrap_or(&settings.store_dir)
                .display()
        );
    }
    std::fs::create_dir_all("/var/tmp/layerlab")?;
    let work = tempfile::Builder::new()
        .prefix("class-")
        .tempdir_in("/var/tmp/layerlab")?;
    let largest = settings.largest();
    let config = ServerConfig {
        data_dir: work.path().join("data"),
        store_dir: settings.store_dir.clone(),
        listen: std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?,
        cgroup_parent: format!("layerlab-class-{}", std::process::id()),
        max_labs: largest,
        memory_overcommit: overcommit_for(largest),
    };
    let _leftovers = Leftovers {
        data_dir: config.data_dir.clone(),
        cgroup_parent: config.cgroup_parent.clone(),
    };
    std::fs::create_dir_all(&config.data_dir)?;
    println!(
        "class: up to {largest} students on {} (max-labs {largest}, lab memory overcommit {:.2}); \
         each works {} once its lab is ready",
        config.url(),
        config.memory_overcommit,
        humantime::format_duration(settings.play)
    );
    let began = Instant::now();
    // The instructor first and alone: it makes the database, and two
    // commands migrating a new database at once collide.
    let teacher =
        server::add_accounts(&config.data_dir, &["teacher".to_owned()], "instructor")?.remove(0);
    let names: Vec<String> = (1..=largest).map(|i| format!("student{i:03}")).collect();
    let students = server::add_accounts(&config.data_dir, &names, "student")?;
    println!(
        "{} student accounts and an instructor made with `layerlab user add` and `token create` in {:.1} s",
        students.len(),
        began.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    let mut crashes = Vec::new();
    for phase in settings.plan() {
        println!("\n{} …", phase.name());
        let (row, crash) = runtime.block_on(run_phase(
            &config,
            &students[..phase.n],
            &teacher,
            phase,
            settings.play,
        ))?;
        print_rows(std::slice::from_ref(&row));
        rows.push(row);
        crashes.extend(crash);
    }
    println!("\n== class benchmark ({} students at most) ==", largest);
    print_rows(&rows);
    for crash in &crashes {
        crash.print();
    }
    let failed: usize = rows.iter().map(|r| r.failures.total()).sum::<usize>()
        + crashes.iter().map(|c| c.losses.len()).sum::<usize>();
    println!("\nerrors and losses in all: {failed} (target 0)");
    Ok(())
}

/// A lab memory overcommit that admits `labs` labs of the lessons' default
/// limit on this machine's memory budget.
fn overcommit_for(labs: usize) -> f64 {
    let usable = measure::mem_total().saturating_sub(1 << 30).max(1);
    let wanted = (labs as u64 + 1) * host::SandboxLimits::default().memory_bytes;
    (wanted as f64 / usable as f64).max(1.0)
}

async fn run_phase(
    config: &ServerConfig,
    students: &[Account],
    teacher: &Account,
    phase: Phase,
    play: Duration,
) -> Result<(Row, Option<Crash>)> {
    let mut server = tokio::task::block_in_place(|| Server::start(config))?;
    let sampler = measure::Sampler::start(server.pid());
    let class = Arc::new(Class {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(students.len())
            .build()?,
        url: config.url(),
        outage: Default::default(),
        acked_checks: students.iter().map(|_| AtomicU64::new(0)).collect(),
    });
    let baseline = attempts(&class, teacher).await?;
    let t0 = Instant::now() + Duration::from_secs(1);
    let handles: Vec<_> = students
        .iter()
        .enumerate()
        .map(|(index, account)| {
            let plan = Plan {
                index,
                of: students.len(),
                starts_at: t0 + phase.start_offset(index),
                play,
            };
            tokio::spawn(student::attend(class.clone(), account.clone(), plan))
        })
        .collect();
    let mut crash = None;
    let mut first_log = Vec::new();
    let mut cpu_before_crash = Duration::ZERO;
    if phase.crash {
        tokio::time::sleep_until((t0 + play / 2).into()).await;
        let (restarted, found, old_log, old_cpu) =
            kill_and_restart(config, server, &class, teacher, students, &sampler).await?;
        server = restarted;
        crash = Some(found);
        first_log = old_log;
        cpu_before_crash = old_cpu;
    }
    let mut reports = Vec::new();
    for handle in handles {
        reports.push(handle.await.context("a student's task panicked")?);
    }
    if let Some(crash) = crash.as_mut() {
        crash.into_run = crash.killed_at.duration_since(t0);
        crash
            .settle(&class, teacher, students, &reports, &baseline)
            .await?;
    }
    let server_cpu = cpu_before_crash + measure::process_cpu(server.pid());
    let usage = sampler.finish();
    let log = tokio::task::block_in_place(|| server.stop())?;
    let server_start = took_ms(if phase.crash { &first_log } else { &log });
    Ok((
        Row::from_reports(phase, &reports, server_start, usage, server_cpu),
        crash,
    ))
}

impl Row {
    fn from_reports(
        phase: Phase,
        reports: &[Report],
        server_start: Samples,
        usage: Usage,
        server_cpu: Duration,
    ) -> Row {
        let mut row = Row {
            phase,
            started: 0,
            admitted: Samples::default(),
            start: Samples::default(),
            server_start,
            keys: Samples::default(),
            commands: Samples::default(),
            checks: Samples::default(),
            failures: Failures::default(),
            usage,
            server_cpu,
        };
        for report in reports {
            if let Some(start) = report.start {
                row.started += 1;
                row.start.push(start);
            }
            if let Some(admitted) = report.admitted {
                row.admitted.push(admitted);
            }
            row.keys.extend(&report.keys);
            row.commands.extend(&report.commands);
            row.checks.extend(&report.checks);
            for failure in &report.failures {
                row.failures.add(failure);
            }
        }
        row
    }
}

/// The server's start-to-ready times from its "lab ready" lines.
fn took_ms(log: &[String]) -> Samples {
    let mut samples = Samples::default();
    for line in log.iter().filter(|l| l.contains("lab ready")) {
        if let Some(took) = line
            .split("took_ms=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
        {
            samples.push(Duration::from_millis(took));
        }
    }
    samples
}

fn print_rows(rows: &[Row]) {
    println!(
        "{:<34} {:>8} {:>15} {:>15} {:>15} {:>13} {:>13} {:>13} {:>7}",
        "phase",
        "ready",
        "POST answered",
        "start p50/p99",
        "(server's own)",
        "echo p50/p99",
        "ls p50/p99",
        "check p50/p99",
        "errors"
    );
    for r in rows {
        println!(
            "{:<34} {:>8} {:>15} {:>15} {:>15} {:>13} {:>13} {:>13} {:>7}",
            r.phase.name(),
            format!("{}/{}", r.started, r.phase.n),
            r.admitted.p50_p99(),
            r.start.p50_p99(),
            r.server_start.p50_p99(),
            r.keys.p50_p99(),
            r.commands.p50_p99(),
            r.checks.p50_p99(),
            r.failures.total(),
        );
    }
    println!(
        "{:<34} {:>14} {:>26} {:>16} {:>15} {:>9} {:>14}",
        "", "server RSS", "host memory used", "server CPU", "host CPU (peak)", "load", "samples"
    );
    for r in rows {
        let u = &r.usage;
        println!(
            "{:<34} {:>10} MiB {:>14} → {:>5} MiB {:>6.1} s ({:>3.0} %) {:>5.0} % ({:>3.0} %) {:>9.2} {:>14}",
            r.phase.name(),
            mib(u.server_rss_peak),
            mib(u.host_used_before),
            mib(u.host_used_peak),
            r.server_cpu.as_secs_f64(),
            100.0 * r.server_cpu.as_secs_f64() / u.wall.as_secs_f64(),
            100.0 * u.host_busy,
            100.0 * u.host_busy_peak,
            u.load_peak,
            format!("{} keys", r.keys.len()),
        );
        for line in r.failures.lines() {
            println!("    error: {line}");
        }
    }
}

/// Attempts in the lesson's gradebook per student, read as the instructor.
async fn attempts(class: &Class, teacher: &Account) -> Result<BTreeMap<String, i64>> {
    let book = get_json(class, teacher, &format!("/api/lessons/{LESSON}/grades")).await?;
    let students = book["students"]
        .as_array()
        .with_context(|| format!("no students in the gradebook: {book}"))?;
    Ok(students
        .iter()
        .map(|s| {
            let tasks = s["tasks"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let n = tasks.iter().filter_map(|t| t["attempts"].as_i64()).sum();
            (s["name"].as_str().unwrap_or("?").to_owned(), n)
        })
        .collect())
}

/// What a kill -9 in the middle of the class showed.
struct Crash {
    labs: usize,
    killed_at: Instant,
    into_run: Duration,
    restart: Duration,
    /// The restarted server's "sandboxes/sessions found at start-up" lines,
    /// reduced to counts.
    start_up: Vec<String>,
    /// Per student: attempts acknowledged before the kill.
    acked_at_kill: Vec<u64>,
    recorded_before_kill: BTreeMap<String, i64>,
    recorded_after_restart: BTreeMap<String, i64>,
    /// Filled once the class has ended.
    labs_after_restart: BTreeMap<String, usize>,
    accounts_ok: usize,
    reconnects: Samples,
    outage_failures: usize,
    /// Over the whole phase: checks answered, and attempts the gradebook
    /// gained.
    acked_total: u64,
    recorded_total: i64,
    losses: Vec<String>,
}

async fn kill_and_restart(
    config: &ServerConfig,
    server: Server,
    class: &Class,
    teacher: &Account,
    students: &[Account],
    sampler: &measure::Sampler,
) -> Result<(Server, Crash, Vec<String>, Duration)> {
    let recorded_before_kill = attempts(class, teacher).await?;
    let labs = running_labs(&server.log());
    class.outage.begin();
    let acked_at_kill: Vec<u64> = class
        .acked_checks
        .iter()
        .map(|n| n.load(Ordering::SeqCst))
        .collect();
    let cpu = measure::process_cpu(server.pid());
    let killed = Instant::now();
    let old_log = tokio::task::block_in_place(|| server.crash())?;
    println!("  killed the server (kill -9) with {labs} labs running");
    let restarted = tokio::task::block_in_place(|| Server::start(config))?;
    let restart = killed.elapsed();
    sampler.server_pid.store(restarted.pid(), Ordering::Relaxed);
    class.outage.end();
    let recorded_after_restart = attempts(class, teacher).await?;
    let start_up = restarted
        .log()
        .iter()
        .filter(|l| l.contains("found at start-up"))
        .map(|l| summarize_start_up(l))
        .collect();
    println!("  restarted in {:.2} s", restart.as_secs_f64());
    let mut losses = Vec::new();
    let mut accounts_ok = 0;
    for account in students.iter().chain([teacher]) {
        match who_is(class, account).await {
            Ok(name) if name == account.name => accounts_ok += 1,
            Ok(name) => losses.push(format!("{}'s token now names {name:?}", account.name)),
            Err(err) => losses.push(format!("{}: {err:#}", account.name)),
        }
    }
    let crash = Crash {
        labs,
        killed_at: killed,
        into_run: Duration::ZERO,
        restart,
        start_up,
        acked_at_kill,
        recorded_before_kill,
        recorded_after_restart,
        labs_after_restart: BTreeMap::new(),
        accounts_ok,
        reconnects: Samples::default(),
        outage_failures: 0,
        acked_total: 0,
        recorded_total: 0,
        losses,
    };
    Ok((restarted, crash, old_log, cpu))
}

/// The account name `account`'s token signs in as (`GET /api/me`).
async fn who_is(class: &Class, account: &Account) -> Result<String> {
    let me = get_json(class, account, "/api/me").await?;
    Ok(me["name"].as_str().unwrap_or_default().to_owned())
}

/// `GET path` as `account`, a success's JSON.
async fn get_json(class: &Class, account: &Account, path: &str) -> Result<serde_json::Value> {
    Ok(class
        .http
        .get(format!("{}{path}", class.url))
        .bearer_auth(&account.token)
        .timeout(Duration::from_secs(60))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Labs ready and not yet removed, by the server's log.
fn running_labs(log: &[String]) -> usize {
    let ready = log.iter().filter(|l| l.contains("lab ready")).count();
    let removed = log
        .iter()
        .filter(|l| l.contains("lab machine removed"))
        .count();
    ready.saturating_sub(removed)
}

/// "sandboxes found at start-up adopted=[a, b] cleaned=[]" as
/// "sandboxes found at start-up: 2 adopted, 0 cleaned".
fn summarize_start_up(line: &str) -> String {
    let what = line
        .split(" found at start-up")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .unwrap_or("?");
    let counts: Vec<String> = line
        .split_whitespace()
        .filter_map(|field| field.split_once("=["))
        .map(|(name, _)| {
            let list = line
                .split(&format!("{name}=["))
                .nth(1)
                .and_then(|rest| rest.split(']').next())
                .unwrap_or("");
            let n = if list.trim().is_empty() {
                0
            } else {
                list.split(',').count()
            };
            format!("{n} {name}")
        })
        .collect();
    format!("{what} found at start-up: {}", counts.join(", "))
}

impl Crash {
    /// Once the class has ended: what became of the labs, the accounts,
    /// the attempts and the terminals.
    async fn settle(
        &mut self,
        class: &Class,
        teacher: &Account,
        students: &[Account],
        reports: &[Report],
        baseline: &BTreeMap<String, i64>,
    ) -> Result<()> {
        for report in reports {
            let state = match (&report.start, &report.lab_after_restart) {
                (None, _) => "without a lab (its start had failed)".to_owned(),
                (Some(_), Some(state)) => state.clone(),
                (Some(_), None) => "not seen by its student after the restart".to_owned(),
            };
            *self.labs_after_restart.entry(state).or_default() += 1;
            if let Some(took) = report.reconnect {
                self.reconnects.push(took);
            }
            self.outage_failures += report.outage_failures;
        }
        for (account, acked) in students.iter().zip(&self.acked_at_kill) {
            let after = self
                .recorded_after_restart
                .get(&account.name)
                .copied()
                .unwrap_or(0)
                - baseline.get(&account.name).copied().unwrap_or(0);
            if after < *acked as i64 {
                self.losses.push(format!(
                    "{}: {acked} checks answered before the kill, {after} recorded after the restart",
                    account.name
                ));
            }
            let before = self.recorded_before_kill.get(&account.name).copied();
            let after = self.recorded_after_restart.get(&account.name).copied();
            if before > after {
                self.losses.push(format!(
                    "{}: {before:?} attempts in the gradebook before the kill, {after:?} after",
                    account.name
                ));
            }
        }
        let recorded = attempts(class, teacher).await?;
        for (account, acked) in students.iter().zip(&class.acked_checks) {
            let acked = acked.load(Ordering::SeqCst);
            let gained = recorded.get(&account.name).copied().unwrap_or(0)
                - baseline.get(&account.name).copied().unwrap_or(0);
            self.acked_total += acked;
            self.recorded_total += gained;
            if gained < acked as i64 {
                self.losses.push(format!(
                    "{}: {acked} checks answered in the class, {gained} attempts recorded",
                    account.name
                ));
            }
        }
        Ok(())
    }

    fn print(&self) {
        println!(
            "\n== kill -9 with {} labs running, {:.0} s into the class ==",
            self.labs,
            self.into_run.as_secs_f64()
        );
        println!(
            "restarted and listening {:.2} s after the kill",
            self.restart.as_secs_f64()
        );
        for line in &self.start_up {
            println!("  {line}");
        }
        let states: Vec<String> = self
            .labs_after_restart
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        println!(
            "labs as the restarted server reports them: {}",
            states.join(", ")
        );
        println!(
            "attempts in the gradebook: {} before the kill, {} after the restart; \
             {} checks answered before the kill",
            self.recorded_before_kill.values().sum::<i64>(),
            self.recorded_after_restart.values().sum::<i64>(),
            self.acked_at_kill.iter().sum::<u64>(),
        );
        println!(
            "over the whole class: {} checks answered, {} attempts recorded",
            self.acked_total, self.recorded_total
        );
        println!(
            "accounts answering with their token after the restart: {} (students and the instructor)",
            self.accounts_ok
        );
        println!(
            "terminals reopened and echoing after the restart: {} (p50/p99 {} ms from the restart)",
            self.reconnects.len(),
            self.reconnects.p50_p99()
        );
        println!(
            "failures while the server was down (expected, not errors): {}",
            self.outage_failures
        );
        for loss in &self.losses {
            println!("  LOSS: {loss}");
        }
    }
}
