"""Script for lesson 05's cassette (provenance: scripted).

Input token counts follow each provider's documented formulas: the request's text at ~4 characters per
token plus a few tokens of framing, images by ``llmkit.multimodal.estimate_image_tokens`` (the size is
read from the image actually sent). Live recordings carry the providers' own numbers instead.
"""

from llmkit import multimodal as mm
from llmkit.replay.canonical import replace_blobs
from llmkit.replay.scripted import Reply, estimate_tokens

ANALYSIS = (
    "The screenshot shows a cart with two visible bugs, and the code explains both.\n\n"
    "1. **\"$NaN\" for Filter papers and the total.** `formatPrice` reads `item.priceCents`, but the second "
    "item arrives from the API as `price_cents` (snake case), so `priceCents` is `undefined` and "
    "`undefined / 100` is `NaN`; `cartTotal` adds that `NaN` to everything. Normalise the API payload once "
    "(or validate it with a schema) and fail loudly on a missing price.\n"
    "2. **\"$12.5\" instead of \"$12.50\".** `(cents / 100).toString()` drops the trailing zero. Use "
    "`Intl.NumberFormat('en-US', {style: 'currency', currency: 'USD'})` — and keep money in integer cents "
    "until you format it.\n\n"
    "The checkout button is enabled although the total is invalid; disable it while `Number.isNaN(total)`."
)
NO_IMAGE = ("I can't see a screenshot in your message — only the code. From the code alone: `formatPrice` "
            "returns `$NaN` when `priceCents` is missing, and `toString()` drops trailing zeros.")
DESCRIBE = ("A mobile shopping-cart screen: two items with prices, one shown as $NaN, a $NaN total and a "
            "checkout button.")


def _images(body):
    found = []
    replace_blobs(body, lambda ref, data, media: found.append(data))
    return found


def _text_tokens(req):
    return estimate_tokens(req.last_user_text()) + 8


def reply(req):
    body = req.body or {}
    images = _images(body)
    tokens = _text_tokens(req) + sum(
        mm.estimate_image_tokens(*mm.image_size(d), req.provider, req.model) for d in images)
    text = req.last_user_text().lower()
    if req.api in ("count_tokens", "count_gemini"):
        return Reply(input_tokens=tokens)
    if "describe" in text and images:
        answer = DESCRIBE
    elif "related code" in text:
        answer = ANALYSIS if images else NO_IMAGE
    else:
        return None  # anything else is deliberately unrecorded
    return Reply(text=answer, input_tokens=tokens, ttft_ms=900.0 if images else 420.0, tokens_per_s=80.0)
