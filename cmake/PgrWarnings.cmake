# INTERFACE target carrying warnings, feature macros and sanitizer flags for every pgrollout target.
add_library(pgr_warnings INTERFACE)
target_compile_definitions(pgr_warnings INTERFACE _POSIX_C_SOURCE=200809L
  PGR_VERSION="${PROJECT_VERSION}")
target_compile_options(pgr_warnings INTERFACE -Wall -Wextra -Wshadow -Wstrict-prototypes
  -Wmissing-prototypes -Wformat=2 -Wvla -Wpointer-arith -Wcast-qual
  $<$<C_COMPILER_ID:GNU>:-Wno-format-truncation>
  $<$<BOOL:${PGR_WERROR}>:-Werror>)
if(PGR_SANITIZE)
  set(_pgr_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_compile_options(pgr_warnings INTERFACE ${_pgr_san})
  target_link_options(pgr_warnings INTERFACE ${_pgr_san})
endif()
