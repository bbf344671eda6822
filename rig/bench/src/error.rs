//! Errors of targets and instruments (being written).

/// What went wrong in a bench operation (being written).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The profile does not define this action.
    #[error("the device profile does not define action `{0}`")]
    Unsupported(String),
}
