"""Function calling: ``@tool`` → JSON schema → each provider's format, and the tool-call loop.

Introduced in lesson 3 (03_function_calling)::

    @tool
    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
        \"\"\"Current weather for a city.\"\"\"

    run = run_tools(kit, "anthropic", [chat.user("Weather in Oslo?")], [get_weather])
    run.text, run.rounds, run.outcomes
"""

from ._loop import Round, ToolOutcome, ToolRun, arun_tools, execute_calls, execute_calls_sync, run_tools
from ._tool import Tool, ToolArgumentError, inline_refs, tool

__all__ = [
    "Round",
    "Tool",
    "ToolArgumentError",
    "ToolOutcome",
    "ToolRun",
    "arun_tools",
    "execute_calls",
    "execute_calls_sync",
    "inline_refs",
    "run_tools",
    "tool",
]
