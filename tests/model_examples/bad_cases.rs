//! The table of broken documents: each must be rejected with one diagnostic of the expected code,
//! naming the offending field, on the line marked `# <- here`. The cases are split by theme into
//! the submodules; [`bad_cases`] joins them in a fixed order.

use ambient::config::diagnostic::Code;

/// Marks the line a diagnostic is expected on.
const HERE: &str = "# <- here";

pub struct Bad {
    pub name: &'static str,
    yaml: String,
    pub code: Code,
    pub field: Option<&'static str>,
}

impl Bad {
    pub fn new(name: &'static str, code: Code, field: Option<&'static str>, yaml: impl Into<String>) -> Self {
        Bad { name, yaml: yaml.into(), code, field }
    }

    pub fn text(&self) -> &str {
        self.yaml.strip_prefix('\n').unwrap_or(&self.yaml)
    }

    /// Problems with the document as a whole (no type information, a kind the mesh ignores) are
    /// reported at the line the document starts on.
    pub fn at_document_start(&self) -> bool {
        matches!(self.code, Code::MissingTypeInfo | Code::IgnoredKind)
    }

    /// The 1-based line holding the `# <- here` marker.
    pub fn marked_line(&self) -> usize {
        let lines: Vec<usize> =
            self.text().lines().enumerate().filter(|(_, l)| l.contains(HERE)).map(|(i, _)| i + 1).collect();
        assert_eq!(lines.len(), 1, "case {} needs exactly one `{HERE}` marker", self.name);
        lines[0]
    }
}

/// `bad!(name, Code variant, field, yaml)`: one case of the table. With a head before the yaml
/// (`in_shop(..)`), the document is the head followed by the yaml.
macro_rules! bad {
    ($name:literal, $code:ident, $field:expr, $head:expr, $rest:literal) => {
        $crate::bad_cases::Bad::new(
            $name,
            ::ambient::config::diagnostic::Code::$code,
            $field,
            $head + $rest.strip_prefix('\n').unwrap_or($rest),
        )
    };
    ($name:literal, $code:ident, $field:expr, $yaml:literal) => {
        $crate::bad_cases::Bad::new($name, ::ambient::config::diagnostic::Code::$code, $field, $yaml)
    };
}

mod documents;
mod schema;
mod values;

/// The `apiVersion` and `kind` of the objects most cases are about.
type TypeInfo = (&'static str, &'static str);

const AUTHORIZATION_POLICY: TypeInfo = ("security.istio.io/v1", "AuthorizationPolicy");
const PEER_AUTHENTICATION: TypeInfo = ("security.istio.io/v1", "PeerAuthentication");
const REQUEST_AUTHENTICATION: TypeInfo = ("security.istio.io/v1", "RequestAuthentication");
const SERVICE_ENTRY: TypeInfo = ("networking.istio.io/v1", "ServiceEntry");
const WORKLOAD_ENTRY: TypeInfo = ("networking.istio.io/v1", "WorkloadEntry");
const GATEWAY: TypeInfo = ("gateway.networking.k8s.io/v1", "Gateway");
const HTTP_ROUTE: TypeInfo = ("gateway.networking.k8s.io/v1", "HTTPRoute");
const SERVICE: TypeInfo = ("v1", "Service");
const SERVICE_ACCOUNT: TypeInfo = ("v1", "ServiceAccount");
const POD: TypeInfo = ("v1", "Pod");
const ENDPOINT_SLICE: TypeInfo = ("discovery.k8s.io/v1", "EndpointSlice");

/// The five lines most cases start with: `apiVersion` and `kind`, then `metadata` with the object's
/// `name` and `namespace: shop`. A marker on line N of the yaml after it is on line N + 5.
fn in_shop((api_version, kind): TypeInfo, name: &str) -> String {
    format!("apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: shop\n")
}

/// Every case, always in the same order (a test varies the filler before each case by its index).
pub fn bad_cases() -> Vec<Bad> {
    let mut cases = schema::cases();
    cases.extend(values::cases());
    cases.extend(documents::cases());
    cases
}
