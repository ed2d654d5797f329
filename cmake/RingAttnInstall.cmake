# Installs the library headers, the configured header and a relocatable CMake
# package: find_package(RingAttn) gives RingAttn::ringattn.
include(CMakePackageConfigHelpers)
install(TARGETS ringattn EXPORT RingAttnTargets)
foreach(header ${RINGATTN_PUBLIC_HEADERS})
  get_filename_component(dir ${header} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/src/${header} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${dir})
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/src/RingAttn_Config.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/cmake/FindRingAttnCBLAS.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/RingAttn)
install(EXPORT RingAttnTargets NAMESPACE RingAttn:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/RingAttn)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/RingAttnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/RingAttnConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/RingAttn)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/RingAttnConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/RingAttnConfig.cmake ${PROJECT_BINARY_DIR}/RingAttnConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/RingAttn)
