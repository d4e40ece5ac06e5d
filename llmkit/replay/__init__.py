"""The replay layer: cassettes, the replay server, the recorder (lesson 0)."""

from .cassette import Cassette, Frame, Interaction, Player, RecordedRequest, RecordedResponse
from .faults import Fault, FaultPlan

__all__ = ["Cassette", "Fault", "FaultPlan", "Frame", "Interaction", "Player", "RecordedRequest",
           "RecordedResponse"]
