"""Build a `PromptedT5Seq2SeqLM` inside a strategy scope, in a dtype."""

import logging
import os

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "mixed_bfloat16")


def dtype_policy_name(dtype):
    """Map `--dtype` to a Keras dtype policy name."""
    if dtype in (None, "float32"):
        return "float32"
    if dtype in ("bfloat16", "mixed_bfloat16"):
        # bfloat16 compute, float32 variables: the prompt (the only trained
        # weight) stays float32.
        return "mixed_bfloat16"
    from keras_prompt.training.training_error import TrainingError

    raise TrainingError(f"Unknown dtype '{dtype}'; use float32 or bfloat16.")


def _rebuild_backbone(backbone, policy):
    """A copy of `backbone` created in the current scope with `policy`."""
    import keras_hub

    config = backbone.get_config()
    config["dtype"] = policy
    copy = keras_hub.models.T5Backbone.from_config(config)
    copy.set_weights(backbone.get_weights())
    return copy


def build_prompted_model(backbone, preprocessor=None, *, prompt_length=100,
                         prompt_initializer="class_labels", labels=None,
                         init_text=None, init_file=None,
                         reparameterization=None, bottleneck_size=None,
                         seed=None, dtype="float32", prompt=None):
    """Create the model in the current (strategy) scope.

    Args:
        backbone: a preset name, preset directory or Hugging Face T5
            checkpoint directory (loaded with
            `PromptedT5Seq2SeqLM.from_preset`), a `keras_hub.models.T5Backbone`
            or a `PromptedT5Seq2SeqLM` (its backbone and preprocessor are
            reused). Objects built outside the current strategy scope are
            re-created inside it so their variables are distributed.
        preprocessor: a `T5Seq2SeqLMPreprocessor` when `backbone` is an
            object; preset loading brings its own.
        prompt_length, prompt_initializer, labels, init_text, init_file,
            reparameterization, bottleneck_size, seed: see
            `PromptedT5Seq2SeqLM`.
        dtype: `"float32"` or `"bfloat16"` (mixed precision, float32 prompt).
        prompt: optional initial prompt array (e.g. to continue training),
            set with `set_prompt` (the effective prompt). Without it a
            `PromptedT5Seq2SeqLM` given as `backbone` passes on its prompt
            the same way.

    Example:

    ```python
    with strategy.scope():
        model = build_prompted_model("t5_small_multi", prompt_length=20,
                                     labels=["positive", "negative"])
    ```
    """
    import tensorflow as tf

    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM

    policy = dtype_policy_name(dtype)
    kwargs = dict(prompt_length=prompt_length,
                  prompt_initializer=prompt_initializer, labels=labels,
                  init_text=init_text, init_file=init_file,
                  reparameterization=reparameterization,
                  bottleneck_size=bottleneck_size, seed=seed)
    # The prompt layer's weights of a model built first (its prompt and any
    # reparameterization, as initialized) when the model is re-created.
    prompt_weights = None
    if isinstance(backbone, (str, os.PathLike)):
        model = PromptedT5Seq2SeqLM.from_preset(os.fspath(backbone), **kwargs)
        if policy == "float32" and model.backbone.dtype_policy.name == "float32":
            if prompt is not None:
                model.set_prompt(prompt)
            return model
        prompt_weights = model.prompt_layer.get_weights()
        backbone, preprocessor = model.backbone, model.preprocessor
        del model
    elif isinstance(backbone, PromptedT5Seq2SeqLM):
        if prompt is None:
            prompt = backbone.get_prompt()
        preprocessor = preprocessor or backbone.preprocessor
        backbone = backbone.backbone
    strategy = tf.distribute.get_strategy()
    variable = backbone.token_embedding.embeddings
    in_scope = strategy.extended.variable_created_in_scope(
        getattr(variable, "value", variable))
    if not in_scope or backbone.dtype_policy.name != policy:
        backbone = _rebuild_backbone(backbone, policy)
    model = PromptedT5Seq2SeqLM(backbone, preprocessor, **kwargs)
    if prompt is not None:
        model.set_prompt(prompt)
    elif prompt_weights is not None:
        model.prompt_layer.set_weights(prompt_weights)
    return model
