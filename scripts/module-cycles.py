#!/usr/bin/env python3
"""Fails when Tessera's modules import each other in a circle.

For every crate of the workspace (the server in src/, the crates in
crates/*/src/) it builds the graph of which source file uses which, from
`use` declarations and from `crate::`, `super::`, `self::` and child-module
paths in the code, following `pub use` re-exports to the file that defines
the item. Test code (`#[cfg(test)]` items) is left out: it may reach across
layers.

Two checks, each naming the files and lines of every edge of a cycle:
  1. the top-level modules of a crate (`config`, `keys`, `acme`, ...) form
     no cycle;
  2. within one top-level module, sibling files form no cycle. A parent
     module using its own children, and a child using items of its parent
     (`use super::...`), is ordinary Rust and not counted; only uses between
     modules neither of which contains the other make edges here.

Usage: scripts/module-cycles.py [--graph]   (--graph prints the layers)
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ITEM_KEYWORDS = ("fn", "struct", "enum", "trait", "type", "const", "static", "union")


@dataclass
class Use:
    """One leaf of a use tree: `path` (resolved later), `alias` it binds."""

    path: list[str]
    alias: str | None
    glob: bool
    public: bool
    line: int


@dataclass
class Module:
    """One source file (or inline module) and what it declares and uses."""

    path: tuple[str, ...]  # module path below the crate root
    file: Path
    children: dict[str, "Module"] = field(default_factory=dict)
    items: set[str] = field(default_factory=set)
    uses: list[Use] = field(default_factory=list)
    # Paths written in code: (segments, line).
    paths: list[tuple[list[str], int]] = field(default_factory=list)
    parent: "Module | None" = None


# --- lexing -----------------------------------------------------------------


def strip_comments_and_literals(text: str) -> str:
    """Blanks comments, strings and char literals, keeping newlines."""
    out = []
    i, n = 0, len(text)

    def blank(s: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 2)
                j = n if j < 0 else j + 1
                out.append(blank(text[i:j]))
                i = j
            elif i + 2 < n and text[i + 2] == "'":
                out.append("   ")
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_item(text: str, start: int) -> int:
    """The end of the item beginning at `start` (after its attributes)."""
    depth = 0
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == ";" and depth == 0:
            return i + 1
        elif c == "{" and depth == 0:
            return match_brace(text, i)
        i += 1
    return n


def match_brace(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


ATTRIBUTE = re.compile(r"#\s*!?\s*\[")
CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def remove_test_items(text: str) -> tuple[str, set[str]]:
    """Blanks `#[cfg(test)]` items; returns the names of test-only `mod x;`."""
    test_mods: set[str] = set()
    while m := CFG_TEST.search(text):
        i = m.end()
        # Further attributes on the same item.
        while True:
            ws = re.compile(r"\s*").match(text, i).end()
            if ATTRIBUTE.match(text, ws):
                i = text.index("]", ws) + 1  # attributes here hold no nested ']'
            else:
                i = ws
                break
        mod_decl = re.compile(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;").match(text, i)
        if mod_decl:
            test_mods.add(mod_decl.group(1))
        end = skip_item(text, i)
        text = text[: m.start()] + "".join("\n" if c == "\n" else " " for c in text[m.start() : end]) + text[end:]
    return text, test_mods


# --- parsing ----------------------------------------------------------------

USE_DECL = re.compile(r"(?<![\w:])(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]*);")
MOD_DECL = re.compile(r"(?<![\w:])(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(\w+)\s*([;{])")
ITEM_DECL = re.compile(r"(?<![\w:])(?:" + "|".join(ITEM_KEYWORDS) + r")\s+(\w+)")
MACRO_DECL = re.compile(r"macro_rules!\s*(\w+)")
CODE_PATH = re.compile(r"(?<![\w:$])((?:r#)?\w+)((?:\s*::\s*(?:r#)?\w+)+)")
USE_TOKEN = re.compile(r"\s*(::|\{|\}|,|\*|[A-Za-z_]\w*|r#\w+)")


def parse_use_tree(src: str) -> list[tuple[list[str], str | None, bool]]:
    tokens = [m.group(1) for m in USE_TOKEN.finditer(src)]
    pos = 0

    def tree(prefix: list[str]) -> list[tuple[list[str], str | None, bool]]:
        nonlocal pos
        path = list(prefix)
        while pos < len(tokens):
            tok = tokens[pos]
            if tok == "{":
                pos += 1
                leaves = []
                while pos < len(tokens) and tokens[pos] != "}":
                    if tokens[pos] == ",":
                        pos += 1
                        continue
                    leaves.extend(tree(path))
                pos += 1
                return leaves
            if tok == "*":
                pos += 1
                return [(path, None, True)]
            if tok == "::":
                pos += 1
                continue
            if tok in (",", "}"):
                break
            if tok == "as":
                alias = tokens[pos + 1] if pos + 1 < len(tokens) else "_"
                pos += 2
                return [(path, alias, False)]
            if tok == "self" and path:
                pos += 1
                continue
            path.append(tok.removeprefix("r#"))
            pos += 1
        return [(path, None, False)]

    return tree([])


def line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def parse_file(module: Module, text: str) -> list[tuple[str, bool]]:
    """Fills `module` from its source; returns its `mod` declarations."""
    text, test_mods = remove_test_items(strip_comments_and_literals(text))
    declared = []
    # Inline modules other than tests are rare; their contents count as the file's.
    for m in MOD_DECL.finditer(text):
        if m.group(2) == ";" and m.group(1) not in test_mods:
            declared.append((m.group(1), True))
    for m in USE_DECL.finditer(text):
        public = m.group(1) is not None and "super" not in m.group(1)
        for path, alias, glob in parse_use_tree(m.group(2)):
            module.uses.append(Use(path, alias, glob, public, line_of(text, m.start())))
    module.items.update(m.group(1) for m in ITEM_DECL.finditer(text))
    module.items.update(m.group(1) for m in MACRO_DECL.finditer(text))
    code = USE_DECL.sub(lambda m: " " * len(m.group(0)), text)
    code = MOD_DECL.sub(lambda m: " " * len(m.group(0)), code)
    for m in CODE_PATH.finditer(code):
        segments = [m.group(1)] + [s.strip().removeprefix("r#") for s in m.group(2).split("::")[1:]]
        module.paths.append((segments, line_of(code, m.start())))
    return declared


def child_file(parent: Module, name: str) -> Path | None:
    f = parent.file
    base = f.parent if f.name in ("lib.rs", "main.rs", "mod.rs") else f.parent / f.stem
    for candidate in (base / f"{name}.rs", base / name / "mod.rs"):
        if candidate.is_file():
            return candidate
    return None


def load_crate(root_file: Path) -> Module:
    root = Module((), root_file)
    stack = [root]
    while stack:
        module = stack.pop()
        for name, _ in parse_file(module, module.file.read_text(encoding="utf-8")):
            f = child_file(module, name)
            if f is None:
                continue
            child = Module(module.path + (name,), f, parent=module)
            module.children[name] = child
            stack.append(child)
    return root


# --- resolution -------------------------------------------------------------


def start_of(path: list[str], here: Module, root: Module) -> tuple[Module, list[str]] | None:
    """The module a path starts from, and the segments left after it."""
    if not path:
        return None
    head = path[0]
    if head == "crate":
        return root, path[1:]
    if head == "self":
        return here, path[1:]
    if head == "super":
        module, rest = here, path
        while rest and rest[0] == "super":
            if module.parent is None:
                return None
            module, rest = module.parent, rest[1:]
        return module, rest
    if head in here.children:
        return here, path
    return None


def resolve(path: list[str], here: Module, root: Module, depth: int = 0) -> Module | None:
    """The file that defines what `path` names (through re-exports)."""
    start = start_of(path, here, root)
    if start is None or depth > 16:
        return None
    module, rest = start
    for segment in rest:
        if segment in module.children:
            module = module.children[segment]
            continue
        if segment in module.items:
            return module
        for use in module.uses:
            if not use.glob and (use.alias or (use.path[-1] if use.path else None)) == segment:
                target = resolve(use.path, module, root, depth + 1)
                return target if target is not None else module
        for use in module.uses:
            if use.glob:
                target = resolve(use.path, module, root, depth + 1)
                if target is not None and segment in target.items:
                    return target
        return module
    return module


@dataclass(frozen=True)
class Edge:
    source: Module
    target: Module
    line: int
    text: str


def edges_of(module: Module, root: Module) -> list[Edge]:
    found = []
    is_mod_rs = module.file.name in ("mod.rs", "lib.rs", "main.rs")
    for use in module.uses:
        target = resolve(use.path, module, root)
        if target is None or target is module:
            continue
        # A parent re-exporting its child's items is not a use of the child.
        if is_mod_rs and use.public and is_descendant(target, module):
            continue
        found.append(Edge(module, target, use.line, "use " + "::".join(use.path) + ("::*" if use.glob else "")))
    for segments, line in module.paths:
        target = resolve(segments, module, root)
        if target is None or target is module:
            continue
        found.append(Edge(module, target, line, "::".join(segments)))
    return found


def is_descendant(module: Module, ancestor: Module) -> bool:
    while module.parent is not None:
        module = module.parent
        if module is ancestor:
            return True
    return False


def all_modules(root: Module) -> list[Module]:
    out, stack = [], [root]
    while stack:
        m = stack.pop()
        out.append(m)
        stack.extend(m.children.values())
    return out


# --- cycles -----------------------------------------------------------------


def strongly_connected(nodes: list[str], adjacent: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(adjacent.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return components


def one_cycle(component: list[str], adjacent: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first node."""
    members = set(component)
    start = component[0]
    previous = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(adjacent.get(v, ())):
            if w == start:
                cycle = [v]
                while previous[cycle[-1]] is not None:
                    cycle.append(previous[cycle[-1]])
                return list(reversed(cycle)) + [start]
            if w in members and w not in previous:
                previous[w] = v
                queue.append(w)
    return component + [start]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def check(name: str, edges: list[tuple[str, str, Edge]]) -> list[str]:
    """Reports each cycle of one graph, with the lines behind each edge."""
    adjacent: dict[str, set[str]] = {}
    evidence: dict[tuple[str, str], list[Edge]] = {}
    nodes = set()
    for a, b, edge in edges:
        nodes.update((a, b))
        if a == b:
            continue
        adjacent.setdefault(a, set()).add(b)
        evidence.setdefault((a, b), []).append(edge)
    problems = []
    for component in strongly_connected(sorted(nodes), adjacent):
        cycle = one_cycle(component, adjacent)
        lines = [f"{name}: cycle {' -> '.join(cycle)}"]
        others = sorted(set(component) - set(cycle))
        if others:
            lines.append(f"    (the same knot also holds {', '.join(others)})")
        for a, b in zip(cycle, cycle[1:]):
            for edge in sorted(evidence[(a, b)], key=lambda e: (str(e.source.file), e.line))[:3]:
                lines.append(f"    {a} -> {b}: {rel(edge.source.file)}:{edge.line}: {edge.text}")
        problems.append("\n".join(lines))
    return problems


def layers(nodes: set[str], adjacent: dict[str, set[str]]) -> list[list[str]]:
    """Nodes by height: each uses only nodes of lower layers."""
    height: dict[str, int] = {}

    def h(v: str, seen: frozenset[str]) -> int:
        if v in height:
            return height[v]
        below = [h(w, seen | {v}) for w in adjacent.get(v, ()) if w not in seen]
        height[v] = 1 + max(below, default=-1)
        return height[v]

    for v in nodes:
        h(v, frozenset())
    out: list[list[str]] = []
    for v, level in height.items():
        while len(out) <= level:
            out.append([])
        out[level].append(v)
    return [sorted(level) for level in out]


def crate_roots() -> list[tuple[str, Path]]:
    roots = []
    if (ROOT / "src/lib.rs").is_file():
        roots.append(("tessera", ROOT / "src/lib.rs"))
    for lib in sorted(ROOT.glob("crates/*/src/lib.rs")):
        roots.append((lib.parent.parent.name, lib))
    return roots


def main() -> int:
    show_graph = "--graph" in sys.argv[1:]
    problems = []
    for crate, root_file in crate_roots():
        root = load_crate(root_file)
        top_edges = []
        inner_edges: dict[str, list[tuple[str, str, Edge]]] = {}
        for module in all_modules(root):
            if not module.path:
                continue
            for edge in edges_of(module, root):
                a, b = edge.source.path, edge.target.path
                if not b:
                    continue
                if a[0] != b[0]:
                    top_edges.append((a[0], b[0], edge))
                elif not is_descendant(edge.target, edge.source) and not is_descendant(edge.source, edge.target):
                    inner_edges.setdefault(a[0], []).append(("::".join(a), "::".join(b), edge))
        problems += check(f"{crate} (top-level modules)", top_edges)
        for top, edges in sorted(inner_edges.items()):
            problems += check(f"{crate}::{top} (files)", edges)
        if show_graph:
            adjacent: dict[str, set[str]] = {}
            for a, b, _ in top_edges:
                adjacent.setdefault(a, set()).add(b)
            nodes = set(root.children)
            print(f"{crate}, bottom to top:")
            for level, names in enumerate(layers(nodes, adjacent)):
                print(f"  {level}: {', '.join(names)}")
                for v in names:
                    print(f"       {v} -> {', '.join(sorted(adjacent.get(v, ()))) or '-'}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"module-cycles: {len(problems)} cycle(s)", file=sys.stderr)
        return 1
    print("module-cycles: no cycle among modules or among the files of a module")
    return 0


if __name__ == "__main__":
    sys.exit(main())
