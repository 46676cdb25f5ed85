# Empty dependencies file for switchboard_shared.
# This may be replaced when dependencies are built.
