# Run by `cmake --install` before anything is installed: appends to
# SB_DIRS_RECORD every directory (and parent, up to the prefix) of
# SB_INSTALL_DIRS that does not exist yet, i.e. the ones this install
# creates (as they are on disk: DESTDIR included). uninstall.cmake removes
# those, once empty, and no others.
set(sb_created "")
if(EXISTS "${SB_DIRS_RECORD}")
  file(STRINGS "${SB_DIRS_RECORD}" sb_created)
endif()
foreach(d IN LISTS SB_INSTALL_DIRS)
  if(NOT IS_ABSOLUTE "${d}")
    set(d "${CMAKE_INSTALL_PREFIX}/${d}")
  endif()
  while(NOT d STREQUAL CMAKE_INSTALL_PREFIX AND NOT d STREQUAL "/" AND NOT d STREQUAL "")
    if(NOT EXISTS "$ENV{DESTDIR}${d}")
      list(APPEND sb_created "$ENV{DESTDIR}${d}")
    endif()
    get_filename_component(d "${d}" DIRECTORY)
  endwhile()
endforeach()
list(REMOVE_DUPLICATES sb_created)
string(REPLACE ";" "\n" sb_lines "${sb_created}")
file(WRITE "${SB_DIRS_RECORD}" "${sb_lines}\n")
