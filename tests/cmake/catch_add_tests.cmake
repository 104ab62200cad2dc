# Writes OUTPUT, a ctest file with one entry "<FOLDER>: <name>" (label FOLDER) per Catch2 test case
# of EXECUTABLE (run as `cmake -D EXECUTABLE=... -D FOLDER=... -D WORKING_DIR=... -D OUTPUT=... -P`).
#
# Test names are never held in CMake lists (a ';' would split them): the listing is walked line by
# line with string(FIND), and each name is written as a bracket argument with enough '=' that
# nothing in it can close the bracket. The name handed to the executable escapes the characters
# Catch2's test-spec parser treats specially (backslash first, then , [ ] " ~ *), so the spec
# matches exactly that test case; if it ever does not, the strict main (tests/catch_main.cpp)
# fails the entry.
cmake_minimum_required(VERSION 3.20)
foreach(var EXECUTABLE FOLDER WORKING_DIR OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "catch_add_tests.cmake: ${var} not set")
  endif()
endforeach()

execute_process(COMMAND ${EXECUTABLE} --list-test-names-only OUTPUT_VARIABLE listing RESULT_VARIABLE result
                WORKING_DIRECTORY ${WORKING_DIR})
# Catch2 2.13 exits with the number of test cases listed (capped at 255); 0 means none.
if(NOT result MATCHES "^[0-9]+$" OR result EQUAL 0)
  message(FATAL_ERROR "${EXECUTABLE} --list-test-names-only: no test cases (exit ${result})\n${listing}")
endif()

# A bracket argument [=...=[text]=...=] that text cannot close.
function(bracket text out)
  set(eq "=")
  while(text MATCHES "]${eq}]")
    string(APPEND eq "=")
  endwhile()
  set(${out} "[${eq}[${text}]${eq}]" PARENT_SCOPE)
endfunction()

set(script "")
string(REPLACE "\r" "" listing "${listing}")
while(NOT listing STREQUAL "")
  string(FIND "${listing}" "\n" eol)
  if(eol EQUAL -1)
    set(name "${listing}")
    set(listing "")
  else()
    string(SUBSTRING "${listing}" 0 ${eol} name)
    math(EXPR rest "${eol} + 1")
    string(SUBSTRING "${listing}" ${rest} -1 listing)
  endif()
  if(name STREQUAL "")
    continue()
  endif()
  # Catch2 lists a name that starts with '#' in double quotes; the quoted form is also its spec.
  set(quoted FALSE)
  if(name MATCHES "^\"#.*\"$")
    string(LENGTH "${name}" length)
    math(EXPR length "${length} - 2")
    string(SUBSTRING "${name}" 1 ${length} name)
    set(quoted TRUE)
  endif()
  string(REPLACE "\\" "\\\\" spec "${name}")
  foreach(special "," "[" "]" "\"" "~" "*")
    string(REPLACE "${special}" "\\${special}" spec "${spec}")
  endforeach()
  if(quoted)
    set(spec "\"${spec}\"")
  endif()
  bracket("${FOLDER}: ${name}" test_arg)
  bracket("${spec}" spec_arg)
  bracket("${EXECUTABLE}" exe_arg)
  bracket("${WORKING_DIR}" dir_arg)
  string(APPEND script "add_test(${test_arg} ${exe_arg} ${spec_arg})\n")
  string(APPEND script "set_tests_properties(${test_arg} PROPERTIES LABELS ${FOLDER} WORKING_DIRECTORY ${dir_arg})\n")
endwhile()
file(WRITE ${OUTPUT} "${script}")
