"""Choosing device and numeric precision: the one place that decides, for training and for inference.

The choice is a pure function of what was asked for and what the machine
offers, so the CUDA branches are tested on a CPU-only machine by passing the
capabilities in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    cuda_available: bool
    bf16_supported: bool


@dataclass(frozen=True)
class HardwarePlan:
    device: str  # "cuda" or "cpu"
    precision: str  # "bf16", "fp16" or "fp32"

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    @property
    def fp16(self) -> bool:
        # fp16 autocast runs with a gradient scaler; Trainer (through accelerate) adds it.
        return self.precision == "fp16"


def detect_capabilities() -> Capabilities:
    import torch

    cuda = torch.cuda.is_available()
    return Capabilities(
        cuda_available=cuda,
        bf16_supported=cuda and torch.cuda.is_bf16_supported(),
    )


def plan_hardware(requested_device: str, requested_precision: str, caps: Capabilities) -> HardwarePlan:
    """Resolve 'auto' choices; refuse combinations the machine cannot run."""
    if requested_device == "cuda" and not caps.cuda_available:
        raise ValueError("training.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    device = (
        "cuda"
        if requested_device == "cuda" or (requested_device == "auto" and caps.cuda_available)
        else "cpu"
    )
    if device == "cpu":
        if requested_precision in {"bf16", "fp16"}:
            raise ValueError(
                f"training.precision '{requested_precision}' needs a CUDA device; "
                "this run uses the CPU, so use 'auto' or 'fp32'"
            )
        return HardwarePlan(device="cpu", precision="fp32")
    if requested_precision == "bf16" and not caps.bf16_supported:
        raise ValueError("training.precision 'bf16' is not supported by this GPU; use 'fp16' or 'auto'")
    if requested_precision == "auto":
        return HardwarePlan(device="cuda", precision="bf16" if caps.bf16_supported else "fp16")
    return HardwarePlan(device="cuda", precision=requested_precision)


def inference_plan(requested_device: str = "auto", caps: Capabilities | None = None) -> HardwarePlan:
    """Where and how evaluation, serving and drift checks run a model: fp32 on the chosen device."""
    return plan_hardware(requested_device, "fp32", caps or detect_capabilities())
