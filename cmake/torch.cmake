# Finds LibTorch and defines NANOGPT_TORCH_LIBRARIES and NANOGPT_WITH_CUDA.
#
# LibTorch comes from the PyTorch of NANOGPT_PYTHON (default: the project's .venv, which
# tools/setup.sh fills from requirements.txt) unless Torch_DIR or CMAKE_PREFIX_PATH names
# another one (Debian 13's libtorch-dev, an unpacked LibTorch archive).
#
# NANOGPT_WITH_CUDA (default: on where a CUDA toolkit is found) links libtorch_cuda and
# compiles the CUDA-only code. Off, a CUDA LibTorch such as PyPI's wheel gives a CPU build:
# its CMake config refuses to load without the CUDA toolkit, so its CPU libraries are then
# imported here directly.

set(NANOGPT_PYTHON "${PROJECT_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python whose PyTorch provides LibTorch, and which runs the Python tests")
if(NOT Torch_DIR AND EXISTS "${NANOGPT_PYTHON}")
  execute_process(COMMAND "${NANOGPT_PYTHON}" -c "import torch; print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE nanogpt_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET RESULT_VARIABLE nanogpt_torch_status)
  if(nanogpt_torch_status EQUAL 0)
    list(PREPEND CMAKE_PREFIX_PATH "${nanogpt_torch_prefix}")
  endif()
endif()
find_path(Torch_DIR TorchConfig.cmake
          PATH_SUFFIXES Torch share/cmake/Torch lib/cmake/Torch lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake/Torch
          DOC "The folder of LibTorch's TorchConfig.cmake")
if(NOT Torch_DIR)
  message(FATAL_ERROR "nanogpt: no LibTorch found. Run tools/setup.sh (it installs PyTorch into .venv), "
                      "or set NANOGPT_PYTHON to a Python with torch, or Torch_DIR to a folder with TorchConfig.cmake")
endif()

get_filename_component(nanogpt_torch_root "${Torch_DIR}/../../.." ABSOLUTE)
file(GLOB nanogpt_torch_cuda_lib "${nanogpt_torch_root}/lib/libtorch_cuda.so" "${Torch_DIR}/../../libtorch_cuda.so")
find_program(NANOGPT_NVCC nvcc HINTS ENV CUDA_HOME PATHS /usr/local/cuda/bin)
if(nanogpt_torch_cuda_lib AND NANOGPT_NVCC)
  set(nanogpt_cuda_default ON)
else()
  set(nanogpt_cuda_default OFF)
endif()
option(NANOGPT_WITH_CUDA "Link libtorch_cuda and compile the CUDA-only code" ${nanogpt_cuda_default})

if(NANOGPT_WITH_CUDA OR NOT nanogpt_torch_cuda_lib)
  if(NANOGPT_WITH_CUDA AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    # nothing here is compiled for a GPU: this only skips LibTorch's probe of the local GPU
    set(ENV{TORCH_CUDA_ARCH_LIST} "8.0;9.0")
  endif()
  find_package(Torch REQUIRED)
  if(NANOGPT_WITH_CUDA AND NOT TORCH_CUDA_LIBRARIES)
    message(FATAL_ERROR "nanogpt: NANOGPT_WITH_CUDA is on, but the LibTorch in ${Torch_DIR} has no CUDA")
  endif()
  # PyPI's wheel carries the CUDA libraries it was built against (site-packages/nvidia/*/lib), which
  # may be newer than the local toolkit's: link and run against those, not the toolkit's libcudart,
  # libnvrtc or libnccl (an older libnccl lacks symbols libtorch_cuda needs).
  file(GLOB NANOGPT_WHEEL_CUDA_DIRS LIST_DIRECTORIES true "${nanogpt_torch_root}/../nvidia/*/lib")
  # The wheel's file of a library (libcudart.so.13 for libcudart), or "" where it has none.
  function(nanogpt_wheel_library name out)
    file(GLOB found "${nanogpt_torch_root}/../nvidia/*/lib/${name}.so.[0-9]*")
    set(${out} "${found}" PARENT_SCOPE)
  endfunction()
  set(NANOGPT_TORCH_LIBRARIES ${TORCH_LIBRARIES})
  if(NANOGPT_WITH_CUDA AND NANOGPT_WHEEL_CUDA_DIRS)
    nanogpt_wheel_library(libcudart wheel_cudart)
    if(TARGET CUDA::cudart AND wheel_cudart)  # reached through torch::cudart
      set_target_properties(CUDA::cudart PROPERTIES IMPORTED_LOCATION "${wheel_cudart}")
    endif()
    set(NANOGPT_TORCH_LIBRARIES "")
    foreach(library ${TORCH_LIBRARIES})  # toolkit paths among them, such as libnvrtc's
      if(library MATCHES "^/.*/(lib[^/]+)\\.so$")
        nanogpt_wheel_library(${CMAKE_MATCH_1} wheel_library)
        if(wheel_library)
          set(library ${wheel_library})
        endif()
      endif()
      list(APPEND NANOGPT_TORCH_LIBRARIES ${library})
    endforeach()
    string(REPLACE ";" ":" nanogpt_wheel_cuda_path "${NANOGPT_WHEEL_CUDA_DIRS}")
    add_link_options("LINKER:-rpath-link,${nanogpt_wheel_cuda_path}")
  endif()
else()
  # A CUDA LibTorch built into a CPU binary: torch_cpu and c10 with the flags TorchConfig.cmake
  # would give (C++20 from 2.15 on, the C++11 string ABI).
  find_library(NANOGPT_TORCH_CPU torch_cpu PATHS "${nanogpt_torch_root}/lib" NO_DEFAULT_PATH REQUIRED)
  find_library(NANOGPT_C10 c10 PATHS "${nanogpt_torch_root}/lib" NO_DEFAULT_PATH REQUIRED)
  add_library(nanogpt_torch_cpu INTERFACE)
  target_link_libraries(nanogpt_torch_cpu INTERFACE ${NANOGPT_TORCH_CPU} ${NANOGPT_C10})
  target_include_directories(nanogpt_torch_cpu SYSTEM INTERFACE "${nanogpt_torch_root}/include"
                             "${nanogpt_torch_root}/include/torch/csrc/api/include")
  target_compile_definitions(nanogpt_torch_cpu INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
  set(NANOGPT_TORCH_LIBRARIES nanogpt_torch_cpu)
  set(TORCH_INSTALL_PREFIX "${nanogpt_torch_root}")
  file(STRINGS "${Torch_DIR}/TorchConfigVersion.cmake" nanogpt_torch_version_line REGEX "set\\(PACKAGE_VERSION ")
  string(REGEX REPLACE ".*\"(.*)\".*" "\\1" Torch_VERSION "${nanogpt_torch_version_line}")
endif()
if(Torch_VERSION VERSION_LESS 2.6)
  message(FATAL_ERROR "nanogpt: LibTorch ${Torch_VERSION} in ${Torch_DIR}; this project needs 2.6 or later")
endif()
if(NANOGPT_WITH_CUDA)
  message(STATUS "nanogpt: LibTorch ${Torch_VERSION} (${Torch_DIR}), CUDA build")
else()
  message(STATUS "nanogpt: LibTorch ${Torch_VERSION} (${Torch_DIR}), CPU build")
endif()

# PyPI's LibTorch libraries export copies of libstdc++'s std::filesystem functions, and the
# loader binds a program's calls to the first library that has them: 2.11's libtorch.so has a
# broken std::filesystem::remove_all (it jumps to address 0). libstdc++ is made the first
# library the loader searches, so such calls bind to libstdc++'s own.
add_link_options("LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
