# Schemathesis hooks for .ci/api-contract (loaded through SCHEMATHESIS_HOOKS).
# What the run needs and no CLI flag gives; nothing else is filtered.
import ipaddress
import os

import schemathesis
from hypothesis import strategies as st

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


# 4. Formats the document names for values JSON Schema has no word for.
# Schemathesis generates valid ones from these strategies (and the
# negative phases still send arbitrary strings, which the server refuses).


def _org_number(digits):
    # Norwegian organisation number: mod-11 check digit, weights 3 2 7 6 5 4 3 2.
    weights = [3, 2, 7, 6, 5, 4, 3, 2]
    rest = 11 - sum(d * w for d, w in zip(digits, weights)) % 11
    return None if rest == 10 else "".join(map(str, digits + [0 if rest == 11 else rest]))


_ipv4 = st.ip_addresses(v=4)
_ipv6 = st.ip_addresses(v=6)
_label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")
_domain = st.builds(
    lambda labels, tld: ".".join(labels + [tld]),
    st.lists(_label, min_size=1, max_size=3),
    st.sampled_from(["no", "example", "com", "org"]),
)

schemathesis.openapi.format(
    "no-org-number",
    st.lists(st.integers(0, 9), min_size=8, max_size=8)
    .map(_org_number)
    .filter(lambda n: n is not None),
)
schemathesis.openapi.format("ip", st.one_of(_ipv4, _ipv6).map(str))
def _network(ip, prefix):
    # The network around an address: no host bits set, as the server wants.
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


schemathesis.openapi.format(
    "cidr",
    st.one_of(
        st.builds(_network, _ipv4, st.integers(8, 32)),
        st.builds(_network, _ipv6, st.integers(16, 128)),
    ),
)
schemathesis.openapi.format("domain-name", _domain)
schemathesis.openapi.format(
    "email-address",
    st.builds(lambda local, domain: f"{local}@{domain}", st.from_regex(r"\A[a-z0-9._+-]{1,20}\Z"), _domain),
)


# 5. Rules about time and about other fields, which a schema cannot state:
# a scan run that starts in the future, a network valid from the future, a
# run with a scope but no checks (finishing it would resolve findings of
# every check), a Shadowserver report pushed without its type; reminder
# days that do not increase, a change to a campaign that leaves it with
# neither checks nor CVEs (it would match nothing), an ingest body that
# holds no record at all (white space, or bytes no format reads as one: a
# request that stores nothing is never a success, and whether bytes hold a
# record depends on the format named). The server answers 422 naming the
# field; these are the only schema-valid 422s besides a reused
# Idempotency-Key.
CAMPAIGN_RULES = {"checks", "reminder_days"}
NOT_IN_THE_SCHEMA = {
    ("POST", "/api/v1/scans"): {"started_at", "checks"},
    ("POST", "/api/v1/organisations/{id}/networks"): {"valid_from"},
    ("POST", "/api/v1/observations"): {"report", "body"},
    ("POST", "/api/v1/scans/{id}/observations"): {"report", "body"},
    ("POST", "/api/v1/campaigns"): CAMPAIGN_RULES,
    ("PATCH", "/api/v1/campaigns/{id}"): CAMPAIGN_RULES,
}


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops only a schema-valid request's 422 that is one of the above
    (3. and 5.); the response still goes through every other check."""
    if getattr(failure, "code", None) != "ST202" or response.status_code != 422:
        return True
    try:
        problem = response.json()
    except Exception:
        return True
    if not isinstance(problem, dict):
        return True
    if problem.get("type") == REUSED_KEY:
        return False
    fields = NOT_IN_THE_SCHEMA.get((case.operation.method.upper(), case.operation.path), set())
    return problem.get("field") not in fields
