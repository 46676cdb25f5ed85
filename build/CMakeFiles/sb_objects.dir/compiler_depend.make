# Empty compiler generated dependencies file for sb_objects.
# This may be replaced when dependencies are built.
