file(REMOVE_RECURSE
  "CMakeFiles/sb_objects.dir/src/error.c.o"
  "CMakeFiles/sb_objects.dir/src/error.c.o.d"
  "CMakeFiles/sb_objects.dir/src/sys.c.o"
  "CMakeFiles/sb_objects.dir/src/sys.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/sb_objects.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
