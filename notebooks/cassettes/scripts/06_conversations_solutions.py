"""Script for the worked solutions of lesson 06 (provenance: scripted): the lesson's own script answers.

The scripted model "remembers" only what is in the request; token counts are the renderer's ~4
chars/token estimate of each request, as in the lesson.
"""

from pathlib import Path

from llmkit.replay.scripted import load_script

reply = load_script(Path(__file__).with_name("06_conversations.py"))
