# Finds a CBLAS interface (cblas.h + a BLAS library exporting cblas_sgemm),
# OpenBLAS preferred. Defines the imported target RingAttn::CBLAS.
include(FindPackageHandleStandardArgs)
if(NOT DEFINED BLA_VENDOR)
  set(BLA_VENDOR OpenBLAS)
endif()
find_package(BLAS QUIET)
if(NOT BLAS_FOUND)
  unset(BLA_VENDOR)
  find_package(BLAS QUIET)
endif()
find_path(RingAttnCBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas)
find_package_handle_standard_args(RingAttnCBLAS REQUIRED_VARS BLAS_LIBRARIES RingAttnCBLAS_INCLUDE_DIR)
if(RingAttnCBLAS_FOUND AND NOT TARGET RingAttn::CBLAS)
  add_library(RingAttn::CBLAS INTERFACE IMPORTED)
  set_target_properties(RingAttn::CBLAS PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${RingAttnCBLAS_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${BLAS_LIBRARIES}")
endif()
