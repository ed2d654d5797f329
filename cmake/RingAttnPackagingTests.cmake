# Registers the packaging test: scripts/test_packaging.sh installs this build
# (when it has MPI and the driver; else the script builds one), moves the
# prefix, builds and runs examples/embed against it under mpiexec, builds and
# tests RingAttn without MPI, and runs the Spack recipe test. See
# docs/packaging.md. Included from the top-level CMakeLists.txt when
# RingAttn_ENABLE_TESTS and RingAttn_ENABLE_PACKAGING_TESTS are on. Label
# `full`: run by `scripts/test.sh --all`, not by the default `scripts/test.sh`.

# The prefix of the Kokkos this build found
# (<prefix>/lib*/cmake/<Package>).
set(_ringattn_dep_prefixes)
foreach(_dir IN ITEMS "${Kokkos_DIR}")
  get_filename_component(_prefix "${_dir}/../../.." ABSOLUTE)
  list(APPEND _ringattn_dep_prefixes "${_prefix}")
endforeach()
list(REMOVE_DUPLICATES _ringattn_dep_prefixes)

set(_ringattn_packaging_args --cxx "${CMAKE_CXX_COMPILER}")
foreach(_prefix IN LISTS _ringattn_dep_prefixes)
  list(APPEND _ringattn_packaging_args --prefix-path "${_prefix}")
endforeach()
if(RingAttn_ENABLE_MPI AND RingAttn_ENABLE_DRIVER)
  list(APPEND _ringattn_packaging_args --build-dir "${PROJECT_BINARY_DIR}")
endif()
if(MPIEXEC_EXECUTABLE)
  list(APPEND _ringattn_packaging_args --mpiexec "${MPIEXEC_EXECUTABLE}")
endif()
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  list(APPEND _ringattn_packaging_args --python "${Python3_EXECUTABLE}")
endif()

add_test(NAME packaging
  COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test_packaging.sh ${_ringattn_packaging_args}
          --work "${PROJECT_BINARY_DIR}/packaging-test")
# It builds RingAttn again on every core: alone, and after the other tests.
set_tests_properties(packaging PROPERTIES RUN_SERIAL TRUE TIMEOUT 1800 LABELS "packaging;full")
