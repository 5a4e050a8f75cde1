import pytest

from modeling.hardware import Capabilities, HardwarePlan, plan_hardware

CPU = Capabilities(cuda_available=False, bf16_supported=False)
AMPERE = Capabilities(cuda_available=True, bf16_supported=True)
TURING = Capabilities(cuda_available=True, bf16_supported=False)


@pytest.mark.parametrize(
    ("device", "precision", "caps", "plan"),
    [
        ("auto", "auto", CPU, HardwarePlan("cpu", "fp32")),
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
        ("auto", "bf16", CPU, "needs a CUDA device"),
        ("auto", "bf16", TURING, "not supported by this GPU"),
    ],
)
def test_impossible_requests_are_refused(
    device: str, precision: str, caps: Capabilities, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_hardware(device, precision, caps)
