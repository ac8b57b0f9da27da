"""A ``torch.export`` program's graph with its layers as modules again, so that Torch-Pruning's DepGraph can cut it
without a recipe file.

``ExportedProgram.module()`` computes with functional ATen calls on the weights (``aten.conv2d(x, weight, …)``):
DepGraph finds no ``nn.Conv2d`` to prune. :func:`layers_as_modules` rewrites each convolution, batch norm and linear
call into a call of an ``nn.Conv2d``/``nn.BatchNorm2d``/``nn.Linear`` holding the same tensors (``torch.fx``), and
keeps only what the new graph uses; everything else (additions, activations, pooling, reshapes) stays as the program
has it. A reshape that hard-codes a channel count then makes a channel cut fail at its run-time check, in one line,
as any cut that breaks a network does.
"""

from __future__ import annotations

import torch
from torch import fx, nn

aten = torch.ops.aten


def _tensor(gm: fx.GraphModule, node: object) -> torch.Tensor | None:
    """The tensor a ``get_attr`` argument names (None for None)."""
    if node is None:
        return None
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        raise TypeError("a layer whose weights are computed, not stored")
    return gm.get_parameter(node.target) if node.target in dict(gm.named_parameters()) else gm.get_buffer(node.target)


def _conv(gm: fx.GraphModule, args: tuple) -> tuple[nn.Module, fx.Node]:
    x, w, b = args[0], _tensor(gm, args[1]), _tensor(gm, args[2] if len(args) > 2 else None)
    stride, padding, dilation, groups = (list(args[3:7]) + [1, 0, 1, 1][len(args[3:7]):])
    if w.dim() != 4 or isinstance(padding, str):
        raise TypeError("not a 2-D convolution with explicit padding")
    conv = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride, padding, dilation, groups,
                     bias=b is not None)
    conv.weight = nn.Parameter(w.detach().clone())
    if b is not None:
        conv.bias = nn.Parameter(b.detach().clone())
    return conv, x


def _convolution(gm: fx.GraphModule, args: tuple) -> tuple[nn.Module, fx.Node]:
    x, w, b, stride, padding, dilation, transposed, _, groups = args
    if transposed:
        raise TypeError("a transposed convolution")
    return _conv(gm, (x, w, b, stride, padding, dilation, groups))


def _batch_norm(gm: fx.GraphModule, args: tuple) -> tuple[nn.Module, fx.Node]:
    # aten.batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled)
    x, w, b, mean, var, training, momentum, eps = args[:8]
    if training or mean is None or w is None:
        raise TypeError("a batch norm without running statistics or affine weights")
    w, b, mean, var = (_tensor(gm, a) for a in (w, b, mean, var))
    bn = nn.BatchNorm2d(w.shape[0], eps=eps, momentum=momentum)
    bn.weight, bn.bias = nn.Parameter(w.detach().clone()), nn.Parameter(b.detach().clone())
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
    return bn.eval(), x


def _linear(gm: fx.GraphModule, args: tuple) -> tuple[nn.Module, fx.Node]:
    x, w, b = args[0], _tensor(gm, args[1]), _tensor(gm, args[2] if len(args) > 2 else None)
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    lin.weight = nn.Parameter(w.detach().clone())
    if b is not None:
        lin.bias = nn.Parameter(b.detach().clone())
    return lin, x


LAYERS = {aten.conv2d.default: _conv, aten.convolution.default: _convolution, aten.batch_norm.default: _batch_norm,
          aten.linear.default: _linear}


class GraphLayers(nn.Module):
    """The rewritten graph behind a plain module: TorchScript's ONNX exporter takes any module with a ``graph``
    attribute for a ScriptModule (a GraphModule's is an ``fx.Graph``) and fails on it."""

    def __init__(self, graph_module: fx.GraphModule) -> None:
        super().__init__()
        self.net = graph_module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def layers_as_modules(program_module: fx.GraphModule) -> GraphLayers:
    """A copy of an exported program's ``module()`` whose convolutions, batch norms and linear layers are modules
    (``net.layer<i>``), computing the same; raises ``TypeError`` where a layer cannot be rewritten."""
    graph = fx.Graph()
    graph._codegen = program_module.graph._codegen  # the program's calling convention (pytree in and out specs)
    env: dict[fx.Node, fx.Node] = {}
    layers: dict[str, nn.Module] = {}
    for node in program_module.graph.nodes:
        if node.op == "call_module" and node.target == "_guards_fn":
            continue  # the program's checks of its own export-time input ranges: not this module's (a re-export
            # with another batch range, as the DisWOT probe makes, would violate them)
        if node.op == "call_function" and node.target in LAYERS:
            module, x = LAYERS[node.target](program_module, node.args)
            name = f"layer{len(layers)}"
            layers[name] = module
            env[node] = graph.call_module(name, (env[x],))
        else:
            env[node] = graph.node_copy(node, lambda n: env[n])
    for node in reversed(graph.nodes):  # the weights the layers now hold are read nowhere else
        if node.op == "get_attr" and not node.users:
            graph.erase_node(node)
    root = nn.Module()
    for name, module in layers.items():
        root.add_module(name, module)
    for node in graph.nodes:  # what else the graph still reads: the program's other attributes
        if node.op in ("get_attr", "call_module") and node.target not in layers:
            _copy_attr(program_module, root, node.target)
    return GraphLayers(fx.GraphModule(root, graph))


def _copy_attr(src: nn.Module, dst: nn.Module, target: str) -> None:
    *path, leaf = target.split(".")
    for part in path:
        if not hasattr(dst, part):
            dst.add_module(part, nn.Module())
        src, dst = getattr(src, part), getattr(dst, part)
    value = getattr(src, leaf)
    if isinstance(value, nn.Parameter):
        dst.register_parameter(leaf, value)
    elif isinstance(value, torch.Tensor):
        dst.register_buffer(leaf, value)
    elif isinstance(value, nn.Module):
        dst.add_module(leaf, value)
    else:
        setattr(dst, leaf, value)
