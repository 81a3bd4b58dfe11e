"""A minimal stand-in for einops' `rearrange` and `repeat`, enough for the reference's patterns
(axes split or merged with parentheses, transposed). Debian 12 packages no einops."""
import re

import torch


def _parse(side):
    groups = []
    for token in re.findall(r"\([^)]*\)|\S+", side):
        groups.append(token[1:-1].split() if token.startswith("(") else [token])
    return groups


def _expand(left, right, dim):
    """Names the axes that `...` stands for, and `()` as a unit axis."""
    if "..." in left:
        count = len(re.findall(r"\([^)]*\)|\S+", left)) - 1
        names = " ".join(f"_e{i}" for i in range(dim - count))
        left, right = left.replace("...", names), right.replace("...", names)
    return left, right


def rearrange(tensor, pattern, **sizes):
    if isinstance(tensor, (list, tuple)):
        tensor = torch.stack(list(tensor))
    left, right = (s.strip() for s in pattern.split("->"))
    left, right = _expand(left, right, tensor.dim())
    lgroups, rgroups = _parse(left), _parse(right)
    if len(lgroups) != tensor.dim():
        raise ValueError(f"pattern {pattern!r} does not match a {tensor.dim()}-d tensor")
    known = dict(sizes)
    for group, size in zip(lgroups, tensor.shape):
        unknown = [a for a in group if a not in known]
        product = 1
        for a in group:
            if a in known:
                product *= known[a]
        if len(unknown) == 1:
            known[unknown[0]] = size // product
        elif unknown:
            raise ValueError(f"cannot infer the axes {unknown} of {pattern!r}")
    axes = [a for g in lgroups for a in g]
    x = tensor.reshape([known[a] for a in axes])
    order = [a for g in rgroups for a in g]
    x = x.permute([axes.index(a) for a in order])
    return x.reshape([_prod(known[a] for a in g) for g in rgroups])


def repeat(tensor, pattern, **sizes):
    left, right = (s.strip() for s in pattern.split("->"))
    lgroups, rgroups = _parse(left), _parse(right)
    axes = [a for g in lgroups for a in g]
    known = dict(zip(axes, tensor.shape))
    known.update(sizes)
    order = [a for g in rgroups for a in g]
    x = tensor
    for a in order:
        if a not in axes:
            x = x.unsqueeze(-1)
            axes.append(a)
    x = x.permute([axes.index(a) for a in order])
    x = x.expand([known[a] for a in order]).contiguous()
    return x.reshape([_prod(known[a] for a in g) for g in rgroups])


def _prod(values):
    result = 1
    for v in values:
        result *= v
    return result
