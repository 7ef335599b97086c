#!/usr/bin/env python3
"""Summarise the last `meson test` run from its JSON log.

Prints one line per skipped test with the reason the test gave (a test that exits 77 says why on
stdout or stderr, which meson keeps only in its log files), then, as the very last line,
'N passed, N failed, N skipped'. Exit status 1 if anything failed.

Usage: test-summary.py [TESTLOG_JSON] [--failed-step WHAT]...
  --failed-step counts a step outside the test run as failed (.ci/run's minimal build).
"""
import argparse
import json
import re

SKIP_WORD = re.compile(r"\bskip", re.I)


def skip_reason(entry):
    """The test's own words: its first line that mentions skipping, else its last line."""
    lines = [ln.strip() for key in ("stdout", "stderr")
             for ln in (entry.get(key) or "").splitlines() if ln.strip()]
    said = [ln for ln in lines if SKIP_WORD.search(ln)]
    reason = (said or lines[-1:] or ["(the test gave no reason)"])[0]
    return reason if len(reason) <= 200 else reason[:197] + "..."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log", nargs="?", default="build/meson-logs/testlog.json")
    ap.add_argument("--failed-step", action="append", default=[])
    args = ap.parse_args()

    passed = failed = skipped = 0
    try:
        with open(args.log, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                entry = json.loads(line)
                r = entry.get("result", "")
                if r in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif r == "SKIP":
                    skipped += 1
                    print(f"skipped: {entry.get('name', '?')}: {skip_reason(entry)}")
                else:
                    failed += 1
    except FileNotFoundError:
        print(f"no test log at {args.log}")
        failed += 1
    for step in args.failed_step:
        print(f"failed: {step}")
        failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
