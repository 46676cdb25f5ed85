file(REMOVE_RECURSE
  "libswitchboard.a"
  "libswitchboard.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/switchboard_static.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
