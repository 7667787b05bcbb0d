"""The standalone GPU harness (no TensorFlow anywhere), one job per module.

``tests/gpu/run_harness.py`` is the command line; it puts ``tests/gpu`` on ``sys.path`` and
imports this package as ``harness``.

* :mod:`.package`: the ``tf_convgrad`` modules the harness shares with the suite (op table,
  geometry, tolerances, float64 reference, problem tables), loaded without TensorFlow.
* :mod:`.capi`: ctypes mirror of the C API in ``capi.cu.cc`` and the element storage types.
* :mod:`.problem`: one op call (:class:`~.problem.Problem`) and its seeded inputs.
* :mod:`.backends`: where buffers live (host for the emulation, CUDA through PyTorch) and the
  :class:`~.backends.Runner` that launches a problem.
* :mod:`.grid`: the correctness grid: problems and checks.
* :mod:`.torch_oracle`: PyTorch's gradients (cuDNN) and a float64 reference in tensor ops.
* :mod:`.large`: the cases over 2^31 elements.
* :mod:`.layers`, :mod:`.timing`, :mod:`.bench`: the benchmark layers, the timing method and the
  benchmark run.
* :mod:`.dry_run`: the checks that need neither a compiler nor a GPU.
* :mod:`.report`: the markdown tables, sections and files.
* :mod:`.plan`, :mod:`.hardware_check`: the budgeted hardware check (``--hardware-check``).
"""
