"""KTAP parsing for KUnit results, as found in /sys/kernel/debug/kunit/*/results.

Only leaf test cases are counted: a result line that closes a subtest (a suite
or a parameterised case) is a summary of the lines before it, not a case of
its own. A suite whose plan announces more cases than it reports (it crashed
or hung part-way) has the missing ones counted as failures.
"""

import re
from dataclasses import dataclass, field

RESULT_RE = re.compile(r"^(?P<indent>\s*)(?P<ok>not ok|ok) (?P<num>\d+)(?: -)?\s*(?P<name>[^#]*?)\s*(?:#\s*(?P<directive>\S+).*)?$")
PLAN_RE = re.compile(r"^(?P<indent>\s*)1\.\.(?P<n>\d+)\s*$")


@dataclass
class SuiteResult:
    """Counts for one suite and the names of its failed cases."""

    suite: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)


def parse(suite: str, text: str) -> SuiteResult:
    res = SuiteResult(suite)
    lines = text.splitlines()
    results = []  # (indent, ok, name, directive)
    plans = []  # (indent, n)
    for line in lines:
        m = RESULT_RE.match(line)
        if m:
            results.append((len(m["indent"]), m["ok"] == "ok", m["name"].strip(), (m["directive"] or "").upper()))
            continue
        p = PLAN_RE.match(line)
        if p:
            plans.append((len(p["indent"]), int(p["n"])))

    # The results file wraps the suite in an outer one-line plan ("1..1") and
    # indents the suite's own plan and cases below it: the case plan is the
    # first plan at the indentation of the first result.
    case_indent = results[0][0] if results else None
    planned = next((n for indent, n in plans if indent == case_indent), None)
    leaves_at_case_level = 0

    for i, (indent, ok, name, directive) in enumerate(results):
        is_parent = i > 0 and results[i - 1][0] > indent
        if case_indent is not None and indent == case_indent:
            leaves_at_case_level += 1
        if is_parent:
            continue
        if directive == "SKIP":
            res.skipped += 1
        elif ok:
            res.passed += 1
        else:
            res.failed += 1
            res.failures.append(f"{suite}.{name}")
    if planned is not None and leaves_at_case_level < planned:
        missing = planned - leaves_at_case_level
        res.failed += missing
        res.failures.append(f"{suite}: {missing} planned case(s) never reported")
    if not results:
        res.failed += 1
        res.failures.append(f"{suite}: no results at all")
    return res
