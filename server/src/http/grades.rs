//! Grading over HTTP: checks, hints, a student's progress, and the
//! instructors' gradebook, as JSON for the API and as HTML fragments and
//! pages for the browser (htmx swaps a task's `<li>` with its result).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{AppError, PageError};
use super::session::{ApiUser, CsrfToken, Viewer};
use super::state::SharedState;
use crate::db::{Attempt, Lab, LabState, User};
use crate::grading::{CheckOutcome, GradingError, HintReveal, Mode, Progress, TaskView, standing};
use crate::live_course::LessonRef;
use crate::templates::{self, PageContext};

/// Attempts shown in one student's history.
const HISTORY_LIMIT: i64 = 500;

/// htmx stops polling when an answer has this status.
const STOP_POLLING: u16 = 286;

pub fn router() -> Router<SharedState> {
    Router::new()
        .merge(super::lab_api::nest(
            Router::new().route("/{id}/tasks/{task}/check", post(check_api)),
        ))
        .route("/api/lessons/{slug}/tasks/{task}/hints", post(hint_api))
        .route("/api/lessons/{slug}/progress", get(progress_api))
        .route("/api/lessons/{slug}/grades", get(grades_api))
        .route("/api/lessons/{slug}/grades/{name}", get(history_api))
        .route("/lessons/{slug}/tasks/{task}/check", post(check_fragment))
        .route("/lessons/{slug}/tasks/{task}/hints", post(hint_fragment))
        .route("/lessons/{slug}/tasks/auto", post(auto_fragment))
        .route("/teach", get(teach_page))
        .route("/lessons/{slug}/grades", get(gradebook_page))
        .route("/lessons/{slug}/grades/{name}", get(history_page))
        .route("/lessons/{slug}/grades/{name}/live", get(live_page))
}

impl From<GradingError> for AppError {
    fn from(err: GradingError) -> AppError {
        match err {
            GradingError::TooMany(_) => {
                AppError::new(StatusCode::TOO_MANY_REQUESTS, err.to_string())
            }
            GradingError::Busy | GradingError::AlreadyChecking(_) => {
                AppError::new(StatusCode::CONFLICT, err.to_string())
            }
            GradingError::Db(err) => err.into(),
            other => AppError::internal(other),
        }
    }
}

fn lesson(state: &SharedState, slug: &str) -> Result<LessonRef, AppError> {
    state.course.lesson(slug).ok_or_else(|| {
        AppError::not_found(format!(
            "there is no lesson {slug:?}; GET /api/lessons lists them"
        ))
    })
}

fn task<'a>(lesson: &'a course::Lesson, id: &str) -> Result<&'a course::Task, AppError> {
    lesson.task(id).ok_or_else(|| {
        AppError::not_found(format!(
            "lesson {} has no task {id:?}; GET /api/lessons lists its tasks",
            lesson.slug
        ))
    })
}

/// The instructor asking for a page about lesson `slug`, and the lesson.
fn instructor_lesson(
    state: &SharedState,
    user: Option<User>,
    slug: &str,
) -> Result<(User, LessonRef), AppError> {
    let user = user.ok_or_else(AppError::unauthorized)?;
    instructor(&user)?;
    Ok((user, lesson(state, slug)?))
}

fn instructor(user: &User) -> Result<(), AppError> {
    if user.role.can_teach() {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "only instructors and admins see grades; your own are at /api/lessons/{slug}/progress",
        ))
    }
}

async fn check_api(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path((id, task_id)): Path<(String, String)>,
) -> Result<Json<CheckOutcome>, AppError> {
    let lab = super::labs::owned_lab(&state, &user, &id).await?;
    let found = lesson(&state, &lab.lesson)?;
    let lesson = &*found;
    let task = task(lesson, &task_id)?;
    super::labs::require_ready(&lab, "checks look at a running lab")?;
    let mut outcomes = state
        .grading
        .check(&lab, lesson, &[task], Mode::Manual)
        .await?
        .unwrap_or_default();
    let (_, outcome) = outcomes
        .pop()
        .ok_or_else(|| AppError::internal("a manual check returned no outcome"))?;
    Ok(Json(outcome))
}

async fn hint_api(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path((slug, task_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let found = lesson(&state, &slug)?;
    let lesson = &*found;
    let task = task(lesson, &task_id)?;
    let index = match state
        .grading
        .reveal_next_hint(&user.id, lesson, task)
        .await?
    {
        HintReveal::Revealed(index) => index,
        HintReveal::NoneLeft => {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                format!("every hint of task {task_id:?} is already shown"),
            ));
        }
        HintReveal::Passed => {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                format!(
                    "task {task_id:?} is already passed; its hints are for tasks still open and were not charged"
                ),
            ));
        }
    };
    let progress = state.grading.progress(lesson, &user.id).await?;
    let hint = &task.hints[index];
    Ok(Json(serde_json::json!({
        "hint": index,
        "text": hint.text,
        "cost": hint.cost,
        "score": progress.score,
    }))
    .into_response())
}

async fn progress_api(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let found = lesson(&state, &slug)?;
    let lesson = &*found;
    Ok(Json(state.grading.progress(lesson, &user.id).await?).into_response())
}

#[derive(Deserialize)]
struct GradesQuery {
    format: Option<String>,
}

async fn grades_api(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
    Query(query): Query<GradesQuery>,
) -> Result<Response, AppError> {
    instructor(&user)?;
    let found = lesson(&state, &slug)?;
    let lesson = &*found;
    let book = state.grading.gradebook(lesson).await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(book).into_response()),
        Some("csv") => {
            let mut response = book.to_csv().into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(value) =
                HeaderValue::from_str(&format!("attachment; filename=\"{slug}-grades.csv\""))
            {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            Ok(response)
        }
        Some(other) => Err(AppError::bad_request(format!(
            "format {other:?} is not known: use json or csv"
        ))),
    }
}

async fn student(state: &SharedState, name: &str) -> Result<User, AppError> {
    state
        .db
        .user_by_name(name)
        .await
        .map_err(|_| AppError::not_found(format!("there is no user {name:?}")))
}

/// The student's lab of the lesson, when it is running now.
async fn running_lab(
    state: &SharedState,
    student: &User,
    slug: &str,
) -> Result<Option<Lab>, AppError> {
    Ok(state
        .db
        .active_lab(&student.id, slug)
        .await?
        .filter(|lab| lab.state == LabState::Ready))
}

async fn student_attempts(
    state: &SharedState,
    lesson: &course::Lesson,
    name: &str,
) -> Result<(User, Vec<Attempt>), AppError> {
    let student = student(state, name).await?;
    let attempts = state
        .db
        .attempts(&lesson.slug, &student.id, HISTORY_LIMIT)
        .await?;
    Ok((student, attempts))
}

async fn history_api(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path((slug, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    instructor(&user)?;
    let found = lesson(&state, &slug)?;
    let lesson = &*found;
    let (student, attempts) = student_attempts(&state, lesson, &name).await?;
    let progress = state.grading.progress(lesson, &student.id).await?;
    Ok(Json(serde_json::json!({
        "name": student.name,
        "progress": progress,
        "attempts": attempts,
    }))
    .into_response())
}

#[derive(Template)]
#[template(path = "partials/task_fragment.html")]
struct TaskItems {
    tasks: Vec<TaskView>,
    /// The lesson's standing, swapped out of band into the task panel.
    standing: String,
}

fn fragment(lesson: &course::Lesson, progress: &Progress, tasks: Vec<TaskView>) -> Response {
    templates::render(&TaskItems {
        tasks,
        standing: standing(lesson, Some(progress)),
    })
}

/// The task's `<li>` after a check; problems with the request itself
/// (no lab, too many checks) are shown inside it, since htmx swaps only
/// successful answers.
async fn check_fragment(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path((slug, task_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let found = lesson(&state, &slug)?;
    let lesson = &*found;
    let task = task(lesson, &task_id)?;
    let lab = state.db.active_lab(&user.id, &slug).await?;
    let outcome = match lab {
        Some(lab) if lab.state == LabState::Ready => state
            .grading
            .check(&lab, lesson, &[task], Mode::Manual)
            .await
            .map(|o| o.unwrap_or_default().pop().map(|(_, o)| o)),
        _ => Ok(None),
    };
    let progress = state.grading.progress(lesson, &user.id).await?;
    let mut view = TaskView::of(lesson, task, Some(&progress));
    match outcome {
        Ok(Some(outcome)) => {
            view.passed |= outcome.passed;
            view.results = outcome.checks;
        }
        Ok(None) => {
            view.notice = Some("Start the lab first: checks look at your lab machine.".into())
        }
        Err(
            err
            @ (GradingError::TooMany(_) | GradingError::Busy | GradingError::AlreadyChecking(_)),
        ) => view.notice = Some(capitalized(&err.to_string())),
        Err(err) => return Err(err.into()),
    }
    Ok(fragment(lesson, &progress, vec![view]))
}

async fn hint_fragment(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path((slug, task_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let found = lesson(&state, &slug)?;
    let lesson = &*found;
    let task = task(lesson, &task_id)?;
    state
        .grading
        .reveal_next_hint(&user.id, lesson, task)
        .await?;
    let progress = state.grading.progress(lesson, &user.id).await?;
    Ok(fragment(
        lesson,
        &progress,
        vec![TaskView::of(lesson, task, Some(&progress))],
    ))
}

/// Continuous mode: re-checks the unfinished tasks of the user's ready lab
/// while its terminal is in use, and answers with out-of-band swaps for
/// those that now pass. Nothing to swap is 204; every task passed stops the
/// polling.
async fn auto_fragment(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let found = lesson(&state, &slug)?;
    let lesson = &*found;
    let passed = state.grading.passed(&slug, &user.id).await?;
    let open: Vec<&course::Task> = lesson
        .tasks
        .iter()
        .filter(|t| !passed.contains(&t.id))
        .collect();
    if open.is_empty() {
        return Ok(status(STOP_POLLING));
    }
    let lab = match state.db.active_lab(&user.id, &slug).await? {
        Some(lab) if lab.state == LabState::Ready && state.labs.recently_typed(&lab.id) => lab,
        _ => return Ok(StatusCode::NO_CONTENT.into_response()),
    };
    let Some(outcomes) = state.grading.check(&lab, lesson, &open, Mode::Auto).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let progress = state.grading.progress(lesson, &user.id).await?;
    let newly: Vec<TaskView> = outcomes
        .into_iter()
        .filter(|(_, o)| o.passed)
        .filter_map(|(id, o)| {
            let mut view = TaskView::of(lesson, lesson.task(&id)?, Some(&progress));
            view.results = o.checks;
            view.oob = true;
            Some(view)
        })
        .collect();
    if newly.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let done = newly.len() == open.len();
    let mut response = fragment(lesson, &progress, newly);
    if done {
        *response.status_mut() = StatusCode::from_u16(STOP_POLLING).unwrap_or(StatusCode::OK);
    }
    Ok(response)
}

fn status(code: u16) -> Response {
    StatusCode::from_u16(code)
        .unwrap_or(StatusCode::NO_CONTENT)
        .into_response()
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The context of a page shown to a logged-in user.
pub(super) fn page(state: &SharedState, user: User, csrf: CsrfToken) -> PageContext {
    PageContext {
        user: Some(user),
        csrf: csrf.0,
        signup_open: state.settings.signup_open,
    }
}

/// A moment as the pages show it: UTC to the second, which `app.js`
/// turns into the viewer's own time zone.
struct Stamp {
    iso: String,
    utc: String,
}

impl Stamp {
    fn of(unix: i64) -> Stamp {
        let iso = crate::grading::iso_time(unix);
        let utc = iso.replacen('T', " ", 1).replacen('Z', " UTC", 1);
        Stamp { iso, utc }
    }
}

#[derive(Template)]
#[template(path = "gradebook.html")]
struct GradebookPage<'a> {
    page: PageContext,
    title: &'a str,
    book: crate::grading::Gradebook,
    /// Each student's last activity, in `book.students` order.
    last: Vec<Option<Stamp>>,
}

async fn gradebook_page(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (user, found) = instructor_lesson(&state, user, &slug)?;
    let lesson = &*found;
    let book = state.grading.gradebook(lesson).await?;
    let last = book
        .students
        .iter()
        .map(|s| s.last_activity.map(Stamp::of))
        .collect();
    Ok(templates::render(&GradebookPage {
        page: page(&state, user, csrf),
        title: &lesson.title,
        book,
        last,
    }))
}

#[derive(Template)]
#[template(path = "teach.html")]
struct TeachPage {
    page: PageContext,
    lessons: Vec<LessonSummary>,
    labs: Vec<ActiveLab>,
}

struct LessonSummary {
    slug: String,
    title: String,
    tasks: usize,
    /// Students in the gradebook: they started a lab or checked a task.
    students: usize,
    /// Of those, how many passed every task.
    finished: usize,
}

struct ActiveLab {
    student: String,
    lesson: String,
    state: &'static str,
    started: Stamp,
}

/// `/teach`: an instructor's landing page: every lesson with its
/// gradebook, and the labs running now.
async fn teach_page(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let user = user.ok_or_else(AppError::unauthorized)?;
    instructor(&user)?;
    let course = state.course.course();
    let mut lessons = Vec::with_capacity(course.lessons.len());
    for lesson in &course.lessons {
        let book = state.grading.gradebook(lesson).await?;
        lessons.push(LessonSummary {
            slug: lesson.slug.clone(),
            title: lesson.title.clone(),
            tasks: lesson.tasks.len(),
            students: book.students.len(),
            finished: book
                .students
                .iter()
                .filter(|s| !s.tasks.is_empty() && s.tasks.iter().all(|t| t.passed))
                .count(),
        });
    }
    let labs = super::labs::active_labs_with_owners(&state)
        .await?
        .into_iter()
        .map(|(lab, student)| ActiveLab {
            student,
            lesson: course
                .lesson(&lab.lesson)
                .map_or_else(|| lab.lesson.clone(), |l| l.title.clone()),
            state: lab.state.as_str(),
            started: Stamp::of(lab.created_at),
        })
        .collect();
    Ok(templates::render(&TeachPage {
        page: page(&state, user, csrf),
        lessons,
        labs,
    }))
}

#[derive(Template)]
#[template(path = "attempts.html")]
struct HistoryPage<'a> {
    page: PageContext,
    slug: &'a str,
    title: &'a str,
    student: String,
    /// The student has a lab of this lesson running: it can be watched.
    live: bool,
    score: u32,
    max_points: u32,
    attempts: Vec<AttemptRow>,
}

/// An attempt, or a hint revealed (`hint`: what it cost).
struct AttemptRow {
    task: String,
    when: Stamp,
    at: i64,
    mode: String,
    passed: bool,
    checks: Vec<grader::CheckResult>,
    hint: Option<String>,
}

async fn history_page(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
    Path((slug, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (user, found) = instructor_lesson(&state, user, &slug)?;
    let lesson = &*found;
    let (student, attempts) = student_attempts(&state, lesson, &name).await?;
    let progress = state.grading.progress(lesson, &student.id).await?;
    let hints = state
        .db
        .hint_reveals(&lesson.slug, Some(&student.id))
        .await
        .map_err(AppError::from)?;
    let mut attempts: Vec<AttemptRow> = attempts
        .into_iter()
        .map(|a| AttemptRow {
            checks: serde_json::from_value(a.checks).unwrap_or_default(),
            task: a.task,
            when: Stamp::of(a.created_at),
            at: a.created_at,
            mode: a.mode,
            passed: a.passed,
            hint: None,
        })
        .chain(hints.into_iter().map(|h| AttemptRow {
            hint: Some(format!("hint {} revealed (−{})", h.hint + 1, h.cost)),
            task: h.task,
            when: Stamp::of(h.at),
            at: h.at,
            mode: "hint".to_owned(),
            passed: false,
            checks: Vec::new(),
        }))
        .collect();
    attempts.sort_by_key(|row| std::cmp::Reverse(row.at));
    let live = running_lab(&state, &student, &lesson.slug).await?.is_some();
    Ok(templates::render(&HistoryPage {
        page: page(&state, user, csrf),
        slug: &lesson.slug,
        title: &lesson.title,
        student: student.name,
        live,
        score: progress.score,
        max_points: progress.max_points,
        attempts,
    }))
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage<'a> {
    page: PageContext,
    slug: &'a str,
    title: &'a str,
    student: String,
    lab_id: String,
    /// Lets the terminal's own `<style>` elements past the page's CSP.
    style_nonce: String,
}

/// `/lessons/{slug}/grades/{name}/live`: an instructor watches the
/// student's running lab of the lesson, read-only.
async fn live_page(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
    Path((slug, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (user, found) = instructor_lesson(&state, user, &slug)?;
    let lesson = &*found;
    let student = student(&state, &name).await?;
    let lab = running_lab(&state, &student, &lesson.slug)
        .await?
        .ok_or_else(|| {
            AppError::not_found(format!(
                "{name} has no lab of this lesson running; their history is at /lessons/{slug}/grades/{name}"
            ))
        })?;
    Ok(super::policy::with_terminal_styles(|style_nonce| {
        templates::render(&LivePage {
            page: page(&state, user, csrf),
            slug: &lesson.slug,
            title: &lesson.title,
            student: student.name,
            lab_id: lab.id,
            style_nonce,
        })
    }))
}
