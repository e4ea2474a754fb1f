// A transposed x2 is read as stored, [n, k], with transpose_x2 by the mc2 op and by its
// aclnn form alike (issue 21): n = 65536 > 65535 with k = 16 lowers, and with a dynamic n
// the C++ guard bounds x2's first dimension by INT32_MAX, not by 65535.
// RUN: qmmar-opt %s --split-input-file -p lower-mc2-to-aclnn | filecheck %s
// RUN: qmmar-opt %s --split-input-file -p lower-mc2-to-aclnn -t aclnn-cpp | filecheck %s --check-prefix=CPP

// CHECK-LABEL: func.func @wide
// CHECK:         aclnn.create_tensor %x2 transpose = true : tensor<65536x16xi8>
// CHECK:         aclnn.quant_matmul_all_reduce_v3_get_workspace_size
func.func @wide(%x1: tensor<32x16xi8>, %x2: tensor<65536x16xi8>, %s: tensor<65536xbf16>) -> tensor<32x65536xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<65536xbf16>) on "tp" world_size = 8 transpose_x2 = true : tensor<32x16xi8>, tensor<65536x16xi8> -> tensor<32x65536xbf16>
  func.return %o : tensor<32x65536xbf16>
}

// -----

// CPP-LABEL: int32_t qmmar_dynamic_n_prepare(
// CPP-NOT:     x2_d0 <= INT64_C(65535)
// CPP:         if (!(x2_d0 <= INT64_C(2147483647))) return qmmar_guard({{.*}}, "[MC2-X2-DIM-MAX] x2's last dimension (n, or k with transpose_x2) must be at most 65535, and its first at most 2147483647");
// CPP-NOT:     x2_d0 <= INT64_C(65535)
// CPP:         return 0;
func.func @dynamic_n(%x1: tensor<32x16xi8>, %x2: tensor<?x16xi8>, %s: tensor<?xbf16>) -> tensor<32x?xbf16> {
  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : tensor<?xbf16>) on "tp" world_size = 8 transpose_x2 = true : tensor<32x16xi8>, tensor<?x16xi8> -> tensor<32x?xbf16>
  func.return %o : tensor<32x?xbf16>
}
