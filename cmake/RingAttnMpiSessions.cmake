# Open MPI 4.x puts every job's session folder under one shared base folder
# (${TMPDIR:-/tmp}/ompi.<host>.<uid>); jobs that start at the same moment race
# to create it and one dies with "A call to mkdir was unable to create the
# desired directory ... File exists" (open-mpi/ompi#8510). Every test of this
# build gets a base folder of its own, so tests run in parallel (ctest -j),
# and CI jobs running side by side on one machine, never share one. Open MPI
# reads OMPI_MCA_orte_tmpdir_base; Open MPI 5 (PRRTE) reads the PRTE name.
#
#   ringattn_own_mpi_session_dirs()   at the end of a CMakeLists.txt: every
#                                     test registered in that folder so far
function(ringattn_own_mpi_session_dirs)
  get_property(_tests DIRECTORY PROPERTY TESTS)
  foreach(_test IN LISTS _tests)
    set(_base "${CMAKE_BINARY_DIR}/ompi-tmp/${_test}")
    file(MAKE_DIRECTORY "${_base}")
    set_property(TEST ${_test} APPEND PROPERTY ENVIRONMENT
      "OMPI_MCA_orte_tmpdir_base=${_base}" "PRTE_MCA_prte_tmpdir_base=${_base}")
  endforeach()
endfunction()
