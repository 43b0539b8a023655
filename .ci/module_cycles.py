#!/usr/bin/env python3
"""Lists the cycles between the top-level modules of each crate (issue 22: no two modules of a
crate import each other). A module's references are every `crate::NAME` path in its files
(`use` lines and inline paths alike) and `super::NAME` in a direct child of the crate root;
`#[cfg(test)]` blocks count too, since a test module that reaches back is still a cycle.

Prints one line per strongly connected group of more than one module and exits 1 if there is
any; exits 0 and says so when there is none. Standard library only.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")


def modules(src):
    """Top-level module name -> its files (NAME.rs, or NAME/ with everything under it)."""
    found = {}
    for entry in sorted(os.listdir(src)):
        path = os.path.join(src, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
            found.setdefault(entry[:-3], []).append(path)
        elif os.path.isdir(path):
            for dirpath, _, files in os.walk(path):
                found.setdefault(entry, []).extend(
                    os.path.join(dirpath, f) for f in files if f.endswith(".rs")
                )
    return found


def references(files, names, own):
    text = "\n".join(open(f).read() for f in files)
    # Strip comments so doc links such as [`crate::conv2d`] do not count.
    text = re.sub(r"//[^\n]*", "", text)
    used = set()
    for m in re.finditer(r"\bcrate::(\w+)", text):
        used.add(m.group(1))
    for m in re.finditer(r"\bcrate::\{([^}]*)\}", text):
        used.update(w.split("::")[0].strip() for w in m.group(1).split(","))
    # In a top-level module file, super:: is the crate root.
    for m in re.finditer(r"\bsuper::(\w+)", text):
        used.add(m.group(1))
    return {u for u in used if u in names and u != own}


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    found = False
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            continue
        mods = modules(src)
        graph = {m: references(files, mods, m) for m, files in mods.items()}
        for group in cycles(graph):
            found = True
            pairs = [f"{a} -> {b}" for a in group for b in sorted(graph[a]) if b in group]
            print(f"{crate}: {', '.join(group)} ({'; '.join(pairs)})")
    if not found:
        print("no module cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
