#!/usr/bin/env python3
"""Licence notices of every crate linked into teleport-upgrade.

Reads `cargo metadata --format-version 1` (the normal dependencies of the
teleport-ent-updater package, for the Linux targets) and each crate's
licence files from its source directory (~/.cargo/registry/src/...), then:

  collect.py check               fail (exit 1) when a crate's licence
                                 expression cannot be met by ALLOWED, or a
                                 crate has no licence at all
  collect.py --out DIR           write into DIR:
      third-party-licenses.txt   every crate, its licence, and the verbatim
                                 text of its licence files (identical texts
                                 printed once)
      copyright                  Debian's machine-readable copyright file:
                                 debian/copyright (ours) plus one Files
                                 paragraph per crate and a License paragraph
                                 per licence
      license-expression         the SPDX expression for rpm's License:
                                 field (ours AND every crate's)
  --metadata FILE                read the metadata from FILE instead of
                                 running cargo (for the tests)

Used by scripts/build-packages (both packages ship the two files) and by
tests/licenses.rs. Python 3 standard library only.
"""

import hashlib
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT_PACKAGE = "teleport-ent-updater"
TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]

# Licences a linked crate may be under (one of them is enough for an OR).
# Adding one is a decision: it must allow redistribution in binary form in
# both packages without source obligations.
ALLOWED = {
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "MIT",
    "ISC",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Zlib",
    "BSL-1.0",
    "Unlicense",
    "CDLA-Permissive-2.0",
}

# SPDX identifiers -> the short names of Debian's copyright format.
DEBIAN_NAMES = {
    "MIT": "Expat",
    "BSD-3-Clause": "BSD-3-clause",
    "BSD-2-Clause": "BSD-2-clause",
    "Apache-2.0 WITH LLVM-exception": "Apache-2.0-with-LLVM-exception",
}

LICENSE_FILE = re.compile(r"^(licen[cs]e|copying|notice|copyright|unlicense)", re.I)

EXPAT = """Permission is hereby granted, free of charge, to any person obtaining a
copy of this software and associated documentation files (the "Software"),
to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense,
and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE."""


def metadata(path):
    if path:
        with open(path) as f:
            return json.load(f)
    docs = []
    for target in TARGETS:
        cmd = ["cargo", "metadata", "--format-version", "1", "--locked",
               "--filter-platform", target, "--manifest-path", os.path.join(REPO, "Cargo.toml")]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        docs.append(json.loads(out))
    # The union of both targets' graphs.
    merged = docs[0]
    ids = {n["id"] for n in merged["resolve"]["nodes"]}
    for d in docs[1:]:
        for n in d["resolve"]["nodes"]:
            if n["id"] not in ids:
                merged["resolve"]["nodes"].append(n)
                ids.add(n["id"])
        known = {p["id"] for p in merged["packages"]}
        merged["packages"] += [p for p in d["packages"] if p["id"] not in known]
    return merged


def linked_crates(meta):
    """The packages reachable from ROOT_PACKAGE through normal dependencies
    (not dev, not build), ours excluded: what ends up in the binary."""
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {}
    for n in meta["resolve"]["nodes"]:
        nodes.setdefault(n["id"], []).extend(n["deps"])
    root = [p["id"] for p in meta["packages"] if p["name"] == ROOT_PACKAGE]
    if not root:
        sys.exit(f"collect.py: no package {ROOT_PACKAGE} in the metadata")
    seen, todo = set(), [root[0]]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        for d in nodes.get(i, []):
            if any(k.get("kind") is None for k in d.get("dep_kinds", [{"kind": None}])):
                todo.append(d["pkg"])
    crates = [packages[i] for i in seen if packages[i].get("source")]
    return sorted(crates, key=lambda p: (p["name"], p["version"]))


def normalize(expr):
    """Old `A/B` syntax to `A OR B`."""
    return re.sub(r"\s*/\s*", " OR ", expr.strip())


def tokens(expr):
    return re.findall(r"\(|\)|[A-Za-z0-9.+-]+", expr)


def parse(tok):
    """SPDX expression -> nested ("OR"|"AND", [..]) / leaf string.
    WITH binds tighter than AND, AND than OR."""
    pos = 0

    def primary():
        nonlocal pos
        if tok[pos] == "(":
            pos += 1
            e = disj()
            pos += 1  # ")"
            return e
        name = tok[pos]
        pos += 1
        if pos < len(tok) and tok[pos] == "WITH":
            name = f"{name} WITH {tok[pos + 1]}"
            pos += 2
        return name

    def conj():
        nonlocal pos
        parts = [primary()]
        while pos < len(tok) and tok[pos] == "AND":
            pos += 1
            parts.append(primary())
        return parts[0] if len(parts) == 1 else ("AND", parts)

    def disj():
        nonlocal pos
        parts = [conj()]
        while pos < len(tok) and tok[pos] == "OR":
            pos += 1
            parts.append(conj())
        return parts[0] if len(parts) == 1 else ("OR", parts)

    e = disj()
    if pos != len(tok):
        raise ValueError(f"cannot parse licence expression {' '.join(tok)!r}")
    return e


def allowed(e):
    if isinstance(e, str):
        return e in ALLOWED
    op, parts = e
    return any(map(allowed, parts)) if op == "OR" else all(map(allowed, parts))


def leaves(e):
    if isinstance(e, str):
        return {e}
    return set().union(*(leaves(p) for p in e[1]))


def crate_dir(p):
    return os.path.dirname(p["manifest_path"])


def license_files(p):
    d = crate_dir(p)
    if not os.path.isdir(d):
        return []
    names = sorted(f for f in os.listdir(d) if LICENSE_FILE.match(f) and os.path.isfile(os.path.join(d, f)))
    if p.get("license_file"):
        lf = p["license_file"]
        if os.path.isfile(os.path.join(d, lf)) and lf not in names:
            names.append(lf)
    out = []
    for n in names:
        with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
            out.append((n, f.read().strip("\n")))
    return out


def check(crates):
    problems = []
    for p in crates:
        expr = p.get("license")
        if not expr:
            if not license_files(p):
                problems.append(f"{p['name']} {p['version']}: no licence declared and no licence file")
            else:
                problems.append(f"{p['name']} {p['version']}: only a licence file ({p.get('license_file')}): review it and declare it here")
            continue
        try:
            e = parse(tokens(normalize(expr)))
        except (ValueError, IndexError) as err:
            problems.append(f"{p['name']} {p['version']}: {err}")
            continue
        if not allowed(e):
            problems.append(f"{p['name']} {p['version']}: {expr} is not in the allow-list (tools/licenses/collect.py ALLOWED)")
    return problems


def copyright_lines(p, files):
    lines = []
    for _, text in files:
        for l in text.splitlines():
            l = l.strip()
            if re.match(r"^(copyright|\(c\)|©)", l, re.I) and re.search(r"\d{4}|\(c\)|©", l, re.I) \
                    and "[yyyy]" not in l and "<year>" not in l and "{yyyy}" not in l:
                if l not in lines:
                    lines.append(l)
    if not lines:
        authors = ", ".join(a.split(" <")[0] for a in p.get("authors") or []) or f"the {p['name']} developers"
        lines.append(f"the {p['name']} authors ({authors})")
    return lines


def notices(crates):
    out = ["Third-party software in teleport-upgrade", "=" * 40, "",
           "teleport-upgrade (package teleport-ent-updater) is under Apache-2.0.",
           f"Its binary contains these {len(crates)} crates (Rust libraries), under",
           "the licences their authors declare; the text of each crate's licence",
           "files follows (identical texts are printed once, with every crate that",
           "carries them).", ""]
    for p in crates:
        out.append(f"  {p['name']} {p['version']}: {normalize(p.get('license') or '?')}")
    texts = {}
    order = []
    for p in crates:
        files = license_files(p)
        if not files:
            # The crate ships no licence file (e.g. sigchld): its declared
            # licence's standard text, with its authors as the holders.
            e = normalize(p.get("license") or "")
            if e == "MIT":
                files = [("(MIT, declared in Cargo.toml; the crate ships no licence file)",
                          "Copyright " + copyright_lines(p, [])[0] + "\n\n" + EXPAT)]
            else:
                files = [("(no licence file)", f"Declared licence: {e}")]
        for name, text in files:
            h = hashlib.sha256(text.encode()).hexdigest()
            if h not in texts:
                texts[h] = (text, [])
                order.append(h)
            texts[h][1].append(f"{p['name']} {p['version']} ({name})")
    for h in order:
        text, users = texts[h]
        out += ["", "-" * 76, "Used by: " + "; ".join(users), "-" * 76, "", text]
    return "\n".join(out) + "\n"


def debian_expr(e, top=True):
    if isinstance(e, str):
        return DEBIAN_NAMES.get(e, e)
    op, parts = e
    s = f" {op.lower()} ".join(debian_expr(x, False) for x in parts)
    return s if top else f"({s})"


def license_text(spdx, crates):
    """A License paragraph's body for a Debian short name."""
    if spdx in ("Apache-2.0",):
        return ("On Debian systems, the complete text of the Apache License, Version 2.0\n"
                "can be found in \"/usr/share/common-licenses/Apache-2.0\".")
    if spdx == "Apache-2.0 WITH LLVM-exception":
        return ("The Apache License, Version 2.0 (\"/usr/share/common-licenses/Apache-2.0\")\n"
                "with the LLVM exception: the text is in third-party-licenses.txt beside\n"
                "this file.")
    if spdx == "BSL-1.0":
        return "Boost Software License 1.0: the text is in third-party-licenses.txt beside this file."
    if spdx == "MIT":
        return EXPAT
    # The text as a crate under it ships it.
    for p in crates:
        if spdx in leaves(parse(tokens(normalize(p.get("license") or "X")))):
            for name, text in license_files(p):
                if len(license_files(p)) == 1 or spdx.split("-")[0].lower() in name.lower() \
                        or (spdx == "Unlicense" and "unlicense" in name.lower()):
                    return text
    return f"{spdx}: the text is in third-party-licenses.txt beside this file."


def dep5_body(text):
    return "\n".join(" " + l if l.strip() else " ." for l in text.splitlines())


def debian_copyright(crates):
    with open(os.path.join(REPO, "debian", "copyright")) as f:
        out = f.read().rstrip("\n") + "\n"
    used = set()
    for p in crates:
        e = parse(tokens(normalize(p["license"])))
        used |= leaves(e)
        cr = copyright_lines(p, license_files(p))
        out += "\nFiles: cargo-registry/{}-{}/*\n".format(p["name"], p["version"])
        out += "Copyright: " + "\n ".join(cr) + "\n"
        out += "License: " + debian_expr(e) + "\n"
        out += "Comment: linked into /usr/sbin/teleport-upgrade; the crate's licence files\n"
        out += " are in /usr/share/doc/teleport-ent-updater/third-party-licenses.txt\n"
    for spdx in sorted(used - {"Apache-2.0"}):
        out += "\nLicense: " + DEBIAN_NAMES.get(spdx, spdx) + "\n" + dep5_body(license_text(spdx, crates)) + "\n"
    return out


def spdx(e, top=True):
    """A parsed expression written back in a canonical order."""
    if isinstance(e, str):
        return e
    op, parts = e
    s = f" {op} ".join(sorted(set(spdx(x, False) for x in parts)))
    return s if top else f"({s})"


def rpm_expression(crates):
    """Ours AND each distinct crate expression (the form Fedora's License:
    field takes)."""
    exprs = ["Apache-2.0"]
    for p in crates:
        e = spdx(parse(tokens(normalize(p["license"]))), False)
        if e not in exprs:
            exprs.append(e)
    return " AND ".join(exprs)


def main(argv):
    meta_file = None
    out_dir = None
    mode = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--metadata":
            meta_file = argv[i + 1]
            i += 2
        elif a == "--out":
            out_dir = argv[i + 1]
            mode = "out"
            i += 2
        elif a == "check":
            mode = "check"
            i += 1
        else:
            sys.exit(__doc__)
    if mode is None:
        sys.exit(__doc__)
    crates = linked_crates(metadata(meta_file))
    problems = check(crates)
    if problems:
        print("collect.py: licences outside the allow-list:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    if mode == "check":
        print(f"collect.py: {len(crates)} crates, every licence allowed")
        return 0
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "third-party-licenses.txt"), "w") as f:
        f.write(notices(crates))
    with open(os.path.join(out_dir, "copyright"), "w") as f:
        f.write(debian_copyright(crates))
    with open(os.path.join(out_dir, "license-expression"), "w") as f:
        f.write(rpm_expression(crates) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
