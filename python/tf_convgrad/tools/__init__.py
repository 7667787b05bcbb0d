"""The developer and user tools built on the op library: everything that is not the runtime.

Nothing here is imported by ``import tf_convgrad`` except through ``python -m tf_convgrad``:

* :mod:`.reference`: the float64 NumPy reference (no TensorFlow).
* :mod:`.oracle`: ``tf.raw_ops`` in crash-isolated worker processes, oneDNN on or off.
* :mod:`.crosscheck`, :mod:`.model_check`: ``python -m tf_convgrad crosscheck [--model]``.
* :mod:`.bench`, :mod:`.train_bench`: ``python -m tf_convgrad bench [--train]``.
"""
