"""KerasHub's own Task conformance checks, run on `PromptedT5Seq2SeqLM`.

`keras_hub.src.tests.test_case.TestCase.run_task_test` is what KerasHub runs
on each of its tasks: serialization round trip, the preprocessor's output
structure equals the model's input structure, `predict` and `fit` with and
without the attached preprocessor on arrays and datasets, and `fit` after
`compile=False` raising KerasHub's error. `run_model_saving_test` reloads a
`.keras` file and compares outputs.
"""

import numpy as np
from keras_hub.src.tests.test_case import TestCase

from keras_prompt import PromptedT5Seq2SeqLM
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.conftest import make_token_batch


class PromptedT5Seq2SeqLMTaskTest(TestCase):
    def setUp(self):
        self.preprocessor = make_tiny_preprocessor(
            encoder_sequence_length=10, decoder_sequence_length=6
        )
        self.init_kwargs = {
            "backbone": make_tiny_backbone(tied=False),
            "preprocessor": self.preprocessor,
            "prompt_length": 3,
            "seed": 0,
        }
        self.train_data = (
            {
                "encoder_text": ["the cat likes the movie", "a dog sees"],
                "decoder_text": ["positive", "negative"],
            },
        )

    def test_task_contract(self):
        self.run_task_test(
            cls=PromptedT5Seq2SeqLM,
            init_kwargs=self.init_kwargs,
            train_data=self.train_data,
            expected_output_shape=(2, 6, 128),
        )

    def test_saved_model_round_trip(self):
        self.run_model_saving_test(
            cls=PromptedT5Seq2SeqLM,
            init_kwargs={**self.init_kwargs, "preprocessor": None},
            input_data=make_token_batch(),
        )

    def test_keras_file_keeps_the_compile_settings(self):
        import keras

        from keras_prompt.optimizers import Adafactor

        model = PromptedT5Seq2SeqLM(**self.init_kwargs, compile=False)
        model.compile(optimizer=Adafactor(learning_rate=0.1), jit_compile=False)
        path = self.get_temp_dir() + "/model.keras"
        model.save(path)
        restored = keras.models.load_model(path)
        self.assertIsInstance(restored.optimizer, Adafactor)
        self.assertAllClose(float(restored.optimizer.learning_rate), 0.1)
        self.assertFalse(restored.jit_compile)
        self.assertAllClose(restored.get_prompt(), model.get_prompt())
        texts = ["the cat likes the movie", "a dog sees"]
        self.assertEqual(restored.generate(texts), model.generate(texts))

    def test_inputs_are_exactly_the_preprocessor_outputs(self):
        model = PromptedT5Seq2SeqLM(**self.init_kwargs)
        x, _, _ = self.preprocessor(*self.train_data)
        self.assertEqual(sorted(model.input), sorted(x))
        self.assertNotIn("prompts", model.input)

    def test_per_example_prompts_do_not_change_the_input_structure(self):
        """Mixed-task batches go through `forward(prompts=)` and the prompt
        bank; `predict` of the model's own prompt is unchanged."""
        model = PromptedT5Seq2SeqLM(**{**self.init_kwargs, "preprocessor": None})
        batch = make_token_batch()
        own = np.asarray(model.predict(batch, verbose=0))
        prompt = model.get_prompt()
        same = np.asarray(model.forward(batch, prompts=np.stack([prompt] * 3)))
        self.assertAllClose(own, same, atol=1e-5)
        model.prompt_bank.add("own", prompt)
        model.prompt_bank.add("other", prompt + 1.0)
        by_task = np.asarray(model.forward(batch, tasks=["own", "other", "own"]))
        self.assertAllClose(by_task[0], own[0], atol=1e-5)
        self.assertAllClose(by_task[2], own[2], atol=1e-5)
        self.assertGreater(np.abs(by_task[1] - own[1]).max(), 1e-3)
