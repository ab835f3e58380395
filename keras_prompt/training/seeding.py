"""Explicit seeds for a model's random layers."""

import numpy as np

SEED_STATE_NAME = "seed_generator_state"


def seed_random_layers(model, seed):
    """Seeds every random layer of `model` from `seed`, touching no global
    random state.

    KerasHub's dropout layers draw from `keras.random.SeedGenerator`s whose
    starting seeds come from Python's global `random` module when the layer
    is built. Setting those generators' states gives the same dropout masks
    for the same `seed` in any process, whatever ran before (seeding
    TensorFlow globally instead would also reset its kernel caches and
    destroy the SentencePiece resource of any tokenizer already used in a
    `tf.data` pipeline).

    Args:
        model: a Keras model (e.g. a `PromptedT5Seq2SeqLM`).
        seed: int.

    Returns:
        The number of generators seeded.

    Example:
    ```python
    seed_random_layers(model, seed=0)
    ```
    """
    states = [
        variable
        for variable in model.non_trainable_variables
        if variable.path.endswith(SEED_STATE_NAME)
    ]
    rng = np.random.default_rng([int(seed), len(states)])
    for state in states:
        value = np.array([rng.integers(1, 2**30), 0])
        state.assign(value.astype(state.dtype))
    return len(states)
