"""Each command's settings: the flag / YAML machinery, one config per command, settings chosen from the data."""
