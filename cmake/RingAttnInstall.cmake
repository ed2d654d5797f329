# Installs the library headers, the configured header, the ringattn program
# (src/driver installs it) and a relocatable CMake package:
#
#   find_package(RingAttn 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE RingAttn::ringattn)
#
# Layout under the prefix (nothing in it names the build or source tree):
#   include/RingAttn/RingAttn.hpp, RingAttn_Config.hpp, {api,core,...}/*.hpp,
#     {core,kernels,ring}/detail/*.hpp (internals, namespace ringattn::Details)
#   lib/cmake/RingAttn/RingAttnConfig.cmake, ...ConfigVersion.cmake,
#     ...Targets.cmake, FindRingAttnCBLAS.cmake
# The headers sit in their own folder so that their generic subfolder names
# (core/, api/, ...) cannot clash with other packages in a shared prefix.
include(CMakePackageConfigHelpers)

set(RingAttn_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/RingAttn)
set(RingAttn_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/RingAttn)

install(TARGETS ringattn EXPORT RingAttnTargets INCLUDES DESTINATION ${RingAttn_INSTALL_INCLUDEDIR})

# The public and the detail headers (src/CMakeLists.txt lists them), in
# their folders; the driver (YAML, files) and the tests stay private.
foreach(_header IN LISTS RINGATTN_PUBLIC_HEADERS RINGATTN_DETAIL_HEADERS)
  get_filename_component(_dir ${_header} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/src/${_header} DESTINATION ${RingAttn_INSTALL_INCLUDEDIR}/${_dir})
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/src/RingAttn_Config.hpp DESTINATION ${RingAttn_INSTALL_INCLUDEDIR})

install(EXPORT RingAttnTargets NAMESPACE RingAttn:: DESTINATION ${RingAttn_INSTALL_CMAKEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/cmake/FindRingAttnCBLAS.cmake DESTINATION ${RingAttn_INSTALL_CMAKEDIR})

# The configured options, for RingAttnConfig.cmake (values, not paths).
set(RingAttn_CONFIG_ENABLE_DRIVER ${RingAttn_ENABLE_DRIVER})
set(RingAttn_CONFIG_KOKKOS_VERSION ${Kokkos_VERSION})
set(RingAttn_CONFIG_KOKKOS_DEVICES ${Kokkos_DEVICES})
set(RingAttn_CONFIG_BINDIR ${CMAKE_INSTALL_BINDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/RingAttnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/RingAttnConfig.cmake
  INSTALL_DESTINATION ${RingAttn_INSTALL_CMAKEDIR}
  PATH_VARS RingAttn_INSTALL_INCLUDEDIR RingAttn_CONFIG_BINDIR)
# Header-only: the package fits any architecture (no CMAKE_SIZEOF_VOID_P check).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/RingAttnConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/RingAttnConfig.cmake ${PROJECT_BINARY_DIR}/RingAttnConfigVersion.cmake
  DESTINATION ${RingAttn_INSTALL_CMAKEDIR})
