//! `layerlab registry serve`: the OCI registry on its own, as the
//! `registry:2` image and lab nodes run it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::RegistryServeArgs;

/// The one namespace of a standalone registry's store.
const NAMESPACE: &str = "registry";

pub fn serve(args: RegistryServeArgs) -> anyhow::Result<ExitCode> {
    // Checked first, so a bad option leaves no storage behind.
    let htpasswd = match (&args.htpasswd, &args.auth) {
        (Some(path), _) => Some(
            registry::Htpasswd::load(path)
                .with_context(|| format!("cannot use {} for basic auth", path.display()))?,
        ),
        (None, Some(_)) => anyhow::bail!(
            "htpasswd authentication needs the file of users: set REGISTRY_AUTH_HTPASSWD_PATH (or --htpasswd FILE)"
        ),
        (None, None) => None,
    };
    let htpasswd = match (htpasswd, &args.realm) {
        (Some(file), Some(realm)) => Some(file.with_realm(realm)),
        (htpasswd, _) => htpasswd,
    };
    let store = store::Store::open(&args.root).with_context(|| {
        format!(
            "cannot open the registry storage in {}",
            args.root.display()
        )
    })?;
    let namespace = store::Namespace::new(NAMESPACE).context("registry namespace")?;
    let mut config = registry::Config::new(store, namespace);
    config.htpasswd = htpasswd;
    let registry = registry::Registry::open(config).context("cannot open the registry")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}; is another registry using that port?",
                    args.listen
                )
            })?;
        let local = listener
            .local_addr()
            .context("cannot read the listening address")?;
        tracing::info!(
            root = %args.root.display(),
            auth = args.htpasswd.is_some(),
            "registry listening on http://{local}"
        );
        let collector = tokio::spawn(collect_garbage(registry.clone(), args.gc_every));
        let served = registry::serve(listener, registry.router(), super::shutdown::on_signal())
            .await
            .context("the registry server failed");
        collector.abort();
        served
    })?;
    tracing::info!("registry stopped");
    Ok(ExitCode::SUCCESS)
}

/// Deletes, every `period`, the blobs that no manifest has referenced for
/// at least `period`.
async fn collect_garbage(registry: registry::Registry, period: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let registry = registry.clone();
        match tokio::task::spawn_blocking(move || registry.gc(period)).await {
            Ok(Ok(report)) => tracing::info!(
                released = report.released.len(),
                "registry garbage collected"
            ),
            Ok(Err(err)) => tracing::warn!(error = %err, "registry garbage collection failed"),
            Err(err) => tracing::warn!(error = %err, "registry garbage collection panicked"),
        }
    }
}
