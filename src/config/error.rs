//! Configuration errors. Every message is one paragraph: where (`file:line:col` when known), what
//! is wrong, and what to do about it.

use std::fmt;
use std::path::PathBuf;

/// A place in a file: the file, and the 1-based line and column when the parser knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePos {
    pub file: PathBuf,
    pub line_col: Option<(usize, usize)>,
}

impl SourcePos {
    pub fn file(file: impl Into<PathBuf>) -> SourcePos {
        SourcePos {
            file: file.into(),
            line_col: None,
        }
    }

    pub fn at(file: impl Into<PathBuf>, line: usize, col: usize) -> SourcePos {
        SourcePos {
            file: file.into(),
            line_col: Some((line, col)),
        }
    }
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((line, col)) => write!(f, "{}:{}:{}", self.file.display(), line, col),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot find the home directory: HOME is not set and the user database has no entry \
         for this user. Set HOME, or pass --state-dir."
    )]
    NoHome,

    #[error(
        "{}: cannot read the file: {source}. Check that it exists and that the user openclawd \
         runs as may read it.",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{at}: {message}. Fix the syntax there and save the file again.")]
    Syntax { at: SourcePos, message: String },

    #[error(
        "{at}: Missing env var \"{var}\" referenced at config path: {config_path}. Set {var} in \
         the environment openclawd runs with (or under env.vars in the config), or write \
         $${{{var}}} if you mean the literal text."
    )]
    MissingEnvVar {
        at: SourcePos,
        var: String,
        config_path: String,
    },

    #[error("{at}: {message}. Fix the $include entry (paths are relative to the including file).")]
    Include { at: SourcePos, message: String },

    #[error(
        "$include budget exceeded: {what} (limit {limit}) while including {include} from {at}. \
         Include fewer or smaller files: one load reads at most 256 included files and 16 MiB \
         in all."
    )]
    IncludeBudget {
        at: SourcePos,
        what: String,
        limit: String,
        include: String,
    },

    #[error(
        "{at}: Circular include detected: {}. Remove the $include that closes the loop.",
        chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> ")
    )]
    IncludeCycle { at: SourcePos, chain: Vec<PathBuf> },

    #[error("{at}: {config_path}: {what}. Correct the value and save the file again.")]
    Invalid {
        at: SourcePos,
        config_path: String,
        what: String,
    },

    #[error(
        "{at}: unknown key \"{config_path}\" in openclawd's settings (known keys there: {}). \
         Remove or rename it; openclawd.json is checked strictly so typos do not go unnoticed.",
        known.join(", ")
    )]
    UnknownKey {
        at: SourcePos,
        config_path: String,
        known: Vec<&'static str>,
    },

    #[error("{flag}: {what}. Pass a valid value on the command line.")]
    Override { flag: &'static str, what: String },
}

impl ConfigError {
    /// The file, line and column the error points at, when known.
    pub fn location(&self) -> Option<(PathBuf, usize, usize)> {
        let at = match self {
            ConfigError::Syntax { at, .. }
            | ConfigError::MissingEnvVar { at, .. }
            | ConfigError::Include { at, .. }
            | ConfigError::IncludeCycle { at, .. }
            | ConfigError::IncludeBudget { at, .. }
            | ConfigError::Invalid { at, .. }
            | ConfigError::UnknownKey { at, .. } => at,
            ConfigError::NoHome | ConfigError::Read { .. } | ConfigError::Override { .. } => {
                return None
            }
        };
        at.line_col.map(|(line, col)| (at.file.clone(), line, col))
    }

    /// The file the error is about, when it is about one.
    pub fn file(&self) -> Option<PathBuf> {
        match self {
            ConfigError::Read { path, .. } => Some(path.clone()),
            ConfigError::Syntax { at, .. }
            | ConfigError::MissingEnvVar { at, .. }
            | ConfigError::Include { at, .. }
            | ConfigError::IncludeCycle { at, .. }
            | ConfigError::IncludeBudget { at, .. }
            | ConfigError::Invalid { at, .. }
            | ConfigError::UnknownKey { at, .. } => Some(at.file.clone()),
            ConfigError::NoHome | ConfigError::Override { .. } => None,
        }
    }
}
