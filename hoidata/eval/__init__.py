"""Evaluation of model predictions: HICO-DET mAP (official protocol and named variants)."""

from hoidata.eval.groundtruth import GroundTruth, load_ground_truth
from hoidata.eval.hico import eval_hico, evaluate, match
from hoidata.eval.predictions import (
    PREDICTIONS_SCHEMA,
    Detections,
    read_ppdm_results,
    read_predictions,
    to_detections,
    write_ppdm_results,
    write_predictions,
)
from hoidata.eval.protocol import THRESHOLDS, VARIANTS, HicoProtocol, get_protocol
from hoidata.eval.report import HicoReport

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
