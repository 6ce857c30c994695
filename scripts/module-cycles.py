#!/usr/bin/env python3
"""Fails when the top-level modules of a crate depend on each other in a cycle.

Reads every `crate::NAME` reference (in `use` lines and in paths) of each .rs file under
CRATE/src, maps the file to its top-level module (src/foo.rs and src/foo/** are `foo`),
and reports every strongly connected component with more than one module. lib.rs/main.rs
are the crate root and are not a module. Usage: module-cycles.py CRATE_DIR...
"""
import pathlib
import re
import sys

REF = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUP = re.compile(r"\bcrate::\{")
NAME = re.compile(r"[a-z_][a-z0-9_]*")
COMMENT = re.compile(r"//.*")


def names(text: str) -> set[str]:
    """Top-level modules named by `crate::x` paths and `crate::{x, y::z, ...}` groups."""
    found = set(REF.findall(text))
    for m in GROUP.finditer(text):
        # The group's items at brace depth 0 (inside its own braces), split at commas.
        level, cur, items = 0, "", []
        for c in text[m.end():]:
            if c == "{":
                level += 1
            elif c == "}":
                if level == 0:
                    break
                level -= 1
            elif c == "," and level == 0:
                items.append(cur)
                cur = ""
                continue
            if level == 0:
                cur += c
        items.append(cur)
        for it in items:
            head = NAME.match(it.strip())
            if head and head.group(0) not in ("self", "super"):
                found.add(head.group(0))
    return found


def graph(crate: pathlib.Path) -> dict[str, set[str]]:
    src = crate / "src"
    edges: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        top = rel.parts[0].removesuffix(".rs")
        if top in ("lib", "main") or (top == "bin"):
            continue
        text = path.read_text()
        # Test modules may reach anything; only the code's own dependencies count.
        cut = text.find("#[cfg(test)]")
        if cut >= 0:
            text = text[:cut]
        deps = edges.setdefault(top, set())
        code = "\n".join(COMMENT.sub("", line) for line in text.splitlines())
        for name in names(code):
            if name != top:
                deps.add(name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of size > 1."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    bad = 0
    for arg in sys.argv[1:] or ["checker", "harness", "node"]:
        crate = pathlib.Path(arg)
        edges = graph(crate)
        for comp in cycles(edges):
            bad += 1
            detail = "; ".join(
                f"{m} -> {', '.join(sorted(edges[m] & set(comp)))}" for m in comp
            )
            print(f"module-cycles: {crate.resolve().name}: cycle among {', '.join(comp)} ({detail})")
    sys.stdout.flush()
    if bad:
        print("module-cycles: move the shared types to a module both can depend on", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
