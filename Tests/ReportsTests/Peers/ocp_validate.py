#!/usr/bin/env python3
"""Validate an OCP Test & Validation 2.0 stream (.jsonl) against the schemas in SCHEMA_DIR.

usage: validate.py FILE.jsonl [SCHEMA_DIR]      exit 0 = valid, 1 = errors, 2 = usage
Checks every line against the top-level "output" schema (with date-time format checking),
plus a few stream rules the schemas cannot express (sequence numbers, ids, ordering).
"""
import json, pathlib, sys
from importlib.metadata import version
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT_ID = "https://github.com/opencomputeproject/ocp-diag-core/output"

def reject(constant):                 # Python's json would accept NaN/Infinity; JSON does not
    raise ValueError(f"{constant} is not JSON")

def leaves(e):
    if not e.context:
        yield e
    for c in e.context:
        yield from leaves(c)

def main(path, schema_dir):
    print(f"jsonschema {version('jsonschema')}, referencing {version('referencing')}")
    resources = [Resource.from_contents(json.loads(p.read_text()))
                 for p in sorted(pathlib.Path(schema_dir).glob("*.json"))]
    registry = Registry().with_resources((r.id(), r) for r in resources)
    if "date-time" not in Draft202012Validator.FORMAT_CHECKER.checkers:
        sys.exit("date-time format cannot be checked: pip install rfc3339-validator")
    validator = Draft202012Validator(registry.contents(ROOT_ID), registry=registry,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors, hw, sw, ended = 0, set(), set(), False
    steps, series = {}, {}          # testStepId -> "open"/"closed"; seriesId -> element count
    def fail(n, msg):
        nonlocal errors; errors += 1; print(f"line {n}: {msg}")
    lines = pathlib.Path(path).read_text().splitlines()
    for n, text in enumerate(lines, 1):
        try:
            obj = json.loads(text, parse_constant=reject)
        except ValueError as e:
            fail(n, f"not JSON: {e}"); continue
        errs = list(validator.iter_errors(obj))
        for e in errs:
            if e.validator == "unevaluatedProperties" and any(x.context for x in errs):
                continue                      # just the echo of a failed oneOf
            causes = list(leaves(e))          # oneOf: report the deepest cause(s)
            depth = max(len(c.absolute_path) for c in causes)
            for msg in dict.fromkeys(f"{'/'.join(map(str, c.absolute_path)) or '<root>'}: {c.message}"
                                     for c in causes if len(c.absolute_path) == depth):
                fail(n, msg)
        if not isinstance(obj, dict): continue
        # --- stream rules (not in the schemas) ---
        if obj.get("sequenceNumber") != n - 1:
            fail(n, f"sequenceNumber {obj.get('sequenceNumber')!r} != {n - 1}")
        if (n == 1) != ("schemaVersion" in obj):
            fail(n, "schemaVersion must be the first line, and only the first")
        run, step = obj.get("testRunArtifact", {}), obj.get("testStepArtifact", {})
        ended = "testRunEnd" in run
        if "testRunStart" in run:
            dut = run["testRunStart"].get("dutInfo", {})
            hw = {h.get("hardwareInfoId") for h in dut.get("hardwareInfos", [])}
            sw = {s.get("softwareInfoId") for s in dut.get("softwareInfos", [])}
        if "testRunEnd" in run and n != len(lines):
            fail(n, "testRunEnd must be the last line")
        if "testRunEnd" in run and any(v == "open" for v in steps.values()):
            fail(n, "testRunEnd while a step is still open")
        body = next((v for k, v in step.items() if k != "testStepId"), None)
        sid = step.get("testStepId")
        if "testStepStart" in step:
            if sid in steps: fail(n, f"testStepId {sid} reused")
            steps[sid] = "open"
        elif step and steps.get(sid) != "open":
            fail(n, f"testStepId {sid} is not an open step")
        if "testStepEnd" in step: steps[sid] = "closed"
        if isinstance(body, dict) and "hardwareInfoId" in body and body["hardwareInfoId"] not in hw:
            fail(n, f"unknown hardwareInfoId {body['hardwareInfoId']}")
        for s in (run.get("error") or step.get("error") or {}).get("softwareInfoIds", []):
            if s not in sw: fail(n, f"unknown softwareInfoId {s}")
        if "measurementSeriesStart" in step:
            series[step["measurementSeriesStart"].get("measurementSeriesId")] = 0
        if "measurementSeriesElement" in step:
            e = step["measurementSeriesElement"]; m = e.get("measurementSeriesId")
            if m not in series: fail(n, f"element of unknown/closed series {m}")
            else:
                if e.get("index") != series[m]: fail(n, f"index {e.get('index')} != {series[m]}")
                series[m] += 1
        if "measurementSeriesEnd" in step:
            e = step["measurementSeriesEnd"]; m = e.get("measurementSeriesId")
            if series.get(m) != e.get("totalCount"):
                fail(n, f"totalCount {e.get('totalCount')} != {series.get(m)} elements")
            series.pop(m, None)
    if not ended:
        fail(len(lines), "stream does not end with testRunEnd")
    if series: fail(len(lines), f"series never ended: {sorted(series)}")
    print(f"{path}: {len(lines)} lines, {errors} error(s)")
    return 1 if errors else 0

if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr); sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "/work/shared/conformance/ocp-tv"))
