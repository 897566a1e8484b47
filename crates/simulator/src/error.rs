//! The simulator's one error type: every failure a user can cause (bad
//! arguments, unreadable files, unwritable output) ends here with a message
//! that says what to fix, so the binary never panics on user input.

use std::path::PathBuf;
use thiserror::Error;

/// Why a simulation, sweep or comparison could not run.
#[derive(Debug, Error)]
pub enum SimError {
    /// A configuration value outside what the model supports.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The codec refused the strategy and k/n (the same check publishing
    /// makes before encoding).
    #[error("codec parameters refused: {0}")]
    Codec(#[from] shard_codec::CodecError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A benchmark report that is not the expected JSON shape.
    #[error("{path}: not a benchmark report: {source}")]
    BenchJson {
        /// The file.
        path: PathBuf,
        /// What serde said.
        source: serde_json::Error,
    },
    /// Results could not be serialised.
    #[error("serialising results: {0}")]
    Json(#[from] serde_json::Error),
    /// A plot could not be drawn.
    #[error("plotting {path}: {message}")]
    Plot {
        /// The SVG being written.
        path: PathBuf,
        /// What the plotting backend said.
        message: String,
    },
}

impl SimError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SimError::Io {
            path: path.into(),
            source,
        }
    }
}
