//! Password hashing with argon2id (the `argon2` crate's defaults follow
//! OWASP's recommended parameters). Hashing is deliberately slow and takes
//! 19 MiB per hash: the server runs it on a [`Hasher`], a few threads of
//! its own with a bounded queue, so neither a crowd of sign-ups nor the
//! labs' blocking work can starve logins or exhaust memory.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

pub const MIN_LEN: usize = 8;
/// Bounds the work a hostile client can make us do per login attempt.
pub const MAX_LEN: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("passwords need at least {MIN_LEN} characters")]
    TooShort,
    #[error("passwords may have at most {MAX_LEN} characters")]
    TooLong,
}

pub fn check_strength(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        Err(PasswordError::TooShort)
    } else if password.len() > MAX_LEN {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Only fails for parameters out of range, and ours are the defaults.
        .expect("argon2 with default parameters hashes any input")
}

/// Verifies a password against a stored PHC string. A corrupt stored hash
/// counts as a mismatch rather than an error the attacker could observe.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as a real verification, so a login for an unknown
/// name cannot be told apart from a wrong password by timing.
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("layerlab-dummy-password"));
    let _ = verify(password, stored);
}

/// glibc raises its mmap threshold to the size of each large block freed;
/// from then on argon2's 19 MiB blocks came from the heap and stayed
/// resident, so every hash grew the server by 19 MiB for good. A fixed
/// threshold keeps such blocks mapped only while in use.
fn keep_large_blocks_unmapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter, under glibc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HasherError {
    #[error("the server is busy checking other passwords; try again in a few seconds")]
    Busy,
    #[error("the password hashing threads are gone")]
    Gone,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that hash and verify passwords, fed by a queue of
/// bounded length; when the queue is full, callers are refused at once
/// ([`HasherError::Busy`]) rather than piling up.
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl Hasher {
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Hasher> {
        keep_large_blocks_unmapped();
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<Job>(queue);
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for a job.
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Hasher { jobs })
    }

    /// Queues `work`; the receiver yields its result.
    fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, HasherError> {
        use std::sync::mpsc::TrySendError;
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|e| match e {
                TrySendError::Full(_) => HasherError::Busy,
                TrySendError::Disconnected(_) => HasherError::Gone,
            })?;
        Ok(result)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HasherError> {
        self.submit(work)?.await.map_err(|_| HasherError::Gone)
    }

    pub async fn hash(&self, password: String) -> Result<String, HasherError> {
        self.run(move || hash(&password)).await
    }

    /// Whether `password` matches `stored`; with no stored hash (an unknown
    /// account) it spends the same time and says no.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HasherError> {
        self.run(move || match stored {
            Some(stored) => verify(&password, &stored),
            None => {
                verify_dummy(&password);
                false
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_same_password() {
        let stored = hash("correct horse");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct horsE", &stored));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[test]
    fn strength_rules() {
        assert_eq!(check_strength("short"), Err(PasswordError::TooShort));
        assert_eq!(
            check_strength(&"x".repeat(300)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(check_strength("long enough"), Ok(()));
    }

    #[tokio::test]
    async fn the_hasher_refuses_work_beyond_its_queue() {
        let hasher = Hasher::new(1, 1).unwrap();
        let stored = hasher.hash("correct horse".into()).await.unwrap();
        assert!(
            hasher
                .verify("correct horse".into(), Some(stored))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("correct horse".into(), None).await.unwrap());
        // One job running, one queued: the third is refused, not queued.
        let (started, is_started) = std::sync::mpsc::channel();
        let (gate, wait) = std::sync::mpsc::channel::<()>();
        let running = hasher
            .submit(move || {
                started.send(()).unwrap();
                wait.recv().is_ok()
            })
            .unwrap();
        is_started.recv().unwrap();
        let queued = hasher.submit(|| 7).unwrap();
        assert_eq!(hasher.submit(|| 8).err(), Some(HasherError::Busy));
        gate.send(()).unwrap();
        assert!(running.await.unwrap());
        assert_eq!(queued.await.unwrap(), 7);
    }
}
