"""Build a prompted model (`PromptedT5Seq2SeqLM` or `PromptedCausalLM`)
inside a strategy scope, in a dtype, and its text-to-text pipeline."""

import json
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
    config = backbone.get_config()
    config["dtype"] = policy
    copy = type(backbone).from_config(config)
    copy.set_weights(backbone.get_weights())
    return copy


def is_causal_preset(preset):
    """Whether `preset` (a KerasHub preset name or directory, or a Hugging
    Face checkpoint directory) holds a decoder-only LM rather than a T5."""
    import keras_hub

    from keras_prompt.models.causal_lm_family import supported_families

    config_path = os.path.join(os.fspath(preset), "config.json")
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
        if "model_type" in config:  # Hugging Face
            return config["model_type"] not in ("t5", "mt5", "umt5")
        return config.get("class_name") in supported_families()
    for name in supported_families():
        family = getattr(keras_hub.models, name, None)
        if family is not None and preset in getattr(family, "presets", {}):
            return True
    return False


def prompted_model_class(backbone):
    """`PromptedCausalLM` for a decoder-only preset, directory, backbone or
    prompted model; `PromptedT5Seq2SeqLM` otherwise."""
    import keras_hub

    from keras_prompt.models.prompted_causal_lm import PromptedCausalLM
    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM

    if isinstance(backbone, (PromptedCausalLM, PromptedT5Seq2SeqLM)):
        return type(backbone)
    if isinstance(backbone, (str, os.PathLike)):
        causal = is_causal_preset(backbone)
    else:
        causal = isinstance(backbone, keras_hub.models.Backbone) and not \
            isinstance(backbone, keras_hub.models.T5Backbone)
    return PromptedCausalLM if causal else PromptedT5Seq2SeqLM


def build_pipeline(model, task, max_input_length, max_target_length=None):
    """The model's text-to-text pipeline: `TextToTextPipeline` for T5,
    `CausalTextToTextPipeline` for a decoder-only model (whose targets are
    the continuations after the separator), with the task's default target
    length when `max_target_length` is `None`."""
    from keras_prompt.data import CausalTextToTextPipeline
    from keras_prompt.data import TextToTextPipeline
    from keras_prompt.data.causal_text_to_text_pipeline import (
        DEFAULT_TARGET_PREFIX,
    )
    from keras_prompt.models.prompted_causal_lm import PromptedCausalLM

    tokenizer = model.preprocessor.tokenizer
    if not isinstance(model, PromptedCausalLM):
        if max_target_length is None:
            max_target_length = task.default_target_length(tokenizer)
        return TextToTextPipeline(tokenizer, max_input_length, max_target_length)
    if max_target_length is None:
        max_target_length = task.default_target_length(
            tokenizer, prefix=DEFAULT_TARGET_PREFIX)
    pipeline = CausalTextToTextPipeline(
        tokenizer, max_input_length, max_target_length)
    model.check_length(pipeline.sequence_length)
    return pipeline


def build_prompted_model(backbone, preprocessor=None, *, prompt_length=100,
                         prompt_initializer="class_labels", labels=None,
                         init_text=None, init_file=None,
                         reparameterization=None, bottleneck_size=None,
                         seed=None, dtype="float32", prompt=None):
    """Create the model in the current (strategy) scope.

    Args:
        backbone: a preset name, preset directory or Hugging Face
            checkpoint directory (T5 or a decoder-only family; loaded with
            the model class's `from_preset`), a KerasHub backbone
            (`T5Backbone` or a decoder-only one) or a prompted model (its
            backbone and preprocessor are reused). Objects built outside the current strategy scope are
            re-created inside it so their variables are distributed.
        preprocessor: the backbone's preprocessor when `backbone` is an
            object; preset loading brings its own.
        prompt_length, prompt_initializer, labels, init_text, init_file,
            reparameterization, bottleneck_size, seed: see
            `PromptedT5Seq2SeqLM` and `PromptedCausalLM`.
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

    model_class = prompted_model_class(backbone)
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
        model = model_class.from_preset(os.fspath(backbone), **kwargs)
        if policy == "float32" and model.backbone.dtype_policy.name == "float32":
            if prompt is not None:
                model.set_prompt(prompt)
            return model
        prompt_weights = model.prompt_layer.get_weights()
        backbone, preprocessor = model.backbone, model.preprocessor
        del model
    elif isinstance(backbone, model_class):
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
    model = model_class(backbone, preprocessor, **kwargs)
    if prompt is not None:
        model.set_prompt(prompt)
    elif prompt_weights is not None:
        model.prompt_layer.set_weights(prompt_weights)
    return model
