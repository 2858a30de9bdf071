"""Every artifact is checked against its reference on held-out windows before it is bundled."""

from __future__ import annotations

import numpy as np

from edgekit.export.base import Artifact, ExportError
from edgekit.targets import TargetProfile


def compare(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """Max abs error of the logits, top-1 agreement with the reference, and accuracy of both."""
    return {
        "windows": int(len(labels)),
        "max_abs_error": float(np.max(np.abs(outputs - reference))) if len(outputs) else 0.0,
        "agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
        "accuracy": float(np.mean(outputs.argmax(1) == labels)),
        "reference_accuracy": float(np.mean(reference.argmax(1) == labels)),
    }


def check_thresholds(artifact: Artifact, result: dict, profile: TargetProfile) -> None:
    """Raise ExportError, with the numbers, when an artifact strays further from its reference than allowed."""
    limits = profile.validation
    where = f"{artifact.file} ({artifact.target_format}) vs {artifact.reference}"
    if artifact.precision == "fp32" and result["max_abs_error"] > limits.max_abs_error_fp32:
        raise ExportError(f"{where}: max abs error {result['max_abs_error']:.3g} exceeds "
                          f"{limits.max_abs_error_fp32:g} ({profile.name} validation.max_abs_error_fp32)")
    if artifact.precision == "fp16" and result["max_abs_error"] > limits.max_abs_error_fp16:
        raise ExportError(f"{where}: max abs error {result['max_abs_error']:.3g} exceeds "
                          f"{limits.max_abs_error_fp16:g} ({profile.name} validation.max_abs_error_fp16)")
    if artifact.precision == "int8":
        drop = result["reference_accuracy"] - result["accuracy"]
        if result["agreement"] < limits.min_agreement_int8:
            raise ExportError(f"{where}: top-1 agreement {result['agreement']:.2%} is below "
                              f"{limits.min_agreement_int8:.2%} on {result['windows']} held-out windows "
                              f"(accuracy {result['accuracy']:.2%} vs {result['reference_accuracy']:.2%}); "
                              "see the per-layer report to find the layer that loses precision")
        if drop > limits.max_accuracy_drop_int8:
            raise ExportError(f"{where}: accuracy drops by {drop:.2%} ({result['reference_accuracy']:.2%} -> "
                              f"{result['accuracy']:.2%}), more than {limits.max_accuracy_drop_int8:.2%}")
