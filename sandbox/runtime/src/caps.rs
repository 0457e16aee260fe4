//! Capabilities: Docker's default set, relative to the sandbox's user
//! namespace (so even these grant nothing over host-owned objects).

use caps::{CapSet, Capability};

use crate::error::{Error, Result};

/// Docker's default capability set.
pub const DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Shrinks the bounding set to [`DEFAULT`] and sets the other sets to it
/// (ambient cleared): what survives exec for root, and nothing more.
pub fn restrict_to_default() -> Result<()> {
    let keep: caps::CapsHashSet = DEFAULT.into_iter().collect();
    let err = |e: caps::errors::CapsError| Error::Sys {
        what: "set capabilities",
        source: std::io::Error::other(e.to_string()),
    };
    for cap in caps::all() {
        if !keep.contains(&cap) {
            // Capabilities newer than the running kernel do not exist there.
            if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap).map_err(err)?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(err)?;
    caps::set(None, CapSet::Inheritable, &keep).map_err(err)?;
    caps::set(None, CapSet::Effective, &keep).map_err(err)?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err)?;
    Ok(())
}
