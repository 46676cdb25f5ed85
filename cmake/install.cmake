# Installation: the library, headers, command, switchboard.pc, the CMake
# package (find_package(switchboard CONFIG)), man pages, bash completion and
# the license; `uninstall` undoes it; `docs` builds the API reference.
#
# Nothing here depends on the prefix given at configure time: everything
# that names the prefix (switchboard.pc) is written at install time, so
# `cmake --install BUILD --prefix P` is right whatever BUILD was configured
# with, and the CMake package finds its files relative to itself.
include(CMakePackageConfigHelpers)

set(SB_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/switchboard)
set(SB_COMPLETION_DIR ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
set(SB_INSTALL_DIRS ${CMAKE_INSTALL_BINDIR} ${CMAKE_INSTALL_LIBDIR}/pkgconfig ${SB_CMAKE_DIR}
    ${CMAKE_INSTALL_INCLUDEDIR}/switchboard ${CMAKE_INSTALL_MANDIR}/man1 ${CMAKE_INSTALL_MANDIR}/man3
    ${SB_COMPLETION_DIR} ${CMAKE_INSTALL_DOCDIR})

# First step of every install: note the directories this install creates,
# so that uninstall removes them (once empty) and no directory that was
# there before.
install(CODE "
  set(SB_INSTALL_DIRS \"${SB_INSTALL_DIRS}\")
  set(SB_DIRS_RECORD \"${CMAKE_BINARY_DIR}/install_dirs.txt\")
  include(\"${CMAKE_CURRENT_LIST_DIR}/install_dirs.cmake\")")

install(TARGETS switchboard RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS switchboard_static switchboard_shared EXPORT switchboardTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}) # Windows: the .dll
install(FILES include/switchboard.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/switchboard DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(FILES ${SB_GEN_INCLUDE}/switchboard/version.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/switchboard)

# switchboard.pc, written with the prefix of this install.
set(SB_PC_LIBS "-lpthread")
if(WIN32)
  set(SB_PC_LIBS "${SB_PC_LIBS} -lws2_32 -liphlpapi")
endif()
if(SB_WITH_URING)
  set(SB_PC_LIBS "${SB_PC_LIBS} -luring")
endif()
if(SB_WITH_TLS)
  set(SB_PC_LIBS "${SB_PC_LIBS} -lssl -lcrypto")
endif()
install(CODE "
  set(SB_PC_TEMPLATE \"${CMAKE_SOURCE_DIR}/switchboard.pc.in\")
  set(SB_PC_OUT \"${CMAKE_BINARY_DIR}/pc/switchboard.pc\")
  set(SB_PC_VERSION \"${PROJECT_VERSION}\")
  set(SB_PC_LIBS \"${SB_PC_LIBS}\")
  set(SB_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(SB_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  include(\"${CMAKE_CURRENT_LIST_DIR}/install_pc.cmake\")")

# The CMake package: switchboard::switchboard (shared) and
# switchboard::switchboard_static. The version file accepts a request for
# the same major.minor before 1.0 (a 0.x minor release may break the API,
# so neither SameMajorVersion nor AnyNewerVersion would be honest), the
# same major from 1.0 on.
install(EXPORT switchboardTargets NAMESPACE switchboard:: DESTINATION ${SB_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/switchboardConfig.cmake.in
  ${CMAKE_BINARY_DIR}/switchboardConfig.cmake INSTALL_DESTINATION ${SB_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/switchboardConfigVersion.cmake
  COMPATIBILITY ${SB_COMPAT})
install(FILES ${CMAKE_BINARY_DIR}/switchboardConfig.cmake
              ${CMAKE_BINARY_DIR}/switchboardConfigVersion.cmake
        DESTINATION ${SB_CMAKE_DIR})

# The man pages carry the version in their header: generated like version.h.
configure_file(${CMAKE_SOURCE_DIR}/man/switchboard.1.in ${CMAKE_BINARY_DIR}/man/switchboard.1 @ONLY)
configure_file(${CMAKE_SOURCE_DIR}/man/libswitchboard.3.in ${CMAKE_BINARY_DIR}/man/libswitchboard.3 @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/man/switchboard.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_BINARY_DIR}/man/libswitchboard.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
install(FILES completion/switchboard.bash DESTINATION ${SB_COMPLETION_DIR} RENAME switchboard)
install(FILES LICENSE CHANGELOG.md README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# make uninstall: every file of the last install (install_manifest.txt),
# then the directories that install created, if empty.
add_custom_target(uninstall
  COMMAND ${CMAKE_COMMAND} -DSB_MANIFEST=${CMAKE_BINARY_DIR}/install_manifest.txt
          -DSB_DIRS_RECORD=${CMAKE_BINARY_DIR}/install_dirs.txt
          -P ${CMAKE_CURRENT_LIST_DIR}/uninstall.cmake
  VERBATIM)

# make docs: the API reference from the public headers' comments
# (build/docs/html/index.html). Doxyfile.in sets WARN_AS_ERROR, so an
# undocumented public function fails the build of the docs.
find_program(DOXYGEN doxygen)
configure_file(${CMAKE_SOURCE_DIR}/Doxyfile.in ${CMAKE_BINARY_DIR}/Doxyfile @ONLY)
if(DOXYGEN)
  add_custom_target(docs COMMAND ${DOXYGEN} ${CMAKE_BINARY_DIR}/Doxyfile
                    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} VERBATIM)
else()
  add_custom_target(docs COMMAND ${CMAKE_COMMAND} -E echo
                    "make docs needs doxygen (apt-get install doxygen)"
                    COMMAND ${CMAKE_COMMAND} -E false VERBATIM)
endif()
