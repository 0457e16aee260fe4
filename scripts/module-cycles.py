#!/usr/bin/env python3
"""Finds import cycles between the files of each crate of the workspace.

For every member of the root Cargo.toml, the files under its src/ form a
graph: file A has an edge to file B when A names something of B's module,
through `use crate::…`, `use super::…`, `use self::…`, a `use` of a child
module, or such a path written inline (`crate::x::f()`). A path ending in an
item that a module re-exports with `pub use` leads to the file that defines
it, so `crate::Result` leads to the error module, not to lib.rs.

Declaring child modules (`mod x;`) is not an edge, and neither is a parent
re-exporting a descendant's item (`pub use x::Y;`): both only expose the
child. Everything else is: a parent calling into its child is a use.

Every strongly connected component of more than one file is printed with
one example line per edge inside it; the exit status is 1 if there is one.

    scripts/module-cycles.py             every member of the workspace
    scripts/module-cycles.py CRATE_DIR…  only those crates
    scripts/module-cycles.py --self-test
"""

import os
import re
import sys
import tempfile

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def blank_comments_and_strings(text):
    """Returns text with comments, strings and char literals replaced by
    spaces (newlines kept), so positions and line numbers stay the same."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
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
            blank(i, j)
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 260]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9A-Fa-f]+\}|\\.|[^\\'])'", text[i:i + 12])
            if m:
                blank(i, i + m.end())
                i += m.end()
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def module_of_file(rel):
    """The module path of a file under src/: lib.rs → (), a/b.rs and
    a/b/mod.rs → ('a', 'b')."""
    parts = rel[:-3].split("/")
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def expand_use_tree(tree):
    """Expands `a::{b as c, d::{e, self}}` into the (path, name bound) pairs
    [('a::b', 'c'), ('a::d::e', 'e'), ('a::d', 'd')]."""
    tree = re.sub(r"\s*(::|[{},])\s*", r"\1", tree.strip())
    tree = re.sub(r"\s+", " ", tree)
    pairs = []

    def split_top(s):
        depth, start, items = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(s[start:k])
                start = k + 1
        items.append(s[start:])
        return [x for x in items if x]

    def walk(prefix, s):
        brace = s.find("{")
        if brace < 0:
            path, _, alias = s.partition(" as ")
            if path == "self":
                path = prefix[:-2]
            else:
                path = prefix + path
            pairs.append((path, alias or path.split("::")[-1]))
            return
        for item in split_top(s[brace + 1:s.rfind("}")]):
            walk(prefix + s[:brace], item)

    walk("", tree)
    return pairs


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # rel path → blanked text
        self.raw = {}  # rel path → original lines
        self.modules = {}  # module path → rel path (inline modules included)
        self.reexports = {}  # module path → {name: absolute path segments}
        for root, _, names in os.walk(src):
            for name in names:
                if name.endswith(".rs"):
                    full = os.path.join(root, name)
                    rel = os.path.relpath(full, src)
                    with open(full, encoding="utf-8") as f:
                        text = f.read()
                    self.raw[rel] = text.split("\n")
                    self.files[rel] = blank_comments_and_strings(text)
        roots = [r for r in ("lib.rs", "main.rs") if r in self.files]
        self.root = roots[0] if roots else None
        for rel in self.files:
            if rel == "main.rs" and self.root == "lib.rs":
                continue
            self.modules.setdefault(module_of_file(rel), rel)
        self.inline = {rel: list(self.inline_modules(rel, text)) for rel, text in self.files.items()}
        for rel, spans in self.inline.items():
            for mod_path, _, _ in spans:
                self.modules.setdefault(mod_path, rel)
        for rel, text in self.files.items():
            for pos, _, vis, tree in self.use_statements(text):
                if not vis:
                    continue
                here = self.module_at(rel, pos)
                for path, name in expand_use_tree(tree):
                    segs = self.absolute(here, path.split("::"))
                    if segs is None or name == "*":
                        continue
                    self.reexports.setdefault(here, {})[name] = segs

    def inline_modules(self, rel, text):
        """Yields (module path, start, end) of each `mod x { … }` in a file."""
        base = module_of_file(rel)
        stack = []  # (name, depth at which it closes, start)
        depth = 0
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{|[{}]", text):
            tok = m.group(0)
            if tok.startswith("mod"):
                depth += 1
                stack.append((m.group(1), depth, m.start()))
            elif tok == "{":
                depth += 1
            else:
                if stack and stack[-1][1] == depth:
                    name, _, start = stack.pop()
                    yield base + tuple(s[0] for s in stack) + (name,), start, m.end()
                depth -= 1

    def module_at(self, rel, pos):
        base = module_of_file(rel)
        inner = ()
        best = -1
        for mod_path, start, end in self.inline[rel]:
            if start <= pos < end and len(mod_path) > best:
                inner, best = mod_path, len(mod_path)
        return inner if inner else base

    @staticmethod
    def use_statements(text):
        """Yields (start, end, is_pub, use tree) for every `use` statement."""
        for m in re.finditer(r"(?<![\w$])(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]+);", text):
            yield m.start(), m.end(), bool(m.group(1)), m.group(2)

    def absolute(self, here, segs):
        """The crate-absolute segments of a path written in module `here`,
        or None when it names something outside the crate."""
        if not segs or not segs[0]:
            return None
        first = segs[0]
        if first == "crate":
            return segs[1:]
        if first in ("self", "super"):
            cur = list(here)
            k = 0
            while k < len(segs) and segs[k] in ("self", "super"):
                if segs[k] == "super":
                    if not cur:
                        return None
                    cur.pop()
                k += 1
            return cur + segs[k:]
        if tuple(here) + (first,) in self.modules:
            return list(here) + segs
        return None

    def resolve(self, segs, depth=0):
        """The file defining what crate-absolute `segs` name."""
        for k in range(len(segs), -1, -1):
            mod_path = tuple(segs[:k])
            if mod_path in self.modules:
                rest = segs[k:]
                if rest and depth < 8:
                    target = self.reexports.get(mod_path, {}).get(rest[0])
                    if target is not None and list(target) != list(segs):
                        return self.resolve(list(target) + rest[1:], depth + 1)
                return self.modules[mod_path]
        return self.root

    def edges(self):
        """{(from, to): example line} over every file of the crate."""
        found = {}

        def add(rel, pos, to):
            if to is None or to == rel:
                return
            line = self.files[rel].count("\n", 0, pos)
            found.setdefault((rel, to), "%s:%d: %s" % (rel, line + 1, self.raw[rel][line].strip()))

        for rel, text in self.files.items():
            if rel not in self.modules.values():
                continue
            statements = list(self.use_statements(text))
            blanked = text
            for a, b, _, _ in statements:
                blanked = blanked[:a] + " " * (b - a) + blanked[b:]
            # Declaring a child module is not using it.
            blanked = re.sub(r"\bmod\s+" + IDENT + r"\s*;", lambda m: " " * len(m.group(0)), blanked)
            for pos, _, vis, tree in statements:
                here = self.module_at(rel, pos)
                for path, name in expand_use_tree(tree):
                    segs = self.absolute(here, path.split("::"))
                    if segs is None:
                        continue
                    if (
                        vis
                        and segs[: len(here)] == list(here)
                        and len(segs) > len(here)
                        and not re.search(r"(?<![\w:])" + re.escape(name) + r"\b", blanked)
                    ):
                        # A module re-exporting its descendant's item, and
                        # not using it itself.
                        continue
                    if segs and segs[-1] == "*":
                        segs = segs[:-1]
                    add(rel, pos, self.resolve(segs))
            blanked = re.sub(r"pub\s*\(\s*in\s+[^)]*\)", lambda m: " " * len(m.group(0)), blanked)
            for m in re.finditer(r"(?<![\w$:])(" + IDENT + r")((?:\s*::\s*" + IDENT + r")+)", blanked):
                segs = [m.group(1)] + [s.strip() for s in m.group(2).split("::")[1:]]
                here = self.module_at(rel, m.start())
                absolute = self.absolute(here, segs)
                if absolute is None:
                    continue
                add(rel, m.start(), self.resolve(absolute))
        return found


def strongly_connected(nodes, edges):
    """Tarjan's algorithm; returns the components, each a sorted list."""
    graph = {n: [] for n in nodes}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def check_crate(crate_dir, out):
    """Prints the cycles of one crate; returns how many there are."""
    src = os.path.join(crate_dir, "src")
    crate = Crate(src)
    edges = crate.edges()
    cycles = [c for c in strongly_connected(crate.files, edges) if len(c) > 1]
    for comp in sorted(cycles):
        members = set(comp)
        out.write("%s: a cycle of %d files: %s\n" % (crate_dir, len(comp), " ".join(comp)))
        for (a, b), example in sorted(edges.items()):
            if a in members and b in members:
                out.write("  %s -> %s\n      %s\n" % (a, b, example))
    return len(cycles)


def workspace_members(root):
    with open(os.path.join(root, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^members\s*=\s*\[(.*?)\]", text, re.S | re.M)
    return re.findall(r'"([^"]+)"', m.group(1)) if m else []


FIXTURES = {
    # A circle through the error module, plus a re-export that must not
    # count: lib.rs re-exports a::Thing, and b reaches it via crate::Thing.
    "cycle": {
        "lib.rs": "mod a;\nmod b;\npub mod error;\npub use a::Thing;\npub use error::Error;\n",
        "a.rs": "use crate::error::Error;\npub struct Thing;\n",
        "error.rs": "// use crate::b::Nope; is a comment\npub enum Error { B(crate::b::Failure) }\n",
        "b.rs": "use crate::Thing;\npub struct Failure;\nfn f() -> crate::Error { todo!() }\n",
    },
    # A parent and its children, the children using each other one way and
    # the parent only declaring and re-exporting them: no cycle.
    "tree": {
        "lib.rs": "pub mod m;\nuse m::Leaf as _;\n",
        "m/mod.rs": "mod leaf;\nmod user;\npub use leaf::Leaf;\npub use user::User;\n",
        "m/leaf.rs": "pub struct Leaf;\n#[cfg(test)]\nmod tests { use super::Leaf; }\n",
        "m/user.rs": "use super::leaf::Leaf;\npub struct User(Leaf, &'static str);\nconst C: char = '{';\n",
    },
    # A parent re-exporting its child's item and using it, while the child
    # uses the parent: a cycle.
    "reexport": {
        "lib.rs": "mod a;\npub use a::Thing;\npub struct Holder(Thing);\n",
        "a.rs": "pub struct Thing(crate::Holder);\n",
    },
    # A child using its parent's item while the parent calls the child.
    "parent": {
        "lib.rs": "mod m;\n",
        "m/mod.rs": "mod child;\npub struct Shared;\npub fn run() { child::go() }\n",
        "m/child.rs": "use super::Shared;\npub fn go() { let _ = Shared; }\n",
    },
}

EXPECTED = {
    "cycle": ["a.rs b.rs error.rs"],
    "tree": [],
    "parent": ["m/child.rs m/mod.rs"],
    "reexport": ["a.rs lib.rs"],
}


def self_test():
    failures = 0
    for name, files in FIXTURES.items():
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in files.items():
                path = os.path.join(tmp, "src", rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            crate = Crate(os.path.join(tmp, "src"))
            comps = strongly_connected(crate.files, crate.edges())
            got = sorted(" ".join(c) for c in comps if len(c) > 1)
            if got != EXPECTED[name]:
                sys.stderr.write("self-test %s: expected %s, got %s\n" % (name, EXPECTED[name], got))
                failures += 1
    return 1 if failures else 0


def main(args):
    if args == ["--self-test"]:
        return self_test()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    crates = args or [os.path.join(root, m) for m in workspace_members(root)]
    total = 0
    for crate_dir in crates:
        total += check_crate(os.path.relpath(crate_dir), sys.stdout)
    if total:
        sys.stdout.write("%d import cycle(s): move what the files share into a leaf module\n" % total)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
