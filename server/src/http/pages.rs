//! The HTML pages: the course overview and a lesson with its lab pane.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::{AppError, PageError};
use super::session::{CsrfToken, Viewer};
use super::state::SharedState;
use crate::grading::{TaskView, standing};
use crate::templates::{self, IndexPage, LessonCard, LessonPage, PageContext, Progress};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/", get(index))
        .route("/lessons/{slug}", get(lesson))
        .route("/lessons/{slug}/assets/{*path}", get(lesson_asset))
}

fn duration_label(minutes: Option<u32>) -> String {
    match minutes {
        Some(m) => format!("{m} min"),
        None => String::new(),
    }
}

async fn index(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let visited = match &user {
        Some(user) => Some(state.db.visited_lessons(&user.id).await?),
        None => None,
    };
    let course = state.course.course();
    let mut lessons = Vec::with_capacity(course.lessons.len());
    for lesson in &course.lessons {
        let mine = match &user {
            Some(user) => Some(state.grading.progress(lesson, &user.id).await?),
            None => None,
        };
        lessons.push(LessonCard {
            slug: &lesson.slug,
            title: &lesson.title,
            summary: lesson.summary.as_deref().unwrap_or(""),
            duration: duration_label(lesson.duration_minutes),
            standing: standing(lesson, mine.as_ref()),
            progress: match &visited {
                None => Progress::Anonymous,
                Some(v) if v.contains(&lesson.slug) => Progress::Started,
                Some(_) => Progress::NotStarted,
            },
        });
    }
    let page = PageContext {
        user,
        csrf: csrf.0,
        signup_open: state.settings.signup_open,
    };
    let watch = templates::CourseWatch::of(&state.course);
    Ok(templates::render(&IndexPage {
        page,
        lessons,
        watch,
        catalog: templates::CatalogBanner::of(&state.catalog),
    }))
}

async fn lesson(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let course = state.course.course();
    let lessons = &course.lessons;
    let Some(index) = lessons.iter().position(|l| l.slug == slug) else {
        return Err(AppError::not_found(format!(
            "there is no lesson {slug:?}; pick one from the course page"
        ))
        .into());
    };
    let lesson = &lessons[index];
    let mut progress = None;
    if let Some(user) = &user {
        state.db.record_visit(&user.id, &lesson.slug).await?;
        progress = Some(state.grading.progress(lesson, &user.id).await?);
    }
    let neighbour = |i: Option<usize>| {
        i.and_then(|i| lessons.get(i))
            .map(|l| (l.slug.as_str(), l.title.as_str()))
    };
    let pane = super::lab_pane::pane(&state, user.as_ref(), &lesson.slug).await?;
    let page = PageContext {
        user,
        csrf: csrf.0,
        signup_open: state.settings.signup_open,
    };
    let watch = templates::CourseWatch::of(&state.course);
    Ok(super::policy::with_terminal_styles(|style_nonce| {
        templates::render(&LessonPage {
            page,
            title: &lesson.title,
            duration: duration_label(lesson.duration_minutes),
            body: &lesson.html,
            tasks: TaskView::list(lesson, progress.as_ref()),
            standing: standing(lesson, progress.as_ref()),
            previous: neighbour(index.checked_sub(1)),
            next: neighbour(Some(index + 1)),
            pane,
            style_nonce,
            watch,
            catalog: templates::CatalogBanner::of(&state.catalog),
        })
    }))
}

async fn lesson_asset(
    State(state): State<SharedState>,
    Path((slug, path)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let not_found = || AppError::not_found("no such lesson asset");
    let lesson = state.course.lesson(&slug).ok_or_else(not_found)?;
    let file = lesson.asset(&path).ok_or_else(not_found)?;
    let bytes = tokio::fs::read(&file).await.map_err(|_| not_found())?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&course::content_type(&file)) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    // Lesson SVGs are author content: never let them run script.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    Ok(response)
}
