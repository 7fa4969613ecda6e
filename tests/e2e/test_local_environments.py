"""The local stack invokes a function the way Lambda does: one event at a time per
execution environment. Its functions share one process's modules, so a function whose
per-event state lives in shared objects gets one environment (dripline_local.lambdas).

Powertools' resolver keeps the event it is serving in a class attribute
(`BaseRouter.current_event`): shared by every thread of a process. Two events handled
at once in one process read each other's body. In Lambda that cannot happen (one event
per environment); the local stack must not let it happen either.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest

from dripline_local.lambdas import LocalFunction, load_functions
from dripline_local.template import function_properties

ECHO_HANDLER = '''
import threading
import time
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

app = APIGatewayHttpResolver()
# Set by a test: every event waits here until another event has read its body too.
together = None


@app.post("/echo")
def echo():
    first = app.current_event.json_body["n"]
    if together is not None:
        together.wait()
    else:
        time.sleep(0.002)  # another thread's event would land here
    return {"first": first, "then": app.current_event.json_body["n"]}


def lambda_handler(event, context):
    return app.resolve(event, context)
'''

OVERLAP_HANDLER = '''
import threading

_lock = threading.Lock()
state = {"inside": 0, "most": 0}
together = None  # set by a test: a barrier the events wait at, so they overlap if they may


def lambda_handler(event, context):
    with _lock:
        state["inside"] += 1
        state["most"] = max(state["most"], state["inside"])
    together.wait()
    with _lock:
        state["inside"] -= 1
    return state["most"]
'''


def _function(tmp_path: Path, source: str, name: str, **options) -> LocalFunction:
    code_dir = tmp_path / name
    code_dir.mkdir()
    (code_dir / "app.py").write_text(source)
    return LocalFunction(f"{name.capitalize()}Function", code_dir, **options)


def _event(n: int) -> dict:
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/echo", "rawQueryString": "",
        "headers": {"content-type": "application/json"}, "isBase64Encoded": False, "body": f'{{"n": {n}}}',
        "requestContext": {"http": {"method": "POST", "path": "/echo", "sourceIp": "127.0.0.1"}, "stage": "$default"},
    }


def test_two_events_served_at_once_in_one_process_read_each_others_body(tmp_path):
    """The cause, reproduced: the API function as the local stack ran it before it had
    environments (no bound: every request at once, on threads of one process)."""
    # given Powertools' resolver, and two events that are both inside the handler at once
    echo = _function(tmp_path, ECHO_HANDLER, "echo", timeout=10)
    module = echo.handler().__globals__
    module["together"] = threading.Barrier(2, timeout=10)

    # when events 1 and 2 arrive together
    with ThreadPoolExecutor(2) as pool:
        answers = dict(pool.map(lambda n: (n, json.loads(echo.invoke(_event(n))["body"])), (1, 2)))

    # then each read its own body first, but both then read the one that arrived last:
    # the other's event was replaced under it (`BaseRouter.current_event` is one class
    # attribute per process)
    assert [answers[n]["first"] for n in (1, 2)] == [1, 2]
    (last,) = {answers[1]["then"], answers[2]["then"]}
    assert answers[3 - last] == {"first": 3 - last, "then": last}


def test_concurrent_api_events_never_read_each_others_body(tmp_path):
    # given a function behind the HTTP API, using Powertools' resolver, and 8 callers at once
    echo = _function(tmp_path, ECHO_HANDLER, "echo", timeout=10, one_environment=True)
    assert echo.environments == 1

    # when 160 events arrive together
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: (n, echo.invoke(_event(n))), range(160)))

    # then each was answered from its own body, start to end (without the one
    # environment, most of the 160 are mixed: see the test above for the cause)
    mixed = [(n, json.loads(r["body"])) for n, r in results if json.loads(r["body"]) != {"first": n, "then": n}]
    assert mixed == []


def test_the_api_and_the_stream_consumer_get_one_environment_the_others_overlap_as_in_lambda():
    functions = load_functions("us-east-1")
    assert functions["api"].environments == 1 and functions["enrollment"].environments == 1
    for name, function in functions.items():
        reserved = function_properties(function.logical_id).get("ReservedConcurrentExecutions")
        if name not in ("api", "enrollment"):
            assert function.environments == reserved


BUDGET_HANDLER = '''
work = None  # set by a test: what the event does while it runs


def lambda_handler(event, context):
    remaining = context.get_remaining_time_in_millis()
    if work is not None:
        work()
    return remaining
'''


class FakeMonotonic:
    """time.monotonic for the Lambda contexts, moved only by the test."""

    def __init__(self) -> None:
        self.now, self.readers = 0.0, set()

    def monotonic(self) -> float:
        self.readers.add(threading.get_ident())
        return self.now

    def strftime(self, *args):
        return time.strftime(*args)


def test_an_event_waiting_for_an_environment_keeps_its_whole_time_budget(tmp_path, monkeypatch):
    from dripline_local import lambda_runtime

    clock = FakeMonotonic()
    monkeypatch.setattr(lambda_runtime, "time", clock)
    budget = _function(tmp_path, BUDGET_HANDLER, "budget", timeout=1, one_environment=True)
    pause = threading.Event()  # never set: a sleep

    def first_event_works_half_a_second() -> None:
        # once the second event has arrived (its context made, were it made on arrival),
        # or after a while if it waits for the environment as it should
        budget.handler().__globals__["work"] = None
        deadline = 50
        while deadline and len(clock.readers) < 2:
            pause.wait(0.01)
            deadline -= 1
        clock.now += 0.5

    budget.handler().__globals__["work"] = first_event_works_half_a_second
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(budget.invoke, {})
        while not clock.readers:  # the first event is running
            pause.wait(0.001)
        second = pool.submit(budget.invoke, {})
        answers = [first.result(), second.result()]

    # then the second's second counted from when it got the environment, not from arrival
    assert answers == [1000, 1000]


@pytest.mark.parametrize("reserved", [None, 2])
def test_other_functions_overlap_up_to_their_reserved_concurrency(tmp_path, reserved):
    # two processor ticks overlap in Lambda (two environments); they must overlap here too
    overlap = _function(tmp_path, OVERLAP_HANDLER, f"reserved{reserved}", timeout=5, reserved_concurrency=reserved)
    at_once = reserved or 6
    overlap.handler().__globals__["together"] = threading.Barrier(at_once, timeout=10)
    with ThreadPoolExecutor(6) as pool:
        most = list(pool.map(lambda _: overlap.invoke({}), range(12)))
    assert max(most) == at_once


@pytest.mark.e2e
def test_concurrent_requests_to_the_local_stack_are_each_served_from_their_own_body(local_stack):
    """The failure seen in test_local_fanout: a fresh address answered 409 naming another
    contact, because its request was served from another thread's event."""
    from dripline_local.client import LocalClient

    team = f"env-{uuid.uuid4().hex[:8]}"
    token = local_stack.client().token_for(team)
    addresses = [f"p{i}.{team}@example.com" for i in range(200)]

    def post(address: str) -> tuple[str, int, dict]:
        client = LocalClient(local_stack.url, token)
        status, body = client.request("POST", "/contacts", {"email": address, "first_name": address.split(".")[0]})
        return address, status, body

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, addresses))

    wrong = [(a, s, b) for a, s, b in answers if s != 201 or b["email"] != a or b["first_name"] != a.split(".")[0]]
    assert wrong == [], local_stack.log_tail()
    client, listed, token = local_stack.client(team), set(), ""
    while token is not None:
        page = client.call("GET", "/contacts?limit=100" + (f"&next_token={quote(token)}" if token else ""))
        listed |= {c["email"] for c in page["items"]}
        token = page["next_token"]
    assert listed == set(addresses)
