"""Data-parallel training beyond one device: several devices of one machine, or several machines.

One copy of the model per device ("replica"), every global batch split between them and the
gradients averaged, so the weights stay identical everywhere. Two engines do this for Keras 3;
this module only wraps them, and the model builders and ``train.train_model`` run unchanged:

- **One machine, several devices (TensorFlow backend)**: ``tf.distribute.MirroredStrategy``.
  :func:`build_in_scope` builds and compiles a model inside its scope, where the variables and
  the optimizer state must be created.
- **Several machines (JAX backend)**: ``keras.distribution.DataParallel`` over
  ``jax.distributed`` (``tf.distribute.MultiWorkerMirroredStrategy`` does not train Keras 3
  models; docs/scaling.md). :func:`init_data_parallel` joins the processes; every batch must
  then be whole, or one process waits for the others forever: :func:`whole_batches`,
  :func:`even_batch_size`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import keras

__all__ = [
    "DISTRIBUTIONS",
    "replica_count",
    "build_in_scope",
    "init_data_parallel",
    "check_data_parallel",
    "one_device",
    "whole_batches",
    "even_batch_size",
    "is_chief",
    "process_out_dir",
]

#: The options of ``pneumo train --distribution`` and ``experiment.run_candidate``:
#: a ``tf.distribute`` strategy on one machine, or JAX data parallelism over processes.
DISTRIBUTIONS = ("mirrored", "jax")


def _strategy(strategy):
    """A ``tf.distribute.Strategy``: ``"mirrored"`` (every GPU of the machine, else the CPU)
    or a strategy object, returned as it is."""
    if not isinstance(strategy, str):
        return strategy
    if strategy != "mirrored":
        raise ValueError(f"strategy must be 'mirrored' or a tf.distribute.Strategy, "
                         f"got {strategy!r}")
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"tf.distribute strategies need the TensorFlow backend, Keras runs on "
                           f"{keras.backend.backend()!r}; on JAX use init_data_parallel()")
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()


def replica_count(strategy=None) -> int:
    """Number of model replicas a global batch is split between.

    ``strategy``: a ``tf.distribute.Strategy``, a ``keras.distribution.Distribution``,
    ``"mirrored"``, or ``None`` for the one in effect: the Keras distribution set by
    :func:`init_data_parallel` if any, else TensorFlow's current strategy (1 outside any scope).
    """
    if strategy is None:
        strategy = keras.distribution.distribution()
        if strategy is None:
            if keras.backend.backend() != "tensorflow":
                return 1
            import tensorflow as tf

            strategy = tf.distribute.get_strategy()
    elif isinstance(strategy, str):
        strategy = _strategy(strategy)
    if isinstance(strategy, keras.distribution.DataParallel):
        return int(strategy.num_model_replicas)
    if hasattr(strategy, "num_replicas_in_sync"):
        return int(strategy.num_replicas_in_sync)
    raise TypeError(f"strategy must be a tf.distribute.Strategy, keras.distribution.DataParallel,"
                    f" 'mirrored' or None, got {type(strategy).__name__}")


def build_in_scope(builder: Callable[..., keras.Model], strategy=None, **kwargs) -> keras.Model:
    """``builder(**kwargs)`` with its variables and optimizer made under ``strategy``.

    Args:
        builder: a function returning a compiled model, e.g. ``models.build_five_block_cnn``.
        strategy: a ``tf.distribute.Strategy`` or ``"mirrored"``; ``None`` builds as usual
            (on JAX, under the distribution set by :func:`init_data_parallel`, which Keras
            applies to every variable by itself).
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
    with _strategy(strategy).scope():
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
    that step. MirroredStrategy does not need this.

    Args:
        dataset: ``tf.data.Dataset`` of batches of ``global_batch`` rows (the last one may be
            shorter), e.g. from ``generators.make_dataset(batch_size=global_batch)``.
        global_batch: rows per batch over all processes, a multiple of the replica count
            (:func:`even_batch_size` for validation).

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

