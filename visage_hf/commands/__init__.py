"""The `visage` command line, one module per command group."""
