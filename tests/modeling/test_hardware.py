import re

import pytest

from modeling.hardware import (
    Capabilities,
    HardwarePlan,
    cpu_flags_support_bf16,
    cpuinfo_flags,
    inference_plan,
    plan_hardware,
)

CPU = Capabilities(cuda_available=False, bf16_supported=False)
BF16_CPU = Capabilities(cuda_available=False, bf16_supported=False, cpu_bf16_supported=True)
AMPERE = Capabilities(cuda_available=True, bf16_supported=True)
TURING = Capabilities(cuda_available=True, bf16_supported=False)


@pytest.mark.parametrize(
    ("device", "precision", "caps", "plan"),
    [
        ("auto", "auto", CPU, HardwarePlan("cpu", "fp32")),
        ("auto", "auto", BF16_CPU, HardwarePlan("cpu", "bf16")),
        ("auto", "bf16", BF16_CPU, HardwarePlan("cpu", "bf16")),
        ("auto", "fp32", BF16_CPU, HardwarePlan("cpu", "fp32")),
        ("auto", "auto", AMPERE, HardwarePlan("cuda", "bf16")),
        ("auto", "auto", TURING, HardwarePlan("cuda", "fp16")),
        ("cpu", "auto", AMPERE, HardwarePlan("cpu", "fp32")),
        ("auto", "fp32", AMPERE, HardwarePlan("cuda", "fp32")),
        ("cuda", "fp16", AMPERE, HardwarePlan("cuda", "fp16")),
    ],
)
def test_plan(device: str, precision: str, caps: Capabilities, plan: HardwarePlan) -> None:
    assert plan_hardware(device, precision, caps) == plan


def test_fp16_uses_the_gradient_scaler_path_and_bf16_does_not() -> None:
    assert HardwarePlan("cuda", "fp16").fp16 and not HardwarePlan("cuda", "fp16").bf16
    assert HardwarePlan("cuda", "bf16").bf16 and not HardwarePlan("cuda", "bf16").fp16


@pytest.mark.parametrize(
    ("device", "precision", "caps", "message"),
    [
        ("cuda", "auto", CPU, "no CUDA device is visible"),
        ("auto", "bf16", CPU, "needs avx512_bf16 or AMX"),
        ("auto", "fp16", CPU, "'fp16' needs a CUDA device"),
        ("auto", "fp16", BF16_CPU, "'fp16' needs a CUDA device"),
        ("auto", "bf16", TURING, "not supported by this GPU"),
    ],
)
def test_impossible_requests_are_refused(
    device: str, precision: str, caps: Capabilities, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_hardware(device, precision, caps)


def test_cpu_bf16_is_read_from_the_cpu_flags() -> None:
    cascade_lake = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_vnni\n\nprocessor\t: 1\n"
    zen4 = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n"
    sapphire_rapids = "flags : avx512f amx_tile amx_bf16 amx_int8\n"
    assert not cpu_flags_support_bf16(cpuinfo_flags(cascade_lake))
    assert cpu_flags_support_bf16(cpuinfo_flags(zen4))
    assert cpu_flags_support_bf16(cpuinfo_flags(sapphire_rapids))
    assert cpuinfo_flags("no flags line here") == set()


@pytest.mark.parametrize("caps", [CPU, BF16_CPU, AMPERE, TURING])
def test_evaluation_scores_in_fp32_whatever_the_machine(caps: Capabilities) -> None:
    # The golden-set metrics a version is registered with do not depend on the worker's CPU.
    assert inference_plan("auto", caps).precision == "fp32"


@pytest.mark.parametrize(
    ("device", "precision", "caps", "plan"),
    [
        ("auto", "auto", CPU, HardwarePlan("cpu", "fp32")),
        ("auto", "auto", BF16_CPU, HardwarePlan("cpu", "bf16")),
        ("auto", "auto", AMPERE, HardwarePlan("cuda", "bf16")),
        ("auto", "auto", TURING, HardwarePlan("cuda", "fp16")),
        ("auto", "int8", CPU, HardwarePlan("cpu", "int8")),
        ("cpu", "int8", AMPERE, HardwarePlan("cpu", "int8")),
        ("auto", "fp32", BF16_CPU, HardwarePlan("cpu", "fp32")),
    ],
)
def test_serving_precision_follows_the_training_rules_plus_int8_on_the_cpu(
    device: str, precision: str, caps: Capabilities, plan: HardwarePlan
) -> None:
    assert inference_plan(device, caps, requested_precision=precision) == plan


@pytest.mark.parametrize(
    ("device", "precision", "caps", "message"),
    [
        ("auto", "int8", AMPERE, "serving.precision 'int8' (dynamic quantisation) runs on the CPU only"),
        ("auto", "bf16", CPU, "serving.precision 'bf16' on the CPU needs avx512_bf16 or AMX"),
        ("cuda", "auto", CPU, "serving.device is 'cuda' but no CUDA device is visible"),
    ],
)
def test_serving_plans_the_machine_cannot_run_are_refused_naming_the_setting(
    device: str, precision: str, caps: Capabilities, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        inference_plan(device, caps, requested_precision=precision)


def test_int8_is_never_a_training_precision() -> None:
    with pytest.raises(ValueError, match="for serving only"):
        plan_hardware("cpu", "int8", CPU)
