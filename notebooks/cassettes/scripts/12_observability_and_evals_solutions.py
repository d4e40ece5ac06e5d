"""Script for the worked solutions of lesson 12 (provenance: scripted): the lesson's own answers.

The solutions ask the lesson's questions again (the support prompt, the judge, one Anthropic call with a
conversation id), so the lesson's script answers them unchanged.
"""

import importlib.util
from pathlib import Path

_LESSON = Path(__file__).with_name("12_observability_and_evals.py")
_spec = importlib.util.spec_from_file_location("lesson12_script", _LESSON)
lesson = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lesson)

reply = lesson.reply
