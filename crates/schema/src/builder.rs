//! [`SchemaBuilder`]: collects schema sources in precedence order and builds one consistent
//! [`Schema`] out of them, skipping (with one warning each) the files that cannot join it.
//!
//! Every `.proto` file is parsed exactly once (protox-parse, files of a directory in
//! parallel) and indexed (the names it defines, with lines). Building then checks the files
//! for conflicting fully-qualified names in precedence order, skips files whose imports are
//! missing or skipped, and adds the survivors to one [`DescriptorPool`] in a single batch,
//! where prost-reflect resolves and checks the types; only if that batch fails are files
//! added one at a time, in dependency order, to find and skip the culprits.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message as _;
use prost_reflect::DescriptorPool;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use crate::error::{SchemaError, SchemaWarning};
use crate::resolve::ParsedFile;
use crate::schema::Schema;

/// Most `.proto` files one directory walk reads; a guard against pointing at `/`.
const MAX_PROTO_FILES: usize = 20_000;
/// Deepest directory nesting a walk follows.
const MAX_DIRECTORY_DEPTH: usize = 32;
/// Largest single `.proto` file read (protodef files are tens of KiB).
const MAX_PROTO_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest encoded descriptor set file read.
const MAX_DESCRIPTOR_SET_BYTES: u64 = 512 * 1024 * 1024;

/// Collects schema sources and builds a [`Schema`].
///
/// Sources are added in precedence order: when several files define the same fully-qualified
/// name, the first one added wins and every later conflicting file is skipped with a warning.
///
/// ```
/// # fn main() -> Result<(), octaneweb_schema::SchemaError> {
/// let mut builder = octaneweb_schema::SchemaBuilder::new();
/// builder.add_proto_source("hello.proto", "syntax = \"proto3\"; package hi;\n\
///     message Ping {}\nservice Greeter { rpc Hello(Ping) returns (Ping); }")?;
/// let schema = builder.build()?;
/// assert_eq!(schema.find_method_path("Greeter/Hello").map(|m| m.name().to_owned()).ok(),
///            Some("Hello".to_owned()));
/// # Ok(()) }
/// ```
#[derive(Debug, Default, Clone)]
pub struct SchemaBuilder {
    candidates: Vec<Candidate>,
    /// Directories in which imports that no source provides are looked up, in order.
    include_roots: Vec<PathBuf>,
}

/// One file offered by a source.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The import name (`common.proto`, `google/protobuf/empty.proto`).
    pub(crate) name: String,
    /// Where it came from, for messages: a path, `<name> (<descriptor set origin>)`, built-in.
    pub(crate) origin: String,
    /// The parsed and indexed file (shared, so building twice copies nothing), or why it
    /// could not be parsed.
    pub(crate) parsed: Result<Arc<ParsedFile>, Box<SchemaWarning>>,
}

impl SchemaBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add every file of an encoded `google.protobuf.FileDescriptorSet` (as written by
    /// `protoc -o`, `buf build`, or embedded with `include_bytes!`). `origin` names the source
    /// in warnings.
    pub fn add_descriptor_set(
        &mut self,
        origin: &str,
        encoded: &[u8],
    ) -> Result<&mut Self, SchemaError> {
        let set = FileDescriptorSet::decode(encoded).map_err(|source| SchemaError::Decode {
            origin: origin.to_owned(),
            source,
        })?;
        self.add_file_descriptors(origin, set.file)
    }

    /// Read and add an encoded descriptor set file.
    pub fn add_descriptor_set_file(&mut self, path: &Path) -> Result<&mut Self, SchemaError> {
        let bytes = read_bounded(path, MAX_DESCRIPTOR_SET_BYTES)?;
        self.add_descriptor_set(&path.display().to_string(), &bytes)
    }

    /// Add a `.proto` file, or every `.proto` file under a directory (recursively, in sorted
    /// path order, which is also their precedence order).
    ///
    /// Files in a directory are named by their path relative to it, so `import "a/b.proto";`
    /// finds `<dir>/a/b.proto`; a single file is named by its file name and its directory is
    /// searched for imports no source provides. Files that are not UTF-8 are decoded lossily
    /// (stray bytes usually sit in comments). A file that does not parse is skipped with a
    /// warning; only an unreadable path is an error.
    pub fn add_proto_path(&mut self, path: &Path) -> Result<&mut Self, SchemaError> {
        let metadata = std::fs::metadata(path).map_err(|source| SchemaError::Io {
            path: path.to_owned(),
            source,
        })?;
        if metadata.is_dir() {
            let mut files = Vec::new();
            collect_proto_files(path, path, 0, &mut files)?;
            files.sort();
            self.candidates.extend(parse_proto_files(&files)?);
            self.include_roots.push(path.to_owned());
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            let candidate = parse_proto_file(&name, path)?;
            self.candidates.push(candidate);
            if let Some(parent) = path.parent() {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                self.include_roots.push(parent.to_owned());
            }
        }
        Ok(self)
    }

    /// Add one `.proto` file from memory. `name` is its import name. Unlike
    /// [`add_proto_path`](Self::add_proto_path), a syntax error here is an error
    /// ([`SchemaError::Parse`]), since the caller holds the text.
    pub fn add_proto_source(&mut self, name: &str, source: &str) -> Result<&mut Self, SchemaError> {
        match parse_proto_text(name, name, source) {
            Ok(file) => {
                self.candidates.push(Candidate {
                    name: name.to_owned(),
                    origin: name.to_owned(),
                    parsed: Ok(Arc::new(ParsedFile::new(file))),
                });
                Ok(self)
            }
            Err(warning) => Err(SchemaError::Parse {
                file: name.to_owned(),
                line: warning.line.unwrap_or(0),
                message: warning.message,
            }),
        }
    }

    /// Add already-compiled file descriptors (e.g. from [`crate::reflection::fetch`]).
    pub fn add_file_descriptors(
        &mut self,
        origin: &str,
        files: Vec<FileDescriptorProto>,
    ) -> Result<&mut Self, SchemaError> {
        for file in files {
            self.candidates.push(Candidate {
                name: file.name().to_owned(),
                origin: format!("{} ({origin})", file.name()),
                parsed: Ok(Arc::new(ParsedFile::new(file))),
            });
        }
        Ok(self)
    }

    /// Add the files of the gRPC reflection services (`grpc.reflection.v1.ServerReflection`
    /// and `grpc.reflection.v1alpha.ServerReflection`), so a gateway that serves or forwards
    /// reflection can describe and call them like any other method. Add them last: a source
    /// that brings its own copy of these files takes precedence.
    pub fn add_reflection_services(&mut self) -> Result<&mut Self, SchemaError> {
        self.add_descriptor_set(
            "built-in reflection service v1",
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        )?;
        self.add_descriptor_set(
            "built-in reflection service v1alpha",
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        )
    }

    /// Build the schema from every source added so far.
    ///
    /// Files that conflict with an earlier definition, do not parse, import a missing or
    /// skipped file, or do not type-check are skipped; each produces one warning (logged and
    /// kept in [`Schema::warnings`]). Fails only when nothing usable is left.
    pub fn build(&mut self) -> Result<Schema, SchemaError> {
        let mut candidates = self.candidates.clone();
        let mut warnings = Vec::new();
        resolve_missing_imports(&mut candidates, &self.include_roots);
        let files = crate::resolve::select_files(candidates, &mut warnings);
        let mut source_info: HashMap<String, Vec<u8>> = files
            .iter()
            .filter_map(crate::resolve::Selected::encoded_source_info)
            .collect();
        let mut pool = DescriptorPool::new();
        crate::resolve::add_to_pool(&mut pool, files, &mut warnings);
        source_info.retain(|name, _| pool.get_file_by_name(name).is_some());
        for warning in &warnings {
            tracing::warn!(target: "octaneweb_schema", "{warning}");
        }
        if pool.services().len() == 0 {
            let reason = if self.candidates.is_empty() {
                "no schema sources were given".to_owned()
            } else if pool.files().len() == 0 {
                format!(
                    "every file was skipped ({} warnings; first: {})",
                    warnings.len(),
                    warnings
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "none".into())
                )
            } else {
                format!(
                    "{} files loaded but none defines a service",
                    pool.files().len()
                )
            };
            return Err(SchemaError::NothingLoaded { reason });
        }
        Ok(Schema::new(pool, source_info, warnings))
    }
}

/// Append the files that some candidate imports but no source provides: first from the
/// include roots (directories given, parents of single files), then google/protobuf's
/// well-known types. Files still missing are reported by the resolver.
fn resolve_missing_imports(candidates: &mut Vec<Candidate>, include_roots: &[PathBuf]) {
    let mut known: HashSet<String> = candidates.iter().map(|c| c.name.clone()).collect();
    let mut index = 0;
    while let Some(candidate) = candidates.get(index) {
        index += 1;
        let Ok(file) = &candidate.parsed else {
            continue;
        };
        let missing: Vec<String> = file
            .dependencies()
            .filter(|d| !known.contains(d.as_str()))
            .cloned()
            .collect();
        for import in missing {
            known.insert(import.clone());
            if let Some(found) = find_in_roots(&import, include_roots) {
                candidates.push(found);
            } else if let Some(builtin) = DescriptorPool::global().get_file_by_name(&import) {
                candidates.push(Candidate {
                    name: import.clone(),
                    origin: format!("{import} (built-in)"),
                    parsed: Ok(Arc::new(ParsedFile::new(
                        builtin.file_descriptor_proto().clone(),
                    ))),
                });
            }
        }
    }
}

fn find_in_roots(import: &str, roots: &[PathBuf]) -> Option<Candidate> {
    // Import names are relative; never let one climb out of its root.
    let relative = Path::new(import);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    roots.iter().find_map(|root| {
        let path = root.join(relative);
        if path.is_file() {
            parse_proto_file(import, &path).ok()
        } else {
            None
        }
    })
}

fn collect_proto_files(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), SchemaError> {
    if depth > MAX_DIRECTORY_DEPTH {
        return Ok(());
    }
    let io_error = |source| SchemaError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io_error)?;
        // Symbolic links to files are followed; links to directories are not (no loops).
        let is_file = file_type.is_file()
            || (file_type.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
        if file_type.is_dir() {
            collect_proto_files(root, &path, depth + 1, out)?;
        } else if is_file && path.extension().is_some_and(|e| e == "proto") {
            if out.len() >= MAX_PROTO_FILES {
                return Err(SchemaError::Io {
                    path: root.to_owned(),
                    source: std::io::Error::other(format!(
                        "more than {MAX_PROTO_FILES} .proto files; point at the schema directory itself"
                    )),
                });
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, path));
        }
    }
    Ok(())
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, SchemaError> {
    use std::io::Read as _;
    let io_error = |source| SchemaError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limit {
        return Err(io_error(std::io::Error::other(format!(
            "file is larger than {limit} bytes"
        ))));
    }
    Ok(bytes)
}

/// Read and parse one `.proto` file. Only unreadable files are errors; text that does not
/// parse becomes a candidate carrying its warning.
fn parse_proto_file(name: &str, path: &Path) -> Result<Candidate, SchemaError> {
    let bytes = read_bounded(path, MAX_PROTO_FILE_BYTES)?;
    // Stray Windows-1252 bytes (e.g. 0x96 in a comment) must not cost the whole file.
    let source = String::from_utf8_lossy(&bytes);
    let origin = path.display().to_string();
    Ok(Candidate {
        name: name.to_owned(),
        parsed: parse_proto_text(name, &origin, &source)
            .map(|file| Arc::new(ParsedFile::new(file))),
        origin,
    })
}

/// Read and parse many files, on every core (parsing dominates loading a big directory).
/// Results keep the order of `files`.
fn parse_proto_files(files: &[(String, PathBuf)]) -> Result<Vec<Candidate>, SchemaError> {
    let workers = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, 8);
    if workers == 1 || files.len() < 8 {
        return files
            .iter()
            .map(|(name, path)| parse_proto_file(name, path))
            .collect();
    }
    let chunk = files.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(name, path)| parse_proto_file(name, path))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        // Join every thread before looking at any result, so none is left running.
        let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        let mut out = Vec::with_capacity(files.len());
        for handle in joined {
            // A panicking parser would be a bug in protox-parse; report it as a failed read
            // rather than taking the process down.
            let part = handle.map_err(|_| SchemaError::Io {
                path: files
                    .first()
                    .map(|(_, p)| p.parent().unwrap_or(p).to_owned())
                    .unwrap_or_default(),
                source: std::io::Error::other("a .proto parser thread panicked"),
            })??;
            out.extend(part);
        }
        Ok(out)
    })
}

fn parse_proto_text(
    name: &str,
    origin: &str,
    source: &str,
) -> Result<FileDescriptorProto, Box<SchemaWarning>> {
    // Editors on Windows may start a file with a byte-order mark; the parser rejects it.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    protox_parse::parse(name, source).map_err(|error| {
        let line = error.span().map(|span| line_of_offset(source, span.start));
        Box::new(SchemaWarning {
            file: name.to_owned(),
            origin: origin.to_owned(),
            line,
            symbol: None,
            first_defined_in: None,
            message: format!("syntax error: {error}"),
        })
    })
}

/// 1-based line number of a byte offset.
fn line_of_offset(source: &str, offset: usize) -> u32 {
    let before = source.as_bytes().get(..offset).unwrap_or(source.as_bytes());
    let newlines = before.iter().filter(|&&b| b == b'\n').count();
    u32::try_from(newlines)
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}
