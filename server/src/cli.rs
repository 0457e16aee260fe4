//! The whole command line: definitions, help texts, and the translation of
//! flags and `LAYERLAB_*` variables into validated settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

// Parsed once per process: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Move the accounts, labs and grades to another database.
    #[command(subcommand)]
    Db(DbCommand),
    /// Work with lesson folders.
    #[command(subcommand)]
    Lessons(LessonsCommand),
    /// Build, list and export the catalog images (busybox, debian, nginx, …).
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Work with sandboxes directly, without the web server.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Run an OCI registry (what the `registry:2` image runs).
    #[command(subcommand)]
    Registry(RegistryCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free port).
    #[arg(long, env = "LAYERLAB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Course directory (one folder per lesson); defaults to the bundled course.
    #[arg(long, env = "LAYERLAB_LESSONS")]
    pub lessons: Option<PathBuf>,

    /// Reload the course whenever a file in it changes (for authors): open
    /// lesson pages reload themselves, and a change that does not load
    /// shows its problems on the pages while the last good course stays.
    #[arg(long, env = "LAYERLAB_WATCH")]
    pub watch: bool,

    /// Public URL of this server, e.g. https://labs.example.org. Used for
    /// links and for the Origin check; an https URL also marks cookies
    /// Secure. Defaults to http://<listen address>.
    #[arg(long, env = "LAYERLAB_BASE_URL")]
    pub base_url: Option<url::Url>,

    /// Whether visitors may create their own student accounts.
    #[arg(long, env = "LAYERLAB_SIGNUP", value_enum, default_value_t = Signup::Open)]
    pub signup: Signup,

    /// Invitation code that open sign-up asks for: only those you give it
    /// to can create accounts (and take lab slots).
    #[arg(long, env = "LAYERLAB_SIGNUP_CODE", value_parser = parse_signup_code)]
    pub signup_code: Option<String>,

    /// A terminal websocket that sends nothing (not even a pong to the
    /// server's pings, sent every third of this) or takes no output for
    /// this long is closed, e.g. 60s.
    #[arg(long, env = "LAYERLAB_SOCKET_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub socket_timeout: Duration,

    /// The reverse proxies in front of the server, as addresses or
    /// networks (e.g. 127.0.0.1,10.0.0.0/8). For a request from one of
    /// them, rate limits key on the last X-Forwarded-For address (the one
    /// the proxy added) and the Origin check takes the scheme from
    /// X-Forwarded-Proto; anyone else's headers are ignored.
    #[arg(long, env = "LAYERLAB_TRUST_PROXY", value_name = "ADDR[,ADDR…]", value_parser = parse_proxies)]
    pub trust_proxy: Option<TrustedProxies>,

    /// What to do when the store lacks catalog images: build them in the
    /// background while serving (labs wait for theirs), or fail the labs
    /// that need them (`layerlab images build` builds them ahead of time).
    #[arg(long, env = "LAYERLAB_MISSING_IMAGES", value_enum, default_value_t = MissingImages::Build)]
    pub missing_images: MissingImages,

    /// Content store holding the catalog images labs are made from;
    /// defaults to `store` in the data directory.
    #[arg(long, env = "LAYERLAB_STORE_DIR")]
    pub store_dir: Option<PathBuf>,

    /// Most labs running at once on this server.
    #[arg(long, env = "LAYERLAB_MAX_LABS", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_labs: u32,

    /// CPU time a lab may use, in CPUs (e.g. 0.5, 2), unless its lesson
    /// sets `node.limits.cpus`: no lab can take every core.
    #[arg(long, env = "LAYERLAB_LAB_CPUS", default_value_t = 1.0, value_parser = parse_cpus)]
    pub lab_cpus: f64,

    /// How much of the host's memory labs may reserve, as a multiple of
    /// what it has (less 1 GiB kept for the host and the server): 1.0
    /// admits labs until their memory limits add up to that, 2.0 promises
    /// twice as much; beyond it new labs are refused ("lab slots are full").
    #[arg(long, env = "LAYERLAB_LAB_MEMORY_OVERCOMMIT", default_value_t = 1.0, value_parser = parse_overcommit)]
    pub lab_memory_overcommit: f64,

    /// Most labs one user may run at once.
    #[arg(long, env = "LAYERLAB_MAX_LABS_PER_USER", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_labs_per_user: u32,

    /// A lab nobody typed in for this long is stopped (the page warns
    /// first), e.g. 30m, 1h, 90s.
    #[arg(long, env = "LAYERLAB_LAB_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub lab_idle_timeout: Duration,

    /// A lab is stopped this long after it started, however busy, e.g. 4h.
    #[arg(long, env = "LAYERLAB_LAB_MAX_LIFETIME", default_value = "4h", value_parser = parse_duration)]
    pub lab_max_lifetime: Duration,

    /// Cgroup (under each controller's root) holding every lab's cgroup;
    /// servers sharing a machine need different ones.
    #[arg(long, env = "LAYERLAB_CGROUP_PARENT")]
    pub cgroup_parent: Option<String>,

    /// First host uid of the ranges labs' root users map to (65536 per
    /// lab; a multiple of 65536). Ranges are claimed host-wide, so servers
    /// sharing a machine never get the same one, whatever this says.
    #[arg(long, env = "LAYERLAB_LAB_UID_FIRST", requires = "lab_uid_slots")]
    pub lab_uid_first: Option<u32>,

    /// Number of 65536-id ranges starting at --lab-uid-first.
    #[arg(long, env = "LAYERLAB_LAB_UID_SLOTS", requires = "lab_uid_first")]
    pub lab_uid_slots: Option<u32>,

    /// Also serve the hub (the catalog over the OCI registry API,
    /// anonymous and read-only) on this address, e.g. 127.0.0.1:5001.
    #[arg(long, env = "LAYERLAB_HUB_LISTEN")]
    pub hub_listen: Option<SocketAddr>,

    /// Registry the hub pulls through from for images the catalog lacks,
    /// e.g. https://registry-1.docker.io; fetched images are kept.
    #[arg(long, env = "LAYERLAB_HUB_UPSTREAM", requires = "hub_listen", value_parser = parse_upstream)]
    pub hub_upstream: Option<::registry::Upstream>,

    /// Also serve Prometheus metrics at /metrics on this address, without
    /// authentication (bind it where only your scraper reaches), e.g.
    /// 127.0.0.1:9464.
    #[arg(long, env = "LAYERLAB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Serve /metrics on the main address too, to requests carrying
    /// `Authorization: Bearer TOKEN` (at least 16 characters).
    #[arg(long, env = "LAYERLAB_METRICS_TOKEN", value_parser = parse_metrics_token, hide_env_values = true)]
    pub metrics_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MissingImages {
    Build,
    Fail,
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
    /// Disable an account: it cannot log in, its browser sessions end and
    /// its API tokens are refused until it is enabled again.
    Disable { name: String },
    /// Enable a disabled account again.
    Enable { name: String },
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
    /// List API tokens (never the tokens themselves): id, user, label, dates.
    List,
    /// Revoke a token by the id `token list` shows.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every account, session, token, lab, attempt and grade into a
    /// new, empty database (created and migrated first), e.g. from SQLite
    /// to PostgreSQL. Stop the server first: what it writes during the copy
    /// is not copied. The source is left as it was.
    Copy {
        /// Database to copy from; defaults to the one `--database-url` or
        /// the data directory names.
        #[arg(long)]
        from: Option<String>,
        /// Database to copy into, e.g. postgres://layerlab:PASSWORD@HOST/layerlab.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LessonsCommand {
    /// Validate a course directory and print every problem as `file:line: message`.
    Check {
        dir: PathBuf,
        /// Check again whenever a file in the directory changes, until
        /// interrupted.
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build the catalog from Debian packages into the hub (cached: only
    /// changed recipes are rebuilt).
    Build,
    /// List the images in the hub.
    List,
    /// Write an image as an OCI archive (`skopeo inspect oci-archive:FILE` reads it).
    Export { name: String, file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Run a command in a fresh sandbox made from a catalog image and pass
    /// its exit code through.
    Run(SandboxRunArgs),
    /// List and remove the sandboxes on this host that nothing will stop:
    /// those of data directories no server (or `sandbox run`) has open,
    /// and those past their deadline. Works across every data directory.
    Gc {
        /// Only list them.
        #[arg(long)]
        dry_run: bool,
        /// Look only at the sandboxes of this data directory (repeatable);
        /// every data directory on the host by default.
        #[arg(long = "only", value_name = "DATA_DIR")]
        only: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct SandboxRunArgs {
    /// Catalog image whose layers form the root filesystem.
    #[arg(long, default_value = "workstation")]
    pub image: String,
    /// Memory limit, Docker style: 512m, 1g, 65536k or bytes.
    #[arg(long, default_value = "512m", value_parser = parse_size)]
    pub memory: u64,
    /// Most processes at once.
    #[arg(long, default_value_t = 512)]
    pub pids: u64,
    /// Attach the command to this terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve an OCI distribution registry (Docker's `registry:2` protocol)
    /// keeping everything under --root. Needs no data directory.
    Serve(RegistryServeArgs),
}

/// The environment variables are distribution's, so a lesson's
/// `docker run -e REGISTRY_AUTH=htpasswd … registry:2` works unchanged.
#[derive(Debug, Args)]
pub struct RegistryServeArgs {
    /// Address and port to listen on (port 0 picks a free port); `:5000`
    /// means every interface, as in distribution's configuration.
    #[arg(long, env = "REGISTRY_HTTP_ADDR", default_value = "0.0.0.0:5000", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Directory holding blobs, manifests, tags and uploads in progress.
    #[arg(
        long,
        env = "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
        default_value = "/var/lib/registry"
    )]
    pub root: PathBuf,
    /// Authentication scheme: only `htpasswd` is supported (with
    /// --htpasswd); without it, --htpasswd alone turns basic auth on.
    #[arg(long, env = "REGISTRY_AUTH", value_parser = parse_auth)]
    pub auth: Option<String>,
    /// htpasswd file with bcrypt entries (`htpasswd -Bbn USER PASS`);
    /// when given, every request needs basic auth (`docker login`).
    #[arg(long, env = "REGISTRY_AUTH_HTPASSWD_PATH")]
    pub htpasswd: Option<PathBuf>,
    /// Realm named in the login challenge.
    #[arg(long, env = "REGISTRY_AUTH_HTPASSWD_REALM")]
    pub realm: Option<String>,
    /// How often blobs no manifest references are deleted; a blob is kept
    /// for at least this long after its upload, so a push in progress
    /// never loses its layers. E.g. 1h, 30m.
    #[arg(long, env = "LAYERLAB_REGISTRY_GC_EVERY", default_value = "1h", value_parser = parse_duration)]
    pub gc_every: Duration,
}

/// Parses sizes the way Docker's `--memory` does (binary units, optional
/// `b`); no crate matches those semantics exactly.
fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let number = lower.trim_end_matches('b');
    let (digits, shift) = match number.chars().last() {
        Some('k') => (&number[..number.len() - 1], 10),
        Some('m') => (&number[..number.len() - 1], 20),
        Some('g') => (&number[..number.len() - 1], 30),
        _ => (number, 0),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size; use a number with k, m or g, e.g. 512m"))?;
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `HOST:PORT`, or `:PORT` for every interface (distribution's form).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    full.parse().map_err(|_| {
        format!("{text:?} is not an address to listen on; write it like 0.0.0.0:5000 or :5000")
    })
}

fn parse_signup_code(text: &str) -> Result<String, String> {
    let code = text.trim();
    if code.chars().count() < 6 {
        return Err(
            "an invitation code needs at least 6 characters, or anyone could guess it".into(),
        );
    }
    Ok(code.to_owned())
}

/// The peers whose X-Forwarded-* headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn contains(&self, peer: std::net::IpAddr) -> bool {
        // A proxy on the same host may connect over IPv4 mapped into IPv6.
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}

/// Addresses (a network of one) and CIDR networks, comma-separated.
fn parse_proxies(text: &str) -> Result<TrustedProxies, String> {
    let mut nets = Vec::new();
    for item in text.split(',').map(str::trim) {
        let net = item
            .parse::<ipnet::IpNet>()
            .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                format!(
                    "{item:?} is not an IP address or network; name your proxies like 127.0.0.1 or 10.0.0.0/8, separated by commas"
                )
            })?;
        nets.push(net.trunc());
    }
    Ok(TrustedProxies(nets))
}

fn parse_metrics_token(text: &str) -> Result<String, String> {
    if text.chars().count() < 16 || !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err(
            "a metrics token needs at least 16 printable characters and no spaces, e.g. from `openssl rand -hex 24`".into(),
        );
    }
    Ok(text.to_owned())
}

fn parse_upstream(text: &str) -> Result<::registry::Upstream, String> {
    ::registry::Upstream::new(text).map_err(|e| e.to_string())
}

fn parse_auth(text: &str) -> Result<String, String> {
    if text == "htpasswd" {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} authentication is not supported; layerlab's registry does htpasswd basic auth (REGISTRY_AUTH=htpasswd with REGISTRY_AUTH_HTPASSWD_PATH)"
        ))
    }
}

/// A number above 0 and at most `max`.
fn positive(text: &str, max: f64) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0 && *n <= max)
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    positive(text, 1024.0).ok_or_else(|| {
        format!("{text:?} is not a number of CPUs; use a number above 0, like 0.5 or 2")
    })
}

fn parse_overcommit(text: &str) -> Result<f64, String> {
    positive(text, 100.0)
        .ok_or_else(|| format!("{text:?} is not a ratio; use a number above 0, like 1 or 1.5"))
}

/// Durations like `30m`, `4h`, `90s` (humantime's syntax), at least a
/// second so a lab cannot be stopped before it starts.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write it like 30m, 4h or 90s"))?;
    if value < Duration::from_secs(1) {
        return Err(format!("{text:?} is too short; use at least 1s"));
    }
    Ok(value)
}

pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LAYERLAB_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, parse_auth, parse_duration, parse_listen, parse_proxies, parse_size};

    #[test]
    fn registry_settings_take_distributions_forms() {
        assert_eq!(
            parse_listen(":5000"),
            Ok("0.0.0.0:5000".parse().expect("addr"))
        );
        assert_eq!(
            parse_listen("127.0.0.1:5001"),
            Ok("127.0.0.1:5001".parse().expect("addr"))
        );
        for bad in ["", ":", "localhost", ":99999", "5000"] {
            let err = parse_listen(bad).expect_err(bad);
            assert!(err.contains(":5000"), "{err}");
        }
        assert_eq!(parse_auth("htpasswd"), Ok("htpasswd".to_owned()));
        let err = parse_auth("token").expect_err("token auth");
        assert!(err.contains("REGISTRY_AUTH_HTPASSWD_PATH"), "{err}");
    }

    #[test]
    fn durations_parse_and_nonsense_is_refused() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration(" 90s "), Ok(Duration::from_secs(90)));
        for bad in ["", "soon", "-5m", "0s", "10ms", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn proxies_are_addresses_or_networks() {
        let proxies = parse_proxies("127.0.0.1, 10.0.0.0/8,::1").expect("valid list");
        for trusted in ["127.0.0.1", "10.200.3.4", "::1", "::ffff:127.0.0.1"] {
            assert!(proxies.contains(trusted.parse().unwrap()), "{trusted}");
        }
        for other in ["127.0.0.2", "11.0.0.1", "::2"] {
            assert!(!proxies.contains(other.parse().unwrap()), "{other}");
        }
        for bad in [
            "",
            "true",
            "10.0.0.0/33",
            "localhost",
            "127.0.0.1,,10.0.0.1",
        ] {
            let err = parse_proxies(bad).expect_err(bad);
            assert!(err.contains("10.0.0.0/8"), "{err}");
        }
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("65536k"), Ok(65536 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-5m").is_err());
        assert!(parse_size("99999999999g").is_err());
    }
}
