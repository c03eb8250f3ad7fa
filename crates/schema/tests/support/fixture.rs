//! Generates a directory shaped like a real Octane SDK `protodef/` directory, defects
//! included, so loading can be tested without shipping Octane's files.
//!
//! Defects, as in the SDK:
//! - `common.proto` holds a Windows-1252 byte (0x96, an en dash) inside a comment;
//! - split files `apinodesystem_1.proto` .. `apinodesystem_8.proto`; the odd ones repeat
//!   classes that per-class files (which sort first) already define;
//! - `callback.proto` and `module.proto` both define `octaneapi.StartRequest`;
//! - `apinodepininfohelper.proto` and `custom.proto` both define `octaneapi.ApiNodePinInfoEx`;
//! - different files import different members of those pairs;
//! - `apinodesystem.proto` has a comma where a semicolon belongs.
//!
//! Everything else is ordinary: ~80 per-class files in package `octaneapi`, each with a
//! message holding nested request/response types and a service with a dozen methods (most
//! also import three "core" class files and use their types), and a
//! few bigger files with several classes each (100 files, ~105 services, ~1,350 methods).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// Methods per generated class service.
pub const METHODS_PER_CLASS: usize = 13;
/// Number of per-class files.
pub const CLASS_COUNT: usize = 76;
/// How many core per-class files each other per-class file imports.
pub const LINKS_PER_CLASS: usize = 3;
/// The per-class files the others import.
pub const CORE_CLASSES: usize = 10;

/// Why the loader must skip a fixture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedSkip {
    /// Defines `symbol` at `line`, which `first` (a file name) defined already.
    Conflict {
        line: u32,
        symbol: String,
        first: String,
    },
    /// Syntax error at `line`.
    Syntax { line: u32 },
    /// Imports `import` (at `line`), which is skipped.
    Import { line: u32, import: String },
}

/// What the fixture holds and what loading it (as one directory) must give.
#[derive(Debug, Default)]
pub struct Fixture {
    /// File name -> contents.
    pub files: BTreeMap<String, Vec<u8>>,
    /// File name -> why it must be skipped.
    pub skipped: BTreeMap<String, ExpectedSkip>,
    /// Services and methods in the files that load (google/protobuf files have none).
    pub services: usize,
    pub methods: usize,
}

impl Fixture {
    /// Write every file into `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        for (name, contents) in &self.files {
            std::fs::write(dir.join(name), contents)?;
        }
        Ok(())
    }
}

/// A file being written line by line, remembering where things went.
struct ProtoText {
    text: String,
    lines: u32,
}

impl ProtoText {
    fn new(imports: &[&str]) -> Self {
        let mut file = ProtoText {
            text: String::new(),
            lines: 0,
        };
        file.line("// Generated fixture shaped like an Octane SDK protodef file.");
        file.line("syntax = \"proto3\";");
        file.line("package octaneapi;");
        for import in imports {
            file.line(&format!("import \"{import}\";"));
        }
        file
    }

    /// Append one line; returns its 1-based number.
    fn line(&mut self, line: &str) -> u32 {
        self.text.push_str(line);
        self.text.push('\n');
        self.lines += 1;
        self.lines
    }
}

fn class_names() -> Vec<String> {
    let fixed = [
        "ApiItem",
        "ApiNode",
        "ApiNodeGraph",
        "ApiRootNodeGraph",
        "ApiItemArray",
        "ApiNodeArray",
        "ApiRenderEngine",
        "ApiProjectManager",
        "ApiChangeManager",
        "ApiSceneExporter",
    ];
    let mut names: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    let mut i = 0;
    while names.len() < CLASS_COUNT {
        names.push(format!("ApiGenerated{i:02}"));
        i += 1;
    }
    names
}

fn file_of(class: &str) -> String {
    format!("{}.proto", class.to_lowercase())
}

/// Message `class` with METHODS_PER_CLASS request/response pairs; returns the line of
/// `message <class> {`.
fn write_class_message(file: &mut ProtoText, class: &str) -> u32 {
    let start = file.line(&format!("message {class} {{"));
    file.line("  enum Mode {");
    file.line("    MODE_DEFAULT = 0;");
    file.line("    MODE_FAST = 1;");
    file.line("  }");
    for m in 0..METHODS_PER_CLASS {
        file.line(&format!("  message method{m}Request {{"));
        file.line("    ObjectRef objectPtr = 1;");
        file.line("    uint32 index = 2;");
        file.line("    Mode mode = 3;");
        file.line("    repeated string names = 4;");
        file.line("  }");
        file.line(&format!("  message method{m}Response {{"));
        file.line("    ObjectRef result = 1;");
        file.line("    map<string, int64> counters = 2;");
        file.line("  }");
    }
    file.line("}");
    start
}

fn write_class_service(file: &mut ProtoText, class: &str) {
    file.line(&format!("service {class}Service {{"));
    for m in 0..METHODS_PER_CLASS {
        file.line(&format!(
            "  rpc method{m}({class}.method{m}Request) returns ({class}.method{m}Response);"
        ));
    }
    file.line("}");
}

/// Build the fixture.
pub fn octane_like_protodef() -> Fixture {
    let mut fixture = Fixture::default();
    let add = |fixture: &mut Fixture, name: &str, text: Vec<u8>| {
        fixture.files.insert(name.to_owned(), text);
    };

    // common.proto, with a 0x96 byte in a comment.
    let mut common = ProtoText::new(&[]);
    common.line("// Shared reference types. The byte between these words is 0x96: @DASH@ here.");
    common.line("message ObjectRef {");
    common.line("  enum ObjectType {");
    common.line("    ObjectTypeUnknown = 0;");
    common.line("    ApiItem = 16;");
    common.line("    ApiNode = 17;");
    common.line("  }");
    common.line("  uint64 handle = 1;");
    common.line("  ObjectType type = 2;");
    common.line("}");
    common.line("message Buffer { bytes data = 1; uint32 size = 2; }");
    let mut common_bytes = Vec::new();
    for part in common.text.split("@DASH@").enumerate() {
        if part.0 > 0 {
            common_bytes.push(0x96);
        }
        common_bytes.extend_from_slice(part.1.as_bytes());
    }
    add(&mut fixture, "common.proto", common_bytes);

    let mut enums = ProtoText::new(&[]);
    enums.line("enum NodePinType {");
    enums.line("  PT_UNKNOWN = 0;");
    enums.line("  PT_BOOL = 1;");
    enums.line("  PT_FLOAT = 2;");
    enums.line("}");
    add(&mut fixture, "octaneenums.proto", enums.text.into_bytes());

    // Per-class files: one message and one service each.
    let classes = class_names();
    let mut class_lines: BTreeMap<String, u32> = BTreeMap::new();
    for (index, class) in classes.iter().enumerate() {
        // Like the SDK's files, most refer to types of a few core classes (the first ten,
        // which import no other class file, so the imports form no cycle).
        let linked: Vec<&String> = if index < CORE_CLASSES {
            Vec::new()
        } else {
            (0..LINKS_PER_CLASS)
                .map(|k| &classes[(index + 3 * k) % CORE_CLASSES])
                .collect()
        };
        let linked_files: Vec<String> = linked.iter().map(|c| file_of(c)).collect();
        let mut imports = vec!["common.proto", "octaneenums.proto"];
        imports.extend(linked_files.iter().map(String::as_str));
        let mut file = ProtoText::new(&imports);
        let line = write_class_message(&mut file, class);
        write_class_service(&mut file, class);
        file.line(&format!("message {class}Links {{"));
        for (n, other) in linked.iter().enumerate() {
            file.line(&format!(
                "  {other}.Mode {}_mode = {};",
                other.to_lowercase(),
                n + 1
            ));
        }
        file.line("}");
        class_lines.insert(class.clone(), line);
        add(&mut fixture, &file_of(class), file.text.into_bytes());
        fixture.services += 1;
        fixture.methods += METHODS_PER_CLASS;
    }

    // Split files: odd ones repeat two per-class classes (and are skipped), even ones hold
    // classes of their own (and load).
    for n in 1..=8 {
        let name = format!("apinodesystem_{n}.proto");
        let mut file = ProtoText::new(&["common.proto", "octaneenums.proto"]);
        if n % 2 == 1 {
            // Classes whose per-class files sort before `apinodesystem_*`, as in the SDK.
            let repeated = match n {
                1 => ["ApiItemArray", "ApiNodeArray"],
                3 => ["ApiItem", "ApiNode"],
                5 => ["ApiNodeGraph", "ApiChangeManager"],
                _ => ["ApiGenerated00", "ApiGenerated01"],
            };
            let mut first_line = 0;
            for (k, class) in repeated.iter().enumerate() {
                let line = write_class_message(&mut file, class);
                write_class_service(&mut file, class);
                if k == 0 {
                    first_line = line;
                }
            }
            let first_class = repeated[0];
            fixture.skipped.insert(
                name.clone(),
                ExpectedSkip::Conflict {
                    line: first_line,
                    symbol: format!("octaneapi.{first_class}"),
                    first: file_of(first_class),
                },
            );
        } else {
            let class = format!("ApiNodeSystemPart{n}");
            write_class_message(&mut file, &class);
            write_class_service(&mut file, &class);
            fixture.services += 1;
            fixture.methods += METHODS_PER_CLASS;
        }
        add(&mut fixture, &name, file.text.into_bytes());
    }

    // A file importing a skipped split file is skipped in turn.
    let mut graph_builder = ProtoText::new(&["common.proto", "apinodesystem_1.proto"]);
    graph_builder.line("message ApiGraphBuilder { ObjectRef graph = 1; }");
    graph_builder.line("service ApiGraphBuilderService {");
    graph_builder.line("  rpc build(ApiGraphBuilder) returns (ApiGraphBuilder);");
    graph_builder.line("}");
    add(
        &mut fixture,
        "apigraphbuilder.proto",
        graph_builder.text.into_bytes(),
    );
    fixture.skipped.insert(
        "apigraphbuilder.proto".into(),
        ExpectedSkip::Import {
            line: 5,
            import: "apinodesystem_1.proto".into(),
        },
    );

    // The StartRequest pair: callback.proto sorts first and wins.
    let mut callback = ProtoText::new(&["common.proto", "google/protobuf/empty.proto"]);
    callback.line("message StartRequest { int32 callbackId = 1; }");
    callback.line("message CallbackEvent { int32 callbackId = 1; Buffer payload = 2; }");
    callback.line("service StreamCallbackService {");
    callback.line("  rpc callbackChannel(google.protobuf.Empty) returns (stream CallbackEvent);");
    callback.line("  rpc start(StartRequest) returns (google.protobuf.Empty);");
    callback.line("}");
    add(&mut fixture, "callback.proto", callback.text.into_bytes());
    fixture.services += 1;
    fixture.methods += 2;

    let mut module = ProtoText::new(&["common.proto"]);
    module.line("message ModuleInfo { string name = 1; }");
    let module_line = module.line("message StartRequest { string moduleId = 1; }");
    module.line("service ApiModuleService {");
    module.line("  rpc start(StartRequest) returns (ModuleInfo);");
    module.line("}");
    add(&mut fixture, "module.proto", module.text.into_bytes());
    fixture.skipped.insert(
        "module.proto".into(),
        ExpectedSkip::Conflict {
            line: module_line,
            symbol: "octaneapi.StartRequest".into(),
            first: "callback.proto".into(),
        },
    );

    // Importers of each member of the pair.
    let mut stream_user = ProtoText::new(&["callback.proto"]);
    stream_user.line("message StreamRegistration { StartRequest start = 1; }");
    stream_user.line("service ApiCallbackRegistryService {");
    stream_user.line("  rpc register(StreamRegistration) returns (StartRequest);");
    stream_user.line("}");
    add(
        &mut fixture,
        "apicallbackregistry.proto",
        stream_user.text.into_bytes(),
    );
    fixture.services += 1;
    fixture.methods += 1;

    let mut module_user = ProtoText::new(&["module.proto"]);
    module_user.line("message ModuleGraph { StartRequest start = 1; }");
    module_user.line("service ApiModuleGraphService {");
    module_user.line("  rpc open(ModuleGraph) returns (ModuleGraph);");
    module_user.line("}");
    add(
        &mut fixture,
        "apimodulegraph.proto",
        module_user.text.into_bytes(),
    );
    fixture.skipped.insert(
        "apimodulegraph.proto".into(),
        ExpectedSkip::Import {
            line: 4,
            import: "module.proto".into(),
        },
    );

    // The ApiNodePinInfoEx pair: apinodepininfohelper.proto sorts first and wins.
    let mut helper = ProtoText::new(&["common.proto", "octaneenums.proto"]);
    helper.line("message ApiNodePinInfoEx {");
    helper.line("  uint32 id = 1;");
    helper.line("  NodePinType type = 2;");
    helper.line("  oneof default_value { bool bool_value = 3; float float_value = 4; }");
    helper.line("}");
    helper.line("service ApiNodePinInfoExService {");
    helper.line("  rpc get(ObjectRef) returns (ApiNodePinInfoEx);");
    helper.line("}");
    add(
        &mut fixture,
        "apinodepininfohelper.proto",
        helper.text.into_bytes(),
    );
    fixture.services += 1;
    fixture.methods += 1;

    let mut custom = ProtoText::new(&["common.proto"]);
    custom.line("message CustomThing { string label = 1; }");
    let custom_line = custom.line("message ApiNodePinInfoEx { uint32 id = 1; string label = 2; }");
    custom.line("service ApiCustomService {");
    custom.line("  rpc describe(CustomThing) returns (ApiNodePinInfoEx);");
    custom.line("}");
    add(&mut fixture, "custom.proto", custom.text.into_bytes());
    fixture.skipped.insert(
        "custom.proto".into(),
        ExpectedSkip::Conflict {
            line: custom_line,
            symbol: "octaneapi.ApiNodePinInfoEx".into(),
            first: "apinodepininfohelper.proto".into(),
        },
    );

    let mut pin_user = ProtoText::new(&["apinodepininfohelper.proto"]);
    pin_user.line("message PinQuery { ApiNodePinInfoEx info = 1; }");
    pin_user.line("service ApiPinQueryService {");
    pin_user.line("  rpc query(PinQuery) returns (PinQuery);");
    pin_user.line("}");
    add(
        &mut fixture,
        "apipinquery.proto",
        pin_user.text.into_bytes(),
    );
    fixture.services += 1;
    fixture.methods += 1;

    let mut custom_user = ProtoText::new(&["custom.proto"]);
    custom_user.line("message CustomPanel { ApiNodePinInfoEx info = 1; }");
    custom_user.line("service ApiCustomPanelService {");
    custom_user.line("  rpc show(CustomPanel) returns (CustomPanel);");
    custom_user.line("}");
    add(
        &mut fixture,
        "apicustompanel.proto",
        custom_user.text.into_bytes(),
    );
    fixture.skipped.insert(
        "apicustompanel.proto".into(),
        ExpectedSkip::Import {
            line: 4,
            import: "custom.proto".into(),
        },
    );

    // apinodesystem.proto: a comma where a semicolon belongs.
    let mut broken = ProtoText::new(&["common.proto"]);
    broken.line("message ApiNodeSystem {");
    broken.line("  uint32 version = 1;");
    let comma_line = broken.line("  ObjectRef root = 2,");
    broken.line("  string name = 3;");
    broken.line("}");
    broken.line("service ApiNodeSystemService {");
    broken.line("  rpc get(ObjectRef) returns (ApiNodeSystem);");
    broken.line("}");
    add(
        &mut fixture,
        "apinodesystem.proto",
        broken.text.into_bytes(),
    );
    fixture.skipped.insert(
        "apinodesystem.proto".into(),
        ExpectedSkip::Syntax { line: comma_line },
    );

    // Extra ordinary files with a few services each, to reach the SDK's scale.
    let mut extra = 0;
    while fixture.files.len() < 100 {
        // Several classes per file, like the SDK's bigger files.
        let mut file = ProtoText::new(&["common.proto", "octaneenums.proto"]);
        for part in 0..5 {
            let class = format!("ApiExtra{extra:02}Part{part}");
            write_class_message(&mut file, &class);
            write_class_service(&mut file, &class);
            fixture.services += 1;
            fixture.methods += METHODS_PER_CLASS;
        }
        add(
            &mut fixture,
            &format!("zextra{extra:02}.proto"),
            file.text.into_bytes(),
        );
        extra += 1;
    }
    fixture
}
