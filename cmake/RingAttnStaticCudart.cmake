# Links the CUDA runtime statically into everything RingAttn builds, so a GPU
# machine needs only its driver (libcuda), not libcudart.so.11.0. Used by
# scripts/gpu_check.sh through -DCMAKE_PROJECT_RingAttn_INCLUDE=<this file>:
# it runs right after project(), before find_package(Kokkos), and Kokkos'
# config (3.4) defines its own CUDA::cudart only when none exists yet.
find_package(CUDAToolkit REQUIRED)
if(NOT CUDA_cudart_static_LIBRARY)
  message(FATAL_ERROR "static_cudart.cmake: libcudart_static.a not found in the CUDA toolkit")
endif()
set_target_properties(CUDA::cudart PROPERTIES IMPORTED_LOCATION "${CUDA_cudart_static_LIBRARY}")
if(TARGET CUDA::cudart_static_deps)
  set_property(TARGET CUDA::cudart APPEND PROPERTY INTERFACE_LINK_LIBRARIES CUDA::cudart_static_deps)
else()
  set_property(TARGET CUDA::cudart APPEND PROPERTY INTERFACE_LINK_LIBRARIES pthread dl rt)
endif()
message(STATUS "RingAttn: CUDA runtime linked statically (${CUDA_cudart_static_LIBRARY})")
