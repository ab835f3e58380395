"""Optimizers for prompt tuning."""

from keras_prompt.optimizers.adafactor import Adafactor

__all__ = ["Adafactor"]
