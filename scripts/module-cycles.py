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
COMMENT = re.compile(r"//.*")


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
        for line in text.splitlines():
            line = COMMENT.sub("", line)
            for name in REF.findall(line):
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
