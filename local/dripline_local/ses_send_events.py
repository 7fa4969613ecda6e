"""SES `Send` events for the emulator: what SES publishes to EventBridge when it accepts
an email of the configuration set (moto publishes none).

Fed by `FaultInjector.on_effect`, so an email whose answer the processor lost still gets
its event, as in AWS. Events are queued and delivered to the ses_events handler when the
caller says (EventBridge is asynchronous: a test or the chaos run picks the moment).
"""
from __future__ import annotations

import threading
import uuid
from typing import Any

from dripline import clock
from dripline_local.faults import Call


class SendEvents:
    def __init__(self, configuration_set: str = "dripline") -> None:
        self.configuration_set = configuration_set
        self.pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def observe(self, call: Call, answer: dict[str, Any]) -> None:
        """An `on_effect` callback: queue the Send event of an accepted SendEmail."""
        if (call.service, call.operation) != ("sesv2", "SendEmail") or "MessageId" not in answer:
            return
        event = send_event(call.params, answer["MessageId"], self.configuration_set)
        with self._lock:
            self.pending.append(event)

    def take(self) -> list[dict[str, Any]]:
        """The events queued so far (each once)."""
        with self._lock:
            events, self.pending = self.pending, []
        return events


def send_event(params: dict[str, Any], message_id: str, configuration_set: str) -> dict[str, Any]:
    """The EventBridge event of SES accepting the SendEmail request `params`."""
    tags = {"ses:configuration-set": params.get("ConfigurationSetName") or configuration_set}
    tags.update({tag["Name"]: tag["Value"] for tag in params.get("EmailTags") or []})
    destination = (params.get("Destination") or {}).get("ToAddresses", [])
    return accepted_event(message_id, clock.iso(clock.now()), tags, params.get("FromEmailAddress"), destination)


def accepted_event(message_id: str, stamp: str, tags: dict[str, str], source: str | None, destination: list[str]) -> dict[str, Any]:
    """The EventBridge `Send` event of a message SES accepted at `stamp` (ISO 8601)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Email Sent",
        "source": "aws.ses",
        "time": stamp,
        "detail": {
            "eventType": "Send",
            "mail": {
                "timestamp": stamp,
                "source": source,
                "messageId": message_id,
                "destination": destination,
                "tags": {name: [value] for name, value in tags.items()},
            },
            "send": {},
        },
    }
