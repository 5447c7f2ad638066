//! Set commands.

use super::table::CommandSpec;

/// The set family's rows of the command table.
pub(super) fn commands() -> Vec<CommandSpec> {
    Vec::new()
}
