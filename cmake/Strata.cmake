# Strata.cmake: build Strata models into linkable C libraries at build time.
#
#   include(path/to/strata/cmake/Strata.cmake)
#
#   # Optional: compile an ONNX model to one .strata file at build time.
#   strata_compile_model(OUTPUT ${CMAKE_BINARY_DIR}/mnist.strata
#                        MODEL models/mnist_cnn.onnx CALIB calib.npy
#                        [INPUT_SHAPES input=Nx1x28x28 ...]
#                        [ARGS --calib-method percentile ...])
#   INPUT_SHAPES pins dynamic input dimensions (`strata compile --input-shape`).
#
#   # Emit C for K planes from a .strata file and wrap it in a static library target NAME
#   # whose include directory holds NAME.h. PLANES defaults to the file's stored
#   # mixed-precision choice (or all planes); TARGET defaults to generic; CODE_BITS
#   # (fast, exact or stream: `strata emit-c --code-bits`) defaults to fast.
#   strata_add_model(NAME mnist_k4 MODEL mnist.strata PLANES 4 TARGET generic
#                    [CODE_BITS stream] [DEPENDS target-that-makes-the-strata-file])
#   target_link_libraries(app PRIVATE mnist_k4)
#
#   # The same through the MLIR backend: a native object with the same header and API,
#   # compiled by `strata build --backend mlir` (a `strata` built with the `mlir` feature)
#   # for this machine, or for TARGET_TRIPLE [TARGET_CPU].
#   strata_add_model(NAME mnist_k4 MODEL mnist.strata PLANES 4 BACKEND mlir
#                    [TARGET_TRIPLE aarch64-linux-gnu] [TARGET_CPU neoverse-n1])
#
# The `strata` executable is STRATA_EXECUTABLE (cache variable), else found on PATH.
# Several models (or one model at several plane counts) can be linked into one program:
# every symbol of the generated code is either `static` or prefixed with NAME.

cmake_minimum_required(VERSION 3.16)

set(STRATA_EXECUTABLE "" CACHE FILEPATH "The strata command-line tool")

function(_strata_find_executable out)
  if(STRATA_EXECUTABLE)
    set(${out} "${STRATA_EXECUTABLE}" PARENT_SCOPE)
    return()
  endif()
  find_program(_strata_exe NAMES strata)
  if(NOT _strata_exe)
    message(FATAL_ERROR "Strata: no `strata` executable; set STRATA_EXECUTABLE or put it on PATH")
  endif()
  set(${out} "${_strata_exe}" PARENT_SCOPE)
endfunction()

# Stops the configure step when a required keyword of FN (parsed with PREFIX) is missing or
# an unknown argument was given: a typo must not become a silently different build.
macro(_strata_check_arguments fn prefix)
  foreach(req ${ARGN})
    if(NOT ${prefix}_${req})
      message(FATAL_ERROR "${fn}: ${req} is required")
    endif()
  endforeach()
  if(${prefix}_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${fn}: unknown arguments ${${prefix}_UNPARSED_ARGUMENTS}")
  endif()
endmacro()

# Sets ${prefix}_${name} to `default` when it is empty, and refuses a value that is not one
# of the remaining arguments with a message naming fn, the argument and the choices.
macro(_strata_choice fn prefix name default)
  if(NOT ${prefix}_${name})
    set(${prefix}_${name} ${default})
  endif()
  set(_strata_choices ${ARGN})
  if(NOT ${prefix}_${name} IN_LIST _strata_choices)
    list(JOIN _strata_choices ", " _strata_list)
    message(FATAL_ERROR "${fn}: ${name} `${${prefix}_${name}}` is not one of ${_strata_list}")
  endif()
endmacro()

function(strata_compile_model)
  cmake_parse_arguments(SCM "" "OUTPUT;MODEL" "CALIB;INPUT_SHAPES;ARGS" ${ARGN})
  _strata_check_arguments(strata_compile_model SCM OUTPUT MODEL CALIB)
  _strata_find_executable(exe)
  get_filename_component(model "${SCM_MODEL}" ABSOLUTE)
  set(calib_args "")
  set(calib_files "")
  foreach(c IN LISTS SCM_CALIB)
    get_filename_component(c "${c}" ABSOLUTE)
    list(APPEND calib_args --calib "${c}")
    list(APPEND calib_files "${c}")
  endforeach()
  set(shape_args "")
  foreach(s IN LISTS SCM_INPUT_SHAPES)
    list(APPEND shape_args --input-shape "${s}")
  endforeach()
  add_custom_command(
    OUTPUT "${SCM_OUTPUT}"
    COMMAND "${exe}" compile "${model}" ${calib_args} ${shape_args} ${SCM_ARGS}
            -o "${SCM_OUTPUT}"
    DEPENDS "${model}" ${calib_files} "${exe}"
    COMMENT "strata compile ${SCM_MODEL}"
    VERBATIM)
endfunction()

function(strata_add_model)
  cmake_parse_arguments(SAM "" "NAME;MODEL;PLANES;TARGET;CODE_BITS;BACKEND;TARGET_TRIPLE;TARGET_CPU"
                        "DEPENDS" ${ARGN})
  _strata_check_arguments(strata_add_model SAM NAME MODEL)
  if(NOT SAM_NAME MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "strata_add_model: NAME `${SAM_NAME}` must be a C identifier")
  endif()
  _strata_choice(strata_add_model SAM BACKEND c c mlir)
  if(SAM_BACKEND STREQUAL "c" AND (SAM_TARGET_TRIPLE OR SAM_TARGET_CPU))
    message(FATAL_ERROR "strata_add_model: TARGET_TRIPLE and TARGET_CPU are for BACKEND mlir (the C backend takes TARGET)")
  endif()
  if(SAM_BACKEND STREQUAL "mlir" AND SAM_TARGET)
    message(FATAL_ERROR "strata_add_model: TARGET is for BACKEND c (BACKEND mlir takes TARGET_TRIPLE and TARGET_CPU)")
  endif()
  if(SAM_BACKEND STREQUAL "mlir" AND SAM_CODE_BITS)
    message(FATAL_ERROR "strata_add_model: CODE_BITS is for BACKEND c (the MLIR backend reads packed planes)")
  endif()
  _strata_choice(strata_add_model SAM CODE_BITS fast fast exact stream)
  if(SAM_TARGET_CPU AND NOT SAM_TARGET_TRIPLE)
    message(FATAL_ERROR "strata_add_model: TARGET_CPU needs TARGET_TRIPLE")
  endif()
  if(NOT SAM_TARGET)
    set(SAM_TARGET generic)
  endif()
  set(planes_args "")
  if(SAM_PLANES)
    set(planes_args --planes ${SAM_PLANES})
  endif()
  _strata_find_executable(exe)
  get_filename_component(model "${SAM_MODEL}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/strata/${SAM_NAME}")
  if(SAM_BACKEND STREQUAL "mlir")
    set(target_args "")
    if(SAM_TARGET_TRIPLE)
      list(APPEND target_args --target-triple ${SAM_TARGET_TRIPLE})
    endif()
    if(SAM_TARGET_CPU)
      list(APPEND target_args --target-cpu ${SAM_TARGET_CPU})
    endif()
    add_custom_command(
      OUTPUT "${dir}/${SAM_NAME}.h" "${dir}/${SAM_NAME}.o"
      COMMAND "${exe}" build "${model}" --backend mlir ${planes_args} ${target_args}
              --name ${SAM_NAME} -o "${dir}"
      DEPENDS "${model}" "${exe}"
      COMMENT "strata build --backend mlir ${SAM_MODEL} (${SAM_NAME}, planes ${SAM_PLANES})"
      VERBATIM)
    # The object is the library: CMake archives it as it is (no compiler runs).
    set_source_files_properties("${dir}/${SAM_NAME}.o" PROPERTIES
      EXTERNAL_OBJECT TRUE GENERATED TRUE)
    add_library(${SAM_NAME} STATIC "${dir}/${SAM_NAME}.o" "${dir}/${SAM_NAME}.h")
    set_target_properties(${SAM_NAME} PROPERTIES LINKER_LANGUAGE C)
  else()
    add_custom_command(
      OUTPUT "${dir}/${SAM_NAME}.h" "${dir}/${SAM_NAME}.c"
      COMMAND "${exe}" emit-c "${model}" ${planes_args} --target ${SAM_TARGET}
              --code-bits ${SAM_CODE_BITS} --name ${SAM_NAME} -o "${dir}"
      DEPENDS "${model}" "${exe}"
      COMMENT "strata emit-c ${SAM_MODEL} (${SAM_NAME}, planes ${SAM_PLANES}, ${SAM_TARGET})"
      VERBATIM)
    add_library(${SAM_NAME} STATIC "${dir}/${SAM_NAME}.c" "${dir}/${SAM_NAME}.h")
    set_target_properties(${SAM_NAME} PROPERTIES
      C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
    # Fused multiply-adds would change the float epilogue's rounding (see the README).
    target_compile_options(${SAM_NAME} PRIVATE
      $<$<C_COMPILER_ID:GNU,Clang,AppleClang>:-ffp-contract=off>)
    # The AVX2 target's intrinsics need the ISA enabled (the file refuses to build without).
    if(SAM_TARGET STREQUAL "x86-64-v3")
      target_compile_options(${SAM_NAME} PRIVATE
        $<$<C_COMPILER_ID:GNU,Clang,AppleClang>:-march=x86-64-v3>)
    endif()
  endif()
  target_include_directories(${SAM_NAME} PUBLIC "${dir}")
  if(SAM_DEPENDS)
    add_dependencies(${SAM_NAME} ${SAM_DEPENDS})
  endif()
  find_library(STRATA_LIBM m)
  if(STRATA_LIBM)
    target_link_libraries(${SAM_NAME} PUBLIC ${STRATA_LIBM})
  endif()
endfunction()
