#!/usr/bin/env python3
"""Generates a large synthetic Dagster monorepo with a long history, for benchmarks.

The history is written as one `git fast-import` stream (thousands of `git commit` calls would
take far longer), deterministically from a seed: the same parameters give the same commit
ids. Shape:

- `projects/<name>/`: one code location each (pyproject.toml, Dockerfile, README.md, a package
  under src/ with nested asset modules, tests/); some use local libraries through
  `[tool.uv.sources]`.
- `libs/<name>/`: shared libraries, some depending on other libraries.
- `docs/`, `tools/`: files that belong to no location.
- A root `dagster_cloud.yaml` listing every location born so far, and `dagster-deploy.toml`.

Most locations exist in the first commit; the rest are added over the history (each birth also
rewrites dagster_cloud.yaml). Commits mostly touch one location, sometimes a library, docs, tools
or several locations at once; files are added, modified and occasionally deleted.

Standard library only. Prints a JSON summary on stdout.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

DOMAINS = [
    "sales", "finance", "marketing", "growth", "risk", "supply", "ops", "support", "hr",
    "billing", "search", "ads", "fraud", "pricing", "logistics", "catalog", "identity", "payments",
]
KINDS = ["ingest", "models", "reports", "features", "sync", "exports", "quality", "metrics"]
LIB_WORDS = [
    "common", "io", "warehouse", "schemas", "quality", "metrics", "auth", "secrets", "http",
    "s3", "dbt_utils", "ml_core", "features", "calendar", "geo", "currency", "pii", "alerts",
    "testing", "config", "lineage", "spark", "pandas_ext", "sql",
]
PEOPLE = [
    ("Ada Lovelace", "ada"), ("Grace Hopper", "grace"), ("Linus Torvalds", "linus"),
    ("Barbara Liskov", "barbara"), ("Edsger Dijkstra", "edsger"), ("Donald Knuth", "don"),
    ("Margaret Hamilton", "margaret"), ("Ken Thompson", "ken"), ("Frances Allen", "fran"),
    ("John Backus", "john"), ("Radia Perlman", "radia"), ("Alan Kay", "alan"),
    ("Sophie Wilson", "sophie"), ("Dennis Ritchie", "dennis"), ("Hedy Lamarr", "hedy"),
]
VERBS = ["add", "fix", "refactor", "tune", "rename", "document", "speed up", "clean up", "test"]
NOUNS = ["asset", "schedule", "sensor", "partitioning", "retry policy", "io manager", "resource",
         "freshness check", "backfill", "metadata", "asset checks", "dependency"]
ASSET_GROUPS = ["raw", "staging", "marts", "exports", "checks", "features"]
START_TIME = 1672531200  # 2023-01-01T00:00:00Z: fixed so commit ids are reproducible.


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repo", help="where to create the repository (must not exist)")
    p.add_argument("--locations", type=int, default=200)
    p.add_argument("--files", type=int, default=100_000, help="files in HEAD's tree, at least")
    p.add_argument("--commits", type=int, default=10_000)
    p.add_argument("--libs", type=int, default=20)
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args()


class Entity:
    """A location or a library: a folder whose files appear over time."""

    def __init__(self, kind, name, folder, package):
        self.kind = kind  # "location" or "lib"
        self.name = name
        self.folder = folder
        self.package = package
        self.lib_deps = []  # names of libraries used through [tool.uv.sources]
        self.scaffold = []  # paths created at birth
        self.pending = []  # paths still to be added, in order
        self.live = []  # paths in the tree now (for modifications)
        self.scratch = []  # short-lived files that may be deleted again
        self.born = False
        self.birth_commit = 0
        self.weight = 1.0


def plan_tree(args, rng):
    """Decides every entity and every file of HEAD's tree (before history is laid out)."""
    libs = []
    words = list(LIB_WORDS)
    for i in range(args.libs):
        word = words[i % len(words)] + ("" if i < len(words) else f"_{i // len(words)}")
        name = f"shared_{word}"
        lib = Entity("lib", name, f"libs/{name}", name)
        # Libraries may use earlier libraries only: no cycles.
        if i > 0 and rng.random() < 0.35:
            lib.lib_deps = sorted({libs[rng.randrange(i)].name for _ in range(rng.randint(1, 2))})
        libs.append(lib)

    locations = []
    used = set()
    for i in range(args.locations):
        while True:
            name = f"{rng.choice(DOMAINS)}_{rng.choice(KINDS)}"
            if name not in used:
                break
            name = f"{name}_{i}"
            if name not in used:
                break
        used.add(name)
        loc = Entity("location", name, f"projects/{name}", name)
        r = rng.random()
        if libs and r < 0.6:  # most locations share at least one library
            loc.lib_deps = sorted({rng.choice(libs).name for _ in range(rng.randint(1, 3))})
        loc.weight = rng.paretovariate(1.5)  # a few hot locations, a long tail of quiet ones
        locations.append(loc)

    # File budget: ~2% docs, ~0.5% tools, ~6% libraries, the rest in locations.
    total = args.files
    docs_n = max(10, total * 2 // 100)
    tools_n = max(5, total // 200)
    libs_n = max(len(libs) * 8, total * 6 // 100) if libs else 0
    locs_n = max(len(locations) * 12, total - docs_n - tools_n - libs_n)

    for ent, budget in _split(libs, libs_n, rng) + _split(locations, locs_n, rng):
        ent.scaffold, ent.pending = entity_files(ent, budget)

    docs = Entity("docs", "docs", "docs", "docs")
    docs.pending = [f"docs/{rng.choice(DOMAINS)}/{t}/page_{j:04d}.md"
                    for j, t in ((j, rng.choice(["guides", "runbooks", "adr", "howto"]))
                                 for j in range(docs_n))]
    docs.scaffold = ["docs/index.md"]
    tools = Entity("tools", "tools", "tools", "tools")
    tools.scaffold = [".github/workflows/deploy.yml", ".gitignore", "README.md"]
    tools.pending = [f"tools/{rng.choice(['ci', 'scripts', 'lint'])}/tool_{j:04d}."
                     f"{rng.choice(['py', 'sh'])}" for j in range(tools_n)]
    for ent in (docs, tools):
        ent.pending = sorted(set(ent.pending))
    return libs, locations, docs, tools


def _split(entities, budget, rng):
    if not entities:
        return []
    weights = [0.3 + rng.random() * 1.4 for _ in entities]
    scale = budget / sum(weights)
    sizes = [max(12, int(w * scale)) for w in weights]
    sizes[-1] += max(0, budget - sum(sizes))  # rounding residue: never fall short of the budget
    return list(zip(entities, sizes))


def entity_files(ent, budget):
    """Scaffold files (created at birth) and the rest (added later), `budget` in all."""
    base = ent.folder
    pkg = f"{base}/src/{ent.package}"
    scaffold = [f"{base}/pyproject.toml", f"{base}/README.md", f"{pkg}/__init__.py"]
    if ent.kind == "location":
        scaffold += [f"{base}/Dockerfile", f"{pkg}/definitions.py", f"{base}/tests/__init__.py"]
    rest = []
    n = budget - len(scaffold)
    # Nested folders, ~25 files each, so trees have realistic depth and fan-out.
    i = 0
    while len(rest) < n:
        if i % 7 == 6:
            rest.append(f"{base}/tests/test_{i:04d}.py")
        elif ent.kind == "location":
            group = ASSET_GROUPS[(i // 25) % len(ASSET_GROUPS)]
            rest.append(f"{pkg}/assets/{group}/part_{i // 150:02d}/asset_{i:04d}.py")
        else:
            rest.append(f"{pkg}/mod_{i // 40:02d}/impl_{i:04d}.py")
        i += 1
        # A few SQL and YAML resources beside the Python.
        if len(rest) < n and i % 31 == 0:
            rest.append(f"{pkg}/resources/query_{i:04d}.sql")
        if len(rest) < n and i % 53 == 0:
            rest.append(f"{pkg}/config/settings_{i:04d}.yaml")
    return scaffold, rest[:n]


# ---------------------------------------------------------------- file contents

def pyproject(ent):
    deps = ['"dagster>=1.9"', '"pandas>=2"'] if ent.kind == "location" else ['"pydantic>=2"']
    deps += [f'"{d}"' for d in ent.lib_deps]
    text = (f'[project]\nname = "{ent.name}"\nversion = "0.1.0"\nrequires-python = ">=3.10"\n'
            f'dependencies = [{", ".join(deps)}]\n')
    if ent.lib_deps:
        up = "../../libs" if ent.kind == "location" else ".."
        text += "\n[tool.uv.sources]\n" + "".join(
            f'{d} = {{ path = "{up}/{d}" }}\n' for d in ent.lib_deps)
    text += ('\n[build-system]\nrequires = ["setuptools>=68"]\n'
             'build-backend = "setuptools.build_meta"\n')
    return text


def dockerfile(ent):
    return ("ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n"
            "WORKDIR /opt/dagster/app\nCOPY . .\nRUN pip install --no-cache-dir .\n")


def content(path, rev, rng, ent=None):
    """Text of `path` at its `rev`-th version (small, distinct, plausible)."""
    if ent is not None and path.endswith("/pyproject.toml"):
        return pyproject(ent) + (f"# bumped {rev}\n" if rev else "")
    if path.endswith("/Dockerfile"):
        return dockerfile(ent) + (f"# rev {rev}\n" if rev else "")
    if path.endswith(".md"):
        return f"# {path}\n\nRevision {rev}.\n\n" + "Some prose. " * rng.randint(5, 40) + "\n"
    if path.endswith(".sql"):
        return f"-- {path} r{rev}\nselect id, amount\nfrom raw.t_{rng.randint(0, 999)}\n" \
               f"where amount > {rng.randint(0, 100)}\n"
    if path.endswith(".yaml") or path.endswith(".yml"):
        return f"# {path} r{rev}\nretries: {rng.randint(0, 5)}\ntimeout: {rng.randint(10, 900)}\n"
    if path.endswith(".sh"):
        return f"#!/bin/sh\n# {path} r{rev}\nset -eu\necho step {rng.randint(0, 99)}\n"
    if not path.endswith(".py"):
        return f"# {path}\n# revision {rev}\n"
    if path.endswith("/definitions.py"):
        return "import dagster as dg\n\ndefs = dg.Definitions(assets=[])\n" + f"# r{rev}\n"
    name = os.path.basename(path)[:-3]
    body = "".join(f"    value = value * {rng.randint(2, 9)} + {rng.randint(0, 99)}\n"
                   for _ in range(rng.randint(2, 12)))
    return (f'"""{path} (revision {rev})."""\nimport dagster as dg\n\n\n'
            f"@dg.asset\ndef {name}() -> int:\n    value = {rng.randint(0, 999)}\n{body}"
            f"    return value\n")


def cloud_yaml(locations):
    lines = ["defaults:", "  build:", "    registry: registry.example.com/dagster", "",
             "locations:"]
    for loc in locations:
        lines += [f"  - location_name: {loc.name}", "    code_source:",
                  f"      package_name: {loc.package}", "    build:",
                  f"      directory: {loc.folder}"]
    return "\n".join(lines) + "\n"


DEPLOY_TOML = '[defaults]\nignore = ["**/*.md", "**/tests/**"]\n'


# ---------------------------------------------------------------- history

class Stream:
    """Writes a fast-import stream to a file object."""

    def __init__(self, out):
        self.out = out
        self.mark = 0
        self.buf = []
        self.size = 0

    def data(self, text):
        raw = text.encode()
        self.buf.append(b"data %d\n" % len(raw))
        self.buf.append(raw)
        self.buf.append(b"\n")

    def commit(self, when, who, message, changes):
        """changes: list of (path, text) to write or (path, None) to delete."""
        self.mark += 1
        name, user = who
        ident = f"{name} <{user}@example.com> {when} +0000"
        self.buf.append(f"commit refs/heads/main\nmark :{self.mark}\n"
                        f"author {ident}\ncommitter {ident}\n".encode())
        self.data(message)
        if self.mark > 1:
            self.buf.append(b"from :%d\n" % (self.mark - 1))
        for path, text in changes:
            if text is None:
                self.buf.append(f"D {path}\n".encode())
            else:
                self.buf.append(f"M 100644 inline {path}\n".encode())
                self.data(text)
        self.buf.append(b"\n")
        if len(self.buf) > 4096:
            self.flush()

    def flush(self):
        self.out.write(b"".join(self.buf))
        self.buf = []


def generate(args, stream):
    rng = random.Random(args.seed)
    libs, locations, docs, tools = plan_tree(args, rng)
    revs = {}  # path -> revision counter

    # ~75% of locations at the start, the rest born over the first 90% of the history.
    n_initial = max(1, round(len(locations) * 0.75))
    late = locations[n_initial:]
    commits = args.commits
    birth_slots = sorted(rng.sample(range(2, max(3, commits * 9 // 10)),
                                    min(len(late), max(0, commits * 9 // 10 - 2))))
    for loc, slot in zip(late, birth_slots):
        loc.birth_commit = slot
    for loc in late[len(birth_slots):]:  # too few commits for separate births
        loc.birth_commit = 1
    births = {}
    for loc in late:
        births.setdefault(loc.birth_commit, []).append(loc)

    def write(ent, path, changes):
        rev = revs.get(path, -1) + 1
        revs[path] = rev
        changes.append((path, content(path, rev, rng, ent)))

    def add_files(ent, paths, changes):
        for p in paths:
            write(ent, p, changes)
            ent.live.append(p)

    def birth(ent, changes, initial_share):
        ent.born = True
        add_files(ent, ent.scaffold, changes)
        k = int(len(ent.pending) * initial_share)
        add_files(ent, ent.pending[:k], changes)
        ent.pending = ent.pending[k:]

    # Commit 1: the repository as imported, with the first locations and part of their files.
    changes = []
    born_locations = locations[:n_initial]
    for ent in libs + born_locations + [docs, tools]:
        birth(ent, changes, 0.45)
    changes.append(("dagster_cloud.yaml", cloud_yaml(born_locations)))
    changes.append(("dagster-deploy.toml", DEPLOY_TOML))
    when = START_TIME
    stream.commit(when, PEOPLE[0], "Import the data platform monorepo\n", changes)

    everything = libs + locations + [docs, tools]
    # Leave the last commits for steady-state edits (what benchmarks diff over).
    drain_until = max(2, commits - max(50, commits // 50))
    for c in range(2, commits + 1):
        when += rng.randint(300, 7200)
        who = rng.choice(PEOPLE)
        changes = []
        if c in births:
            for loc in births[c]:
                birth(loc, changes, 0.3)
                born_locations.append(loc)
            changes.append(("dagster_cloud.yaml", cloud_yaml(born_locations)))
            stream.commit(when, who, f"Add code location {births[c][0].name}\n", changes)
            continue

        pending_total = sum(len(e.pending) for e in everything if e.born)
        left = max(1, drain_until - c)
        want_adds = pending_total // left + (1 if rng.random() < (pending_total % left) / left
                                              else 0)
        if c >= drain_until:
            want_adds = pending_total  # flush anything left (normally nothing)

        r = rng.random()
        live_locs = [l for l in locations if l.born]
        if r < 0.80:
            targets = [weighted(live_locs, rng)]
        elif r < 0.86:
            targets = [rng.choice(libs)] if libs else [weighted(live_locs, rng)]
        elif r < 0.91:
            targets = [docs]
        elif r < 0.94:
            targets = [tools]
        else:  # a cross-cutting change
            targets = rng.sample(live_locs, min(len(live_locs), rng.randint(2, 5)))
        # Additions go where files are still pending (keeps every entity growing).
        growers = [e for e in everything if e.born and e.pending]
        if want_adds and growers and rng.random() < 0.5:
            targets.append(max(growers, key=lambda e: len(e.pending) * rng.random()))

        for ent in targets:
            share = want_adds if ent is targets[-1] else 0
            n_add = min(len(ent.pending), share)
            add_files(ent, ent.pending[:n_add], changes)
            ent.pending = ent.pending[n_add:]
            for path in rng.sample(ent.live, min(len(ent.live), rng.randint(1, 4))):
                write(ent, path, changes)
            # Occasionally a scratch module comes and, later, goes.
            if ent.kind in ("location", "lib") and rng.random() < 0.05:
                if ent.scratch and rng.random() < 0.5:
                    gone = ent.scratch.pop()
                    ent.live.remove(gone)
                    changes.append((gone, None))
                else:
                    p = f"{ent.folder}/src/{ent.package}/scratch_{c}.py"
                    add_files(ent, [p], changes)
                    ent.scratch.append(p)
        if c >= drain_until:  # any residue lands in one commit before the steady state
            for ent in growers:
                add_files(ent, ent.pending, changes)
                ent.pending = []
        # Merge-free, single-parent history: one commit per change set.
        main = targets[0]
        subject = f"{main.name}: {rng.choice(VERBS)} {rng.choice(NOUNS)}"
        if len(targets) > 1 and main.kind == "location" and targets[1].kind == "location":
            subject = f"{len(targets)} locations: {rng.choice(VERBS)} {rng.choice(NOUNS)}"
        stream.commit(when, who, subject + "\n", dedupe(changes))
    stream.flush()
    return libs, locations


def weighted(entities, rng):
    return rng.choices(entities, weights=[e.weight for e in entities])[0]


def dedupe(changes):
    """A path written twice in one commit keeps its last version."""
    seen = {}
    for path, text in changes:
        seen[path] = text
    return list(seen.items())


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def main():
    args = parse_args()
    if os.path.exists(args.repo):
        sys.exit(f"{args.repo} exists; remove it first")
    t0 = time.monotonic()
    run(["git", "init", "-q", "-b", "main", args.repo])
    git = ["git", "-C", args.repo]
    run(git + ["config", "core.autocrlf", "false"])
    fi = subprocess.Popen(git + ["fast-import", "--quiet", "--done"], stdin=subprocess.PIPE)
    stream = Stream(fi.stdin)
    libs, locations = generate(args, stream)
    fi.stdin.write(b"done\n")
    fi.stdin.close()
    if fi.wait() != 0:
        sys.exit("git fast-import failed")
    t_import = time.monotonic() - t0
    run(git + ["reset", "-q", "--hard", "main"])
    t_checkout = time.monotonic() - t0 - t_import

    files = int(subprocess.run(git + ["ls-files"], check=True, capture_output=True)
                .stdout.count(b"\n"))
    commit_count = int(subprocess.run(git + ["rev-list", "--count", "HEAD"], check=True,
                                      capture_output=True, text=True).stdout)
    summary = {
        "repo": os.path.abspath(args.repo),
        "params": vars(args) | {"repo": None},
        "files": files,
        "commits": commit_count,
        "locations": sum(1 for l in locations if l.born),
        "locations_using_libs": sum(1 for l in locations if l.born and l.lib_deps),
        "libs": len(libs),
        "seconds": {"fast_import": round(t_import, 1), "checkout": round(t_checkout, 1),
                    "total": round(time.monotonic() - t0, 1)},
    }
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
