"""Where a model runs: the one reading of a device setting (`train.device`, `agentrl eval --device`, SFT's
`train.device`), shared by sampling (`inference.sampling_policy`) and training (`train.distributed.train_device`)."""

from __future__ import annotations

import os
import re

import torch

from agentrl.core.errors import UsageError

DEVICE_CHOICES = "auto | cpu | cuda | cuda:N"
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"  # what a device setting may say


class DeviceError(UsageError, RuntimeError):
    """A device setting this machine cannot honour (cuda without a GPU, cuda:N past the last one). A UsageError (the
    CLI exits 2 with the message) and a RuntimeError (what the trainer raised before the two readings were one)."""


def pick_device(choice: str, option: str = "device") -> torch.device:
    """`choice` as a torch device: auto is this process's GPU (cuda:LOCAL_RANK under torchrun, else the current one)
    where CUDA exists, else the CPU; cuda is that GPU; cuda:N that one; cpu the CPU. `option` names the setting in
    errors (train.device, --device)."""
    if not re.fullmatch(DEVICE_PATTERN, choice):
        raise DeviceError(f"{option}={choice}: a device is one of {DEVICE_CHOICES}")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"{option}={choice} but torch sees no CUDA GPU here; use {option}=cpu or auto")
        if choice == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
        if int(choice.split(":")[1]) >= torch.cuda.device_count():
            raise DeviceError(
                f"{option}={choice} but torch sees {torch.cuda.device_count()} CUDA GPU(s) (cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
    return torch.device(choice)
