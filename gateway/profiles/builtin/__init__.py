"""Built-in device profiles (TOML data; a package so setuptools ships the files)."""
