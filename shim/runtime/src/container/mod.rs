//! The facade the CLI calls: create, start, state, kill, delete, exec, pause, resume, ps, update.

/// Global options (from the CLI's global flags).
#[derive(Debug, Clone, Default)]
pub struct GlobalOptions {}
/// Options of create/run.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {}
/// Options of exec.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {}
/// A container known to the engine.
#[derive(Debug)]
pub struct Container {}
