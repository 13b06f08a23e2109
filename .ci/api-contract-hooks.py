# Schemathesis hooks for .ci/api-contract (loaded through SCHEMATHESIS_HOOKS).
# Three things the run needs and no CLI flag gives; nothing else is filtered.
import os

import schemathesis

# 1. NDJSON bodies. The ingest operations take `application/x-ndjson` (a
# string schema), which schemathesis has no serializer for: it would skip
# those operations ("Serialization not possible"). NDJSON is text on the
# wire, so it goes out as text/plain does.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


# 2. Our own token. The run authenticates with one admin token and also tests
# `DELETE /api/v1/tokens/{id}`. Were it to revoke its own client, every later
# request would get 401 and the rest of the run would test nothing (and
# schemathesis does learn that id, from GET /tokens). So that one id is never
# sent to that operation; every other id is, including the read and ingest
# clients the script creates (so a real 204 is tested too).
OWN_CLIENT_ID = int(os.environ["VARSEL_CONTRACT_CLIENT_ID"])


def _as_int(value):
    # Generated ids are ints or, in negative cases, strings; "+3" or "03" is
    # still id 3 to the server. Python's int() accepts at least what Rust's
    # i64 parser does; filtering a little too much is harmless, revoking our
    # own token is not.
    try:
        return int(str(value).strip())
    except ValueError:
        return None


@schemathesis.hook
def filter_case(context, case):
    operation = case.operation
    if operation.method.upper() != "DELETE" or operation.path != "/api/v1/tokens/{id}":
        return True
    return _as_int((case.path_parameters or {}).get("id")) != OWN_CLIENT_ID


# 3. Reused Idempotency-Key. The ingest operations answer 422
# `idempotency-key-reused` when a key comes back with a different request, as
# the IETF Idempotency-Key draft says they should. Schemathesis draws keys
# from a small space and so reuses them; positive_data_acceptance then calls
# that 422 a "schema-valid request rejected", which no schema can prevent
# (it cannot say "a key not used before"). Only that one failure is dropped
# (schemathesis prints the count as dropped by filter_failure); the response
# still goes through every other check, so a 422 the document does not list
# for that operation is still reported.
REUSED_KEY = "urn:varsel:problem:idempotency-key-reused"


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if getattr(failure, "code", None) != "ST202" or response.status_code != 422:
        return True
    try:
        problem = response.json()
    except Exception:
        return True
    return not (isinstance(problem, dict) and problem.get("type") == REUSED_KEY)
