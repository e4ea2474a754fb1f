// Four decode layers, each an unfused matmul + dequant with int8 communication (quant,
// all-to-all, reducesum, all-gather, dequant), the next layer reading the last's result
// quantised: the program of benchmarks/launches.py and of the README's memory plan.
func.func @decode(%h0: tensor<48x32xi8>, %w0: tensor<32x32xi8>, %w1: tensor<32x32xi8>, %w2: tensor<32x32xi8>, %w3: tensor<32x32xi8>, %scale: tensor<32xbf16>, %s1: tensor<32xbf16>, %s2: tensor<32xbf16>) -> tensor<48x32xbf16> attributes {qmmar.scenario = "decode"} {
  %acc0 = qmm.matmul %h0, %w0 : (tensor<48x32xi8>, tensor<32x32xi8>) -> tensor<48x32xi32>
  %y0 = qmm.dequant %acc0, %scale : (tensor<48x32xi32>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %q0 = qmm.quant %y0, %s1 : (tensor<48x32xbf16>, tensor<32xbf16>) -> tensor<48x32xi8>
  %a0 = qmm.alltoall %q0 on "tp" world_size = 8 : tensor<48x32xi8> -> tensor<8x6x32xi8>
  %rs0 = qmm.reducesum %a0 s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<8x6x32xi8> -> tensor<6x32xi8>
  %g0 = qmm.allgather %rs0 on "tp" world_size = 8 : tensor<6x32xi8> -> tensor<48x32xi8>
  %r0 = qmm.dequant %g0, %s2 : (tensor<48x32xi8>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %h1 = qmm.quant %r0, %s1 : (tensor<48x32xbf16>, tensor<32xbf16>) -> tensor<48x32xi8>
  %acc1 = qmm.matmul %h1, %w1 : (tensor<48x32xi8>, tensor<32x32xi8>) -> tensor<48x32xi32>
  %y1 = qmm.dequant %acc1, %scale : (tensor<48x32xi32>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %q1 = qmm.quant %y1, %s1 : (tensor<48x32xbf16>, tensor<32xbf16>) -> tensor<48x32xi8>
  %a1 = qmm.alltoall %q1 on "tp" world_size = 8 : tensor<48x32xi8> -> tensor<8x6x32xi8>
  %rs1 = qmm.reducesum %a1 s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<8x6x32xi8> -> tensor<6x32xi8>
  %g1 = qmm.allgather %rs1 on "tp" world_size = 8 : tensor<6x32xi8> -> tensor<48x32xi8>
  %r1 = qmm.dequant %g1, %s2 : (tensor<48x32xi8>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %h2 = qmm.quant %r1, %s1 : (tensor<48x32xbf16>, tensor<32xbf16>) -> tensor<48x32xi8>
  %acc2 = qmm.matmul %h2, %w2 : (tensor<48x32xi8>, tensor<32x32xi8>) -> tensor<48x32xi32>
  %y2 = qmm.dequant %acc2, %scale : (tensor<48x32xi32>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %q2 = qmm.quant %y2, %s1 : (tensor<48x32xbf16>, tensor<32xbf16>) -> tensor<48x32xi8>
  %a2 = qmm.alltoall %q2 on "tp" world_size = 8 : tensor<48x32xi8> -> tensor<8x6x32xi8>
  %rs2 = qmm.reducesum %a2 s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<8x6x32xi8> -> tensor<6x32xi8>
  %g2 = qmm.allgather %rs2 on "tp" world_size = 8 : tensor<6x32xi8> -> tensor<48x32xi8>
  %r2 = qmm.dequant %g2, %s2 : (tensor<48x32xi8>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %h3 = qmm.quant %r2, %s1 : (tensor<48x32xbf16>, tensor<32xbf16>) -> tensor<48x32xi8>
  %acc3 = qmm.matmul %h3, %w3 : (tensor<48x32xi8>, tensor<32x32xi8>) -> tensor<48x32xi32>
  %y3 = qmm.dequant %acc3, %scale : (tensor<48x32xi32>, tensor<32xbf16>) -> tensor<48x32xbf16>
  %q3 = qmm.quant %y3, %s1 : (tensor<48x32xbf16>, tensor<32xbf16>) -> tensor<48x32xi8>
  %a3 = qmm.alltoall %q3 on "tp" world_size = 8 : tensor<48x32xi8> -> tensor<8x6x32xi8>
  %rs3 = qmm.reducesum %a3 s1(%s1 : tensor<32xbf16>) s2(%s2 : tensor<32xbf16>) : tensor<8x6x32xi8> -> tensor<6x32xi8>
  %g3 = qmm.allgather %rs3 on "tp" world_size = 8 : tensor<6x32xi8> -> tensor<48x32xi8>
  %r3 = qmm.dequant %g3, %s2 : (tensor<48x32xi8>, tensor<32xbf16>) -> tensor<48x32xbf16>
  func.return %r3 : tensor<48x32xbf16>
}
