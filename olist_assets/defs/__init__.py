"""Every module below is scanned for definitions by `load_from_defs_folder`."""
