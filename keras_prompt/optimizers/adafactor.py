"""Adafactor with the semantics of T5X, as used for prompt tuning.

Lester et al. (2021) train prompts with T5X's Adafactor using a *constant*
learning rate of 0.3, no parameter scaling, second-moment decay
`1 - t^-0.8`, update clipping at RMS 1.0 and a decoupled weight decay of
1e-5. `keras.optimizers.Adafactor` cannot express this (it caps the rate at
`1/sqrt(t)` and always scales the step by the parameter RMS), hence this
implementation.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

try:  # Densify `tf.IndexedSlices` gradients on the TensorFlow backend.
    import tensorflow as tf
except ImportError:  # pragma: no cover
    tf = None


def _is_real_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


@keras.saving.register_keras_serializable(package="keras_prompt")
class Adafactor(keras.optimizers.Optimizer):
    """Adafactor optimizer with T5X semantics and prompt-tuning defaults.

    This reproduces `t5x.adafactor.Adafactor` (Shazeer & Stern, 2018) with
    the settings used for prompt tuning by Lester et al. (2021). For every
    variable `x` with gradient `g` at zero-based update step `s`:

    ```
    t      = s + 1
    beta2  = 1 - t ** -decay_rate
    g2     = g ** 2 + epsilon1
    v      = beta2 * v + (1 - beta2) * g2           # or factored, see below
    y      = g / sqrt(v)
    y      = y / max(1, rms(y) / clipping_threshold)
    u      = learning_rate * y                       # * max(rms(x), epsilon2)
                                                     #   if parameter scaling
    u      = m = beta1 * m + (1 - beta1) * u         # only if beta1 is set
    x      = (1 - weight_decay_rate) * x - u
    ```

    The learning rate is used as is: there is no `1/sqrt(t)` cap and, by
    default, no scaling by the parameter RMS. Weight decay is decoupled and
    **not** multiplied by the learning rate.

    The second moment is factored (a row and a column accumulator instead of
    a full one) when the variable has rank >= 2 and its two largest
    dimensions are both at least `min_dim_size_to_factor`; the factorization
    is over those two dimensions (ties keep the original dimension order),
    as in T5X's `_factored_dims`. With the default of 128, a `100 x 512`
    prompt keeps a full second moment while a `128 x 160` matrix is
    factored. All update statistics are kept in float32 (float64 for float64
    variables).

    Args:
        learning_rate: A non-negative float, a
            `keras.optimizers.schedules.LearningRateSchedule`, or a callable
            taking no arguments. The absolute step size. Defaults to `0.3`.
        decay_rate: float in `(0, 1]`. Exponent of the second-moment decay
            schedule `1 - t^-decay_rate`. Defaults to `0.8`.
        beta1: `None` or a float in `[0, 1)`. If set, enables momentum on the
            (scaled, clipped) update; this allocates one extra full-size slot
            per variable. Defaults to `None`.
        clipping_threshold: `None` or a positive float. Updates are divided
            by `max(1, rms(update) / clipping_threshold)`. Defaults to `1.0`.
        weight_decay_rate: `None` or a float in `[0, 1)`. Each update
            multiplies the variable by `1 - weight_decay_rate`, independent of
            the learning rate. Variables passed to
            `exclude_from_weight_decay()` are skipped. Defaults to `1e-5`.
        multiply_by_parameter_scale: bool. If `True`, the step is multiplied
            by `max(rms(variable), epsilon2)`. Defaults to `False`.
        epsilon1: non-negative float added to the squared gradient. Defaults
            to `1e-30`.
        epsilon2: non-negative float, lower bound of the parameter scale
            (only used when `multiply_by_parameter_scale=True`). Defaults to
            `1e-3`.
        factored: bool. Whether to factor the second moment of large
            variables at all. Defaults to `True`.
        min_dim_size_to_factor: non-negative int. Only factor when the two
            largest dimensions are both at least this size. Defaults to
            `128`.
        **kwargs: Other arguments of `keras.optimizers.Optimizer`, such as
            `name`, `clipnorm`, `global_clipnorm`, `use_ema` or
            `gradient_accumulation_steps`. `weight_decay` is not accepted:
            use `weight_decay_rate`.

    Example:
    ```python
    import keras
    import numpy as np
    from keras_prompt.optimizers import Adafactor

    prompt = keras.Variable(np.zeros((100, 512), "float32"), name="prompt")
    optimizer = Adafactor(learning_rate=0.3)
    gradient = np.random.default_rng(0).normal(size=(100, 512))
    optimizer.apply_gradients([(gradient.astype("float32"), prompt)])
    # With update clipping, the first step has an RMS of exactly the rate.
    step_rms = np.sqrt(np.mean(np.square(prompt.numpy())))
    np.testing.assert_allclose(step_rms, 0.3, rtol=1e-5)
    ```

    References:
    - [Shazeer & Stern, 2018](https://arxiv.org/abs/1804.04235)
    - [Lester et al., 2021](https://arxiv.org/abs/2104.08691)
    - `t5x/adafactor.py` in https://github.com/google-research/t5x
    """

    def __init__(
        self,
        learning_rate=0.3,
        decay_rate=0.8,
        beta1=None,
        clipping_threshold=1.0,
        weight_decay_rate=1e-5,
        multiply_by_parameter_scale=False,
        epsilon1=1e-30,
        epsilon2=1e-3,
        factored=True,
        min_dim_size_to_factor=128,
        name=None,
        **kwargs,
    ):
        if kwargs.pop("weight_decay", None) is not None:
            raise ValueError(
                "`Adafactor` does not accept `weight_decay` (Keras scales it "
                "by the learning rate). Use `weight_decay_rate`, which is "
                "applied as `variable * (1 - weight_decay_rate)`."
            )
        learning_rate = self._validate_learning_rate(learning_rate)
        if not _is_real_number(decay_rate) or not 0.0 < decay_rate <= 1.0:
            raise ValueError(
                "`decay_rate` must be a float in (0, 1]. "
                f"Received: decay_rate={decay_rate!r}"
            )
        if beta1 is not None and (
            not _is_real_number(beta1) or not 0.0 <= beta1 < 1.0
        ):
            raise ValueError(
                "`beta1` must be None or a float in [0, 1). "
                f"Received: beta1={beta1!r}"
            )
        if clipping_threshold is not None and (
            not _is_real_number(clipping_threshold)
            or not clipping_threshold > 0.0
        ):
            raise ValueError(
                "`clipping_threshold` must be None or a positive float. "
                f"Received: clipping_threshold={clipping_threshold!r}"
            )
        if weight_decay_rate is not None and (
            not _is_real_number(weight_decay_rate)
            or not 0.0 <= weight_decay_rate < 1.0
        ):
            raise ValueError(
                "`weight_decay_rate` must be None or a float in [0, 1). "
                f"Received: weight_decay_rate={weight_decay_rate!r}"
            )
        for arg_name, value in (("epsilon1", epsilon1), ("epsilon2", epsilon2)):
            if not _is_real_number(value) or not value >= 0.0:
                raise ValueError(
                    f"`{arg_name}` must be a non-negative float. "
                    f"Received: {arg_name}={value!r}"
                )
        if not isinstance(multiply_by_parameter_scale, (bool, np.bool_)):
            raise TypeError(
                "`multiply_by_parameter_scale` must be a bool. Received: "
                f"multiply_by_parameter_scale={multiply_by_parameter_scale!r}"
            )
        if not isinstance(factored, (bool, np.bool_)):
            raise TypeError(
                f"`factored` must be a bool. Received: factored={factored!r}"
            )
        if (
            not isinstance(min_dim_size_to_factor, numbers.Integral)
            or isinstance(min_dim_size_to_factor, bool)
            or min_dim_size_to_factor < 0
        ):
            raise ValueError(
                "`min_dim_size_to_factor` must be a non-negative int. "
                f"Received: min_dim_size_to_factor={min_dim_size_to_factor!r}"
            )

        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.decay_rate = float(decay_rate)
        self.beta1 = None if beta1 is None else float(beta1)
        self.clipping_threshold = (
            None if clipping_threshold is None else float(clipping_threshold)
        )
        self.weight_decay_rate = (
            None if weight_decay_rate is None else float(weight_decay_rate)
        )
        self.multiply_by_parameter_scale = bool(multiply_by_parameter_scale)
        self.epsilon1 = float(epsilon1)
        self.epsilon2 = float(epsilon2)
        self.factored = bool(factored)
        self.min_dim_size_to_factor = int(min_dim_size_to_factor)

    @staticmethod
    def _validate_learning_rate(learning_rate):
        if isinstance(
            learning_rate, keras.optimizers.schedules.LearningRateSchedule
        ) or callable(learning_rate):
            return learning_rate
        if not _is_real_number(learning_rate):
            raise ValueError(
                "`learning_rate` must be a non-negative float, a "
                "`keras.optimizers.schedules.LearningRateSchedule` or a "
                f"callable. Received: learning_rate={learning_rate!r}"
            )
        learning_rate = float(learning_rate)
        if not (learning_rate >= 0.0 and math.isfinite(learning_rate)):
            raise ValueError(
                "`learning_rate` must be a finite, non-negative float. "
                f"Received: learning_rate={learning_rate!r}"
            )
        return learning_rate

    def _factored_dims(self, shape):
        """Returns `(row_axis, col_axis)` to factor over, or `None`.

        The column axis is the largest dimension and the row axis the second
        largest (a stable sort, so ties keep the original order). Factoring
        happens only if both are at least `min_dim_size_to_factor`.
        """
        shape = tuple(int(d) for d in shape)
        if not self.factored or len(shape) < 2:
            return None
        order = np.argsort(np.asarray(shape), kind="stable")
        row_axis, col_axis = int(order[-2]), int(order[-1])
        if shape[row_axis] < self.min_dim_size_to_factor:
            return None
        return row_axis, col_axis

    @staticmethod
    def _stats_dtype(variable):
        if keras.backend.standardize_dtype(variable.dtype) == "float64":
            return "float64"
        return "float32"

    def _add_slot(self, variable, shape, suffix):
        name = getattr(variable, "path", None) or str(variable.name)
        name = name.replace("/", "_").replace(":", "_")
        strategy = getattr(self, "_distribution_strategy", None)
        kwargs = dict(
            shape=tuple(shape),
            initializer="zeros",
            dtype=self._stats_dtype(variable),
            name=f"{name}_{suffix}",
        )
        if strategy is None:
            return self.add_variable(**kwargs)
        colocate = variable.value if hasattr(variable, "value") else variable
        with strategy.extended.colocate_vars_with(colocate):
            return self.add_variable(**kwargs)

    def build(self, var_list):
        """Creates the second-moment (and optional momentum) slots.

        For each variable this creates either `<path>_v_row` and
        `<path>_v_col` (factored) or `<path>_v` (full shape), plus `<path>_m`
        when `beta1` is set.
        """
        if self.built:
            return
        super().build(var_list)
        self._v_row = []
        self._v_col = []
        self._v = []
        self._m = []
        for var in var_list:
            if self._overwrite_variable_with_gradient(var):
                for slots in (self._v_row, self._v_col, self._v, self._m):
                    slots.append(None)
                continue
            shape = tuple(int(d) for d in var.shape)
            dims = self._factored_dims(shape)
            if dims is None:
                self._v_row.append(None)
                self._v_col.append(None)
                self._v.append(self._add_slot(var, shape, "v"))
            else:
                row_axis, col_axis = dims
                row_shape = shape[:col_axis] + shape[col_axis + 1 :]
                col_shape = shape[:row_axis] + shape[row_axis + 1 :]
                self._v_row.append(self._add_slot(var, row_shape, "v_row"))
                self._v_col.append(self._add_slot(var, col_shape, "v_col"))
                self._v.append(None)
            if self.beta1 is None:
                self._m.append(None)
            else:
                self._m.append(self._add_slot(var, shape, "m"))

    def update_step(self, gradient, variable, learning_rate):
        """Applies one Adafactor update to `variable`."""
        index = self._get_variable_index(variable)
        dtype = self._stats_dtype(variable)
        if tf is not None and isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        grad = ops.cast(gradient, dtype)
        param = ops.cast(variable, dtype)
        lr = ops.cast(learning_rate, dtype)

        # `iterations` counts completed updates, so t = step + 1 starts at 1
        # and the first update uses only the current squared gradient.
        t = ops.cast(self.iterations, dtype) + 1.0
        beta2 = 1.0 - ops.power(t, -self.decay_rate)
        mixing = 1.0 - beta2
        grad_sqr = ops.square(grad) + self.epsilon1

        dims = self._factored_dims(variable.shape)
        if dims is None:
            v = self._v[index]
            new_v = beta2 * v + mixing * grad_sqr
            self.assign(v, new_v)
            y = grad * ops.rsqrt(new_v)
        else:
            row_axis, col_axis = dims
            v_row = self._v_row[index]
            v_col = self._v_col[index]
            new_v_row = beta2 * v_row + mixing * ops.mean(
                grad_sqr, axis=col_axis
            )
            new_v_col = beta2 * v_col + mixing * ops.mean(
                grad_sqr, axis=row_axis
            )
            self.assign(v_row, new_v_row)
            self.assign(v_col, new_v_col)
            # Position of the row axis inside `v_row` (col axis removed).
            row_axis_in_v_row = row_axis - (1 if col_axis < row_axis else 0)
            row_mean = ops.mean(
                new_v_row, axis=row_axis_in_v_row, keepdims=True
            )
            row_factor = ops.rsqrt(new_v_row / row_mean)
            col_factor = ops.rsqrt(new_v_col)
            y = (
                grad
                * ops.expand_dims(row_factor, col_axis)
                * ops.expand_dims(col_factor, row_axis)
            )

        if self.clipping_threshold is not None:
            rms = ops.sqrt(ops.mean(ops.square(y)))
            y = y / ops.maximum(1.0, rms / self.clipping_threshold)

        update_scale = lr
        if self.multiply_by_parameter_scale:
            param_scale = ops.sqrt(ops.mean(ops.square(param)))
            update_scale = lr * ops.maximum(param_scale, self.epsilon2)
        update = update_scale * y

        if self.beta1 is not None:
            m = self._m[index]
            update = self.beta1 * m + (1.0 - self.beta1) * update
            self.assign(m, update)

        if self.weight_decay_rate and self._use_weight_decay(variable):
            new_param = (1.0 - self.weight_decay_rate) * param - update
        else:
            new_param = param - update
        self.assign(variable, ops.cast(new_param, variable.dtype))

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update(
            {
                "decay_rate": self.decay_rate,
                "beta1": self.beta1,
                "clipping_threshold": self.clipping_threshold,
                "weight_decay_rate": self.weight_decay_rate,
                "multiply_by_parameter_scale": (
                    self.multiply_by_parameter_scale
                ),
                "epsilon1": self.epsilon1,
                "epsilon2": self.epsilon2,
                "factored": self.factored,
                "min_dim_size_to_factor": self.min_dim_size_to_factor,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # The base class deserializes the schedule in place; work on a copy
        # so the caller's config is left untouched.
        return super().from_config(dict(config), custom_objects=custom_objects)
