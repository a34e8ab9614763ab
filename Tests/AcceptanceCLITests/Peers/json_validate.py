"""Validate JSON documents against a JSON Schema (draft 2020-12, formats checked) with Python's jsonschema.

usage: json_validate.py SCHEMA.json DOCUMENT.json [DOCUMENT.json ...]
Prints one line per document ("ok FILE" or "FAIL FILE: path: message") and exits 1 if any failed.
"""
import json
import sys

from jsonschema import Draft202012Validator, FormatChecker


def main():
    with open(sys.argv[1], encoding="utf-8") as handle:
        schema = json.load(handle)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    failed = False
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
        if errors:
            failed = True
            for error in errors[:5]:
                where = "/".join(str(part) for part in error.absolute_path) or "(root)"
                print(f"FAIL {path}: {where}: {error.message}")
        else:
            print(f"ok {path}")
    sys.exit(1 if failed else 0)


main()
