//! User-namespace id ranges: allocation from a persisted pool and writing the
//! maps of a new namespace.
//!
//! Each sandbox maps ids 0..65535 inside to `base..base+65535` outside, where
//! `base = pool.first + slot * 65536`. A slot is taken by creating
//! `uid-slots/<slot>` with `O_EXCL` (atomic across processes, survives
//! restarts) and released by removing it once the sandbox's processes are
//! gone. Two runtimes on one machine must be given disjoint pools.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};

use crate::error::{Error, Result};
use crate::paths::Layout;

/// Ids per sandbox: all 16-bit ids, as images expect (nobody = 65534).
pub const RANGE_SIZE: u32 = 65536;

#[derive(Debug, Clone, Copy)]
pub struct UidPool {
    /// First host id of slot 0; never 0, so no sandbox id maps to host root.
    pub first: u32,
    /// Number of slots (sandboxes alive at once).
    pub count: u32,
}

impl Default for UidPool {
    fn default() -> Self {
        // Far above the ids Debian hands to users and services (and above
        // the 100000.. ranges that newuidmap users commonly get).
        Self {
            first: 1 << 28,
            count: 4096,
        }
    }
}

impl UidPool {
    pub(crate) fn validate(&self) -> Result<()> {
        let end = u64::from(self.first) + u64::from(self.count) * u64::from(RANGE_SIZE);
        if self.first < RANGE_SIZE || self.count == 0 || end > u64::from(u32::MAX) {
            return Err(Error::InvalidSpec(
                "uid pool must start at 65536 or above and end below 2^32".into(),
            ));
        }
        Ok(())
    }

    pub fn base(&self, slot: u32) -> u32 {
        self.first + slot * RANGE_SIZE
    }

    /// Takes the lowest free slot for `id`.
    pub(crate) fn allocate(&self, layout: &Layout, id: &str) -> Result<u32> {
        let dir = layout.uid_slots();
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        for slot in 0..self.count {
            let path = layout.uid_slot(slot);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(id.as_bytes())
                        .map_err(Error::io("write", &path))?;
                    return Ok(slot);
                }
                Err(e) if e.kind() == IoKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &path)(e)),
            }
        }
        Err(Error::PoolExhausted { count: self.count })
    }

    /// Releases `slot` if it still belongs to `id`.
    pub(crate) fn release(layout: &Layout, slot: u32, id: &str) -> Result<()> {
        let path = layout.uid_slot(slot);
        match fs::read_to_string(&path) {
            Ok(owner) if owner == id => fs::remove_file(&path).map_err(Error::io("remove", &path)),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }

    /// Slots whose owner has no sandbox directory any more (left by a crash
    /// between allocation and the first state write).
    pub(crate) fn orphans(layout: &Layout) -> Vec<(u32, String)> {
        let Ok(rd) = fs::read_dir(layout.uid_slots()) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let slot: u32 = e.file_name().to_str()?.parse().ok()?;
                let owner = fs::read_to_string(e.path()).ok()?;
                let alive =
                    crate::paths::check_id(&owner).is_ok() && layout.sandbox(&owner).exists();
                (!alive).then_some((slot, owner))
            })
            .collect()
    }
}

/// Writes `0 base 65536` into the uid and gid maps of process `pid`, which
/// has just created its user namespace and waits for us.
pub(crate) fn write_maps(pid: i32, base: u32) -> Result<()> {
    let line = format!("0 {base} {RANGE_SIZE}\n");
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, &line).map_err(Error::io("write", path))?;
    }
    Ok(())
}
