# SPDX-License-Identifier: GPL-2.0-only
"""The one loader of the project's YAML files with line numbers (scenarios, matrix,
known gaps, images/ recipes). Every problem is an `error` (ScenarioError unless the caller
passes its own SeedchainError class) naming `file:line`, the key path (`layers[2].expect.seed`,
items from 1), what is wrong and what is allowed. `read_text` caps (MAX_BYTES) and decodes;
`parse` makes (node tree, data), refusing duplicate keys, alias bombs and deep nesting;
`validate` words, via `explain`, the first error in file order of a `Validator` (JSON Schema,
ECMA regexes, finite numbers); `load_document` does all three. `line_of`, `line_at`, `locate`,
`keypath`, `show`, `clip`, `uncap`, `did_you_mean` help word other messages. `Words`: what
messages say about one kind of file (pattern words, hints); its defaults fit any file."""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, cast

import jsonschema
import yaml
from jsonschema.exceptions import relevance
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness import files
from harness.errors import ScenarioError, SeedchainError

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32          # a real scenario nests 5 deep
MAX_NODES = 10_000      # values after alias expansion; a real scenario has ~100

_MERGE, _INT, _STR, _NULL = (f"tag:yaml.org,2002:{tag}" for tag in ("merge", "int", "str", "null"))


@dataclass(frozen=True)
class Words:
    too_long: str = "this is too long"              # "more than 10000 values; ..."
    size_hint: str | None = "is this the right file?"
    empty_hint: str | None = None                   # for "the file is empty"
    top_hint: str | None = None                     # the top level has the wrong type
    patterns: dict = field(default_factory=dict)    # schema pattern -> what it allows


PLAIN = Words()
Error = type[SeedchainError]


def read_text(path: str | os.PathLike, words: Words = PLAIN, error: Error = ScenarioError) -> str:
    """A project YAML file's text; any problem reading it is an `error`."""
    where = str(path)
    try:
        with files.open_plain(path, error, where) as f:      # a FIFO is refused, not waited on
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise error("no such file", where=where) from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise error(f"cannot read the file: {getattr(e, 'strerror', None) or e}", where=where) from None
    check_size(len(raw), where, words, error)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise error(f"not valid UTF-8: byte 0x{raw[e.start]:02x} at column {column}",
                    where=f"{where}:{line}", hint="save the file as UTF-8") from None


def load_document(path: str | os.PathLike, schema: dict, words: Words = PLAIN,
                  error: Error = ScenarioError) -> tuple[object, Node]:
    """Read, parse and validate a file against its JSON Schema: (data, node tree)."""
    where = str(path)
    root, data = parse(read_text(path, words, error), where, words, error)
    validate(data, root, where, Validator(schema), words, error)
    return data, root


def line_of(root: Node, keys: list) -> int:
    """The line of the value at a key path (list indexes 0-based), for later messages."""
    return line_at(root, keys, of_value=True)


def check_size(size: int, where: str, words: Words = PLAIN, error: Error = ScenarioError) -> None:
    # Also caps the time a hostile file can cost.
    if size > MAX_BYTES:
        raise error(f"file is larger than {MAX_BYTES // 1024} KiB", where=where, hint=words.size_hint)


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops at MAX_DEPTH nesting (the composer recurses: deep input would
    end in RecursionError) or MAX_NODES values (composing is slow), and remembers the node
    being constructed (some constructors raise plain exceptions, without a line)."""

    def __init__(self, text: str, where: str, words: Words, error: Error):
        self.where, self.words, self.error, self.depth, self.nodes = where, words, error, 0, 0
        self.current: Node | None = None
        super().__init__(text)      # checks for control characters already

    def compose_node(self, parent, index):
        self.nodes += 1
        if self.depth >= MAX_DEPTH or self.nodes > MAX_NODES:
            problem = (f"nested more than {MAX_DEPTH} levels deep" if self.depth >= MAX_DEPTH
                       else f"more than {MAX_NODES} values; {self.words.too_long}")
            line = self.peek_event().start_mark.line + 1
            raise self.error(problem, where=f"{self.where}:{line}")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node, deep=False):
        self.current = node
        return super().construct_object(node, deep)


def parse(text: str, where: str, words: Words = PLAIN, error: Error = ScenarioError) -> tuple[Node, object]:
    try:
        loader = _Loader(text, where, words, error)
    except yaml.YAMLError as e:
        raise _yaml_error(e, text, where, error) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as e:
            raise _yaml_error(e, text, where, error) from None
        if root is None or (root.tag == _NULL and root.value == ""):   # "" or "---" alone
            raise error("the file is empty", where=f"{where}:1", hint=words.empty_hint)
        _check_tree(root, where, error)
        try:
            data = loader.construct_document(root)
        except yaml.YAMLError as e:
            raise _yaml_error(e, text, where, error) from None
        except Exception as e:  # e.g. `!!timestamp x` raises AttributeError inside PyYAML
            line = loader.current.start_mark.line + 1 if loader.current else 1
            raise error(f"invalid YAML: cannot read this value ({type(e).__name__})",
                        where=f"{where}:{line}") from None
    finally:
        loader.dispose()
    return root, data


def _yaml_error(e: yaml.YAMLError, text: str, where: str, error: Error) -> SeedchainError:
    if isinstance(e, yaml.reader.ReaderError):
        # Raised for control characters; it carries a position, not a mark.
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        char = e.character if isinstance(e.character, int) else ord(e.character)
        return error(f"invalid YAML: character U+{char:04X} is not allowed", where=f"{where}:{line}:{column}")
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context, started = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and not context.startswith("while"):   # "expected X" + "but found Y"
        what = f"invalid YAML: {context}, {problem}"
    elif context:
        if started and started is not mark:
            # e.g. an unclosed '[' is noticed at the end of the file: say where it opened
            context += f" from line {started.line + 1}, column {started.column + 1}"
        what = f"invalid YAML: {problem} ({context})"
    else:
        what = f"invalid YAML: {problem}"
    return error(what, where=where if mark is None else f"{where}:{mark.line + 1}:{mark.column + 1}")


def _check_tree(root: Node, where: str, error: Error) -> None:
    """Refuse duplicate keys, recursive or exploding aliases, and huge integers. Aliases
    make the tree a graph: each node is walked once and its expanded size and height
    remembered, so a billion-laughs file costs nothing."""
    done: dict[int, tuple[int, int]] = {}   # id(node) -> (expanded size, height)
    busy: set[int] = set()

    def fail(node: Node, keys: list, what: str, hint: str | None = None):
        raise error(f"{keypath(keys) or 'top level'}: {what}",
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
                fail(node, keys, f"number too large: {clip(node.value)}")
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


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, validators={"pattern": _ecma_pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number))

_TYPE_WORDS = {"string": "a string", "integer": "a whole number", "number": "a number",
               "boolean": "true/false", "null": "null", "object": "a mapping", "array": "a list"}


def validate(data: object, root: Node, where: str, validator: jsonschema.Validator,
             words: Words = PLAIN, error: Error = ScenarioError, explainer=None) -> None:
    """Raise an `error` for the first schema error in file order, naming file:line;
    `explainer` (default explain) words each one: (error, data, root, words)."""
    errors = sorted(validator.iter_errors(cast(Any, data)), key=relevance, reverse=True)
    if not errors:
        return
    # The first problem in the file; a missing key (shown at its mapping's first line) comes
    # last, as an unknown key in the same mapping is likely it, misspelt. Ties keep relevance.
    _, line, what, hint = min(
        ((e.validator == "required", *(explainer or explain)(e, data, root, words)) for e in errors),
        key=lambda m: m[:2])
    raise error(what, where=f"{where}:{line}", hint=hint)


def explain(error: jsonschema.ValidationError, data: object, root: Node,
            words: Words = PLAIN) -> tuple[int, str, str | None]:
    """(line, what, hint) for one schema error."""
    keys = list(error.absolute_path)
    # the schemas here are plain JSON objects (never `true`/`false`), the instance plain data
    kind, schema, value = error.validator, cast(dict[str, Any], error.schema), cast(Any, error.instance)
    hint = None
    if kind == "additionalProperties":
        allowed = sorted(k for k, s in schema["properties"].items() if s.get("not") != {})  # not forbidden ones
        extra = next(k for k in value if k not in schema["properties"])
        keys.append(extra)
        what = f"unknown key; allowed: {', '.join(allowed)}"
        hint = did_you_mean(extra, allowed)
        line = line_at(root, keys)
    elif kind == "required":
        missing = next(k for k in schema["required"] if k not in value)
        what = f"missing required key '{missing}'"
        hint = f"{missing}: {uncap(schema['properties'][missing]['description'])}"
        line = line_at(root, keys, of_value=True)
    else:
        line = line_at(root, keys)
        node = locate(root, keys)[1]
        shown = show(value, node)
        if kind == "type":
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not keys and isinstance(value, str):   # a file given by mistake: its size, never its text
                shown = f"text ({len(value)} characters)"
            what = f"expected {' or '.join(_TYPE_WORDS[t] for t in types)}, got {shown}"
            if not keys:
                hint = words.top_hint
            elif "string" in types and isinstance(node, ScalarNode) and value is not None:
                written = clip(node.value)
                hint = f"YAML does not read {written} as text; put it in quotes: '{written}'"
            elif "description" in schema:
                hint = uncap(schema["description"])
        elif kind == "enum":
            choices = [str(c) for c in schema["enum"]]
            what = f"{shown} is not allowed; allowed: {', '.join(choices)}"
            hint = did_you_mean(value, choices)
        elif kind == "pattern":
            allowed = words.patterns.get(schema["pattern"], f"text matching {schema['pattern']}")
            what = f"{shown} is not valid; allowed: {allowed}"
        elif kind in ("minimum", "maximum"):
            what = f"{shown} is out of range; allowed: {_range(schema, 'minimum', 'maximum')}"
            hint = uncap(schema.get("description", "")) or None
        elif kind in ("minItems", "maxItems"):
            what = f"has {len(value)} items; allowed: {_range(schema, 'minItems', 'maxItems')} items"
        elif kind == "minLength":
            what = "must not be empty"
        elif kind == "maxLength":
            what = f"is {len(value)} characters long; allowed: at most {schema['maxLength']}"
        elif kind == "not":     # used to forbid a key, with the reason as description
            what = uncap(schema.get("description", "not allowed here"))
        else:  # a keyword the schema may grow later
            what = clip(error.message, 200)
    return line, f"{keypath(keys, data) or 'top level'}: {what}", hint


def _range(schema: dict, low: str, high: str) -> str:
    return (f"{schema[low]} to {schema[high]}" if low in schema and high in schema
            else f"at least {schema[low]}" if low in schema else f"at most {schema[high]}")


def did_you_mean(word: object, choices: list[str]) -> str | None:
    return next((f"did you mean '{c}'?" for c in difflib.get_close_matches(str(word), choices, n=1)), None)


def keypath(keys: list, data: object = None) -> str:
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
            text += f"[{clip(repr(key))}]"
        if data is not None:
            data = data[key] if isinstance(data, (list, dict)) else None
    return text


def locate(root: Node, keys: list) -> tuple[Node | None, Node]:
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


def line_at(root: Node, keys: list, of_value: bool = False) -> int:
    key_node, node = locate(root, keys)
    mark = (node if of_value or key_node is None else key_node).start_mark
    return mark.line + 1


def show(value: object, node: Node | None) -> str:
    """A value as the user wrote it, kept short."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "an empty value (null)"
    if isinstance(value, str):
        return repr(clip(value))
    written = node.value if isinstance(node, ScalarNode) else type(value).__name__
    if isinstance(value, float) and not math.isfinite(value):
        kind = "not a finite number"
    else:
        kind = {bool: "true/false", int: "a number", float: "a number"}.get(type(value), type(value).__name__)
    return f"{clip(written)} ({kind})"


def clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def uncap(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:1].isupper() and text[1:2].islower() else text
