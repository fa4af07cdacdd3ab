"""Schemathesis against the live API, from the document the API serves.

Every operation is fuzzed with data that fits its schema and with data that does not, as
the platform admin (every operation) and as a tenant owner (every operation outside
``/v1/admin``); then a short stateful run per caller follows the document's links (a
create, then what it made and the operation that made it). Every built-in check runs (no
5xx; status codes, content types, headers and bodies as documented; invalid input refused;
no auth ignored), except that ``positive_data_acceptance`` gives way to a sharper check of
our own, ``documented_input_decodes`` (see there).

The app serves from the test's event loop, so Schemathesis (which calls synchronously)
runs in a worker thread. Generation is derandomized: the same cases run every time. The
number of cases per operation shrinks as the route table grows, to keep the run short.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.generation.stateful.state_machine import APIStateMachine
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.call import MIN_POSITION_HEADER, POSITION_HEADER
from api.routing import REFUSALS
from tests.api.conftest import ADMIN_PASSWORD, Api

CASES_PER_CALLER = 300
"""Spread over the caller's operations and both modes: between 2 and 10 each."""
STATEFUL_SCENARIOS = 8
STATEFUL_STEPS = 5
IDEMPOTENCY_KEY = "Idempotency-Key"

# An endless stream: requests would wait for its end forever. Its query is decoded by the
# same router as every other endpoint's; its own behaviour has tests of its own.
SKIPPED = {("GET", "/v1/events")}

MAX_POSITION = 2**63 - 1
CHANGE_PASSWORD = "/v1/me/actions/change-password"
Login = dict[str, str]
_NOT_FUZZABLE_HEADERS = {"authorization", "x-request-id"}


def _settings(**extra: Any) -> hypothesis.settings:
    return hypothesis.settings(
        derandomize=True,
        database=None,
        deadline=None,
        # Shrinking re-sends many requests; the first failing case is shown as it was found.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        **extra,
    )


def _beyond(value: Any, head: int, mode: GenerationMode) -> bool:
    """A position the store has not reached; malformed ones, or a negative case's out-of-range
    one (past a documented maximum, refused before any wait), stay as they were made."""
    try:
        position = int(value)
    except (TypeError, ValueError):
        return False
    return position > head and (mode is GenerationMode.POSITIVE or position <= MAX_POSITION)


def documented_input_decodes(ctx: Any, response: Any, case: Any) -> bool | None:
    """A valid request is never refused by the router's decoding: document and types agree.

    In place of Schemathesis's ``positive_data_acceptance``, which also fails a valid request
    that the domain refuses on its merits (a pool id that names no pool, staff calling a
    tenant's endpoint), answers that are documented. The router's own refusals are told
    apart by how their detail begins (``api.routing.REFUSALS``), and by 415.
    """
    if _mode(case) is not GenerationMode.POSITIVE or response.status_code not in (400, 415, 422):
        return None
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        detail = ""
    if _key_pattern_miss(detail):
        # The document does constrain map keys (JSON Schema ``propertyNames``, as msgspec
        # writes it), but the case generator ignores that keyword in its stateful phase and
        # makes keys the document forbids; refusing them is right.
        return True
    if response.status_code == 415 or detail.startswith(REFUSALS):
        raise AssertionError(f"the router refused a request the document allows: {detail}")
    return True


def _key_pattern_miss(detail: str) -> bool:
    return "matching regex" in detail and "- at `key` in" in detail


def _mode(case: Any) -> GenerationMode:
    meta = getattr(case, "meta", None)
    return meta.generation.mode if meta is not None else GenerationMode.POSITIVE


def _has_negatable_input(operation: Any) -> bool:
    """Anything a negative case could break: a body, a query, a path, a constrained header."""
    headers = [p for p in operation.headers if p.name.lower() not in _NOT_FUZZABLE_HEADERS]
    return bool(operation.body or operation.query or operation.path_parameters or headers)


class Fuzzer:
    """Sends generated cases as one caller, and collects what fails."""

    def __init__(
        self, document: dict[str, Any], base_url: str, who: str, login: Login, position: int
    ) -> None:
        # An explicit configuration: nothing from a schemathesis.toml that may lie around.
        loaded = schemathesis.openapi.from_dict(document, config=SchemathesisConfig())
        self.schema = loaded.exclude(method=[m for m, _ in SKIPPED], path=[p for _, p in SKIPPED])
        if who != "admin":  # the platform's side answers a tenant 403, and the isolation
            self.schema = self.schema.exclude(path_regex="^/v1/admin/")  # tests cover that
        self.base_url = base_url
        self.who = who
        self.login = login
        self.session = requests.Session()
        self.token = self.sign_in()
        fuzzer = self

        # Schemathesis signs the cases itself, so that it knows when a negative case is one
        # with a broken Authorization header, and expects a 401 for it.
        @self.schema.auth(refresh_interval=None)
        class Bearer:
            def get(self, case: Any, context: Any) -> str:
                return fuzzer.token

            def set(self, case: Any, data: str, context: Any) -> None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

        self.head = position
        self.keys = itertools.count()
        self.sent = 0
        self.statuses: Counter[str] = Counter()

    def tame(self, case: Any, mode: GenerationMode) -> None:
        """Set right, before sending, two things a schema cannot say.

        A key already used for another request is refused (422) by design, so a valid case
        gets a fresh one. A position nobody has written yet answers 503 after a bounded wait,
        by design, so positions stay within those the store has reached: then every 5xx the
        fuzz sees is a fault.
        """
        headers = case.headers if case.headers is not None else {}
        if mode is GenerationMode.POSITIVE and IDEMPOTENCY_KEY in headers:
            headers[IDEMPOTENCY_KEY] = f"fuzz-{self.who}-{next(self.keys)}"
        if _beyond(headers.get(MIN_POSITION_HEADER), self.head, mode):
            headers[MIN_POSITION_HEADER] = str(self.head)
        query = case.query if case.query is not None else {}
        if _beyond(query.get("min_position"), self.head, mode):
            query["min_position"] = self.head

    def sign_in(self) -> str:
        response = self.session.post(f"{self.base_url}/v1/auth/login", json=self.login)
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def after(self, case: Any, response: Any) -> None:
        """A changed password ends the caller's sessions, by design: sign in with the new one."""
        if case.operation.path == CHANGE_PASSWORD and response.status_code == 202:
            self.login = {**self.login, "password": case.body["new_password"]}
            self.token = self.sign_in()

    def send(self, case: Any, mode: GenerationMode) -> None:
        self.sent += 1
        self.tame(case, mode)
        response = case.call(base_url=self.base_url, session=self.session)
        self.statuses[f"{mode.value[:3]} {response.status_code}"] += 1
        self.after(case, response)
        case.validate_response(
            response,
            excluded_checks=[positive_data_acceptance],
            additional_checks=[documented_input_decodes],
            transport_kwargs={"base_url": self.base_url, "session": self.session},
        )

    def operation(self, operation: Any, mode: GenerationMode, examples: int) -> str | None:
        """Fuzz one operation in one mode; what failed, or None."""

        @_settings(max_examples=examples)
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            self.send(case, mode)

        try:
            run()
        except Unsatisfiable:
            return None  # the schema leaves nothing to break
        except (Exception, BaseExceptionGroup) as error:
            return f"[{self.who}, {mode.value}] {operation.label}:\n{error}"
        return None

    def stateless(self) -> list[str]:
        operations = [result.ok() for result in self.schema.get_all_operations()]
        examples = max(2, min(10, CASES_PER_CALLER // (2 * len(operations))))
        failures = []
        for operation in operations:
            modes = [GenerationMode.POSITIVE]
            if _has_negatable_input(operation):
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                failure = self.operation(operation, mode, examples)
                if failure is not None:
                    failures.append(failure)
        return failures

    def stateful(self) -> str | None:
        """Scenarios along the document's links; what failed, or None."""
        fuzzer = self

        class Machine(self.schema.as_state_machine()):  # type: ignore[misc]
            def before_call(self, case: Any) -> None:
                fuzzer.sent += 1
                fuzzer.tame(case, _mode(case))

            def after_call(self, response: Any, case: Any) -> None:
                super().after_call(response, case)
                fuzzer.after(case, response)
                fuzzer.statuses[f"stateful {response.status_code}"] += 1
                written = response.headers.get(POSITION_HEADER)
                if written is not None:
                    fuzzer.head = max(fuzzer.head, int(written))

            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                return {"base_url": fuzzer.base_url, "session": fuzzer.session}

            def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
                case.validate_response(
                    response,
                    excluded_checks=[positive_data_acceptance],
                    additional_checks=[documented_input_decodes],
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )

        machine: type[APIStateMachine] = Machine
        try:
            machine.run(
                settings=_settings(
                    max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS
                )
            )
        except (Exception, BaseExceptionGroup) as error:
            return f"[{self.who}, stateful]:\n{error}"
        return None


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(api: Api) -> None:
    started = time.monotonic()
    served = await api.client.get("/v1/openapi.json")
    assert served.status == 200
    document = await served.json()
    base_url = str(api.client.make_url("")).rstrip("/")
    owner = {"email": "owner@fuzzed.example", "password": "fuzzed-owner-password"}
    created = await api.admin.post(
        "/v1/admin/tenants",
        json={"name": "fuzzed", "owner_email": owner["email"], "owner_password": owner["password"]},
    )
    position = (await api.settled(created))["position"]
    admin = {"email": api.platform.settings.admin_email, "password": ADMIN_PASSWORD}

    failures: list[str] = []
    sent = 0
    for who, login in (("admin", admin), ("owner", owner)):
        fuzzer = await asyncio.to_thread(Fuzzer, document, base_url, who, login, position)
        failures += await asyncio.to_thread(fuzzer.stateless)
        failure = await asyncio.to_thread(fuzzer.stateful)
        failures += [failure] if failure else []
        sent += fuzzer.sent
        print(f"{who}: {fuzzer.sent} requests, {sorted(fuzzer.statuses.items())}")

    elapsed = time.monotonic() - started
    operations = sum(len(item) for item in document["paths"].values())
    print(f"schemathesis: {operations} operations, {sent} requests, {elapsed:.1f}s")
    assert not failures, "\n\n".join(failures)


async def test_what_the_fuzz_found_stays_fixed(api: Api) -> None:
    """What the fuzz found in the router, pinned: each of these once answered 2xx or 500."""
    owner = await api.tenant()
    nul = {"email": "a@b.example", "password": "pass\u0000word-1234", "roles": ["read-only"]}
    cases = [
        # U+0000 cannot be stored by PostgreSQL: it was accepted (202) and then stopped the
        # resource projection for good; in a query or a path it was a 500
        (await owner.post("/v1/users", json=nul), 422),
        (await api.admin.get("/v1/admin/tenants?name=a%00b"), 422),
        # a malformed id names nothing
        (await api.admin.get("/v1/admin/tenants/tnt-%00"), 404),
        (await api.admin.post("/v1/admin/tenants/nonsense/actions/unfreeze"), 404),
        # a position is an integer wherever it is given (an empty one was ignored: 200)
        (await owner.get("/v1/tenant", headers={MIN_POSITION_HEADER: ""}), 422),
        (await owner.get("/v1/tenant?min_position=x"), 422),
        # malformed JSON that starts like a number (a 500 in the first float-tolerant decoder)
        (await owner.post("/v1/projects", data=b"0\x0e", headers=_JSON), 422),
        # now a documented enum; an email pattern whose \s no longer means two things
        (await owner.get("/v1/users?sort=age"), 422),
        (await api.admin.post("/v1/admin/tenants", json=_tenant(email="a\x1c@b.example")), 422),
    ]
    for response, status in cases:
        assert response.status == status, (response.url, await response.text())
        assert response.content_type == "application/problem+json"
    # a method the path lacks: 405 problem+json that names the methods it has
    wrong_method = await api.admin.client.delete("/v1/me")
    assert wrong_method.status == 405 and wrong_method.content_type == "application/problem+json"
    assert set(wrong_method.headers["Allow"].split(",")) >= {"GET"}
    # JSON Schema's integers include 5.0, which msgspec alone refused
    tenant = await api.settled(await api.admin.post("/v1/admin/tenants", json=_tenant()))
    recharge = await api.admin.post(
        f"/v1/admin/tenants/{tenant['resource_id']}/actions/recharge",
        json={"amount_minor": 500.0, "currency": "USD", "reference": "float"},
    )
    assert recharge.status == 202, await recharge.text()


_JSON = {"Content-Type": "application/json"}


def _tenant(email: str = "someone@example.com") -> dict[str, Any]:
    return {"name": "t", "owner_email": email, "owner_password": "long-enough-password"}
