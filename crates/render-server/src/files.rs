//! Files strictly below configured root directories: `GetFile` reads below the file root;
//! project files are read and written below the project root, under the same path rules.

use std::io;
use std::path::{Component, Path, PathBuf};

use tokio::io::AsyncReadExt as _;
use tonic::Status;

/// A canonicalised directory `GetFile` may read below.
#[derive(Clone, Debug)]
pub(crate) struct FileRoot {
    root: PathBuf,
    max_bytes: u64,
}

impl FileRoot {
    /// Canonicalises `root`, which must be an existing directory.
    pub fn new(root: &Path, max_bytes: u64) -> io::Result<FileRoot> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            ));
        }
        Ok(FileRoot { root, max_bytes })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `requested` (relative to the root, or absolute inside it).
    pub async fn read(&self, requested: &str) -> Result<Vec<u8>, Status> {
        let path = self.resolve(requested)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|error| io_status(requested, &error))?;
        let metadata = file
            .metadata()
            .await
            .map_err(|error| io_status(requested, &error))?;
        if !metadata.is_file() {
            return Err(Status::invalid_argument(format!(
                "{requested:?} is not a regular file"
            )));
        }
        if metadata.len() > self.max_bytes {
            return Err(self.too_large(requested, metadata.len()));
        }
        // Read at most one byte past the limit, in case the file grew since `metadata`.
        let mut data = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
        (&mut file)
            .take(self.max_bytes + 1)
            .read_to_end(&mut data)
            .await
            .map_err(|error| io_status(requested, &error))?;
        if data.len() as u64 > self.max_bytes {
            return Err(self.too_large(requested, data.len() as u64));
        }
        Ok(data)
    }

    fn too_large(&self, requested: &str, len: u64) -> Status {
        Status::resource_exhausted(format!(
            "{requested:?} is {len} bytes; GetFile returns at most {} bytes",
            self.max_bytes
        ))
    }

    /// Maps a request path to a canonical path inside the root, refusing anything that
    /// would leave it (`..`, absolute paths elsewhere, symlinks pointing out).
    fn resolve(&self, requested: &str) -> Result<PathBuf, Status> {
        let joined = self.join(requested)?;
        let canonical = joined
            .canonicalize()
            .map_err(|error| io_status(requested, &error))?;
        if !canonical.starts_with(&self.root) {
            // Only a symlink can get here after the checks above.
            return Err(Status::permission_denied(format!(
                "{requested:?} is refused: it resolves (through a symbolic link) to a file outside the served directory"
            )));
        }
        Ok(canonical)
    }

    /// `requested` below the root, checked as text: not empty, no NUL byte, no `..`, and an
    /// absolute path only inside the root. Links are resolved by the callers.
    fn join(&self, requested: &str) -> Result<PathBuf, Status> {
        if requested.is_empty() {
            return Err(Status::invalid_argument("a path is required"));
        }
        if requested.contains('\0') {
            return Err(Status::invalid_argument("the path contains a NUL byte"));
        }
        let path = Path::new(requested);
        if path
            .components()
            .any(|component| matches!(component, Component::ParentDir))
        {
            return Err(Status::permission_denied(format!(
                "{requested:?} is refused: `..` is not allowed in paths"
            )));
        }
        if !path.is_absolute() {
            return Ok(self.root.join(path));
        }
        if path.starts_with(&self.root) {
            Ok(path.to_path_buf())
        } else {
            Err(Status::permission_denied(format!(
                "{requested:?} is refused: only files below the server's directory for them are served"
            )))
        }
    }
}

fn io_status(requested: &str, error: &io::Error) -> Status {
    match error.kind() {
        io::ErrorKind::NotFound => Status::not_found(format!("no file {requested:?}")),
        io::ErrorKind::PermissionDenied => {
            Status::permission_denied(format!("{requested:?}: permission denied"))
        }
        _ => Status::internal(format!("cannot read {requested:?}: {error}")),
    }
}

/// Largest project file read or written.
pub(crate) const MAX_PROJECT_BYTES: u64 = 16 * 1024 * 1024;

/// A directory files are written below (and read back from): project files, and the
/// images `saveImage1` writes below the file root.
#[derive(Clone, Debug)]
pub(crate) struct WritableRoot {
    files: FileRoot,
}

impl WritableRoot {
    /// Canonicalises `root`, which must be an existing directory.
    pub fn new(root: &Path) -> io::Result<WritableRoot> {
        Ok(WritableRoot {
            files: FileRoot::new(root, MAX_PROJECT_BYTES)?,
        })
    }

    /// Reads a project file (GetFile's rules: below the root, no `..`, no escaping links).
    pub async fn read(&self, requested: &str) -> Result<Vec<u8>, Status> {
        self.files.read(requested).await
    }

    /// Writes a project file below the root: its directory must exist inside the root, and
    /// an existing file there is replaced (never followed out of the root).
    pub async fn write(&self, requested: &str, bytes: &[u8]) -> Result<(), Status> {
        if bytes.len() as u64 > MAX_PROJECT_BYTES {
            return Err(Status::resource_exhausted(format!(
                "the project is {} bytes; project files hold at most {MAX_PROJECT_BYTES}",
                bytes.len()
            )));
        }
        let path = self.writable(requested)?;
        // Write beside the target, then rename: a failed write leaves the old file whole.
        let temporary = path.with_extension("octaneweb-partial");
        tokio::fs::write(&temporary, bytes)
            .await
            .map_err(|error| io_status(requested, &error))?;
        tokio::fs::rename(&temporary, &path)
            .await
            .map_err(|error| io_status(requested, &error))
    }

    fn writable(&self, requested: &str) -> Result<PathBuf, Status> {
        let root = &self.files.root;
        let joined = self.files.join(requested)?;
        let (Some(parent), Some(name)) = (joined.parent(), joined.file_name()) else {
            return Err(Status::invalid_argument(format!(
                "{requested:?} does not name a file"
            )));
        };
        let parent = parent.canonicalize().map_err(|error| {
            if error.kind() == io::ErrorKind::NotFound {
                // The file itself need not exist; its folder must (folders are not made here).
                Status::not_found(format!(
                    "{requested:?}: its folder does not exist below the project root; save into an existing folder"
                ))
            } else {
                io_status(requested, &error)
            }
        })?;
        if !parent.starts_with(root) {
            return Err(Status::permission_denied(format!(
                "{requested:?} is refused: its directory resolves (through a symbolic link) to one outside the project root"
            )));
        }
        let target = parent.join(name);
        if let Ok(meta) = std::fs::symlink_metadata(&target) {
            if meta.file_type().is_symlink() || meta.is_dir() {
                return Err(Status::permission_denied(format!(
                    "{requested:?} is refused: it is a directory or a symbolic link"
                )));
            }
        }
        Ok(target)
    }
}
