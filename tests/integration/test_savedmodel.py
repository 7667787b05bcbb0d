"""SavedModel round trip: saved here, loaded in a fresh Python process after ``import tf_convgrad``.

The saved module uses all three ops: the Keras model built from ``tf_convgrad.layers`` (its
training gradients run Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter and
DepthwiseConv2dNativeBackpropInput) and a function calling the three raw ops. The fresh process
checks, against values computed here before saving:

* loading *before* ``import tf_convgrad`` fails with TF's "Op type not registered" naming our op
  (why the import is needed), and succeeds after it;
* an inference-only export saved with ``SaveOptions(experimental_custom_gradients=False)``
  contains TF's own ops only (the layers' forward pass is TF's) and loads without the import,
  as a stock TF Serving would need;
* the forward pass, the saved training-gradient function and the raw ops give the same values;
* gradients are usable after loading: through the loaded forward pass (the custom gradients of
  ``tf_convgrad.conv2d`` / ``depthwise_conv2d`` are saved with the model), and through the loaded
  raw ops (their gradients are registered again by ``import tf_convgrad``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
import tf_convgrad

import configs
import helpers
from models import mobilenet_like, training_data

CASES = {
    "cbf": "cbf-grouped_dilated_g2-EXPLICIT",
    "dbf": "dbf-unequal_strides_dilated-EXPLICIT",
    "dbi": "dbi-unequal_strides_dilated-EXPLICIT",
}


def _raw_op_inputs():
    """Float32 NCHW inputs of the three raw ops, flattened into one argument list."""
    by_id = {case.id: case for case in configs.SMALL}
    args = []
    for op, case_id in CASES.items():
        inputs = helpers.op_inputs(by_id[case_id], "float32", "NCHW")
        args += [inputs[name] for name in helpers.TENSOR_NAMES[op]]
    return by_id, args


class _Exported(tf.Module):
    def __init__(self, model, raw_args):
        super().__init__()
        self.model = model
        self.trainable = list(model.trainable_variables)
        by_id, _ = _raw_op_inputs()
        self._cases = {op: by_id[case_id] for op, case_id in CASES.items()}
        x_spec = tf.TensorSpec([None, 3, 16, 16], tf.float32)
        self.predict = tf.function(self._predict, input_signature=[x_spec])
        self.gradients = tf.function(
            self._gradients, input_signature=[x_spec, tf.TensorSpec([None], tf.int64)]
        )
        self.raw_ops = tf.function(
            self._raw_ops, input_signature=[tf.TensorSpec.from_tensor(a) for a in raw_args]
        )

    def _predict(self, x):
        return self.model(x, training=False)

    def _gradients(self, x, y):
        with tf.GradientTape() as tape:
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=self.model(x, training=False)
            )
            loss = tf.reduce_mean(loss)
        return tape.gradient(loss, self.trainable)

    def _raw_ops(self, *args):
        outputs = []
        for k, (op, case) in enumerate(self._cases.items()):
            names = helpers.TENSOR_NAMES[op]
            kwargs = {names[0]: args[2 * k], names[1]: args[2 * k + 1]}
            kwargs[helpers.SIZES_NAME[op]] = helpers.sizes_value(case, "NCHW")
            outputs.append(helpers.OURS[op](**kwargs, **helpers.op_attrs(case, "NCHW")))
        return outputs


def _raw_op_gradients(fn, args):
    """d sum(sin(outputs)) / d args, through fn (which calls the raw ops)."""
    with tf.GradientTape() as tape:
        tape.watch(args)
        loss = sum(tf.reduce_sum(tf.sin(o)) for o in fn(*args))
    return tape.gradient(loss, args)


def _predict_gradients(predict, variables, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(predict(x)))
    return tape.gradient(loss, [x, *variables])


_LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    path, serving_path, data_path, out_path = sys.argv[1:5]
    data = np.load(data_path)
    report = {}
    try:
        tf.saved_model.load(path)
        report["before_import"] = "loaded"
    except Exception as error:  # expected: our ops are not registered yet
        report["before_import"] = f"{type(error).__name__}: {error}"
    # Inference only, saved without custom gradients: TF's own ops only, no import needed.
    serving = tf.saved_model.load(serving_path).signatures["serving_default"]
    serving_out = serving(tf.constant(data["x"]))["output_0"].numpy()

    import tf_convgrad  # registers the ops and their gradients

    loaded = tf.saved_model.load(path)
    x, y = tf.constant(data["x"]), tf.constant(data["y"])
    raw = [tf.constant(data[f"raw_{k}"]) for k in range(int(data["n_raw"]))]
    out = {"predict": loaded.predict(x).numpy(), "serving": serving_out}
    for k, g in enumerate(loaded.gradients(x, y)):
        out[f"gradients_{k}"] = g.numpy()
    for k, o in enumerate(loaded.raw_ops(*raw)):
        out[f"raw_out_{k}"] = o.numpy()
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(loaded.predict(x)))
    for k, g in enumerate(tape.gradient(loss, [x, *loaded.trainable])):
        out[f"predict_grad_{k}"] = g.numpy()
    with tf.GradientTape() as tape:
        tape.watch(raw)
        loss = sum(tf.reduce_sum(tf.sin(o)) for o in loaded.raw_ops(*raw))
    for k, g in enumerate(tape.gradient(loss, raw)):
        out[f"raw_grad_{k}"] = g.numpy()
    np.savez(out_path, **out)
    print(json.dumps(report))
    """
)


def test_savedmodel_loads_in_fresh_process_with_values_and_gradients(tmp_path):
    model = mobilenet_like(tf_convgrad.layers, data_format="channels_first")
    x, y = training_data("channels_first")
    x, y = tf.constant(x), tf.constant(y)
    _, raw = _raw_op_inputs()
    module = _Exported(model, raw)
    expected = {"predict": module.predict(x).numpy()}
    expected |= {f"gradients_{k}": g.numpy() for k, g in enumerate(module.gradients(x, y))}
    expected |= {f"raw_out_{k}": o.numpy() for k, o in enumerate(module.raw_ops(*raw))}
    grads = _predict_gradients(module.predict, module.trainable, x)
    expected |= {f"predict_grad_{k}": g.numpy() for k, g in enumerate(grads)}
    grads = _raw_op_gradients(module.raw_ops, raw)
    expected |= {f"raw_grad_{k}": g.numpy() for k, g in enumerate(grads)}

    path = str(tmp_path / "saved")
    tf.saved_model.save(module, path)
    serving_path = str(tmp_path / "serving")
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    serving = tf.Module()
    serving.model, serving.predict = model, module.predict  # nothing that runs our ops
    tf.saved_model.save(
        serving, serving_path, signatures={"serving_default": module.predict}, options=options
    )
    expected["serving"] = expected["predict"]
    data_path = tmp_path / "data.npz"
    np.savez(data_path, x=x.numpy(), y=y.numpy(), n_raw=len(raw),
             **{f"raw_{k}": a.numpy() for k, a in enumerate(raw)})  # fmt: skip
    out_path = tmp_path / "out.npz"
    proc = subprocess.run(
        [sys.executable, "-c", _LOADER, path, serving_path, str(data_path), str(out_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "not registered" in report["before_import"], report
    assert "ConvGrad>" in report["before_import"], report

    got = dict(np.load(out_path))
    assert sorted(got) == sorted(expected)
    assert len([k for k in got if k.startswith("gradients_")]) == len(model.trainable_variables)
    for key, want in expected.items():
        assert np.abs(want).max() > 0, f"{key}: all zero, the comparison would prove nothing"
        np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6, err_msg=key)
