"""Evaluation of model outputs against converted or built datasets.

Detections: HICO-DET mAP (official protocol and named variants; ``hico``) and SWIG-HOI mAP
(``swig``). Answers to SFT or HOI-QA questions: grounding AR (``grounding``), referring verb sets
(``referring``), HOI-QA accuracy (``hoiqa``). Completions scored with the hierarchical reward RL
trains with (``score``). Shared: the completions reader (``completions``) and the report base
(``report``). The HICO-DET API is re-exported here; the others are imported from their modules.
"""

from hoidata.eval.groundtruth import GroundTruth, load_ground_truth
from hoidata.eval.hico import eval_hico, evaluate, match
from hoidata.eval.hico_report import HicoReport
from hoidata.eval.predictions import (
    PREDICTIONS_SCHEMA,
    Detections,
    read_predictions,
    to_detections,
    write_predictions,
)
from hoidata.eval.protocol import THRESHOLDS, VARIANTS, HicoProtocol, get_protocol
from hoidata.eval.result_files import read_ppdm_results, write_ppdm_results

__all__ = [
    "PREDICTIONS_SCHEMA",
    "THRESHOLDS",
    "VARIANTS",
    "Detections",
    "GroundTruth",
    "HicoProtocol",
    "HicoReport",
    "eval_hico",
    "evaluate",
    "get_protocol",
    "load_ground_truth",
    "match",
    "read_ppdm_results",
    "read_predictions",
    "to_detections",
    "write_ppdm_results",
    "write_predictions",
]
