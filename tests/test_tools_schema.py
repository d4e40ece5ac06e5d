"""@tool: JSON schema from type hints and docstrings, provider formats, argument validation (lesson 3)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Literal

import pytest
from pydantic import BaseModel

from llmkit import chat
from llmkit.tools import Tool, ToolArgumentError, tool


class Priority(StrEnum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    street: str
    postcode: str | None = None


@tool
def create_ticket(title: str, tags: list[str], priority: Priority = Priority.LOW, address: Address | None = None,
                  channel: Literal["email", "sms"] = "email", due_days: int | None = None) -> dict:
    """Open a support ticket.

    A second paragraph that is not part of the description.

    Args:
        title: Short summary of the problem.
        tags: Labels for routing,
            several allowed.
        priority: How urgent it is.
    """
    return {"title": title, "tags": tags, "priority": priority.value, "address": address, "due": due_days}


def test_schema_covers_nested_optional_enum_and_list() -> None:
    s = create_ticket.parameters
    assert create_ticket.name == "create_ticket"
    assert create_ticket.description == "Open a support ticket."
    assert s["type"] == "object" and s["required"] == ["title", "tags"]
    assert s["additionalProperties"] is False
    props = s["properties"]
    assert props["title"] == {"type": "string", "description": "Short summary of the problem."}
    assert props["tags"]["type"] == "array" and props["tags"]["items"] == {"type": "string"}
    assert props["tags"]["description"] == "Labels for routing, several allowed."
    assert props["priority"]["enum"] == ["low", "high"] and props["priority"]["description"] == "How urgent it is."
    assert props["channel"]["enum"] == ["email", "sms"]
    # Optional[...] = None is simply "not required", and nested models are inlined (no $ref anywhere)
    assert props["due_days"]["type"] == "integer"
    assert props["address"]["type"] == "object"
    assert props["address"]["required"] == ["street"]
    assert "$ref" not in json.dumps(s) and "$defs" not in json.dumps(s)


def test_each_provider_format() -> None:
    assert create_ticket.openai()["function"]["parameters"] is create_ticket.parameters
    assert create_ticket.openai()["type"] == "function"
    responses = create_ticket.openai_responses()
    assert responses["name"] == "create_ticket" and "function" not in responses
    assert create_ticket.anthropic()["input_schema"] is create_ticket.parameters
    assert create_ticket.gemini()["parameters_json_schema"] is create_ticket.parameters
    # llmkit.chat renders Tool objects the same way
    assert chat.render_tools("anthropic", [create_ticket]) == [create_ticket.anthropic()]
    assert chat.render_tools("openai", [create_ticket]) == [create_ticket.openai()]


def test_validate_builds_typed_arguments() -> None:
    kwargs = create_ticket.validate('{"title": "Broken", "tags": ["a"], "priority": "high", '
                                    '"address": {"street": "Main St 1"}}')
    assert kwargs["priority"] is Priority.HIGH
    assert isinstance(kwargs["address"], Address) and kwargs["address"].street == "Main St 1"
    assert create_ticket(**kwargs)["priority"] == "high"


@pytest.mark.parametrize(("arguments", "fragment"), [
    ('{"title": "x", ', "not valid JSON"),
    ('["x"]', "must be a JSON object"),
    ('{"title": 3, "tags": ["a"]}', "title"),
    ('{"title": "x"}', "tags: Field required"),
    ('{"title": "x", "tags": [], "priority": "urgent"}', "priority"),
    ('{"title": "x", "tags": [], "colour": "red"}', "colour: Extra inputs are not permitted"),
])
def test_invalid_arguments_explain_themselves(arguments: str, fragment: str) -> None:
    with pytest.raises(ToolArgumentError, match=None) as info:
        create_ticket.validate(arguments)
    assert fragment in str(info.value)


def test_decorator_options_and_untyped_parameters() -> None:
    @tool(name="send", side_effects=True)
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        return "sent"

    assert isinstance(send_email, Tool) and send_email.name == "send" and send_email.side_effects
    assert send_email("a", "b") == "sent"
    with pytest.raises(TypeError, match="no type hint"):
        @tool
        def untyped(city):  # noqa: ANN001
            """Nothing."""


def test_field_defaults_carry_bounds_into_schema_and_validation() -> None:
    from pydantic import Field

    @tool
    def query(customer: str, limit: int = Field(10, ge=1, le=100)) -> int:
        """Query.

        Args:
            limit: Maximum rows.
        """
        return limit

    prop = query.parameters["properties"]["limit"]
    assert (prop["minimum"], prop["maximum"], prop["default"], prop["description"]) == (1, 100, 10, "Maximum rows.")
    assert query.validate('{"customer": "a"}')["limit"] == 10
    with pytest.raises(ToolArgumentError, match="limit"):
        query.validate('{"customer": "a", "limit": 500}')
