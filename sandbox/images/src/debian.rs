//! Where apt finds packages: Debian's archive while the catalog is built,
//! the labs' own repository ([`crate::packages`]) in the images it made.
//! Shared by the recipes, the chroots and the package repository, and
//! depending on none of them.

/// Debian's package archive; this machine reaches it, not Docker Hub.
pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// The Debian release of the catalog's Debian images and of the labs'
/// package repository.
pub const SUITE: &str = "bookworm";

/// The host name labs reach the repository by (each container's
/// `/etc/hosts` maps it to its network's gateway).
pub const HOST: &str = "packages.layerlab.internal";
/// The port the engines serve it on in each lab. Not 80: a listener on the
/// node's port 80 would make `docker run -p 80:80` fail as "address in use".
pub const PORT: u16 = 3142;
/// The URL path the repository is served under.
pub const URL_PATH: &str = "/debian";
/// Where the Debian images keep the installation's public key.
pub const KEYRING_PATH: &str = "/etc/apt/keyrings/layerlab.gpg";

/// The `/etc/apt/sources.list` of the catalog's Debian images.
pub fn sources_list() -> String {
    format!(
        "# Debian packages served inside the lab by layerlab (labs have no internet).\n\
         deb [signed-by={KEYRING_PATH}] http://{HOST}:{PORT}{URL_PATH} {SUITE} main\n"
    )
}
