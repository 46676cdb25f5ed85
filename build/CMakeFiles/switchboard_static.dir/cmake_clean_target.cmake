file(REMOVE_RECURSE
  "libswitchboard.a"
)
