"""Box-then-answer traces (the VisRL form): the model first names the region its question needs, as a
box in its profile's frame, is shown that region cropped, then answers.

    user       [image] {question} {BOX_INSTRUCTION}
    assistant  <box>[x1, y1, x2, y2]</box>
    user       [crop] The region <box>: …
    assistant  <answer>{answer}</answer>

``build-sft box-answer`` writes these (the warm-up data); ``gen-prefs`` samples the first assistant
turn, crops what it names and samples the last one. One module, so both speak the same words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from PIL import Image

from hoidata.profiles import Profile
from hoidata.profiles.text import ANSWER
from hoidata.sft.messages import IMAGE_BLOCK, message, text, to_arrow
from hoidata.sft.tasks import Interactions, Units
from hoidata.tools.zoom import crop

BOX_TAGS = ("<box>", "</box>")
BOX_INSTRUCTION = (
    "First name the region of the image you need to answer, as a box inside <box></box>; you will "
    "then see that region up close. Then give the final answer inside <answer></answer>."
)
_BOX_BLOCK = re.compile(r"<box>(.*?)</box>", re.S)


def ask(question: str) -> str:
    return f"{question}\n{BOX_INSTRUCTION}"


def box_turn(profile: Profile, model_box: np.ndarray) -> str:
    return f"{BOX_TAGS[0]}{profile.box_text(model_box)}{BOX_TAGS[1]}"


def crop_text(profile: Profile, model_box: np.ndarray) -> str:
    return f"The region {profile.box_text(model_box)}, up close. Answer the question."


def answer_turn(answer: str) -> str:
    return f"{ANSWER[0]}{answer}{ANSWER[1]}"


def conversation(question: str, box: str, crop: str, answer: str | None) -> list[dict]:
    """The messages of one trace (the image and the crop as placeholders); without ``answer``: the
    prompt the answer is sampled from."""
    turns = [
        message("user", [IMAGE_BLOCK, text(ask(question))]),
        message("assistant", [text(box)]),
        message("user", [IMAGE_BLOCK, text(crop)]),
    ]
    return turns + ([message("assistant", [text(answer_turn(answer))])] if answer is not None else [])


def first_box(completion: str, profile: Profile, width: float, height: float) -> np.ndarray | None:
    """The box a box turn names, in canonical pixels (inside ``<box>`` when there is one, else the
    first box written anywhere); None when it names none or a degenerate one."""
    found = _BOX_BLOCK.search(completion)
    boxes = profile.parse_boxes(found.group(1) if found else completion, width, height)
    if not len(boxes):
        return None
    box = np.clip(boxes[0], 0, [width, height, width, height])
    return box if box[2] > box[0] and box[3] > box[1] else None


def box_answer_columns(
    it: Interactions,
    units: Units,
    profile: Profile,
    width: np.ndarray,
    height: np.ndarray,
    load_image: Callable[[int], Image.Image],
    encode: Callable[[Image.Image], bytes],
) -> tuple[pa.ListArray, list[bytes | None]]:
    """(messages, crop bytes) of pair units asked box first; the box is the pair's union (the
    person's box where the boxes stage left the union null); width/height per sample."""
    f = units.first
    target = np.where(it.union_null[f][:, None], it.model_person[f], it.model_union[f])
    questions, answers = units.question.to_pylist(), units.answer.to_pylist()
    conversations, crops = [], []
    cached: tuple[int, Image.Image] | None = None
    for i in range(len(units)):
        row = int(units.row[i])
        if cached is None or cached[0] != row:
            cached = (row, load_image(row))
        region = profile.from_model(target[i : i + 1], width[i], height[i])[0]
        crops.append(encode(crop(cached[1], region, min_size=profile.factor)))
        conversations.append(
            conversation(
                questions[i], box_turn(profile, target[i]), crop_text(profile, target[i]), answers[i]
            )
        )
    return to_arrow(conversations), crops
