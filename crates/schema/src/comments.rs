//! Proto comments as data: the comments protoc records around a definition, read from the
//! source code info the schema keeps (see [`Schema::comments`](crate::Schema::comments)).

use std::collections::HashMap;

use prost::Message as _;
use prost_reflect::{
    EnumDescriptor, EnumValueDescriptor, FieldDescriptor, FileDescriptor, MessageDescriptor,
    MethodDescriptor, OneofDescriptor, ServiceDescriptor,
};

/// The comments of one definition: the one right above it and the one right after it on its
/// line (or on the next line), as protoc attaches them. Comments separated from a definition
/// by a blank line ("detached") are not about it and are left out.
///
/// Text is as written, without the `//` (or `/*`, `*/`) markers and the one space after
/// them; lines are joined with `\n` and blank lines at either end are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comments {
    /// The comment above the definition.
    pub leading: Option<String>,
    /// The comment after the definition.
    pub trailing: Option<String>,
}

impl Comments {
    /// The leading comment, then the trailing one on the lines after it: what documents the
    /// definition. Empty when it has neither.
    pub fn text(&self) -> String {
        match (&self.leading, &self.trailing) {
            (Some(leading), Some(trailing)) => format!("{leading}\n{trailing}"),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => String::new(),
        }
    }

    /// True if the definition has neither comment.
    pub fn is_empty(&self) -> bool {
        self.leading.is_none() && self.trailing.is_none()
    }
}

/// A definition that can carry comments: services, methods, messages, fields, oneofs, enums
/// and enum values. prost-reflect names each by its file and its path in that file, which is
/// how source code info refers to it.
pub trait Documented {
    /// The file the definition is in.
    fn file(&self) -> FileDescriptor;
    /// The definition's path in its file (as in `SourceCodeInfo.Location.path`).
    fn location_path(&self) -> &[i32];
}

macro_rules! documented {
    ($($descriptor:ty),*) => {$(
        impl Documented for $descriptor {
            fn file(&self) -> FileDescriptor {
                self.parent_file()
            }
            fn location_path(&self) -> &[i32] {
                self.path()
            }
        }
    )*};
}

documented!(
    ServiceDescriptor,
    MethodDescriptor,
    MessageDescriptor,
    FieldDescriptor,
    OneofDescriptor,
    EnumDescriptor,
    EnumValueDescriptor
);

/// Every commented definition of a schema: file name -> path -> comments. Only locations
/// with a comment are kept, a small part of the source code info.
#[derive(Debug, Default)]
pub(crate) struct CommentIndex {
    by_file: HashMap<Box<str>, HashMap<Box<[i32]>, Comments>>,
}

impl CommentIndex {
    /// From each file's encoded `SourceCodeInfo` (by file name).
    pub(crate) fn new(source_info: &HashMap<String, Vec<u8>>) -> Self {
        let mut by_file = HashMap::new();
        for (file, encoded) in source_info {
            // Encoded by the schema itself from a decoded value: always decodes.
            let Ok(info) = prost_types::SourceCodeInfo::decode(encoded.as_slice()) else {
                continue;
            };
            let commented: HashMap<Box<[i32]>, Comments> = info
                .location
                .iter()
                .filter_map(|location| {
                    let comments = Comments {
                        leading: location.leading_comments.as_deref().and_then(clean),
                        trailing: location.trailing_comments.as_deref().and_then(clean),
                    };
                    (!comments.is_empty()).then(|| (location.path.clone().into(), comments))
                })
                .collect();
            if !commented.is_empty() {
                by_file.insert(file.as_str().into(), commented);
            }
        }
        CommentIndex { by_file }
    }

    pub(crate) fn get(&self, file: &str, path: &[i32]) -> Option<&Comments> {
        self.by_file.get(file)?.get(path)
    }
}

/// Comment text as protoc records it (`" Gets the camera.\n"`) made readable: the one space
/// after the comment marker and trailing white space removed from each line, blank lines at
/// the ends dropped. `None` if nothing is left.
fn clean(raw: &str) -> Option<String> {
    let lines: Vec<&str> = raw
        .lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect();
    let first = lines.iter().position(|line| !line.is_empty())?;
    let last = lines.iter().rposition(|line| !line.is_empty())?;
    lines.get(first..=last).map(|kept| kept.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn comment_text_loses_markers_space_and_blank_ends() {
        assert_eq!(
            clean(" Gets the camera.\n"),
            Some("Gets the camera.".into())
        );
        assert_eq!(
            clean("\n First line.\n   indented\n\n Last.  \n\n"),
            Some("First line.\n  indented\n\nLast.".into())
        );
        assert_eq!(clean(" \n\n"), None);
    }
}
