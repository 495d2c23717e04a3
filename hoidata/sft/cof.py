"""Chain-of-focus samples: think, call ``zoom_in`` on the person–object region, look at the real
crop, then answer. The reasoning before the tool result describes only what boxes show (where the
object is), never the action; the answer comes after the crop.

TRL's vision collator fills image placeholders only outside ``tool`` messages, so the tool's answer
is stored as the user turn the Qwen chat templates render a tool message as
(``<tool_response>\\n`` … ``\\n</tool_response>``): the same tokens, and the crop is a real image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from PIL import Image

from hoidata.profiles import Profile
from hoidata.profiles.text import ANSWER, THINK
from hoidata.sft import prompts
from hoidata.sft.messages import IMAGE_BLOCK, message, text, to_arrow
from hoidata.sft.tasks import Interactions, Units, display
from hoidata.tools import spatial
from hoidata.tools.environment import tool_schemas
from hoidata.tools.zoom import ZOOM_TOOL, crop, zoom_result_text

# every tool of the environment, as GRPO's environment_factory renders them: one system prompt for both
TOOLS_JSON = orjson.dumps(tool_schemas()).decode()


def cof_columns(
    it: Interactions,
    units: Units,
    profile: Profile,
    seed: int,
    tool_share: float,
    sample_ids: pa.Array,
    width: np.ndarray,
    height: np.ndarray,
    load_image: Callable[[int], Image.Image],
    encode: Callable[[Image.Image], bytes],
) -> tuple[pa.ListArray, list[bytes | None], np.ndarray]:
    """(messages, crop bytes per sample or None, uses_tool) for pair units; width/height per sample."""
    f = units.first
    uses_tool = prompts.uniform(sample_ids, seed, "cof-tool") < tool_share
    relation = pa.array(spatial.describe(it.person[f], it.object_box[f]), pa.string())
    fields: dict[str, Any] = {
        "person": profile.box_texts(it.model_person[f]),
        "object_box": profile.box_texts(it.model_object[f]),
        "object": display(it.object_label.take(pa.array(f)).fill_null("object")),
        "relation": relation,
    }
    plan = prompts.fill("cof_plan", prompts.choose(sample_ids, seed, 1 << 20, "cof-plan"), fields).to_pylist()
    after = prompts.fill("cof_after_tool", prompts.choose(sample_ids, seed, 1 << 20, "cof-after"), fields)
    direct = prompts.fill("cof_direct", prompts.choose(sample_ids, seed, 1 << 20, "cof-direct"), fields)
    zoom = np.where(it.union_null[f][:, None], it.model_person[f], it.model_union[f])
    questions, answers = units.question.to_pylist(), units.answer.to_pylist()
    after_l, direct_l = after.to_pylist(), direct.to_pylist()
    conversations, crops = [], []
    cached: tuple[int, Image.Image] | None = None
    for i in range(len(units)):
        answer = f"{ANSWER[0]}{answers[i]}{ANSWER[1]}"
        user = message("user", [IMAGE_BLOCK, text(prompts.with_cot_instruction(questions[i]))])
        if not uses_tool[i]:
            conversations.append(
                [user, message("assistant", [text(f"{THINK[0]}{direct_l[i]}{THINK[1]}{answer}")])]
            )
            crops.append(None)
            continue
        row = int(units.row[i])
        if cached is None or cached[0] != row:
            cached = (row, load_image(row))
        region = profile.from_model(zoom[i : i + 1], width[i], height[i])[0]
        crops.append(encode(crop(cached[1], region, min_size=profile.factor)))
        call = {
            "type": "function",
            "function": {
                "name": ZOOM_TOOL,
                "arguments": orjson.dumps({"bbox_2d": zoom[i].tolist()}).decode(),
            },
        }
        conversations.append(
            [
                user,
                message("assistant", [text(f"{THINK[0]}{plan[i]}{THINK[1]}")], [call]),
                message(
                    "user",
                    [
                        text("<tool_response>\n"),
                        IMAGE_BLOCK,
                        text(zoom_result_text(zoom[i]) + "\n</tool_response>"),
                    ],
                ),
                message("assistant", [text(f"{THINK[0]}{after_l[i]}{THINK[1]}{answer}")]),
            ]
        )
    return to_arrow(conversations), crops, uses_tool
