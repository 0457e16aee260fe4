//! The exec instances a lab keeps between `docker exec`'s create, start
//! and inspect; the engine holds the table, `exec` fills and reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::types::ExecCreate;
use crate::containers::Container;
use crate::error::Error;

/// Exec instances a lab keeps; the oldest finished ones go first.
const MAX_EXECS: usize = 256;

pub struct Exec {
    pub id: String,
    pub(super) container: Arc<Container>,
    pub(super) config: ExecCreate,
    pub(super) state: Mutex<ExecState>,
}

#[derive(Default)]
pub(super) struct ExecState {
    pub(super) started: bool,
    pub(super) running: bool,
    pub(super) exit_code: Option<i32>,
    pub(super) pid: i32,
    pub(super) pty: Option<Arc<runtime::Pty>>,
}

/// The lab's exec instances.
#[derive(Default)]
pub struct Execs {
    table: Mutex<BTreeMap<String, Arc<Exec>>>,
}

impl Execs {
    pub(super) fn insert(&self, exec: Arc<Exec>) -> crate::Result<()> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_EXECS {
            let finished: Option<String> = table
                .values()
                .find(|e| e.state.lock().is_ok_and(|s| s.started && !s.running))
                .map(|e| e.id.clone());
            match finished {
                Some(old) => {
                    table.remove(&old);
                }
                None => {
                    return Err(Error::Conflict(format!(
                        "this lab has {MAX_EXECS} exec sessions open; end some first"
                    )));
                }
            }
        }
        table.insert(exec.id.clone(), exec);
        Ok(())
    }

    pub(super) fn find(&self, id: &str) -> crate::Result<Arc<Exec>> {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.to_owned()))
    }
}
