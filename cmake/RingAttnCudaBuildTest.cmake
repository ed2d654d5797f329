# Registers the CUDA build as a test (compile-only CI for the GPU path; see
# docs/gpu.md): scripts/build_cuda.sh installs Debian's CUDA 11.8 toolkit and
# g++-11 where missing, builds Kokkos 3.4.1 with CUDA + Serial once, then
# RingAttn's unit tests, MPI tests, benchmarks and the ringattn program with
# nvcc_wrapper into <build>/cuda-build. Nothing is run on a GPU. The first run
# on a fresh machine downloads about 1.6 GB and takes about ten minutes on two
# cores; later runs rebuild only what changed. Included from the top-level
# CMakeLists.txt when RingAttn_ENABLE_TESTS and RingAttn_ENABLE_CUDA_BUILD_TEST
# are on (the latter defaults to ON on Linux x86_64). Label `full`: run by
# `scripts/test.sh --all`, not by the default `scripts/test.sh`.
add_test(NAME cuda_build COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/build_cuda.sh)
# It compiles on every core: alone.
set_tests_properties(cuda_build PROPERTIES
  ENVIRONMENT "RINGATTN_CUDA_BUILD_DIR=${PROJECT_BINARY_DIR}/cuda-build"
  RUN_SERIAL TRUE TIMEOUT 3600 LABELS "cuda;build;full")
