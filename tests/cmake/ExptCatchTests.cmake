# expt_discover_catch_tests(<target> <folder>): registers every Catch2 test case of <target> as its
# own ctest entry "<folder>: <name>" with label <folder>, found after each build by listing the executable
# (catch_add_tests.cmake, our replacement of Catch2 2.13's catch_discover_tests; decision 97). It
# survives any test name (';', ',', '[', '"', '\' and the rest); the executables' strict main
# (tests/catch_main.cpp) fails an entry whose name matches no test case or whose test case checks
# nothing, so a registration bug cannot pass empty.
set(EXPT_CATCH_ADD_TESTS ${CMAKE_CURRENT_LIST_DIR}/catch_add_tests.cmake)

function(expt_discover_catch_tests target folder)
  set(tests_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_tests.cmake)
  set(include_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_include.cmake)
  add_custom_command(
    TARGET ${target} POST_BUILD
    BYPRODUCTS ${tests_file}
    COMMAND ${CMAKE_COMMAND} -D EXECUTABLE=$<TARGET_FILE:${target}> -D FOLDER=${folder}
            -D WORKING_DIR=${CMAKE_CURRENT_BINARY_DIR} -D OUTPUT=${tests_file} -P ${EXPT_CATCH_ADD_TESTS}
    VERBATIM)
  # Before the first build there is no list: one failing entry says so (never an empty pass).
  file(WRITE ${include_file}
       "if(EXISTS \"${tests_file}\")\n"
       "  include(\"${tests_file}\")\n"
       "else()\n"
       "  add_test([==[${folder}: ${target} not built]==] ${target}_NOT_BUILT)\n"
       "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${include_file})
endfunction()
