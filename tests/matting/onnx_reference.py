"""The published ONNX graph made runnable in fp32 by onnxruntime: the reference the port is checked against.

The graph computes in fp16 with Cast nodes around its edges, and its nodes are
not in topological order. Here every initializer is widened to fp32, every Cast
becomes an Identity, the stale fp16 type annotations are dropped, and the nodes
are sorted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def _widen_initializers(graph: onnx.GraphProto) -> None:
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT16:
            wide = numpy_helper.to_array(init).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(wide, init.name))


def _casts_to_identity(graph: onnx.GraphProto) -> None:
    for node in graph.node:
        if node.op_type == "Cast":
            node.op_type = "Identity"
            del node.attribute[:]


def _sort_nodes(graph: onnx.GraphProto) -> None:
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError("the ONNX graph has a cycle or a dangling input")
        for node in ready:
            known.update(node.output)
        ordered.extend(ready)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def fp32_session(onnx_path: Path) -> ort.InferenceSession:
    model = onnx.load(str(onnx_path))
    _widen_initializers(model.graph)
    _casts_to_identity(model.graph)
    _sort_nodes(model.graph)
    del model.graph.value_info[:]
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def reference_alpha(session: ort.InferenceSession, prepared: np.ndarray) -> np.ndarray:
    """α for one prepared 1024² RGB ``uint8`` image, preprocessed exactly as the model expects."""
    x = (prepared.astype(np.float32) / 255.0 - 0.5).transpose(2, 0, 1)[None]
    output = session.run(["output"], {"input": x})[0]
    return np.asarray(output[0, 0], dtype=np.float32)
