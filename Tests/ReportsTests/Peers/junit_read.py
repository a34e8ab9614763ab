"""Reads a junit.xml as a CI dashboard does, with junitparser (PyPI), and prints what it sees as JSON:
one entry per test case (classname, name, time, result and message), and the suite's properties.

  python3 junit_read.py junit.xml
"""
import json
import sys

from junitparser import JUnitXml, Failure, Error, Skipped

xml = JUnitXml.fromfile(sys.argv[1])
cases = []
properties = {}
for suite in xml:
    for prop in suite.properties():
        properties[prop.name] = prop.value
    for case in suite:
        result = "pass"
        message = None
        for outcome in case.result:
            if isinstance(outcome, Failure):
                result, message = "failure", outcome.message
            elif isinstance(outcome, Error):
                result, message = "error", outcome.message
            elif isinstance(outcome, Skipped):
                result, message = "skipped", outcome.message
        cases.append({"classname": case.classname, "name": case.name, "time": case.time, "result": result,
                      "message": message})
print(json.dumps({"cases": cases, "properties": properties}))
