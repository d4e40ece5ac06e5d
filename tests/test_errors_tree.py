"""Every exception class llmkit defines lives in ``llmkit.errors`` under ``LlmkitError`` (lesson 0).

The walk imports every module of the package, so a new ``class SomethingError(Exception)`` anywhere
in llmkit fails here until it moves to ``llmkit.errors``; old import locations stay as re-exports.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import llmkit
from llmkit import errors
from llmkit.errors import LlmkitError


def _all_modules() -> list[str]:
    names = [llmkit.__name__]
    for info in pkgutil.walk_packages(llmkit.__path__, prefix=f"{llmkit.__name__}."):
        names.append(info.name)
    return names


def _defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class reachable as an attribute of an llmkit module and defined inside llmkit."""
    found: dict[str, type[BaseException]] = {}
    for name in _all_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) \
                    and value.__module__.split(".")[0] == "llmkit":
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_the_walk_sees_the_whole_package() -> None:
    modules = _all_modules()
    assert {"llmkit.kit", "llmkit.resilience._errors", "llmkit.memory._errors", "llmkit.replay.server",
            "llmkit.server.app", "llmkit.tools._tool"} <= set(modules)
    assert len(_defined_exceptions()) >= 20


def test_every_exception_llmkit_defines_is_an_llmkit_error_defined_in_llmkit_errors() -> None:
    offenders = {where: cls for where, cls in _defined_exceptions().items()
                 if not issubclass(cls, LlmkitError) or cls.__module__ != "llmkit.errors"}
    assert not offenders, f"move these into llmkit.errors under LlmkitError: {sorted(offenders)}"


def test_every_class_of_llmkit_errors_is_listed_and_drawn() -> None:
    classes = {n for n, v in vars(errors).items() if inspect.isclass(v) and issubclass(v, BaseException)}
    assert classes == set(errors.__all__)
    for name in classes:
        assert name in (errors.__doc__ or ""), f"{name} is missing from the tree in llmkit.errors' docstring"


@pytest.mark.parametrize("where, name", [
    ("llmkit.resilience", "CallFailed"), ("llmkit.resilience", "CircuitOpen"),
    ("llmkit.resilience", "ContentRefused"), ("llmkit.resilience", "AllRoutesFailed"),
    ("llmkit.resilience", "StreamInterrupted"), ("llmkit.resilience", "ResilienceError"),
    ("llmkit.memory", "MemorySystemError"), ("llmkit.memory", "MemoryDatabaseError"),
    ("llmkit.memory", "EmbedderError"), ("llmkit.memory", "ConsolidationError"),
    ("llmkit.tools", "ToolArgumentError"), ("llmkit.structured", "StructuredOutputFailed"),
    ("llmkit.conversation", "BudgetError"), ("llmkit.multimodal", "ImageError"),
])
def test_old_import_locations_still_work(where: str, name: str) -> None:
    assert getattr(importlib.import_module(where), name) is getattr(errors, name)


def test_value_errors_stay_value_errors() -> None:
    """Code that caught ``ValueError`` before the move still catches these."""
    for cls in (errors.ConfigError, errors.ToolArgumentError, errors.BudgetError, errors.ImageError):
        assert issubclass(cls, ValueError)
    assert issubclass(errors.NetworkBlockedError, ConnectionError)


def test_classify_recognises_the_error_event_by_type_not_by_name() -> None:
    from llmkit.events import ProviderError
    from llmkit.resilience import ErrorKind, classify

    event = ProviderError(529, "overloaded_error", "Overloaded")
    assert classify(event).kind is ErrorKind.OVERLOADED and classify(event).retryable

    class ProviderError2:  # a look-alike with the same attributes is not llmkit's event
        status, type, message, code = 529, "overloaded_error", "Overloaded", None

    ProviderError2.__name__ = "ProviderError"
    assert classify(ProviderError2()).kind is ErrorKind.UNKNOWN

    wrapped = errors.StreamErrorEvent(event)
    assert classify(wrapped) is wrapped.error and wrapped.event is event
