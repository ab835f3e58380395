"""XLA for multi-device training: compile the per-replica step only."""

import keras
import tensorflow as tf


def install_xla_replica_train_step(model):
    """Make `model.fit` compile each replica's forward/backward pass with XLA.

    Keras compiles its whole distributed step (`strategy.run` included) when
    `jit_compile=True`, which fails under `MirroredStrategy` and
    `MultiWorkerMirroredStrategy` (variables live on several devices). This
    replaces the model's `train_step` with one that XLA-compiles the loss and
    gradients of one replica and leaves the cross-replica gradient reduction
    and the optimizer update to `tf.distribute`. Compile the model with
    `jit_compile=False`.

    Args:
        model: a compiled Keras model.

    Example:

    ```python
    with strategy.scope():
        model.compile(optimizer, loss, jit_compile=False)
    install_xla_replica_train_step(model)
    ```
    """
    from keras.src.losses.loss import unscale_loss_for_distribution

    @tf.function(jit_compile=True, reduce_retracing=True)
    def loss_and_gradients(x, y, sample_weight):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred,
                                       sample_weight=sample_weight,
                                       training=True)
            scaled = model.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        return loss, gradients, y_pred

    def train_step(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, gradients, y_pred = loss_and_gradients(x, y, sample_weight)
        model._loss_tracker.update_state(
            unscale_loss_for_distribution(loss),
            sample_weight=tf.shape(y)[0])
        model.optimizer.apply_gradients(
            zip(gradients, model.trainable_variables))
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    model.train_step = train_step
    return model
