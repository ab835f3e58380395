"""Tests for keras_prompt.optimizers.Adafactor (T5X semantics)."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import textwrap  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_prompt.optimizers import Adafactor  # noqa: E402


# ---------------------------------------------------------------------------
# NumPy reference: t5x.adafactor.Adafactor.apply_param_gradient with the
# heuristic factorization rule (`_factored_dims`), in float64.
# ---------------------------------------------------------------------------
class T5XAdafactorReference:
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
    ):
        # `learning_rate` may be a float or a function of the step.
        self.learning_rate = learning_rate
        self.decay_rate = decay_rate
        self.beta1 = beta1
        self.clipping_threshold = clipping_threshold
        self.weight_decay_rate = weight_decay_rate
        self.multiply_by_parameter_scale = multiply_by_parameter_scale
        self.epsilon1 = epsilon1
        self.epsilon2 = epsilon2
        self.factored = factored
        self.min_dim_size_to_factor = min_dim_size_to_factor

    def factored_dims(self, shape):
        if not self.factored or len(shape) < 2:
            return None
        sorted_dims = np.argsort(shape)
        if shape[sorted_dims[-2]] < self.min_dim_size_to_factor:
            return None
        return (int(sorted_dims[-2]),), (int(sorted_dims[-1]),)

    def init_state(self, param):
        shape = param.shape
        state = {"v_row": None, "v_col": None, "v": None, "m": None}
        dims = self.factored_dims(shape)
        if dims is not None:
            d1, d0 = dims
            state["v_row"] = np.zeros(np.delete(shape, d0))
            state["v_col"] = np.zeros(np.delete(shape, d1))
        else:
            state["v"] = np.zeros(shape)
        if self.beta1 is not None:
            state["m"] = np.zeros(shape)
        return state

    def apply(self, step, param, state, grad):
        """One update at zero-based `step`; returns (new_param, new_state)."""
        param = np.asarray(param, np.float64)
        grad = np.asarray(grad, np.float64)
        lr = self.learning_rate
        if callable(lr):
            lr = lr(step)
        averaging_dims = tuple(range(param.ndim))
        decay = 1.0 - (step + 1.0) ** (-self.decay_rate)
        mixing = 1.0 - decay
        update_scale = lr
        if self.multiply_by_parameter_scale:
            scale = np.sqrt(
                np.mean(param * param, axis=averaging_dims, keepdims=True)
            )
            update_scale = update_scale * np.maximum(scale, self.epsilon2)
        grad_sqr = grad * grad + self.epsilon1
        new_state = dict(state)
        dims = self.factored_dims(param.shape)
        if dims is not None:
            d1, d0 = dims
            new_v_row = decay * state["v_row"] + mixing * np.mean(
                grad_sqr, axis=d0
            )
            new_v_col = decay * state["v_col"] + mixing * np.mean(
                grad_sqr, axis=d1
            )
            new_state["v_row"], new_state["v_col"] = new_v_row, new_v_col
            reduced_d1 = tuple(d - len([e for e in d0 if e < d]) for d in d1)
            row_col_mean = np.mean(new_v_row, axis=reduced_d1, keepdims=True)
            row_factor = (new_v_row / row_col_mean) ** -0.5
            col_factor = new_v_col**-0.5
            y = (
                grad
                * np.expand_dims(row_factor, axis=d0)
                * np.expand_dims(col_factor, axis=d1)
            )
        else:
            new_v = decay * state["v"] + mixing * grad_sqr
            new_state["v"] = new_v
            y = grad * new_v**-0.5
        if self.clipping_threshold is not None:
            denom = np.maximum(
                1.0,
                np.sqrt(np.mean(y * y, axis=averaging_dims, keepdims=True))
                / self.clipping_threshold,
            )
            y = y / denom
        subtrahend = update_scale * y
        if self.beta1 is not None:
            new_m = self.beta1 * state["m"] + (1.0 - self.beta1) * subtrahend
            new_state["m"] = new_m
            subtrahend = new_m
        if self.weight_decay_rate is not None:
            new_param = (1.0 - self.weight_decay_rate) * param - subtrahend
        else:
            new_param = param - subtrahend
        return new_param, new_state

    def run(self, param, grads):
        state = self.init_state(param)
        for step, grad in enumerate(grads):
            param, state = self.apply(step, param, state, grad)
        return param, state


def _random(shape, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal(shape)).astype("float32")


def _grads(shape, num_steps, seed):
    # Varying magnitudes per step so the second-moment decay matters.
    return [
        _random(shape, seed + 1000 + i, scale=10.0 ** ((i % 3) - 1))
        for i in range(num_steps)
    ]


def _run_keras(optimizer, init, grads, name="param"):
    variable = keras.Variable(init, name=name)
    for grad in grads:
        optimizer.apply_gradients([(grad, variable)])
    return variable


def _slots(optimizer):
    """Maps slot suffix ("v", "v_row", "v_col", "m") to variable shape."""
    shapes = {}
    for var in optimizer.variables:
        for suffix in ("v_row", "v_col", "m", "v"):
            if var.name.endswith("_" + suffix):
                shapes[var.name] = tuple(var.shape)
                break
    return shapes


def _slot_values(optimizer, name):
    return {
        suffix: var.numpy()
        for suffix in ("v_row", "v_col", "v", "m")
        for var in optimizer.variables
        if var.name == f"{name}_{suffix}"
    }


SHAPES = [
    (37,),  # 1-D: full second moment.
    (20, 64),  # 2-D, too small to factor.
    (128, 160),  # 2-D, factored over (0, 1).
    (160, 2, 128),  # 3-D, factored with row axis after the column axis.
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_t5x_reference_default_settings(shape):
    num_steps = 10
    # Small initial values keep |param| < ~3.5 after 10 steps of RMS 0.3, where
    # float32 rounding stays below the 1e-6 tolerance.
    init = _random(shape, seed=1, scale=0.1)
    grads = _grads(shape, num_steps, seed=2)
    reference = T5XAdafactorReference()
    expected, expected_state = reference.run(init, grads)

    optimizer = Adafactor()
    variable = _run_keras(optimizer, init, grads)

    # The parameters move by O(1) in total: a wrong decay, scaling or
    # clipping rule would differ by far more than the tolerance.
    assert np.max(np.abs(expected - init)) > 1.0
    np.testing.assert_allclose(variable.numpy(), expected, rtol=0, atol=1e-6)
    slots = _slot_values(optimizer, "param")
    factored = len(shape) >= 2 and sorted(shape)[-2] >= 128
    assert set(slots) == ({"v_row", "v_col"} if factored else {"v"})
    for key, value in slots.items():
        np.testing.assert_allclose(value, expected_state[key], rtol=1e-5)
    assert int(optimizer.iterations.numpy()) == num_steps


VARIANTS = {
    "momentum": dict(beta1=0.9),
    "parameter_scale": dict(multiply_by_parameter_scale=True, epsilon2=1e-3),
    "no_clipping_no_decay": dict(
        clipping_threshold=None, weight_decay_rate=None
    ),
    "other_hparams": dict(
        learning_rate=0.05,
        decay_rate=0.5,
        clipping_threshold=2.0,
        weight_decay_rate=1e-2,
        min_dim_size_to_factor=16,
    ),
    "not_factored": dict(factored=False),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(
    "shape", [(20, 64), (128, 160)], ids=["20x64", "128x160"]
)
def test_matches_t5x_reference_variants(variant, shape):
    kwargs = VARIANTS[variant]
    init = _random(shape, seed=3, scale=0.1)
    grads = _grads(shape, 10, seed=4)
    expected, _ = T5XAdafactorReference(**kwargs).run(init, grads)
    variable = _run_keras(Adafactor(**kwargs), init, grads)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=0, atol=1e-6)


def test_parameter_scale_uses_epsilon2_floor():
    # Tiny parameters: scale is max(rms, epsilon2) = epsilon2, so the first
    # clipped step has RMS lr * epsilon2.
    init = np.full((50,), 1e-6, "float32")
    grad = _random((50,), seed=5)
    optimizer = Adafactor(
        learning_rate=0.5,
        multiply_by_parameter_scale=True,
        epsilon2=1e-2,
        weight_decay_rate=None,
    )
    variable = _run_keras(optimizer, init, [grad])
    np.testing.assert_allclose(
        variable.numpy(), init - 0.5 * 1e-2 * np.sign(grad), rtol=1e-5
    )


def test_float64_variable_matches_reference_tightly():
    shape = (20, 64)
    init = _random(shape, seed=6).astype("float64")
    grads = [g.astype("float64") for g in _grads(shape, 10, seed=7)]
    # The learning rate lives in a float32 Keras variable.
    lr = float(np.float32(0.3))
    expected, _ = T5XAdafactorReference(learning_rate=lr).run(init, grads)
    optimizer = Adafactor()
    variable = _run_keras(optimizer, init, grads)
    assert variable.dtype == "float64"
    assert _slot_values(optimizer, "param")["v"].dtype == np.float64
    np.testing.assert_allclose(variable.numpy(), expected, rtol=0, atol=1e-12)


def test_learning_rate_schedule():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[2, 5], values=[0.3, 0.1, 0.01]
    )
    shape = (128, 160)
    init = _random(shape, seed=8, scale=0.1)
    grads = _grads(shape, 8, seed=9)

    def lr_at(step):
        return 0.3 if step <= 2 else (0.1 if step <= 5 else 0.01)

    expected, _ = T5XAdafactorReference(learning_rate=lr_at).run(init, grads)
    variable = _run_keras(Adafactor(learning_rate=schedule), init, grads)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=0, atol=1e-6)
    # A constant 0.3 would have given a different answer.
    constant, _ = T5XAdafactorReference().run(init, grads)
    assert np.max(np.abs(constant - expected)) > 0.1


@pytest.mark.parametrize("learning_rate", [0.3, 1e-3])
def test_weight_decay_is_decoupled_from_learning_rate(learning_rate):
    weight_decay_rate = 0.1
    init = _random((20, 64), seed=10)
    grads = _grads((20, 64), 1, seed=11)
    with_decay = _run_keras(
        Adafactor(learning_rate=learning_rate, weight_decay_rate=0.1),
        init,
        grads,
    ).numpy()
    without_decay = _run_keras(
        Adafactor(learning_rate=learning_rate, weight_decay_rate=None),
        init,
        grads,
    ).numpy()
    # new = (1 - wd) * param - update, so the difference is -wd * param for
    # any learning rate (Keras' built-in decay would give -wd * lr * param).
    np.testing.assert_allclose(
        with_decay - without_decay, -weight_decay_rate * init, atol=1e-6
    )

    # With a zero gradient the update is zero and only the decay remains.
    zero = _run_keras(
        Adafactor(learning_rate=learning_rate, weight_decay_rate=0.1),
        init,
        [np.zeros_like(init)],
    ).numpy()
    np.testing.assert_allclose(zero, 0.9 * init, rtol=1e-6)


def test_default_weight_decay_rate_is_1e_5():
    init = _random((16,), seed=12, scale=10.0)
    variable = _run_keras(Adafactor(), init, [np.zeros_like(init)])
    np.testing.assert_allclose(variable.numpy(), (1 - 1e-5) * init, rtol=1e-7)


def test_exclude_from_weight_decay():
    init = _random((16,), seed=13)
    optimizer = Adafactor(weight_decay_rate=0.5)
    optimizer.exclude_from_weight_decay(var_names=["no_decay"])
    decayed = keras.Variable(init, name="decayed")
    kept = keras.Variable(init, name="no_decay")
    zero = np.zeros_like(init)
    optimizer.apply_gradients([(zero, decayed), (zero, kept)])
    np.testing.assert_allclose(decayed.numpy(), 0.5 * init, rtol=1e-6)
    np.testing.assert_array_equal(kept.numpy(), init)


@pytest.mark.parametrize("param_scale", [0.01, 50.0])
def test_constant_step_size_at_step_1000(param_scale):
    learning_rate = 0.3
    size = 64
    init = _random((size,), seed=14, scale=param_scale)
    grad = _random((size,), seed=15)
    optimizer = Adafactor(learning_rate=learning_rate, weight_decay_rate=None)
    variable = keras.Variable(init, name="param")
    optimizer.build([variable])
    optimizer.iterations.assign(999)
    optimizer.apply_gradients([(grad, variable)])
    assert int(optimizer.iterations.numpy()) == 1000

    # t = 1000: beta2 = 1 - 1000^-0.8 and v starts at zero, so
    # v = 1000^-0.8 * g^2 and y = sign(g) * 1000^0.4 (RMS ~15.8 > 1). Clipping
    # to RMS 1 leaves y = sign(g), so the step is exactly lr * sign(g): no
    # 1/sqrt(t) cap (which would give 0.0316) and no parameter scaling.
    v = _slot_values(optimizer, "param")["v"]
    np.testing.assert_allclose(
        v, 1000.0**-0.8 * grad.astype("float64") ** 2, rtol=1e-5
    )
    step = variable.numpy().astype("float64") - init
    np.testing.assert_allclose(
        step, -learning_rate * np.sign(grad), rtol=0,
        atol=1e-6 * max(1.0, param_scale),
    )
    np.testing.assert_allclose(
        np.sqrt(np.mean(step**2)), learning_rate, rtol=1e-5
    )


def test_constant_step_size_after_1000_real_steps():
    # Run the steps for real on a scalar-sized problem: every clipped update
    # of a 1-element variable has |y| = 1, so each step is exactly lr.
    optimizer = Adafactor(learning_rate=0.3, weight_decay_rate=None)
    variable = keras.Variable(np.zeros((1,), "float32"), name="param")
    grad = tf.constant([1.0])

    @tf.function(jit_compile=True)
    def run(n):
        for _ in tf.range(n):
            optimizer.apply_gradients([(grad, variable)])

    optimizer.build([variable])
    run(tf.constant(999))
    before = variable.numpy()[0]
    run(tf.constant(1))
    assert int(optimizer.iterations.numpy()) == 1000
    np.testing.assert_allclose(before, -0.3 * 999, rtol=1e-5)
    np.testing.assert_allclose(variable.numpy()[0] - before, -0.3, rtol=1e-4)


@pytest.mark.parametrize(
    "shape, kwargs, expected",
    [
        ((100, 512), {}, {"v": (100, 512)}),
        ((128, 128), {}, {"v_row": (128,), "v_col": (128,)}),
        ((128, 160), {}, {"v_row": (128,), "v_col": (160,)}),
        ((160, 128), {}, {"v_row": (128,), "v_col": (160,)}),
        ((160, 2, 128), {}, {"v_row": (2, 128), "v_col": (160, 2)}),
        ((4, 128, 130), {}, {"v_row": (4, 128), "v_col": (4, 130)}),
        ((512,), {}, {"v": (512,)}),
        ((), {}, {"v": ()}),
        ((128, 128), {"factored": False}, {"v": (128, 128)}),
        ((100, 512), {"min_dim_size_to_factor": 100},
         {"v_row": (100,), "v_col": (512,)}),
        ((100, 512), {"beta1": 0.9}, {"v": (100, 512), "m": (100, 512)}),
        ((128, 128), {"beta1": 0.0},
         {"v_row": (128,), "v_col": (128,), "m": (128, 128)}),
    ],
)
def test_factoring_decision_and_slot_shapes(shape, kwargs, expected):
    optimizer = Adafactor(**kwargs)
    variable = keras.Variable(np.zeros(shape, "float32"), name="prompt")
    optimizer.build([variable])
    slots = _slots(optimizer)
    assert slots == {f"prompt_{k}": v for k, v in expected.items()}
    for var in optimizer.variables:
        if var.name.startswith("prompt_"):
            assert var.dtype == "float32"
            np.testing.assert_array_equal(var.numpy(), 0.0)
    # And an update runs on every layout.
    optimizer.apply_gradients([(np.ones(shape, "float32"), variable)])
    assert np.all(np.isfinite(variable.numpy()))


def test_xla_matches_eager():
    shapes = {"small": (20, 64), "big": (128, 160), "vec": (37,)}
    inits = {k: _random(s, seed=20 + i) for i, (k, s) in
             enumerate(shapes.items())}
    grads = {k: _grads(s, 4, seed=30 + i) for i, (k, s) in
             enumerate(shapes.items())}
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.3, decay_steps=1, decay_rate=0.7
    )

    def make():
        optimizer = Adafactor(learning_rate=schedule, beta1=0.5)
        variables = [keras.Variable(inits[k], name=k) for k in shapes]
        optimizer.build(variables)
        return optimizer, variables

    eager_opt, eager_vars = make()
    for step in range(4):
        eager_opt.apply_gradients(
            [(grads[k][step], v) for k, v in zip(shapes, eager_vars)]
        )

    xla_opt, xla_vars = make()

    @tf.function(jit_compile=True)
    def train_step(step_grads):
        xla_opt.apply_gradients(list(zip(step_grads, xla_vars)))

    for step in range(4):
        train_step([tf.constant(grads[k][step]) for k in shapes])

    assert int(xla_opt.iterations.numpy()) == 4
    for name, eager_var, xla_var in zip(shapes, eager_vars, xla_vars):
        np.testing.assert_allclose(
            xla_var.numpy(), eager_var.numpy(), rtol=1e-6, atol=1e-6,
            err_msg=name,
        )
    # Both also agree with the reference (so the comparison is not vacuous).
    expected, _ = T5XAdafactorReference(
        learning_rate=lambda s: 0.3 * 0.7**s, beta1=0.5
    ).run(inits["big"], grads["big"])
    np.testing.assert_allclose(xla_vars[1].numpy(), expected, atol=1e-6)


def test_mirrored_strategy_matches_reference():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    shape = (128, 160)
    init = _random(shape, seed=40)
    grads = _grads(shape, 3, seed=41)
    with strategy.scope():
        variable = keras.Variable(init, name="param")
        optimizer = Adafactor(beta1=0.9)
        optimizer.build([variable])

    @tf.function
    def train_step(grad):
        def replica_fn():
            # d/dx sum(x * grad) = grad, computed per replica.
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(variable.value * grad)
            g = tape.gradient(loss, variable.value)
            optimizer.apply_gradients([(g, variable)])

        strategy.run(replica_fn)

    for grad in grads:
        train_step(tf.constant(grad))
    expected, _ = T5XAdafactorReference(beta1=0.9).run(init, grads)
    np.testing.assert_allclose(variable.numpy(), expected, atol=1e-6)


def test_indexed_slices_gradient_matches_dense():
    init = _random((10, 8), seed=50)
    table_sparse = keras.Variable(init, name="table")
    table_dense = keras.Variable(init, name="table")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table_sparse.value, [1, 3, 3]) ** 2)
    grad = tape.gradient(loss, table_sparse.value)
    assert isinstance(grad, tf.IndexedSlices)
    Adafactor().apply_gradients([(grad, table_sparse)])
    Adafactor().apply_gradients([(tf.convert_to_tensor(grad), table_dense)])
    np.testing.assert_allclose(table_sparse.numpy(), table_dense.numpy())
    assert not np.allclose(table_sparse.numpy(), init)


def test_config_round_trip():
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.3, decay_steps=10, decay_rate=0.5
    )
    optimizer = Adafactor(
        learning_rate=schedule,
        decay_rate=0.7,
        beta1=0.9,
        clipping_threshold=2.0,
        weight_decay_rate=1e-3,
        multiply_by_parameter_scale=True,
        epsilon1=1e-20,
        epsilon2=1e-4,
        factored=False,
        min_dim_size_to_factor=64,
        global_clipnorm=1.0,
        name="my_adafactor",
    )
    config = optimizer.get_config()
    assert "weight_decay" not in config
    assert config["decay_rate"] == 0.7
    assert config["beta1"] == 0.9
    assert config["min_dim_size_to_factor"] == 64
    assert config["factored"] is False
    assert config["multiply_by_parameter_scale"] is True
    restored = Adafactor.from_config(config)
    assert restored.get_config() == config
    assert isinstance(restored.learning_rate, tf.Tensor)  # schedule(0)
    assert isinstance(
        restored._learning_rate, keras.optimizers.schedules.ExponentialDecay
    )

    # Through Keras' (de)serialization registry as well.
    serialized = keras.optimizers.serialize(Adafactor(learning_rate=0.1))
    assert serialized["registered_name"] == "keras_prompt>Adafactor"
    deserialized = keras.optimizers.deserialize(serialized)
    assert isinstance(deserialized, Adafactor)
    assert deserialized.get_config()["learning_rate"] == pytest.approx(0.1)
    assert deserialized.get_config()["weight_decay_rate"] == 1e-5

    # The restored optimizer behaves identically.
    init = _random((20, 64), seed=60)
    grads = _grads((20, 64), 3, seed=61)
    a = _run_keras(optimizer, init, grads).numpy()
    b = _run_keras(restored, init, grads).numpy()
    np.testing.assert_array_equal(a, b)


def test_defaults():
    config = Adafactor().get_config()
    assert config["learning_rate"] == pytest.approx(0.3)
    assert config["decay_rate"] == 0.8
    assert config["beta1"] is None
    assert config["clipping_threshold"] == 1.0
    assert config["weight_decay_rate"] == 1e-5
    assert config["multiply_by_parameter_scale"] is False
    assert config["epsilon1"] == 1e-30
    assert config["epsilon2"] == 1e-3
    assert config["factored"] is True
    assert config["min_dim_size_to_factor"] == 128


def test_saved_model_round_trip_keeps_optimizer(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=Adafactor(learning_rate=0.1, beta1=0.9), loss="mse")
    x = np.ones((8, 4), "float32")
    y = np.zeros((8, 3), "float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, Adafactor)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == 1
    original = model.optimizer.variables
    restored = loaded.optimizer.variables
    # iteration, learning_rate, kernel_v, kernel_m, bias_v, bias_m
    assert len(original) == len(restored) == 6
    for a, b in zip(original, restored):
        assert a.shape == b.shape and a.name.endswith(b.name)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.any(original[3].numpy() != 0)  # momentum was written


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(learning_rate=-0.1), ValueError, "learning_rate"),
        (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
        (dict(learning_rate="fast"), ValueError, "learning_rate"),
        (dict(decay_rate=0.0), ValueError, "decay_rate"),
        (dict(decay_rate=1.5), ValueError, "decay_rate"),
        (dict(decay_rate=-0.8), ValueError, "decay_rate"),
        (dict(beta1=1.0), ValueError, "beta1"),
        (dict(beta1=-0.1), ValueError, "beta1"),
        (dict(clipping_threshold=0.0), ValueError, "clipping_threshold"),
        (dict(weight_decay_rate=1.0), ValueError, "weight_decay_rate"),
        (dict(weight_decay_rate=-1e-5), ValueError, "weight_decay_rate"),
        (dict(epsilon1=-1.0), ValueError, "epsilon1"),
        (dict(epsilon2=-1.0), ValueError, "epsilon2"),
        (dict(min_dim_size_to_factor=-1), ValueError, "min_dim_size_to_factor"),
        (dict(min_dim_size_to_factor=12.5), ValueError,
         "min_dim_size_to_factor"),
        (dict(multiply_by_parameter_scale="yes"), TypeError,
         "multiply_by_parameter_scale"),
        (dict(factored=1), TypeError, "factored"),
        (dict(weight_decay=1e-4), ValueError, "weight_decay_rate"),
        (dict(not_an_argument=1), ValueError, "not_an_argument"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Adafactor(**kwargs)


def test_integer_learning_rate_is_accepted():
    assert Adafactor(learning_rate=1).get_config()["learning_rate"] == 1.0


def test_docstring_example_runs():
    doc = Adafactor.__doc__
    assert "Args:" in doc and "Example:" in doc
    code = doc.split("```python", 1)[1].split("```", 1)[0]
    exec(textwrap.dedent(code), {})
