#!/usr/bin/env python3
"""Validate Kubernetes manifests against the Kubernetes and CRD schemas.

    scripts/validate-manifests.py [--kubernetes-version 1.33] [--crds FILE]... FILE|- ...

Reads multi-document YAML files (`-` is stdin) and checks every object:
- core kinds against kubernetes-validate's strict JSON schemas for the pinned Kubernetes version
  (unknown fields are errors), plus the list keys server-side apply needs unique
  (x-kubernetes-list-map-keys, list-type set) and int32/int64/byte formats;
- CustomResourceDefinitions as core kinds, and structurally: a schema for every version, exactly one
  storage version, metadata.name `<plural>.<group>`, a type at every level; their schemas are kept;
- custom resources (served by a CRD from the input or from --crds files) against that version's
  openAPIV3Schema, Kubernetes-style: nullable honoured, x-kubernetes-* as annotations, fields not in
  the schema rejected unless x-kubernetes-preserve-unknown-fields, metadata checked as ObjectMeta;
- any other apiVersion/kind is an error.
Every problem is printed as `file:document Kind namespace/name: field.path: problem` (documents
counted from 1), then a summary line. Exit 0: all valid; 1: problems; 2: usage or I/O error.
Needs the venv `bash install.sh --deps-only` makes (AMBIENT_VALIDATOR_VENV, default
/opt/ambient-test/venv); run with another python3, it re-executes itself with the venv's.
"""
import argparse
import base64
import binascii
import json
import os
import re
import sys

VENV = os.environ.get("AMBIENT_VALIDATOR_VENV") or "/opt/ambient-test/venv"
REQUIREMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "validator-requirements.txt")
HINT = "run `bash install.sh --deps-only` (as root) to install it"


def fatal(message):
    print(f"validate-manifests: {message}", file=sys.stderr)
    sys.exit(2)


def mapping(value):
    return value if isinstance(value, dict) else {}


try:
    import jsonschema
    import kubernetes_validate
    import yaml
    from kubernetes_validate.version import __version__ as KV_VERSION
    from referencing import Registry, Resource
except ImportError as missing:
    python = os.path.join(VENV, "bin", "python3")
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV) and os.access(python, os.X_OK):
        os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])
    fatal(f"the validator's packages are missing ({missing}; venv {VENV}): {HINT}")

with open(REQUIREMENTS) as f:
    PINNED = re.search(r"^kubernetes-validate==(\S+)", f.read(), re.M).group(1)
if KV_VERSION != PINNED:
    fatal(f"kubernetes-validate {KV_VERSION} is installed, {PINNED} is pinned: {HINT}")

SCHEMAS = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# --- formats and list keys: what the apiserver (and server-side apply) enforce beyond types -------
FORMATS = jsonschema.FormatChecker([])  # only these; the defaults need packages we do not pin
FORMATS.checks("int32")(lambda v: not isinstance(v, int) or -(2**31) <= v < 2**31)
FORMATS.checks("int64")(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**63)


@FORMATS.checks("byte", raises=binascii.Error)
def _is_base64(value):
    return not isinstance(value, str) or base64.b64decode(value, validate=True) is not None


def _list_map_keys(validator, keys, instance, schema):
    if not validator.is_type(instance, "array"):
        return
    seen = {}
    for i, item in enumerate(instance):
        if isinstance(item, dict):
            key = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)
            if key in seen:
                shown = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
                yield jsonschema.ValidationError(f"items {seen[key]} and {i} have the same key ({shown}): a list map's keys must be unique")
            seen.setdefault(key, i)


def _list_type(validator, list_type, instance, schema):
    if list_type == "set" and validator.is_type(instance, "array"):
        values = [json.dumps(v, sort_keys=True) for v in instance]
        for value in {v for v in values if values.count(v) > 1}:
            yield jsonschema.ValidationError(f"{value} appears more than once in a set")


KEYWORDS = {"x-kubernetes-list-map-keys": _list_map_keys, "x-kubernetes-list-type": _list_type}
CoreValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, KEYWORDS)
CustomValidator = jsonschema.validators.extend(jsonschema.Draft7Validator, KEYWORDS)


# --- YAML: documents split on `---` (so one bad document hides no other), duplicate keys refused --
class Loader(yaml.SafeLoader):
    """Safe YAML as Kubernetes reads it: dates stay strings, a repeated key is an error."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


Loader.yaml_implicit_resolvers = {
    c: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for c, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def documents(name, text):
    """Yield (number, object or None, problem or None) for each YAML document of `text`."""
    chunks, lines, start = [], [], 1
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        if re.match(r"---(\s|$)", line):
            chunks.append((start, "".join(lines)))
            lines, start, line = [], lineno, "   " + line[3:]
        lines.append(line)
    chunks.append((start, "".join(lines)))
    if len(chunks) > 1 and not re.sub(r"(?m)^\s*(#.*)?$", "", chunks[0][1]).strip():
        chunks.pop(0)  # only comments before the first `---`: not a document
    for number, (first_line, chunk) in enumerate(chunks, 1):
        try:
            yield number, yaml.load(chunk, Loader=Loader), None
        except yaml.YAMLError as e:
            at = lambda mark: f" (line {first_line + mark.line}, column {mark.column + 1})" if mark else ""  # noqa: E731
            context = f"{e.context}{at(e.context_mark)}: " if getattr(e, "context", None) else ""
            problem = f"{e.problem}{at(e.problem_mark)}" if getattr(e, "problem", None) else str(e)
            yield number, None, f"malformed YAML in document {number}: {context}{problem}"


# --- schemas --------------------------------------------------------------------------------------
class CoreSchemas:
    """kubernetes-validate's strict schemas (additionalProperties false everywhere) for one version."""

    def __init__(self, version):
        match = re.fullmatch(r"v?(\d+\.\d+)(\.\d+)?", version)
        self.version = match.group(1) if match else version
        self.dir = os.path.join(SCHEMAS, f"v{self.version}.0-local-strict")
        if not match or not os.path.isdir(self.dir):
            have = sorted({d.split("-")[0][1:-2] for d in os.listdir(SCHEMAS)}, key=lambda v: tuple(map(int, v.split("."))))
            fatal(f"no schemas for Kubernetes {version!r}: kubernetes-validate {KV_VERSION} has {', '.join(have)}")
        with open(os.path.join(self.dir, "_definitions.json")) as f:
            self.registry = Resource.from_contents(json.load(f)) @ Registry()
        self.validators = {}

    def validator(self, group, version, kind):
        """The validator of a built-in kind, None if this Kubernetes version has no such kind."""
        if (group, version, kind) not in self.validators:
            prefix = group.split(".")[0] + "-" if group else ""
            path = os.path.join(self.dir, f"{kind.lower()}-{prefix}{version}.json")
            schema, validator = {}, None
            if os.path.isfile(path):
                with open(path) as f:
                    schema = json.load(f)
            # the file name alone also matches sub-objects (Affinity) and foreign groups (apps.example.com)
            if {"group": group, "version": version, "kind": kind} in schema.get("x-kubernetes-group-version-kind", []):
                registry = Resource.from_contents(schema) @ self.registry
                validator = CoreValidator(schema, registry=registry, format_checker=FORMATS)
            self.validators[group, version, kind] = validator
        return self.validators[group, version, kind]


def custom_schema(node, structural=True, root=False):
    """A CRD's openAPIV3Schema as JSON Schema (draft 7), with Kubernetes' meaning: `nullable`,
    boolean exclusive bounds, int-or-string, and unknown fields refused where Kubernetes would prune
    them (objects without additionalProperties or x-kubernetes-preserve-unknown-fields). Only the
    structural levels are closed, not the value validations under allOf/anyOf/oneOf/not."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k not in ("nullable", "default", "example")}
    for key in ("properties", "patternProperties", "definitions"):
        if isinstance(node.get(key), dict):
            out[key] = {k: custom_schema(v, structural) for k, v in node[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if key in node:
            out[key] = custom_schema(node[key], structural and key != "not")
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            out[key] = [custom_schema(v, False) for v in node[key]]
    for bound in ("minimum", "maximum"):  # OpenAPI 3.0's exclusive bounds are booleans
        exclusive = "exclusive" + bound.capitalize()
        if isinstance(out.get(exclusive), bool) and out.pop(exclusive) and bound in out:
            out[exclusive] = out.pop(bound)
    nullable = node.get("nullable") is True
    if node.get("x-kubernetes-int-or-string"):
        out.setdefault("allOf", []).append({"type": ["integer", "string"] + ["null"] * nullable})
    if nullable and "type" in out:
        out["type"] = [out["type"], "null"]
    if nullable and "enum" in out:
        out["enum"] = [*out["enum"], None]
    if root or node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        meta = custom_schema(mapping(node.get("properties")).get("metadata"), False)
        props["metadata"] = {"allOf": [{"$ref": OBJECT_META}, meta]} if meta else {"$ref": OBJECT_META}
    closed = out.get("type") == "object" and "additionalProperties" not in node
    if structural and closed and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def structural_problems(node, at, root=False):
    if not isinstance(node, dict):
        return [f"{at}: not a schema object"]
    problems = []
    if not any(node.get(k) for k in ("type", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")):
        problems.append(f"{at}: no type (a structural schema has one at every level)")
    if root and node.get("type") != "object":
        problems.append(f"{at}: the root must be of type object")
    if not isinstance(node.get("properties", {}), dict):
        problems.append(f"{at}.properties: not a mapping of field names to schemas")
    for key, child in mapping(node.get("properties")).items():
        problems += structural_problems(child, f"{at}.properties.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            problems += structural_problems(node[key], f"{at}.{key}")
    return problems


def crd_problems(crd, served, core):
    """What makes a CRD unusable; registers each version's validator in `served` on the way."""
    spec, name = mapping(crd.get("spec")), mapping(crd.get("metadata")).get("name")
    names, group, problems = mapping(spec.get("names")), spec.get("group"), []
    expected, kind = f"{names.get('plural')}.{group}", names.get("kind")
    if name != expected:
        problems.append(f"metadata.name: must be <names.plural>.<group> ({expected!r}), not {name!r}")
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    storage = [str(v.get("name")) for v in versions if v.get("storage") is True]
    if len(storage) != 1:
        problems.append(f"spec.versions: exactly one version must have storage: true, {len(storage)} do ({', '.join(storage)})")
    for i, v in enumerate(versions):
        at, schema = f"spec.versions[{i}].schema.openAPIV3Schema", mapping(v.get("schema")).get("openAPIV3Schema")
        key, unusable = (str(group), str(v.get("name")), str(kind)), f"the schema of {v.get('name')} in CustomResourceDefinition {name} is invalid"
        found = structural_problems(schema, at, root=True) if schema is not None else [f"{at}: missing (every version needs one)"]
        converted = custom_schema(schema, root=True) if not found else {}
        try:
            CustomValidator.check_schema(converted)
        except jsonschema.SchemaError as e:
            found.append(f"{at}: not a valid schema: {e.message}")
        problems += found
        if found:
            served[key] = (None, unusable)
        elif v.get("served") is not True:
            served[key] = (None, f"{v.get('name')} is not served by CustomResourceDefinition {name}")
        else:
            served[key] = (CustomValidator(converted, registry=core.registry, format_checker=FORMATS), None)
    return problems


# --- reporting and the run ------------------------------------------------------------------------
def field(path, key=None):
    parts = list(path) + ([key] if key is not None else [])
    text = ""
    for part in parts:
        if isinstance(part, int) or not re.fullmatch(r"[A-Za-z0-9_$-]+", str(part)):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(object)"


def describe(error):
    """One jsonschema error as `field.path: problem` lines, unknown and missing fields by name."""
    if error.validator == "additionalProperties" and error.validator_value is False:
        known, patterns = set(error.schema.get("properties", {})), list(error.schema.get("patternProperties", {}))
        unknown = [k for k in error.instance if k not in known and not any(re.search(p, k) for p in patterns)]
        return [f"{field(error.absolute_path, k)}: unknown field" for k in unknown]
    missing = re.fullmatch(r"'(.*)' is a required property", error.message)
    if error.validator == "required" and missing:
        return [f"{field(error.absolute_path, missing.group(1))}: required field is missing"]
    message = error.message if len(error.message) < 300 else error.message[:300] + "..."
    return [f"{field(error.absolute_path)}: {message}"]


def identity(obj):
    meta = mapping(obj.get("metadata"))
    name = meta.get("name") or meta.get("generateName") or "(no name)"
    return f"{obj.get('kind') or '(no kind)'} {meta['namespace'] + '/' if meta.get('namespace') else ''}{name}"


def object_problems(obj, core, served):
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["apiVersion and kind: required strings are missing"]
    group, _, version = api_version.rpartition("/")
    validator = core.validator(group, version, kind)
    if validator is None and (group, version, kind) in served:
        validator, unusable = served[group, version, kind]
        if validator is None:
            return [f"apiVersion: cannot be checked: {unusable}"]
    elif validator is None:
        versions = sorted(v for g, v, k in served if (g, k) == (group, kind))
        if versions:
            return [f"apiVersion: {kind} has no version {version!r} (its CRD defines {', '.join(versions)})"]
        return [f"unknown kind: {api_version} {kind} is neither a Kubernetes {core.version} kind "
                "nor served by a CustomResourceDefinition in the input or --crds"]
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    return [line for error in errors for line in describe(error)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="multi-document YAML; - for stdin")
    parser.add_argument("--crds", action="append", default=[], metavar="FILE",
                        help="YAML of CustomResourceDefinitions serving the custom resources (repeatable)")
    parser.add_argument("--kubernetes-version", default="1.33", help="schemas of this Kubernetes minor (default 1.33)")
    args = parser.parse_args()
    if (args.files + args.crds).count("-") > 1:
        parser.error("stdin (-) can be read once")
    core = CoreSchemas(args.kubernetes_version)

    problems, objects = [], []  # problems: (order, text); objects: (order, where, object, from --crds)
    for index, (name, from_crds) in enumerate([(n, True) for n in args.crds] + [(n, False) for n in args.files]):
        try:
            text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as e:
            fatal(f"cannot read {name}: {e}")
        for number, obj, problem in documents(name, text):
            order, where = (index, number), f"{name}:{number}"
            if problem:
                problems.append((order, f"{where}: {problem}"))
            elif obj is not None and not isinstance(obj, dict):
                problems.append((order, f"{where}: the document is a {type(obj).__name__}, not a Kubernetes object"))
            elif from_crds and obj is not None and obj.get("kind") != "CustomResourceDefinition":
                problems.append((order, f"{where} {identity(obj)}: --crds files hold only CustomResourceDefinitions"))
            elif obj is not None:
                objects.append((order, where, obj, from_crds))

    served, crd_found = {}, {}  # served: (group, version, kind) -> (validator, or None and why)
    for order, _, obj, _ in objects:
        if (obj.get("apiVersion"), obj.get("kind")) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
            crd_found[order] = crd_problems(obj, served, core)
    for order, where, obj, _ in objects:
        for problem in object_problems(obj, core, served) + crd_found.get(order, []):
            problems.append((order, f"{where} {identity(obj)}: {problem}"))
    inputs = [obj for _, _, obj, from_crds in objects if not from_crds]
    if not inputs and not problems:
        problems.append(((0, 0), f"{', '.join(args.files)}: no objects found"))

    problems = [text for _, text in sorted(problems, key=lambda p: p[0])]
    for problem in problems:
        print(problem)
    kinds = {(obj.get("apiVersion"), obj.get("kind")) for obj in inputs}
    if problems:
        print(f"{len(problems)} problems in {len(inputs)} objects")
        return 1
    print(f"validated {len(inputs)} objects ({len(kinds)} kinds): OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a bug here, not a problem in the input: never exit 1 for it
        import traceback

        traceback.print_exc()
        sys.exit(3)
