//! Grading in the server: runs a task's checks on a lab through the
//! `grader` crate, records attempts and passes, reveals hints, and computes
//! scores and gradebooks.
//!
//! Rules kept here:
//! - At most one check run per lab at a time. A manual check waits briefly
//!   for a run in progress; a continuous-mode run skips a busy lab. Manual
//!   checks are also rate-limited per user, continuous runs per lab, so
//!   runs never pile up. A manual check of a task the same user is
//!   having checked already is refused, not run and recorded again.
//! - Every manual attempt is recorded; continuous mode records only the
//!   run that passes a task (a re-check every 2 s is not an attempt).
//! - A passed task stays passed, whatever later runs say, and reveals no
//!   more hints (they could only cost points).
//! - A score is the points of the passed tasks (as the course gives them
//!   now) minus the costs recorded for revealed hints, never below zero.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};
use host::SandboxHost;
use serde::Serialize;

use crate::auth::limits::{seconds, wait_secs};
use crate::db::{Db, DbError, Lab, NewAttempt, UserRow};
use crate::metrics;

/// Manual checks per user: a burst of 5, then one every 2 seconds.
const MANUAL_BURST: u32 = 5;
const MANUAL_PERIOD: Duration = Duration::from_secs(2);
/// Continuous checks per lab: the page asks every 2 seconds; a client
/// asking faster is answered "nothing new" without a run.
const AUTO_BURST: u32 = 2;
const AUTO_PERIOD: Duration = Duration::from_secs(2);
/// How long a manual check waits for a run already going on its lab.
const WAIT_FOR_RUN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum GradingError {
    #[error("too many checks; wait {} and check again", seconds(.0))]
    TooMany(u64),
    #[error("a check of this lab is still running; wait for its result")]
    Busy,
    #[error("task {0:?} is being checked already; wait for that check's result")]
    AlreadyChecking(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("a grading task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// How a check run was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The Check button or the API: rate-limited, always recorded.
    Manual,
    /// Continuous mode: skipped when the lab is busy, recorded on a pass.
    Auto,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Manual => "manual",
            Mode::Auto => "auto",
        }
    }
}

/// The answer to a check request (`POST …/tasks/{task}/check`).
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// The task counts as passed: now or by an earlier attempt.
    pub passed: bool,
    /// Points the task earns (before hint costs), 0 while not passed.
    pub points: u32,
    /// This run's results, one per check.
    pub checks: Vec<grader::CheckResult>,
}

/// What asking for a task's next hint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintReveal {
    /// The hint at this index is now shown, its cost recorded.
    Revealed(usize),
    /// Every hint of the task is shown already.
    NoneLeft,
    /// The task is passed; nothing was revealed or charged.
    Passed,
}

pub struct Grading {
    host: Arc<dyn SandboxHost>,
    db: Db,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Continuous-mode runs per lab id.
    auto_limiter: DefaultKeyedRateLimiter<String>,
    /// One lock per lab with a run in progress or waiting; entries go
    /// when nobody holds them. A std mutex: never held across an await.
    runs: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Manual checks running or waiting, by user, lesson and task: the
    /// same check asked for again meanwhile (a double click, a retrying
    /// client) is refused rather than run and recorded twice.
    checking: Mutex<HashSet<CheckKey>>,
}

type CheckKey = (String, String, String);

/// A claim on manual checks of some tasks; dropping it releases them.
struct CheckClaim<'a> {
    grading: &'a Grading,
    keys: Vec<CheckKey>,
}

impl Drop for CheckClaim<'_> {
    fn drop(&mut self) {
        let mut checking = self
            .grading
            .checking
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            checking.remove(key);
        }
    }
}

impl Grading {
    pub fn new(host: Arc<dyn SandboxHost>, db: Db) -> Grading {
        let quota = |burst: u32, period: Duration| {
            Quota::with_period(period)
                .expect("period is non-zero")
                .allow_burst(NonZeroU32::new(burst).expect("burst is non-zero"))
        };
        Grading {
            host,
            db,
            limiter: DefaultKeyedRateLimiter::keyed(quota(MANUAL_BURST, MANUAL_PERIOD)),
            auto_limiter: DefaultKeyedRateLimiter::keyed(quota(AUTO_BURST, AUTO_PERIOD)),
            runs: Mutex::new(HashMap::new()),
            checking: Mutex::new(HashSet::new()),
        }
    }

    /// Claims manual checks of `tasks` for the lab's user, or names the
    /// first task already being checked.
    fn claim(
        &self,
        lab: &Lab,
        lesson: &course::Lesson,
        tasks: &[&course::Task],
    ) -> Result<CheckClaim<'_>, GradingError> {
        let keys: Vec<CheckKey> = tasks
            .iter()
            .map(|t| (lab.user_id.clone(), lesson.slug.clone(), t.id.clone()))
            .collect();
        let mut checking = self.checking.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(busy) = keys.iter().find(|k| checking.contains(*k)) {
            return Err(GradingError::AlreadyChecking(busy.2.clone()));
        }
        checking.extend(keys.iter().cloned());
        Ok(CheckClaim {
            grading: self,
            keys,
        })
    }

    /// Drops rate-limit state of users and labs back at full budget.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.auto_limiter.retain_recent();
    }

    fn lab_lock(&self, lab_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.entry(lab_id.to_owned()).or_default().clone()
    }

    fn release(&self, lab_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: nobody else waits for this lab.
        if Arc::strong_count(&lock) <= 2 {
            runs.remove(lab_id);
        }
    }

    /// Runs `tasks` (in order) on `lab`, records them, and returns their
    /// outcomes. `None` when continuous mode found the lab busy.
    pub async fn check(
        &self,
        lab: &Lab,
        lesson: &course::Lesson,
        tasks: &[&course::Task],
        mode: Mode,
    ) -> Result<Option<Vec<(String, CheckOutcome)>>, GradingError> {
        // Held until the run is recorded.
        let _claim = match mode {
            Mode::Manual => Some(self.claim(lab, lesson, tasks)?),
            Mode::Auto => None,
        };
        match mode {
            Mode::Manual => {
                self.limiter
                    .check_key(&lab.user_id)
                    .map_err(|e| GradingError::TooMany(wait_secs(e)))?;
            }
            Mode::Auto => {
                if self.auto_limiter.check_key(&lab.id).is_err() {
                    return Ok(None);
                }
            }
        }
        let lock = self.lab_lock(&lab.id);
        let guard = match mode {
            Mode::Auto => lock.clone().try_lock_owned().ok(),
            Mode::Manual => tokio::time::timeout(WAIT_FOR_RUN, lock.clone().lock_owned())
                .await
                .ok(),
        };
        let Some(guard) = guard else {
            self.release(&lab.id, lock);
            return match mode {
                Mode::Auto => Ok(None),
                Mode::Manual => Err(GradingError::Busy),
            };
        };
        let result = self.run(lab, lesson, tasks, mode).await;
        drop(guard);
        self.release(&lab.id, lock);
        result.map(Some)
    }

    async fn run(
        &self,
        lab: &Lab,
        lesson: &course::Lesson,
        tasks: &[&course::Task],
        mode: Mode,
    ) -> Result<Vec<(String, CheckOutcome)>, GradingError> {
        let passed_before = self
            .passed(&lesson.slug, &lab.user_id)
            .await
            .inspect_err(|_| checks_errored(tasks.len()))?;
        let owned: Vec<course::Task> = tasks.iter().map(|t| (*t).clone()).collect();
        let host = self.host.clone();
        let lab_id = lab.id.clone();
        let results = tokio::task::spawn_blocking(move || {
            owned
                .iter()
                .map(|t| {
                    let began = Instant::now();
                    let result = grader::grade(&*host, &lab_id, t);
                    metrics::check_ran(
                        if result.passed {
                            metrics::CheckResult::Passed
                        } else {
                            metrics::CheckResult::Failed
                        },
                        Some(began.elapsed()),
                    );
                    (t.id.clone(), t.points, result)
                })
                .collect::<Vec<_>>()
        })
        .await
        .inspect_err(|_| checks_errored(tasks.len()))?;
        let mut outcomes = Vec::with_capacity(results.len());
        for (task, points, result) in results {
            if mode == Mode::Manual || result.passed {
                let checks = serde_json::to_value(&result.checks).unwrap_or_default();
                let first = self
                    .db
                    .record_attempt(&NewAttempt {
                        user_id: &lab.user_id,
                        lesson: &lesson.slug,
                        task: &task,
                        lab_id: &lab.id,
                        mode: mode.as_str(),
                        passed: result.passed,
                        checks: &checks,
                    })
                    .await?;
                metrics::attempt_recorded();
                if first {
                    tracing::info!(lab = %lab.id, lesson = %lesson.slug, task, "task passed");
                }
            }
            let passed = result.passed || passed_before.contains(&task);
            outcomes.push((
                task,
                CheckOutcome {
                    passed,
                    points: if passed { points } else { 0 },
                    checks: result.checks,
                },
            ));
        }
        Ok(outcomes)
    }

    /// Ids of the tasks `user_id` has passed in `lesson`.
    pub async fn passed(&self, lesson: &str, user_id: &str) -> Result<HashSet<String>, DbError> {
        Ok(self
            .db
            .task_passes(lesson, Some(user_id))
            .await?
            .into_iter()
            .map(|r| r.task)
            .collect())
    }

    /// Reveals the next hint of `task` not yet revealed to `user_id`,
    /// recording its cost. A passed task sells no more hints: they could
    /// only cost points.
    pub async fn reveal_next_hint(
        &self,
        user_id: &str,
        lesson: &course::Lesson,
        task: &course::Task,
    ) -> Result<HintReveal, DbError> {
        let progress = self.progress(lesson, user_id).await?;
        let mine = progress.tasks.iter().find(|t| t.id == task.id);
        if mine.is_some_and(|t| t.passed) {
            return Ok(HintReveal::Passed);
        }
        let shown = mine.map_or(0, |t| t.hints.len());
        let Some(hint) = task.hints.get(shown) else {
            return Ok(HintReveal::NoneLeft);
        };
        self.db
            .reveal_hint(
                user_id,
                &lesson.slug,
                &task.id,
                shown as i64,
                i64::from(hint.cost),
            )
            .await?;
        Ok(HintReveal::Revealed(shown))
    }

    /// One student's standing in a lesson.
    pub async fn progress(
        &self,
        lesson: &course::Lesson,
        user_id: &str,
    ) -> Result<Progress, DbError> {
        let passes = self.db.task_passes(&lesson.slug, Some(user_id)).await?;
        let hints = self.db.hint_reveals(&lesson.slug, Some(user_id)).await?;
        Ok(Progress::build(lesson, &passes, &hints))
    }

    /// Every student who worked on `lesson`, by name.
    pub async fn gradebook(&self, lesson: &course::Lesson) -> Result<Gradebook, DbError> {
        let passes = self.db.task_passes(&lesson.slug, None).await?;
        let hints = self.db.hint_reveals(&lesson.slug, None).await?;
        let counts = self.db.attempt_counts(&lesson.slug).await?;
        let labs = self.db.lab_starts(&lesson.slug, None).await?;
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for (id, name) in passes
            .iter()
            .chain(&hints)
            .chain(&labs)
            .map(|r| (&r.user_id, &r.name))
            .chain(counts.iter().map(|c| (&c.user_id, &c.name)))
        {
            names.insert(name.clone(), id.clone());
        }
        let students = names
            .into_iter()
            .map(|(name, id)| {
                let mine = |rows: &[UserRow]| -> Vec<UserRow> {
                    rows.iter().filter(|r| r.user_id == id).cloned().collect()
                };
                let progress = Progress::build(lesson, &mine(&passes), &mine(&hints));
                let tasks = lesson
                    .tasks
                    .iter()
                    .map(|t| {
                        let count = counts.iter().find(|c| c.user_id == id && c.task == t.id);
                        let mine = progress.tasks.iter().find(|p| p.id == t.id);
                        StudentTask {
                            id: t.id.clone(),
                            passed: mine.is_some_and(|p| p.passed),
                            points: mine.map_or(0, |p| p.earned),
                            attempts: count.map_or(0, |c| c.count),
                            hint_cost: mine.map_or(0, |p| p.hint_cost),
                        }
                    })
                    .collect();
                let last_activity = passes
                    .iter()
                    .chain(&hints)
                    .chain(&labs)
                    .filter(|r| r.user_id == id)
                    .map(|r| r.at)
                    .chain(counts.iter().filter(|c| c.user_id == id).map(|c| c.last))
                    .max();
                StudentGrades {
                    checked: counts.iter().any(|c| c.user_id == id),
                    name,
                    score: progress.score,
                    hint_cost: progress.hint_cost,
                    last_activity,
                    tasks,
                }
            })
            .collect();
        Ok(Gradebook {
            lesson: lesson.slug.clone(),
            max_points: lesson.tasks.iter().map(|t| t.points).sum(),
            tasks: lesson.tasks.iter().map(|t| t.id.clone()).collect(),
            task_titles: lesson.tasks.iter().map(|t| t.title.clone()).collect(),
            students,
        })
    }
}

/// `GET /api/lessons/{slug}/progress`: one student's own standing.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub lesson: String,
    pub score: u32,
    pub max_points: u32,
    pub hint_cost: u32,
    pub tasks: Vec<TaskProgress>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskProgress {
    pub id: String,
    pub title: String,
    pub points: u32,
    pub passed: bool,
    pub passed_at: Option<i64>,
    /// The task's points when passed, else 0 (hint costs are counted
    /// against the lesson's score, see `hint_cost`).
    pub earned: u32,
    /// Costs of this task's revealed hints.
    pub hint_cost: u32,
    /// Revealed hints, in order.
    pub hints: Vec<RevealedHint>,
    /// How many hints the task has.
    pub hints_total: usize,
    /// Cost of the next hint, if one is left.
    pub next_hint_cost: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RevealedHint {
    pub text: String,
    pub cost: u32,
}

impl Progress {
    fn build(lesson: &course::Lesson, passes: &[UserRow], hints: &[UserRow]) -> Progress {
        let tasks: Vec<TaskProgress> = lesson
            .tasks
            .iter()
            .map(|t| {
                let pass = passes.iter().find(|p| p.task == t.id);
                let mut revealed: Vec<&UserRow> = hints.iter().filter(|h| h.task == t.id).collect();
                revealed.sort_by_key(|h| h.hint);
                let shown: Vec<RevealedHint> = revealed
                    .iter()
                    .filter_map(|h| {
                        let hint = t.hints.get(usize::try_from(h.hint).ok()?)?;
                        Some(RevealedHint {
                            text: hint.text.clone(),
                            cost: u32::try_from(h.cost).unwrap_or(0),
                        })
                    })
                    .collect();
                let hint_cost = revealed
                    .iter()
                    .map(|h| u32::try_from(h.cost).unwrap_or(0))
                    .fold(0u32, u32::saturating_add);
                TaskProgress {
                    id: t.id.clone(),
                    title: t.title.clone(),
                    points: t.points,
                    passed: pass.is_some(),
                    passed_at: pass.map(|p| p.at),
                    earned: if pass.is_some() { t.points } else { 0 },
                    hint_cost,
                    next_hint_cost: t.hints.get(shown.len()).map(|h| h.cost),
                    hints_total: t.hints.len(),
                    hints: shown,
                }
            })
            .collect();
        let earned = tasks
            .iter()
            .map(|t| t.earned)
            .fold(0u32, u32::saturating_add);
        let hint_cost = tasks
            .iter()
            .map(|t| t.hint_cost)
            .fold(0u32, u32::saturating_add);
        Progress {
            lesson: lesson.slug.clone(),
            score: earned.saturating_sub(hint_cost),
            max_points: lesson.tasks.iter().map(|t| t.points).sum(),
            hint_cost,
            tasks,
        }
    }
}

/// `GET /api/lessons/{slug}/grades`: students × tasks.
#[derive(Debug, Clone, Serialize)]
pub struct Gradebook {
    pub lesson: String,
    pub max_points: u32,
    /// Task ids, in the lesson's order (the CSV's columns).
    pub tasks: Vec<String>,
    /// Their titles, in the same order (the page's columns).
    pub task_titles: Vec<String>,
    /// By name.
    pub students: Vec<StudentGrades>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StudentGrades {
    pub name: String,
    pub score: u32,
    pub hint_cost: u32,
    /// Unix seconds of the last attempt, pass, hint or lab start.
    pub last_activity: Option<i64>,
    /// Whether they ever checked a task; a student who only started a
    /// lab is listed too.
    pub checked: bool,
    pub tasks: Vec<StudentTask>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StudentTask {
    pub id: String,
    pub passed: bool,
    pub points: u32,
    pub attempts: i64,
    pub hint_cost: u32,
}

impl Gradebook {
    /// The gradebook as CSV, one row per student: `student, score,
    /// max_points`, then for each task `<id> passed` (`yes`/`no`), `<id>
    /// points` and `<id> attempts`, then `hint_cost`, `last_activity` (ISO
    /// 8601, UTC) and `checked` (`no` for a student who started a lab but
    /// never checked). Cells that a spreadsheet would read as a formula are
    /// prefixed with `'`.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut header = vec![
            "student".to_owned(),
            "score".to_owned(),
            "max_points".to_owned(),
        ];
        for task in &self.tasks {
            header.extend([
                format!("{task} passed"),
                format!("{task} points"),
                format!("{task} attempts"),
            ]);
        }
        header.extend([
            "hint_cost".to_owned(),
            "last_activity".to_owned(),
            "checked".to_owned(),
        ]);
        push_row(&mut out, &header);
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
        for s in &self.students {
            let mut row = vec![
                s.name.clone(),
                s.score.to_string(),
                self.max_points.to_string(),
            ];
            for t in &s.tasks {
                row.extend([
                    yes_no(t.passed),
                    t.points.to_string(),
                    t.attempts.to_string(),
                ]);
            }
            row.push(s.hint_cost.to_string());
            row.push(s.last_activity.map(iso_time).unwrap_or_default());
            row.push(yes_no(s.checked));
            push_row(&mut out, &row);
        }
        out
    }
}

/// A run of `tasks` tasks failed before its checks ran: each counts once
/// as an error (a failure while recording does not undo checks that ran).
fn checks_errored(tasks: usize) {
    for _ in 0..tasks {
        metrics::check_ran(metrics::CheckResult::Error, None);
    }
}

/// `2026-12-05T22:10:45Z`.
pub fn iso_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{}T{:02}:{:02}:{:02}Z",
            t.date(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

fn push_row(out: &mut String, cells: &[String]) {
    let escaped: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    out.push_str(&escaped.join(","));
    out.push_str("\r\n");
}

fn csv_cell(cell: &str) -> String {
    let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

/// One task as the lesson page's task list shows it
/// (`web/templates/partials/task.html`).
#[derive(Debug, Clone)]
pub struct TaskView {
    pub slug: String,
    pub id: String,
    pub title: Vec<Segment>,
    pub points: u32,
    pub passed: bool,
    /// Buttons are shown to signed-in users only.
    pub signed_in: bool,
    /// Revealed hints: text and cost.
    pub hints: Vec<(Vec<Segment>, u32)>,
    pub next_hint_cost: Option<u32>,
    /// The last run's results, when the view answers a check.
    pub results: Vec<grader::CheckResult>,
    /// A message about the request itself (no lab, too many checks).
    pub notice: Option<String>,
    /// Rendered as an htmx out-of-band swap (continuous mode).
    pub oob: bool,
}

impl TaskView {
    /// Every task of `lesson`, with the standing of the viewer if any.
    pub fn list(lesson: &course::Lesson, progress: Option<&Progress>) -> Vec<TaskView> {
        lesson
            .tasks
            .iter()
            .map(|t| TaskView::of(lesson, t, progress))
            .collect()
    }

    pub fn of(
        lesson: &course::Lesson,
        task: &course::Task,
        progress: Option<&Progress>,
    ) -> TaskView {
        let mine = progress.and_then(|p| p.tasks.iter().find(|x| x.id == task.id));
        TaskView {
            slug: lesson.slug.clone(),
            id: task.id.clone(),
            title: segments(&task.title),
            points: task.points,
            passed: mine.is_some_and(|m| m.passed),
            signed_in: progress.is_some(),
            hints: mine
                .map(|m| {
                    m.hints
                        .iter()
                        .map(|h| (segments(&h.text), h.cost))
                        .collect()
                })
                .unwrap_or_default(),
            next_hint_cost: match mine {
                Some(m) => m.next_hint_cost,
                None => task.hints.first().map(|h| h.cost),
            },
            results: Vec::new(),
            notice: None,
            oob: false,
        }
    }
}

/// A lesson's standing in one line, as the task panel and the course page
/// show it: `3/5 tasks · 32/55 points` for a student, `5 tasks · 55
/// points` for a visitor.
pub fn standing(lesson: &course::Lesson, progress: Option<&Progress>) -> String {
    let total = lesson.tasks.len();
    let max: u32 = lesson.tasks.iter().map(|t| t.points).sum();
    let tasks = if total == 1 { "task" } else { "tasks" };
    match progress {
        Some(p) => {
            let passed = p.tasks.iter().filter(|t| t.passed).count();
            format!("{passed}/{total} {tasks} · {}/{max} points", p.score)
        }
        None => format!("{total} {tasks} · {max} points"),
    }
}

/// A piece of a task title or hint: backticks mark commands, as in the
/// lesson body, and the page shows them as code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub code: bool,
    pub text: String,
}

/// Splits `text` at backticks; an unmatched backtick stays text.
pub fn segments(text: &str) -> Vec<Segment> {
    let parts: Vec<&str> = text.split('`').collect();
    let closed = parts.len() % 2 == 1;
    let mut out: Vec<Segment> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        let code = i % 2 == 1 && (closed || !last);
        let text = if i % 2 == 1 && !code {
            format!("`{part}")
        } else {
            (*part).to_owned()
        };
        if !text.is_empty() {
            out.push(Segment { code, text });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_mark_code_and_a_lone_one_stays_text() {
        let seg = |code, text: &str| Segment {
            code,
            text: text.into(),
        };
        assert_eq!(
            segments("Run `uname -r` now"),
            vec![
                seg(false, "Run "),
                seg(true, "uname -r"),
                seg(false, " now")
            ]
        );
        assert_eq!(
            segments("a `b` c `d"),
            vec![
                seg(false, "a "),
                seg(true, "b"),
                seg(false, " c "),
                seg(false, "`d")
            ]
        );
        assert_eq!(segments(""), vec![]);
    }

    #[test]
    fn a_wait_of_one_second_is_one_second() {
        assert_eq!(
            GradingError::TooMany(1).to_string(),
            "too many checks; wait 1 second and check again"
        );
        assert_eq!(
            GradingError::TooMany(2).to_string(),
            "too many checks; wait 2 seconds and check again"
        );
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("ada"), "ada");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "'-1");
    }
}
