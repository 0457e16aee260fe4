//! One function per subcommand: each parses nothing (that is `cli`'s job),
//! calls into the library code, and adds context to errors.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::auth::{normalize_name, password};
use crate::cli::{
    Cli, Command, DbCommand, GlobalArgs, LessonsCommand, RegistryCommand, RoleArg, SandboxCommand,
    ServeArgs, Signup, TokenCommand, UserCommand,
};
use crate::db::{Db, Role};
use crate::http;

mod registry;
mod sandbox;
mod shutdown;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Lessons(LessonsCommand::Check { dir, watch }) => lessons_check(&dir, watch),
        // Blocking work, and the sandbox helper must not start from a
        // multi-threaded process: no async runtime for these.
        Command::Images(command) => sandbox::images(&cli.global.data_dir, command),
        Command::Sandbox(SandboxCommand::Run(args)) => sandbox::run(&cli.global.data_dir, args),
        Command::Sandbox(SandboxCommand::Gc { dry_run, only }) => sandbox::gc(dry_run, &only),
        // Runs inside lab nodes and the registry image: no database.
        Command::Registry(RegistryCommand::Serve(args)) => registry::serve(args),
        command => {
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(run_async(cli.global, command))
        }
    }
}

async fn run_async(global: GlobalArgs, command: Command) -> anyhow::Result<ExitCode> {
    if let Command::Db(DbCommand::Copy { from, to }) = &command {
        return db_copy(&global, from.as_deref(), to).await;
    }
    let db = Db::open(&global.data_dir, global.database_url.as_deref())
        .await
        .with_context(|| format!("cannot open the database in {}", global.data_dir.display()))?;
    match command {
        Command::Serve(args) => serve(&global, db, args).await,
        Command::User(UserCommand::Add {
            name,
            role,
            password_stdin,
        }) => user_add(&db, &name, role, password_stdin).await,
        Command::User(UserCommand::Passwd {
            name,
            password_stdin,
        }) => user_passwd(&db, &name, password_stdin).await,
        Command::User(UserCommand::List) => user_list(&db).await,
        Command::User(UserCommand::Disable { name }) => user_enable(&db, &name, false).await,
        Command::User(UserCommand::Enable { name }) => user_enable(&db, &name, true).await,
        Command::Token(TokenCommand::List) => token_list(&db).await,
        Command::Token(TokenCommand::Revoke { id }) => token_revoke(&db, &id).await,
        Command::Token(TokenCommand::Create { user, label }) => {
            token_create(&db, &user, &label).await
        }
        Command::Lessons(_)
        | Command::Images(_)
        | Command::Sandbox(_)
        | Command::Registry(_)
        | Command::Db(_) => {
            unreachable!("handled before opening the database")
        }
    }
}

/// `layerlab db copy`: prints what it copied, table by table.
async fn db_copy(global: &GlobalArgs, from: Option<&str>, to: &str) -> anyhow::Result<ExitCode> {
    let source = Db::open(&global.data_dir, from.or(global.database_url.as_deref()))
        .await
        .context("cannot open the database to copy from")?;
    let target = Db::connect(to)
        .await
        .context("cannot open the database to copy into")?;
    let counts = source
        .copy_into(&target)
        .await
        .context("cannot copy the database")?;
    for count in &counts {
        println!("{:<16} {:>8} rows", count.table, count.rows);
    }
    eprintln!(
        "copied {} tables; start the server with --database-url pointing at the new database",
        counts.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Threads hashing passwords at once (19 MiB each) and logins or sign-ups
/// that may wait for one; more are told to try again in a few seconds.
const HASH_THREADS: usize = 2;
const HASH_QUEUE: usize = 32;

fn load_course(dir: &Path) -> anyhow::Result<course::Course> {
    match course::Course::load(dir) {
        Ok(course) => Ok(course),
        Err(diagnostics) => {
            for diagnostic in diagnostics.iter() {
                eprintln!("{diagnostic}");
            }
            bail!(
                "the course in {} has {} problem(s), listed above; fix them and start again",
                dir.display(),
                diagnostics.len()
            )
        }
    }
}

fn lessons_check(dir: &Path, watch: bool) -> anyhow::Result<ExitCode> {
    if !watch {
        let course = load_course(dir)?;
        eprintln!(
            "{}: {} lessons, no problems",
            dir.display(),
            course.lessons.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        // Taken before loading, so a change made while it loads is seen.
        let seen = crate::live_course::fingerprint(dir);
        match load_course(dir) {
            Ok(course) => eprintln!(
                "{}: {} lessons, no problems",
                dir.display(),
                course.lessons.len()
            ),
            Err(e) => eprintln!("{e}"),
        }
        eprintln!("watching {} for changes (Ctrl-C to stop)", dir.display());
        while crate::live_course::fingerprint(dir) == seen {
            std::thread::sleep(crate::live_course::WATCH_INTERVAL);
        }
    }
}

/// The server's own OOM priority, as dockerd's default: the host's OOM
/// killer takes labs (+500) long before the server that owns them.
const SERVER_OOM_SCORE_ADJ: &str = "-500";

async fn serve(global: &GlobalArgs, db: Db, args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::metrics::init();
    if let Err(err) = std::fs::write("/proc/self/oom_score_adj", SERVER_OOM_SCORE_ADJ) {
        tracing::warn!(error = %err, "cannot lower the server's OOM priority (needs CAP_SYS_RESOURCE); memory admission alone keeps labs from taking the host's memory");
    }
    if args.watch && args.lessons.is_none() {
        bail!("--watch reloads a course you are writing: give its folder with --lessons DIR");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server using that port?",
                args.listen
            )
        })?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let public_url = args
        .base_url
        .clone()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{local}"));
    if !db.admin_exists().await? {
        let token = crate::db::random_secret();
        db.set_setup_token(&token).await?;
        tracing::warn!(
            "no admin account yet: open {public_url}/setup/{token} to create one, \
             or run `layerlab user add NAME --role admin --password-stdin`"
        );
    }
    let store_dir = store_dir(global, &args);
    let runtime_dir = sandbox::runtime_dir(&global.data_dir);
    let helper = std::env::current_exe().context("cannot find the layerlab executable")?;
    let mut config = host::EmbeddedConfig::new(&store_dir, &runtime_dir, helper.clone());
    let packages = images::packages::Mirror::new(&sandbox::packages_dir(&global.data_dir));
    config.packages_dir = Some(packages.repository());
    if let Some(parent) = &args.cgroup_parent {
        config.cgroup_parent = parent.clone();
    }
    if let (Some(first), Some(count)) = (args.lab_uid_first, args.lab_uid_slots) {
        config.uid_pool = runtime::UidPool { first, count };
    }
    let host = tokio::task::spawn_blocking({
        let store_dir = store_dir.clone();
        move || {
            host::EmbeddedHost::new(config).with_context(|| {
                format!(
                    "cannot open the lab host (store {}, runtime {})",
                    store_dir.display(),
                    runtime_dir.display()
                )
            })
        }
    })
    .await??;
    let host: Arc<dyn host::SandboxHost> = Arc::new(host);
    let plan = crate::catalog::BuildPlan {
        store_dir: store_dir.clone(),
        cache_dir: sandbox::image_cache_dir(&global.data_dir),
        // registry:2 and the lab node carry this very binary.
        layerlab: helper,
        mirror: images::packages::Mirror::new(&sandbox::packages_dir(&global.data_dir)),
    };
    let build = args.missing_images == crate::cli::MissingImages::Build;
    let catalog =
        tokio::task::spawn_blocking(move || crate::catalog::Catalog::prepare(plan, build))
            .await??;
    let wall_clock: crate::labs::Clock = Arc::new(std::time::SystemTime::now);
    let state = state(global, db, &args, host, catalog, wall_clock).await?;
    let metrics_listener = match args.metrics_listen {
        Some(addr) => Some(bind_metrics(addr).await?),
        None => None,
    };
    // Tools read the first word after "listening on": the address itself.
    if args.base_url.is_some() {
        tracing::info!("listening on http://{local} (public address {public_url})");
    } else {
        tracing::info!("listening on {public_url}");
    }
    let hub = match args.hub_listen {
        Some(addr) => Some(start_hub(addr, &store_dir, args.hub_upstream).await?),
        None => None,
    };
    let served = http::serve(listener, metrics_listener, state, shutdown::on_signal()).await;
    if let Some((stop, task)) = hub {
        let _ = stop.send(());
        task.await
            .context("the hub task failed")?
            .context("the hub failed")?;
    }
    served.context("the web server failed")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn store_dir(global: &GlobalArgs, args: &ServeArgs) -> std::path::PathBuf {
    args.store_dir
        .clone()
        .unwrap_or_else(|| sandbox::store_dir(&global.data_dir))
}

/// Everything `serve` serves from, given where labs run, the catalog and
/// the clock labs expire by:
/// the course, the database, accounts' protections, labs (the ones left
/// running by the last run reconciled) and grading, configured from
/// `args`. Tests build servers on other hosts with it.
pub async fn state(
    global: &GlobalArgs,
    db: Db,
    args: &ServeArgs,
    host: Arc<dyn host::SandboxHost>,
    catalog: Arc<crate::catalog::Catalog>,
    clock: crate::labs::Clock,
) -> anyhow::Result<http::SharedState> {
    let memory_budget = crate::labs::memory_budget(args.lab_memory_overcommit)
        .context("cannot read the host's memory size from /proc/meminfo")?;
    tracing::info!(
        budget_mib = memory_budget >> 20,
        overcommit = args.lab_memory_overcommit,
        "labs may reserve this much memory in total"
    );
    let lessons_dir = match args.lessons.clone() {
        Some(dir) => dir,
        None => crate::bundled::course_dir(&global.data_dir)?,
    };
    // Taken before loading, so a change made meanwhile reloads it.
    let fingerprint = args
        .watch
        .then(|| crate::live_course::fingerprint(&lessons_dir));
    let course = load_course(&lessons_dir)?;
    let csrf = crate::auth::csrf::CsrfKey::load_or_create(&global.data_dir.join("form-key"))
        .context("cannot read or create the form signing key in the data directory")?;
    let settings = http::Settings {
        origin: args
            .base_url
            .as_ref()
            .map(|u| u.origin().ascii_serialization()),
        secure_cookies: args
            .base_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https"),
        signup_open: args.signup == Signup::Open,
        signup_code: args.signup_code.clone(),
        socket_timeout: args.socket_timeout,
        trust_proxy: args.trust_proxy.clone(),
        metrics_token: args.metrics_token.clone(),
    };
    let grading = crate::grading::Grading::new(host.clone(), db.clone());
    let labs = Arc::new(
        crate::labs::Labs::new(
            host,
            db.clone(),
            crate::labs::Limits {
                max_labs: args.max_labs as usize,
                max_per_user: args.max_labs_per_user as usize,
                memory_budget,
                cpus: args.lab_cpus,
                expiry: host::Expiry {
                    idle: args.lab_idle_timeout,
                    max_lifetime: args.lab_max_lifetime,
                },
            },
            &course,
            catalog.clone(),
        )
        .with_clock(clock),
    );
    // Labs keep running while the server is down; pick them up again.
    labs.reconcile()
        .await
        .context("cannot reconcile the labs left by the last run")?;
    let hasher = password::Hasher::new(HASH_THREADS, HASH_QUEUE)
        .context("cannot start the password hashing threads")?;
    let course = Arc::new(crate::live_course::LiveCourse::new(course, args.watch));
    if let Some(fingerprint) = fingerprint {
        course.watch(lessons_dir.clone(), fingerprint);
    }
    let state = Arc::new(http::AppState {
        hasher,
        db,
        labs,
        grading,
        course,
        catalog,
        settings,
        csrf,
        login_limiter: Default::default(),
        signup_limiter: Default::default(),
        store_size: crate::metrics::StoreSize::new(&store_dir(global, args)),
    });
    tracing::info!(lessons = state.course.course().lessons.len(), dir = %lessons_dir.display(), watch = args.watch, "course loaded");
    Ok(state)
}

/// Binds the metrics listener and says where it is.
async fn bind_metrics(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let (listener, local) = bind(addr, "metrics").await?;
    // Tools read the first word after "metrics at": the URL itself.
    tracing::info!("metrics at http://{local}/metrics");
    Ok(listener)
}

/// A listener on `addr` for `what`, and the address it got.
async fn bind(
    addr: std::net::SocketAddr,
    what: &str,
) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}; is that port in use?"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("cannot read the {what} address"))?;
    Ok((listener, local))
}

/// Binds the hub's listener and serves it until the returned sender fires.
async fn start_hub(
    addr: std::net::SocketAddr,
    store_dir: &Path,
    upstream: Option<::registry::Upstream>,
) -> anyhow::Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let store = store::Store::open(store_dir)
        .with_context(|| format!("cannot open the image store in {}", store_dir.display()))?;
    if let Some(upstream) = &upstream {
        tracing::info!(upstream = %upstream.url(), "the hub pulls what the catalog lacks through");
    }
    let router = ::registry::hub(store, upstream)
        .context("cannot open the hub")?
        .layer(axum::middleware::from_fn(crate::metrics::hub_traffic));
    let (listener, local) = bind(addr, "the hub").await?;
    tracing::info!("hub serving the catalog at http://{local}/v2/");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(::registry::serve(listener, router, async {
        let _ = stopped.await;
    }));
    Ok((stop, task))
}

/// Reads a password from standard input, or generates one (printed on
/// standard output) when `--password-stdin` is not given.
fn obtain_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((crate::db::random_secret()[..20].to_string(), true));
    }
    if std::io::stdin().is_terminal() {
        eprintln!("password (the input is shown; pipe it in to hide it):");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    password::check_strength(&password)?;
    Ok((password, false))
}

async fn user_add(
    db: &Db,
    name: &str,
    role: RoleArg,
    password_stdin: bool,
) -> anyhow::Result<ExitCode> {
    let name = normalize_name(name)?;
    let role = match role {
        RoleArg::Student => Role::Student,
        RoleArg::Instructor => Role::Instructor,
        RoleArg::Admin => Role::Admin,
    };
    let (pw, generated) = obtain_password(password_stdin)?;
    let hash = tokio::task::spawn_blocking({
        let pw = pw.clone();
        move || password::hash(&pw)
    })
    .await?;
    let user = db.create_user(&name, &hash, role).await?;
    eprintln!("created {} {}", user.role, user.name);
    if generated {
        println!("{pw}");
        eprintln!("(the line above is the generated password; it is not shown again)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn user_passwd(db: &Db, name: &str, password_stdin: bool) -> anyhow::Result<ExitCode> {
    let name = normalize_name(name)?;
    let (pw, generated) = obtain_password(password_stdin)?;
    let hash = tokio::task::spawn_blocking({
        let pw = pw.clone();
        move || password::hash(&pw)
    })
    .await?;
    db.set_password(&name, &hash).await?;
    eprintln!("password of {name} changed; their browser sessions and API tokens were ended");
    if generated {
        println!("{pw}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn user_list(db: &Db) -> anyhow::Result<ExitCode> {
    let users = db.list_users().await?;
    println!("{:<32} {:<10} {:<10} CREATED", "NAME", "ROLE", "STATUS");
    for user in users {
        let status = if user.disabled { "disabled" } else { "active" };
        println!(
            "{:<32} {:<10} {status:<10} {}",
            user.name,
            user.role.as_str(),
            date(user.created_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A unix time as its UTC date, `2026-01-31`.
fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

async fn user_enable(db: &Db, name: &str, enable: bool) -> anyhow::Result<ExitCode> {
    let name = normalize_name(name)?;
    db.set_disabled(&name, !enable).await?;
    if enable {
        eprintln!("{name} is enabled again");
    } else {
        eprintln!("{name} is disabled: their sessions ended and their API tokens are refused");
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_list(db: &Db) -> anyhow::Result<ExitCode> {
    println!(
        "{:<12} {:<32} {:<20} {:<10} LAST USED",
        "ID", "USER", "LABEL", "CREATED"
    );
    for token in db.list_tokens().await? {
        let used = token
            .last_used_at
            .map(date)
            .unwrap_or_else(|| "never".into());
        println!(
            "{:<12} {:<32} {:<20} {:<10} {used}",
            token.id,
            token.user,
            token.label,
            date(token.created_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_revoke(db: &Db, id: &str) -> anyhow::Result<ExitCode> {
    if !db.revoke_token(id.trim()).await? {
        bail!("there is no token with id {id:?}; `layerlab token list` shows them");
    }
    eprintln!("token {id} revoked");
    Ok(ExitCode::SUCCESS)
}

async fn token_create(db: &Db, name: &str, label: &str) -> anyhow::Result<ExitCode> {
    let name = normalize_name(name)?;
    let user = db.user_by_name(&name).await?;
    let token = db.create_token(&user.id, label).await?;
    println!("{token}");
    eprintln!(
        "token for {} created; send it as `Authorization: Bearer <token>`; it is not shown again",
        user.name
    );
    Ok(ExitCode::SUCCESS)
}
