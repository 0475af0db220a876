"""Which operations of the official OpenAI spec Understudy routes: every (method, path) of
../shared/openai-openapi/openapi.yaml, admin apart (/organization/… and the projects' role
assignments, which need an organization admin key), looked up in the app's own route table.

    .venv/bin/python scripts/route_probe.py [--missing]

Prints `N of M routed`, M counting every operation the spec lists: its seven `/responses…?beta=true`
entries are Responses operations again, served by the same routes, and count as the spec counts them.
With --missing, each operation not routed, grouped by its first path segment.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPEC = ROOT.parent / "shared" / "openai-openapi" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")
ADMIN = re.compile(r"^/organization/|^/projects/\{[^}]+\}/(roles|users/\{[^}]+\}/roles|groups/\{[^}]+\}/roles)")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def spec_operations(spec_path: Path = SPEC) -> list[tuple[str, str]]:
    """(method, route shape) for each operation the spec lists, in its order; a shape may repeat."""
    spec = yaml.safe_load(spec_path.read_text())
    operations = []
    for path, item in spec["paths"].items():
        path = path.split("?", 1)[0]  # "/responses?beta=true" is /responses again
        if ADMIN.search(path):
            continue
        operations.extend((method.upper(), "/v1" + _shape(path)) for method in item if method in METHODS)
    return operations


def routed_operations() -> set[tuple[str, str]]:
    from app.main import create_app
    from app.settings import Settings

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings.from_env({"UNDERSTUDY_DATA_DIR": data_dir}))
    return {(method, _shape(route.path)) for route in app.routes for method in getattr(route, "methods", ())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missing", action="store_true", help="list the operations not routed")
    args = parser.parse_args()
    wanted = spec_operations()
    routed = routed_operations()
    missing = sorted({op for op in wanted if op not in routed}, key=lambda op: (op[1], op[0]))
    print(f"{sum(op in routed for op in wanted)} of {len(wanted)} routed")
    if args.missing:
        groups = defaultdict(list)
        for method, path in missing:
            groups[path.split("/")[2]].append(f"{method} {path}")
        for group, operations in sorted(groups.items()):
            print(f"\n{group} ({len(operations)})")
            print("\n".join(f"  {op}" for op in operations))


if __name__ == "__main__":
    main()
