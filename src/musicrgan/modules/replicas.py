"""The replicas of a tf.distribute strategy (`train --strategy mirrored|multi-worker`), for
the parts of a family that run inside a training step: how many, which one, a replica's
share of the loss, and a statistic summed over every replica's batch. Outside a strategy:
one replica, index 0, the loss and the statistic as they are."""

from __future__ import annotations

from .. import import_tensorflow

tf = import_tensorflow()


def count() -> int:
    """Replicas training in step."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def index():
    """This replica's index (0 on one device): a training step's random seeds differ by it,
    so replicas do not draw the same noise."""
    return tf.distribute.get_replica_context().replica_id_in_sync_group


def step_seed(optimizer, stream: int):
    """A stateless seed for a training step's draws: distinct for every step (the
    optimizer's iterations), every stream of draws within it, and every replica (so that
    replicas, and workers running the same graph, do not draw the same noise); on one
    device, (iterations, stream)."""
    return tf.stack([tf.cast(optimizer.iterations, tf.int32), stream + 1000 * index()])


def share(loss):
    """The loss whose gradient a replica gives: Keras sums the replicas' gradients, so each
    gives 1/replicas of its batch's mean (what Keras's own training step does)."""
    return loss / count()


def total(statistic):
    """The sum of `statistic` over every replica's batch (an all-reduce): what one device
    would have counted over the global batch. Statistics kept in variables (an EMA
    codebook's counts) update from it, every replica the same."""
    if count() == 1:
        return statistic
    return tf.distribute.get_replica_context().all_reduce("sum", statistic)


def gathered(values):
    """`values` (batch, ...) of every replica's batch, one after another (an all-gather):
    for a statistic that is not a sum, such as a minimum."""
    if count() == 1:
        return values
    return tf.distribute.get_replica_context().all_gather(values, axis=0)


def once(update) -> None:
    """Run `update()` once for all replicas, outside the replicas (merge_call), where
    assigning a variable sets it on every replica: for updates every replica would make
    alike (an average of weights that are equal on every replica) to variables that a
    replica may not assign by itself (a layer's weights, made without an aggregation)."""
    tf.distribute.get_replica_context().merge_call(lambda strategy: update())


def agreed(values: dict) -> dict:
    """Scalars (a training step's logs) averaged over every replica: what each logs is the
    same everywhere. (In a multi-worker session Keras reads a custom step's logs on each
    worker as that worker computed them, so the chief's history would hold its own batches'
    losses alone, and a NaN seen by one worker alone would stop it and not the others.)"""
    if count() == 1:
        return values
    names = list(values)
    mean = tf.distribute.get_replica_context().all_reduce(
        "mean", tf.stack([tf.cast(values[n], tf.float32) for n in names]))
    return {name: mean[i] for i, name in enumerate(names)}
