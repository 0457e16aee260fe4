//! `layerlab images …`, `layerlab sandbox run` and `layerlab sandbox gc`:
//! the catalog and the runtime from the command line, without the web
//! server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{ImagesCommand, SandboxRunArgs};

/// Where the data directory keeps the shared content store.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// Build cache of the catalog recipes (debootstrap trees, downloaded .debs).
pub fn image_cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cache").join("images")
}

/// The labs' Debian package repository and its signing key.
pub fn packages_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("packages")
}

/// Per-sandbox state: allocated uid ranges, state.json, pids to adopt.
pub fn runtime_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runtime")
}

fn open_store(data_dir: &Path) -> anyhow::Result<store::Store> {
    let dir = store_dir(data_dir);
    store::Store::open(&dir)
        .with_context(|| format!("cannot open the image store in {}", dir.display()))
}

pub fn images(data_dir: &Path, command: ImagesCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(data_dir)?;
    match command {
        ImagesCommand::Build => {
            // registry:2 and the lab node carry this very binary.
            let layerlab =
                std::env::current_exe().context("cannot find the layerlab executable")?;
            let mirror = images::packages::Mirror::new(&packages_dir(data_dir));
            let built = images::build_catalog(
                &store,
                &image_cache_dir(data_dir),
                &layerlab,
                &mirror,
                |event| eprintln!("{event}"),
            )
            .context("building the catalog failed")?;
            eprintln!("{} catalog images ready", built.len());
        }
        ImagesCommand::List => {
            println!(
                "{:<28} {:<14} {:>6} {:>10}",
                "NAME", "IMAGE ID", "LAYERS", "SIZE"
            );
            for image in images::list(&store).context("cannot list the hub")? {
                let id = image.config_digest.to_string();
                let short = id.trim_start_matches("sha256:").get(..12).unwrap_or("");
                let internal = if image.internal { "  (internal)" } else { "" };
                let size = format!("{:.1}MB", image.size as f64 / 1e6);
                println!(
                    "{:<28} {short:<14} {:>6} {size:>10}{internal}",
                    image.name, image.layers
                );
            }
        }
        ImagesCommand::Export { name, file } => {
            let digest = images::export(&store, &name, &file)
                .with_context(|| format!("cannot export {name} to {}", file.display()))?;
            eprintln!("wrote {name} ({digest}) to {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(data_dir: &Path, args: SandboxRunArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(data_dir)?;
    let reference = store::Reference::parse(&args.image)
        .with_context(|| format!("{:?} is not an image name", args.image))?;
    let digest = store.resolve(&images::hub(), &reference).with_context(|| {
        format!("image {reference} is not in the catalog; build it with `layerlab images build`")
    })?;
    let image = store
        .image(&digest)
        .with_context(|| format!("cannot read image {reference}"))?;
    let config = image
        .config()
        .with_context(|| format!("image {reference} has an unreadable config"))?;
    // The lease keeps GC away from these layers until the command ends.
    let unpacked = store
        .unpack(&digest)
        .with_context(|| format!("cannot unpack image {reference}"))?;

    let id = format!("run-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut spec = runtime::SandboxSpec::new(id, unpacked.lowerdirs.clone());
    spec.limits.memory_bytes = args.memory;
    spec.limits.pids = args.pids;
    if let Some(run_config) = config.config() {
        for pair in run_config.env().iter().flatten() {
            if let Some((key, value)) = pair.split_once('=') {
                spec.env.insert(key.to_string(), value.to_string());
            }
        }
        if let Some(dir) = run_config
            .working_dir()
            .as_deref()
            .filter(|d| !d.is_empty())
        {
            spec.cwd = dir.to_string();
        }
    }
    let helper = std::env::current_exe()
        .context("cannot find the layerlab executable to run the sandbox helper")?;
    let runtime_config = runtime::RuntimeConfig::new(runtime_dir(data_dir), helper);
    let status = runtime::run_once(&runtime_config, spec, args.command, args.tty)
        .context("the sandbox failed")?;
    drop(unpacked);
    Ok(exit_code(status))
}

pub fn gc(dry_run: bool, only: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let helper = std::env::current_exe().context("cannot find the layerlab executable")?;
    let dirs: Vec<PathBuf> = only.iter().map(|d| runtime_dir(d)).collect();
    let scope = (!dirs.is_empty()).then_some(dirs.as_slice());
    let orphans = runtime::gc(&helper, scope, dry_run).context("sandbox gc failed")?;
    println!("{:<24} {:<40} STATE DIRECTORY", "SANDBOX", "WHY");
    for o in &orphans {
        println!(
            "{:<24} {:<40} {}",
            o.id,
            o.reason.to_string(),
            o.state_dir.display()
        );
    }
    let done = if dry_run { "found" } else { "removed" };
    eprintln!("{} orphaned sandboxes {done}", orphans.len());
    Ok(ExitCode::SUCCESS)
}

/// The command's exit code, or 128 + signal like a shell reports it.
fn exit_code(status: runtime::ExitStatus) -> ExitCode {
    ExitCode::from(u8::try_from(status.shell_code()).unwrap_or(1))
}
