//! The policy in force, replaced atomically when the policy file is reloaded. A request
//! takes the current policy once, so one push is judged by one policy from start to end.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::{Policy, PolicyError};

/// How often the policy file's modification time and size are compared for changes.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The current policy and the file it came from.
#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<Arc<Policy>>,
    /// The `--policy` file; `None` for the built-in default, which never reloads.
    path: Option<PathBuf>,
}

impl PolicyStore {
    pub fn new(policy: Policy, path: Option<PathBuf>) -> Self {
        Self {
            current: RwLock::new(Arc::new(policy)),
            path,
        }
    }

    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// Reads the policy file again and puts it in force. An invalid file leaves the policy
    /// in force unchanged and returns the error.
    pub fn reload(&self) -> Result<Arc<Policy>, PolicyError> {
        let Some(path) = &self.path else {
            return Ok(self.current());
        };
        let policy = Arc::new(Policy::load(path)?);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = policy.clone();
        Ok(policy)
    }

    /// Reloads and logs the outcome. `trigger` names the cause of the reload in the log.
    pub fn reload_and_log(&self, trigger: &str) -> bool {
        match self.reload() {
            Ok(policy) => {
                tracing::info!(
                    policy = %policy.source,
                    rules = policy.rules.len(),
                    trigger,
                    "policy reloaded"
                );
                true
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    trigger,
                    "policy not reloaded; keeping the policy in force"
                );
                false
            }
        }
    }
}

/// Returns the task that reloads the policy whenever the file's modification time or size
/// changes. The file is first looked at before this returns, so a change made after startup
/// is logged is always seen. The task runs until it is dropped.
pub fn watch_file(
    store: Arc<PolicyStore>,
    interval: Duration,
) -> impl std::future::Future<Output = ()> {
    let path = store.path().cloned();
    let stamp = move |path: &PathBuf| -> Option<(SystemTime, u64)> {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    };
    let mut last = path.as_ref().and_then(stamp);
    async move {
        let Some(path) = path else {
            return;
        };
        loop {
            tokio::time::sleep(interval).await;
            let now = stamp(&path);
            if now == last {
                continue;
            }
            last = now;
            if now.is_some() {
                store.reload_and_log("file changed");
            } else {
                tracing::error!(
                    policy = %path.display(),
                    "the policy file is gone; keeping the policy in force"
                );
            }
        }
    }
}

/// Registers for SIGHUP. Call it before the gate starts serving: from then on a SIGHUP can
/// never fall back to its default action, which ends the process.
#[cfg(unix)]
pub fn listen_for_hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
}

/// Reloads the policy on each SIGHUP received through `hangups`. Without a policy file it
/// only logs the signal, so that `systemctl reload` or log rotation cannot end the gate.
#[cfg(unix)]
pub async fn reload_on_hangup(store: Arc<PolicyStore>, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        if store.path().is_some() {
            store.reload_and_log("SIGHUP");
        } else {
            tracing::info!(
                "SIGHUP received; the built-in policy is in force, so there is no policy file to reload"
            );
        }
    }
}
