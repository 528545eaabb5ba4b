"""Load scenario files (YAML) into harness.model.Scenario.

Every problem with a file, whatever its content, is a ScenarioError naming
`file:line`, the key path (`layers[2].expect.seed`; list items count from 1,
like layers do), what is wrong and what is allowed. To get there:

1. the text is composed into a PyYAML node tree (SafeLoader), which knows the
   line of every key and value and shows duplicate keys, which PyYAML's
   constructor would silently drop;
2. the tree is checked for what would hurt the next steps: alias bombs, too
   deep nesting, numbers too big to print;
3. the constructed data is validated against harness.schema.SCHEMA, and the
   first error (in file order) is turned into a message.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from pathlib import Path

import jsonschema
import yaml
from jsonschema.exceptions import relevance
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.errors import ScenarioError
from harness.scenario.model import Expect, Layer, QemuConfig, Scenario
from harness.scenario.schema import PATTERN_WORDS, SCHEMA

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32          # a real scenario nests 5 deep
MAX_NODES = 10_000      # values after alias expansion; a real scenario has ~100
NOT_SCENARIOS = {"matrix.yaml", "known-gaps.yaml"}

_MERGE = "tag:yaml.org,2002:merge"
_INT = "tag:yaml.org,2002:int"
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"


def discover(directory: str | os.PathLike) -> list[Path]:
    """The scenario files in a folder, sorted; `_*.yaml` and the non-scenario
    YAML files the project keeps beside them are left out."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ScenarioError("no such folder", where=str(directory))
    return sorted(
        p for p in folder.glob("*.yaml")
        if p.is_file() and not p.name.startswith("_") and p.name not in NOT_SCENARIOS
    )


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read, validate and convert one scenario file."""
    return load_text(read_text(path), str(path))


def read_text(path: str | os.PathLike) -> str:
    """A project YAML file's text; any problem reading it is a ScenarioError."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ScenarioError("no such file", where=where) from None
    except IsADirectoryError:
        raise ScenarioError("is a folder, not a file", where=where) from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise ScenarioError(f"cannot read the file: {getattr(e, 'strerror', None) or e}",
                            where=where) from None
    _check_size(len(raw), where)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ScenarioError(f"not valid UTF-8: byte 0x{raw[e.start]:02x} at column {column}",
                            where=f"{where}:{line}", hint="save the file as UTF-8") from None


def load_document(path: str | os.PathLike, schema: dict) -> tuple[object, "Node"]:
    """Any of the project's YAML files (matrix, known gaps), validated against its own
    JSON Schema with the same file:line messages as scenarios. Returns (data, node tree)."""
    where = str(path)
    root, data = _parse(read_text(path), where)
    _validate(data, root, where, _Validator(schema))
    return data, root


def line_of(root: "Node", keys: list) -> int:
    """The line of the value at a key path (list indexes 0-based), for later messages."""
    return _line(root, keys, of_value=True)


def load_text(text: str, path: str | os.PathLike) -> Scenario:
    """Validate and convert scenario text; `path` is used for messages and to
    resolve relative kernel paths."""
    where = str(path)
    _check_size(len(text.encode("utf-8", "surrogatepass")), where)
    root, data = _parse(text, where)
    _validate(data, root, where)
    return _build(data, root, where)


def _check_size(size: int, where: str) -> None:
    # Also caps the time a hostile file can cost.
    if size > MAX_BYTES:
        raise ScenarioError(f"file is larger than {MAX_BYTES // 1024} KiB", where=where,
                            hint="a scenario is a short file; is this the right one?")


# --- YAML text to node tree and data ---------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that stops early at MAX_DEPTH nesting (the composer recurses,
    so deep input would end in RecursionError) or MAX_NODES values (composing is
    slow), and remembers the node being constructed (some constructors raise
    plain exceptions, without a line)."""

    def __init__(self, text: str, where: str):
        self.where, self.depth, self.nodes = where, 0, 0
        self.current: Node | None = None
        super().__init__(text)      # checks for control characters already

    def compose_node(self, parent, index):
        self.nodes += 1
        if self.depth >= MAX_DEPTH or self.nodes > MAX_NODES:
            problem = (f"nested more than {MAX_DEPTH} levels deep" if self.depth >= MAX_DEPTH
                       else f"more than {MAX_NODES} values; a scenario is a short file")
            line = self.peek_event().start_mark.line + 1
            raise ScenarioError(problem, where=f"{self.where}:{line}")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node, deep=False):
        self.current = node
        return super().construct_object(node, deep)


def _parse(text: str, where: str) -> tuple[Node, object]:
    try:
        loader = _Loader(text, where)
    except yaml.YAMLError as e:
        raise _yaml_error(e, text, where) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as e:
            raise _yaml_error(e, text, where) from None
        if root is None or (root.tag == _NULL and root.value == ""):   # "" or "---" alone
            raise ScenarioError("the file is empty", where=f"{where}:1",
                                hint="a scenario needs at least name, description and layers")
        _check_tree(root, where)
        try:
            data = loader.construct_document(root)
        except yaml.YAMLError as e:
            raise _yaml_error(e, text, where) from None
        except Exception as e:  # e.g. `!!timestamp x` raises AttributeError inside PyYAML
            line = loader.current.start_mark.line + 1 if loader.current else 1
            raise ScenarioError(f"invalid YAML: cannot read this value ({type(e).__name__})",
                                where=f"{where}:{line}") from None
    finally:
        loader.dispose()
    return root, data


def _yaml_error(e: yaml.YAMLError, text: str, where: str) -> ScenarioError:
    if isinstance(e, yaml.reader.ReaderError):
        # Raised for control characters; it carries a position, not a mark.
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        char = e.character if isinstance(e.character, int) else ord(e.character)
        return ScenarioError(f"invalid YAML: character U+{char:04X} is not allowed",
                             where=f"{where}:{line}:{column}")
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    started = getattr(e, "context_mark", None)
    if context and not context.startswith("while"):   # "expected X" + "but found Y"
        what = f"invalid YAML: {context}, {problem}"
    elif context:
        if started and started is not mark:
            # e.g. an unclosed '[' is noticed at the end of the file: say where it opened
            context += f" from line {started.line + 1}, column {started.column + 1}"
        what = f"invalid YAML: {problem} ({context})"
    else:
        what = f"invalid YAML: {problem}"
    if mark is None:
        return ScenarioError(what, where=where)
    return ScenarioError(what, where=f"{where}:{mark.line + 1}:{mark.column + 1}")


def _check_tree(root: Node, where: str) -> None:
    """Refuse duplicate keys, recursive or exploding aliases, and huge integers.

    Aliases make the tree a graph: each node is walked once and its expanded
    size and height are remembered, so a billion-laughs file costs nothing."""
    done: dict[int, tuple[int, int]] = {}   # id(node) -> (expanded size, height)
    busy: set[int] = set()

    def fail(node: Node, keys: list, what: str, hint: str | None = None):
        raise ScenarioError(f"{_keypath(keys) or 'top level'}: {what}",
                            where=f"{where}:{node.start_mark.line + 1}", hint=hint)

    def walk(node: Node, keys: list, depth: int) -> tuple[int, int]:
        if id(node) in busy:
            fail(node, keys, "an alias refers to a value that contains it")
        if id(node) not in done:
            busy.add(id(node))
            size, height = 1, 0
            for child_keys, child in _children(node, keys, fail):
                child_size, child_height = walk(child, child_keys, depth + 1)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_NODES:
                    break
            busy.discard(id(node))
            done[id(node)] = size, height
            if isinstance(node, ScalarNode) and node.tag == _INT and len(node.value) > 20:
                fail(node, keys, f"number too large: {_clip(node.value)}")
        size, height = done[id(node)]
        if depth + height > MAX_DEPTH:
            fail(node, keys, f"nested more than {MAX_DEPTH} levels deep (through aliases)")
        if size > MAX_NODES:
            fail(node, keys, f"more than {MAX_NODES} values with aliases expanded")
        return size, height

    walk(root, [], 0)


def _children(node: Node, keys: list, fail):
    """(key path, node) of each child, key nodes included; fails on a duplicate key."""
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield keys + [index], item
    elif isinstance(node, MappingNode):
        first: dict[tuple[str, str], Node] = {}
        for key, value in node.value:
            if key.tag == _MERGE:        # `<<: *base` merges a mapping, it is no key
                yield keys, value
                continue
            name = key.value if isinstance(key, ScalarNode) else "?"
            if isinstance(key, ScalarNode):
                if (key.tag, key.value) in first:
                    line = first[key.tag, key.value].start_mark.line + 1
                    fail(key, keys + [name], "duplicate key",
                         f"it is already set on line {line}; YAML keeps only the last one")
                first[key.tag, key.value] = key
            yield keys + [name], key
            yield keys + [name], value


# --- schema validation and messages ----------------------------------------------------

def _ecma_pattern(validator, pattern, instance, schema):
    # JSON Schema regexes follow ECMA 262, where `$` is the very end of the text;
    # Python's `$` also matches before a final newline, which would let "name\n" pass.
    if validator.is_type(instance, "string"):
        regex = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if not re.search(regex, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _finite_number(checker, instance) -> bool:
    # YAML has .inf and .nan; neither is a usable timeout (and nan passes any range check).
    base = jsonschema.Draft202012Validator.TYPE_CHECKER
    return base.is_type(instance, "number") and (isinstance(instance, int) or math.isfinite(instance))


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _ecma_pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number),
)
_VALIDATOR = _Validator(SCHEMA)

_TYPE_WORDS = {"string": "a string", "integer": "a whole number", "number": "a number",
               "boolean": "true/false", "null": "null", "object": "a mapping", "array": "a list"}


def _validate(data: object, root: Node, where: str, validator=_VALIDATOR) -> None:
    errors = sorted(validator.iter_errors(data), key=relevance, reverse=True)
    if not errors:
        return
    # The first problem in the file. A missing key (shown at its mapping's first line)
    # comes last: an unknown key in the same mapping is likely it, misspelt, and the
    # better thing to report. Ties keep jsonschema's relevance order.
    _, line, what, hint = min(
        ((e.validator == "required", *_explain(e, data, root)) for e in errors),
        key=lambda m: m[:2])
    raise ScenarioError(what, where=f"{where}:{line}", hint=hint)


def _explain(error: jsonschema.ValidationError, data: object, root: Node) -> tuple[int, str, str | None]:
    """(line, what, hint) for one schema error."""
    keys = list(error.absolute_path)
    kind, schema, value = error.validator, error.schema, error.instance
    hint = None
    if kind == "additionalProperties":
        allowed = sorted(schema["properties"])
        extra = next(k for k in value if k not in schema["properties"])
        keys.append(extra)
        what = f"unknown key; allowed: {', '.join(allowed)}"
        hint = _did_you_mean(extra, allowed)
        line = _line(root, keys)
    elif kind == "required":
        missing = next(k for k in schema["required"] if k not in value)
        what = f"missing required key '{missing}'"
        hint = f"{missing}: {_uncap(schema['properties'][missing]['description'])}"
        line = _line(root, keys, of_value=True)
    else:
        line = _line(root, keys)
        node = _locate(root, keys)[1]
        shown = _show(value, node)
        if kind == "type":
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            what = f"expected {' or '.join(_TYPE_WORDS[t] for t in types)}, got {shown}"
            if not keys:
                hint = "a scenario is a mapping with the keys name, description, layers and maybe tags, qemu"
            elif "string" in types and isinstance(node, ScalarNode) and value is not None:
                written = _clip(node.value)
                hint = f"YAML does not read {written} as text; put it in quotes: '{written}'"
            elif "description" in schema:
                hint = _uncap(schema["description"])
        elif kind == "enum":
            choices = [str(c) for c in schema["enum"]]
            what = f"{shown} is not allowed; allowed: {', '.join(choices)}"
            hint = _did_you_mean(value, choices)
        elif kind == "pattern":
            words = PATTERN_WORDS.get(schema["pattern"], f"text matching {schema['pattern']}")
            what = f"{shown} is not valid; allowed: {words}"
        elif kind in ("minimum", "maximum"):
            what = f"{shown} is out of range; allowed: {_range(schema, 'minimum', 'maximum')}"
            hint = _uncap(schema.get("description", "")) or None
        elif kind in ("minItems", "maxItems"):
            what = f"has {len(value)} items; allowed: {_range(schema, 'minItems', 'maxItems')} items"
        elif kind == "minLength":
            what = "must not be empty"
        elif kind == "maxLength":
            what = f"is {len(value)} characters long; allowed: at most {schema['maxLength']}"
        elif kind == "not":     # used to forbid a key, with the reason as description
            what = _uncap(schema.get("description", "not allowed here"))
        else:  # a keyword the schema may grow later
            what = _clip(error.message, 200)
    return line, f"{_keypath(keys, data) or 'top level'}: {what}", hint


def _range(schema: dict, low: str, high: str) -> str:
    if low in schema and high in schema:
        return f"{schema[low]} to {schema[high]}"
    return f"at least {schema[low]}" if low in schema else f"at most {schema[high]}"


def _did_you_mean(word: object, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(str(word), choices, n=1)
    return f"did you mean '{close[0]}'?" if close else None


def _keypath(keys: list, data: object = None) -> str:
    """`layers[2].expect.seed`. Indexes are shown from 1. With `data`, ints that are
    mapping keys (YAML allows them) are told apart from list indexes."""
    text = ""
    for key in keys:
        is_index = isinstance(data, list) if data is not None else isinstance(key, int)
        if is_index:
            text += f"[{key + 1}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(key)):    # YAML keys may be 1 or true, too
            text += f".{key}" if text else str(key)
        else:
            text += f"[{_clip(repr(key))}]"
        if data is not None:
            data = data[key] if isinstance(data, (list, dict)) else None
    return text


def _locate(root: Node, keys: list) -> tuple[Node | None, Node]:
    """(key node, value node) at a key path, or as deep as the path can be followed."""
    key_node, node = None, root
    for key in keys:
        if isinstance(node, SequenceNode) and isinstance(key, int) and key < len(node.value):
            key_node, node = None, node.value[key]
        elif isinstance(node, MappingNode):
            # Last one wins, as in PyYAML; merged (`<<`) pairs were inlined by construction.
            found = next(((k, v) for k, v in reversed(node.value) if _same_key(k, key)), None)
            if found is None:
                break
            key_node, node = found
        else:
            break
    return key_node, node


def _same_key(node: Node, key: object) -> bool:
    if not isinstance(node, ScalarNode):
        return False
    if node.tag == _STR:
        return node.value == key
    try:  # a key like `1` or `yes`: compare what YAML makes of it
        return yaml.constructor.SafeConstructor().construct_object(node) == key
    except Exception:
        return False


def _line(root: Node, keys: list, of_value: bool = False) -> int:
    key_node, node = _locate(root, keys)
    mark = (node if of_value or key_node is None else key_node).start_mark
    return mark.line + 1


def _show(value: object, node: Node | None) -> str:
    """A value as the user wrote it, kept short."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "an empty value (null)"
    if isinstance(value, str):
        return repr(_clip(value))
    written = node.value if isinstance(node, ScalarNode) else type(value).__name__
    if isinstance(value, float) and not math.isfinite(value):
        kind = "not a finite number"
    else:
        kind = {bool: "true/false", int: "a number", float: "a number"}.get(type(value),
                                                                          type(value).__name__)
    return f"{_clip(written)} ({kind})"


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _uncap(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:1].isupper() and text[1:2].islower() else text


# --- validated data to the model -------------------------------------------------------

def _build(data: dict, root: Node, where: str) -> Scenario:
    folder = Path(where).parent
    qemu = dict(data.get("qemu", {}))
    if "memory" in qemu:
        qemu["memory"] = int(qemu["memory"])          # 2048.0 is a valid integer to JSON Schema
    if "build" in qemu and qemu["build"] != "system" and not qemu["build"].startswith("debian:"):
        qemu["build"] = os.path.abspath(folder / qemu["build"])
    if "extra_args" in qemu:
        qemu["extra_args"] = tuple(qemu["extra_args"])
    layers = []
    for index, raw in enumerate(data["layers"], start=1):
        kernel = raw["kernel"]
        if not kernel.startswith("debian:"):
            kernel = os.path.abspath(folder / kernel)
        optional = {key: raw[key] for key in ("userland", "cmdline") if key in raw}
        if "timeout" in raw:
            optional["timeout"] = float(raw["timeout"])
        layers.append(Layer(
            index=index,
            kernel=kernel,
            loader=raw["loader"] if index > 1 else "qemu",
            expect=Expect.from_mapping(raw.get("expect", {})),
            line=_line(root, ["layers", index - 1], of_value=True),
            **optional,
        ))
    return Scenario(
        name=data["name"],
        description=data["description"],
        path=where,
        qemu=QemuConfig(**qemu),
        layers=tuple(layers),
        tags=tuple(data.get("tags", ())),
    )
