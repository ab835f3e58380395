"""The training loss: target-token cross-entropy whose value does not depend
on how far a batch is padded."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_prompt")
class TokenCrossentropy(keras.losses.SparseCategoricalCrossentropy):
    """Sparse cross-entropy from logits, weighted by the target mask, summed
    and divided by `batch_size * label_length`.

    That is Keras's `"sum_over_batch_size"` reduction of a batch padded to
    `label_length` target positions, for batches of any length: a batch of
    a length bucket (`TextToTextPipeline.use_length_buckets`) has the loss
    and gradient it has padded to the maximum. (A T5 batch always has
    `max_target_length` target positions; a decoder-only batch has its
    bucket's sequence length.) As with Keras's reduction, the loss is
    scaled for the replicas of a `tf.distribute` strategy.

    Args:
        label_length: the target positions of a batch padded to the maximum
            (`pipeline.label_length`).
        name: the loss's name.

    Example:
    ```python
    loss = TokenCrossentropy(pipeline.label_length)
    model.compile(optimizer=Adafactor(0.3), loss=loss)
    ```
    """

    def __init__(self, label_length, name="token_crossentropy"):
        super().__init__(from_logits=True, reduction="sum_over_batch_size",
                         name=name)
        self.label_length = int(label_length)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras divides by the batch's own positions; rescale to
        # `label_length` of them.
        loss = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        positions = ops.cast(ops.shape(y_true)[1], loss.dtype)
        return loss * (positions / self.label_length)

    def get_config(self):
        return {"label_length": self.label_length, "name": self.name}
