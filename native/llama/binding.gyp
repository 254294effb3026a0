{
  # parallelcomp's llama.cpp backend: our N-API code over llama.cpp's C API. Built against the
  # headers of the pinned llama.cpp (headers.mjs puts them in include/); libllama itself is
  # opened at run time (dlopen), so the CPU, CUDA or Vulkan build can be chosen then.
  "targets": [
    {
      "target_name": "parallelcomp_llama",
      "sources": ["src/llama_binding.c"],
      "include_dirs": ["include"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl"]
    }
  ]
}
