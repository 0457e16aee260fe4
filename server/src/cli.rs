//! The whole command line: definitions, help texts, and the translation of
//! flags and `LAYERLAB_*` variables into validated settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// layerlab: hands-on container labs in the browser.
///
/// Every option can also be set with the environment variable shown in its
/// help. Options that locate state (`--data-dir`, `--database-url`) are
/// accepted before or after the subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "layerlab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding the database, sandboxes and caches.
    #[arg(
        long,
        global = true,
        env = "LAYERLAB_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// Database URL; defaults to the SQLite file `layerlab.db` in the data directory.
    #[arg(long, global = true, env = "LAYERLAB_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Log format written to standard error.
    #[arg(long, global = true, env = "LAYERLAB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the web server.
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for `Authorization: Bearer`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with lesson folders.
    #[command(subcommand)]
    Lessons(LessonsCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, env = "LAYERLAB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Course directory (one folder per lesson); defaults to the bundled course.
    #[arg(long, env = "LAYERLAB_LESSONS")]
    pub lessons: Option<PathBuf>,

    /// Public URL of this server, e.g. https://labs.example.org. Used for
    /// links and for the Origin check; an https URL also marks cookies
    /// Secure. Defaults to http://<listen address>.
    #[arg(long, env = "LAYERLAB_BASE_URL")]
    pub base_url: Option<url::Url>,

    /// Whether visitors may create their own student accounts.
    #[arg(long, env = "LAYERLAB_SIGNUP", value_enum, default_value_t = Signup::Open)]
    pub signup: Signup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Signup {
    Open,
    Closed,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. Without --password-stdin a random password is
    /// generated and printed.
    Add {
        /// Login name: 2 to 32 characters, lowercase letters, digits, `.`, `_`, `-`.
        name: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Student)]
        role: RoleArg,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (and end the account's browser sessions).
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Student,
    Instructor,
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user. Prints only the token on standard output.
    Create {
        /// The user the token acts as.
        user: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LessonsCommand {
    /// Validate a course directory and print every problem as `file:line: message`.
    Check { dir: PathBuf },
}

pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LAYERLAB_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
