"""Choosing device and numeric precision: the one place that decides, for training and for inference.

The choice is a pure function of what was asked for and what the machine
offers, so the CUDA and the bf16-CPU branches are tested on any machine by
passing the capabilities in.

Precision for training (``training.precision: auto``):

- a GPU with bf16 (Ampere and later): bf16 autocast;
- an older GPU: fp16 autocast with a gradient scaler (fp16's narrow range needs one);
- a CPU with native bf16 (``avx512_bf16`` or AMX ``amx_bf16``): bf16 autocast;
- any other CPU: fp32, because bf16 without those instructions is emulated and slower than fp32.

Precision for inference (:func:`inference_plan`):

- evaluation runs fp32, so the golden-set metrics a version is registered with do
  not depend on the worker's CPU;
- serving (``serving.precision: auto``) follows the same rule as training: bf16
  autocast on GPUs and CPUs that compute it natively, fp16 autocast on older GPUs,
  fp32 on other CPUs; ``int8`` is dynamic int8 quantisation of the linear layers, on
  the CPU only. The gateway proves each version in its serving precision on a golden
  sample before routing it traffic, and drift checks embed with the serving plan so
  their reference matches the embeddings the gateway logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# CPU flags (as /proc/cpuinfo names them) of instructions that do bf16 arithmetic natively.
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class Capabilities:
    cuda_available: bool
    bf16_supported: bool  # the CUDA device's
    cpu_bf16_supported: bool = False


@dataclass(frozen=True)
class HardwarePlan:
    device: str  # "cuda" or "cpu"
    precision: str  # "bf16", "fp16" or "fp32"; for inference also "int8"

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    @property
    def fp16(self) -> bool:
        # fp16 autocast runs with a gradient scaler; Trainer (through accelerate) adds it.
        return self.precision == "fp16"

    @property
    def autocast(self) -> bool:
        """Whether the forward pass runs under torch.autocast (bf16 or fp16)."""
        return self.precision in ("bf16", "fp16")

    @property
    def quantized(self) -> bool:
        """Dynamic int8 quantisation of the linear layers (CPU inference only)."""
        return self.precision == "int8"

    def describe(self) -> str:
        return f"{self.device}/{self.precision}"


def cpu_flags_support_bf16(flags: Iterable[str]) -> bool:
    """Whether a CPU with these feature flags computes bf16 natively."""
    return not CPU_BF16_FLAGS.isdisjoint(flags)


def cpuinfo_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first processor in the text of ``/proc/cpuinfo``."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def detect_cpu_bf16() -> bool:
    """/proc/cpuinfo where there is one (Linux); else torch's own CPU feature query."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        return cpu_flags_support_bf16(cpuinfo_flags(cpuinfo.read_text(encoding="utf-8", errors="replace")))
    import torch

    # Private but long-standing (torch >= 2.1); absent ones count as "no".
    queries = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in queries)


def detect_capabilities() -> Capabilities:
    import torch

    cuda = torch.cuda.is_available()
    return Capabilities(
        cuda_available=cuda,
        bf16_supported=cuda and torch.cuda.is_bf16_supported(),
        cpu_bf16_supported=detect_cpu_bf16(),
    )


def plan_hardware(
    requested_device: str,
    requested_precision: str,
    caps: Capabilities,
    setting: str = "training",
) -> HardwarePlan:
    """Resolve 'auto' choices; refuse combinations the machine cannot run (``setting`` names the
    configuration section the error tells the user to change)."""
    if requested_device == "cuda" and not caps.cuda_available:
        raise ValueError(f"{setting}.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    device = (
        "cuda"
        if requested_device == "cuda" or (requested_device == "auto" and caps.cuda_available)
        else "cpu"
    )
    if requested_precision == "int8":
        if setting == "training":
            raise ValueError("training.precision 'int8' is for serving only; use 'auto', 'bf16' or 'fp32'")
        if device == "cuda":
            raise ValueError(
                f"{setting}.precision 'int8' (dynamic quantisation) runs on the CPU only; "
                f"set {setting}.device to 'cpu', or use 'auto', 'bf16' or 'fp16' on the GPU"
            )
        return HardwarePlan(device="cpu", precision="int8")
    if device == "cpu":
        return _plan_cpu(requested_precision, caps, setting)
    if requested_precision == "bf16" and not caps.bf16_supported:
        raise ValueError(f"{setting}.precision 'bf16' is not supported by this GPU; use 'fp16' or 'auto'")
    if requested_precision == "auto":
        return HardwarePlan(device="cuda", precision="bf16" if caps.bf16_supported else "fp16")
    return HardwarePlan(device="cuda", precision=requested_precision)


def _plan_cpu(requested_precision: str, caps: Capabilities, setting: str) -> HardwarePlan:
    if requested_precision == "fp16":
        raise ValueError(
            f"{setting}.precision 'fp16' needs a CUDA device; this run uses the CPU, so use 'auto', "
            "'bf16' (on a CPU with avx512_bf16 or AMX) or 'fp32'"
        )
    if requested_precision == "bf16" and not caps.cpu_bf16_supported:
        raise ValueError(
            f"{setting}.precision 'bf16' on the CPU needs avx512_bf16 or AMX, which this CPU lacks "
            "(bf16 would be emulated and slower than fp32); use 'auto', 'fp32' or, to serve, 'int8'"
        )
    if requested_precision == "auto":
        return HardwarePlan(device="cpu", precision="bf16" if caps.cpu_bf16_supported else "fp32")
    return HardwarePlan(device="cpu", precision=requested_precision)


def inference_plan(
    requested_device: str = "auto",
    caps: Capabilities | None = None,
    requested_precision: str = "fp32",
    setting: str = "serving",
) -> HardwarePlan:
    """Where and how a model scores texts: fp32 by default (evaluation); the gateway and drift checks
    pass ``serving.precision``, resolved by the same rules as training, plus ``int8`` on the CPU."""
    return plan_hardware(requested_device, requested_precision, caps or detect_capabilities(), setting)
