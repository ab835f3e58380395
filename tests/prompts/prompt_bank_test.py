"""Named prompts of one backbone (the Keras-side bank)."""

import numpy as np
import pytest

from keras_prompt import PromptedT5Seq2SeqLM
from keras_prompt.prompts import PromptFileError
from keras_prompt.prompts.prompt_bank import PromptBank
from tests.conftest import make_tiny_backbone


def test_tasks_by_name_or_id_in_insertion_order():
    bank = PromptBank(2, 3)
    a, b = np.zeros((2, 3)), np.ones((2, 3))
    assert bank.add("a", a) == 0 and bank.add("b", b) == 1
    assert bank.names == ["a", "b"] and len(bank) == 2 and "a" in bank
    np.testing.assert_array_equal(bank.task_ids(["b", 0, "a"]), [1, 0, 0])
    np.testing.assert_array_equal(bank.select(["b", "a"]), [b, a])
    assert bank.prompts().dtype == np.float32 and bank.source("a") == "<array>"
    bank.remove("a")
    assert bank.names == ["b"]


@pytest.mark.parametrize("tasks,message", [
    (["nope"], "Unknown tasks \\['nope'\\]"),
    ([2], "out of range"),
    ([-1], "out of range"),
])
def test_unknown_tasks_are_named(tasks, message):
    bank = PromptBank(2, 3)
    bank.add("a", np.zeros((2, 3)))
    with pytest.raises(ValueError, match=message):
        bank.select(tasks)


@pytest.mark.parametrize("name,prompt,message", [
    ("7", np.zeros((2, 3)), "Invalid task name"),
    ("ok", np.zeros((3, 3)), "must have shape"),
    ("ok", np.full((2, 3), np.nan), "NaN"),
])
def test_bad_prompts_and_names_are_refused(name, prompt, message):
    with pytest.raises(ValueError, match=message):
        PromptBank(2, 3).add(name, prompt)


def test_prompt_files_must_come_from_this_backbone(tmp_path):
    model = PromptedT5Seq2SeqLM(make_tiny_backbone(), prompt_length=2, seed=0)
    other = PromptedT5Seq2SeqLM(make_tiny_backbone(seed=9), prompt_length=2)
    mine = model.save_prompt(str(tmp_path / "mine.safetensors"))
    foreign = other.save_prompt(str(tmp_path / "foreign.safetensors"))
    model.prompt_bank.add("mine", mine)
    np.testing.assert_array_equal(model.prompt_bank.select(["mine"])[0],
                                  model.get_prompt())
    with pytest.raises(PromptFileError, match="fingerprint"):
        model.prompt_bank.add("foreign", foreign)
    assert model.prompt_bank.names == ["mine"]
