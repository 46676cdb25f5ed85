# Run by `cmake --install`: writes switchboard.pc for the prefix being
# installed into (CMAKE_INSTALL_PREFIX here is the install's, --prefix
# included) and installs it. Inputs: SB_PC_TEMPLATE, SB_PC_OUT,
# SB_PC_VERSION, SB_PC_LIBS, SB_LIBDIR, SB_INCLUDEDIR.
set(SB_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${SB_${kind}}")
    set(SB_PC_${kind} "${SB_${kind}}")
  else()
    set(SB_PC_${kind} "\${prefix}/${SB_${kind}}")
  endif()
endforeach()
if(IS_ABSOLUTE "${SB_LIBDIR}")
  set(sb_pc_dest "${SB_LIBDIR}/pkgconfig")
else()
  set(sb_pc_dest "${CMAKE_INSTALL_PREFIX}/${SB_LIBDIR}/pkgconfig")
endif()
configure_file("${SB_PC_TEMPLATE}" "${SB_PC_OUT}" @ONLY)
# file(INSTALL) adds DESTDIR and records the file in install_manifest.txt.
file(INSTALL DESTINATION "${sb_pc_dest}" TYPE FILE FILES "${SB_PC_OUT}")
