//! Rate limits: logins per client address and per account from that
//! address, which slow a guesser down without locking the account's owner
//! out;
//! sign-ups per client address and per server, so nobody mints accounts
//! by the hundred.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

/// Login attempts allowed per account from one client address: a burst of
/// 5, then one every 12 seconds. Keyed by address too, so an attacker
/// slows down only themselves: the account's owner, elsewhere, still gets
/// in.
const PER_ACCOUNT_BURST: u32 = 5;
const PER_ACCOUNT_PERIOD: Duration = Duration::from_secs(12);
/// Attempts allowed per client address, for all accounts together: a
/// class behind one NAT logs in at once (a burst of 60), then one a second.
const PER_IP_BURST: u32 = 60;
const PER_IP_PERIOD: Duration = Duration::from_secs(1);
/// Accounts created per client address: a class behind one NAT signs up
/// together (a burst of 30), then one every 10 seconds.
const SIGNUP_PER_IP_BURST: u32 = 30;
const SIGNUP_PER_IP_PERIOD: Duration = Duration::from_secs(10);
/// Accounts created on the whole server: a burst of 100, then one every 2
/// seconds.
const SIGNUP_BURST: u32 = 100;
const SIGNUP_PERIOD: Duration = Duration::from_secs(2);

fn quota(burst: u32, period: Duration) -> Quota {
    Quota::with_period(period)
        .expect("period is non-zero")
        .allow_burst(NonZeroU32::new(burst).expect("burst is non-zero"))
}

/// Whole seconds until a refused attempt would be allowed, at least 1.
pub fn wait_secs(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    not_until
        .wait_time_from(DefaultClock::default().now())
        .as_secs()
        .max(1)
}

/// `1 second`, `5 seconds`: how long a refused client should wait.
pub fn seconds(n: &u64) -> String {
    if *n == 1 {
        "1 second".to_owned()
    } else {
        format!("{n} seconds")
    }
}

pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<(String, IpAddr)>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Limited {
    #[error(
        "too many login attempts for this account from your network address; wait {} and try again",
        seconds(.0)
    )]
    Account(u64),
    #[error(
        "too many login attempts from your network address; wait {} and try again",
        seconds(.0)
    )]
    Address(u64),
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            per_account: DefaultKeyedRateLimiter::keyed(quota(
                PER_ACCOUNT_BURST,
                PER_ACCOUNT_PERIOD,
            )),
            per_ip: DefaultKeyedRateLimiter::keyed(quota(PER_IP_BURST, PER_IP_PERIOD)),
        }
    }
}

impl LoginLimiter {
    /// Takes one attempt from both budgets, or says which one is empty.
    pub fn attempt(&self, account: &str, ip: IpAddr) -> Result<(), Limited> {
        self.per_ip
            .check_key(&ip)
            .map_err(|e| Limited::Address(wait_secs(e)))?;
        self.per_account
            .check_key(&(account.to_string(), ip))
            .map_err(|e| Limited::Account(wait_secs(e)))?;
        Ok(())
    }

    /// Drops the state of keys that are back at full budget; called
    /// periodically so memory stays bounded under a spray of names.
    pub fn forget_idle(&self) {
        self.per_account.retain_recent();
        self.per_ip.retain_recent();
    }
}

pub struct SignupLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    overall: DefaultDirectRateLimiter,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignupLimited {
    #[error(
        "too many accounts were created from your network address; wait {} and try again",
        seconds(.0)
    )]
    Address(u64),
    #[error(
        "too many accounts are being created right now; wait {} and try again",
        seconds(.0)
    )]
    Server(u64),
}

impl Default for SignupLimiter {
    fn default() -> Self {
        SignupLimiter {
            per_ip: DefaultKeyedRateLimiter::keyed(quota(
                SIGNUP_PER_IP_BURST,
                SIGNUP_PER_IP_PERIOD,
            )),
            overall: DefaultDirectRateLimiter::direct(quota(SIGNUP_BURST, SIGNUP_PERIOD)),
        }
    }
}

impl SignupLimiter {
    /// Takes one sign-up from the address's budget and the server's.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), SignupLimited> {
        self.per_ip
            .check_key(&ip)
            .map_err(|e| SignupLimited::Address(wait_secs(e)))?;
        self.overall
            .check()
            .map_err(|e| SignupLimited::Server(wait_secs(e)))
    }

    pub fn forget_idle(&self) {
        self.per_ip.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_counted_in_seconds_in_plain_english() {
        assert_eq!(
            Limited::Address(1).to_string(),
            "too many login attempts from your network address; wait 1 second and try again"
        );
        assert_eq!(
            SignupLimited::Server(30).to_string(),
            "too many accounts are being created right now; wait 30 seconds and try again"
        );
    }

    #[test]
    fn account_budget_runs_out_and_other_accounts_are_unaffected() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..PER_ACCOUNT_BURST {
            assert_eq!(limiter.attempt("alice", ip), Ok(()));
        }
        assert!(matches!(
            limiter.attempt("alice", ip),
            Err(Limited::Account(_))
        ));
        assert_eq!(limiter.attempt("bob", ip), Ok(()));
        let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(limiter.attempt("alice", elsewhere), Ok(()));
    }

    #[test]
    fn address_budget_covers_all_accounts() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..PER_IP_BURST {
            assert_eq!(limiter.attempt(&format!("user{i}"), ip), Ok(()));
        }
        assert!(matches!(
            limiter.attempt("another", ip),
            Err(Limited::Address(_))
        ));
    }

    #[test]
    fn signups_are_limited_per_address_and_per_server() {
        let limiter = SignupLimiter::default();
        let ip: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..SIGNUP_PER_IP_BURST {
            assert_eq!(limiter.attempt(ip), Ok(()));
        }
        assert!(matches!(
            limiter.attempt(ip),
            Err(SignupLimited::Address(_))
        ));
        let mut others = (0u32..).map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        for _ in SIGNUP_PER_IP_BURST..SIGNUP_BURST {
            assert_eq!(limiter.attempt(others.next().unwrap()), Ok(()));
        }
        assert!(matches!(
            limiter.attempt(others.next().unwrap()),
            Err(SignupLimited::Server(_))
        ));
    }
}
