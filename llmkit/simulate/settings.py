"""What a simulator run is told: seed, profile, fault rates, pace (lesson 0, ``llmkit simulate``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

#: ``full``: all three providers' APIs; ``chat-completions-only``: what an OpenAI-compatible local server
#: (Ollama, vLLM, llama.cpp) answers, Chat Completions and the models list, a 404 for everything else.
PROFILES = ("full", "chat-completions-only")


@dataclass(frozen=True)
class SimSettings:
    """One simulator's knobs. Rates are probabilities per request and default to 0, so a rehearsal is
    deterministic for its seed; ``speed`` scales the seeded delays (0: none, 1: as drawn)."""

    seed: int = 0
    profile: str = "full"
    refusal_rate: float = 0.0
    cut_rate: float = 0.0
    error_rate: float = 0.0
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"simulator profile {self.profile!r} is unknown; choose one of {', '.join(PROFILES)}.")
        for name in ("refusal_rate", "cut_rate", "error_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"simulator {name}={rate} is not a probability; give a number from 0 to 1.")
        if self.speed < 0:
            raise ConfigError(f"simulator speed={self.speed} is negative; use 0 (no delay) or more.")
