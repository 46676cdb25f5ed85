file(REMOVE_RECURSE
  "libswitchboard.pdb"
  "libswitchboard.so"
  "libswitchboard.so.0"
  "libswitchboard.so.0.1.0"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/switchboard_shared.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
