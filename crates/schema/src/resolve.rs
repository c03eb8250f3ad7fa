//! Choosing a consistent subset of candidate files and adding it to a descriptor pool.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorProto;

use crate::builder::Candidate;
use crate::error::SchemaWarning;

/// A file chosen to join the pool.
pub(crate) struct Selected {
    name: String,
    origin: String,
    proto: FileDescriptorProto,
}

/// Pick the files that can load together, in precedence order, reporting the others.
///
/// A file is skipped when: it did not parse; another file of the same name came first; it
/// defines a fully-qualified name that an earlier kept file defines; it imports a file that is
/// missing or skipped. Skipping a file frees its names, which can let a later file in, so the
/// checks repeat until nothing changes (each round skips at least one more file for good,
/// so there are at most as many rounds as files).
pub(crate) fn select_files(
    candidates: Vec<Candidate>,
    warnings: &mut Vec<SchemaWarning>,
) -> Vec<Selected> {
    // One file per import name: the first that parsed wins.
    let mut files: Vec<Selected> = Vec::new();
    let mut index_by_name: HashMap<String, usize> = HashMap::new();
    for candidate in candidates {
        let Candidate {
            name,
            origin,
            parsed,
        } = candidate;
        match parsed {
            Err(warning) => warnings.push(*warning),
            Ok(proto) => match index_by_name.get(&name).and_then(|&i| files.get(i)) {
                Some(first) if first.proto == proto => {}
                Some(first) => warnings.push(SchemaWarning {
                    file: name.clone(),
                    origin,
                    line: None,
                    symbol: None,
                    first_defined_in: Some(first.origin.clone()),
                    message: format!(
                        "a different file named '{name}' was already loaded from {}",
                        first.origin
                    ),
                }),
                None => {
                    index_by_name.insert(name.clone(), files.len());
                    files.push(Selected {
                        name,
                        origin,
                        proto,
                    });
                }
            },
        }
    }

    let symbols: Vec<Vec<(String, Option<u32>)>> =
        files.iter().map(|f| defined_symbols(&f.proto)).collect();
    let mut hard: Vec<Option<SchemaWarning>> = vec![None; files.len()];
    let mut conflicts: Vec<Option<SchemaWarning>>;
    loop {
        conflicts = vec![None; files.len()];
        let mut owner: HashMap<&str, usize> = HashMap::new();
        for (i, file_symbols) in symbols.iter().enumerate() {
            if hard.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let clash =
                file_symbols
                    .iter()
                    .find_map(|(symbol, line)| match owner.get(symbol.as_str()) {
                        Some(&j) if j != i => Some((symbol, *line, j)),
                        _ => None,
                    });
            match clash {
                Some((symbol, line, j)) => {
                    let (Some(file), Some(first)) = (files.get(i), files.get(j)) else {
                        continue;
                    };
                    if let Some(slot) = conflicts.get_mut(i) {
                        *slot = Some(SchemaWarning {
                            file: file.name.clone(),
                            origin: file.origin.clone(),
                            line,
                            symbol: Some(symbol.clone()),
                            first_defined_in: Some(first.origin.clone()),
                            message: format!(
                                "conflicting definition of '{symbol}', already defined in {} \
                                 which takes precedence",
                                first.origin
                            ),
                        });
                    }
                }
                None => {
                    for (symbol, _) in file_symbols {
                        owner.entry(symbol.as_str()).or_insert(i);
                    }
                }
            }
        }
        let verdict = |i: usize, hard: &[Option<SchemaWarning>]| {
            hard.get(i).is_some_and(Option::is_none)
                && conflicts.get(i).is_some_and(Option::is_none)
        };
        let mut changed = false;
        for (i, file) in files.iter().enumerate() {
            if !verdict(i, &hard) {
                continue;
            }
            let problem =
                file.proto
                    .dependency
                    .iter()
                    .find_map(|import| match index_by_name.get(import) {
                        None => Some((import, "which no source provides")),
                        Some(&d) if !verdict(d, &hard) => Some((import, "which was skipped")),
                        Some(_) => None,
                    });
            if let Some((import, why)) = problem {
                let line = import_line(&file.proto, import);
                if let Some(slot) = hard.get_mut(i) {
                    *slot = Some(SchemaWarning {
                        file: file.name.clone(),
                        origin: file.origin.clone(),
                        line,
                        symbol: None,
                        first_defined_in: None,
                        message: format!("imports '{import}', {why}"),
                    });
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }

    let mut selected = Vec::new();
    for ((file, hard), conflict) in files.into_iter().zip(hard).zip(conflicts) {
        match hard.or(conflict) {
            Some(warning) => warnings.push(warning),
            None => selected.push(file),
        }
    }
    selected
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unvisited,
    InProgress,
    Added,
    Failed,
}

/// Add the selected files to `pool`, each after its imports. A file whose import failed,
/// which sits on an import cycle, or which prost-reflect rejects (e.g. an unknown type) is
/// skipped with a warning.
pub(crate) fn add_in_dependency_order(
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
        // Iterative depth-first walk: (file, next import to visit).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            let Some(file) = files.get(node) else {
                stack.pop();
                continue;
            };
            if let Some(import) = file.proto.dependency.get(*next) {
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
            let blocked = file.proto.dependency.iter().find_map(|import| {
                let d = index_by_name.get(import.as_str())?;
                match state.get(*d) {
                    Some(State::Added) => None,
                    Some(State::InProgress) => Some((import, "which imports it back (cycle)")),
                    _ => Some((import, "which was skipped")),
                }
            });
            let outcome = match blocked {
                Some((import, why)) => Err(SchemaWarning {
                    file: file.name.clone(),
                    origin: file.origin.clone(),
                    line: import_line(&file.proto, import),
                    symbol: None,
                    first_defined_in: None,
                    message: format!("imports '{import}', {why}"),
                }),
                None => pool
                    .add_file_descriptor_proto(file.proto.clone())
                    .map_err(|error| SchemaWarning {
                        file: file.name.clone(),
                        origin: file.origin.clone(),
                        line: error
                            .line()
                            .and_then(|l| u32::try_from(l).ok())
                            .map(|l| l.saturating_add(1)),
                        symbol: None,
                        first_defined_in: None,
                        message: format!("invalid: {error}"),
                    }),
            };
            match outcome {
                Ok(()) => set(&mut state, node, State::Added),
                Err(warning) => {
                    warnings.push(warning);
                    set(&mut state, node, State::Failed);
                }
            }
        }
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
fn defined_symbols(file: &FileDescriptorProto) -> Vec<(String, Option<u32>)> {
    let lines = Lines::new(file);
    let prefix = if file.package().is_empty() {
        String::new()
    } else {
        format!("{}.", file.package())
    };
    let mut out = Vec::new();
    for (i, message) in file.message_type.iter().enumerate() {
        message_symbols(message, &prefix, &mut vec![4, i as i32], &lines, &mut out);
    }
    for (i, enumeration) in file.enum_type.iter().enumerate() {
        enum_symbols(
            enumeration,
            &prefix,
            &mut vec![5, i as i32],
            &lines,
            &mut out,
        );
    }
    for (i, service) in file.service.iter().enumerate() {
        out.push((
            format!("{prefix}{}", service.name()),
            lines.get(&[6, i as i32]),
        ));
    }
    for (i, extension) in file.extension.iter().enumerate() {
        out.push((
            format!("{prefix}{}", extension.name()),
            lines.get(&[7, i as i32]),
        ));
    }
    out
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
        path.extend([3, i as i32]);
        message_symbols(nested, &nested_prefix, path, lines, out);
        path.truncate(path.len().saturating_sub(2));
    }
    for (i, enumeration) in message.enum_type.iter().enumerate() {
        path.extend([4, i as i32]);
        enum_symbols(enumeration, &nested_prefix, path, lines, out);
        path.truncate(path.len().saturating_sub(2));
    }
    for (i, extension) in message.extension.iter().enumerate() {
        path.extend([6, i as i32]);
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
        path.extend([2, i as i32]);
        out.push((format!("{prefix}{}", value.name()), lines.get(path)));
        path.truncate(path.len().saturating_sub(2));
    }
}

/// Line numbers from a file's source code info, by descriptor path.
struct Lines<'a> {
    by_path: HashMap<&'a [i32], u32>,
}

impl<'a> Lines<'a> {
    fn new(file: &'a FileDescriptorProto) -> Self {
        let by_path = file
            .source_code_info
            .iter()
            .flat_map(|info| info.location.iter())
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

/// 1-based line of `import "<name>";` in a file with source info.
fn import_line(file: &FileDescriptorProto, import: &str) -> Option<u32> {
    let index = file.dependency.iter().position(|d| d == import)?;
    let index = i32::try_from(index).ok()?;
    Lines::new(file).get(&[3, index])
}
