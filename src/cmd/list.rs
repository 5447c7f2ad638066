//! List commands.

use super::table::CommandSpec;

/// The list family's rows of the command table.
pub(super) fn commands() -> Vec<CommandSpec> {
    Vec::new()
}
