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
  # OpenBLAS's thread control keeps the GEMMs single-threaded inside Kokkos
  # host parallel regions.
  include(CheckSymbolExists)
  set(CMAKE_REQUIRED_INCLUDES ${RingAttnCBLAS_INCLUDE_DIR})
  set(CMAKE_REQUIRED_LIBRARIES ${BLAS_LIBRARIES})
  set(CMAKE_REQUIRED_QUIET ON)
  check_symbol_exists(openblas_set_num_threads cblas.h RingAttnCBLAS_HAS_OPENBLAS_THREADS)
  add_library(RingAttn::CBLAS INTERFACE IMPORTED)
  set_target_properties(RingAttn::CBLAS PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${RingAttnCBLAS_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${BLAS_LIBRARIES}")
  if(RingAttnCBLAS_HAS_OPENBLAS_THREADS)
    set_property(TARGET RingAttn::CBLAS APPEND PROPERTY
      INTERFACE_COMPILE_DEFINITIONS RINGATTN_HAVE_OPENBLAS_THREADS)
  endif()
endif()
