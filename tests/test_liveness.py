"""The interpreter lets go of each value after its last use, and computes the same results."""

from __future__ import annotations

import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.context import Context
from xdsl.dialects import arith, builtin, cf, func, scf
from xdsl.interpreter import Interpreter
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.cf import CfFunctions
from xdsl.interpreters.func import FuncFunctions
from xdsl.interpreters.scf import ScfFunctions
from xdsl.ir import Block, Operation, SSAValue
from xdsl.parser import Parser

from helpers import parse, run
from qmmar.interpreter.liveness import RELEASED, ReleasingInterpreter

REGIONS_AND_BLOCKS = """
func.func @f(%a: i64, %b: i64, %dead: i64) -> i64 {
  %c = arith.addi %a, %b : i64
  %unused = arith.muli %a, %a : i64
  %lb = arith.constant 0 : index
  %ub = arith.constant 3 : index
  %st = arith.constant 1 : index
  %r = scf.for %i = %lb to %ub step %st iter_args(%acc = %c) -> (i64) {
    %n = arith.addi %acc, %b : i64
    scf.yield %n : i64
  }
  %d = arith.addi %r, %c : i64
  cf.br ^bb1(%d : i64)
^bb1(%e: i64):
  %f = arith.addi %e, %a : i64
  func.return %f : i64
}
"""


def parse_scalar(text: str) -> builtin.ModuleOp:
    ctx = Context()
    for dialect in (arith.Arith, builtin.Builtin, cf.Cf, func.Func, scf.Scf):
        ctx.load_dialect(dialect)
    return Parser(ctx, text).parse_module()


class LiveSets(Interpreter.Listener):
    """Before each op of `block`: the values the interpreter still holds."""

    def __init__(self, block: Block) -> None:
        self.block = block
        self.interp: Interpreter | None = None
        self.seen: dict[Operation, set[SSAValue]] = {}

    def will_interpret_op(self, op: Operation, args) -> None:
        if op.parent_block() is self.block:
            scope = self.interp._ctx.local_scope  # type: ignore[union-attr]
            self.seen[op] = {v for v, x in scope.items() if x is not RELEASED}


def expected_live(block: Block, op: Operation) -> set[SSAValue]:
    """Brute force: values of the block defined before `op` that a later op still reads
    (through any nested op), or that another block reads."""
    ops = list(block.ops)
    later = ops[ops.index(op) :]
    defined = [*block.args, *(r for o in ops[: ops.index(op)] for r in o.results)]
    live = set()
    for value in defined:
        users = [use.operation for use in value.uses]
        if any(block.find_ancestor_op_in_block(u) is None for u in users):
            live.add(value)
        elif any(any(u is o or o.is_ancestor(u) for o in later) for u in users):
            live.add(value)
    return live


def interpret(module: builtin.ModuleOp, args: tuple, releasing: bool):
    fn = next(op for op in module.walk() if isinstance(op, func.FuncOp))
    live = LiveSets(fn.body.blocks.first)  # type: ignore[arg-type]
    cls = ReleasingInterpreter if releasing else Interpreter
    interp = cls(module, listeners=(live,))
    live.interp = interp
    for functions in (ArithFunctions(), CfFunctions(), FuncFunctions(), ScfFunctions()):
        interp.register_implementations(functions)
    return interp.call_op(fn.sym_name.data, args), live


def test_values_die_after_their_last_use_across_regions_and_blocks():
    module = parse_scalar(REGIONS_AND_BLOCKS)
    (result,), live = interpret(module, (5, 7, 11), releasing=True)
    assert result == (5 + 7) + 3 * 7 + (5 + 7) + 5
    assert live.seen and all(live.seen[op] == expected_live(live.block, op) for op in live.seen)
    names = {op.name: {v.name_hint for v in seen} for op, seen in live.seen.items()}
    assert names["cf.br"] == {"a", "d"}  # %a is read in ^bb1; %b, %c and %r are gone


@st.composite
def straight_line(draw) -> str:
    """A function of 2 to 4 arguments and up to 12 adds, each reading any earlier values;
    returns some of them (unused values and arguments included)."""
    n_args = draw(st.integers(2, 4))
    names = [f"%a{i}" for i in range(n_args)]
    lines = []
    for i in range(draw(st.integers(1, 12))):
        lhs, rhs = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        lines.append(f"  %v{i} = arith.addi {lhs}, {rhs} : i64")
        names.append(f"%v{i}")
    returned = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
    params = ", ".join(f"%a{i}: i64" for i in range(n_args))
    types = ", ".join(["i64"] * len(returned))
    body = "\n".join([*lines, f"  func.return {', '.join(returned)} : {types}"])
    return f"func.func @f({params}) -> ({types}) {{\n{body}\n}}"


@settings(max_examples=60, deadline=None)
@given(text=straight_line())
def test_generated_programs_keep_exactly_the_live_values(text):
    module = parse_scalar(text)
    n_args = len(next(op for op in module.walk() if isinstance(op, func.FuncOp)).args)
    args = tuple(range(3, 3 + n_args))
    released, live = interpret(module, args, releasing=True)
    kept, _ = interpret(parse_scalar(text), args, releasing=False)
    assert released == kept
    assert all(live.seen[op] == expected_live(live.block, op) for op in live.seen)


def layers(n: int) -> str:
    """n unfused layers (matmul, dequant, quant) on 2 ranks, each reading the last."""
    t = {"x": "tensor<64x512xi8>", "w": "tensor<512x512xi8>", "acc": "tensor<64x512xi32>",
         "h": "tensor<64x512xbf16>", "s": "tensor<512xbf16>"}  # fmt: skip
    ops, x = [], "%x"
    for i in range(n):
        ops += [f"%acc{i} = qmm.matmul {x}, %w : ({t['x']}, {t['w']}) -> {t['acc']}",
                f"%y{i} = qmm.dequant %acc{i}, %s : ({t['acc']}, {t['s']}) -> {t['h']}",
                f"%q{i} = qmm.quant %y{i}, %s : ({t['h']}, {t['s']}) -> {t['x']}"]  # fmt: skip
        x = f"%q{i}"
    body = "\n  ".join([*ops, f"func.return {x} : {t['x']}"])
    return f"func.func @main(%x: {t['x']}, %w: {t['w']}, %s: {t['s']}) -> {t['x']} {{\n  {body}\n}}"


def peak_bytes(n_layers: int, inputs) -> int:
    module = parse(layers(n_layers))
    tracemalloc.start()
    run(module, inputs, 2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_run_spmd_holds_a_few_layers_not_all():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (2, 64, 512), dtype=np.int8)
    w = rng.integers(-128, 128, (512, 512), dtype=np.int8)
    s = np.full(512, 2.0**-10, dtype=np.float32)
    inputs = [x, w, s]
    one_layer_values = 2 * 64 * 512 * (4 + 2 + 1)  # per rank: acc, y, q
    assert peak_bytes(12, inputs) - peak_bytes(3, inputs) < 2 * one_layer_values
