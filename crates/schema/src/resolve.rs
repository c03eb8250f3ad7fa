//! Choosing a consistent subset of candidate files and adding it to a descriptor pool.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use prost_reflect::DescriptorPool;
use prost_types::{FileDescriptorProto, SourceCodeInfo};

use crate::builder::Candidate;
use crate::error::SchemaWarning;

/// A parsed file, indexed once when it is added to the builder.
///
/// The source code info (every span and comment) is kept apart: it is by far the largest
/// part of a parsed file, and decoded it takes ten times the room it takes encoded (a
/// vector or two per location), so the pool gets the file without it and the schema keeps
/// it encoded beside the pool ([`Selected::encoded_source_info`]). It also gives line
/// numbers when prost-reflect rejects a file.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    proto: FileDescriptorProto,
    source_code_info: Option<SourceCodeInfo>,
    /// Every fully-qualified name the file defines, with its 1-based line when known.
    symbols: Vec<(String, Option<u32>)>,
    /// 1-based line of each `import`, parallel to `proto.dependency`.
    import_lines: Vec<Option<u32>>,
}

impl ParsedFile {
    pub(crate) fn new(mut proto: FileDescriptorProto) -> ParsedFile {
        let source_code_info = proto.source_code_info.take();
        let lines = Lines::new(source_code_info.as_ref());
        let symbols = defined_symbols(&proto, &lines);
        let import_lines = (0..proto.dependency.len())
            .map(|i| lines.get(&[3, i32::try_from(i).unwrap_or(i32::MAX)]))
            .collect();
        ParsedFile {
            proto,
            source_code_info,
            symbols,
            import_lines,
        }
    }

    /// The import names of the files this one imports.
    pub(crate) fn dependencies(&self) -> impl Iterator<Item = &String> {
        self.proto.dependency.iter()
    }

    fn import_line(&self, import: &str) -> Option<u32> {
        let index = self.proto.dependency.iter().position(|d| d == import)?;
        self.import_lines.get(index).copied().flatten()
    }
}

/// True if two files of one name are the same file: equal, or defining the same names.
fn same_file(a: &Arc<ParsedFile>, b: &Arc<ParsedFile>) -> bool {
    Arc::ptr_eq(a, b)
        || a.proto == b.proto
        || (a.proto.package == b.proto.package
            && a.symbols.len() == b.symbols.len()
            && a.symbols.iter().zip(&b.symbols).all(|(x, y)| x.0 == y.0))
}

/// A file chosen to join the pool.
pub(crate) struct Selected {
    name: String,
    origin: String,
    file: Arc<ParsedFile>,
}

impl Selected {
    /// The file's name and its source code info, encoded, if it has any.
    pub(crate) fn encoded_source_info(&self) -> Option<(String, Vec<u8>)> {
        use prost::Message as _;
        let info = self.file.source_code_info.as_ref()?;
        Some((self.file.proto.name().to_owned(), info.encode_to_vec()))
    }

    fn skip(&self, line: Option<u32>, message: String) -> SchemaWarning {
        SchemaWarning {
            file: self.name.clone(),
            origin: self.origin.clone(),
            line,
            symbol: None,
            first_defined_in: None,
            message,
        }
    }
}

/// Most rounds of conflict checking; real schemas settle in two or three. Past this bound
/// the pool's own dependency check still keeps the result consistent.
const MAX_SELECTION_ROUNDS: usize = 64;

/// Pick the files that can load together, in precedence order, reporting the others.
///
/// A file is skipped when: it did not parse; a different file of the same name came first;
/// it defines a fully-qualified name that an earlier kept file defines; it imports a file
/// that is missing or skipped. Skipping a file for its imports frees its names, which can
/// let a later file in (and the files importing that one), so the choice is recomputed until
/// it settles.
pub(crate) fn select_files(
    candidates: Vec<Candidate>,
    warnings: &mut Vec<SchemaWarning>,
) -> Vec<Selected> {
    // One file per import name: the first that parsed wins.
    let mut files: Vec<Selected> = Vec::new();
    let mut index_by_name: HashMap<String, usize> = HashMap::new();
    let mut unparsed: HashSet<String> = HashSet::new();
    for candidate in candidates {
        let Candidate {
            name,
            origin,
            parsed,
        } = candidate;
        match parsed {
            Err(warning) => {
                unparsed.insert(name);
                warnings.push(*warning);
            }
            Ok(file) => match index_by_name.get(&name).and_then(|&i| files.get(i)) {
                // The same file met twice (e.g. google/protobuf/empty.proto from both a
                // descriptor set and reflection, maybe encoded a little differently): quiet.
                Some(first) if same_file(&first.file, &file) => {}
                Some(first) => warnings.push(SchemaWarning {
                    file: name.clone(),
                    first_defined_in: Some(first.origin.clone()),
                    message: format!(
                        "a different file named '{name}' was already loaded from {}",
                        first.origin
                    ),
                    origin,
                    line: None,
                    symbol: None,
                }),
                None => {
                    index_by_name.insert(name.clone(), files.len());
                    files.push(Selected { name, origin, file });
                }
            },
        }
    }
    // A name that parsed somewhere is not "unparsed" (an earlier broken copy loses to it).
    unparsed.retain(|name| !index_by_name.contains_key(name));

    // Who imports whom, by index, for propagating skips to importers.
    let mut importers: Vec<Vec<usize>> = vec![Vec::new(); files.len()];
    for (i, file) in files.iter().enumerate() {
        for import in file.file.dependencies() {
            if let Some(slot) = index_by_name
                .get(import)
                .and_then(|&d| importers.get_mut(d))
            {
                slot.push(i);
            }
        }
    }

    let mut by_import: Vec<Option<SchemaWarning>> = vec![None; files.len()];
    let mut by_conflict: Vec<Option<SchemaWarning>> = vec![None; files.len()];
    for _ in 0..MAX_SELECTION_ROUNDS {
        by_conflict = conflicts(&files, &by_import);
        let next = import_failures(&files, &index_by_name, &unparsed, &importers, &by_conflict);
        let settled = next
            .iter()
            .zip(&by_import)
            .all(|(a, b)| a.is_some() == b.is_some());
        by_import = next;
        if settled {
            break;
        }
    }

    let mut selected = Vec::new();
    for ((file, by_import), by_conflict) in files.into_iter().zip(by_import).zip(by_conflict) {
        match by_conflict.or(by_import) {
            Some(warning) => warnings.push(warning),
            None => selected.push(file),
        }
    }
    selected
}

/// For each file not skipped for its imports, in precedence order: the first name it defines
/// that an earlier kept file defined already.
fn conflicts(
    files: &[Selected],
    by_import: &[Option<SchemaWarning>],
) -> Vec<Option<SchemaWarning>> {
    let mut out: Vec<Option<SchemaWarning>> = vec![None; files.len()];
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, file) in files.iter().enumerate() {
        if by_import.get(i).is_some_and(Option::is_some) {
            continue;
        }
        let clash =
            file.file
                .symbols
                .iter()
                .find_map(|(symbol, line)| match owner.get(symbol.as_str()) {
                    Some(&j) if j != i => Some((symbol, *line, j)),
                    _ => None,
                });
        match clash {
            Some((symbol, line, j)) => {
                let first = files.get(j).map(|f| f.origin.clone()).unwrap_or_default();
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(SchemaWarning {
                        file: file.name.clone(),
                        origin: file.origin.clone(),
                        line,
                        symbol: Some(symbol.clone()),
                        message: format!(
                            "conflicting definition of '{symbol}', already defined in {first} \
                             which takes precedence"
                        ),
                        first_defined_in: Some(first),
                    });
                }
            }
            None => {
                for (symbol, _) in &file.file.symbols {
                    owner.entry(symbol.as_str()).or_insert(i);
                }
            }
        }
    }
    out
}

/// Files to skip because an import is missing, did not parse, or is skipped (for a conflict
/// or, transitively, for its own imports).
fn import_failures(
    files: &[Selected],
    index_by_name: &HashMap<String, usize>,
    unparsed: &HashSet<String>,
    importers: &[Vec<usize>],
    by_conflict: &[Option<SchemaWarning>],
) -> Vec<Option<SchemaWarning>> {
    let mut out: Vec<Option<SchemaWarning>> = vec![None; files.len()];
    let skipped_for_conflict = |i: usize| by_conflict.get(i).is_some_and(Option::is_some);
    let mut queue: Vec<usize> = Vec::new();
    for (i, file) in files.iter().enumerate() {
        if skipped_for_conflict(i) {
            queue.push(i);
            continue;
        }
        let problem = file
            .file
            .dependencies()
            .find_map(|import| match index_by_name.get(import) {
                None if unparsed.contains(import) => Some((import, "which was skipped")),
                None => Some((import, "which no source provides")),
                Some(&d) if skipped_for_conflict(d) => Some((import, "which was skipped")),
                Some(_) => None,
            });
        if let Some((import, why)) = problem {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(file.skip(
                    file.file.import_line(import),
                    format!("imports '{import}', {why}"),
                ));
                queue.push(i);
            }
        }
    }
    // Importers of skipped files are skipped too, transitively.
    while let Some(skipped) = queue.pop() {
        let Some(skipped_file) = files.get(skipped) else {
            continue;
        };
        for &importer in importers
            .get(skipped)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if skipped_for_conflict(importer) || out.get(importer).is_some_and(Option::is_some) {
                continue;
            }
            let Some(file) = files.get(importer) else {
                continue;
            };
            let import = skipped_file.name.as_str();
            if let Some(slot) = out.get_mut(importer) {
                *slot = Some(file.skip(
                    file.file.import_line(import),
                    format!("imports '{import}', which was skipped"),
                ));
                queue.push(importer);
            }
        }
    }
    out
}

/// Add the selected files to `pool`.
///
/// Usually they all check out, and one batch is the fastest way in. If the batch fails,
/// the files go in one by one, each after its imports, to find the culprits: a file whose
/// import failed, which sits on an import cycle, or which prost-reflect rejects (e.g. an
/// unknown type) is skipped with a warning.
pub(crate) fn add_to_pool(
    pool: &mut DescriptorPool,
    files: Vec<Selected>,
    warnings: &mut Vec<SchemaWarning>,
) {
    let batch = files.iter().map(|f| f.file.proto.clone());
    // A failed batch leaves the pool unchanged.
    if pool.add_file_descriptor_protos(batch).is_ok() {
        return;
    }
    add_in_dependency_order(pool, files, warnings);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unvisited,
    InProgress,
    Added,
    Failed,
}

fn add_in_dependency_order(
    pool: &mut DescriptorPool,
    files: Vec<Selected>,
    warnings: &mut Vec<SchemaWarning>,
) {
    let index_by_name: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.as_str(), i))
        .collect();
    let mut state = vec![State::Unvisited; files.len()];
    for root in 0..files.len() {
        if state.get(root) != Some(&State::Unvisited) {
            continue;
        }
        set(&mut state, root, State::InProgress);
        // Iterative depth-first walk (no recursion limit to hit): (file, next import).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            let Some(file) = files.get(node) else {
                stack.pop();
                continue;
            };
            if let Some(import) = file.file.proto.dependency.get(*next) {
                *next += 1;
                if let Some(&d) = index_by_name.get(import.as_str()) {
                    if state.get(d) == Some(&State::Unvisited) {
                        set(&mut state, d, State::InProgress);
                        stack.push((d, 0));
                    }
                }
                continue;
            }
            stack.pop();
            let blocked = file.file.dependencies().find_map(|import| {
                let d = index_by_name.get(import.as_str())?;
                match state.get(*d) {
                    Some(State::Added) => None,
                    Some(State::InProgress) => Some((import, "which imports it back (a cycle)")),
                    _ => Some((import, "which was skipped")),
                }
            });
            let failure = match blocked {
                Some((import, why)) => Some(file.skip(
                    file.file.import_line(import),
                    format!("imports '{import}', {why}"),
                )),
                None => add_one(pool, file),
            };
            match failure {
                None => set(&mut state, node, State::Added),
                Some(warning) => {
                    warnings.push(warning);
                    set(&mut state, node, State::Failed);
                }
            }
        }
    }
}

/// Add one file; `Some(warning)` if prost-reflect rejects it.
fn add_one(pool: &mut DescriptorPool, file: &Selected) -> Option<SchemaWarning> {
    if pool
        .add_file_descriptor_proto(file.file.proto.clone())
        .is_ok()
    {
        return None;
    }
    // Try again with the source info, only to learn the line of the problem.
    let mut with_lines = file.file.proto.clone();
    with_lines.source_code_info = file.file.source_code_info.clone();
    match pool.add_file_descriptor_proto(with_lines) {
        Ok(()) => None,
        Err(error) => Some(
            file.skip(
                error
                    .line()
                    .and_then(|l| u32::try_from(l).ok())
                    .map(|l| l.saturating_add(1)),
                format!("invalid: {error}"),
            ),
        ),
    }
}

fn set(state: &mut [State], index: usize, value: State) {
    if let Some(slot) = state.get_mut(index) {
        *slot = value;
    }
}

/// Every fully-qualified name a file defines at package scope or nested in its messages, with
/// the 1-based line of the definition when the file carries source info.
///
/// Enum values count: protobuf scopes them beside their enum, so two enums of one package
/// with a value of the same name clash.
fn defined_symbols(file: &FileDescriptorProto, lines: &Lines) -> Vec<(String, Option<u32>)> {
    let prefix = if file.package().is_empty() {
        String::new()
    } else {
        format!("{}.", file.package())
    };
    let mut out = Vec::new();
    let mut path = Vec::with_capacity(8);
    for (i, message) in file.message_type.iter().enumerate() {
        path.clear();
        path.extend([4, index(i)]);
        message_symbols(message, &prefix, &mut path, lines, &mut out);
    }
    for (i, enumeration) in file.enum_type.iter().enumerate() {
        path.clear();
        path.extend([5, index(i)]);
        enum_symbols(enumeration, &prefix, &mut path, lines, &mut out);
    }
    for (i, service) in file.service.iter().enumerate() {
        out.push((
            format!("{prefix}{}", service.name()),
            lines.get(&[6, index(i)]),
        ));
    }
    for (i, extension) in file.extension.iter().enumerate() {
        out.push((
            format!("{prefix}{}", extension.name()),
            lines.get(&[7, index(i)]),
        ));
    }
    out
}

fn index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

fn message_symbols(
    message: &prost_types::DescriptorProto,
    prefix: &str,
    path: &mut Vec<i32>,
    lines: &Lines,
    out: &mut Vec<(String, Option<u32>)>,
) {
    let full = format!("{prefix}{}", message.name());
    out.push((full.clone(), lines.get(path)));
    let nested_prefix = format!("{full}.");
    for (i, nested) in message.nested_type.iter().enumerate() {
        path.extend([3, index(i)]);
        message_symbols(nested, &nested_prefix, path, lines, out);
        path.truncate(path.len().saturating_sub(2));
    }
    for (i, enumeration) in message.enum_type.iter().enumerate() {
        path.extend([4, index(i)]);
        enum_symbols(enumeration, &nested_prefix, path, lines, out);
        path.truncate(path.len().saturating_sub(2));
    }
    for (i, extension) in message.extension.iter().enumerate() {
        path.extend([6, index(i)]);
        out.push((
            format!("{nested_prefix}{}", extension.name()),
            lines.get(path),
        ));
        path.truncate(path.len().saturating_sub(2));
    }
}

fn enum_symbols(
    enumeration: &prost_types::EnumDescriptorProto,
    prefix: &str,
    path: &mut Vec<i32>,
    lines: &Lines,
    out: &mut Vec<(String, Option<u32>)>,
) {
    out.push((format!("{prefix}{}", enumeration.name()), lines.get(path)));
    for (i, value) in enumeration.value.iter().enumerate() {
        path.extend([2, index(i)]);
        out.push((format!("{prefix}{}", value.name()), lines.get(path)));
        path.truncate(path.len().saturating_sub(2));
    }
}

/// Line numbers from a file's source code info, by descriptor path. Only definitions
/// (messages, enums, values, services, extensions, imports) are indexed: fields and
/// comments, the bulk of the locations, are never asked for.
struct Lines<'a> {
    by_path: HashMap<&'a [i32], u32>,
}

impl<'a> Lines<'a> {
    fn new(info: Option<&'a SourceCodeInfo>) -> Self {
        let by_path = info
            .iter()
            .flat_map(|info| info.location.iter())
            .filter(|location| is_definition_path(&location.path))
            .filter_map(|location| {
                let line = u32::try_from(*location.span.first()?).ok()?;
                Some((location.path.as_slice(), line.saturating_add(1)))
            })
            .collect();
        Lines { by_path }
    }

    fn get(&self, path: &[i32]) -> Option<u32> {
        self.by_path.get(path).copied()
    }
}

/// True for the descriptor paths `defined_symbols` asks about: imports `[3, i]`, services
/// `[6, i]`, extensions `[7, i]`, enums and their values `[5, i (, 2, v)]`, and messages
/// `[4, i, (3, j)*]` with their enums, values and extensions at any depth.
fn is_definition_path(path: &[i32]) -> bool {
    let mut tail = match path {
        [3 | 6 | 7, _] | [5, _] | [5, _, 2, _] => return true,
        [4, _, tail @ ..] => tail,
        _ => return false,
    };
    loop {
        match tail {
            [] | [4, _] | [4, _, 2, _] | [6, _] => return true,
            [3, _, more @ ..] => tail = more,
            _ => return false,
        }
    }
}
