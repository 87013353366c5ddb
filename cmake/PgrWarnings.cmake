# INTERFACE target carrying warnings, feature macros and sanitizer flags for every pgrollout target.
add_library(pgr_warnings INTERFACE)
target_compile_definitions(pgr_warnings INTERFACE _POSIX_C_SOURCE=200809L
  PGR_VERSION="${PROJECT_VERSION}")
target_compile_options(pgr_warnings INTERFACE -Wall -Wextra -Wshadow -Wstrict-prototypes
  -Wmissing-prototypes -Wformat=2 -Wvla -Wpointer-arith -Wcast-qual
  $<$<BOOL:${PGR_WERROR}>:-Werror>)
if(PGR_SANITIZE)
  set(_pgr_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_compile_options(pgr_warnings INTERFACE ${_pgr_san})
  target_link_options(pgr_warnings INTERFACE ${_pgr_san})
endif()
if(PGR_TSAN)
  set(_pgr_tsan -fsanitize=thread -fno-omit-frame-pointer)
  target_compile_options(pgr_warnings INTERFACE ${_pgr_tsan})
  target_link_options(pgr_warnings INTERFACE ${_pgr_tsan})
  # librdkafka's C11 threads through intercepted pthread calls (tests/tsan/c11threads.c)
  target_sources(pgr_warnings INTERFACE
    $<$<STREQUAL:$<TARGET_PROPERTY:TYPE>,EXECUTABLE>:${PROJECT_SOURCE_DIR}/tests/tsan/c11threads.c>)
endif()
