"""Data-parallel training beyond one device: several devices of one machine, or several machines.

Data parallelism keeps one copy of the model per device ("replica"), splits every global batch
between the replicas and averages their gradients, so the weights stay identical everywhere and
an epoch takes ``1 / replicas`` of the steps. Two engines do this for Keras 3, and this module
only wraps them (the model builders of :mod:`pneumo_helpers.models` and
:func:`pneumo_helpers.train.train_model` are used unchanged):

- **One machine, several devices (TensorFlow backend)**: ``tf.distribute.MirroredStrategy``.
  :func:`get_strategy` makes it, :func:`build_in_scope` builds and compiles a model inside its
  scope (the variables and the optimizer state must be created there), and
  :func:`scaled_batch_size` turns a per-device batch into the global batch the dataset must
  yield. ``model.fit`` then splits each batch between the devices by itself; checkpoints and
  ``BackupAndRestore`` of ``train_model`` work as on one device.
- **Several machines (JAX backend)**: ``keras.distribution.DataParallel`` over
  ``jax.distributed``. ``tf.distribute.MultiWorkerMirroredStrategy`` does not train Keras 3
  models: ``model.fit`` fails with ``ValueError: Attempt to convert a value (PerReplica:{...})
  with an unsupported type (<class '...values.PerReplica'>) to a Tensor`` (seen here with
  TensorFlow 2.21 / Keras 3.15; keras-team/keras#20585, #20329). :func:`init_data_parallel`
  joins the processes and sets the distribution; every process then runs the same script on
  the same global dataset, of which Keras feeds each process its own share. Every batch must
  then be whole (a short last batch leaves one process waiting for the others forever):
  :func:`whole_batches` drops it, and :func:`even_batch_size` picks a validation batch size
  that leaves (almost) no rows in it.

The learning rate follows the global batch: :func:`scaled_learning_rate` (linear scaling rule)
and :func:`warmup` (a few epochs of linear warm-up to it). See ``docs/scaling.md`` for the
commands.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Callable

import keras

__all__ = [
    "STRATEGIES",
    "DISTRIBUTIONS",
    "get_strategy",
    "use_logical_cpus",
    "replica_count",
    "scaled_batch_size",
    "scaled_learning_rate",
    "warmup",
    "build_in_scope",
    "init_data_parallel",
    "check_data_parallel",
    "one_device",
    "whole_batches",
    "even_batch_size",
    "is_chief",
    "process_out_dir",
]

STRATEGIES = ("default", "mirrored")
#: The options of ``pneumo train --distribution`` and ``experiment.run_candidate``:
#: a ``tf.distribute`` strategy on one machine, or JAX data parallelism over processes.
DISTRIBUTIONS = ("mirrored", "jax")

_MULTI_WORKER_BROKEN = (
    "tf.distribute.MultiWorkerMirroredStrategy does not train Keras 3 models: model.fit fails "
    "with \"Attempt to convert a value (PerReplica...) with an unsupported type\" "
    "(keras-team/keras#20585). To train on several machines, run with KERAS_BACKEND=jax and "
    "call pneumo_helpers.distribute.init_data_parallel(...) (see docs/scaling.md)")


def get_strategy(name="default", *, devices=None):
    """A ``tf.distribute.Strategy`` by name (TensorFlow backend).

    Args:
        name: ``"default"`` (or ``None``): TensorFlow's default strategy, i.e. one device,
            no change to anything; ``"mirrored"``: ``tf.distribute.MirroredStrategy`` over
            ``devices``. A strategy object is returned as it is. ``"multi_worker"`` raises:
            Keras 3 cannot train with it across workers.
        devices: device names for ``"mirrored"``, e.g. ``["/gpu:0", "/gpu:1"]``; default all
            GPUs of the machine, or the CPU when there is none.

    Returns:
        The strategy. Make it once and pass the same object to :func:`build_in_scope` and
        :func:`scaled_batch_size`.

    Raises:
        ValueError: unknown name, ``devices`` with ``"default"``, or a multi-worker strategy
            (which Keras 3 cannot train with; the message says what to use instead).
        RuntimeError: the Keras backend is not TensorFlow.
    """
    if name is not None and not isinstance(name, str):
        return name
    name = (name or "default").lower().replace("-", "_")
    if name in ("multi_worker", "multi_worker_mirrored", "multiworkermirrored"):
        raise ValueError(_MULTI_WORKER_BROKEN)
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES} or a tf.distribute.Strategy, "
                         f"got {name!r}")
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"tf.distribute strategies need the TensorFlow backend, Keras runs on "
                           f"{keras.backend.backend()!r}; on JAX use init_data_parallel()")
    import tensorflow as tf

    if name == "default":
        if devices is not None:
            raise ValueError("devices only applies to strategy='mirrored'")
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)


def use_logical_cpus(n: int) -> list[str]:
    """Split the CPU into ``n`` logical TensorFlow devices, e.g. to try ``"mirrored"`` on a laptop.

    Must run before TensorFlow initialises its devices (before any tensor, model or strategy
    is made in the process), because TensorFlow fixes its device list then.

    Returns:
        The device names, ``["/cpu:0", ..., f"/cpu:{n-1}"]``, for ``get_strategy("mirrored",
        devices=...)``.

    Raises:
        ValueError: ``n`` is not a positive int. RuntimeError: TensorFlow is already
            initialised (the message says to call this first, in a fresh process).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as exc:
        current = len(tf.config.list_logical_devices("CPU"))
        if current == n:
            return [f"/cpu:{i}" for i in range(n)]
        raise RuntimeError(
            f"cannot split the CPU into {n} devices: TensorFlow is already initialised with "
            f"{current}; call use_logical_cpus() at the start of a fresh process, before any "
            f"model or tensor is made ({exc})") from None
    return [f"/cpu:{i}" for i in range(n)]


def replica_count(strategy=None) -> int:
    """Number of model replicas a global batch is split between.

    ``strategy``: a ``tf.distribute.Strategy``, a ``keras.distribution.Distribution``, a
    strategy name (see :func:`get_strategy`) or ``None`` for the one in effect: the Keras
    distribution set by :func:`init_data_parallel` if any, else TensorFlow's current strategy
    (1 outside any scope).
    """
    if strategy is None:
        strategy = keras.distribution.distribution()
        if strategy is None:
            if keras.backend.backend() != "tensorflow":
                return 1
            import tensorflow as tf

            strategy = tf.distribute.get_strategy()
    elif isinstance(strategy, str):
        strategy = get_strategy(strategy)
    if isinstance(strategy, keras.distribution.DataParallel):
        return int(strategy.num_model_replicas)
    if hasattr(strategy, "num_replicas_in_sync"):
        return int(strategy.num_replicas_in_sync)
    raise TypeError(f"strategy must be a tf.distribute.Strategy, keras.distribution.DataParallel,"
                    f" a name or None, got {type(strategy).__name__}")


def scaled_batch_size(per_replica: int, strategy=None) -> int:
    """The global batch size: ``per_replica`` images on each replica, all replicas together.

    Build the dataset with this batch size (``generators.make_dataset(batch_size=...)``);
    ``model.fit`` gives each replica ``per_replica`` of every batch.

    Args:
        per_replica: images per replica and step, e.g. 32 (what fits one device).
        strategy: see :func:`replica_count`.

    Returns:
        ``per_replica * replica_count(strategy)``.
    """
    if isinstance(per_replica, bool) or not isinstance(per_replica, int) or per_replica < 1:
        raise ValueError(f"per_replica must be a positive int (images per device and step), "
                         f"got {per_replica!r}")
    return per_replica * replica_count(strategy)


def scaled_learning_rate(base_learning_rate: float, global_batch: int, *,
                         base_batch: int = 64) -> float:
    """Linear scaling rule: a batch ``k`` times larger takes a learning rate ``k`` times larger.

    ``base_learning_rate * global_batch / base_batch`` (Goyal et al. 2017, "Accurate, Large
    Minibatch SGD"). ``base_learning_rate`` is the one tuned at ``base_batch`` on one device
    (1e-3 at 64 for the five-block CNN, ``RunConfig`` "full"). Pair it with :func:`warmup`
    from about 4x on: large rates in the first steps, while the weights are random, can make
    the training diverge. The rule was derived for SGD; with Adam (this project's optimizer)
    treat it as an upper bound and check validation AUC against ``sqrt`` scaling,
    ``base_learning_rate * math.sqrt(global_batch / base_batch)``.
    """
    for name, value in (("global_batch", global_batch), ("base_batch", base_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not (isinstance(base_learning_rate, (int, float)) and math.isfinite(base_learning_rate)
            and base_learning_rate > 0):
        raise ValueError(f"base_learning_rate must be a positive number, got "
                         f"{base_learning_rate!r}")
    return float(base_learning_rate) * global_batch / base_batch


def warmup(learning_rate: float, *, epochs: int = 5,
           start_fraction: float = 0.0) -> keras.callbacks.LearningRateScheduler:
    """A callback raising the learning rate linearly to ``learning_rate`` over ``epochs`` epochs.

    Epoch ``e < epochs`` trains at ``learning_rate * (f + (1 - f) * (e + 1) / epochs)`` with
    ``f = start_fraction``; from epoch ``epochs`` on the optimizer's rate is left alone, so
    ``train_model``'s ``ReduceLROnPlateau`` keeps working. Pass it in
    ``train_model(..., callbacks=[warmup(lr)])`` and compile the model at ``learning_rate``.
    Per epoch, not per step, so it is Keras' own ``LearningRateScheduler`` and resumes
    correctly after ``BackupAndRestore``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not 0.0 <= start_fraction < 1.0:
        raise ValueError(f"start_fraction must be in [0, 1), got {start_fraction!r}")
    peak = float(learning_rate)

    def schedule(epoch: int, current: float) -> float:
        if epoch >= epochs:
            return current
        return peak * (start_fraction + (1.0 - start_fraction) * (epoch + 1) / epochs)

    return keras.callbacks.LearningRateScheduler(schedule)


def build_in_scope(builder: Callable[..., keras.Model], strategy=None, **kwargs) -> keras.Model:
    """``builder(**kwargs)`` with its variables and optimizer made under ``strategy``.

    Args:
        builder: a function returning a compiled model, e.g. ``models.build_five_block_cnn``.
        strategy: a ``tf.distribute.Strategy`` or name (see :func:`get_strategy`); ``None``
            builds as usual (on JAX, under the distribution set by :func:`init_data_parallel`,
            which Keras applies to every variable by itself).
        **kwargs: passed to ``builder``, e.g. ``image_size=128``.

    Returns:
        The compiled model; ``model.fit`` and :func:`pneumo_helpers.train.train_model` train it
        on all the strategy's devices.
    """
    if not callable(builder):
        raise TypeError(f"builder must be a function returning a compiled keras.Model, got "
                        f"{type(builder).__name__}")
    if strategy is None:
        return builder(**kwargs)
    with get_strategy(strategy).scope():
        model = builder(**kwargs)
    if not isinstance(model, keras.Model) or getattr(model, "optimizer", None) is None:
        raise ValueError(f"{getattr(builder, '__name__', builder)} did not return a compiled "
                         "keras.Model; compile it inside the builder, so the optimizer is "
                         "made in the scope")
    return model


def init_data_parallel(coordinator: str, *, num_processes: int,
                       process_id: int) -> keras.distribution.DataParallel:
    """Join a multi-process (multi-machine) data-parallel training on the JAX backend.

    Run the same script on every machine with ``KERAS_BACKEND=jax``, each with its own
    ``process_id``, and call this first, before building the model. It connects to the
    coordinator (``jax.distributed``, via ``keras.distribution.initialize``) and sets a
    ``keras.distribution.DataParallel`` over the devices of all processes as Keras' global
    distribution (Keras keeps it process-wide by design). Then build the model and call
    ``fit``/``train_model`` with the same global dataset (same seed) in every process: Keras
    gives each process its share of every batch and averages the gradients over all devices.

    Args:
        coordinator: ``"host:port"`` of process 0, reachable from every machine.
        num_processes: number of processes (usually machines).
        process_id: this process, ``0 .. num_processes - 1``; 0 is the chief.

    Returns:
        The distribution (``num_model_replicas`` = devices over all processes).

    Raises:
        RuntimeError: Keras does not run on JAX (the message says how), or JAX is not
            installed. ValueError: bad address or ids.
    """
    if keras.backend.backend() != "jax":
        raise RuntimeError(
            f"multi-machine data parallelism runs on the JAX backend, Keras runs on "
            f"{keras.backend.backend()!r}: start the process with KERAS_BACKEND=jax "
            "(tf.distribute.MultiWorkerMirroredStrategy does not train Keras 3 models, "
            "keras-team/keras#20585)")
    host, _, port = str(coordinator).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"coordinator must be 'host:port' of process 0, got {coordinator!r}")
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) \
            or num_processes < 1:
        raise ValueError(f"num_processes must be a positive int, got {num_processes!r}")
    if isinstance(process_id, bool) or not isinstance(process_id, int) \
            or not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be an int in [0, {num_processes}), got "
                         f"{process_id!r}")
    keras.distribution.initialize(coordinator, num_processes=num_processes,
                                  process_id=process_id)
    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    keras.distribution.set_distribution(distribution)
    return distribution


def check_data_parallel() -> keras.distribution.DataParallel:
    """The JAX data-parallel distribution in effect; RuntimeError saying how to start one."""
    current = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    if not isinstance(current, keras.distribution.DataParallel):
        raise RuntimeError(
            "distribution='jax' trains under a JAX data-parallel distribution, and none is "
            f"set (Keras backend {keras.backend.backend()!r}): start with `pneumo train "
            "--distribution jax --num-processes N --process-id I --coordinator HOST:PORT` "
            "or call init_data_parallel first (docs/scaling.md)")
    return current


@contextlib.contextmanager
def one_device():
    """Inside the block, Keras places nothing across processes (JAX): for the evaluation
    after a data-parallel training, which every process runs on all validation rows."""
    saved = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    if saved is None:
        yield
        return
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(saved)


def whole_batches(dataset, global_batch: int):
    """``dataset`` without its short last batch, for multi-process training.

    With ``keras.distribution`` over several processes every batch is split between the
    processes, so a short last batch gives them unequal shares and the training hangs at
    that step (seen here: both workers wait until killed). MirroredStrategy does not need this.

    Args:
        dataset: ``tf.data.Dataset`` of batches of ``global_batch`` rows (the last one may be
            shorter), e.g. from ``generators.make_dataset(batch_size=global_batch)``.
        global_batch: rows per batch over all processes, a multiple of the replica count
            (:func:`scaled_batch_size` for training, :func:`even_batch_size` for validation).

    Returns:
        The dataset with every batch exactly ``global_batch`` rows. Training data reshuffled
        every epoch loses different rows each epoch; validation data batched at
        :func:`even_batch_size` loses fewer rows than there are replicas.
    """
    if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch < 1:
        raise ValueError(f"global_batch must be a positive int, got {global_batch!r}")
    if not hasattr(dataset, "rebatch"):
        raise TypeError(f"dataset must be a batched tf.data.Dataset, got "
                        f"{type(dataset).__name__}")
    return dataset.rebatch(global_batch, drop_remainder=True)


def even_batch_size(rows: int, *, at_most: int = 64, strategy=None) -> int:
    """A batch size for ``rows`` images that :func:`whole_batches` drops (almost) nothing of.

    For validation and test data on several processes: a multiple of the replica count, at
    most ``at_most``, leaving the fewest rows in a short last batch (the larger size on ties).
    Fewer than ``replica_count(strategy)`` rows are left over; none when ``rows`` allows.
    Validation metrics need this instead of padding: Keras applies sample weights to
    ``weighted_metrics`` only, so zero-weight padding rows would count in AUC, recall, etc.

    Args:
        rows: number of images, e.g. ``len(val_manifest)``.
        at_most: largest batch size wanted (memory); raised to the replica count if smaller.
        strategy: see :func:`replica_count`.
    """
    for name, value in (("rows", rows), ("at_most", at_most)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    replicas = replica_count(strategy)
    sizes = range(replicas, max(at_most, replicas) + 1, replicas)
    return min(sizes, key=lambda size: (rows % size, -size))


def _process_id() -> int:
    if keras.backend.backend() != "jax":
        return 0  # the TensorFlow strategies used here run in one process
    import jax

    return int(jax.process_index())


def is_chief() -> bool:
    """True in process 0 of a multi-process training, and in any single-process run."""
    return _process_id() == 0


def process_out_dir(out_dir) -> Path:
    """The run folder this process writes to: ``out_dir`` for the chief, else
    ``out_dir/worker<i>``.

    Every process of a multi-process training runs ``train_model`` and writes its checkpoint,
    backup and logs; on a shared file system they must not write the same files. The weights
    are the same in every process, so the chief's folder is the result.
    """
    out = Path(out_dir).expanduser()
    pid = _process_id()
    return out if pid == 0 else out / f"worker{pid}"

