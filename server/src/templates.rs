//! askama page templates (files in `web/templates`) and the one wrapper
//! that turns a render failure into a 500.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::db::{Lab, TokenInfo, User};
use crate::http::assets;

/// What every full page needs: who is looking and the form token.
pub struct PageContext {
    pub user: Option<User>,
    pub csrf: String,
    pub signup_open: bool,
}

impl PageContext {
    /// For pages rendered without a request context (error pages).
    pub fn bare() -> PageContext {
        PageContext {
            user: None,
            csrf: String::new(),
            signup_open: false,
        }
    }

    /// URL of a static asset, versioned by content so it can be cached forever.
    pub fn asset(&self, path: &str) -> String {
        assets::url(path)
    }
}

pub fn render<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct AdminUsersPage {
    pub page: PageContext,
    pub users: Vec<User>,
    pub tokens: Vec<TokenInfo>,
}

#[derive(Template)]
#[template(path = "admin_labs.html")]
pub struct AdminLabsPage {
    pub page: PageContext,
    pub labs: Vec<AdminLabRow>,
}

/// One running lab on the admin's page, its figures already in words.
pub struct AdminLabRow {
    pub id: String,
    pub owner: String,
    pub lesson: String,
    pub state: &'static str,
    /// `4 min`, `2 h 5 min`.
    pub age: String,
    /// `83 MiB of 512 MiB`, or the limit alone while the node starts.
    pub memory: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub page: PageContext,
    pub status: u16,
    pub reason: &'a str,
    pub message: &'a str,
}

pub struct LessonCard<'a> {
    pub slug: &'a str,
    pub title: &'a str,
    pub summary: &'a str,
    pub duration: String,
    /// Tasks and points, with the viewer's own when signed in.
    pub standing: String,
    pub progress: Progress,
}

pub enum Progress {
    Anonymous,
    NotStarted,
    Started,
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage<'a> {
    pub page: PageContext,
    pub lessons: Vec<LessonCard<'a>>,
    pub watch: CourseWatch,
    pub catalog: CatalogBanner,
}

/// For authors (`serve --watch`): what keeps the changed course from
/// loading, and the version open pages compare to reload.
pub struct CourseWatch {
    pub problems: std::sync::Arc<Vec<String>>,
    pub version: Option<u64>,
}

impl CourseWatch {
    pub fn of(course: &crate::live_course::LiveCourse) -> CourseWatch {
        CourseWatch {
            problems: course.problems(),
            version: course.version(),
        }
    }
}

#[derive(Template)]
#[template(path = "lesson.html")]
pub struct LessonPage<'a> {
    pub page: PageContext,
    pub title: &'a str,
    pub duration: String,
    pub body: &'a str,
    pub tasks: Vec<crate::grading::TaskView>,
    /// Tasks passed and score, kept in view beside the task list.
    pub standing: String,
    pub previous: Option<(&'a str, &'a str)>,
    pub next: Option<(&'a str, &'a str)>,
    pub pane: LabPane,
    /// Lets the terminal's own `<style>` elements past the page's CSP.
    pub style_nonce: String,
    pub watch: CourseWatch,
    pub catalog: CatalogBanner,
}

/// The banner of the course and lesson pages while the catalog images are
/// being prepared (`partials/catalog_banner.html`), polling for news.
pub struct CatalogBanner {
    /// The step under way, "debian 2/7".
    pub preparing: Option<String>,
    /// Why the build failed.
    pub failed: Option<String>,
}

impl CatalogBanner {
    pub fn of(catalog: &crate::catalog::Catalog) -> CatalogBanner {
        use crate::catalog::CatalogStatus;
        let status = catalog.status();
        CatalogBanner {
            preparing: matches!(status, CatalogStatus::Preparing { .. })
                .then(|| status.to_string()),
            failed: match status {
                CatalogStatus::Failed { error } => Some(error),
                _ => None,
            },
        }
    }
}

/// The catalog banner alone, for its polling.
#[derive(Template)]
#[template(path = "partials/catalog_banner.html")]
pub struct CatalogBannerPanel {
    pub catalog: CatalogBanner,
}

/// The lab pane of a lesson page (`partials/lab.html`).
pub struct LabPane {
    pub slug: String,
    pub logged_in: bool,
    /// The user's active lab for the lesson, with its live deadline.
    pub lab: Option<Lab>,
    /// Its open terminals, to bring back as tabs after a reload.
    pub terminals: Vec<String>,
    /// How the user's last lab for the lesson ended, when none is active.
    pub last_end: Option<String>,
    /// Why a start was refused (no free slot).
    pub error: Option<String>,
    pub idle_label: String,
    /// Seconds before an idle stop the page starts warning.
    pub warn_secs: u64,
    /// Server time (unix seconds), so the page can correct its clock.
    pub now: i64,
    /// Instructors watching the lab's terminals right now.
    pub watchers: Vec<String>,
    /// While the starting lab waits for its image: the catalog's step
    /// under way, "debian 2/7".
    pub waiting: Option<String>,
}

/// The lab pane alone, for htmx swaps.
#[derive(Template)]
#[template(path = "partials/lab.html")]
pub struct LabPanel {
    pub pane: LabPane,
}

/// The lab's status line alone, refreshed while it runs.
#[derive(Template)]
#[template(path = "partials/lab_status.html")]
pub struct LabStatusPanel {
    pub pane: LabPane,
}

/// The fields of the login, signup and setup forms, re-rendered with the
/// error in place when a submission is refused.
pub struct FormState {
    pub csrf: String,
    pub name: String,
    pub error: Option<String>,
    /// Where the browser goes after a successful login.
    pub next: String,
    /// Where the form posts to.
    pub action: String,
    /// The sign-up form asks for an invitation code.
    pub invitation: bool,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub page: PageContext,
    pub form: FormState,
}

#[derive(Template)]
#[template(path = "partials/login_form.html")]
pub struct LoginForm {
    pub form: FormState,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    pub page: PageContext,
    pub form: FormState,
    pub heading: &'static str,
}

#[derive(Template)]
#[template(path = "partials/signup_form.html")]
pub struct SignupForm {
    pub form: FormState,
}
