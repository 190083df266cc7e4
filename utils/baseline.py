"""The unprocessed input's scores on a validation dataset, and how the model's compare with them.

The baseline is the validation pass with the reference frame (the centre input) as the output, under
the same loss, batching and augmentation as the model's. It is recorded once per run as
`<save>/csv/<DatasetClass>_input_baseline.csv` (the evaluation CSV's columns, epoch 0) next to
`<DatasetClass>_input_baseline.json`, the validation protocol it was computed under: a resumed run
whose protocol is unchanged reads the record instead of computing it again.
"""
import json
import math
import os
from typing import Any, Dict, List, Optional

from utils import files
from utils.records import EpochRecorder, read_csv_rows

RECORD_NAME = "input_baseline"
BASELINE_EPOCH = 0


def csv_filename(root: str, dataset: str) -> str:
    """`<root>/csv/<dataset>_input_baseline.csv`."""
    return os.path.join(root, "csv", f"{dataset}_{RECORD_NAME}.csv")


def protocol_filename(root: str, dataset: str) -> str:
    """`<root>/csv/<dataset>_input_baseline.json`: the protocol the record was computed under."""
    return os.path.join(root, "csv", f"{dataset}_{RECORD_NAME}.json")


def read(root: str, dataset: str, protocol: Dict[str, Any]) -> Optional[Dict[str, float]]:
    """The recorded baseline if it was computed under `protocol`, else None."""
    try:
        with open(protocol_filename(root, dataset), encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError):
        return None
    rows = read_csv_rows(csv_filename(root, dataset))
    if recorded != json.loads(json.dumps(protocol)) or len(rows) != 1:
        return None
    values = {key: float(text) for key, text in rows[0].items() if key not in ("epoch", "step") and text}
    return values or None


def write(root: str, dataset: str, protocol: Dict[str, Any], stats: Dict[str, float],
          records_kwargs: Dict[str, Any]) -> None:
    """Record the baseline (CSV and MAT as --holistic_records_* ask) and the protocol it was computed under."""
    EpochRecorder(None, root=root, epoch=BASELINE_EPOCH, dataset=dataset, **records_kwargs).add_scalars(
        RECORD_NAME, stats)
    files.make_folder(os.path.dirname(protocol_filename(root, dataset)))
    files.write_text(protocol_filename(root, dataset), json.dumps(protocol, indent=2, sort_keys=True) + "\n")


def is_decibel(key: str) -> bool:
    """Whether a loss_dict key is a PSNR in dB (psnr, psnr_rgb, ...)."""
    return "psnr" in key.lower()


def _value(key: str, value: float) -> str:
    return f"{value:.2f}" if is_decibel(key) else f"{value:.4g}"


def compare(key: str, value: float, baseline: Optional[float]) -> str:
    """'psnr 33.08 (input 33.26, -0.18 dB)'; just 'psnr 33.08' without a baseline."""
    if baseline is None or not math.isfinite(baseline):
        return f"{key} {_value(key, value)}"
    if is_decibel(key):
        gain = f"{value - baseline:+.2f} dB"
    elif baseline != 0:
        gain = f"{100.0 * (value - baseline) / abs(baseline):+.1f}%"
    else:
        gain = f"{value - baseline:+.4g}"
    return f"{key} {_value(key, value)} (input {_value(key, baseline)}, {gain})"


def compare_all(stats: Dict[str, float], baseline: Dict[str, float]) -> str:
    """Every key of `stats` compared with the input's, comma-separated."""
    return ", ".join(compare(key, value, baseline.get(key)) for key, value in stats.items())


def gain_over_input(stats: Dict[str, float], baseline: Dict[str, float], keys: List[str]) -> str:
    """'+0.80 dB over input' for the first PSNR among `keys` (then any PSNR key); '' without one."""
    candidates = [k for k in keys if is_decibel(k)] + [k for k in stats if is_decibel(k)]
    for key in candidates:
        if key in stats and key in baseline:
            return f"{key} {stats[key] - baseline[key]:+.2f} dB over input"
    return ""
