"""Attribute filters (OpenAI's comparison and compound filters), checked once and evaluated against a
file's attributes. The search turns the matching files into the set of chunk ids faiss may return."""
from __future__ import annotations

from app.core.errors import invalid_request

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")


def check_filter(node, param: str = "filters") -> dict:
    if not isinstance(node, dict):
        raise invalid_request(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    kind = node.get("type")
    if kind in COMPOUNDS:
        children = node.get("filters")
        if not isinstance(children, list) or not children:
            raise invalid_request(f"Invalid '{param}.filters': expected a non-empty array.", param=f"{param}.filters", code="invalid_value")
        for i, child in enumerate(children):
            check_filter(child, f"{param}.filters[{i}]")
        return node
    if kind not in COMPARISONS:
        supported = ", ".join(f"'{k}'" for k in COMPARISONS + COMPOUNDS)
        raise invalid_request(f"Invalid value: '{kind}'. Supported values are: {supported}.", param=f"{param}.type", code="invalid_value")
    if not isinstance(node.get("key"), str):
        raise invalid_request(f"Missing required parameter: '{param}.key'.", param=f"{param}.key", code="missing_required_parameter")
    if "value" not in node:
        raise invalid_request(f"Missing required parameter: '{param}.value'.", param=f"{param}.value", code="missing_required_parameter")
    if kind in ("in", "nin") and not isinstance(node["value"], list):
        raise invalid_request(f"Invalid type for '{param}.value': expected an array for '{kind}'.", param=f"{param}.value", code="invalid_type")
    return node


def _compare(kind: str, actual, expected) -> bool:
    if kind == "in":
        return actual in expected
    if kind == "nin":
        return actual not in expected
    if kind == "eq":
        return actual == expected
    if kind == "ne":
        return actual != expected
    if actual is None or isinstance(actual, bool) != isinstance(expected, bool):
        return False
    try:
        return {"gt": actual > expected, "gte": actual >= expected, "lt": actual < expected, "lte": actual <= expected}[kind]
    except TypeError:  # comparing a string with a number matches nothing, as a missing key does
        return False


def matches(node: dict, attributes: dict | None) -> bool:
    attributes = attributes or {}
    kind = node["type"]
    if kind == "and":
        return all(matches(child, attributes) for child in node["filters"])
    if kind == "or":
        return any(matches(child, attributes) for child in node["filters"])
    return _compare(kind, attributes.get(node["key"]), node["value"])
