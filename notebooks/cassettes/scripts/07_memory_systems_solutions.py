"""Script for the worked solutions of lesson 07 (provenance: scripted).

Exercise 2 needs a consolidation model that answers in prose: asked for a summary, this one replies with a
friendly sentence, which the consolidator must reject because it is not the JSON it asked for.
"""

from llmkit.replay.scripted import Reply


def reply(req):
    if "summarise maya" in req.last_user_text().lower():
        return Reply(text="Maya is a cat owner who lives in Porto and loves her balcony.")
    return None
