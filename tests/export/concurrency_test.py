"""Many threads sending mixed-task requests to one loaded SavedModel and to
one ONNX Runtime session: no errors, and every row gets exactly the answer
it gets when sent alone (no cross-talk between concurrent requests)."""

import threading

import numpy as np
import pytest

from tests.export.conftest import TASKS

THREADS = 8
REQUESTS_PER_THREAD = 6


@pytest.fixture(scope="module")
def bank_exports(shared_exports):
    # The bank exports the SavedModel and ONNX tests check (built once per
    # worker).
    return shared_exports.saved_model_bank(), shared_exports.onnx(
        "bank", "generate"
    )


def _hammer(run, num_rows):
    """Runs `THREADS` x `REQUESTS_PER_THREAD` random mixed-task requests
    through `run(rows, task_ids)` at once; returns the errors and the
    rows whose answer differs from the row sent alone."""
    alone = {
        (row, task): run([row], [task])[0]
        for row in range(num_rows)
        for task in range(len(TASKS))
    }
    errors, mismatches = [], []
    start = threading.Barrier(THREADS)

    def worker(seed):
        generator = np.random.default_rng(seed)
        start.wait()
        for _ in range(REQUESTS_PER_THREAD):
            size = int(generator.integers(1, 2 * num_rows + 1))
            rows = generator.integers(0, num_rows, size).tolist()
            tasks = generator.integers(0, len(TASKS), size).tolist()
            try:
                answers = run(rows, tasks)
            except Exception as error:  # noqa: BLE001 - collected, asserted
                errors.append(repr(error))
                continue
            for answer, row, task in zip(answers, rows, tasks):
                if not np.array_equal(answer, alone[(row, task)]):
                    mismatches.append((seed, row, task))

    threads = [
        threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors, mismatches


def test_saved_model_serves_threads_without_cross_talk(export_setup, bank_exports):
    import tensorflow as tf

    encoder = export_setup["batch"]
    generate = tf.saved_model.load(bank_exports[0]).signatures["generate_ids"]

    def run(rows, tasks):
        return generate(
            encoder_token_ids=tf.constant(encoder["encoder_token_ids"][rows]),
            encoder_padding_mask=tf.constant(
                encoder["encoder_padding_mask"][rows]
            ),
            task=tf.constant([TASKS[task] for task in tasks]),
        )["token_ids"].numpy()

    rows = len(encoder["encoder_token_ids"])
    errors, mismatches = _hammer(run, rows)
    assert errors == [] and mismatches == []


def test_onnx_session_serves_threads_without_cross_talk(export_setup, bank_exports):
    import onnxruntime

    encoder = export_setup["batch"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        bank_exports[1], options, providers=["CPUExecutionProvider"]
    )

    def run(rows, tasks):
        token_ids, invalid = session.run(
            ["token_ids", "invalid_inputs"],
            {
                "encoder_token_ids": encoder["encoder_token_ids"][rows],
                "encoder_padding_mask": encoder["encoder_padding_mask"][rows],
                "task": np.asarray(tasks, np.int32),
            },
        )
        assert not invalid.any()
        return token_ids

    rows = len(encoder["encoder_token_ids"])
    errors, mismatches = _hammer(run, rows)
    assert errors == [] and mismatches == []
