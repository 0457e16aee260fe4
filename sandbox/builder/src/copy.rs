//! COPY and ADD sources: found in the context (or in another stage's
//! image for `--from`), spooled as tars beside the context, summed for the
//! cache key, and rewritten into the entries the step unpacks under its
//! destination.
//!
//! The context is read only through its open root with the store's
//! resolve-in-root walkers, so no source path or symlink in it leads
//! outside; a path that climbs out is refused by name first, in dockerd's
//! words.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::BuildError;

/// Sources one COPY may name after wildcards are expanded.
const MAX_SOURCES: usize = 10_000;

/// One source, spooled.
pub struct Source {
    spool: File,
    /// Its path as the Dockerfile named it, for messages.
    pub shown: String,
    /// A directory, whose contents are copied rather than itself.
    pub is_dir: bool,
    /// The name of its top entry (the source's last component).
    pub name: String,
    /// `sha256` of its entries' headers and contents, hex.
    pub sum: String,
    /// Fetched from a URL: never unpacked, as dockerd leaves remote files.
    pub fetched: bool,
}

impl Source {
    /// Spools `data` (a tar whose top entry is the source) and sums it.
    fn spool(
        shown: &str,
        scratch: &Path,
        whole_tree: bool,
        write: impl FnOnce(&mut File) -> Result<(), BuildError>,
    ) -> Result<Source, BuildError> {
        let mut spool = tempfile::tempfile_in(scratch)
            .map_err(|e| BuildError::failed(format!("cannot spool a COPY source: {e}")))?;
        write(&mut spool)?;
        let io =
            |e: std::io::Error| BuildError::failed(format!("reading COPY source {shown}: {e}"));
        spool.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut hasher = Sha256::new();
        // A whole tree (the context's root) has no top entry of its own.
        let mut top: Option<(String, bool)> = whole_tree.then(|| (String::new(), true));
        let mut archive = tar::Archive::new(&spool);
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let header = entry.header();
            let path = entry.path_bytes().into_owned();
            let link = entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default();
            if top.is_none() {
                let name = String::from_utf8_lossy(&path)
                    .trim_end_matches('/')
                    .to_owned();
                top = Some((name, header.entry_type().is_dir()));
            }
            // Names, modes, owners, sizes, types and link targets: what
            // makes a copy differ; mtimes do not (a `touch` keeps the cache).
            hasher.update(&path);
            hasher.update([0]);
            hasher.update(format!(
                "{:o} {} {} {} {}",
                header.mode().map_err(io)?,
                header.uid().map_err(io)?,
                header.gid().map_err(io)?,
                header.size().map_err(io)?,
                header.entry_type().as_byte()
            ));
            hasher.update([0]);
            hasher.update(&link);
            hasher.update([0]);
            std::io::copy(&mut entry, &mut HashWriter(&mut hasher)).map_err(io)?;
        }
        let (name, is_dir) = top.ok_or_else(|| not_found(shown))?;
        Ok(Source {
            spool,
            shown: shown.to_owned(),
            is_dir,
            name,
            sum: hex::encode(hasher.finalize()),
            fetched: false,
        })
    }

    /// The source's entries as a tar for the directory they land in: a
    /// directory's contents under their own names, a file (or link) as
    /// `rename` when given, else under its own name. Owners become
    /// `owner` (root's without `--chown`), modes `mode` when given.
    pub fn write_entries(
        &mut self,
        rename: Option<&str>,
        owner: (u64, u64),
        mode: Option<u32>,
        out: impl Write,
    ) -> Result<(), BuildError> {
        let shown = self.shown.clone();
        let io = |e: std::io::Error| BuildError::failed(format!("copying {shown}: {e}"));
        self.spool.seek(SeekFrom::Start(0)).map_err(io)?;
        let top = self.name.clone();
        let is_dir = self.is_dir;
        let target = |path: &[u8]| -> Option<PathBuf> {
            let path = String::from_utf8_lossy(path).into_owned();
            let path = path.trim_end_matches('/');
            if is_dir && top.is_empty() {
                Some(PathBuf::from(path)).filter(|p| !p.as_os_str().is_empty())
            } else if is_dir {
                path.strip_prefix(&top)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .filter(|rest| !rest.is_empty())
                    .map(PathBuf::from)
            } else {
                Some(PathBuf::from(rename.unwrap_or(path)))
            }
        };
        let mut builder = tar::Builder::new(out);
        let mut archive = tar::Archive::new(&self.spool);
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let Some(path) = target(&entry.path_bytes()) else {
                continue;
            };
            let mut header = entry.header().clone();
            header.set_uid(owner.0);
            header.set_gid(owner.1);
            if let Some(mode) = mode {
                header.set_mode(mode);
            }
            match header.entry_type() {
                tar::EntryType::Link => {
                    let link = entry
                        .link_name_bytes()
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    let Some(link) = target(&link) else { continue };
                    builder.append_link(&mut header, &path, &link).map_err(io)?;
                }
                tar::EntryType::Symlink => {
                    let link = entry
                        .link_name()
                        .map_err(io)?
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    builder.append_link(&mut header, &path, &link).map_err(io)?;
                }
                _ => builder
                    .append_data(&mut header, &path, &mut entry)
                    .map_err(io)?,
            }
        }
        builder.into_inner().map_err(io)?.flush().map_err(io)
    }

    /// A regular file's contents, when they are a tar archive (plain,
    /// gzip or zstd) that ADD unpacks.
    pub fn archive(&mut self) -> Result<Option<File>, BuildError> {
        if self.is_dir {
            return Ok(None);
        }
        let shown = self.shown.clone();
        let io = |e: std::io::Error| BuildError::failed(format!("reading {shown}: {e}"));
        self.spool.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut archive = tar::Archive::new(&self.spool);
        let Some(entry) = archive.entries().map_err(io)?.next() else {
            return Ok(None);
        };
        let mut entry = entry.map_err(io)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Ok(None);
        }
        let mut head = Vec::with_capacity(512);
        (&mut entry).take(512).read_to_end(&mut head).map_err(io)?;
        let is_archive = head.starts_with(&[0x1f, 0x8b])
            || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            || (head.len() >= 262 && &head[257..262] == b"ustar");
        if !is_archive {
            return Ok(None);
        }
        let mut file = tempfile::tempfile().map_err(io)?;
        file.write_all(&head).map_err(io)?;
        std::io::copy(&mut entry, &mut file).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        Ok(Some(file))
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn not_found(shown: &str) -> BuildError {
    BuildError::failed(format!(
        "COPY failed: file not found in build context or excluded by .dockerignore: stat {shown}: file does not exist"
    ))
}

/// `path` made relative to the context's root, refused when it climbs out
/// of it (`COPY ../../etc x`).
pub fn in_context(path: &str) -> Result<String, BuildError> {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(BuildError::failed(format!(
                        "forbidden path outside the build context: {path} ()"
                    )));
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(parts.join("/"))
}

/// The context's sources a COPY names: wildcards (`*`, `?`, `[…]`, as Go's
/// `filepath.Match` reads them) match paths of the context.
pub fn from_context(
    root: &File,
    context: &Path,
    patterns: &[String],
    scratch: &Path,
) -> Result<Vec<Source>, BuildError> {
    let mut sources = Vec::new();
    for pattern in patterns {
        let rel = in_context(pattern)?;
        let paths = if rel.contains(['*', '?', '[']) {
            let mut found = Vec::new();
            walk_matches(context, Path::new(""), &rel, &mut found)?;
            if found.is_empty() {
                return Err(BuildError::failed(
                    "COPY failed: no source files were specified",
                ));
            }
            found
        } else {
            vec![rel]
        };
        for path in paths {
            if sources.len() >= MAX_SOURCES {
                return Err(BuildError::failed(format!(
                    "COPY names more than {MAX_SOURCES} sources: copy their directory instead"
                )));
            }
            let shown = if path.is_empty() {
                ".".to_owned()
            } else {
                path.clone()
            };
            sources.push(Source::spool(&shown, scratch, path.is_empty(), |spool| {
                store::archive::write_tar_of(
                    root,
                    &path,
                    &store::DiffOptions {
                        compression: store::Compression::None,
                        ..store::DiffOptions::default()
                    },
                    spool,
                )
                .map(drop)
                .map_err(|e| {
                    if e.kind() == store::ErrorKind::NotFound {
                        not_found(&shown)
                    } else {
                        BuildError::failed(format!("COPY failed: {e}"))
                    }
                })
            })?);
        }
    }
    Ok(sources)
}

/// Paths under `dir` (relative to the context, `rel`) matching `pattern`;
/// a matching directory is taken whole. Only directories whose path can
/// still match are entered, and nothing is followed.
fn walk_matches(
    context: &Path,
    rel: &Path,
    pattern: &str,
    found: &mut Vec<String>,
) -> Result<(), BuildError> {
    let depth = pattern.split('/').count();
    let io = |e: std::io::Error| BuildError::failed(format!("reading the build context: {e}"));
    let mut entries: Vec<_> = std::fs::read_dir(context.join(rel))
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = rel.join(entry.file_name());
        let Some(text) = path.to_str() else { continue };
        let level = path.components().count();
        let prefix: Vec<&str> = pattern.split('/').take(level).collect();
        if !glob_match(&prefix.join("/"), text) {
            continue;
        }
        if level == depth {
            found.push(text.to_owned());
        } else if entry.file_type().map_err(io)?.is_dir() {
            walk_matches(context, &path, pattern, found)?;
        }
        if found.len() > MAX_SOURCES {
            break;
        }
    }
    Ok(())
}

/// Go's `filepath.Match`: `*` and `?` never cross a `/`, `[…]` classes
/// with ranges and `^`/`!` negation, `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        let mut i = 1;
        let negate = matches!(p.get(i), Some('^') | Some('!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() && (first || p[i] != ']') {
            first = false;
            let mut lo = p[i];
            if lo == '\\' {
                i += 1;
                lo = *p.get(i)?;
            }
            let mut hi = lo;
            if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
                hi = p[i + 2];
                i += 2;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 1;
        }
        (i < p.len()).then_some((matched != negate, i + 1))
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&k| k == 0 || n[k - 1] != '/')
                .any(|k| go(&p[1..], &n[k..])),
            Some('?') => n.first().is_some_and(|&c| c != '/') && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), n.first().and_then(|&c| class(p, c))) {
                (Some(&c), Some((true, used))) if c != '/' => go(&p[used..], &n[1..]),
                _ => false,
            },
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// A file fetched from `url` (`ADD http://…`) by `fetch`: a source named
/// by the URL's last path segment, mode 0600 as dockerd gives a remote
/// file, never unpacked.
pub fn from_url(
    url: &str,
    scratch: &Path,
    fetch: impl FnOnce(&mut File) -> Result<(), BuildError>,
) -> Result<Source, BuildError> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(_, path)| path.rsplit('/').next())
        .filter(|name| !name.is_empty() && *name != "." && *name != "..")
        .ok_or_else(|| {
            BuildError::failed(format!(
                "cannot determine a file name from the URL {url}: name the file in the URL's path"
            ))
        })?
        .to_owned();
    let io = |e: std::io::Error| BuildError::failed(format!("ADD {url}: {e}"));
    let mut body = tempfile::tempfile_in(scratch).map_err(io)?;
    fetch(&mut body)?;
    let size = body.metadata().map_err(io)?.len();
    body.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut source = Source::spool(url, scratch, false, |spool| {
        let mut tar = tar::Builder::new(spool);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        tar.append_data(&mut header, &name, &mut body).map_err(io)?;
        tar.finish().map_err(io)
    })?;
    source.fetched = true;
    Ok(source)
}

/// Spools `path` of another stage's image (`COPY --from`).
pub fn from_image(
    shown: &str,
    scratch: &Path,
    copy_out: impl FnOnce(&mut File) -> Result<(), BuildError>,
) -> Result<Source, BuildError> {
    Source::spool(shown, scratch, false, copy_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_that_climb_out_are_refused() {
        assert_eq!(in_context("./a/../b/").expect("inside"), "b");
        assert_eq!(in_context("/etc/passwd").expect("rooted"), "etc/passwd");
        assert_eq!(in_context(".").expect("root"), "");
        let e = in_context("../../etc").expect_err("outside");
        assert_eq!(
            e.to_string(),
            "forbidden path outside the build context: ../../etc ()"
        );
    }

    #[test]
    fn wildcards_match_as_gos_filepath_match() {
        for (pattern, name, expected) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("dir/*.txt", "dir/a.txt", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("*", "", true),
            ("[", "[", false),
        ] {
            assert_eq!(glob_match(pattern, name), expected, "{pattern} {name}");
        }
    }

    fn context() -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("src/lib")).expect("mkdir");
        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}").expect("write");
        std::fs::write(dir.path().join("src/lib/x.rs"), "x").expect("write");
        std::fs::write(dir.path().join("a.txt"), "a").expect("write");
        std::fs::write(dir.path().join("b.txt"), "b").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("escape")).expect("link");
        let root = File::open(dir.path()).expect("open");
        (dir, root)
    }

    fn names(source: &mut Source, rename: Option<&str>) -> Vec<(String, u64)> {
        let mut tar = Vec::new();
        source
            .write_entries(rename, (1000, 1000), None, &mut tar)
            .expect("entries");
        tar::Archive::new(&tar[..])
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path().expect("path").display().to_string(),
                    e.header().uid().expect("uid"),
                )
            })
            .collect()
    }

    #[test]
    fn a_directory_copies_its_contents_and_a_file_itself() {
        let (dir, root) = context();
        let scratch = tempfile::tempdir().expect("scratch");
        let mut sources = from_context(
            &root,
            dir.path(),
            &["src".into(), "*.txt".into(), ".".into()],
            scratch.path(),
        )
        .expect("sources");
        assert_eq!(sources.len(), 4);
        // The context itself: its contents, no top entry.
        assert!(sources[3].is_dir);
        let all = names(&mut sources[3], None);
        assert!(all.iter().any(|(n, _)| n == "a.txt"), "{all:?}");
        assert!(all.iter().any(|(n, _)| n == "src/lib/x.rs"), "{all:?}");
        assert!(sources[0].is_dir);
        assert_eq!(
            names(&mut sources[0], None),
            [
                ("lib".into(), 1000),
                ("lib/x.rs".into(), 1000),
                ("main.rs".into(), 1000)
            ]
        );
        assert_eq!(
            names(&mut sources[1], Some("renamed")),
            [("renamed".into(), 1000)]
        );
        assert_ne!(sources[1].sum, sources[2].sum);
        // The same bytes sum the same, whenever they are read.
        let again =
            from_context(&root, dir.path(), &["a.txt".into()], scratch.path()).expect("again");
        assert_eq!(again[0].sum, sources[1].sum);
    }

    #[test]
    fn missing_sources_and_links_out_say_what_is_wrong() {
        let (dir, root) = context();
        let scratch = tempfile::tempdir().expect("scratch");
        let e = from_context(&root, dir.path(), &["nope".into()], scratch.path())
            .err()
            .expect("missing");
        assert_eq!(
            e.to_string(),
            "COPY failed: file not found in build context or excluded by .dockerignore: stat nope: file does not exist"
        );
        let e = from_context(&root, dir.path(), &["*.md".into()], scratch.path())
            .err()
            .expect("no match");
        assert_eq!(e.to_string(), "COPY failed: no source files were specified");
        // A link that points out of the context is copied as a link, and a
        // path through it resolves inside the context, not on the host.
        let mut link =
            from_context(&root, dir.path(), &["escape".into()], scratch.path()).expect("link");
        assert_eq!(names(&mut link[0], None), [("escape".into(), 1000)]);
        let e = from_context(&root, dir.path(), &["escape/x".into()], scratch.path())
            .err()
            .expect("through the link");
        assert!(e.to_string().contains("file not found"), "{e}");
    }
}
