#!/usr/bin/env python3
"""Turns plan.sh's hyperfine exports into one table (stdout and RESULTS/summary.txt).

Reads RESULTS/rows.tsv (one line per benchmark row, written by plan.sh), the hyperfine JSON each
line names, and RESULTS/repo.json (the repository's shape). Standard library only.
Exit status 1 when BENCH_STRICT=1 and a target was missed or could not be measured.
"""

import json
import os
import sys

COLUMNS = ["command", "mean ms", "reference", "reference ms", "ratio", "target", "result"]


def load_means(path):
    """Mean and standard deviation in ms for the `ours` and `reference` commands, if measured."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    return {r["command"]: (r["mean"] * 1000, r["stddev"] * 1000 if r.get("stddev") else 0.0)
            for r in data["results"]}


def target_text(max_ratio, max_ms):
    parts = []
    if max_ratio:
        parts.append(f"<= {max_ratio}x reference")
    if max_ms:
        parts.append(f"< {max_ms} ms")
    return ", ".join(parts)


def evaluate(fields):
    name, ours_label, ref_label, json_path, max_ratio, max_ms, ours_note, ref_note = fields
    means = load_means(json_path)
    ours = means.get("ours")
    ref = means.get("reference")
    ratio = ours[0] / ref[0] if ours and ref and ref[0] > 0 else None

    checks = []
    if max_ms:
        checks.append(ours is not None and ours[0] < float(max_ms))
    if max_ratio:
        # Without a reference measurement the ratio target cannot be judged.
        checks.append(None if ratio is None else ratio <= float(max_ratio))
    if ours is None or None in checks:
        result = "not measured"
    else:
        result = "met" if all(checks) else "MISSED"

    return {
        "command": ours_label,
        "mean ms": f"{ours[0]:.1f} ± {ours[1]:.1f}" if ours else ours_note,
        "reference": ref_label,
        "reference ms": f"{ref[0]:.1f} ± {ref[1]:.1f}" if ref else (ref_note or "n/a"),
        "ratio": f"{ratio:.3g}x" if ratio is not None else "-",
        "target": target_text(max_ratio, max_ms),
        "result": result,
        "name": name,
    }


def render(rows, repo):
    lines = []
    if repo:
        lines.append(
            f"repository: {repo['repo']}\n"
            f"  {repo['files']} files, {repo['commits']} commits, {repo['locations']} locations "
            f"({repo['locations_using_libs']} using local libraries), {repo['libs']} libraries\n"
            f"  base {repo['base'][:12]}, head {repo['head'][:12]}: "
            f"{repo['changed_files']} files changed\n")
    cells = [[r[c] for c in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(COLUMNS)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    lines.append(fmt.format(*COLUMNS).rstrip())
    lines.append("-+-".join("-" * w for w in widths))
    lines += [fmt.format(*row).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                                  "results")
    rows = []
    with open(os.path.join(results, "rows.tsv")) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 8:
                rows.append(evaluate(fields))
    repo = None
    repo_path = os.path.join(results, "repo.json")
    if os.path.exists(repo_path):
        with open(repo_path) as f:
            repo = json.load(f)
    table = render(rows, repo)
    sys.stdout.write(table)
    with open(os.path.join(results, "summary.txt"), "w") as f:
        f.write(table)
    if os.environ.get("BENCH_STRICT") == "1" and any(r["result"] != "met" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
