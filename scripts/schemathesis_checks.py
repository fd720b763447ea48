"""Checks Tessera adds to schemathesis's own when it runs over the admin API
(scripts/schemathesis.sh loads this module through SCHEMATHESIS_HOOKS)."""

import json

import schemathesis

PROBLEM_TYPE = "application/problem+json"


@schemathesis.check
def refusals_are_problem_documents(ctx, response, case):
    """Every 4xx and 5xx answer is an RFC 9457 problem document: its media
    type, and the members `type`, `title` and `status` (the same status as
    the answer's)."""
    if response.status_code < 400:
        return None
    content_type = ";".join(response.headers.get("content-type", [""])).split(";")[0].strip()
    if content_type != PROBLEM_TYPE:
        raise AssertionError(f"a {response.status_code} answer of type {content_type!r}, not {PROBLEM_TYPE}")
    try:
        problem = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"a {response.status_code} problem document that is not JSON: {e}") from None
    if not isinstance(problem, dict):
        raise AssertionError("a problem document that is not a JSON object")
    for member, kind in (("type", str), ("title", str), ("status", int)):
        if not isinstance(problem.get(member), kind):
            raise AssertionError(f"a problem document without a {kind.__name__} {member!r}: {problem}")
    if problem["status"] != response.status_code:
        raise AssertionError(f"a problem document with status {problem['status']} in a {response.status_code} answer")
    return None
