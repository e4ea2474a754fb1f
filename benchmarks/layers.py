"""A model of N transformer layers, 25 ops and 3 chains a layer, for the benchmarks of the
driver and of the HTML report (and the report's tests).

Each layer has a norm-like element-wise op, a column-parallel QKV matmul (no collective),
an attention output projection with int8 communication (fused), an MLP up projection, an
MLP down projection with a plain all-reduce (fused), and a chain that must not fuse (its
dequant result has a second user).
"""

from __future__ import annotations

M, H, W = 256, 512, 8
T = {
    "act": f"tensor<{M}x{H}xi8>", "w": f"tensor<{H}x{H}xi8>", "acc": f"tensor<{M}x{H}xi32>",
    "h": f"tensor<{M}x{H}xbf16>", "s": f"tensor<{H}xbf16>", "a2a": f"tensor<{W}x{M // W}x{H}xi8>",
    "part": f"tensor<{M // W}x{H}xi8>", "q": f"tensor<{M}x{H}xi8>",
}  # fmt: skip


def layer(i: int, h: str) -> tuple[list[str], str]:
    """One layer's ops, reading the hidden state `h`; returns the ops and the new state."""
    t = T
    ops = [
        f"%n{i} = arith.mulf {h}, {h} : {t['h']}",
        f"%x{i} = qmm.quant %n{i}, %s : ({t['h']}, {t['s']}) -> {t['q']}",
        f"%qkv{i} = qmm.matmul %x{i}, %w : ({t['act']}, {t['w']}) -> {t['acc']}",
        f"%v{i} = qmm.dequant %qkv{i}, %s : ({t['acc']}, {t['s']}) -> {t['h']}",
        f"%av{i} = qmm.quant %v{i}, %s : ({t['h']}, {t['s']}) -> {t['q']}",
        # attention output projection, int8 communication: fused
        f"%o{i} = qmm.matmul %av{i}, %w : ({t['act']}, {t['w']}) -> {t['acc']}",
        f"%oy{i} = qmm.dequant %o{i}, %s : ({t['acc']}, {t['s']}) -> {t['h']}",
        f"%oz{i} = qmm.add %oy{i}, {h} : {t['h']}",
        f"%oq{i} = qmm.quant %oz{i}, %s1 : ({t['h']}, {t['s']}) -> {t['q']}",
        f'%oa{i} = qmm.alltoall %oq{i} on "tp" world_size = {W} : {t["q"]} -> {t["a2a"]}',
        f"%or{i} = qmm.reducesum %oa{i} s1(%s1 : {t['s']}) s2(%s2 : {t['s']}) : {t['a2a']} -> {t['part']}",
        f'%og{i} = qmm.allgather %or{i} on "tp" world_size = {W} : {t["part"]} -> {t["q"]}',
        f"%oh{i} = qmm.dequant %og{i}, %s2 : ({t['q']}, {t['s']}) -> {t['h']}",
        # MLP: up projection, then down projection with a plain all-reduce: fused
        f"%u{i} = qmm.quant %oh{i}, %s : ({t['h']}, {t['s']}) -> {t['q']}",
        f"%up{i} = qmm.matmul %u{i}, %w : ({t['act']}, {t['w']}) -> {t['acc']}",
        f"%uy{i} = qmm.dequant %up{i}, %s : ({t['acc']}, {t['s']}) -> {t['h']}",
        f"%d{i} = qmm.quant %uy{i}, %s : ({t['h']}, {t['s']}) -> {t['q']}",
        f"%dn{i} = qmm.matmul %d{i}, %w : ({t['act']}, {t['w']}) -> {t['acc']}",
        f"%dy{i} = qmm.dequant %dn{i}, %s : ({t['acc']}, {t['s']}) -> {t['h']}",
        f'%dr{i} = qmm.all_reduce %dy{i} on "tp" world_size = {W} : {t["h"]}',
        # a chain that must not fuse: its dequant result has a second user
        f"%b{i} = qmm.matmul %d{i}, %w : ({t['act']}, {t['w']}) -> {t['acc']}",
        f"%by{i} = qmm.dequant %b{i}, %s : ({t['acc']}, {t['s']}) -> {t['h']}",
        f'%br{i} = qmm.all_reduce %by{i} on "tp" world_size = {W} : {t["h"]}',
        f"%bs{i} = qmm.add %br{i}, %by{i} : {t['h']}",
        f"%h{i} = qmm.add %dr{i}, %bs{i} : {t['h']}",
    ]
    return ops, f"%h{i}"


def model(layers: int) -> str:
    t = T
    lines = [f"func.func @model(%h: {t['h']}, %w: {t['w']}, %s: {t['s']}, %s1: {t['s']}, "
             f"%s2: {t['s']}) -> {t['h']} {{"]  # fmt: skip
    h = "%h"
    for i in range(layers):
        ops, h = layer(i, h)
        lines += [f"  {op}" for op in ops]
    lines += [f"  func.return {h} : {t['h']}", "}"]
    return "\n".join(lines) + "\n"
