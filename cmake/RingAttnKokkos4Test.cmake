# The Kokkos 4.x tier, registered when RingAttn_ENABLE_KOKKOS4_TEST is ON:
#   kokkos4   scripts/test_kokkos4.sh: Kokkos 4.6.01 from ../shared/deps, built
#             once per machine into ~/.cache/ringattn/kokkos-4.6.01; RingAttn
#             built against it in C++20 (unit, MPI np 2 and program tests
#             run), in a folder under this build tree. Reported as
#             skipped when ../shared/deps is absent (a plain clone).
# Label full: a slow tier, left out by `ctest -LE full`.
add_test(NAME kokkos4
  COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test_kokkos4.sh ${CMAKE_CURRENT_BINARY_DIR}/kokkos4)
set_tests_properties(kokkos4 PROPERTIES LABELS full RUN_SERIAL ON TIMEOUT 5400
  SKIP_REGULAR_EXPRESSION "\\[kokkos4\\] skipped")
