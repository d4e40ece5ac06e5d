"""Script for the worked solutions of lesson 02 (provenance: scripted): the lesson's own script answers,
with the lesson's pacing (see 02_streaming.py for where that pace comes from).
"""

from pathlib import Path

from llmkit.replay.scripted import load_script

reply = load_script(Path(__file__).with_name("02_streaming.py"))
