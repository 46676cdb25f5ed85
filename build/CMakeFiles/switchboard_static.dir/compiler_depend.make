# Empty compiler generated dependencies file for switchboard_static.
# This may be replaced when dependencies are built.
