//! Typed errors and warnings of schema loading, lookups and JSON conversion.

use std::fmt;
use std::path::PathBuf;

/// Why loading a schema source failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `.proto` source given in memory does not parse.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file name.
        file: String,
        /// 1-based line of the problem (0 when unknown).
        line: u32,
        /// What the parser reported.
        message: String,
    },
    /// Bytes that should hold an encoded `google.protobuf.FileDescriptorSet` do not.
    #[error("{origin}: not a valid encoded FileDescriptorSet: {source}")]
    Decode {
        /// Where the bytes came from (a path or a name given by the caller).
        origin: String,
        /// The protobuf decoding error.
        #[source]
        source: prost::DecodeError,
    },
    /// Nothing usable was loaded from any source.
    #[error("no usable schema: {reason}")]
    NothingLoaded {
        /// Why (no sources, or every file was skipped; the warnings say which and why).
        reason: String,
    },
    /// The server's reflection service failed or is missing.
    #[error("server reflection failed ({code:?}): {message}")]
    Reflection {
        /// The gRPC status code of the failure.
        code: tonic::Code,
        /// The status message (or a description of the protocol problem).
        message: String,
    },
}

/// A lookup of a service or method by name failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No service matches the name, even leniently.
    #[error("unknown service '{name}'")]
    UnknownService {
        /// The name asked for.
        name: String,
    },
    /// The service exists but has no method of that name.
    #[error("service '{service}' has no method '{method}'")]
    UnknownMethod {
        /// The full name of the service that was found.
        service: String,
        /// The method name asked for.
        method: String,
    },
    /// The lenient name matches several services.
    #[error("service name '{name}' is ambiguous: {}", candidates.join(", "))]
    AmbiguousService {
        /// The name asked for.
        name: String,
        /// Full names of every matching service, sorted.
        candidates: Vec<String>,
    },
    /// A method path is not of a recognised form ("pkg.Service/Method", "Service.Method", ...).
    #[error("bad method path '{path}': expected 'Service/Method' or 'package.Service/Method'")]
    BadMethodPath {
        /// The path given.
        path: String,
    },
}

/// A problem found while loading that did not stop the load: the named file was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaWarning {
    /// The skipped file (its import name, e.g. `apinodesystem.proto`).
    pub file: String,
    /// Where the file came from (a path on disk, a descriptor set, reflection).
    pub origin: String,
    /// 1-based line of the problem, when known.
    pub line: Option<u32>,
    /// The fully-qualified symbol involved (a conflicting definition), when there is one.
    pub symbol: Option<String>,
    /// The file that defined `symbol` first (and was kept), for conflicts.
    pub first_defined_in: Option<String>,
    /// What went wrong, in words.
    pub message: String,
}

impl fmt::Display for SchemaWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": skipped: {}", self.message)
    }
}

/// A JSON body could not be turned into a protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The body is not JSON at all (syntax error).
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Syntax {
        /// Always empty: a syntax error has no field path. Kept so every variant has a `path`.
        path: String,
        /// What the JSON parser reported.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The JSON is well-formed but does not fit the message type.
    #[error("{}: {message}", if path.is_empty() { "(message)" } else { path.as_str() })]
    Invalid {
        /// Dotted path of the offending field as written in the JSON, e.g. `objectPtr.handle`
        /// (empty when the problem is the top-level value).
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl JsonError {
    /// Dotted path of the field at fault (empty for the whole message or a syntax error).
    pub fn path(&self) -> &str {
        match self {
            JsonError::Syntax { path, .. } | JsonError::Invalid { path, .. } => path,
        }
    }

    /// The problem without the path.
    pub fn message(&self) -> &str {
        match self {
            JsonError::Syntax { message, .. } | JsonError::Invalid { message, .. } => message,
        }
    }
}

/// A spelling of a [`JsonShape`](crate::JsonShape) part that is not one of its choices.
/// The message names the accepted spellings; whoever read the value adds where it was
/// (`X-Json-Names must be proto or camel, got "snake"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {accepted}, got {got:?}")]
pub struct ShapeValueError {
    /// The value as given.
    pub got: String,
    /// The accepted spellings, as prose (`proto or camel`).
    pub accepted: &'static str,
}

impl ShapeValueError {
    pub(crate) fn new(got: &str, accepted: &'static str) -> Self {
        // A value quoted back is bounded, so a huge header cannot make a huge answer.
        let got: String = got.chars().take(64).collect();
        ShapeValueError { got, accepted }
    }
}
