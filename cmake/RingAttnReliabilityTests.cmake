# Reliability tests (docs/reliability.md), registered when
# RingAttn_ENABLE_RELIABILITY_TESTS is ON:
#   hostile_inputs      the hostile-input table (unit_tests/hostile/cases.tsv),
#                       serial rows: exit code, message, no signal, no hang,
#                       no file left behind
#   hostile_inputs_mpi  its rows under mpirun -np 2 (ring.size mismatch, ...)
#   sanitizers          unit tests, MPI tests and the hostile table built with
#                       ASan + UBSan against a Kokkos with bounds checking
#                       (scripts/test_sanitizers.sh, its own build folder)
#   fuzz_smoke          the libFuzzer targets of fuzz/ for 30 s each
#                       (scripts/fuzz.sh 30; needs clang++ with libFuzzer)
# sanitizers and fuzz_smoke carry the label `full`: run by
# `scripts/test.sh --all`, not by the default `scripts/test.sh`.

if(RingAttn_ENABLE_DRIVER)
  # Writes good and bad .npy files for the table (no dependencies).
  add_executable(ringattn_make_npy ${PROJECT_SOURCE_DIR}/unit_tests/tools/make_npy.cpp)
  target_link_libraries(ringattn_make_npy PRIVATE ringattn_warnings)

  set(_ringattn_hostile
    bash ${PROJECT_SOURCE_DIR}/unit_tests/tools/run_hostile.sh $<TARGET_FILE:ringattn_exe>
    $<TARGET_FILE:ringattn_make_npy> ${PROJECT_SOURCE_DIR}/unit_tests/hostile/cases.tsv)
  add_test(NAME hostile_inputs COMMAND ${_ringattn_hostile} serial)
  set_tests_properties(hostile_inputs PROPERTIES TIMEOUT 900)
  if(RingAttn_ENABLE_MPI)
    add_test(NAME hostile_inputs_mpi COMMAND ${_ringattn_hostile} mpi ${MPIEXEC_EXECUTABLE})
    set_tests_properties(hostile_inputs_mpi PROPERTIES TIMEOUT 900 PROCESSORS 2)
  endif()
endif()

# Both build again, in their own folders under this build tree: the
# sanitizer build with this configuration's C++ compiler against a Kokkos
# with bounds checking (built once into ~/.cache/ringattn), the fuzzers with
# clang++ from the deck and .npy sources.
add_test(NAME sanitizers
  COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test_sanitizers.sh ${CMAKE_CURRENT_BINARY_DIR}/sanitizers)
set_tests_properties(sanitizers PROPERTIES TIMEOUT 2700 PROCESSORS 2 RUN_SERIAL ON
  ENVIRONMENT "RINGATTN_SANITIZER_CXX=${CMAKE_CXX_COMPILER}" LABELS full)

add_test(NAME fuzz_smoke
  COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/fuzz.sh 30 ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
set_tests_properties(fuzz_smoke PROPERTIES TIMEOUT 900 PROCESSORS 2 LABELS full)
if(TARGET Kokkos::kokkoscore AND NOT Kokkos_ENABLE_CUDA)
  # the Kokkos headers of this build (a CUDA Kokkos is no use to clang++)
  get_target_property(_ringattn_kokkos_include Kokkos::kokkoscore INTERFACE_INCLUDE_DIRECTORIES)
  list(GET _ringattn_kokkos_include 0 _ringattn_kokkos_include)
  if(_ringattn_kokkos_include AND NOT _ringattn_kokkos_include MATCHES "\\$<")
    set_tests_properties(fuzz_smoke PROPERTIES
      ENVIRONMENT "RINGATTN_FUZZ_KOKKOS_INCLUDE=${_ringattn_kokkos_include}")
  endif()
endif()
