"""The last mutmut run per module: killed / survived / timeout / other, and the share killed (run from the checkout
after ``mutmut run``; reads mutmut's own result files, ``mutants/**/*.py.meta``)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code  # mutmut's mapping of a mutant run's exit code to its verdict


def table(root: Path = Path("mutants")) -> list[str]:
    lines = ["| module | mutants | killed | survived | timeout | other | killed % |", "|---|---|---|---|---|---|---|"]
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        verdicts = Counter(status_by_exit_code[code] for code in codes.values() if code is not None)
        if not verdicts:
            continue
        decided = sum(verdicts.values())
        other = decided - verdicts["killed"] - verdicts["survived"] - verdicts["timeout"]
        module = str(meta.relative_to(root)).removesuffix(".py.meta")
        lines.append(f"| {module} | {decided} | {verdicts['killed']} | {verdicts['survived']} | {verdicts['timeout']} "
                     f"| {other} | {100 * verdicts['killed'] / decided:.1f} |")
    return lines


if __name__ == "__main__":
    sys.stdout.write("\n".join(table()) + "\n")
