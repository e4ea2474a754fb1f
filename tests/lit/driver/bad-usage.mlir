// Bad usage: one `qmmar-opt: error:` line on stderr that names the pass or target and the
// option (in kebab-case), or keeps the parser's column and reason; exit code 2 (checked, with
// every option of every qmmar pass and target, by tests/test_opt_cli.py).
// RUN: not qmmar-opt %s -t 'aclnn-cpp{header=maybe}' 2>&1 | filecheck %s --check-prefix=TARGET --match-full-lines
// RUN: not qmmar-opt %s -t 'aclnn-cpp{bogus=1}' 2>&1 | filecheck %s --check-prefix=TARGET-OPTION --match-full-lines
// RUN: not qmmar-opt %s -p 'lower-mc2-to-aclnn{weight-format=zz}' 2>&1 | filecheck %s --check-prefix=CHOICE --match-full-lines
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{min_m=1 bogus=2}' 2>&1 | filecheck %s --check-prefix=UNKNOWN --match-full-lines
// RUN: not qmmar-opt %s -p 'fuse-quant-matmul-all-reduce{group=}' 2>&1 | filecheck %s --check-prefix=SYNTAX --match-full-lines

// TARGET: qmmar-opt: error: aclnn-cpp: header must be true or false, not 'maybe'
// TARGET-OPTION: qmmar-opt: error: aclnn-cpp: unknown option bogus; its options are header, memory-plan
// CHOICE: qmmar-opt: error: lower-mc2-to-aclnn: weight-format must be one of nd, nz, not 'zz'
// UNKNOWN: qmmar-opt: error: fuse-quant-matmul-all-reduce: unknown option bogus; its options are soc, cann, group, scenario, min-m, check-only, remarks, report, numerics, drop-compute-bound-int8-comm, int8-tops, link-gbps
// SYNTAX: qmmar-opt: error: in 'fuse-quant-matmul-all-reduce{group=}' at column 36: Unknown argument value, wrap argument in quotes to pass arbitrary string values

func.func @f() {
  func.return
}
