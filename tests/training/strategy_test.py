
import pytest
import tensorflow as tf

from keras_prompt.training import TrainingError
from keras_prompt.training import resolve_strategy
from keras_prompt.training.strategy import is_chief
from keras_prompt.training.strategy import strategy_name


class FakeResolver:
    calls = []

    def __init__(self, tpu=None):
        FakeResolver.calls.append(tpu)
        self.tpu = tpu


class FakeTPUStrategy:
    num_replicas_in_sync = 8

    def __init__(self, resolver):
        self.resolver = resolver


@pytest.fixture
def fake_tpu(monkeypatch):
    FakeResolver.calls = []
    connected = []
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver",
                        FakeResolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster",
                        lambda resolver: connected.append(resolver))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system",
                        lambda resolver: None)
    monkeypatch.setattr(tf.distribute, "TPUStrategy", FakeTPUStrategy)
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("TPU_ADDRESS", raising=False)
    return connected


def test_tpu_address_from_flag_reaches_the_resolver(fake_tpu):
    strategy = resolve_strategy("tpu", tpu="grpc://10.0.0.2:8470")
    assert isinstance(strategy, FakeTPUStrategy)
    assert FakeResolver.calls == ["grpc://10.0.0.2:8470"]
    assert strategy.resolver.tpu == "grpc://10.0.0.2:8470"
    assert fake_tpu[0] is strategy.resolver


def test_tpu_address_from_env_reaches_the_resolver(fake_tpu, monkeypatch):
    monkeypatch.setenv("TPU_NAME", "my-tpu-v3-8")
    strategy = resolve_strategy("tpu")
    assert FakeResolver.calls == ["my-tpu-v3-8"]
    # auto picks the TPU too when the environment names one.
    strategy = resolve_strategy("auto")
    assert isinstance(strategy, FakeTPUStrategy)
    # The flag wins over the environment.
    resolve_strategy("tpu", tpu="local")
    assert FakeResolver.calls[-1] == "local"


def _no_tpu(monkeypatch):
    def failing(tpu=None):
        raise ValueError("Please provide a TPU Name to connect to.")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver",
                        failing)


def test_forced_tpu_without_tpu_is_a_clear_error(fake_tpu, monkeypatch):
    _no_tpu(monkeypatch)
    with pytest.raises(TrainingError) as e:
        resolve_strategy("tpu")
    message = str(e.value)
    assert "strategy='tpu'" in message and "TPU_NAME" in message
    assert "strategy='auto'" in message
    with pytest.raises(TrainingError, match="'grpc://1.2.3.4:8470'"):
        resolve_strategy("tpu", tpu="grpc://1.2.3.4:8470")


def test_auto_falls_back_without_tpu(fake_tpu, monkeypatch):
    _no_tpu(monkeypatch)
    monkeypatch.setenv("TPU_NAME", "gone")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = resolve_strategy("auto")
    assert strategy is tf.distribute.get_strategy()
    assert strategy_name(strategy) == "default"
    assert is_chief(strategy)


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TrainingError, match="TF_CONFIG"):
        resolve_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(TrainingError, match="not valid JSON"):
        resolve_strategy("multi_worker")


def test_cpu_and_unknown():
    assert strategy_name(resolve_strategy("cpu")) == "one_device"
    with pytest.raises(TrainingError, match="Unknown strategy 'gpu'"):
        resolve_strategy("gpu")
    strategy = tf.distribute.get_strategy()
    assert resolve_strategy(strategy) is strategy
