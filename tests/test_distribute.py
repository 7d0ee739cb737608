"""Tests of pneumo_helpers.distribute: the helpers, MirroredStrategy over two logical CPUs, and a
two-process data-parallel training on JAX over 127.0.0.1.

The distributed runs happen in subprocesses: logical CPU devices and ``jax.distributed`` must be
set up before the framework initialises, which the pytest process has long done. Each worker
prints one ``RESULT {json}`` line; the tests compare those. The equivalence checks use a tiny
CNN without BatchNormalization or Dropout (MirroredStrategy computes BatchNormalization
statistics per replica, and dropout masks are drawn per replica, so those would differ by
design) trained with plain SGD.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

import keras  # noqa: E402

from pneumo_helpers import distribute, models  # noqa: E402

TIMEOUT = 120  # seconds per subprocess; a hung collective must not hang the test suite

# Shared by the worker scripts: the model and data every run trains on.
COMMON = textwrap.dedent("""
    import json, os, sys
    import numpy as np

    def tiny_cnn(learning_rate=0.5):
        # No BatchNormalization, no Dropout: replicas compute exactly what one device does.
        import keras
        model = keras.Sequential([
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="binary_crossentropy",
                      metrics=[keras.metrics.AUC(name="auc")])
        return model

    def tiny_data(global_batch, n=64):
        import tensorflow as tf
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 0.6, (n, 16, 16, 1)).astype("float32")
        y = np.tile([0.0, 1.0], n // 2).astype("float32")
        x[y == 1, 4:10, 4:10] = 1.0
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch)

    def checksum(model):
        return float(sum(np.abs(np.asarray(w, dtype=np.float64)).sum()
                         for w in model.get_weights()))
""")

MIRRORED_WORKER = COMMON + textwrap.dedent("""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]  # two devices, before TensorFlow starts
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from pneumo_helpers import distribute, train

    out = sys.argv[1]
    mirrored = tf.distribute.MirroredStrategy(devices=["/cpu:0", "/cpu:1"])
    global_batch = 8 * distribute.replica_count(mirrored)
    ds = tiny_data(global_batch)

    train.set_seed(0)
    single = distribute.build_in_scope(tiny_cnn)  # default strategy: one device
    start = single.get_weights()
    multi = distribute.build_in_scope(tiny_cnn, mirrored)
    multi.set_weights(start)
    runs = {}
    for name, model in (("one_device", single), ("mirrored", multi)):
        runs[name] = model.fit(ds, epochs=3, verbose=0).history["loss"]
    diff = max(float(np.abs(a - b).max())
               for a, b in zip(single.get_weights(), multi.get_weights()))

    # train_model under the strategy: checkpoint, then a crash after epoch 2 and a resume.
    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated crash")

    model = distribute.build_in_scope(tiny_cnn, mirrored)
    try:
        train.train_model(model, ds, ds, out_dir=out, epochs=3, monitor="val_loss",
                          mode="min", verbose=0, callbacks=[Crash()])
        crashed = False
    except RuntimeError:
        crashed = True
    backup_left = os.path.isdir(os.path.join(out, "backup"))
    model = distribute.build_in_scope(tiny_cnn, mirrored)
    history = train.train_model(model, ds, ds, out_dir=out, epochs=3, monitor="val_loss",
                                mode="min", verbose=0)
    config = json.load(open(os.path.join(out, "config.json")))
    loaded = keras.models.load_model(os.path.join(out, "model.keras"))
    print("RESULT " + json.dumps(dict(
        replicas=mirrored.num_replicas_in_sync, global_batch=global_batch,
        variable_type=type(multi.weights[0].value).__name__,
        runs=runs, final_weight_diff=diff, crashed=crashed, backup_left=backup_left,
        epochs=history["epoch"].tolist(), resumed_from=config["resumed_from_epoch"],
        files=sorted(os.listdir(out)),
        loaded_matches=bool(all(np.array_equal(a, b) for a, b in
                                zip(loaded.get_weights(), model.get_weights()))))))
""")

JAX_WORKER = COMMON + textwrap.dedent("""
    process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    import keras
    from pneumo_helpers import distribute, train

    distribution = distribute.init_data_parallel(f"127.0.0.1:{port}", num_processes=2,
                                                 process_id=process_id)
    import jax
    global_batch = 8 * distribute.replica_count()  # replicas of the distribution in effect
    ds = tiny_data(global_batch, n=72)  # four whole batches and a short one of 8 rows
    train_ds = distribute.whole_batches(ds, global_batch)
    val_batch = distribute.even_batch_size(72, at_most=16)
    val_ds = distribute.whole_batches(tiny_data(val_batch, n=72), val_batch)
    train.set_seed(0)
    model = distribute.build_in_scope(tiny_cnn)
    start = model.get_weights()
    history = train.train_model(model, train_ds, val_ds, out_dir=distribute.process_out_dir(out),
                                epochs=1, monitor="val_auc", mode="max", verbose=0)
    result = dict(process=jax.process_index(), processes=jax.process_count(),
                  chief=distribute.is_chief(), replicas=distribution.num_model_replicas,
                  global_batch=global_batch, val_batch=val_batch,
                  loss=history["loss"].tolist(),
                  val_auc=history["val_auc"].tolist(), checksum=checksum(model),
                  files=sorted(os.listdir(distribute.process_out_dir(out))))
    if process_id == 0:
        # Reference: the same start and global batches on this process's one device,
        # validated on all 72 rows at the usual batch size.
        keras.distribution.set_distribution(None)
        reference = tiny_cnn()
        reference.set_weights(start)
        fit = reference.fit(train_ds, validation_data=ds, epochs=1, verbose=0).history
        result.update(one_device_loss=fit["loss"], one_device_val_auc=fit["val_auc"])
    print("RESULT " + json.dumps(result), flush=True)
""")


def _result(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, f"worker printed no RESULT line; its output ends with:\n{output[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def _env(**extra) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **extra)
    env.pop("TF_CONFIG", None)
    return env


def _run_all(commands, env, timeout: float = TIMEOUT) -> list[str]:
    """Start every command, wait for all (killing any still running after ``timeout`` s)."""
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for cmd in commands]
    outputs = []
    try:
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
                pytest.fail(f"a worker did not finish in {timeout} s; output:\n{out[-3000:]}")
            assert proc.returncode == 0, f"worker failed:\n{out[-3000:]}"
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outputs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Helpers, in process ----------------------------------------------------------------------

def test_replica_count_and_clear_errors():
    import tensorflow as tf

    assert distribute.replica_count() == 1  # outside any scope: one device
    assert distribute.replica_count(tf.distribute.get_strategy()) == 1
    with pytest.raises(ValueError, match="'mirrored'"):
        distribute.replica_count("tpu_pod")
    with pytest.raises(TypeError, match="tf.distribute.Strategy"):
        distribute.replica_count(3)
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=jax"):
        distribute.init_data_parallel("127.0.0.1:1234", num_processes=2, process_id=0)
    with pytest.raises(RuntimeError, match="init_data_parallel"):
        distribute.check_data_parallel()
    assert distribute.is_chief() and distribute.process_out_dir("runs/x").name == "x"


def test_build_in_scope_builds_compiled_models():
    import tensorflow as tf

    default = tf.distribute.get_strategy()
    model = distribute.build_in_scope(models.build_baseline_cnn, default, image_size=16)
    assert model.optimizer is not None and model.input_shape == (None, 16, 16, 1)
    with pytest.raises(ValueError, match="compile it inside"):
        distribute.build_in_scope(lambda: keras.Sequential([keras.layers.Dense(1)]), default)


def test_whole_batches_and_even_batch_size():
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.zeros((40, 2, 2, 1), "float32"),
                                             np.ones(40, "float32"))).batch(16)
    assert [len(y) for _, y in distribute.whole_batches(ds, 16)] == [16, 16]
    assert distribute.even_batch_size(40, at_most=16) == 10  # one replica: 40 = 4 x 10
    assert distribute.even_batch_size(624) == 52  # the Kaggle test split: 12 x 52
    assert distribute.even_batch_size(7, at_most=4) == 1
    two = SimpleNamespace(num_replicas_in_sync=2)  # duck-typed strategy with two replicas
    assert distribute.even_batch_size(72, at_most=16, strategy=two) == 12
    assert 73 % distribute.even_batch_size(73, at_most=16, strategy=two) == 1  # fewest left
    with pytest.raises(ValueError, match="rows"):
        distribute.even_batch_size(0)
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        distribute.whole_batches(np.zeros((4, 2)), 2)


# --- One machine, two devices: MirroredStrategy -----------------------------------------------

def test_mirrored_two_cpus_matches_one_device_and_resumes(tmp_path):
    script = tmp_path / "mirrored_worker.py"
    script.write_text(MIRRORED_WORKER)
    (out,) = _run_all([[sys.executable, str(script), str(tmp_path / "run")]],
                      _env(KERAS_BACKEND="tensorflow"))
    result = _result(out)
    assert result["replicas"] == 2 and result["global_batch"] == 16
    assert "Mirrored" in result["variable_type"]  # one copy of each weight per device
    one, two = (np.array(result["runs"][k]) for k in ("one_device", "mirrored"))
    assert one[1:].min() < one[0]  # it learns
    # Same global batch, same start: only float32 summation order differs between the
    # one-device mean and the all-reduced per-replica means.
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-6)
    assert result["final_weight_diff"] < 1e-4
    # Checkpoint and BackupAndRestore work under the strategy.
    assert result["crashed"] and result["backup_left"]
    assert result["epochs"] == [0, 1, 2] and result["resumed_from"] == 2
    assert {"model.keras", "history.csv", "config.json"} <= set(result["files"])
    assert "backup" not in result["files"] and result["loaded_matches"]


# --- Several machines: two processes on 127.0.0.1, JAX DataParallel ---------------------------

def test_two_process_data_parallel_on_jax(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed: pip install pneumo[distributed]")
    script = tmp_path / "jax_worker.py"
    script.write_text(JAX_WORKER)
    port = _free_port()
    outputs = _run_all([[sys.executable, str(script), str(i), str(port), str(tmp_path / "run")]
                        for i in range(2)], _env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu"))
    chief, worker = map(_result, outputs)
    assert (chief["process"], worker["process"]) == (0, 1)
    assert chief["chief"] and not worker["chief"]
    assert chief["processes"] == 2 and chief["replicas"] == 2 and chief["global_batch"] == 16
    # The processes trained one model: same losses, same weights (the best epoch's).
    assert chief["loss"] == worker["loss"] and chief["val_auc"] == worker["val_auc"]
    assert chief["checksum"] == pytest.approx(worker["checksum"], rel=1e-6)
    # ... the model one device trains on the same global batches; validation saw all 72 rows.
    assert chief["val_batch"] == 12
    np.testing.assert_allclose(chief["loss"], chief["one_device_loss"], rtol=1e-4)
    np.testing.assert_allclose(chief["val_auc"], chief["one_device_val_auc"], atol=1e-4)
    # Each process kept its own run folder (no two processes writing one file).
    assert "model.keras" in chief["files"] and "model.keras" in worker["files"]
    assert (tmp_path / "run" / "worker1" / "model.keras").is_file()


def test_pneumo_train_on_two_jax_processes_is_the_one_training_path(tmp_path):
    """`pneumo train --distribution jax` twice (one process per machine, here both local):
    the same run_candidate as on one device, each process in its own folder, the chief's being
    the run's."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed: pip install pneumo[distributed]")
    from pneumo_helpers.config import SAMPLE_DIR
    from pneumo_helpers.metrics_report import MetricsReport
    from pneumo_helpers.runs import RunLayout

    port, run = _free_port(), RunLayout(tmp_path / "run")
    # With the shipped recipe's consistency term (both views of a film on one process) and
    # its pretraining (on one device in each process, then copied into the distributed model).
    tiny = dict(PNEUMO_EPOCHS="1", PNEUMO_IMAGE_SIZE="32", PNEUMO_BATCH_SIZE="16",
                PNEUMO_CONSISTENCY="0.1",
                PNEUMO_PRETRAIN_EPOCHS="1", JAX_PLATFORMS="cpu")
    env = _env(**tiny)
    env.pop("KERAS_BACKEND", None)  # pneumo train --distribution jax chooses it
    outputs = _run_all([[sys.executable, "-m", "pneumo_helpers.cli", "train",
                         "--data", str(SAMPLE_DIR), "--run-dir", str(run.root),
                         "--distribution", "jax", "--coordinator", f"127.0.0.1:{port}",
                         "--num-processes", "2", "--process-id", str(i)] for i in range(2)],
                       env, timeout=2 * TIMEOUT)  # pretrained first
    assert "pneumo train --card-only" in outputs[0]
    config = json.loads(run.shipped.config.read_text())
    assert config["distribution"] == "jax" and config["versions"]["backend"] == "jax"
    assert config["consistency"] == 0.1 and config["pretrain_epochs"] == 1
    assert run.shipped.pretrain_history.is_file()
    assert run.shipped.model.is_file() and (run.shipped.root / "worker1" / "model.keras").is_file()
    shipped = MetricsReport.read(run.shipped.val_metrics)
    assert shipped.split == "val" and 0 < shipped.threshold < 1
