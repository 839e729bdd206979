"""Quality reports against real references (``python -m datagen.reports.<name>``); never
imported by stages."""
