//! What can go wrong reading archives for a summary or a plot: each error
//! displays as one line naming the file (and the line, where there is one).

use std::io;
use std::path::PathBuf;

use tcpinfo_archive::{ConvertError, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("no archives given")]
    NoInputs,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A line that does not decode: names the archive and the line.
    #[error(transparent)]
    Archive(#[from] ConvertError),
    #[error("no archive among the inputs has a tcp_info snapshot")]
    NoSnapshots,
    #[error(
        "the inputs hold {0} connections; plot draws one: name its files, or pick it with -uuid"
    )]
    SeveralConnections(usize),
    #[error("no connection with UUID {0} among the inputs")]
    NoSuchConnection(String),
    #[error("{}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}

impl AnalysisError {
    pub(crate) fn plot(path: &std::path::Path, message: impl ToString) -> Self {
        AnalysisError::Plot {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}
