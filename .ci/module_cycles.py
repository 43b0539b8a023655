#!/usr/bin/env python3
"""Lists the cycles between sibling modules of each crate (issue 22: no two modules of a crate
import each other). Siblings are the top-level modules of a crate, and the child modules of
every module that is a folder (`ops/`, `winograd/`): a child may use its parent's items, but
two children of one parent must not reach each other both ways. A module's references are
every `crate::PARENT::NAME` path in its files (`use` lines and inline paths alike) and
`super::NAME` in its own file (`NAME.rs` or `NAME/mod.rs`); `#[cfg(test)]` blocks count too,
since a test module that reaches back is still a cycle.

Prints one line per strongly connected group of more than one module and exits 1 if there is
any; exits 0 and says so when there is none. Standard library only.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")


def modules(folder):
    """Child module name -> (its own file, every file under it)."""
    found = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs", "mod.rs"):
            found[entry[:-3]] = (path, [path])
        elif os.path.isdir(path) and os.path.exists(os.path.join(path, "mod.rs")):
            files = [
                os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".rs")
            ]
            found[entry] = (os.path.join(path, "mod.rs"), sorted(files))
        elif os.path.isdir(path) and os.path.exists(path + ".rs"):
            files = [
                os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".rs")
            ]
            found[entry] = (path + ".rs", [path + ".rs"] + sorted(files))
    return found


def strip_comments(text):
    # Doc links such as [`crate::conv2d`] do not count.
    return re.sub(r"//[^\n]*", "", text)


def references(own_file, files, parent, names, own):
    prefix = r"\bcrate::" + "".join(p + "::" for p in parent)
    used = set()
    text = strip_comments("\n".join(open(f).read() for f in files))
    for m in re.finditer(prefix + r"(\w+)", text):
        used.add(m.group(1))
    for m in re.finditer(prefix + r"\{([^}]*)\}", text):
        used.update(w.split("::")[0].strip() for w in m.group(1).split(","))
    # In the module's own file, super:: is the parent, whose other children are siblings.
    own_text = strip_comments(open(own_file).read())
    for m in re.finditer(r"\bsuper::(\w+)", own_text):
        used.add(m.group(1))
    for m in re.finditer(r"\bsuper::\{([^}]*)\}", own_text):
        used.update(w.split("::")[0].strip() for w in m.group(1).split(","))
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


def folders(src):
    """Every folder of sibling modules: the crate's `src` and each module folder, with the
    module path of their parent (empty for the crate root)."""
    out = [(src, [])]
    for d, subdirs, _ in os.walk(src):
        for s in sorted(subdirs):
            path = os.path.join(d, s)
            out.append((path, os.path.relpath(path, src).split(os.sep)))
    return out


def main():
    found = False
    for crate in sorted(os.listdir(ROOT)):
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            continue
        for folder, parent in folders(src):
            mods = modules(folder)
            graph = {
                m: references(own, files, parent, mods, m) for m, (own, files) in mods.items()
            }
            where = crate + "".join("::" + p for p in parent)
            for group in cycles(graph):
                found = True
                pairs = [f"{a} -> {b}" for a in group for b in sorted(graph[a]) if b in group]
                print(f"{where}: {', '.join(group)} ({'; '.join(pairs)})")
    if not found:
        print("no module cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
