"""A model for tests (``--model tests.wide_model:build``): a conv layer of 512 channels on 1x32x32 digits, like the
widest layers of a ResNet, small enough for a CPU."""
from __future__ import annotations

import torch
from torch import nn


def build() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(1, 8, 3, padding=1))
    model.add_module("relu", nn.ReLU())
    model.add_module("wide", nn.Conv2d(8, 512, 3, stride=4, padding=1))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("logits", nn.Linear(512, 10))
    model.input_shape = (1, 32, 32)
    return model
