"""Prompt banks holding several prompts for one task (prompt ensembles)."""

import numpy as np
import pytest

from keras_prompt.prompts import save_prompt_file
from keras_prompt.prompts.prompt_bank import PromptBank

FINGERPRINT = "f" * 64


def _prompt(value):
    return np.full((2, 3), value, np.float32)


def _file(tmp_path, name, value, labels=None):
    metadata = {"backbone_fingerprint": FINGERPRINT}
    if labels is not None:
        metadata["labels"] = labels
    return save_prompt_file(str(tmp_path / name), _prompt(value), metadata)


def test_tasks_keep_their_ids_and_further_prompts_follow():
    bank = PromptBank(2, 3)
    assert bank.add("a", [_prompt(0), _prompt(1), _prompt(2)]) == 0
    assert bank.add("b", _prompt(3)) == 1
    assert bank.add("c", (_prompt(4), _prompt(5))) == 2
    assert bank.names == ["a", "b", "c"] and len(bank) == 3
    assert bank.num_prompts == 6
    assert [bank.prompt_ids(t) for t in "abc"] == [[0, 3, 4], [1], [2, 5]]
    np.testing.assert_array_equal(bank.prompts()[:, 0, 0], [0, 3, 4, 1, 2, 5])
    # A name selects the task's first prompt; an integer is a prompt id.
    np.testing.assert_array_equal(bank.select(["c", "a", 4])[:, 0, 0],
                                  [4, 0, 2])
    assert bank.sources() == ["<array>"] * 6
    with pytest.raises(ValueError, match="holds 3 tasks .* in 6 prompts"):
        bank.select([6])
    bank.remove("a")
    assert bank.names == ["b", "c"]
    assert [bank.prompt_ids(t) for t in "bc"] == [[0], [1, 2]]


def test_a_nested_list_of_numbers_is_one_prompt():
    bank = PromptBank(2, 3)
    bank.add("a", _prompt(1).tolist())
    assert bank.num_prompts == 1


def test_label_words_come_from_the_files_and_must_agree(tmp_path):
    bank = PromptBank(2, 3, fingerprint=lambda: FINGERPRINT)
    yes_no = ["yes", "no"]
    first = _file(tmp_path, "first.safetensors", 0, yes_no)
    second = _file(tmp_path, "second.safetensors", 1, yes_no)
    unlabelled = _file(tmp_path, "unlabelled.safetensors", 2)
    other = _file(tmp_path, "other.safetensors", 3, ["no", "yes"])
    bank.add("t", [first, unlabelled, second])
    assert bank.labels("t") == yes_no
    assert bank.sources() == [first, unlabelled, second]
    bank.add("u", unlabelled)
    assert bank.labels("u") is None
    with pytest.raises(ValueError) as error:
        bank.add("v", [first, other])
    message = str(error.value)
    assert "other.safetensors' records the label words ['no', 'yes']" in message
    assert "first.safetensors' records ['yes', 'no']" in message
    assert "v" not in bank
    bank.add("v", [first, other], labels=["yes", "no"])
    assert bank.labels("v") == yes_no


@pytest.mark.parametrize("prompt,labels,message", [
    ([], None, "empty list of prompts"),
    ([_prompt(0), np.zeros((3, 3))], None, "prompt 2 of 2.*must have shape"),
    (_prompt(0), ["yes", "yes"], "distinct non-empty label words"),
    (_prompt(0), [], "distinct non-empty label words"),
])
def test_bad_ensembles_are_refused(prompt, labels, message):
    with pytest.raises(ValueError, match=message):
        PromptBank(2, 3).add("t", prompt, labels=labels)
