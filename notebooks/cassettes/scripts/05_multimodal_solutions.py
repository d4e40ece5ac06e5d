"""Script for the worked solutions of lesson 05 (provenance: scripted).

Token counts follow the documented formulas, as in the lesson's script: the request's text at ~4
characters per token plus a few tokens of framing, each image by ``llmkit.multimodal.estimate_image_tokens``
(read from the image actually sent).
"""

from llmkit import multimodal as mm
from llmkit.replay.canonical import replace_blobs
from llmkit.replay.scripted import Reply, estimate_tokens

CHANGED = ("In the second screenshot the Filter papers line shows $3.20 instead of $NaN and the total reads "
           "$15.70, so the missing-price bug is fixed; the layout is otherwise unchanged.")


def _images(body):
    found = []
    replace_blobs(body, lambda ref, data, media: found.append(data))
    return found


def reply(req):
    images = _images(req.body or {})
    tokens = estimate_tokens(req.last_user_text()) + 8 + sum(
        mm.estimate_image_tokens(*mm.image_size(d), req.provider, req.model) for d in images)
    if "what changed" in req.last_user_text().lower():
        return Reply(text=CHANGED if len(images) == 2 else "I see only one screenshot.", input_tokens=tokens)
    return None
