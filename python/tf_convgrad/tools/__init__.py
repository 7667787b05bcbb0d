"""The developer and user tools built on the op library: everything that is not the runtime.

Nothing here is imported by ``import tf_convgrad`` except through ``python -m tf_convgrad``:

* :mod:`.problems`: the problem type and its named tiers (no TensorFlow, no NumPy).
* :mod:`.reference`: the float64 NumPy reference, einsum and loops (no TensorFlow).
* :mod:`.metrics`: the tolerance table and the error measures.
* :mod:`.worker`: the one crash-isolated worker pool (child processes that may die).
* :mod:`.oracle`: ``tf.raw_ops`` in crash-isolated worker processes, oneDNN on or off.
* :mod:`.crosscheck` (with :mod:`.crosscheck_grid`, :mod:`.crosscheck_run`,
  :mod:`.crosscheck_report`), :mod:`.model_check`: ``python -m tf_convgrad crosscheck [--model]``.
* :mod:`.bench` (with :mod:`.bench_cases`, :mod:`.bench_memory`), :mod:`.train_bench`:
  ``python -m tf_convgrad bench [--memory | --train]``.
"""
