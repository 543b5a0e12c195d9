# Writes build_info.cc (src/core/build_info.h) at build time: run by the `ll_build_info_gen`
# target on every build, it rewrites the file only when the version or commit changed
# (configure_file leaves an identical file untouched), so an unchanged tree rebuilds nothing.
# Inputs: -DSRC=<source dir> -DOUT=<file> -DVERSION=<x.y.z>
set(commit "unknown")
find_program(GIT git)
if(GIT)
  execute_process(COMMAND ${GIT} -C ${SRC} rev-parse --short=12 HEAD OUTPUT_VARIABLE head
                  RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(rc EQUAL 0 AND head)
    set(commit "${head}")
    execute_process(COMMAND ${GIT} -C ${SRC} status --porcelain --untracked-files=no OUTPUT_VARIABLE changes
                    ERROR_QUIET)
    if(changes)
      set(commit "${commit}-dirty")
    endif()
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/build_info.cc.in ${OUT} @ONLY)
