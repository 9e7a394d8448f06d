//! Type information and the document as a whole: unsupported versions, missing `apiVersion` or
//! `kind`, YAML syntax errors, and kinds the mesh does not consume.

use super::Bad;

pub fn cases() -> Vec<Bad> {
    vec![
        bad!(
            "unsupported security version",
            UnsupportedVersion,
            Some("apiVersion"),
            r#"
# written for a release that does not exist yet
kind: AuthorizationPolicy
apiVersion: security.istio.io/v2  # <- here
metadata:
  name: future
  namespace: shop
"#
        ),
        bad!(
            "unsupported Gateway API version",
            UnsupportedVersion,
            Some("apiVersion"),
            r#"
apiVersion: gateway.networking.k8s.io/v1alpha2  # <- here
kind: HTTPRoute
metadata:
  name: old
  namespace: shop
"#
        ),
        bad!(
            "unsupported core version",
            UnsupportedVersion,
            Some("apiVersion"),
            r#"
apiVersion: v2  # <- here
kind: Pod
metadata:
  name: app
"#
        ),
        bad!(
            "missing kind",
            MissingTypeInfo,
            Some("kind"),
            r#"
apiVersion: v1  # <- here
metadata:
  name: nameless-kind
"#
        ),
        bad!(
            "missing apiVersion",
            MissingTypeInfo,
            Some("apiVersion"),
            r#"
kind: Service  # <- here
metadata:
  name: web
"#
        ),
        bad!(
            "apiVersion is not a string",
            MissingTypeInfo,
            Some("apiVersion"),
            r#"
apiVersion: 1  # <- here
kind: Service
"#
        ),
        bad!(
            "document is a list",
            MissingTypeInfo,
            None,
            r#"
- apiVersion: v1  # <- here
  kind: Service
"#
        ),
        bad!(
            "document is a scalar",
            MissingTypeInfo,
            None,
            r#"
just some text  # <- here
"#
        ),
        bad!(
            "unclosed flow mapping",
            YamlSyntax,
            None,
            r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop
spec:  # <- here
  ports: []
"#
        ),
        bad!(
            "tab indentation",
            YamlSyntax,
            None,
            "
apiVersion: v1
kind: Service
metadata:
\tname: web  # <- here
"
        ),
        bad!(
            "Deployment is not consumed",
            IgnoredKind,
            None,
            r#"
apiVersion: apps/v1  # <- here
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
"#
        ),
        bad!(
            "VirtualService is not consumed",
            IgnoredKind,
            None,
            r#"
apiVersion: networking.istio.io/v1  # <- here
kind: VirtualService
metadata:
  name: web
"#
        ),
        bad!(
            "known kind name in the wrong group",
            IgnoredKind,
            None,
            r#"
apiVersion: networking.istio.io/v1  # <- here
kind: AuthorizationPolicy
metadata:
  name: misplaced
"#
        ),
    ]
}
