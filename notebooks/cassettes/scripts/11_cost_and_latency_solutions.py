"""Script for the worked solutions of lesson 11 (provenance: scripted): the lesson's own answers.

The solutions send the lesson's requests again (more of them in flight, a smaller cache, a batch of the
20-ticket sample), so the lesson's script answers them unchanged.
"""

import importlib.util
from pathlib import Path

_LESSON = Path(__file__).with_name("11_cost_and_latency.py")
_spec = importlib.util.spec_from_file_location("lesson11_script", _LESSON)
lesson = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lesson)

reply = lesson.reply
