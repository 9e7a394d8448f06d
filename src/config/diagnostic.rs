//! Problems found in configuration, with stable codes (listed in docs/analyze.md).

use std::fmt;

use serde::Serialize;

/// How bad a finding is. Errors make `ambient analyze` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// Stable finding codes. Never renumber: users filter and suppress by code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// The document is not valid YAML.
    YamlSyntax,
    /// The document is not an object with `apiVersion` and `kind`.
    MissingTypeInfo,
    /// A known kind with an `apiVersion` this version of ambient does not read.
    UnsupportedVersion,
    /// A field has the wrong type, an unknown enum value, or a required field is missing.
    SchemaViolation,
    /// A well-typed field holds an invalid value (bad CIDR, port out of range, bad name).
    InvalidValue,
    /// The same object is defined more than once; the first definition is used.
    DuplicateObject,
    /// A kind the mesh does not consume; it is ignored.
    IgnoredKind,
    /// An input file or folder could not be read.
    Unreadable,
}

impl Code {
    pub const ALL: &'static [Code] = &[
        Code::YamlSyntax,
        Code::MissingTypeInfo,
        Code::UnsupportedVersion,
        Code::SchemaViolation,
        Code::InvalidValue,
        Code::DuplicateObject,
        Code::IgnoredKind,
        Code::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::YamlSyntax => "AMB0001",
            Code::MissingTypeInfo => "AMB0002",
            Code::UnsupportedVersion => "AMB0003",
            Code::SchemaViolation => "AMB0004",
            Code::InvalidValue => "AMB0005",
            Code::DuplicateObject => "AMB0006",
            Code::IgnoredKind => "AMB0007",
            Code::Unreadable => "AMB0008",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Code::DuplicateObject => Severity::Warning,
            Code::IgnoredKind => Severity::Info,
            _ => Severity::Error,
        }
    }
}

/// Serialized as its stable string, e.g. `"AMB0004"`.
impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, located as precisely as it can be: file (a path, `<stdin>`, or `kube`),
/// line, object and field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `Kind namespace/name`, or as much of it as could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(code: Code, file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            file: file.into(),
            line: None,
            object: None,
            field: None,
            message: message.into(),
        }
    }

    /// `file:line`, or just the source when the line is unknown.
    pub fn location(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.file),
            None => self.file.clone(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.location(), self.code, self.severity)?;
        if let Some(object) = &self.object {
            write!(f, " {object}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}
