# Finds the CBLAS the host block kernel's tile GEMMs go through and defines
# the imported target RingAttn::CBLAS.
#
#   RingAttn_BLAS_PROVIDER  MKL (default) | OpenBLAS | Any
#     MKL:      Intel MKL, lp64 interface + sequential layer + core (one GEMM
#               thread per Kokkos thread; Kokkos owns the threading). Looked
#               for under RingAttn_MKL_ROOT, then $MKLROOT, then the venv that
#               scripts/setup.sh makes ($HOME/.cache/ringattn/mkl-venv, PyPI's
#               `mkl` + `mkl-include`). Not found: OpenBLAS, with a message.
#     OpenBLAS: FindBLAS with BLA_VENDOR=OpenBLAS, then any vendor.
#     Any:      FindBLAS's first CBLAS, OpenBLAS preferred.
#   RingAttnCBLAS_PROVIDER  (result) the provider actually used: MKL or OpenBLAS
#                           (OpenBLAS also stands for "another FindBLAS CBLAS")
#
# PyPI's MKL ships only versioned shared objects (libmkl_core.so.2 or .so.3),
# so the libraries are linked by full path; CMake then puts their folder in
# the build RPATH, and the installed config finds them again the same way.
include(FindPackageHandleStandardArgs)
if(NOT DEFINED RingAttn_BLAS_PROVIDER)
  set(RingAttn_BLAS_PROVIDER MKL)
endif()
if(NOT RingAttn_BLAS_PROVIDER MATCHES "^(MKL|OpenBLAS|Any)$")
  message(FATAL_ERROR "RingAttn_BLAS_PROVIDER=${RingAttn_BLAS_PROVIDER}: expected MKL, OpenBLAS or Any")
endif()

# One MKL library by base name (mkl_core, ...): the unversioned .so, else the
# highest versioned one.
function(_ringattn_find_mkl_library out root name)
  set(found "")
  foreach(dir "${root}/lib" "${root}/lib/intel64" "${root}/lib64")
    if(EXISTS "${dir}/lib${name}.so")
      set(found "${dir}/lib${name}.so")
      break()
    endif()
    file(GLOB versioned "${dir}/lib${name}.so.[0-9]*")
    if(versioned)
      list(SORT versioned COMPARE NATURAL ORDER DESCENDING)
      list(GET versioned 0 found)
      break()
    endif()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

set(RingAttnCBLAS_PROVIDER "")
if(RingAttn_BLAS_PROVIDER STREQUAL "MKL")
  set(_ringattn_mkl_roots ${RingAttn_MKL_ROOT} $ENV{MKLROOT} "$ENV{HOME}/.cache/ringattn/mkl-venv")
  foreach(root IN LISTS _ringattn_mkl_roots)
    if(NOT root OR NOT EXISTS "${root}/include/mkl_cblas.h")
      continue()
    endif()
    set(_ringattn_mkl_libs "")
    foreach(name mkl_intel_lp64 mkl_sequential mkl_core)
      _ringattn_find_mkl_library(lib "${root}" ${name})
      if(NOT lib)
        set(_ringattn_mkl_libs "")
        break()
      endif()
      list(APPEND _ringattn_mkl_libs "${lib}")
    endforeach()
    if(_ringattn_mkl_libs)
      set(RingAttn_MKL_ROOT "${root}" CACHE PATH "Intel MKL prefix (include/mkl_cblas.h, lib/)" FORCE)
      set(RingAttnCBLAS_INCLUDE_DIR "${root}/include")
      set(RingAttnCBLAS_LIBRARIES ${_ringattn_mkl_libs} Threads::Threads m ${CMAKE_DL_LIBS})
      set(RingAttnCBLAS_PROVIDER MKL)
      break()
    endif()
  endforeach()
  if(NOT RingAttnCBLAS_PROVIDER)
    message(STATUS "RingAttn: MKL not found (RingAttn_MKL_ROOT, MKLROOT, $ENV{HOME}/.cache/ringattn/mkl-venv); "
                   "the tile GEMMs use OpenBLAS instead (scripts/setup.sh installs MKL)")
  endif()
endif()

if(NOT RingAttnCBLAS_PROVIDER)
  if(NOT DEFINED BLA_VENDOR)
    set(BLA_VENDOR OpenBLAS)
  endif()
  find_package(BLAS QUIET)
  if(NOT BLAS_FOUND)
    unset(BLA_VENDOR)
    find_package(BLAS QUIET)
  endif()
  find_path(RingAttnCBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas)
  set(RingAttnCBLAS_LIBRARIES ${BLAS_LIBRARIES})
  if(BLAS_FOUND)
    set(RingAttnCBLAS_PROVIDER OpenBLAS)
  endif()
endif()

find_package_handle_standard_args(RingAttnCBLAS
  REQUIRED_VARS RingAttnCBLAS_LIBRARIES RingAttnCBLAS_INCLUDE_DIR RingAttnCBLAS_PROVIDER)
if(RingAttnCBLAS_FOUND AND NOT TARGET RingAttn::CBLAS)
  if(RingAttnCBLAS_PROVIDER STREQUAL "MKL" AND NOT TARGET Threads::Threads)
    find_package(Threads REQUIRED)
  endif()
  add_library(RingAttn::CBLAS INTERFACE IMPORTED)
  set_target_properties(RingAttn::CBLAS PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${RingAttnCBLAS_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${RingAttnCBLAS_LIBRARIES}")
  if(RingAttnCBLAS_PROVIDER STREQUAL "MKL")
    # mkl_cblas.h instead of cblas.h; the sequential layer needs no thread control
    set_property(TARGET RingAttn::CBLAS APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS RINGATTN_HAVE_MKL)
  else()
    # OpenBLAS's thread control keeps the GEMMs single-threaded inside Kokkos
    # host parallel regions.
    include(CheckSymbolExists)
    set(CMAKE_REQUIRED_INCLUDES ${RingAttnCBLAS_INCLUDE_DIR})
    set(CMAKE_REQUIRED_LIBRARIES ${RingAttnCBLAS_LIBRARIES})
    set(CMAKE_REQUIRED_QUIET ON)
    check_symbol_exists(openblas_set_num_threads cblas.h RingAttnCBLAS_HAS_OPENBLAS_THREADS)
    if(RingAttnCBLAS_HAS_OPENBLAS_THREADS)
      set_property(TARGET RingAttn::CBLAS APPEND PROPERTY
        INTERFACE_COMPILE_DEFINITIONS RINGATTN_HAVE_OPENBLAS_THREADS)
    endif()
  endif()
endif()
