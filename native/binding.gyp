{
  # parallelcomp native kernels: plain C over N-API (node_api.h).
  # Portable build: no -march. Wider instruction sets are enabled per function with
  # __attribute__((target(...))) and chosen at run time (src/cpu.c).
  "targets": [
    {
      "target_name": "parallelcomp_native",
      "sources": [
        "src/binding.c",
        "src/cpu.c",
        "src/threadpool.c",
        "src/convert.c",
        "src/matmul.c",
        "src/matmul_float.c",
        "src/matmul_quant.c",
        "src/ops.c",
        "src/blas.c",
        "src/attention.c",
        "src/attention_x86.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags": [
        "-O3",
        "-std=gnu11",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        # No fused multiply-adds unless written explicitly: the activation quantizers must
        # round exactly like ggml's reference code.
        "-ffp-contract=off",
        "-fno-math-errno"
      ],
      "cflags!": ["-O2", "-O0"],
      "ldflags": ["-pthread"],
      "libraries": ["-ldl"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-O3", "-std=gnu11", "-ffp-contract=off", "-fno-math-errno"]
      }
    }
  ]
}
