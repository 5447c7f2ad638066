//! Sorted-set commands.

use super::table::CommandSpec;

/// The zset family's rows of the command table.
pub(super) fn commands() -> Vec<CommandSpec> {
    Vec::new()
}
